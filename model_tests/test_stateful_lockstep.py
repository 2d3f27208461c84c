"""The model and the OS in lockstep: Hypothesis stateful tests.

A :class:`Lockstep` machine starts writer processes (any catalogue writer)
and reader processes (``go-read-entry``, ``mmap-read``) and steps them one
operation at a time - or one byte, for a write - in the model
(``spec.machine.step``) and on real files in a fresh temporary directory
(``reference.osfs.OSWorld.step``), sometimes with an injected fault.  After
every step two invariants hold:

- the real sandbox equals the model's projection (``reference.osfs.project``):
  every path's existence, size and bytes, each process's pc, status, errno,
  registers, and each open descriptor's offset and file;
- every property that all the running writers claim at the faults used so
  far (``spec.protocols.Claim``) holds in the model.

The known-bad twin: the same machine over ``write-file`` alone must find the
violation of ``published-entry-stays-complete``, shrink it to the shortest
trace (two writers, L + 3 steps) and print a program that replays it.

Settings come from the profile (``model_tests/conftest.py``).
"""

from __future__ import annotations

import re
import shutil
import tempfile
from typing import Any

import pytest
from hypothesis import Phase, event, settings, strategies as st
from hypothesis.control import currently_in_test_context
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from reference.osfs import OSWorld, project
from spec.explore import Setup
from spec import fs as F
from spec.fs import FileSystem
from spec.machine import RUNNING, Config, Kind, Proc, World, faults, published, settle, step
from spec.ops import Role
from spec.properties import PROPERTIES
from spec.protocols import NO_SIGBUS, WRITERS, protocol

ENTRY_LENGTH = 2
FAULT_BUDGET = 2
MAX_PROCS = 4
READERS = ("go-read-entry", "mmap-read")
# Every kind a process may run, with the explorer's payloads: all writers of
# a path write the same bytes, as the properties assume.
KIND_NAMES = (*WRITERS, *READERS)
CONFIG = Config(
    tuple(Kind(n, protocol(n).program, Setup(entry_length=ENTRY_LENGTH).payloads()) for n in KIND_NAMES),
    "byte",
    FAULT_BUDGET,
)
KIND_OF = {n: i for i, n in enumerate(KIND_NAMES)}

# Figures for the closing report: steps run across every example.
STATS: dict[str, float] = {"examples": 0, "steps": 0}


def _spawn_os(world: OSWorld, kind: int, name: str) -> None:
    """Start one more process in an OSWorld.  OSWorld fixes its processes
    at construction; a stateful test starts them as it goes, so this
    appends one the way its constructor makes each (a public
    ``OSWorld.spawn(kind, name)`` would make this unnecessary)."""
    k = world.config.kinds[kind]
    i = len(world.procs)
    world.procs.append(Proc(kind, 0, RUNNING, "", 0, ((),) * len(k.reg), (), 0))
    world._private.append({})  # noqa: SLF001 - see the docstring
    world.names = (*world.names, name)
    world.procs[i] = world._settle(world.procs[i], k, i)  # noqa: SLF001


def _spawn_model(world: World, kind: int) -> World:
    """The model's twin of :func:`_spawn_os`: ``spec.machine.initial`` for
    one process, on the current file system."""
    k = CONFIG.kinds[kind]
    p = settle(Proc(kind, 0, RUNNING, "", 0, ((),) * len(k.reg), (), 0), k, world.fs)
    return world._replace(procs=(*world.procs, p))


def claimed(world: World, prop: str) -> World | None:
    """The part of ``world`` in which every writer claims ``prop`` at the
    faults used so far, or None when some writer does not.

    Reader properties speak of the reader the claim is about
    (``spec.check.reader_for``): other readers are left out of the world
    the property sees (they are per-process predicates, so this is exact).
    """
    writers = {CONFIG.kinds[p.kind].protocol for p in world.procs if CONFIG.kinds[p.kind].program.role is Role.WRITER}
    if not writers:
        return None
    for name in writers:
        c = protocol(name).claim(prop)
        if c is None or c.expected(world.faults) != "holds":
            return None
    if not PROPERTIES[prop].needs_reader:
        return world
    wanted = {"mmap-read" if prop == NO_SIGBUS else protocol(n).reader for n in writers}
    if len(wanted) != 1:
        return None
    reader = wanted.pop()
    keep = tuple(p for p in world.procs if CONFIG.kinds[p.kind].program.role is Role.WRITER or CONFIG.kinds[p.kind].protocol == reader)
    return world._replace(procs=keep)


class Lockstep(RuleBasedStateMachine):
    """Processes stepped in the model and on the real kernel together."""

    READERS_ON = True
    # Properties checked whatever the claims say (the known-bad twin's).
    FORCED: tuple[str, ...] = ()

    processes = Bundle("processes")

    def __init__(self) -> None:
        super().__init__()
        self.root = tempfile.mkdtemp(prefix="idemwrite-lockstep-")
        self.os = OSWorld(CONFIG, (), self.root, ())
        self.model = World(FileSystem(), (), 0)
        self.history: list[str] = []
        STATS["examples"] += 1

    def teardown(self) -> None:
        self.os.close()
        shutil.rmtree(self.root, ignore_errors=True)

    # -- rules

    def _start(self, name: str) -> int:
        i = len(self.model.procs)
        role = "W" if protocol(name).program.role is Role.WRITER else "R"
        _spawn_os(self.os, KIND_OF[name], f"{role}{i + 1}")
        self.model = _spawn_model(self.model, KIND_OF[name])
        self.history.append(f"start {name} as process {i}")
        return i

    @initialize(target=processes, name=st.sampled_from(WRITERS))
    def first_writer(self, name: str) -> int:
        """Every example starts with a writer: with no process, most rules
        would be disabled and Hypothesis would give up on many examples."""
        return self._start(name)

    @precondition(lambda self: len(self.model.procs) < MAX_PROCS)
    @rule(target=processes, name=st.sampled_from(WRITERS))
    def start_writer(self, name: str) -> int:
        """Start a writer running catalogue protocol ``name``."""
        return self._start(name)

    @precondition(lambda self: len(self.model.procs) < MAX_PROCS and self.READERS_ON)
    @rule(target=processes, name=st.sampled_from(READERS))
    def start_reader(self, name: str) -> int:
        """Start a reader of the entry."""
        return self._start(name)

    @rule(i=processes)
    def step_process(self, i: int) -> None:
        """Process ``i`` takes its next step (nothing once it has ended)."""
        self._step(i, None)

    @precondition(lambda self: any(p.status == RUNNING for p in self.model.procs))
    @rule(k=st.integers(0, MAX_PROCS - 1))
    def step_running(self, k: int) -> None:
        """The ``k``-th still running process (cyclically) takes its next
        step: unlike ``step_process`` it never picks one that has ended,
        so examples reach the late interleavings, after publication."""
        running = [i for i, p in enumerate(self.model.procs) if p.status == RUNNING]
        self._step(running[k % len(running)], None)

    @rule(i=processes, choice=st.integers(0, 3))
    def inject_fault(self, i: int, choice: int) -> None:
        """Process ``i``'s next operation fails (if it can, within budget)."""
        options = faults(CONFIG, self.model, i)
        if options:
            self._step(i, options[choice % len(options)])

    def _step(self, i: int, fault: tuple[str, int] | None) -> None:
        if self.model.procs[i].status != RUNNING:
            return
        self.history.append(f"process {i} steps" + (f" with fault {fault}" if fault else ""))
        self.model = step(CONFIG, self.model, i, fault)
        self.os.step(i, fault)
        STATS["steps"] += 1

    # -- invariants

    @invariant()
    def real_files_equal_the_model(self) -> None:
        """Existence, size and bytes of every path; every process's pc,
        status, errno, registers and descriptor offsets."""
        real, model = self.os.snapshot(), project(CONFIG, self.model)
        if real != model:
            raise AssertionError("the real file system left the model after: " + "; ".join(self.history[-3:]) + "\n"
                                 + _difference(real, model))

    @invariant()
    def claimed_properties_hold(self) -> None:
        """Every property the running writers claim holds in the model."""
        for name, prop in PROPERTIES.items():
            if prop.after_crash:
                continue  # no power loss in this machine
            world = self.model if name in self.FORCED else claimed(self.model, name)
            if world is None:
                continue
            why = prop.check(CONFIG, world)
            assert why is None, f"{name} violated: {why}"
            if published(world) and currently_in_test_context():  # not in a pasted-back replay
                event(f"checked after publication: {name}")  # --hypothesis-show-statistics


def _difference(real: Any, model: Any) -> str:
    """The first fields where the two snapshots differ, for the message."""
    out = []
    if real.files != model.files:
        out.append(f"files: real {real.files} model {model.files}")
    if real.private != model.private:
        out.append(f"private files: real {real.private} model {model.private}")
    for i, (a, b) in enumerate(zip(real.procs, model.procs)):
        if a != b:
            out.append(f"process {i}: real {a} model {b}")
    return "\n".join(out)


TestLockstep = Lockstep.TestCase
# Catalogue processes end within a few steps, so an example holds few of
# them: eight times the profile's examples.
TestLockstep.settings = settings(max_examples=8 * settings().max_examples)


# ------------------------------------------------------------ known-bad twin


class WriteFileOnly(Lockstep):
    """The machine over ``write-file`` writers alone, checking
    ``published-entry-stays-complete``, which write-file does not claim."""

    READERS_ON = False
    FORCED = ("published-entry-stays-complete",)

    @initialize(target=Lockstep.processes, name=st.just("write-file"))
    def first_writer(self, name: str) -> int:
        """The first write-file writer."""
        return self._start(name)

    @precondition(lambda self: len(self.model.procs) < MAX_PROCS)
    @rule(target=Lockstep.processes, name=st.just("write-file"))
    def start_writer(self, name: str) -> int:
        """Start a write-file writer."""
        return self._start(name)


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
