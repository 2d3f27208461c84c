"""``make mutate``: mutation testing of the modules that carry the promises.

Tool: cosmic-ray (``pip install cosmic-ray``; chosen over mutmut 3, which
runs the code from its own ``mutants/`` copy and needs a ``src``-like
layout with the tests outside the package roots - see docs/MUTATION.md).
Each module is mutated in a scratch copy of the repository (cosmic-ray
edits the file in place and restores it; a run stopped by its budget may
leave a mutant behind, so never in the work tree), with its own selection
of fast tests that state its promises, and a time budget.  A module with
more mutants than its budget allows is *sampled*: a fixed-seed sample of
its mutants is run, the others are counted as generated and not run.

Mutants that survive and are equivalent (no test can tell them apart:
the behaviour is the same) are listed with their reason in
``mutation/equivalent.json``; they count as excluded, not as survivors.

Usage::

    python mutation/run.py                    # every module, docs/MUTATION.md
    python mutation/run.py --only reference/summary.py --sample 20 --partial

Not part of ``make test``: the full run takes most of an hour on 2 cores
with ``--jobs 1``; the default runs two modules at once.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
EQUIVALENT = REPO / "mutation" / "equivalent.json"
OUT = REPO / "docs" / "MUTATION.md"
COPIED = ("spec", "reference", "proofs", "idemwrite", "model_tests", "pyproject.toml")
SEED = 16  # the sample of mutants is the same every run


@dataclass(frozen=True)
class Target:
    """A module, the tests that state its promises (fast: each mutant runs
    them), how many mutants to run at most, and its time budget."""

    module: str
    tests: tuple[str, ...]
    sample: int
    budget_s: int


_FIDELITY_PINNED = "model_tests/test_stateful_fidelity.py::test_zero_byte_read_on_a_bad_descriptor"
TARGETS: tuple[Target, ...] = (
    Target("spec/semantics.py", ("model_tests/test_semantics_edges.py", "model_tests/test_fs.py",
                                 "model_tests/test_new_ops.py", "model_tests/test_durability.py",
                                 "model_tests/test_contract_witnesses.py", "model_tests/test_replay.py"), 60, 300),
    Target("spec/explore.py", ("model_tests/test_explore_edges.py", "model_tests/test_durability.py",
                                "model_tests/test_explore.py"), 12, 300),
    Target("spec/properties.py", ("model_tests/test_explore_edges.py", "model_tests/test_explore.py"), 12, 300),
    Target("reference/osrun.py", ("model_tests/test_osrun.py", "model_tests/test_real_failures.py", "model_tests/test_osfs.py",
                                  "-k", "test_osrun or test_real_failures "
                                  "or (test_whole_program_run_matches_the_model and gobuildcache-get)"), 60, 300),
    Target("reference/osworld.py", ("model_tests/test_osworld.py", "model_tests/test_replay.py",
                                    "model_tests/test_stateful_fidelity.py",
                                    "-k", "not Fidelity and not broken_model"), 40, 300),
    Target("reference/outcomes.py", ("model_tests/test_outcomes.py", "model_tests/test_real_failures.py",
                                     "model_tests/test_replay.py"), 60, 300),
    Target("reference/gocache.py", ("model_tests/test_ordering.py", "model_tests/test_gocache.py",
                                    "model_tests/test_gocacheprog_edges.py",
                                    "-k", "not Comparison and not comparison"), 30, 300),
    Target("reference/gocacheprog.py", ("model_tests/test_gocacheprog_edges.py", "model_tests/test_gocacheprog.py", "-k",
                                        "edges or fast_path or fast_get or bad_request or put_then_get or refuses_bad_usage"),
           40, 450),
    Target("reference/summary.py", ("model_tests/test_ordering.py", "model_tests/test_summary.py", "-k",
                                    "not concurrent and not kill"), 30, 300),
    Target("proofs/induction.py", ("model_tests/test_proofs_edges.py", "model_tests/test_proofs.py", "-k",
                                   "proofs_edges or pinned_cases_follow or forgets or non_inductive "
                                   "or false_invariant or false_on_reachable or induction_edge"), 40, 300),
    Target("proofs/bmc.py", ("model_tests/test_proofs_edges.py", "model_tests/test_bmc_decode.py",
                             "model_tests/test_own_protocol.py"), 30, 300),
)


@dataclass
class Tally:
    module: str
    generated: int = 0
    run: int = 0
    killed: int = 0
    survived: int = 0
    equivalent: int = 0
    incompetent: int = 0
    annotation: int = 0  # mutants inside annotations: equivalent by rule, not run
    sampled: int = 0  # chosen to run; those the budget did not reach are sampled - run
    seconds: float = 0.0
    survivors: list[str] = field(default_factory=list)

    @property
    def score(self) -> float | None:
        judged = self.killed + self.survived
        return None if judged == 0 else 100.0 * self.killed / judged


def _scratch() -> Path:
    """A copy of the repository's code and tests: cosmic-ray edits files
    in place."""
    d = Path(tempfile.mkdtemp(prefix="idemwrite-mutate-"))
    for name in COPIED:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, d / name, ignore=shutil.ignore_patterns("__pycache__", ".hypothesis"))
        else:
            shutil.copy2(src, d / name)
    return d


def _config(scratch: Path, t: Target, timeout_s: int) -> Path:
    tests = " ".join(t.tests[:t.tests.index("-k")] if "-k" in t.tests else t.tests)
    k = t.tests[t.tests.index("-k") + 1] if "-k" in t.tests else None
    # cosmic-ray splits the command with shlex: the -k expression is quoted.
    command = f"{sys.executable} -m pytest -x -q -p no:cacheprovider -p no:xdist {tests}" + (f" -k '{k}'" if k else "")
    cfg = scratch / "cosmic-ray.toml"
    cfg.write_text(
        "[cosmic-ray]\n"
        f"module-path = {json.dumps(t.module)}\n"
        f"timeout = {float(timeout_s)}\n"
        "excluded-modules = []\n"
        f"test-command = {json.dumps(command)}\n"
        "[cosmic-ray.distributor]\n"
        'name = "local"\n'
    )
    return cfg


def _env(scratch: Path) -> dict[str, str]:
    """The scratch copy first on the path (the editable install points at
    the work tree), Hypothesis's files outside it."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(scratch) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.setdefault("HYPOTHESIS_STORAGE_DIRECTORY", str(Path(tempfile.gettempdir()) / "idemwrite-mutate-hypothesis"))
    return env


def kill_leftovers(scratch: Path, proc: Path = Path("/proc")) -> list[int]:
    """Kill every process still working in ``scratch`` (its cwd there):
    a mutant that hangs leaves its test process behind when the budget
    stops cosmic-ray, which starts it outside cosmic-ray's process group,
    and that process would go on using a CPU after the run.  The pids
    killed."""
    killed = []
    prefix = str(scratch)
    for d in proc.glob("[0-9]*"):
        try:
            cwd = os.readlink(d / "cwd")
        except OSError:
            continue  # gone, or not ours to read
        if cwd == prefix or cwd.startswith(prefix + "/") or cwd.startswith(prefix + " "):
            try:
                os.kill(int(d.name), signal.SIGKILL)
                killed.append(int(d.name))
            except ProcessLookupError:
                pass
    return killed


def _cr(args: list[str], scratch: Path, env: dict[str, str], timeout: float | None = None) -> int:
    """Run cosmic-ray; stopped (its whole process group) at ``timeout``."""
    p = subprocess.Popen([sys.executable, "-m", "cosmic_ray.cli", *args], cwd=scratch, env=env, start_new_session=True,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        _, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
        return -1
    if p.returncode != 0:
        raise SystemExit(f"cosmic-ray {args[0]} failed: {err[-2000:]}")
    return p.returncode


def annotation_spans(source: str) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """Where the annotations of a module lie ((line, col) start and end),
    if the module has ``from __future__ import annotations``: there an
    annotation is a string never evaluated at run time, so a mutant inside
    one is equivalent (mypy, not a test, is what catches it).  Empty
    otherwise."""
    import ast

    tree = ast.parse(source)
    future = any(isinstance(n, ast.ImportFrom) and n.module == "__future__" and any(a.name == "annotations" for a in n.names)
                 for n in tree.body)
    if not future:
        return []
    spans = []
    for node in ast.walk(tree):
        notes = []
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            notes.append(node.returns)
        elif isinstance(node, ast.arg):
            notes.append(node.annotation)
        elif isinstance(node, ast.AnnAssign):
            notes.append(node.annotation)
        for a in notes:
            if a is not None and a.end_lineno is not None and a.end_col_offset is not None:
                spans.append(((a.lineno, a.col_offset), (a.end_lineno, a.end_col_offset)))
    return spans


def _inside(pos: tuple[int, int], spans: list[tuple[tuple[int, int], tuple[int, int]]]) -> bool:
    return any(start <= pos < end for start, end in spans)


def _equivalent() -> list[dict[str, object]]:
    return json.loads(EQUIVALENT.read_text()) if EQUIVALENT.exists() else []


def _is_equivalent(module: str, diff: str, known: list[dict[str, object]]) -> bool:
    """A survivor whose diff (its changed lines) is listed as equivalent."""
    changed = [ln[1:].strip() for ln in diff.splitlines() if ln.startswith(("+", "-")) and not ln.startswith(("+++", "---"))]
    return any(e["module"] == module and e["changed"] == changed for e in known)


def mutate(t: Target, sample: int | None, budget_scale: float, known: list[dict[str, object]]) -> Tally:
    """One module: init, sample, exec within the budget, tally."""
    from cosmic_ray.work_db import WorkDB, use_db  # type: ignore[import-untyped]
    from cosmic_ray.work_item import TestOutcome, WorkerOutcome, WorkResult  # type: ignore[import-untyped]

    started = time.monotonic()
    scratch = _scratch()
    try:
        env = _env(scratch)
        cfg = _config(scratch, t, timeout_s=max(60, t.budget_s // 2))
        db = scratch / "session.sqlite"
        _cr(["init", str(cfg), str(db)], scratch, env)
        tally = Tally(t.module)
        with use_db(str(db), WorkDB.Mode.open) as work:
            items = list(work.work_items)
            tally.generated = len(items)
            keep = sample if sample is not None else t.sample
            # Mutants inside an annotation are equivalent by rule (see
            # annotation_spans): counted, never run, never sampled.
            spans = annotation_spans((scratch / t.module).read_text())
            notes = {i.job_id for i in items if any(_inside(tuple(m.start_pos), spans) for m in i.mutations)}
            tally.annotation = len(notes)
            runnable = [i.job_id for i in items if i.job_id not in notes]
            chosen = set(random.Random(SEED).sample(runnable, min(keep, len(runnable))))
            tally.sampled = len(chosen)
            skipped = [i.job_id for i in items if i.job_id not in chosen]
            if skipped:
                work.set_multiple_results(skipped, WorkResult(worker_outcome=WorkerOutcome.SKIPPED))
        _cr(["exec", str(cfg), str(db)], scratch, env, timeout=t.budget_s * budget_scale)
        with use_db(str(db), WorkDB.Mode.open) as work:
            for job_id, result in work.results:
                if result.worker_outcome is WorkerOutcome.SKIPPED:
                    continue
                tally.run += 1
                if result.test_outcome is TestOutcome.KILLED:
                    tally.killed += 1
                elif result.test_outcome is TestOutcome.INCOMPETENT or result.worker_outcome is not WorkerOutcome.NORMAL:
                    tally.incompetent += 1
                elif _is_equivalent(t.module, result.diff or "", known):
                    tally.equivalent += 1
                else:
                    tally.survived += 1
                    tally.survivors.append(result.diff or job_id)
    finally:
        kill_leftovers(scratch)
        shutil.rmtree(scratch, ignore_errors=True)
    tally.seconds = time.monotonic() - started
    return tally


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("cosmic-ray")
    except PackageNotFoundError:
        return "(not installed)"


def render(tallies: list[Tally], partial: bool, sample: int | None, jobs: int = 1, wall: float | None = None) -> str:
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# Mutation testing",
        "",
        "Generated by `make mutate` (`mutation/run.py`; the tool choice and how to run it: mutation/README.md).",
        "",
    ]
    if partial:
        lines += ["**PARTIAL RUN**: only the modules below were run, with the sample size given; "
                  "this is not the full `make mutate` result.", ""]
    lines += [
        f"- tool: cosmic-ray {_version()} (local distributor, one mutant at a time per module; {jobs} module(s) at once)",
        f"- date: {when}; Python {sys.version.split()[0]}",
        f"- sample: {'per module, as in mutation/run.py TARGETS' if sample is None else f'{sample} mutants per module'} "
        f"(fixed seed {SEED}); the others are generated, not run; sampled but not run: the module's time budget ran out",
        *([f"- wall time: {wall / 60:.0f} min (the seconds column is each module's own)"] if wall is not None else []),
        "- score: killed / (killed + survived); equivalent mutants (mutation/equivalent.json, each with its reason) "
        "and incompetent ones (the mutant does not run: a syntax or import error, or a timeout) are left out",
        "",
        "- annotations: a mutant inside a type annotation of a module with `from __future__ import annotations` "
        "is equivalent by rule (the annotation is a string never evaluated; mypy catches it): counted, not run",
        "",
        "| module | generated | in annotations | sampled | run | killed | survived | equivalent | incompetent | score "
        "| seconds |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    total = Tally("Total")
    for t in tallies:
        for f in ("generated", "annotation", "sampled", "run", "killed", "survived", "equivalent", "incompetent", "seconds"):
            setattr(total, f, getattr(total, f) + getattr(t, f))
    for t in [*tallies, total]:
        score = "-" if t.score is None else f"{t.score:.1f}%"
        name = f"`{t.module}`" if t is not total else "**Total**"
        lines.append(f"| {name} | {t.generated} | {t.annotation} | {t.sampled} | {t.run} | {t.killed} | {t.survived} | {t.equivalent} | "
                     f"{t.incompetent} | {score} | {t.seconds:.0f} |")
    survivors = [(t.module, d) for t in tallies for d in t.survivors]
    if survivors:
        lines += ["", "## Survivors", "", "Each needs a test that states the promise it breaks, or an entry in "
                  "mutation/equivalent.json with the reason it is equivalent.", ""]
        for module, diff in survivors:
            changed = [ln for ln in diff.splitlines() if ln.startswith(("+", "-")) and not ln.startswith(("+++", "---"))]
            lines += [f"- `{module}`:", "  ```diff", *("  " + ln for ln in changed), "  ```"]
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", action="append", default=[], help="a module path (repeatable); default: all")
    ap.add_argument("--sample", type=int, help="mutants per module (default: each target's own)")
    ap.add_argument("--budget-scale", type=float, default=1.0, help="multiply every module's time budget")
    ap.add_argument("--partial", action="store_true", help="mark the report as a partial run")
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--jobs", type=int, default=2, help="modules run at once (default 2: one per CPU here)")
    a = ap.parse_args(argv)
    unknown = set(a.only) - {t.module for t in TARGETS}
    if unknown:
        ap.error(f"no such target: {', '.join(sorted(unknown))} (known: {', '.join(t.module for t in TARGETS)})")
    targets = [t for t in TARGETS if not a.only or t.module in a.only]
    known = _equivalent()
    if a.jobs < 1:
        ap.error("--jobs must be at least 1")
    started = time.monotonic()

    def one(t: Target) -> Tally:
        tally = mutate(t, a.sample, a.budget_scale, known)
        print(f"{t.module}: {tally.killed} killed, {tally.survived} survived, {tally.equivalent} equivalent, "
              f"{tally.incompetent} incompetent of {tally.run} run ({tally.generated} generated) in {tally.seconds:.0f} s",
              flush=True)
        return tally

    # Each module runs in its own scratch copy and cosmic-ray process, so
    # modules are independent: run ``jobs`` of them at once (threads only
    # wait on those processes).  The report keeps TARGETS' order.
    with ThreadPoolExecutor(max_workers=a.jobs) as pool:
        tallies = list(pool.map(one, targets))
    wall = time.monotonic() - started
    a.out.write_text(render(tallies, a.partial or bool(a.only), a.sample, jobs=a.jobs, wall=wall))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
