"""``idemwrite prove``: run every theorem, print a table (or ``--json``).

Exit status 0 only when every theorem's outcome is the one it declares;
``unknown`` is always a failure.  Theorems run in parallel worker
processes (``--jobs``, default: the number of CPUs), each theorem in a
fresh one, so that its counterexample does not depend on what ran before.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import time
from typing import Callable, Sequence

from .theorems import UNKNOWN, catalogue, find, run, summary

Row = dict[str, object]


def _run_one(name: str) -> Row:
    return summary(run(find(name)))


def run_all(names: Sequence[str], jobs: int, done_one: Callable[[int, int], None] | None = None) -> list[Row]:
    """The summaries of the named theorems, in the order given.

    Each theorem of several runs in a worker process of its own (``jobs``
    at a time), so that it starts from a fresh Z3: the model Z3 finds, and
    hence a counterexample's steps, depends on the terms made before it in
    the same process, and would otherwise depend on which theorems a worker
    happened to run first.  ``done_one(done, total)`` is called as each
    theorem finishes (for a progress line)."""
    if len(names) <= 1:
        return [_run_one(n) for n in names]
    # Deepest searches first, so the longest one does not start last.
    depth = {t.name: t.depth for t in catalogue()}
    order = sorted(names, key=lambda n: -depth.get(n, 0))
    # forkserver, not fork: the caller (a test run, say) may have threads,
    # and forking a threaded process can deadlock the child.  The server
    # imports the proofs once; each worker is forked from it.
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["proofs.theorems"])
    done: dict[str, Row] = {}
    with ctx.Pool(min(max(jobs, 1), len(names)), maxtasksperchild=1) as pool:
        for row in pool.imap_unordered(_run_one, order, chunksize=1):
            done[str(row["theorem"])] = row
            if done_one is not None:
                done_one(len(done), len(order))
    return [done[n] for n in names]


def failed(row: Row) -> bool:
    """An outcome that fails the run: unknown, or not the one declared."""
    return row["outcome"] == UNKNOWN or not row["as_expected"]


def table(rows: list[Row]) -> str:
    """The people's table: one line per theorem."""
    head = ["theorem", "protocol", "property", "scope", "outcome", "seconds"]
    body = [[str(r["theorem"]), str(r["protocol"]), str(r["property"]), str(r["scope"]),
             str(r["outcome"]) + ("" if not failed(r) else f"  (EXPECTED {r['expected']})"), f"{r['seconds']:.2f}"]
            for r in rows]
    widths = [max(len(x[c]) for x in [head, *body]) for c in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(x, widths)).rstrip() for x in [head, *body]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def details(rows: list[Row]) -> str:
    """Each counterexample as a step table, and every failed check."""
    out = []
    for r in rows:
        cex = r.get("counterexample")
        if isinstance(cex, dict):
            out.append(f"\n{r['theorem']}: {cex['violation']}")
            if r.get("counterexample_to_induction"):
                out.append(f"  induction fails: {r['counterexample_to_induction']}")
            out.append(str(cex["table"]))
        if failed(r):
            checks = r["checks"]
            assert isinstance(checks, list)
            bad = [c for c in checks if c["answer"] != c["expect"]]
            out.append(f"\n{r['theorem']}: FAILED ({r['note']}) " + "; ".join(f"{c['check']}: {c['answer']}" for c in bad))
    return "\n".join(out)


def main(argv: list[str]) -> int:
    """Entry point of ``idemwrite prove``; returns the exit status."""
    ap = argparse.ArgumentParser(prog="idemwrite prove", description="Prove or refute the Z3 theorems.")
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    ap.add_argument("--theorem", action="append", default=[], metavar="NAME", help="run only this theorem (repeatable)")
    ap.add_argument("--list", action="store_true", help="list the theorem names and exit")
    ap.add_argument("--traces", action="store_true", help="also print each counterexample step by step")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="worker processes (default: CPUs)")
    # A leading "--" (how a caller's argparse REMAINDER passes options on).
    args = ap.parse_args(argv[1:] if argv[:1] == ["--"] else argv)
    names = [t.name for t in catalogue()]
    if args.list:
        print("\n".join(names))
        return 0
    for n in args.theorem:
        if n not in names:
            print(f"idemwrite prove: unknown theorem {n!r}; see --list", file=sys.stderr)
            return 2
    from idemwrite.progress import Progress

    started = time.perf_counter()
    progress = Progress(enabled=not args.json)
    try:
        rows = run_all(args.theorem or names, args.jobs,
                       lambda k, n: progress.show(f"proving: {k} of {n} theorems done", force=True))
    finally:
        progress.done()
    wall = time.perf_counter() - started
    bad = [r for r in rows if failed(r)]
    if args.json:
        print(json.dumps({"theorems": rows, "seconds": round(wall, 3), "ok": not bad}, indent=2))
    else:
        print(table(rows))
        if args.traces or bad:
            print(details(rows if args.traces else bad))
        print(f"\n{len(rows) - len(bad)} of {len(rows)} as declared, {wall:.1f} s")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
