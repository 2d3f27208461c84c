"""Edges of the Z3 proofs (``proofs.induction``) and of bounded model
checking (``proofs.bmc``) that the theorem runs do not pin down:

- a solver that runs out of its work budget answers ``unknown``, and the
  check says so, with the solver's reason: a failure, never a pass;
- every check and search reports the seconds it took, as the clock measured
  them (a fake clock makes this exact);
- BMC never reports a run longer than its bound, even when asked to start
  past it.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

import proofs.bmc as bmc
import proofs.induction as induction
from proofs import invariants
from proofs.induction import concrete_consecution, prove, unbounded_system
from spec import CATALOGUE, System
from spec.programs import GO_READ_ENTRY, WRITE_THEN_TRUNCATE
from spec.properties import STAYS, get_property

# write-file's shortest STAYS violation with two writers and no faults
# (the exhaustive search agrees: model_tests/test_bmc_decode.py).
WRITE_FILE_SHORTEST = 4


def _write_file() -> System:
    return System.of(CATALOGUE["write-file"], 2, 0, entry_length=1)


class FakeClock:
    """perf_counter that reads 2 s first and moves 3 s per reading (a
    start smaller than the step tells ``-`` apart from ``%``, ``/``...)."""

    def __init__(self) -> None:
        self.now = -1.0

    def perf_counter(self) -> float:
        self.now += 3.0
        return self.now


def _fake_clock(monkeypatch: pytest.MonkeyPatch, module: object) -> None:
    monkeypatch.setattr(module, "time", SimpleNamespace(perf_counter=FakeClock().perf_counter))


def test_an_exhausted_solver_makes_every_proof_check_unknown_with_its_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    """With no work budget nothing is proved: every check answers unknown,
    is a failure, and its detail carries Z3's reason."""
    monkeypatch.setattr(induction, "RLIMIT", 1)
    res = prove(unbounded_system(WRITE_THEN_TRUNCATE, GO_READ_ENTRY), invariants.in_place_writer, get_property(STAYS))
    assert res.checks and res.unknown and not res.proved
    assert res.failures() == res.checks
    assert all("(max. resource limit exceeded)" in c.detail for c in res.checks), [c.detail for c in res.checks]


@pytest.mark.parametrize("rlimit, answer", [(1, "unknown"), (induction.RLIMIT, "sat")])
def test_concrete_consecution_reports_its_answer_and_the_seconds_it_took(
        monkeypatch: pytest.MonkeyPatch, rlimit: int, answer: str) -> None:
    """Out of budget, the refutation answers unknown (a failed check, with
    the solver's reason, and no counterexample); either way its seconds
    are the clock's difference between start and end."""
    monkeypatch.setattr(induction, "RLIMIT", rlimit)
    _fake_clock(monkeypatch, induction)
    check, why = concrete_consecution(_write_file(), invariants.in_place_writer)
    assert check.answer == answer and check.seconds == 3.0, check
    if answer == "unknown":
        assert not check.passed and why == "" and check.detail == "max. resource limit exceeded"


def test_concrete_consecution_of_an_inductive_invariant_reports_the_seconds_it_took(monkeypatch: pytest.MonkeyPatch) -> None:
    """write-then-truncate's invariant is inductive at one writer: unsat,
    timed by the clock."""
    _fake_clock(monkeypatch, induction)
    check, _ = concrete_consecution(System.of(WRITE_THEN_TRUNCATE, 1, 0, entry_length=1), invariants.in_place_writer)
    assert check.answer == "unsat" and check.seconds == 3.0, check


def test_bmc_never_reports_a_run_longer_than_its_bound() -> None:
    """Asked to start past its bound (the shortest violation is one step
    longer than the bound), BMC finds nothing: the violation at
    WRITE_FILE_SHORTEST is outside what was asked."""
    p = get_property(STAYS)
    bound = WRITE_FILE_SHORTEST - 1
    res = bmc.search(_write_file(), p, bound, start=WRITE_FILE_SHORTEST)
    assert res.outcome == "none" and res.steps is None and res.depth == bound, res
    found = bmc.search(_write_file(), p, WRITE_FILE_SHORTEST, start=WRITE_FILE_SHORTEST)
    assert found.outcome == "counterexample" and found.depth == WRITE_FILE_SHORTEST


@pytest.mark.parametrize("rlimit, outcome", [(1, "unknown"), (bmc.RLIMIT, "none")])
def test_bmc_reports_its_outcome_and_the_seconds_it_took(monkeypatch: pytest.MonkeyPatch, rlimit: int, outcome: str) -> None:
    """No violation within two steps of write-file (the shortest takes
    four); out of budget, the search says unknown with the solver's reason,
    at the first depth it asked.  Either way, its seconds are the clock's."""
    monkeypatch.setattr(bmc, "RLIMIT", rlimit)
    _fake_clock(monkeypatch, bmc)
    res = bmc.search(_write_file(), get_property(STAYS), 2)
    assert res.outcome == outcome and res.seconds == 3.0 and res.steps is None, res
    if outcome == "unknown":
        assert res.depth == 0 and res.reason == "max. resource limit exceeded"
