"""How much the OS interpreter costs: write_entry against hand-written syscalls.

``write_entry`` runs the catalogue program through ``reference.osrun``; the
baseline is the same syscalls written by hand (open O_WRONLY|O_CREAT, write,
ftruncate, close, and the utime that the program's ``chtimes`` makes).  The
target: at most 15% slower.  The cases run in ``--runs`` runs; each run is
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
from typing import Callable

from reference.entry import read_entry, write_entry

LIMIT = 1.15  # write_entry may be at most 15% slower than the hand-written syscalls

# A Go index entry: "v1 <action> <output> <size %20d> <time %20d>\n", 175 bytes.
DATA = b"v1 " + b"a" * 64 + b" " + b"b" * 64 + b" " + b"%20d" % 175 + b" " + b"%20d" % 1_700_000_000 + b"\n"


def cases(path: str) -> dict[str, Callable[[], object]]:
    """name -> one call; the first is the baseline the ratios refer to."""
    n = len(DATA)
    flags = os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC

    def hand_write() -> None:
        # The syscalls write-then-truncate makes, in its order.
        fd = os.open(path, flags, 0o666)
        try:
            os.write(fd, DATA)
            os.ftruncate(fd, n)
        finally:
            os.close(fd)
        os.utime(path)

    def hand_write_no_utime() -> None:
        fd = os.open(path, flags, 0o666)
        try:
            os.write(fd, DATA)
            os.ftruncate(fd, n)
        finally:
            os.close(fd)

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

    return {
        "hand-written write (same syscalls)": hand_write,
        "write_entry (write-then-truncate)": lambda: write_entry(path, DATA),
        "hand-written write without utime": hand_write_no_utime,
        "hand-written read": hand_read,
        "read_entry": lambda: read_entry(path, n),
    }


def measure(fns: dict[str, Callable[[], object]], runs: int, rounds: int, batch: int) -> dict[str, list[list[float]]]:
    """Microseconds per call of every batch: [run][round] per case; within a
    round the cases run back to back, so their batches share the load."""
    out: dict[str, list[list[float]]] = {name: [] for name in fns}
    for fn in fns.values():  # warm up: caches, compiled programs, the page cache
        for _ in range(500):
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


def report(times: dict[str, list[list[float]]]) -> list[dict[str, object]]:
    """Rows per case (writes against the write baseline, reads against the
    read baseline):

    median_us:    median over runs of a run's mean µs per call;
    best_us:      the fastest batch (noise only ever adds time);
    ratio:        median of the per-round ratios to the baseline's batch
                  in the same round (the verdict: robust to load changes);
    ratio_best:   best_us over the baseline's best_us."""
    names = list(times)
    base_of = {name: (names[3] if "read" in name else names[0]) for name in names}
    rows = []
    for name in names:
        mine, base = times[name], times[base_of[name]]
        paired = [m / b for run_m, run_b in zip(mine, base) for m, b in zip(run_m, run_b)]
        best = min(min(r) for r in mine)
        rows.append({
            "case": name,
            "median_us": statistics.median(statistics.fmean(r) for r in mine),
            "best_us": best,
            "ratio": statistics.median(paired),
            "ratio_best": best / min(min(r) for r in base),
            "baseline": base_of[name],
        })
    return rows


def render(rows: list[dict[str, object]], runs: int, calls: int) -> str:
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
    with tempfile.TemporaryDirectory(dir=args.dir) as d:
        rows = report(measure(cases(os.path.join(d, "entry")), args.runs, args.rounds, args.batch))
    verdict = rows[1]["ratio"]
    ok = isinstance(verdict, float) and verdict <= LIMIT
    if args.json:
        print(json.dumps({"rows": rows, "limit": LIMIT, "within_limit": ok}, indent=2))
    else:
        print(render(rows, args.runs, args.rounds * args.batch))
        print(f"\nwrite_entry / hand-written: {verdict:.3f} (limit {LIMIT:.2f}): {'within' if ok else 'OVER'} the limit")
    return 1 if args.strict and not ok else 0


if __name__ == "__main__":
    sys.exit(main())
