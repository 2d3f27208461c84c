"""How much the OS interpreter costs: write_entry against hand-written syscalls.

``write_entry`` runs the catalogue program through ``reference.osrun``; the
baseline is the same syscalls written by hand, for every protocol:
``write-file`` (open O_TRUNC, write, close), ``write-then-truncate`` (open
O_WRONLY|O_CREAT, write, ftruncate, close, and the utime that the program's
``chtimes`` makes), ``rename-into-place`` (open a private temp file
O_EXCL, write, close, rename over the entry) and
``rename-into-place-fsync`` (the same with an fsync before the close).
The target, for the default (write-then-truncate): at most 15% slower.  The cases run in ``--runs`` runs; each run is
``--rounds`` rounds in which every case makes ``--batch`` calls in turn, so
that the load of a shared machine falls on all cases alike; the garbage
collector is off while timing (as ``timeit`` does).  Reported per case: the
median over runs of microseconds per call, the best batch, and the ratio to
the baseline: the median of per-round paired ratios (the verdict), and the
ratio of best batches.

    .venv/bin/python -m bench.bench_entry [--runs 7] [--rounds 100] [--batch 50] [--dir DIR] [--json]

Not a test: timings depend on the machine and its load; nothing here fails
a build unless ``--strict`` is given.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import tempfile
import time
from typing import Any, Callable

from bench import figure
from reference.entry import read_entry, write_entry

LIMIT = 1.15  # write_entry may be at most 15% slower than the hand-written syscalls

# A Go index entry: "v1 <action> <output> <size %20d> <time %20d>\n", 175 bytes.
DATA = b"v1 " + b"a" * 64 + b" " + b"b" * 64 + b" " + b"%20d" % 175 + b" " + b"%20d" % 1_700_000_000 + b"\n"


PROTOCOLS = ("write-file", "write-then-truncate", "rename-into-place", "rename-into-place-fsync")
HAND = "by hand: "  # the prefix of a baseline case's name


def _hand_writers(path: str) -> dict[str, Callable[[], object]]:
    """protocol -> the syscalls ``write_entry`` makes for it (strace shows
    them), written by hand."""
    n = len(DATA)
    flags = os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC

    def write_file() -> None:
        fd = os.open(path, flags | os.O_TRUNC, 0o666)
        try:
            os.write(fd, DATA)
        finally:
            os.close(fd)

    def write_then_truncate() -> None:
        fd = os.open(path, flags, 0o666)
        try:
            os.write(fd, DATA)
            os.ftruncate(fd, n)
        finally:
            os.close(fd)
        os.utime(path)

    def rename_into_place(sync: bool) -> Callable[[], None]:
        def write() -> None:
            # The private name osrun gives a temp file: pid and 4 random bytes.
            tmp = f"{path}.tmp.{os.getpid()}.{os.urandom(4).hex()}"
            fd = os.open(tmp, flags | os.O_EXCL, 0o666)
            try:
                os.write(fd, DATA)
                if sync:
                    os.fsync(fd)
            finally:
                os.close(fd)
            os.rename(tmp, path)
        return write

    return {"write-file": write_file, "write-then-truncate": write_then_truncate,
            "rename-into-place": rename_into_place(False), "rename-into-place-fsync": rename_into_place(True)}


def cases(path: str, protocols: tuple[str, ...] = PROTOCOLS,
          reads: bool = True) -> dict[str, tuple[str, Callable[[], object]]]:
    """name -> (its baseline's name, one call); a baseline names itself.
    Every protocol's write_entry against the same syscalls by hand, and
    read_entry against a hand-written read."""
    n = len(DATA)
    hand = _hand_writers(path)
    out: dict[str, tuple[str, Callable[[], object]]] = {}
    for proto in protocols:
        base = f"{HAND}{proto}"
        out[base] = (base, hand[proto])
        out[f"write_entry: {proto}"] = (base, lambda proto=proto: write_entry(path, DATA, protocol=proto))  # type: ignore[misc]

    def hand_read() -> bytes | None:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return None
        try:
            buf = os.read(fd, n + 1)
        finally:
            os.close(fd)
        return buf if len(buf) == n else None

    if reads:
        out[f"{HAND}read"] = (f"{HAND}read", hand_read)
        out["read_entry"] = (f"{HAND}read", lambda: read_entry(path, n))
    return out


def measure(fns: dict[str, Callable[[], object]], runs: int, rounds: int, batch: int) -> dict[str, list[list[float]]]:
    """Microseconds per call of every batch: [run][round] per case; within a
    round the cases run back to back, so their batches share the load."""
    out: dict[str, list[list[float]]] = {name: [] for name in fns}
    for fn in fns.values():  # warm up: caches, compiled programs, the page cache
        for _ in range(min(500, 10 * batch)):
            fn()
    items = list(fns.items())
    gc_was = gc.isenabled()
    gc.disable()
    try:
        for _ in range(runs):
            run: dict[str, list[float]] = {name: [] for name in fns}
            for _ in range(rounds):
                for name, fn in items:
                    t = time.perf_counter_ns()
                    for _ in range(batch):
                        fn()
                    run[name].append((time.perf_counter_ns() - t) / batch / 1000)
            for name in fns:
                out[name].append(run[name])
    finally:
        if gc_was:
            gc.enable()
    return out


def report(times: dict[str, list[list[float]]], baselines: dict[str, str]) -> list[dict[str, Any]]:
    """Rows per case, against its baseline:

    us:           the figure over runs of a run's mean µs per call;
    median_us:    its median;
    best_us:      the fastest batch (noise only ever adds time);
    ratio:        median of the per-round ratios to the baseline's batch
                  in the same round (the verdict: robust to load changes);
    ratio_best:   best_us over the baseline's best_us."""
    rows: list[dict[str, Any]] = []
    for name, mine in times.items():
        base = times[baselines[name]]
        paired = [m / b for run_m, run_b in zip(mine, base) for m, b in zip(run_m, run_b)]
        best = min(min(r) for r in mine)
        us = figure([statistics.fmean(r) for r in mine])
        rows.append({
            "case": name,
            "us": us,
            "median_us": us["median"],
            "best_us": best,
            "ratio": statistics.median(paired),
            "ratio_best": best / min(min(r) for r in base),
            "baseline": baselines[name],
        })
    return rows


def run_cases(directory: str | None, runs: int, rounds: int, batch: int,
              protocols: tuple[str, ...] = PROTOCOLS) -> list[dict[str, Any]]:
    """Measure :func:`cases` in a fresh temporary directory under ``directory``."""
    with tempfile.TemporaryDirectory(dir=directory) as d:
        named = cases(os.path.join(d, "entry"), protocols)
        times = measure({k: fn for k, (_, fn) in named.items()}, runs, rounds, batch)
    return report(times, {k: b for k, (b, _) in named.items()})


def collect(quick: bool) -> dict[str, Any]:
    """The document's writes section (quick: a few hundred calls a case)."""
    runs, rounds, batch = (2, 2, 5) if quick else (7, 20, 20)
    return {"runs": runs, "calls_per_run": rounds * batch, "entry_bytes": len(DATA),
            "rows": run_cases(None, runs, rounds, batch)}


def render(rows: list[dict[str, Any]], runs: int, calls: int) -> str:
    head = f"{'case':<38} {'median µs':>10} {'best µs':>9} {'ratio':>7} {'best ratio':>10}"
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    lines = [f"{runs} runs x {calls} calls per case, {len(DATA)}-byte entry, Python {sys.version.split()[0]}, "
             f"{os.cpu_count()} CPUs, load {load}", head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r['case']:<38} {r['median_us']:>10.2f} {r['best_us']:>9.2f} {r['ratio']:>7.3f} {r['ratio_best']:>10.3f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--rounds", type=int, default=100, help="rounds per run")
    ap.add_argument("--batch", type=int, default=50, help="calls per case per round")
    ap.add_argument("--dir", default=None, help="where to write (default: a fresh temp dir)")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--strict", action="store_true", help=f"exit 1 when write_entry is over {LIMIT:.2f}x")
    args = ap.parse_args(argv)
    rows = run_cases(args.dir, args.runs, args.rounds, args.batch)
    verdict = next(r["ratio"] for r in rows if r["case"] == "write_entry: write-then-truncate")
    ok = isinstance(verdict, float) and verdict <= LIMIT
    if args.json:
        print(json.dumps({"rows": rows, "limit": LIMIT, "within_limit": ok}, indent=2))
    else:
        print(render(rows, args.runs, args.rounds * args.batch))
        print(f"\nwrite_entry / hand-written: {verdict:.3f} (limit {LIMIT:.2f}): {'within' if ok else 'OVER'} the limit")
    return 1 if args.strict and not ok else 0


if __name__ == "__main__":
    sys.exit(main())
