"""State counts and times: the explorer beside SPIN, on the same systems.

Each row is one bounded system (protocol, N writers, R readers, L, F),
explored completely (no property, so no search stops early):

- explorer, reduced:   ``spec.explore.explore`` with its symmetry reduction;
- explorer, unreduced: the same with ``symmetry=False`` (it still renumbers
  and collects inodes, so it is not a raw count either);
- SPIN, POR:           pan with its partial-order reduction (the default);
- SPIN, full:          pan built with ``-DNOREDUCE``: every interleaving;
- lifted:              where it applies, the explorer's unreduced count
  lifted to SPIN's encoding (``proofs.promela.lifted_states``): it
  must equal SPIN's full count exactly.

SPIN's partial-order reduction finds nothing to reduce here: every
transition reads or writes a global (the file, ``status``, ``began``), so
none is "safe" in SPIN's static sense, and its two counts coincide.

SPIN's model (``proofs.promela``) keeps a fixed inode slot per creating
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
import tempfile
import time
from pathlib import Path

from bench import median_seconds
from proofs.promela import lifted_states, translate
from proofs.spin import pan, run_spin, spin_missing
from spec import CATALOGUE, Exploration, System, explore
from spec.ops import Role
from spec.programs import GO_INDEX_ENTRY, WRITE_THEN_TRUNCATE


def _row(name: str, n: int, readers: int, faults: int, length: int, crashes: int = 0) -> System:
    return System.of(CATALOGUE[name], n, readers=readers, faults=faults, entry_length=length, crashes=crashes)


ROWS: tuple[System, ...] = (
    _row("write-file", 3, 1, 0, 2),
    _row("go-index-entry", 2, 1, 1, 2),
    _row("write-then-truncate", 3, 1, 0, 2),
    _row("write-then-truncate", 3, 1, 1, 2),
    _row("rename-into-place", 3, 1, 1, 2),
    _row("rename-into-place-fsync", 2, 1, 1, 2, crashes=1),
    # The yardstick shape (no readers, L=4), at N where SPIN still fits.
    _row("write-then-truncate", 4, 0, 0, 4),
    _row("write-then-truncate", 5, 0, 0, 4),
)


def _label(s: System) -> str:
    crash = " C=1" if s.crashes else ""
    return (f"{'+'.join(p.name for p in s.writer_programs())} N={s.count(Role.WRITER)} R={s.count(Role.READER)} "
            f"L={s.entry_length()} F={s.faults}{crash}")


def _lifts(system: System) -> bool:
    """Whether ``lifted_states`` predicts SPIN's exact count (see its doc)."""
    return system.faults == 0 and system.writer_programs() in ((WRITE_THEN_TRUNCATE,), (GO_INDEX_ENTRY,))


def _explorer(system: System, runs: int, symmetry: bool) -> tuple[float, Exploration]:
    seconds, result = median_seconds(lambda: explore(system, [], stop_when_all_violated=False, symmetry=symmetry), runs)
    assert isinstance(result, Exploration)
    return seconds, result


def _spin(system: System, runs: int, reduce: bool, workdir: Path) -> tuple[float, float, int]:
    """(median pan seconds, build seconds, states stored) for the whole space."""
    first = run_spin(translate(system, []), workdir, reduce=reduce)  # no assertion: the whole space
    pans = [first.pan_seconds]
    for _ in range(runs - 1):
        # Building is not what is timed: re-run the same pan binary.
        t = time.perf_counter()
        pan(workdir)
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
    for system in ROWS:
        t_red, red = _explorer(system, args.runs, True)
        t_un, unred = _explorer(system, args.runs, False)
        lifted = f"{lifted_states(unred):,}" if _lifts(system) else "-"
        line = f"{_label(system):<46} {red.states:>9,} {t_red:>6.2f} {unred.states:>11,} {t_un:>6.2f} {lifted:>8}"
        if not why:
            with tempfile.TemporaryDirectory() as d1, tempfile.TemporaryDirectory() as d2:
                t_por, build, n_por = _spin(system, args.runs, True, Path(d1))
                t_full, _, n_full = _spin(system, args.runs, False, Path(d2))
            line += f" {n_por:>9,} {t_por:>6.2f} {n_full:>10,} {t_full:>6.2f} {build:>8.2f}"
        print(line, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
