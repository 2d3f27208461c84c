"""The model and the OS in lockstep, for the catalogue: Hypothesis stateful tests.

The machine is the public one (``reference.lockstep.lockstep``): it starts
writer processes (any catalogue writer) and reader processes
(``go-read-entry``, ``mmap-read``) and steps them one operation at a time -
or one byte, for a write - in the model (``spec.machine.step``) and on real
files in a fresh temporary directory (``reference.osworld.OSWorld.step``),
sometimes with an injected fault.  After every step two invariants hold:

- the real sandbox equals the model's projection (``reference.osworld.project``):
  every path's existence, size and bytes, each process's pc, status, errno,
  registers, and each open descriptor's offset and file;
- every property that all the running writers claim at the faults used so
  far (``spec.protocols.Claim``) holds in the model.

The known-bad twin: the same machine over ``write-file`` alone, checking
``published-entry-stays-complete`` whatever write-file claims, must find
the violation, shrink it to the shortest trace (two writers, L + 3 steps)
and print a program that replays it.

Settings come from the profile (``model_tests/conftest.py``).
"""

from __future__ import annotations

import re

import pytest
from hypothesis import Phase, settings
from hypothesis.stateful import run_state_machine_as_test

from reference.lockstep import lockstep
from spec import fs as F
from spec.properties import STAYS
from spec.protocols import CATALOGUE

ENTRY_LENGTH = 2
FAULT_BUDGET = 2
MAX_PROCS = 4
READERS = (CATALOGUE["go-read-entry"], CATALOGUE["mmap-read"])

Lockstep = lockstep(CATALOGUE.writers(), READERS, entry_length=ENTRY_LENGTH, faults=FAULT_BUDGET, max_procs=MAX_PROCS)

TestLockstep = Lockstep.TestCase
# Catalogue processes end within a few steps, so an example holds few of
# them: eight times the profile's examples.
TestLockstep.settings = settings(max_examples=8 * settings().max_examples)


# ------------------------------------------------------------ known-bad twin


class WriteFileOnly(lockstep((CATALOGUE["write-file"],), (), entry_length=ENTRY_LENGTH, faults=FAULT_BUDGET,
                             max_procs=MAX_PROCS, properties=(STAYS,))):
    """The machine over ``write-file`` writers alone, checking
    ``published-entry-stays-complete``, which write-file does not claim."""


def test_write_file_violation_is_found_shrunk_and_replayable() -> None:
    """Hypothesis finds the O_TRUNC race, shrinks it to the explorer's
    shortest trace - two writers, the first writes its L bytes and closes,
    the second opens with O_TRUNC: L + 3 steps - and prints a program that,
    pasted back, fails the same way."""
    with pytest.raises(AssertionError) as info:
        run_state_machine_as_test(
            WriteFileOnly,
            settings=settings(max_examples=500, stateful_step_count=30, derandomize=True, database=None, deadline=None),
        )
    assert "published-entry-stays-complete violated" in str(info.value)
    print("\n".join(getattr(info.value, "__notes__", [])))  # shown with -s: the program, for the report
    program = "\n".join(getattr(info.value, "__notes__", []))
    starts = re.findall(r"state\.(?:first_writer|start_writer)\(", program)
    steps = re.findall(r"state\.(?:step_process|step_running|inject_fault)\(", program)
    assert len(starts) == 2, program
    assert len(steps) == ENTRY_LENGTH + 3, program
    assert "inject_fault" not in program, program
    # The printed failure is a program: run it and see the same failure.
    body = program[program.index("state = "):program.index("state.teardown()") + len("state.teardown()")]
    with pytest.raises(AssertionError, match="published-entry-stays-complete violated"):
        exec(body, {"WriteFileOnly": WriteFileOnly})  # noqa: S102 - our own printed program


def test_a_model_that_loses_writes_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """The known-bad twin of the real-vs-model invariant: a model whose
    writes land nowhere must be told apart from the kernel."""
    monkeypatch.setattr(F, "write_at", lambda old, offset, data: old)
    with pytest.raises(AssertionError, match="the real file system left the model"):
        run_state_machine_as_test(Lockstep, settings=settings(max_examples=200, derandomize=True, database=None, deadline=None,
                                                              phases=(Phase.explicit, Phase.generate)))
