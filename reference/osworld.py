"""The step-wise world: several processes on real files, one step at a time.

An :class:`OSWorld` runs the processes of a ``spec.system.System`` - the
same Program values the model runs - on a real sandbox directory, stepped
deterministically in this one Python process: ``OSWorld.step(i, fault)``
means what ``spec.machine.step(system, world, i, fault)`` means, down to one
byte per step at byte granularity.  :meth:`OSWorld.snapshot` and
:func:`project` put the real sandbox and a model ``World`` in one comparable
shape, so the two can be run in lockstep (``reference.lockstep``).

A step is ``spec.semantics.step`` itself, on a value domain over the
process's real registers (:class:`_Step`): branches are decided by
``spec.semantics.holds`` on them, local control flow is
``spec.semantics.settle``, and each operation - including a local one such
as chtimes - is its real call from ``reference.syscalls.BINDINGS``.  Around
that call, from the semantics (``reference.outcomes``): whether an injected
fault strikes before any effect (the call is not made: a failing open,
ftruncate, fsync, rename), after effects (the call is made and the fault
reported: a failing close really closes, a failing write really writes the
bytes that land first), or whether the kernel must refuse first (its errno
is reported); the bytes a write lands in this step; and what the call does
to the registers.  Every other errno is the real kernel's.

Path mapping.  A shared ``Path`` is ``<root>/<name>`` (``d/x`` under the
real directory ``<root>/d``); a private one is
``<root>/<name>.<process name>.<random hex>``, the process's own.  A
symlink holds its target relative to its own directory, and readlink maps
it back to the model's name (``reference.syscalls``).  The directories the
programs need (``System.dirs``) are made when the world is.

Waiting.  A flock that conflicts makes the process not enabled, as in the
model: :meth:`OSWorld.enabled` asks the kernel (the request with LOCK_NB,
what the description held put back), and :meth:`OSWorld.step` of a process
that must wait raises ``spec.machine.Blocked`` having changed nothing (the
kernel answered EWOULDBLOCK to the LOCK_NB request).

Where the world knowingly differs from the model (edges no catalogue
program reaches; the tests pin the ones that matter): ``Proc.private`` is
kept on disk (a snapshot reports each process's private files); registers
hold real values (``reference.syscalls``), which a snapshot shows as the
model's would be projected.
"""

from __future__ import annotations

import fcntl
import os
import stat
from typing import Any, Callable, NamedTuple, Sequence

from spec import fs as F
from spec import semantics as S
from spec.fs import FileSystem
from spec.machine import Blocked, Fault, current, local_faults
from spec.ops import Instr, LockOp, Path, PWrite, Role
from spec.state import UNSET as NOTHING
from spec.state import Began, Buf, Desc, Mapped, Proc, RegKind, Size, Status, World, published
from spec.system import Kind, System
from spec.trace import files as trace_files

from .mapping import Killed
from .osrun import Layout, RunOperands, last_failed
from .outcomes import Probe, flock_holders, mode_bits, outcomes
from .syscalls import (BINDINGS, LOCK_OPS, UNSET, WAITS, Arg, Call, Const, Env, Slot, Unheld, closure, errno_name,
                       held_lock, is_set, read_full, readlink)

# ------------------------------------------------------------ snapshots


class ProcView(NamedTuple):
    """One process as a snapshot shows it, for the model and the OS alike.

    regs: per register (program order): a descriptor as
    ``("fd", mode bits, offset, bytes of its file, O_APPEND, the flock its
    open description holds: 0, 1 shared, -1 exclusive)``, a mapping as
    ``("map", length, bytes of its file)``, a size ``Size(n)``, a buffer
    ``Buf(bytes)``, unset ``()``."""

    pc: int
    status: Status
    last: str
    progress: int
    began: Began
    regs: tuple[tuple[object, ...], ...]


class Snapshot(NamedTuple):
    """The whole sandbox at one instant, in a shape both interpreters share.

    files:   the shared files exactly as ``spec.trace.files`` shows them
             (entry first, then the rest by name; missing: None; a
             symlink shows what opening it reads).  A stray file in the
             sandbox shows up here under its own name.
    private: per process, its private files as sorted (model name, bytes).
    procs:   per process, a :class:`ProcView`.
    dirs:    the directories, sorted.
    links:   every symlink as sorted (name, the model name it points at);
             a private name is ``<process index>:<name>``, here and below.
    same:    the names that share one inode (hard links), sorted groups.
    locks:   each name whose inode is under flock, with its state (n > 0
             shared by n, -1 exclusive), sorted."""

    files: tuple[tuple[str, bytes | None], ...]
    private: tuple[tuple[tuple[str, bytes], ...], ...]
    procs: tuple[ProcView, ...]
    dirs: tuple[str, ...] = ()
    links: tuple[tuple[str, str], ...] = ()
    same: tuple[tuple[str, ...], ...] = ()
    locks: tuple[tuple[str, int], ...] = ()


def _model_reg(v: object, fs: FileSystem) -> tuple[object, ...]:
    if isinstance(v, Desc):
        return ("fd", v.mode, v.off, fs.contents[v.ino], v.append, v.lock)
    if isinstance(v, Mapped):
        return ("map", v.length, fs.contents[v.ino])
    assert isinstance(v, tuple)
    return v  # Size, Buf, or unset


Private = Sequence[tuple[tuple[str, int], ...]]


def _snapshot_of(fs: FileSystem, private: Private,
          procs: tuple[ProcView, ...]) -> Snapshot:
    """The snapshot of a file system in the model's shape - the model's
    own, or one read off the sandbox - with each process's private names
    (name, inode) and its view: one rendering for both interpreters."""
    named = [(n, i) for n, i in fs.names] + [(f"{k}:{n}", i) for k, names in enumerate(private) for n, i in names]
    groups: dict[int, list[str]] = {}
    for n, i in named:
        groups.setdefault(i, []).append(n)
    links = tuple(sorted((n, c.target) for n, i in named if isinstance(c := fs.contents[i], F.Symlink)))
    files = tuple(tuple(sorted((n, c if isinstance(c := fs.contents[i], bytes) else b"") for n, i in names))
                  for names in private)
    return Snapshot(trace_files(fs), files, procs, fs.dirs, links,
                    tuple(sorted(tuple(sorted(g)) for g in groups.values() if len(g) > 1)),
                    tuple(sorted((n, fs.lock(i)) for n, i in named if fs.lock(i))))


def project(system: System, world: World) -> Snapshot:
    """A model World in the shape of :meth:`OSWorld.snapshot`."""
    fs = world.fs
    procs = tuple(ProcView(p.pc, p.status, p.last, p.progress, p.began, tuple(_model_reg(v, fs) for v in p.regs))
                  for p in world.procs)
    return _snapshot_of(fs, [p.private for p in world.procs], procs)


def _file_bytes(path: str) -> bytes:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return read_full(fd, os.fstat(fd).st_size + 1)
    finally:
        os.close(fd)


def _content(path: str, name: str, link: bool) -> F.Content:
    """A real file's bytes, or a symlink as the model holds it (its target
    as the model names it: ``reference.syscalls.readlink``)."""
    if link:
        return F.Symlink(os.fsdecode(readlink(path, name)))
    return _file_bytes(path)


def _fd_bytes(fd: int) -> bytes:
    """The bytes of the file ``fd`` holds, even unlinked, without moving
    its offset: reopen it through /proc (Linux-specific)."""
    return _file_bytes(f"/proc/self/fd/{fd}")


def _os_reg(kind: RegKind, v: Any, locks: bool) -> tuple[object, ...]:
    """A real register as :class:`ProcView` shows it (``locks``: ask the
    kernel for its flock; a system that never locks holds none)."""
    if not is_set(kind, v):
        return NOTHING
    if kind is RegKind.FD:
        append = bool(fcntl.fcntl(v, fcntl.F_GETFL) & os.O_APPEND)
        return ("fd", mode_bits(v), os.lseek(v, 0, os.SEEK_CUR), _fd_bytes(v), append, held_lock(v) if locks else 0)
    if kind is RegKind.MAP:
        return ("map", v.length, _fd_bytes(v.dup))
    return Size(int(v)) if kind is RegKind.SIZE else Buf(v)


# ------------------------------------------------------------ processes

# The world's own slots in a process's environment: the bytes a write lands
# in this step, and where a pwrite lands them.
_CHUNK, _START, _BASE = 0, 1, 2


class _StepOperands(RunOperands):
    """A step's operands: a write writes the bytes the semantics say land
    in this step, where they say (``reference.outcomes.Probe``)."""

    def data(self, data: object) -> Arg:
        return Slot(_CHUNK)

    def offset(self, ins: PWrite) -> Arg:
        at = ins.offset  # the semantics stopped before placing it (a refused pwrite)
        return lambda env: at if env[_START] is None else env[_START]

    def lock(self, op: LockOp) -> Arg:
        return Const(LOCK_OPS[op] | fcntl.LOCK_NB)  # a conflict: EWOULDBLOCK, the process is not enabled


class _Program:
    """What the world derives once per kind: where its operands sit, and
    each operation's call."""

    def __init__(self, kind: Kind) -> None:
        self.kind = kind
        self.layout = Layout(kind.program, _BASE)
        operands = _StepOperands(self.layout)
        self.calls: dict[Instr, Call] = {
            ins: closure(BINDINGS[type(ins)](ins, operands)) for ins in kind.program.code if type(ins) in S.OPS}
        # Would the call wait? (for the operations that can: flock)
        self.waits: dict[Instr, Call] = {
            ins: closure(WAITS[type(ins)](ins, operands)) for ins in kind.program.code if type(ins) in WAITS}


class _Process:
    """One process of the world: ``spec.state.Proc``'s fields, mutable,
    with its registers, real paths and payloads in ``env``."""

    __slots__ = ("kind", "name", "pc", "status", "last", "progress", "began", "env")

    def __init__(self, kind: int, name: str, env: Env) -> None:
        self.kind, self.name, self.env = kind, name, env
        self.pc, self.status, self.last, self.progress, self.began = 0, Status.RUNNING, "", 0, Began.NOT_YET

    def as_proc(self) -> Proc:
        """The model's view of where it is (registers left out)."""
        return Proc(self.kind, self.pc, self.status, self.last, self.progress, (), (), self.began)


class _Step(S.PyLogic):
    """The value domain of ``spec.semantics.step`` and ``settle`` for one
    process of an OSWorld (a ``spec.semantics.Control``): values are
    concrete, registers real, and :meth:`run_op` makes the real call."""

    def __init__(self, world: "OSWorld", p: _Process, fault: Fault) -> None:
        self.world, self.p, self.fault = world, p, fault
        self.prog = world._programs[p.kind]
        self.pub = world.published()
        self.done = True

    # -- control flow
    def branch(self, cond: object, then: Callable[[], None], other: Callable[[], None]) -> None:
        (then if cond else other)()

    def run_op(self, ins: Instr) -> None:
        fault, self.fault = self.fault, None  # the step's fault is its operation's, not a local one's after it
        self.done = self.world._call(self.p, self.prog, ins, fault)

    def after_op(self, settle: Callable[[], None]) -> None:
        if self.done and self.p.status is Status.RUNNING:
            settle()

    def stop_at(self, pc: int) -> None:
        self.p.pc = pc

    def finish(self, status: Status, keep: str | None) -> None:
        self.world._finish(self.p, self.prog, status, keep)

    def failed(self, errnos: frozenset[str]) -> bool:
        return last_failed(self.p.last, errnos)

    def began(self) -> Began:
        return self.p.began

    def published(self) -> bool:
        return self.pub

    def set_began(self, b: object) -> None:
        assert isinstance(b, Began)
        self.p.began = b

    # -- what conditions read
    def size_of(self, reg: str) -> int:
        return int(self.p.env[self.prog.layout.reg[reg]])  # an unset size reads as -1

    def valid(self, reg: str, length: int) -> bool:
        return F.valid(self.p.env[self.prog.layout.reg[reg]], length)

    def payload_len(self, name: str) -> int:
        return len(self.p.env[self.prog.layout.payload_slot(name)])


# ------------------------------------------------------------ the world


class OSWorld:
    """Several processes running programs on real files, one step at a time.

    ``OSWorld(system, root)`` starts every process of ``system`` (named as
    ``system.names``), as ``spec.machine.initial(system)`` does;
    ``processes=()`` starts none, and :meth:`start` starts one more (as
    ``spec.machine.start``).  The sandbox ``root`` must be an existing,
    empty directory, as the model's file system starts empty but for
    ``system.dirs``, which are made here.
    :meth:`step` is ``spec.machine.step`` (``Blocked`` for a process that
    must wait); :meth:`enabled` is ``spec.machine.enabled``; :meth:`faults`
    is ``spec.machine.faults``.  Deterministic: one Python process, one call
    per step, no threads.

    Use as a context manager (or call :meth:`close`) to release every
    descriptor and mapping the processes still hold.  In lockstep with the
    model::

        world = spec.machine.initial(system)
        with OSWorld(system, empty_dir) as real:
            for i, fault in schedule:           # fault in real.faults(i) or None
                world = spec.machine.step(system, world, i, fault)
                real.step(i, fault)
                assert real.snapshot() == project(system, world)
    """

    def __init__(self, system: System, root: str | os.PathLike[str], processes: Sequence[int] | None = None) -> None:
        self.system = system
        self.root = os.fspath(root)
        if not os.path.isdir(self.root) or os.listdir(self.root):
            raise ValueError(f"{self.root}: the sandbox must be an existing, empty directory (the model starts empty)")
        self.faults_used = 0
        for d in system.dirs:  # sorted: a parent before its children
            os.mkdir(os.path.join(self.root, d))
        self._locks = S.LOCKS in system.features
        self._programs = tuple(_Program(k) for k in system.kinds)
        self._procs: list[_Process] = []
        if processes is None:
            for kind, name in zip(system.kind_of, system.names):
                self.start(kind, name)
        else:
            for kind in processes:
                self.start(kind)

    @property
    def names(self) -> tuple[str, ...]:
        """The processes' names, in order (``W1``.., ``R1``.. by default)."""
        return tuple(p.name for p in self._procs)

    def start(self, kind: int, name: str | None = None) -> int:
        """Start a process of ``system.kinds[kind]`` at its first operation
        (its local control flow run up to there), as
        ``spec.machine.start``; its index.  ``name`` (default ``W<n>`` or
        ``R<n>``) names its private files and its steps in traces."""
        prog = self._programs[kind]
        role = prog.kind.program.role
        if name is None:
            n = 1 + sum(1 for p in self._procs if self._programs[p.kind].kind.program.role is role)
            name = f"{'W' if role is Role.WRITER else 'R'}{n}"
        if name in self.names:
            raise ValueError(f"a process is already called {name!r}")
        lay = prog.layout
        env: Env = [None, None, *lay.init, *(self._real(p, name) for p in lay.paths),
                    *(prog.kind.payload(n) for n in lay.payloads)]
        p = _Process(kind, name, env)
        self._procs.append(p)
        S.settle(prog.kind.program, 0, _Step(self, p, None))
        return len(self._procs) - 1

    def _real(self, path: Path, name: str) -> str:
        if not path.private:
            return os.path.join(self.root, path.name)
        return os.path.join(self.root, f"{path.name}.{name}.{os.urandom(4).hex()}")

    # -- the interface of spec.machine

    def proc(self, i: int) -> Proc:
        """Process ``i`` as a ``spec.state.Proc`` (registers left out)."""
        return self._procs[i].as_proc()

    def faults(self, i: int) -> list[tuple[str, int]]:
        """The injected faults process ``i``'s next step may suffer
        (``spec.machine.faults``: budget included)."""
        return local_faults(self.system, self.proc(i), self.faults_used < self.system.faults)

    def current(self, i: int) -> Instr | None:
        """The operation process ``i`` runs next, or None when it ended."""
        return current(self.system, self.proc(i))

    def enabled(self, i: int) -> bool:
        """Can process ``i`` take a step now (running, and not waiting for
        a lock: the kernel is asked), as ``spec.machine.enabled``."""
        p = self._procs[i]
        ins = self.current(i)
        return ins is not None and not self._waits(p, ins)

    def _waits(self, p: _Process, ins: Instr) -> bool:
        wait = self._programs[p.kind].waits.get(ins)
        return wait is not None and bool(wait(p.env))

    def published(self) -> bool:
        """Has some writer returned success?"""
        return published(World(FileSystem(), tuple(p.as_proc() for p in self._procs), self.faults_used))

    def step(self, i: int, fault: Fault = None) -> None:
        """Process ``i`` takes one step, failing with ``fault`` if given, as
        ``spec.machine.step(system, world, i, fault)``.  Raises ValueError
        for an ended process or a fault its operation cannot suffer."""
        p = self._procs[i]
        ins = self.current(i)
        if ins is None:
            raise ValueError(f"{p.name} has ended ({p.status.value})")
        if fault is not None and fault not in local_faults(self.system, p.as_proc(), True):
            raise ValueError(f"{p.name}: {ins} cannot suffer {fault}")
        if fault is not None and self._waits(p, ins):
            raise Blocked(f"{p.name}: {ins} must wait")  # no move at all, faulty or not (the fault is not made)
        step = _Step(self, p, fault)
        S.step(step.prog.kind.program, p.pc, step)
        self.faults_used += 1 if fault else 0

    def _call(self, p: _Process, prog: _Program, ins: Instr, fault: Fault) -> bool:
        """Operation ``ins`` of process ``p``, for real: its call (or, for
        a fault that strikes before any effect, none), the errno, the
        register effects and a write's progress.  Does it complete?"""
        env, lay, out = p.env, prog.layout, outcomes(ins)
        regs = {r: (k, env[lay.reg[r]]) for r, k in lay.kinds.items()}
        payloads = {n: env[lay.payload[n]] for n in lay.payloads}
        probe = Probe(self.system.granularity, regs, payloads, p.progress, fault,
                      lambda path: str(env[lay.path[path]]), lambda d: os.path.join(self.root, d),
                      self.system.features).run(ins)
        if fault is not None and probe.where == "before":
            p.last = fault[0]
            lay.apply(env, out.fault or (), None)
            p.progress = 0  # the operation ends here (a flock that had let go of its lock, too)
            return True
        env[_CHUNK], env[_START] = probe.chunk or b"", probe.start
        try:
            result = prog.calls[ins](env)
        except Killed:
            if out.dies is None:
                raise
            self._finish(p, prog, out.dies, None)
            return True
        except BlockingIOError:
            if ins not in prog.waits:
                raise
            if probe.done is not False:
                raise Blocked(f"{p.name}: {ins} must wait") from None  # the kernel changed nothing
            # A flock conversion that must wait: the kernel dropped the
            # description's lock first, and the semantics say this is a
            # step of its own; the operation goes on at the next.
            p.last, p.progress = "", p.progress + 1
            return False
        except OSError as e:
            p.last = errno_name(e)
            if isinstance(e, Unheld):  # nothing to ask the kernel: the semantics answer
                assert out.unheld is not None
                p.last = out.unheld
            lay.apply(env, out.on_error(p.last), None)
            p.progress = 0
            return True
        if fault is not None and probe.where != "refused":
            p.last = fault[0]
            lay.apply(env, out.fault or (), result)
        else:
            p.last = ""
            lay.apply(env, out.ok, result)
        if probe.done is None:  # not a multi-step write
            return True
        p.progress = 0 if probe.done else p.progress + 1
        return probe.done

    def _finish(self, p: _Process, prog: _Program, status: Status, keep: str | None) -> None:
        """The process ends with ``status``: exit releases every register
        but ``keep`` (a hit's value)."""
        lay = prog.layout
        slot = lay.reg[keep] if keep is not None else None
        lay.release(p.env, slot)
        for r, kind in lay.kinds.items():
            if lay.reg[r] != slot:
                p.env[lay.reg[r]] = UNSET[kind]
        p.pc, p.status, p.last, p.progress = len(prog.kind.program.code), status, "", 0

    # -- observation

    def files(self) -> tuple[tuple[str, bytes | None], ...]:
        """The real shared files, in ``spec.trace.files`` shape."""
        return self.snapshot().files

    def snapshot(self) -> Snapshot:
        """Every file, symlink and directory in the sandbox, the flocks on
        them, and every process's state; compare with :func:`project` of
        the model's World."""
        owner: dict[str, tuple[int, str]] = {}
        for i, p in enumerate(self._procs):
            lay = self._programs[p.kind].layout
            for path, s in lay.path.items():
                if path.private:
                    owner[p.env[s]] = (i, path.name)
        names: list[tuple[str, int]] = []
        private: list[list[tuple[str, int]]] = [[] for _ in self._procs]
        contents: list[F.Content] = []
        dirs: list[str] = []
        locks: list[tuple[int, int]] = []
        inodes: dict[tuple[int, int], int] = {}
        todo = [""]
        while todo:
            rel = todo.pop()
            for entry in os.scandir(os.path.join(self.root, rel)):
                name = os.path.join(rel, entry.name)
                st = entry.stat(follow_symlinks=False)
                if stat.S_ISDIR(st.st_mode):
                    dirs.append(name)
                    todo.append(name)
                    continue
                k, model = owner.get(entry.path, (-1, name))
                j = inodes.get((st.st_dev, st.st_ino))
                if j is None:
                    j = inodes[(st.st_dev, st.st_ino)] = len(contents)
                    contents.append(_content(entry.path, model, stat.S_ISLNK(st.st_mode)))
                    state = flock_holders(st.st_dev, st.st_ino) if self._locks else 0
                    if state:
                        locks.append((j, state))
                (names if k < 0 else private[k]).append((model, j))
        fs = FileSystem(tuple(sorted(names)), tuple(contents), (), tuple(sorted(dirs)), tuple(locks))
        procs = tuple(self._view(p) for p in self._procs)
        return _snapshot_of(fs, [tuple(sorted(n)) for n in private], procs)

    def _view(self, p: _Process) -> ProcView:
        lay = self._programs[p.kind].layout
        regs = tuple(_os_reg(k, p.env[lay.reg[r]], self._locks) for r, k in lay.kinds.items())
        return ProcView(p.pc, p.status, p.last, p.progress, p.began, regs)

    def close(self) -> None:
        """Release every descriptor and mapping still held (statuses stay)."""
        for p in self._procs:
            self._programs[p.kind].layout.release(p.env)

    def __enter__(self) -> "OSWorld":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
