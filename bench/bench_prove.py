"""How long ``idemwrite prove`` takes, whole and per theorem.

Target (the issue): the whole run in at most 60 s on this machine.  Each
run is the real command path (``proofs.cli.run_all`` over every theorem,
with the default worker count); the table gives, per theorem, the median
of its own seconds over the runs, and the median wall time of the whole.
Nothing here asserts a time; a verdict that changes between runs is
reported, since it would mean a solver timeout decided something.

Baseline, in the same process: one more run with a single worker, where
each theorem has a CPU to itself (``run_all`` still gives every theorem a
fresh worker process).  A theorem's ratio is its median seconds among
``--jobs`` workers over its seconds alone; the whole run's ratio is its
median wall time over the single worker's (below 1: what the workers buy).

    python -m bench.bench_prove [--runs 3] [--jobs N] [--no-baseline]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from typing import Any, Sequence

from bench import figure
from proofs.cli import failed, run_all
from proofs.theorems import catalogue

TARGET_SECONDS = 60.0

# Quick mode: a few theorems that take milliseconds (still through run_all,
# worker processes and all).
QUICK_THEOREMS = (
    "rename-into-place/published-entry-stays-complete/drop-same-length",
    "rename-into-place/published-entry-stays-complete/drop-same-bytes",
    "rename-into-place/reader-after-publication-hits/drop-same-bytes",
)


def _one_run(names: Sequence[str], jobs: int) -> tuple[float, list[dict[str, Any]]]:
    started = time.perf_counter()
    rows = run_all(names, jobs)
    return time.perf_counter() - started, [dict(r) for r in rows]


def measure(names: Sequence[str], runs: int, jobs: int, baseline: bool = True) -> dict[str, Any]:
    """``runs`` runs of ``run_all(names, jobs)`` and (with ``baseline``)
    one with a single worker; per theorem and whole, as figures."""
    walls: list[float] = []
    per: dict[str, list[float]] = {n: [] for n in names}
    outcomes: dict[str, set[str]] = {n: set() for n in names}
    bad_runs = 0
    for _ in range(runs):
        wall, rows = _one_run(names, jobs)
        walls.append(wall)
        bad_runs += any(failed(r) for r in rows)
        for r in rows:
            per[str(r["theorem"])].append(float(r["seconds"]))
            outcomes[str(r["theorem"])].add(str(r["outcome"]))
    alone: dict[str, float] = {}
    base_wall = None
    if baseline:
        base_wall, rows = _one_run(names, 1)
        alone = {str(r["theorem"]): float(r["seconds"]) for r in rows}
    theorems = []
    for n in names:
        row: dict[str, Any] = {"theorem": n, "outcome": "/".join(sorted(outcomes[n])), "seconds": figure(per[n])}
        if n in alone:
            row["alone_seconds"] = alone[n]
            row["ratio"] = statistics.median(per[n]) / max(alone[n], 1e-3)
        theorems.append(row)
    whole: dict[str, Any] = {"seconds": figure(walls), "jobs": jobs, "theorems": len(names),
                             "work_seconds": sum(statistics.median(per[n]) for n in names)}
    if base_wall is not None:
        whole["alone_seconds"] = base_wall
        whole["ratio"] = statistics.median(walls) / base_wall
    return {"theorems": theorems, "whole": whole, "bad_runs": bad_runs, "target_seconds": TARGET_SECONDS}


def collect(quick: bool) -> dict[str, Any]:
    """The document's proofs section: every theorem, 3 runs (quick: a
    few millisecond theorems, one run)."""
    names = list(QUICK_THEOREMS) if quick else [t.name for t in catalogue()]
    return measure(names, 1 if quick else 3, os.cpu_count() or 1)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bench.bench_prove")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--no-baseline", action="store_true", help="skip the single-worker run")
    args = ap.parse_args(argv)
    data = measure([t.name for t in catalogue()], args.runs, args.jobs, not args.no_baseline)
    width = max(len(r["theorem"]) for r in data["theorems"])
    print(f"{'theorem'.ljust(width)}  outcome         median s  max s  alone s  ratio")
    for r in data["theorems"]:
        s = r["seconds"]
        alone = f"{r['alone_seconds']:7.2f}  {r['ratio']:5.2f}" if "ratio" in r else ""
        print(f"{r['theorem'].ljust(width)}  {r['outcome'].ljust(14)}  {s['median']:8.2f}  {s['max']:5.2f}  {alone}")
    whole = data["whole"]
    wall = whole["seconds"]
    cpu = os.cpu_count() or 1
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"\nwhole run: median {wall['median']:.1f} s over {args.runs} runs (min {wall['min']:.1f}, "
          f"max {wall['max']:.1f}); {args.jobs} workers on {cpu} CPUs, load average {load:.1f}; target <= "
          f"{TARGET_SECONDS:.0f} s: {'met' if wall['median'] <= TARGET_SECONDS else 'MISSED'}")
    if "ratio" in whole:
        print(f"one worker: {whole['alone_seconds']:.1f} s; ratio {whole['ratio']:.2f}")
    # The workers are forkserver children, whose CPU time getrusage(CHILDREN)
    # never sees; each theorem runs on one CPU, so its seconds are its work.
    print(f"work: {whole['work_seconds']:.1f} s summed over theorems (medians); with {args.jobs} idle CPUs the "
          f"wall time is about that divided by {args.jobs}, or the slowest theorem, whichever is larger")
    if data["bad_runs"]:
        print(f"{data['bad_runs']} run(s) had an outcome other than declared")
    return 1 if data["bad_runs"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
