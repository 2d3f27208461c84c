"""State counts and times: the explorer beside SPIN, on the same systems.

Each row is one bounded system (protocol, N writers, R readers, L, F),
explored completely (no property, so no search stops early):

- explorer, reduced:   ``spec.explore.explore`` with its symmetry reduction;
- explorer, unreduced: the same with ``symmetry=False`` (it still renumbers
  and collects inodes, so it is not a raw count either);
- SPIN, POR:           pan with its partial-order reduction (the default);
- SPIN, full:          pan built with ``-DNOREDUCE``: every interleaving;
- lifted:              where it applies, the explorer's unreduced count
  lifted to SPIN's encoding (``model_tests.test_spin.lifted_states``): it
  must equal SPIN's full count exactly.

SPIN's partial-order reduction finds nothing to reduce here: every
transition reads or writes a global (the file, ``status``, ``began``), so
none is "safe" in SPIN's static sense, and its two counts coincide.

SPIN's model (``model_tests.promela``) keeps a fixed inode slot per creating
open and never collects an inode, and knows nothing of symmetry, so its
counts are those of a plainer encoding of the same system; they are here to
show what each reduction buys, not to match.  Times are medians of
``--runs`` runs: the explorer's search, and pan's search alone (building
pan, ``spin -a`` + ``gcc -O2``, is shown once per row as ``build s``).

    .venv/bin/python -m bench.bench_spin [--runs 3]

Without ``spin`` or ``gcc`` on PATH, only the explorer's columns are shown.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from bench import median_seconds
from model_tests.promela import from_setup
from model_tests.test_spin import PAN_DEPTH, lifted_states, run_spin, spin_missing
from spec.explore import Exploration, Setup, explore

ROWS: tuple[Setup, ...] = (
    Setup(("write-file",), writers=3, readers=1, faults=0, entry_length=2),
    Setup(("go-index-entry",), writers=2, readers=1, faults=1, entry_length=2),
    Setup(("write-then-truncate",), writers=3, readers=1, faults=0, entry_length=2),
    Setup(("write-then-truncate",), writers=3, readers=1, faults=1, entry_length=2),
    Setup(("rename-into-place",), writers=3, readers=1, faults=1, entry_length=2),
    Setup(("rename-into-place-fsync",), writers=2, readers=1, faults=1, entry_length=2, crashes=1),
    # The yardstick shape (no readers, L=4), at N where SPIN still fits.
    Setup(("write-then-truncate",), writers=4, readers=0, faults=0, entry_length=4),
    Setup(("write-then-truncate",), writers=5, readers=0, faults=0, entry_length=4),
)


def _label(s: Setup) -> str:
    crash = " C=1" if s.crashes else ""
    return f"{'+'.join(s.protocols)} N={s.writers} R={s.readers} L={s.entry_length} F={s.faults}{crash}"


def _lifts(setup: Setup) -> bool:
    """Whether ``lifted_states`` predicts SPIN's exact count (see its doc)."""
    return setup.faults == 0 and setup.protocols[0] in ("write-then-truncate", "go-index-entry") and len(setup.protocols) == 1


def _explorer(setup: Setup, runs: int, symmetry: bool) -> tuple[float, Exploration]:
    seconds, result = median_seconds(lambda: explore(setup, [], stop_when_all_violated=False, symmetry=symmetry), runs)
    assert isinstance(result, Exploration)
    return seconds, result


def _spin(setup: Setup, runs: int, reduce: bool, workdir: Path) -> tuple[float, float, int]:
    """(median pan seconds, build seconds, states stored) for the whole space."""
    first = run_spin(from_setup(setup, []), workdir, reduce=reduce)  # no assertion: the whole space
    pans = [first.pan_seconds]
    for _ in range(runs - 1):
        # Building is not what is timed: re-run the same pan binary.
        t = time.perf_counter()
        subprocess.run(["./pan", f"-m{PAN_DEPTH}", "-w20"], cwd=workdir, capture_output=True, check=False, timeout=600)
        pans.append(time.perf_counter() - t)
    return statistics.median(pans), first.seconds - first.pan_seconds, first.states


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args(argv or [])
    why = spin_missing()
    if why:
        print(f"SPIN columns skipped: {why}")
    head = f"{'system':<46} {'expl red':>9} {'s':>6} {'expl unred':>11} {'s':>6} {'lifted':>8}"
    if not why:
        head += f" {'SPIN POR':>9} {'s':>6} {'SPIN full':>10} {'s':>6} {'build s':>8}"
    print(head)
    for setup in ROWS:
        t_red, red = _explorer(setup, args.runs, True)
        t_un, unred = _explorer(setup, args.runs, False)
        lifted = f"{lifted_states(unred, setup.writers):,}" if _lifts(setup) else "-"
        line = f"{_label(setup):<46} {red.states:>9,} {t_red:>6.2f} {unred.states:>11,} {t_un:>6.2f} {lifted:>8}"
        if not why:
            with tempfile.TemporaryDirectory() as d1, tempfile.TemporaryDirectory() as d2:
                t_por, build, n_por = _spin(setup, args.runs, True, Path(d1))
                t_full, _, n_full = _spin(setup, args.runs, False, Path(d2))
            line += f" {n_por:>9,} {t_por:>6.2f} {n_full:>10,} {t_full:>6.2f} {build:>8.2f}"
        print(line, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
