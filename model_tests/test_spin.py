"""SPIN against the explorer: the same bounded systems, two model checkers.

Each case translates a System - catalogue protocols with their reader, or
a protocol defined in the test - into Promela with ``proofs.promela``, has
SPIN build a verifier (``spin -a``, ``gcc -DSAFETY``) and search every
interleaving (``proofs.spin``), and asserts:

- the verdicts agree: SPIN's "errors: 1" from an assertion is ``violated``,
  "errors: 0" from a complete search is ``holds``; anything else (a deadlock,
  an index out of range, a cut-off search) is ``unknown``, never a pass;
- a violation is found at the same least depth: pan searching breadth first
  without partial-order reduction finds the shortest counterexample, which
  must be exactly as long as the explorer's (it checks the step semantics:
  local control flow and ``chtimes`` take no step, a write a step per byte);
- where the encodings can be matched (``proofs.promela.lifted_states``),
  SPIN stores exactly as many states as the explorer finds without
  symmetry reduction.

Both checkers run the operations of ``spec.semantics``; what SPIN checks
independently is the rest: the model's value domain (its file system and
process state, ``spec.machine.PyDom``), the explorer's search and its
reductions.  The cases include the known-bad twins each checker must catch
(``write-file`` without faults, ``go-index-entry`` with one fault,
``rename-into-place`` across a power loss) beside protocols that keep their
promises (``write-then-truncate`` with a fault, ``rename-into-place-fsync``),
and an explorer with a planted bug that SPIN must contradict.

Skipped, with the reason, where ``spin`` or ``gcc`` is not on PATH.  Every
verifier is built and run in a pytest tmp dir (nothing lands in the repo).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from proofs.promela import TranslationError, explorer_depth, lifted_states, translate
from proofs.spin import SpinRun, run_spin, spin_missing
from spec import CATALOGUE, Process, Property, SetupError, System, UnknownProperty, explore
from spec.machine import PyDom
from spec.ops import (ENTRY, O_CREAT, O_WRONLY, Chtimes, Close, Data, Failed, Ftruncate, If, Label, Length, Open, Outcome, Program, Return,
                      Role, Write)
from spec.properties import HITS, INDEX_OUTPUT, NO_CORRUPT, NO_SIGBUS, STAYS, SURVIVES


def process_steps(run: SpinRun, system: System) -> int | None:
    """The violation's depth in the explorer's units (None: no violation)."""
    return None if run.error_depth is None else explorer_depth(system, run.error_depth)


# ------------------------------------------------------------ the cases
# Small bounds: R=1 go-read-entry (or the protocol's own reader), L=2.


@dataclass(frozen=True)
class Case:
    """One cross-check: a mix of writers, N, the reader, F, a property."""

    protocols: tuple[str, ...]
    writers: int
    faults: int
    prop: Property
    reader: str = ""

    def system(self) -> System:
        reader = CATALOGUE[self.reader].program if self.reader else CATALOGUE[self.protocols[0]].reader
        crashes = 1 if self.prop == SURVIVES else 0  # the crash property needs a power loss
        return System.of([CATALOGUE[p] for p in self.protocols], self.writers, readers=1, reader=reader,
                         faults=self.faults, entry_length=2, crashes=crashes)

    def declared(self) -> str | None:
        """What the catalogue declares (single protocols with their own reader)."""
        claim = CATALOGUE[self.protocols[0]].claim(self.prop)
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


def assert_spin_agrees(system: System, prop: Property, workdir: Path) -> str:
    """SPIN (breadth first, every interleaving) and the explorer give the
    same verdict, and a violation at the same least depth; the verdict."""
    ours = explore(system, [prop])
    spin = run_spin(translate(system, [prop]), workdir, reduce=False, bfs=True, opt="-O0")
    assert spin.verdict == ours.verdict(prop), f"SPIN says {spin.verdict}, the explorer {ours.verdict(prop)}:\n{spin.output}"
    if prop.name in ours.violations:
        assert process_steps(spin, system) == ours.violations[prop.name].depth
    return ours.verdict(prop)


@needs_spin
@pytest.mark.parametrize("case", CASES, ids=str)
def test_spin_agrees_with_the_explorer(case: Case, tmp_path: Path) -> None:
    """Same verdict, and a violation at the same least depth: pan searches
    breadth first with every interleaving (no partial-order reduction)."""
    verdict = assert_spin_agrees(case.system(), case.prop, tmp_path)
    # And both say what the catalogue declares (so the known-bad twins are caught).
    if case.declared() is not None:
        assert verdict == case.declared()


HEADLINE = [Case(("write-file",), 2, 0, STAYS), Case(("go-index-entry",), 2, 1, STAYS), Case(("write-then-truncate",), 3, 1, STAYS)]


@needs_spin
@pytest.mark.parametrize("case", HEADLINE, ids=str)
def test_spins_default_search_agrees(case: Case, tmp_path: Path) -> None:
    """SPIN's usual verifier (depth first, with partial-order reduction)
    gives the same verdicts on the headline cases.  Built at -O0: gcc -O2
    takes seconds on pan.c, pan's search here takes milliseconds
    (``bench.bench_spin`` builds at -O2)."""
    system = case.system()
    spin = run_spin(translate(system, [case.prop]), tmp_path, opt="-O0")
    assert spin.verdict == explore(system, [case.prop]).verdict(case.prop) == case.declared()


@needs_spin
@pytest.mark.parametrize("system", [
    System.of(CATALOGUE["write-then-truncate"], 3, readers=1, entry_length=2),
    System.of(CATALOGUE["go-index-entry"], 2, readers=2, entry_length=2),
], ids=lambda s: f"{s.writer_programs()[0].name}/N{s.count(Role.WRITER)}/R{s.count(Role.READER)}")
def test_spin_stores_the_explorers_state_space(system: System, tmp_path: Path) -> None:
    """Not just the same verdicts: the same reachable states.  SPIN's full
    count equals the explorer's unreduced count, lifted by the one thing the
    encodings differ in (which slot holds the inode)."""
    assert system.faults == 0
    ours = explore(system, [], stop_when_all_violated=False, symmetry=False)
    spin = run_spin(translate(system, []), tmp_path, reduce=False, opt="-O0")
    assert spin.errors == 0 and spin.complete
    assert spin.states == lifted_states(ours)


@needs_spin
def test_the_cross_check_catches_an_explorer_bug(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The cross-check's own known-bad twin: an explorer whose file system
    forgets to truncate (so O_TRUNC does nothing) finds write-file safe;
    SPIN, which shares no file-system code with it, still finds the
    violation, so the two disagree."""
    monkeypatch.setattr(PyDom, "resize", lambda self, ino, n: None)
    system = Case(("write-file",), 2, 0, STAYS).system()
    assert explore(system, [STAYS]).verdict(STAYS) == "holds"  # the planted bug
    assert run_spin(translate(system, [STAYS]), tmp_path, opt="-O0").verdict == "violated"


def test_the_known_bad_cases_are_among_the_cases() -> None:
    """The checker is shown to catch bad protocols, not only to pass good ones."""
    bad = {str(c) for c in CASES if c.declared() == "violated"}
    assert f"write-file/N2/F0/{STAYS}" in bad and f"go-index-entry/N2/F1/{STAYS}" in bad
    assert f"write-then-truncate/N3/F1/{STAYS}" in {str(c) for c in CASES if c.declared() == "holds"}


# ------------------------------------------------------------ a protocol of the test's own

PAYLOAD = (("entry", b"ab"),)
# Truncates to 0 before writing, as ioutil.WriteFile's O_TRUNC does: a
# second writer empties a published entry.  Not in any catalogue.
TRUNCATE_FIRST = Program("truncate-first", Role.WRITER, (
    Open(ENTRY, O_WRONLY | O_CREAT), If(Failed(), "fail"),
    Ftruncate(Length(None, 0)), If(Failed(), "fail"), Write(Data("entry")), If(Failed(), "fail"), Close(), Return(Outcome.OK),
    Label("fail"), Return(Outcome.FAIL),
), publishes=((ENTRY, "entry"),))
# Its correct twin: truncate only after writing.
TRUNCATE_AFTER = Program("truncate-after", Role.WRITER, (
    Open(ENTRY, O_WRONLY | O_CREAT), If(Failed(), "fail"),
    Write(Data("entry")), If(Failed(), "fail"), Ftruncate(Length("entry")), If(Failed(), "fail"), Close(), Return(Outcome.OK),
    Label("fail"), Return(Outcome.FAIL),
), publishes=((ENTRY, "entry"),))
# Writes to a descriptor it has closed: the write is refused (EBADF) before
# its first byte, which ends the step and runs the branch after it - here
# into publishing an empty entry.
WRITE_AFTER_CLOSE = Program("write-after-close", Role.WRITER, (
    Open(ENTRY, O_WRONLY | O_CREAT), If(Failed(), "fail"), Close(),
    Write(Data("entry")), If(Failed(), "ok"), Label("fail"), Return(Outcome.FAIL),
    Label("ok"), Return(Outcome.OK),
), publishes=((ENTRY, "entry"),))
# Claims success before any operation (chtimes is local: it takes no step),
# so the initial state already breaks the promise.
CLAIMS_AT_ONCE = Program("claims-at-once", Role.WRITER, (
    Chtimes(ENTRY), If(Failed(), "ok"), Return(Outcome.FAIL), Label("ok"), Return(Outcome.OK),
), publishes=((ENTRY, "entry"),))


@needs_spin
@pytest.mark.parametrize("granularity", ["byte", "write"])
@pytest.mark.parametrize("program, faults, expected", [
    (TRUNCATE_FIRST, 1, "violated"), (TRUNCATE_AFTER, 1, "holds"),
    # No fault: an injected one would also end the write's step.
    (WRITE_AFTER_CLOSE, 0, "violated"),
    (CLAIMS_AT_ONCE, 0, "violated"),
], ids=lambda x: str(getattr(x, "name", x)))
def test_spin_checks_a_protocol_defined_here(program: Program, faults: int, expected: str, granularity: str, tmp_path: Path) -> None:
    """Any System is translated, not only the catalogue's: a protocol value
    made here, never registered, at both granularities."""
    system = System((Process(program, PAYLOAD), Process(program, PAYLOAD)), faults=faults, granularity=granularity)
    assert assert_spin_agrees(system, STAYS, tmp_path) == expected


# ------------------------------------------------------------ the translator alone (no SPIN needed)


def test_translation_is_deterministic_and_generic() -> None:
    """The same system gives the same text; every operation (and each of its
    faults) is one d_step of its program's proctype."""
    system = System.of(CATALOGUE["go-index-entry"], 2, readers=1, faults=1, entry_length=2)
    text = translate(system, [STAYS, HITS])
    assert text == translate(system, [STAYS.name, HITS.name])
    assert "proctype P_go_index_entry(" in text and "proctype P_go_read_entry(" in text
    # go-index-entry: open, write, ftruncate, close, close, unlink (6 ops; 5 faultable)
    # go-read-entry: open, read, close (3 ops; close faultable).
    assert text.count("d_step {") == (6 + 5) + (3 + 1)


def test_what_is_not_translated_is_refused() -> None:
    # A second power loss is not even a System (it is refused before translation).
    with pytest.raises(SetupError, match="crashes must be 0 or 1"):
        System((Process(CATALOGUE["write-file"].program, PAYLOAD),), crashes=2)
    with pytest.raises(TranslationError, match="not translated"):
        translate(System.of(CATALOGUE["write-file"], 1, readers=0), [Property("entry-is-pretty", lambda s, w: None)])
    with pytest.raises(UnknownProperty):
        translate(System.of(CATALOGUE["write-file"], 1, readers=0), ["entry-is-pretty"])
    loop = Program("spin-loop", Role.WRITER, (Label("top"), Open(ENTRY, O_WRONLY | O_CREAT), If(Failed(), "top"), Return(Outcome.OK)))
    with pytest.raises(TranslationError, match="backward jump"):
        translate(System((Process(loop, PAYLOAD),)), [STAYS])
    # Offsets and sizes are bytes: 5 writers of 26 bytes written and truncated to reach 260.
    with pytest.raises(TranslationError, match="do not fit"):
        translate(System.of(CATALOGUE["write-then-truncate"], 5, readers=0, entry_length=26), [STAYS])
