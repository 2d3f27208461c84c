"""SPIN against the explorer: the same bounded systems, two model checkers.

Each case translates a catalogue protocol (with its reader) into Promela
with ``model_tests.promela``, has SPIN build a verifier (``spin -a``,
``gcc -DSAFETY``) and search every interleaving, and asserts:

- the verdicts agree: SPIN's "errors: 1" from an assertion is ``violated``,
  "errors: 0" from a complete search is ``holds``; anything else (a deadlock,
  an index out of range, a cut-off search) is ``unknown``, never a pass;
- a violation is found at the same least depth: pan searching breadth first
  without partial-order reduction finds the shortest counterexample, which
  must be exactly as long as the explorer's (it checks the step semantics:
  local control flow and ``chtimes`` take no step, a write a step per byte);
- where the encodings can be matched (see ``lifted_states``), SPIN stores
  exactly as many states as the explorer finds without symmetry reduction.

The cases include the known-bad twins each checker must catch
(``write-file`` without faults, ``go-index-entry`` with one fault,
``rename-into-place`` across a power loss) beside protocols that keep their
promises (``write-then-truncate`` with a fault, ``rename-into-place-fsync``).

Skipped, with the reason, where ``spin`` or ``gcc`` is not on PATH.  Every
verifier is built and run in a pytest tmp dir (nothing lands in the repo).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

try:  # ``python -m pytest`` and ``python -m bench.bench_spin``: the repository root is on sys.path
    from model_tests.promela import Instance, TranslationError, from_setup, translate
except ModuleNotFoundError:  # the bare ``pytest`` script puts only model_tests/ itself on sys.path
    from promela import Instance, TranslationError, from_setup, translate  # type: ignore[no-redef, import-not-found]
from spec.explore import Exploration, Setup, explore
from spec import machine
from spec.ops import ENTRY, O_CREAT, O_WRONLY, Failed, If, Label, Open, OpenFlags, Outcome, Program, Return, Role
from spec.protocols import HITS, INDEX_OUTPUT, NO_CORRUPT, NO_SIGBUS, STAYS, SURVIVES, protocol

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


def run_spin(model: str, workdir: Path, *, reduce: bool = True, bfs: bool = False, opt: str = "-O2") -> SpinRun:
    """Build and run SPIN's safety verifier for ``model`` in ``workdir``.

    ``reduce`` keeps SPIN's partial-order reduction; without it
    (``-DNOREDUCE``) pan stores every interleaving's state.  ``bfs``
    searches breadth first (``-DBFS``), so a violation is found at the
    least depth, as the explorer finds it.  ``opt`` is gcc's optimisation
    level: ``-O2`` for timing pan, ``-O0`` where the compile dominates (it
    is about 5x faster to build, and pan's answer does not depend on it)."""
    started = time.perf_counter()
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "model.pml").write_text(model)
    _run(["spin", "-a", "model.pml"], workdir)
    flags = ["-DSAFETY", *([] if reduce else ["-DNOREDUCE"]), *(["-DBFS"] if bfs else [])]
    _run(["gcc", opt, *flags, "-o", "pan", "pan.c"], workdir)
    pan_started = time.perf_counter()
    # -w20: a 1 Mi-slot hash table is plenty for these models and quick to allocate.
    out = _run(["./pan", f"-m{PAN_DEPTH}", "-w20"], workdir)
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
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=300)
    if proc.returncode != 0 and cmd[0] != "./pan":  # pan exits 0 even on errors; spin and gcc must not fail
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout + proc.stderr


def _number(pattern: str, text: str) -> int:
    m = re.search(pattern, text)
    if m is None:
        raise RuntimeError(f"pan output has no {pattern!r}:\n{text}")
    return int(m.group(1))


def process_steps(run: SpinRun, setup: Setup) -> int | None:
    """The violation's depth in the explorer's units: pan numbers depths from
    0 and counts init's ``run`` statements (one per process, and one for the
    crash process) as steps."""
    return None if run.error_depth is None else run.error_depth + 1 - Instance.from_setup(setup).runs


# ------------------------------------------------------------ the cases
# Small bounds: R=1 go-read-entry (or the protocol's own reader), L=2.


@dataclass(frozen=True)
class Case:
    """One cross-check: a mix of writers, N, the reader, F, a property."""

    protocols: tuple[str, ...]
    writers: int
    faults: int
    prop: str
    reader: str = ""

    def setup(self) -> Setup:
        reader = self.reader or protocol(self.protocols[0]).reader
        crashes = 1 if self.prop == SURVIVES else 0  # the crash property needs a power loss
        return Setup(self.protocols, writers=self.writers, readers=1, reader=reader, faults=self.faults, entry_length=2, crashes=crashes)

    def declared(self) -> str | None:
        """What the catalogue declares (single protocols with their own reader)."""
        claim = protocol(self.protocols[0]).claim(self.prop)
        if len(self.protocols) > 1 or self.reader or claim is None:
            return None
        return claim.expected(self.faults)

    def __str__(self) -> str:
        reader = f"+{self.reader}" if self.reader else ""
        return f"{'+'.join(self.protocols)}{reader}/N{self.writers}/F{self.faults}/{self.prop}"


CASES: list[Case] = [
    Case((name,), n, f, prop)
    for name, n in (("write-file", 2), ("go-index-entry", 2), ("write-then-truncate", 3), ("create-exclusive", 2), ("rename-into-place", 2))
    for f in (0, 1)
    for prop in (STAYS, HITS)
] + [
    # The other properties' known-bad twins and one keeper each, and a mix.
    Case(("write-file",), 2, 0, NO_CORRUPT, reader="read-unvalidated"),
    Case(("write-then-truncate",), 2, 1, NO_CORRUPT),
    Case(("write-file",), 2, 0, NO_SIGBUS, reader="mmap-read"),
    Case(("go-index-entry",), 2, 1, NO_SIGBUS, reader="mmap-read"),
    Case(("go-put",), 2, 1, INDEX_OUTPUT),
    Case(("write-file", "go-index-entry"), 2, 0, STAYS),
    # Durability: without fsync the renamed name can outlive its data; with it, not.
    Case(("rename-into-place",), 2, 0, SURVIVES),
    Case(("rename-into-place-fsync",), 2, 1, SURVIVES),
]

needs_spin = pytest.mark.skipif(spin_missing() is not None, reason=spin_missing() or "")


@needs_spin
@pytest.mark.parametrize("case", CASES, ids=str)
def test_spin_agrees_with_the_explorer(case: Case, tmp_path: Path) -> None:
    """Same verdict, and a violation at the same least depth: pan searches
    breadth first with every interleaving (no partial-order reduction)."""
    setup = case.setup()
    ours = explore(setup, [case.prop])
    spin = run_spin(from_setup(setup, [case.prop]), tmp_path, reduce=False, bfs=True, opt="-O0")
    assert spin.verdict == ours.verdict(case.prop), f"SPIN says {spin.verdict}, the explorer {ours.verdict(case.prop)}:\n{spin.output}"
    if case.prop in ours.violations:
        assert process_steps(spin, setup) == ours.violations[case.prop].depth
    # And both say what the catalogue declares (so the known-bad twins are caught).
    if case.declared() is not None:
        assert ours.verdict(case.prop) == case.declared()


HEADLINE = [Case(("write-file",), 2, 0, STAYS), Case(("go-index-entry",), 2, 1, STAYS), Case(("write-then-truncate",), 3, 1, STAYS)]


@needs_spin
@pytest.mark.parametrize("case", HEADLINE, ids=str)
def test_spins_default_search_agrees(case: Case, tmp_path: Path) -> None:
    """SPIN's usual verifier (depth first, with partial-order reduction)
    gives the same verdicts on the headline cases.  Built at -O0: gcc -O2
    takes seconds on pan.c, pan's search here takes milliseconds
    (``bench.bench_spin`` builds at -O2)."""
    setup = case.setup()
    spin = run_spin(from_setup(setup, [case.prop]), tmp_path, opt="-O0")
    assert spin.verdict == explore(setup, [case.prop]).verdict(case.prop) == case.declared()


def lifted_states(result: Exploration, writers: int) -> int:
    """The number of states SPIN must store for an unreduced ``result`` of a
    writer whose only effect at open is creating the file (O_CREAT without
    O_TRUNC or O_EXCL, no unlink, no rename: ``write-then-truncate``, and
    ``go-index-entry`` at F=0, where its remove is unreachable).

    The Promela model puts the inode in the slot of the writer that created
    it; the explorer numbers it 0.  For such writers any writer that has
    opened may have been the creator (its open commutes to the front of the
    writers' opens without changing what anyone sees), so each explorer state
    with k >= 1 writers past their open is k SPIN states.  Plus one: pan
    stores init's state before its atomic block of ``run`` statements.
    """
    lifted = 0
    for w in result.parent:
        opened = sum(1 for p in w.procs[:writers] if p.pc > 0 or p.status != "run")
        lifted += max(1, opened)
    return lifted + 1


@needs_spin
@pytest.mark.parametrize("setup", [
    Setup(("write-then-truncate",), writers=3, readers=1, entry_length=2),
    Setup(("go-index-entry",), writers=2, readers=2, entry_length=2),
], ids=lambda s: f"{s.protocols[0]}/N{s.writers}/R{s.readers}")
def test_spin_stores_the_explorers_state_space(setup: Setup, tmp_path: Path) -> None:
    """Not just the same verdicts: the same reachable states.  SPIN's full
    count equals the explorer's unreduced count, lifted by the one thing the
    encodings differ in (which slot holds the inode)."""
    assert setup.faults == 0
    ours = explore(setup, [], stop_when_all_violated=False, symmetry=False)
    spin = run_spin(from_setup(setup, []), tmp_path, reduce=False, opt="-O0")
    assert spin.errors == 0 and spin.complete
    assert spin.states == lifted_states(ours, setup.writers)


@needs_spin
def test_the_cross_check_catches_an_explorer_bug(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The cross-check's own known-bad twin: an explorer whose open forgets
    O_TRUNC finds write-file safe; SPIN, which shares no file-system
    semantics with it, still finds the violation, so the two disagree."""
    real_open = machine.HANDLERS[Open]

    def open_without_trunc(ins: Open, *rest: Any) -> Any:
        return real_open(Open(ins.path, ins.flags & ~OpenFlags.TRUNC, ins.fd), *rest)

    monkeypatch.setitem(machine.HANDLERS, Open, open_without_trunc)
    setup = Case(("write-file",), 2, 0, STAYS).setup()
    assert explore(setup, [STAYS]).verdict(STAYS) == "holds"  # the planted bug
    assert run_spin(from_setup(setup, [STAYS]), tmp_path, opt="-O0").verdict == "violated"


def test_the_known_bad_cases_are_among_the_cases() -> None:
    """The checker is shown to catch bad protocols, not only to pass good ones."""
    bad = {str(c) for c in CASES if c.declared() == "violated"}
    assert "write-file/N2/F0/" + STAYS in bad and "go-index-entry/N2/F1/" + STAYS in bad
    assert "write-then-truncate/N3/F1/" + STAYS in {str(c) for c in CASES if c.declared() == "holds"}


# ------------------------------------------------------------ the translator alone (no SPIN needed)


def test_translation_is_deterministic_and_generic() -> None:
    """The same setup gives the same text; every operation (and each of its
    faults) is one d_step of its program's proctype."""
    setup = Setup(("go-index-entry",), writers=2, readers=1, faults=1, entry_length=2)
    text = from_setup(setup, [STAYS, HITS])
    assert text == from_setup(setup, [STAYS, HITS])
    assert "proctype P_go_index_entry(" in text and "proctype P_go_read_entry(" in text
    # go-index-entry: open, write, ftruncate, close, close, unlink (6 ops; 5 faultable)
    # go-read-entry: open, read, close (3 ops; close faultable).
    assert text.count("d_step {") == (6 + 5) + (3 + 1)


def test_what_is_not_translated_is_refused() -> None:
    with pytest.raises(TranslationError, match="crashes must be 0 or 1"):
        translate(Instance((protocol("write-file").program,), (("entry", b"ab"),), crashes=2), [SURVIVES])
    with pytest.raises(TranslationError, match="not translated"):
        from_setup(Setup(("write-file",), writers=1, readers=0), ["entry-is-pretty"])
    loop = Program("spin-loop", Role.WRITER, (Label("top"), Open(ENTRY, O_WRONLY | O_CREAT), If(Failed(), "top"), Return(Outcome.OK)))
    with pytest.raises(TranslationError, match="backward jump"):
        translate(Instance((loop,), (("entry", b"ab"),)), [STAYS])
