"""Run SPIN on a Promela model (``proofs.promela``) and read its answer.

``spin -a`` writes the verifier's C source, gcc builds it, and ``pan``
searches every interleaving for an assertion violation.  Nothing is
parsed beyond pan's summary lines: errors, states stored, transitions,
the depth reached, and the depth of a violation.  A verdict is
``violated`` only for an assertion (a property) and ``holds`` only for a
complete search without errors; anything else (a deadlock, an index out
of range, a search cut short) is ``unknown``, never a pass.

Needs ``spin`` and ``gcc`` on PATH (:func:`spin_missing` says why not).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

PAN_DEPTH = 100_000  # far beyond any run here (a few dozen steps per process)


@dataclass(frozen=True)
class SpinRun:
    """What one pan run reported."""

    errors: int
    assertion: bool  # the error is an assertion, i.e. a property violation
    complete: bool  # the search was not cut short by the depth bound
    states: int  # states stored
    transitions: int
    depth: int
    error_depth: int | None  # pan's depth of the violating state (0-based), if any
    seconds: float  # spin -a + gcc + pan, wall time
    pan_seconds: float  # pan alone
    output: str

    @property
    def verdict(self) -> str:
        """``violated``, ``holds``, or ``unknown`` (a non-assertion error or
        an incomplete search: a translation bug, never a pass)."""
        if self.errors and self.assertion:
            return "violated"
        if self.errors == 0 and self.complete:
            return "holds"
        return "unknown"


def spin_missing() -> str | None:
    """Why SPIN cannot run here, or None."""
    missing = [tool for tool in ("spin", "gcc") if shutil.which(tool) is None]
    return f"{' and '.join(missing)} not on PATH (apt-get install spin gcc)" if missing else None


def build(model: str, workdir: Path, *, reduce: bool = True, bfs: bool = False, opt: str = "-O2") -> None:
    """Write ``model`` and build its safety verifier ``pan`` in ``workdir``.

    ``reduce`` keeps SPIN's partial-order reduction; without it
    (``-DNOREDUCE``) pan stores every interleaving's state.  ``bfs``
    searches breadth first (``-DBFS``), so a violation is found at the
    least depth, as the explorer finds it.  ``opt`` is gcc's optimisation
    level: ``-O2`` for timing pan, ``-O0`` where the compile dominates (it
    is about 5x faster to build, and pan's answer does not depend on it)."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "model.pml").write_text(model)
    _run(["spin", "-a", "model.pml"], workdir)
    flags = ["-DSAFETY", *([] if reduce else ["-DNOREDUCE"]), *(["-DBFS"] if bfs else [])]
    _run(["gcc", opt, *flags, "-o", "pan", "pan.c"], workdir)


def pan(workdir: Path) -> str:
    """Run the verifier built in ``workdir``; its output."""
    # -w20: a 1 Mi-slot hash table is plenty for these models and quick to allocate.
    return _run(["./pan", f"-m{PAN_DEPTH}", "-w20"], workdir)


def run_spin(model: str, workdir: Path, *, reduce: bool = True, bfs: bool = False, opt: str = "-O2") -> SpinRun:
    """Build (:func:`build`) and run SPIN's safety verifier for ``model`` in ``workdir``."""
    started = time.perf_counter()
    build(model, workdir, reduce=reduce, bfs=bfs, opt=opt)
    pan_started = time.perf_counter()
    out = pan(workdir)
    done = time.perf_counter()
    return SpinRun(
        errors=_number(r"errors: (\d+)", out),
        assertion="assertion violated" in out,
        complete="max search depth too small" not in out,
        states=_number(r"(\d+) states, stored", out),
        transitions=_number(r"(\d+) transitions", out),
        depth=_number(r"depth reached (\d+)", out),
        error_depth=int(m.group(1)) if (m := re.search(r"violated .* \(at depth (\d+)\)", out)) else None,
        seconds=done - started,
        pan_seconds=done - pan_started,
        output=out,
    )


def _run(cmd: list[str], cwd: Path) -> str:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0 and cmd[0] != "./pan":  # pan exits 0 even on errors; spin and gcc must not fail
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout + proc.stderr


def _number(pattern: str, text: str) -> int:
    m = re.search(pattern, text)
    if m is None:
        raise RuntimeError(f"pan output has no {pattern!r}:\n{text}")
    return int(m.group(1))


__all__ = ["PAN_DEPTH", "SpinRun", "build", "pan", "run_spin", "spin_missing"]
