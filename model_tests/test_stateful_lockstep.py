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
import subprocess
import sys

import pytest
from hypothesis import Phase, settings
from hypothesis.stateful import run_state_machine_as_test

from reference.lockstep import lockstep
from spec import fs as F
from spec import semantics as S
from spec.ops import Program, Role
from spec.properties import HITS, STAYS
from spec.protocols import ATLAS, CATALOGUE, Claim, Protocol

ENTRY_LENGTH = 2
FAULT_BUDGET = 2
MAX_PROCS = 4
READERS = (CATALOGUE["go-read-entry"], CATALOGUE["mmap-read"])

# The writers the OS interpreter runs (it refuses the remote tier's
# object-store requests), less the atlas of real tools: those write other
# tools' files (git's objects, cargo's marker), which no Go writer shares,
# so mixing them with Go's claims nothing.  Each is run alone below.
LOCAL_WRITERS = tuple(p for p in CATALOGUE.writers() if S.OBJECTS not in S.features([p.program]) and p not in ATLAS)
Lockstep = lockstep(LOCAL_WRITERS, READERS, entry_length=ENTRY_LENGTH, faults=FAULT_BUDGET, max_procs=MAX_PROCS)

TestLockstep = Lockstep.TestCase
# Catalogue processes end within a few steps, so an example holds few of
# them: eight times the profile's examples.
TestLockstep.settings = settings(max_examples=8 * settings().max_examples)




@pytest.mark.parametrize("name", [p.name for p in ATLAS])
def test_each_real_tools_protocol_keeps_its_claims_on_real_files(name: str) -> None:
    """Each protocol of the atlas, with its own reader, several writers and
    faults: the real files equal the model's after every step, and every
    property it claims (at the faults used so far) holds."""
    proto = CATALOGUE[name]
    machine = lockstep((proto,), (CATALOGUE[proto.reader.name],), entry_length=ENTRY_LENGTH, faults=FAULT_BUDGET,
                       max_procs=MAX_PROCS)
    run_state_machine_as_test(machine, settings=settings(max_examples=4 * settings().max_examples, deadline=None))


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


# ------------------------------------------------------------ a user's protocol


def _mine(name: str, like: str) -> Protocol:
    """A user's protocol, in no catalogue: ``like``'s code under another
    name, claiming that the published entry stays complete and that a
    reader after publication hits, at every fault budget."""
    program = Program(name, Role.WRITER, CATALOGUE[like].program.source, publishes=CATALOGUE[like].program.publishes)
    return Protocol(program, (Claim(STAYS, None, "claimed by its author"), Claim(HITS, None, "claimed by its author")))


def test_a_users_protocol_claiming_too_much_is_caught() -> None:
    """The API on a protocol value defined here: its (false) claim is
    checked on real files and found violated, with no forced property."""
    buggy = lockstep((_mine("my-truncate-first", "write-file"),), (CATALOGUE["go-read-entry"],), faults=0)
    with pytest.raises(AssertionError, match="violated"):
        run_state_machine_as_test(buggy, settings=settings(max_examples=300, derandomize=True, database=None, deadline=None,
                                                           phases=(Phase.explicit, Phase.generate)))


def test_a_users_correct_protocol_passes() -> None:
    """Its correct twin keeps what it claims, and the real files agree with
    the model, with faults."""
    good = lockstep((_mine("my-truncate-after", "write-then-truncate"),), (CATALOGUE["go-read-entry"],))
    run_state_machine_as_test(good, settings=settings(max_examples=100, derandomize=True, database=None, deadline=None))


def test_importing_the_api_does_not_import_hypothesis() -> None:
    """Hypothesis (the ``lockstep`` extra) is imported when a machine is
    built, not with ``reference`` or ``reference.lockstep``."""
    code = "import sys, reference, reference.lockstep; assert 'hypothesis' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
