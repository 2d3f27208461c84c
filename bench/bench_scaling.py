"""How far the explorer scales: states, seconds and peak memory against N.

Two instances, both with byte granularity, L=4 and no readers:
``write-then-truncate`` with no faults (the yardstick of
``bench.bench_explore``) and ``go-index-entry`` with F=1.  For each, three
curves over N = 1, 2, ... writers:

- the explorer with its symmetry reduction (``spec.explore.explore``);
- the explorer with ``symmetry=False``;
- SPIN on the same system (``proofs.promela.translate``, no property: the
  whole space; pan built by ``proofs.spin.build`` with gcc -O2 and its
  partial-order reduction, run with ``proofs.spin.pan``'s flags, among
  them a 2^20-slot hash table).  The time is pan's search alone; building
  pan is given beside it.

Every point runs in a subprocess of its own, under an address-space limit
(``RLIMIT_AS``, inherited by pan) and a wall-time limit on the measured
search; a point that exceeds either stops its curve (a larger N only
grows), and the document says which limit it was.  Peak RSS is the
subprocess's (and pan's) ``ru_maxrss``, or for a point killed at its time
limit the largest resident size sampled while it ran.

Baselines, each run in the same subprocess just before every measured run:

- the reduced explorer on ``write-then-truncate``: the hand-written
  counting probe of ``bench.bench_explore`` (what generality costs);
- the unreduced explorer and SPIN: the reduced explorer on the same
  system (what symmetry reduction saves);
- the reduced explorer on ``go-index-entry`` F=1: the reduced explorer on
  the yardstick with the same N (what the Go program and a fault cost).

A point is run up to ``--max-runs`` times while one run takes under
``--repeat-below`` seconds (larger points are run once).

    .venv/bin/python -m bench.bench_scaling [--quick] [--limit 60] [--memory-gib 4] [--max-n 24]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import selectors
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, TypedDict

from bench import Figure, figure

REPO = Path(__file__).resolve().parent.parent
L = 4
MIB = 1024 * 1024


@dataclass(frozen=True)
class Series:
    """One curve: an engine on one instance, and its baseline."""

    key: str
    protocol: str
    faults: int
    engine: str  # "symmetry", "no-symmetry" or "spin"
    baseline: str  # "probe", "symmetry" (same system) or "yardstick" (write-then-truncate F=0, same N)

    @property
    def label(self) -> str:
        return {"symmetry": "explorer, symmetry reduction", "no-symmetry": "explorer, no symmetry reduction",
                "spin": "SPIN (pan, partial-order reduction)"}[self.engine]


def _series() -> tuple[Series, ...]:
    out = []
    for protocol, faults, base in (("write-then-truncate", 0, "probe"), ("go-index-entry", 1, "yardstick")):
        out.append(Series(f"{protocol}/symmetry", protocol, faults, "symmetry", base))
        out.append(Series(f"{protocol}/no-symmetry", protocol, faults, "no-symmetry", "symmetry"))
        out.append(Series(f"{protocol}/spin", protocol, faults, "spin", "symmetry"))
    return tuple(out)


SERIES = _series()
BASELINE_TEXT = {
    "probe": "the hand-written counting probe (bench.bench_explore)",
    "symmetry": "the explorer with symmetry reduction, same system",
    "yardstick": "the explorer with symmetry reduction on write-then-truncate F=0, same N",
}


@dataclass(frozen=True)
class Limits:
    """What each point may use, and how many points and runs there are."""

    seconds: float  # the measured search, per run
    memory_gib: float  # address space of the point's subprocess (and pan)
    max_n: int
    spin_max_n: int
    max_runs: int
    repeat_below: float  # repeat a run only while it takes less than this
    pan_opt: str  # gcc's optimisation level for pan

    @staticmethod
    def full() -> Limits:
        return Limits(seconds=60.0, memory_gib=4.0, max_n=24, spin_max_n=24, max_runs=3, repeat_below=5.0,
                      pan_opt="-O2")

    @staticmethod
    def quick() -> Limits:
        # -O0: pan builds about 5x faster, and at N=1 its search is instant.
        return Limits(seconds=1.0, memory_gib=2.0, max_n=3, spin_max_n=1, max_runs=1, repeat_below=0.0,
                      pan_opt="-O0")


class Stop(TypedDict):
    why: str  # "time", "memory", "translation" or "error"
    detail: str


class Point(TypedDict, total=False):
    n: int
    states: int
    seconds: Figure
    baseline_seconds: Figure
    baseline_states: int
    ratio: float  # median over runs of seconds / baseline seconds, paired
    peak_rss_mib: float
    build_seconds: float
    stopped: Stop


# ------------------------------------------------------------ the subprocess


def _system(protocol: str, n: int, faults: int) -> Any:
    from spec import CATALOGUE, System

    return System.of(CATALOGUE[protocol], n, 0, faults=faults, entry_length=L)


def _explore_states(system: Any, symmetry: bool) -> int:
    from spec import explore

    return int(explore(system, [], stop_when_all_violated=False, symmetry=symmetry).states)


def _baseline(series: Series, n: int) -> Callable[[], int]:
    if series.baseline == "probe":
        from bench.bench_explore import probe

        return lambda: probe(n)
    if series.baseline == "yardstick":
        system = _system("write-then-truncate", n, 0)
    else:
        system = _system(series.protocol, n, series.faults)
    return lambda: _explore_states(system, True)


def _emit(**event: object) -> None:
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


def _measured(series: Series, n: int, workdir: str) -> Callable[[], int]:
    system = _system(series.protocol, n, series.faults)
    if series.engine != "spin":
        return lambda: _explore_states(system, series.engine == "symmetry")
    import re

    from proofs.spin import pan

    def search() -> int:
        out = pan(Path(workdir))
        if "out of memory" in out:
            raise MemoryError("pan: out of memory")
        m = re.search(r"(\d+) states, stored", out)
        if m is None or "errors: 0" not in out:
            raise RuntimeError(f"pan did not finish cleanly:\n{out[-1500:]}")
        return int(m.group(1))

    return search


def _build_pan(series: Series, n: int, workdir: Path, opt: str) -> float | Stop:
    """Translate the point's system and build pan in ``workdir`` (in the
    parent, so that gcc's memory is not counted as the point's); its
    seconds, or why it cannot be built."""
    from proofs.promela import TranslationError, translate
    from proofs.spin import build

    t = time.perf_counter()
    try:
        build(translate(_system(series.protocol, n, series.faults), []), workdir, opt=opt)
    except TranslationError as e:
        return Stop(why="translation", detail=str(e)[:300])
    except (RuntimeError, subprocess.TimeoutExpired) as e:
        return Stop(why="error", detail=f"building pan: {str(e)[-300:]}")
    return time.perf_counter() - t


def child(key: str, n: int, max_runs: int, repeat_below: float, workdir: str) -> int:
    """Measure one point; report it as JSON lines on stdout (see
    :func:`run_point`).  ``workdir`` holds SPIN's pan, built."""
    series = next(s for s in SERIES if s.key == key)
    stage = "the baseline"
    try:
        measured = _measured(series, n, workdir)
        baseline = _baseline(series, n)
        for _ in range(max_runs):
            stage = "the baseline"
            t = time.perf_counter()
            base_states = baseline()
            _emit(event="baseline", seconds=time.perf_counter() - t, states=base_states)
            _emit(event="start")
            stage = "the search"
            t = time.perf_counter()
            states = measured()
            seconds = time.perf_counter() - t
            _emit(event="run", seconds=seconds, states=states)
            if seconds >= repeat_below:
                break
    except MemoryError as e:
        _emit(event="stopped", why="memory", detail=f"{str(e) or 'MemoryError'} in {stage}")
    return 0


# ------------------------------------------------------------ the parent


def _session_rss(sid: int) -> int:
    """Resident bytes of every process in session ``sid`` (the point's
    subprocess and pan), from /proc."""
    total = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            if int(fields[3]) == sid:  # field 6 of stat: the session
                total += int(fields[21]) * os.sysconf("SC_PAGE_SIZE")  # field 24: rss in pages
        except (OSError, IndexError, ValueError):
            continue
    return total


def _limit_memory(nbytes: int) -> Callable[[], None]:
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (nbytes, nbytes))

    return apply


def run_point(series: Series, n: int, limits: Limits) -> Point:
    """One point in a subprocess under ``limits``; see the module doc."""
    with tempfile.TemporaryDirectory(prefix="bench-pan-") as workdir:
        built: float | None = None
        if series.engine == "spin":
            result = _build_pan(series, n, Path(workdir), limits.pan_opt)
            if not isinstance(result, float):
                return Point(n=n, stopped=result)
            built = result
        point = _run_child(series, n, limits, workdir)
        if built is not None:
            point["build_seconds"] = built
        return point


def _run_child(series: Series, n: int, limits: Limits, workdir: str) -> Point:
    cmd = [sys.executable, "-m", "bench.bench_scaling", "--child", series.key, str(n),
           str(limits.max_runs), str(limits.repeat_below), workdir]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    slack = 30.0 + 10 * limits.seconds  # building pan, the baseline: not what the limit is on
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, env=env, cwd=REPO, start_new_session=True,
                                preexec_fn=_limit_memory(int(limits.memory_gib * 1024 * MIB)))
        assert proc.stdout is not None
        events, peak, timed_out = _watch(proc, limits.seconds, slack)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        stderr = err.read().decode(errors="replace")
    peak = max(peak, usage.ru_maxrss * 1024)
    return _point(n, events, peak, timed_out, proc.returncode, stderr, limits)


def _watch(proc: subprocess.Popen[bytes], limit: float, slack: float) -> tuple[list[dict[str, Any]], int, str]:
    """Read the point's events until it exits or a deadline passes (then
    kill its session).  Returns the events, the peak sampled RSS and what
    timed out ("" if nothing did)."""
    assert proc.stdout is not None
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    events: list[dict[str, Any]] = []
    buf, peak, timed_out = b"", 0, ""
    measuring = False
    deadline = time.monotonic() + slack
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            timed_out = "time" if measuring else "setup time"
            os.killpg(proc.pid, signal.SIGKILL)
            break
        if sel.select(timeout=min(left, 0.25)):
            chunk = os.read(proc.stdout.fileno(), 65536)
            if not chunk:
                break
            buf += chunk
            *lines, buf = buf.split(b"\n")
            for line in lines:
                ev = json.loads(line)
                events.append(ev)
                measuring = ev["event"] == "start"
                deadline = time.monotonic() + (limit if measuring else slack)
        peak = max(peak, _session_rss(proc.pid))
    sel.close()
    proc.stdout.close()
    return events, peak, timed_out


def _point(n: int, events: list[dict[str, Any]], peak: int, timed_out: str, rc: int, stderr: str,
           limits: Limits) -> Point:
    runs = [e for e in events if e["event"] == "run"]
    bases = [e for e in events if e["event"] == "baseline"][:len(runs)]
    point = Point(n=n, peak_rss_mib=peak / MIB)
    if runs:
        point["states"] = int(runs[-1]["states"])
        point["seconds"] = figure([float(e["seconds"]) for e in runs])
        point["baseline_seconds"] = figure([float(e["seconds"]) for e in bases])
        point["baseline_states"] = int(bases[-1]["states"])
        point["ratio"] = figure([r["seconds"] / max(b["seconds"], 1e-9) for r, b in zip(runs, bases)])["median"]
        return point
    stopped = [e for e in events if e["event"] == "stopped"]
    if stopped:
        point["stopped"] = Stop(why=str(stopped[0]["why"]), detail=str(stopped[0]["detail"])[:300])
    elif timed_out == "time":
        point["stopped"] = Stop(why="time", detail=f"over {limits.seconds:g} s")
    elif not timed_out and _out_of_memory(rc, stderr):
        point["stopped"] = Stop(why="memory", detail=f"over {limits.memory_gib:g} GiB ({_tail(stderr)})")
    else:
        point["stopped"] = Stop(why="error", detail=f"{timed_out or f'exit {rc}'}: {_tail(stderr)}")
    if point["stopped"]["why"] == "memory" and "GiB" not in point["stopped"]["detail"]:
        point["stopped"]["detail"] = f"over {limits.memory_gib:g} GiB ({point['stopped']['detail']})"
    return point


def _out_of_memory(rc: int, stderr: str) -> bool:
    # Under RLIMIT_AS, CPython raises MemoryError, which may surface where
    # nothing can catch it, or the kernel's OOM killer sends SIGKILL.
    return rc == -signal.SIGKILL or any(s in stderr for s in ("MemoryError", "out of memory", "Cannot allocate memory"))


def _tail(text: str) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1][:200] if lines else "no output"


class Curve(TypedDict, total=False):
    key: str
    protocol: str
    faults: int
    engine: str
    label: str
    baseline: str
    points: list[Point]
    skipped: str


def run_curve(series: Series, limits: Limits, progress: Callable[[str], None] | None = None) -> Curve:
    """The series' points for N = 1, 2, ... until one stops (or max N)."""
    curve = Curve(key=series.key, protocol=series.protocol, faults=series.faults, engine=series.engine,
                  label=series.label, baseline=BASELINE_TEXT[series.baseline], points=[])
    if series.engine == "spin":
        from proofs.spin import spin_missing

        why = spin_missing()
        if why:
            curve["skipped"] = why
            return curve
    top = limits.spin_max_n if series.engine == "spin" else limits.max_n
    for n in range(1, top + 1):
        point = run_point(series, n, limits)
        curve["points"].append(point)
        if progress is not None:
            progress(f"{series.key} N={n}: {_brief(point)}")
        if "stopped" in point:
            break
    return curve


def _brief(p: Point) -> str:
    if "stopped" in p:
        return f"stopped ({p['stopped']['why']}: {p['stopped']['detail']})"
    return (f"{p['states']:,} states, {p['seconds']['median']:.3f} s x{p['seconds']['runs']}, "
            f"ratio {p['ratio']:.2f}, {p['peak_rss_mib']:.0f} MiB")


def collect(limits: Limits, progress: Callable[[str], None] | None = None,
            only: list[str] | None = None) -> dict[str, Any]:
    """Every curve (or those whose key starts with one of ``only``)."""
    chosen = [s for s in SERIES if not only or any(s.key.startswith(o) for o in only)]
    return {"limits": dict(limits.__dict__), "entry_length": L,
            "curves": [run_curve(s, limits, progress) for s in chosen]}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["--child"]:
        return child(args[1], int(args[2]), int(args[3]), float(args[4]), args[5])
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small N, short limits (seconds)")
    ap.add_argument("--limit", type=float, help="seconds per point's search")
    ap.add_argument("--memory-gib", type=float, help="address space per point")
    ap.add_argument("--max-n", type=int)
    ap.add_argument("--series", action="append", help="key prefix, e.g. go-index-entry/spin; repeatable")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(args)
    base = Limits.quick() if a.quick else Limits.full()
    limits = Limits(seconds=a.limit or base.seconds, memory_gib=a.memory_gib or base.memory_gib,
                    max_n=a.max_n or base.max_n, spin_max_n=a.max_n or base.spin_max_n,
                    max_runs=base.max_runs, repeat_below=base.repeat_below, pan_opt=base.pan_opt)
    data = collect(limits, None if a.json else lambda s: print(s, flush=True), a.series)
    if a.json:
        print(json.dumps(data, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
