"""Property tests of any protocol on real files: the model and the OS in lockstep.

:func:`lockstep` takes protocol values - the catalogue's or a user's own,
``spec.protocols.Protocol`` or bare ``spec.ops.Program`` - and returns a
Hypothesis ``RuleBasedStateMachine``: it starts writer and reader
processes, steps them one operation at a time (one byte, for a write at
byte granularity) in the model (``spec.machine.step``) and on real files in
a fresh temporary directory (``reference.osworld.OSWorld.step``), sometimes
with an injected fault - only a process that can step (one waiting for a
flock cannot, and the model and the kernel must agree on which) - and
after every step checks that

- the real sandbox equals the model's projection
  (``reference.osworld.project``): every path's existence, size and bytes,
  each process's pc, status, errno, write progress and registers, each open
  descriptor's mode, offset, file, O_APPEND and flock, the directories,
  symlinks, hard links and locks; and
- every property that all the running writers claim at the faults used so
  far (``spec.protocols.Claim``) holds in the model, as do the properties
  the caller names whatever the claims say (a known-bad twin's).

A failure shrinks to a short program of rule calls that Hypothesis prints,
and that replays when pasted back.  Run it with pytest::

    from reference.lockstep import lockstep
    TestMine = lockstep(writers=(MY_PROTOCOL,), readers=(CATALOGUE["go-read-entry"],)).TestCase

Every process writes or expects the payloads ``entry`` and ``output`` of
``entry_length`` bytes (all writers of a path write the same bytes, as the
properties assume).  Hypothesis is imported when :func:`lockstep` is
called, not with this module (it is the ``lockstep`` extra).
"""

from __future__ import annotations

import shutil
import tempfile
from typing import TYPE_CHECKING, Iterable, Sequence

from spec.fs import FileSystem
from spec.machine import enabled as model_enabled
from spec.machine import faults as model_faults
from spec.machine import start as model_start
from spec.machine import step as model_step
from spec.ops import Program, Role
from spec.properties import PROPERTIES, Property, get_property
from spec.protocols import Protocol
from spec.semantics import LOCKS
from spec.state import Status, World, published
from spec.system import ENTRY_BYTES, OUTPUT_BYTES, Process, SetupError, System

from .osworld import OSWorld, Snapshot, project

if TYPE_CHECKING:
    from hypothesis.stateful import RuleBasedStateMachine

Runnable = Protocol | Program


def _program(x: Runnable) -> Program:
    return x if isinstance(x, Program) else x.program


def claimed(system: System, protocols: Sequence[Protocol | None], world: World, prop: Property) -> World | None:
    """The part of ``world`` in which every writer claims ``prop`` at the
    faults used so far, or None when some writer does not (or there is no
    writer).  ``protocols[k]`` is the protocol of ``system.kinds[k]``
    (None: a bare program, which claims nothing).

    A reader property speaks of the reader that observes it
    (``Protocol.reader_for``): other readers are left out of the world the
    property sees (they are per-process predicates, so this is exact)."""
    writers = {p.kind for p in world.procs if system.kinds[p.kind].program.role is Role.WRITER}
    if not writers:
        return None
    for k in writers:
        proto = protocols[k]
        c = proto.claim(prop) if proto is not None else None
        if c is None or c.expected(world.faults) != "holds":
            return None
    if not prop.needs_reader:
        return world
    observers = {p.reader_for(prop) for p in (protocols[k] for k in writers) if p is not None}
    if len(observers) != 1:
        return None
    reader = observers.pop()
    keep = tuple(p for p in world.procs
                 if system.kinds[p.kind].program.role is Role.WRITER or system.kinds[p.kind].program == reader)
    return world._replace(procs=keep)


def difference(real: Snapshot, model: Snapshot) -> str:
    """The fields where two snapshots differ, for a failure message."""
    out = []
    if real.files != model.files:
        out.append(f"files: real {real.files} model {model.files}")
    if real.private != model.private:
        out.append(f"private files: real {real.private} model {model.private}")
    for field in ("dirs", "links", "same", "locks"):
        a, b = getattr(real, field), getattr(model, field)
        if a != b:
            out.append(f"{field}: real {a} model {b}")
    for i, (a, b) in enumerate(zip(real.procs, model.procs)):
        if a != b:
            out.append(f"process {i}: real {a} model {b}")
    return "\n".join(out)


def lockstep(writers: Sequence[Runnable], readers: Sequence[Runnable] = (), *, entry_length: int = 2,
             faults: int = 2, max_procs: int = 4, properties: Iterable[Property | str] | None = None,
             granularity: str = "byte") -> type["RuleBasedStateMachine"]:
    """A Hypothesis state machine running ``writers`` and ``readers`` (any
    mix, up to ``max_procs`` processes, the first always a writer) in the
    model and on real files in lockstep (see the module doc).

    faults:      the run's fault budget (``spec.system.System.faults``).
    properties:  properties checked in every state whatever the writers
                 claim (a known-bad twin's), besides the claimed ones
                 (None: only the claimed ones).
    granularity: ``"byte"`` (a write lands a byte a step) or ``"write"``.

    Its rules are ``first_writer`` and ``start_writer``/``start_reader``
    (by program name), ``step_process`` (of a process started), and
    ``step_running`` (the k-th still running one), ``inject_fault``;
    its invariants ``real_files_equal_the_model`` and
    ``claimed_properties_hold``.  Subclass it to name it (the name is what
    a printed failure calls), or take its ``TestCase`` for pytest.
    Raises SetupError for bounds or roles that make no sense."""
    from hypothesis import event, strategies as st
    from hypothesis.control import currently_in_test_context
    from hypothesis.stateful import Bundle, RuleBasedStateMachine, initialize, invariant, precondition, rule

    system, protocols = _system(writers, readers, entry_length, faults, granularity)
    by_name = {k.program.name: i for i, k in enumerate(system.kinds)}
    writer_names = tuple(dict.fromkeys(_program(w).name for w in writers))
    reader_names = tuple(dict.fromkeys(_program(r).name for r in readers))
    forced = tuple(get_property(p) for p in properties or ())
    waits = LOCKS in system.features  # only a flock can wait: without one, a running process can step
    checked = tuple(p for p in PROPERTIES.values() if not p.after_crash)  # no power loss here
    if max_procs < 1:
        raise SetupError(f"max_procs must be >= 1, not {max_procs}")

    class Lockstep(RuleBasedStateMachine):
        """Processes stepped in the model and on the real kernel together."""

        stats = {"examples": 0, "steps": 0}  # for reports: steps run across every example
        processes = Bundle("processes")

        def __init__(self) -> None:
            super().__init__()
            self.root = tempfile.mkdtemp(prefix="idemwrite-lockstep-")
            self.os = OSWorld(system, self.root, processes=())
            self.model = World(FileSystem(dirs=system.dirs), (), 0)
            self.history: list[str] = []
            self.stats["examples"] += 1

        def teardown(self) -> None:
            self.os.close()
            shutil.rmtree(self.root, ignore_errors=True)

        # -- rules

        def _start(self, name: str) -> int:
            i = len(self.model.procs)
            kind = by_name[name]
            role = "W" if system.kinds[kind].program.role is Role.WRITER else "R"
            self.os.start(kind, f"{role}{i + 1}")
            self.model = self.model._replace(procs=(*self.model.procs, model_start(system, kind, self.model.fs)))
            self.history.append(f"start {name} as process {i}")
            return i

        @initialize(target=processes, name=st.sampled_from(writer_names))
        def first_writer(self, name: str) -> int:
            """Every example starts with a writer: with no process, most rules
            would be disabled and Hypothesis would give up on many examples."""
            return self._start(name)

        @precondition(lambda self: len(self.model.procs) < max_procs)
        @rule(target=processes, name=st.sampled_from(writer_names))
        def start_writer(self, name: str) -> int:
            """Start a writer running protocol ``name``."""
            return self._start(name)

        if reader_names:
            @precondition(lambda self: len(self.model.procs) < max_procs)
            @rule(target=processes, name=st.sampled_from(reader_names))
            def start_reader(self, name: str) -> int:
                """Start a reader of the entry."""
                return self._start(name)

        @rule(i=processes)
        def step_process(self, i: int) -> None:
            """Process ``i`` takes its next step (nothing once it has ended)."""
            self._step(i, None)

        @precondition(lambda self: any(p.status is Status.RUNNING for p in self.model.procs))
        @rule(k=st.integers(0, max_procs - 1))
        def step_running(self, k: int) -> None:
            """The ``k``-th process that can step (cyclically) takes its next
            step: unlike ``step_process`` it never picks one that has ended
            or waits, so examples reach the late interleavings, after
            publication."""
            running = [i for i in range(len(self.model.procs)) if self._enabled(i)]
            if running:
                self._step(running[k % len(running)], None)

        @rule(i=processes, choice=st.integers(0, 3))
        def inject_fault(self, i: int, choice: int) -> None:
            """Process ``i``'s next operation fails (if it can, within budget)."""
            options = model_faults(system, self.model, i)
            if options:
                self._step(i, options[choice % len(options)])

        def _enabled(self, i: int) -> bool:
            """Can process ``i`` step?  The model and the kernel must agree."""
            if self.model.procs[i].status is not Status.RUNNING:
                return False
            if not waits:
                return True
            model, real = model_enabled(system, self.model, i), self.os.enabled(i)
            if model != real:
                raise AssertionError(f"process {i} can step in the {'model' if model else 'kernel'} only, after: "
                                     + "; ".join(self.history[-3:]))
            return model

        def _step(self, i: int, fault: tuple[str, int] | None) -> None:
            if not self._enabled(i):
                return  # it has ended, or it waits for a lock
            self.history.append(f"process {i} steps" + (f" with fault {fault}" if fault else ""))
            self.model = model_step(system, self.model, i, fault)
            self.os.step(i, fault)
            self.stats["steps"] += 1

        # -- invariants

        @invariant()
        def real_files_equal_the_model(self) -> None:
            """Existence, size and bytes of every path; every process's pc,
            status, errno, registers and descriptor offsets."""
            real, model = self.os.snapshot(), project(system, self.model)
            if real != model:
                raise AssertionError("the real file system left the model after: " + "; ".join(self.history[-3:])
                                     + "\n" + difference(real, model))

        @invariant()
        def claimed_properties_hold(self) -> None:
            """Every property the running writers claim holds in the model,
            and every property the caller named."""
            for prop in checked:
                world = self.model if prop in forced else claimed(system, protocols, self.model, prop)
                if world is None:
                    continue
                why = prop.check(system, world)
                assert why is None, f"{prop.name} violated: {why}"
                if published(world) and currently_in_test_context():  # not in a pasted-back replay
                    event(f"checked after publication: {prop.name}")  # --hypothesis-show-statistics

    return Lockstep


def _system(writers: Sequence[Runnable], readers: Sequence[Runnable], entry_length: int, faults: int,
            granularity: str) -> tuple[System, tuple[Protocol | None, ...]]:
    """One process per distinct program (the kinds a started process may
    run), with the payloads every process writes or expects; and each
    kind's protocol value."""
    if not writers:
        raise SetupError("name at least one writer protocol")
    for w in writers:
        if _program(w).role is not Role.WRITER:
            raise SetupError(f"{_program(w).name!r} is a reader; pass it in readers")
    for r in readers:
        if _program(r).role is not Role.READER:
            raise SetupError(f"{_program(r).name!r} is a writer; pass it in writers")
    if not 1 <= entry_length <= len(ENTRY_BYTES):
        raise SetupError(f"entry length must be 1..{len(ENTRY_BYTES)}, not {entry_length}")
    values: dict[Program, Protocol | None] = {}
    for x in (*writers, *readers):
        prog = _program(x)
        if values.get(prog) is None:
            values[prog] = x if isinstance(x, Protocol) else None
    names = [p.name for p in values]
    if len(set(names)) != len(names):
        raise SetupError(f"program names must differ (they name the processes' rules): {names}")
    payloads = (("entry", ENTRY_BYTES[:entry_length]), ("output", OUTPUT_BYTES[:entry_length]))
    system = System(tuple(Process(p, payloads) for p in values), faults, 0, granularity)
    protocols: list[Protocol | None] = [None] * len(system.kinds)
    for j, proto in enumerate(values.values()):
        protocols[system.kind_of[j]] = proto
    return system, tuple(protocols)

