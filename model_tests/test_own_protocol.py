"""A protocol defined here, as a value, goes through every checker.

``truncate-first`` empties the entry before writing it (``ftruncate(f, 0)``
after an open without ``O_TRUNC``: the same race as Go <= 1.12's
``O_TRUNC``, written another way), and claims that a published entry stays
complete, which is false.  ``truncate-last`` writes first and truncates
after, the fix, and claims the same, truly.  Neither is in any catalogue
or registered anywhere: each checker takes the value itself.

The promise: the explorer, bounded model checking with Z3, replay on real
files, the lockstep property test on real files and SPIN each find the
bug, and the correct twin passes every one of them.
"""

from __future__ import annotations

import pathlib

import pytest
from hypothesis import Phase, settings
from hypothesis.stateful import run_state_machine_as_test

from reference.osworld import Snapshot
from spec import CATALOGUE, Program, Protocol, Role, System, explore, from_exploration
from spec.ops import ENTRY, O_CREAT, O_WRONLY, Close, Data, Failed, Ftruncate, If, Instr, Label, Length, Open, Outcome, Return, Write
from spec.properties import STAYS
from spec.protocols import Claim
from spec.trace import trace_to

ERR = Failed()


def _writer(name: str, body: tuple[Instr, ...]) -> Protocol:
    """Open, ``body`` (each step's error closes and fails), close."""
    steps: list[Instr] = [Open(ENTRY, O_WRONLY | O_CREAT), If(ERR, "fail")]
    for ins in body:
        steps += [ins, If(ERR, "close_fail")]
    steps += [Close(), If(ERR, "fail"), Return(Outcome.OK), Label("close_fail"), Close(), Label("fail"),
              Return(Outcome.FAIL)]
    prog = Program(name, Role.WRITER, tuple(steps), publishes=((ENTRY, "entry"),))
    return Protocol(prog, (Claim(STAYS, None, "the entry, once published, stays complete"),))


BUGGY = _writer("truncate-first", (Ftruncate(Length(None, 0)), Write(Data("entry"))))
TWIN = _writer("truncate-last", (Write(Data("entry")), Ftruncate(Length("entry"))))
PAYLOAD = b"ab"


def test_neither_is_in_the_catalogue() -> None:
    assert BUGGY.name not in CATALOGUE and TWIN.name not in CATALOGUE
    assert all(p.program not in (BUGGY.program, TWIN.program) for p in CATALOGUE)


# ------------------------------------------------------------ the explorer


def test_the_explorer_finds_the_bug_and_passes_the_twin() -> None:
    bad = explore(System.of(BUGGY, 2, readers=0), [STAYS])
    assert bad.verdict(STAYS) == "violated"
    # W1 opens, truncates, writes two bytes, closes (published); W2 opens, truncates.
    assert len(from_exploration(bad, STAYS).steps) == 7
    good = explore(System.of(TWIN, 3, readers=1, faults=1), [STAYS])
    assert good.verdict(STAYS) == "holds" and good.complete


# ------------------------------------------------------------ bounded model checking


def test_bmc_finds_the_bug_and_not_in_the_twin() -> None:
    from proofs.bmc import search

    bad = search(System.of(BUGGY, 2, readers=0), STAYS, depth=8)
    assert bad.outcome == "counterexample" and bad.depth == 7
    trace = bad.trace()
    assert trace is not None and STAYS.check(trace.system, bad.worlds[-1]) is not None
    good = search(System.of(TWIN, 2, readers=0), STAYS, depth=8)
    assert good.outcome == "none"


# ------------------------------------------------------------ replay on real files


def _real_entry_after_publication(snapshots: list[Snapshot]) -> list[bytes | None]:
    """The real entry in every replayed state in which some process has
    returned ok (the states STAYS speaks of)."""
    return [dict(snap.files).get("entry") for snap in snapshots if any(p.status == "ok" for p in snap.procs)]


def test_replay_on_real_files_shows_the_bug_and_the_twin_keeps_its_promise(tmp_path: pathlib.Path) -> None:
    """The buggy trace empties the real entry after publication; for the
    twin, a shortest trace to every state the explorer reaches (two
    writers) replays on real files with the entry complete whenever it
    has been published."""
    from reference.replay import replay_snapshots

    bad = explore(System.of(BUGGY, 2, readers=0), [STAYS])
    real = _real_entry_after_publication(replay_snapshots(from_exploration(bad, STAYS), tmp_path / "bad"))
    assert real and real[-1] != PAYLOAD

    good = explore(System.of(TWIN, 2, readers=0), [STAYS], stop_when_all_violated=False)
    worlds = list(good.worlds())
    assert len(worlds) > 20
    for n, w in enumerate(worlds):
        real = _real_entry_after_publication(replay_snapshots(trace_to(good, w), tmp_path / f"good{n}"))
        assert all(e == PAYLOAD for e in real), (n, real)


# ------------------------------------------------------------ lockstep on real files


def _lockstep(protocol: Protocol, examples: int) -> None:
    from reference.lockstep import lockstep

    machine = lockstep(writers=(protocol,), readers=(CATALOGUE["go-read-entry"],), faults=1, max_procs=3)
    # Finding is what this asks, not the shortest example: no shrinking.
    run_state_machine_as_test(machine, settings=settings(max_examples=examples, stateful_step_count=30,
                                                         derandomize=True, database=None, deadline=None,
                                                         phases=(Phase.explicit, Phase.generate)))


def test_lockstep_finds_the_bug_and_passes_the_twin() -> None:
    with pytest.raises(AssertionError, match="published-entry-stays-complete violated"):
        _lockstep(BUGGY, 300)
    _lockstep(TWIN, 80)


# ------------------------------------------------------------ SPIN


def test_spin_finds_the_bug_and_passes_the_twin(tmp_path: pathlib.Path) -> None:
    from proofs.promela import translate
    from proofs.spin import run_spin, spin_missing

    why = spin_missing()
    if why is not None:
        pytest.skip(why)
    (tmp_path / "bad").mkdir()
    (tmp_path / "good").mkdir()
    bad = run_spin(translate(System.of(BUGGY, 2, readers=0), [STAYS]), tmp_path / "bad", opt="-O0")
    assert bad.verdict == "violated"
    good = run_spin(translate(System.of(TWIN, 2, readers=1, faults=1), [STAYS]), tmp_path / "good", opt="-O0")
    assert good.verdict == "holds"
