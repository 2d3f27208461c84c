"""The explorer's speed on the issue's yardstick, against a hand-written probe.

Instance: ``write-then-truncate``, byte granularity, L=4, no readers, no
faults, N=8 and N=16 writers.  Target: N=16 in <= 3 s (it took 10-15 s
before the explorer interned its states; N=8 <= 5 s and N=16 <= 30 s were
the first targets).

Baseline, run in the same process: a minimal hand-written counting
abstraction of the same instance (writers counted per local state, the file
size beside them), the kind of probe the issue quotes (6,435 states for N=8,
245,157 for N=16).  The general explorer must find the same number of states
(its symmetry reduction is as strong as counting) and the ratio of the times
says what its generality costs.

    python -m bench.bench_explore [--runs 3]
"""

from __future__ import annotations

import argparse
import sys

from bench import median_seconds
from spec import CATALOGUE, Exploration, System, explore

L = 4
# Local states of one writer: 0 before open, 1+k after k bytes written
# (k = 0..L), then L+2 truncated, L+3 closed (done).
DONE = L + 3


def probe(n: int) -> int:
    """Breadth-first search over (writers per local state, file size)."""
    start = ((n,) + (0,) * DONE, -1)
    seen = {start}
    frontier = [start]
    while frontier:
        nxt = []
        for counts, size in frontier:
            for s in range(DONE):
                if counts[s] == 0:
                    continue
                if s == 0:
                    new_size = max(size, 0)  # open(O_CREAT) creates it empty
                elif s <= L:
                    new_size = max(size, s)  # byte s-1 lands at offset s-1
                elif s == L + 1:
                    new_size = L  # ftruncate(L): the file is already >= L
                else:
                    new_size = size  # close
                c = list(counts)
                c[s] -= 1
                c[s + 1] += 1
                succ = (tuple(c), new_size)
                if succ not in seen:
                    seen.add(succ)
                    nxt.append(succ)
        frontier = nxt
    return len(seen)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="The explorer's speed against a hand-written counting probe.")
    ap.add_argument("--runs", type=int, default=3, help="runs per figure; the median is reported (default 3)")
    ap.add_argument("--n", type=int, action="append", help="writers; repeatable (default: 8 and 16)")
    args = ap.parse_args(sys.argv[1:] if argv is None else argv)
    print(f"{'N':>3} {'explorer states':>16} {'probe states':>13} {'explorer s':>11} {'states/s':>9} {'probe s':>8} {'ratio':>6} {'target s':>9}")
    for n in args.n or [8, 16]:
        system = System.of(CATALOGUE["write-then-truncate"], n, 0, entry_length=L)
        t_exp, ex = median_seconds(lambda: explore(system, stop_when_all_violated=False), args.runs)
        t_probe, states = median_seconds(lambda: probe(n), args.runs)
        assert isinstance(ex, Exploration)
        target = 3.0 if n == 16 else 5.0
        print(f"{n:>3} {ex.states:>16,} {states:>13,} {t_exp:>11.2f} {ex.states / t_exp:>9,.0f} {t_probe:>8.2f} "
              f"{t_exp / t_probe:>6.1f} {target:>9.0f}  {'ok' if t_exp <= target else 'OVER TARGET'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
