"""The model interpreter: the semantics of ``spec.semantics`` on Python values.

A ``World`` (``spec.state``) is the whole system at one instant: the file
system, each process's local state, the faults used so far.  :func:`step` is
the one transition: process ``i`` executes its next operation (one byte of
it at byte granularity), optionally failing with an injected fault, and
then runs its local control flow up to its next operation.

This module only provides the value domain (:class:`PyDom`): Python ints,
bools and bytes, and the file system of ``spec.fs``.  What each operation
does is stated in ``spec.semantics`` and nowhere here.

Modelled: each process's descriptor table (an open description per
descriptor, with its own offset), its registers, private names (temp files),
and how it ended.  A process that returns releases its descriptors and
mappings, as exit would.  Not modelled: fork (no shared descriptions),
threads within a process, scheduling fairness (every interleaving is allowed).
"""

from __future__ import annotations

from typing import Callable

from . import fs as F
from . import semantics as S
from .fs import FileSystem
from .ops import Data, GetObject, Instr, Key, Path, PWrite, Write, WriteBuf
from .state import UNSET, Began, Buf, Crash, Desc, Mapped, Proc, Reg, Size, Status, World, published
from .system import Kind, System

Fault = tuple[str, int] | None


class _Stop(Exception):
    """The operation ended early (a failed check, a fault, a death)."""


class Blocked(Exception):
    """The process cannot take its next step now (it waits for a lock):
    it is not enabled, and has no transition."""


class PyDom(S.PyLogic):
    """One process's step on Python values: the model's :class:`~spec.semantics.Dom`.

    Mutable only for the length of one step; :func:`step_local` reads the
    new process and file system out of it."""

    __slots__ = ("kind", "granularity", "features", "fs", "pc", "status", "last", "prog", "regs", "private",
                 "began_", "fault", "pub", "done")

    def __init__(self, kind: Kind, p: Proc, fs: FileSystem, fault: Fault, granularity: str, pub: bool,
                 features: frozenset[str] = frozenset()) -> None:
        self.kind, self.granularity, self.fs, self.fault, self.pub = kind, granularity, fs, fault, pub
        self.features = features
        self.pc, self.status, self.last, self.prog = p.pc, p.status, p.last, p.progress
        self.regs: list[Reg] = list(p.regs)
        self.private = p.private
        self.began_ = p.began
        self.done = True

    def proc(self, kind_index: int) -> Proc:
        return Proc(kind_index, self.pc, self.status, self.last, self.prog, tuple(self.regs), self.private, self.began_)

    # -- the step
    def check(self, cond: object, errno: str, then: Callable[[], None] | None = None) -> None:
        if cond:
            if then is not None:
                then()
            self.last = errno
            raise _Stop

    def fault_point(self) -> None:
        if self.fault is not None:
            self.last = self.fault[0]
            raise _Stop

    def faulted(self) -> bool:
        return self.fault is not None

    def fault_bytes(self) -> int:
        return self.fault[1] if self.fault is not None else 0

    def branch(self, cond: object, then: Callable[[], None], other: Callable[[], None]) -> None:
        (then if cond else other)()

    def run_op(self, ins: Instr) -> None:
        try:
            S.OPS[type(ins)].run(ins, self)
            self.last = ""
        except _Stop:
            pass

    def die(self, cond: object, status: Status) -> None:
        if cond:
            self.finish(status, None)
            raise _Stop

    def block(self, cond: object) -> None:
        if cond:
            raise Blocked

    def progress(self) -> int:
        return self.prog

    def complete(self, done: object) -> None:
        self.done = bool(done)
        self.prog = 0 if done else self.prog + 1

    def after_op(self, settle: Callable[[], None]) -> None:
        if self.done and self.status is Status.RUNNING:
            settle()

    def stop_at(self, pc: int) -> None:
        self.pc = pc

    def finish(self, status: Status, keep: str | None) -> None:
        S.release_locks(self, self.kind.program, keep)
        regs: list[Reg] = [UNSET] * len(self.regs)
        if keep is not None:
            regs[self.kind.reg[keep]] = self.regs[self.kind.reg[keep]]
        self.regs = regs
        self.pc, self.status, self.last, self.prog = len(self.kind.program.code), status, "", 0

    def failed(self, errnos: frozenset[str]) -> bool:
        return self.last != "" and (not errnos or self.last in errnos)

    def began(self) -> Began:
        return self.began_

    def published(self) -> bool:
        return self.pub

    def set_began(self, b: int) -> None:
        self.began_ = Began(b)

    # -- registers
    def _reg(self, name: str) -> Reg:
        return self.regs[self.kind.reg[name]]

    def held(self, reg: str) -> bool:
        return bool(self._reg(reg))

    def fd_ino(self, reg: str) -> int:
        d = self._reg(reg)
        return d.ino if isinstance(d, Desc) else -1

    def fd_off(self, reg: str) -> int:
        d = self._reg(reg)
        return d.off if isinstance(d, Desc) else 0

    def fd_mode(self, reg: str) -> int:
        d = self._reg(reg)
        return d.mode if isinstance(d, Desc) else 0

    def size_of(self, reg: str) -> int:
        s = self._reg(reg)
        return s.n if isinstance(s, Size) else -1

    def map_ino(self, reg: str) -> int:
        m = self._reg(reg)
        return m.ino if isinstance(m, Mapped) else -1

    def map_len(self, reg: str) -> int:
        m = self._reg(reg)
        return m.length if isinstance(m, Mapped) else 0

    def valid(self, reg: str, length: int) -> bool:
        b = self._reg(reg)
        return F.valid(b.data if isinstance(b, Buf) else None, length)

    def fd_append(self, reg: str) -> bool:
        d = self._reg(reg)
        return isinstance(d, Desc) and d.append

    def fd_lock(self, reg: str) -> int:
        d = self._reg(reg)
        return d.lock if isinstance(d, Desc) else 0

    def _set(self, reg: str, value: Reg) -> None:
        self.regs[self.kind.reg[reg]] = value

    def set_fd(self, reg: str, ino: int, off: int, mode: int, append: bool = False) -> None:
        self._set(reg, Desc(ino, off, mode, append))

    def set_fd_off(self, reg: str, off: int) -> None:
        d = self._reg(reg)
        assert isinstance(d, Desc)
        self._set(reg, d._replace(off=off))

    def set_fd_lock(self, reg: str, lock: int) -> None:
        d = self._reg(reg)
        assert isinstance(d, Desc)
        self._set(reg, d._replace(lock=lock))

    def set_size(self, reg: str, n: int) -> None:
        self._set(reg, Size(n))

    def set_buf(self, reg: str, buf: bytes) -> None:
        self._set(reg, Buf(buf))

    def set_map(self, reg: str, ino: int, n: int) -> None:
        self._set(reg, Mapped(ino, n))

    def clear(self, reg: str) -> None:
        self._set(reg, UNSET)

    # -- payloads
    def payload_len(self, name: str) -> int:
        return len(self.kind.payload(name))

    # -- the file system
    def lookup(self, path: Path) -> int:
        if path.private:
            return next((i for n, i in self.private if n == path.name), -1)
        ino = self.fs.lookup(path.name)
        return -1 if ino is None else ino

    def create(self) -> int:
        self.fs, ino = F.create(self.fs)
        return ino

    def bind(self, path: Path, ino: int) -> None:
        if path.private:
            self.private = tuple(sorted([(n, i) for n, i in self.private if n != path.name] + [(path.name, ino)]))
        else:
            self.fs = F.bind(self.fs, path.name, ino)

    def unbind(self, path: Path) -> None:
        if path.private:
            self.private = tuple((n, i) for n, i in self.private if n != path.name)
        else:
            self.fs = F.unbind(self.fs, path.name)

    def _content(self, ino: int) -> bytes:
        data = self.fs.contents[ino]
        assert not isinstance(data, F.Symlink), "a descriptor never holds a symlink (open follows it)"
        return data or b""

    def dir_exists(self, path: str) -> bool:
        return path in self.fs.dirs

    def add_dir(self, path: str) -> None:
        self.fs = F.add_dir(self.fs, path)

    def create_link(self, target: Path) -> int:
        self.fs, ino = F.create_symlink(self.fs, target.name)
        return ino

    def is_link(self, ino: int) -> bool:
        return ino >= 0 and isinstance(self.fs.contents[ino], F.Symlink)

    def _target(self, ino: int) -> str:
        link = self.fs.contents[ino]
        assert isinstance(link, F.Symlink)
        return link.target

    def link_target(self, ino: int) -> int:
        if not self.is_link(ino):
            return -1
        found = self.fs.lookup(self._target(ino))
        return -1 if found is None else found

    def bind_target(self, link: int, ino: int) -> None:
        self.fs = F.bind(self.fs, self._target(link), ino)

    def link_text(self, ino: int) -> bytes:
        return self._target(ino).encode()

    def lock_state(self, ino: int) -> int:
        return self.fs.lock(ino)

    def set_lock(self, ino: int, state: int) -> None:
        self.fs = F.set_lock(self.fs, ino, state)

    def file_size(self, ino: int) -> int:
        return self.fs.size(ino)

    def resize(self, ino: int, n: int) -> None:
        self.fs = F.set_content(self.fs, ino, F.truncate(self._content(ino), n))

    def write(self, ino: int, at: int, payload: str, first: int, count: int) -> None:
        if count:  # a write of no bytes changes nothing, even past the end
            chunk = self.kind.payload(payload)[first:first + count]
            self.fs = F.set_content(self.fs, ino, F.write_at(self._content(ino), at, chunk))

    def read(self, ino: int, off: int, n: int) -> tuple[bytes, int]:
        got = self._content(ino)[off:off + n]
        return got, len(got)

    def sync(self, ino: int) -> None:
        self.fs = F.sync(self.fs, ino)

    def mapped_read(self, ino: int, n: int) -> tuple[bool, bytes | None]:
        got = F.mapped_read(self._content(ino), n)
        return got is None, got

    def _buf(self, reg: str) -> bytes:
        b = self._reg(reg)
        return b.data if isinstance(b, Buf) else b""

    def buf_len(self, reg: str) -> int:
        return len(self._buf(reg))

    def write_buf(self, ino: int, at: int, reg: str, first: int, count: int) -> None:
        if count:
            chunk = self._buf(reg)[first:first + count]
            self.fs = F.set_content(self.fs, ino, F.write_at(self._content(ino), at, chunk))

    # -- the object store
    def obj_lookup(self, key: Key) -> int:
        got = self.fs.object(key.name)
        return -1 if got is None else got[0]

    def obj_etag(self, key: Key) -> int:
        got = self.fs.object(key.name)
        return -1 if got is None else got[1]

    def obj_bind(self, key: Key, ino: int) -> None:
        self.fs = F.put_object(self.fs, key.name, ino)

    def obj_unbind(self, key: Key) -> None:
        self.fs = F.delete_object(self.fs, key.name)

    def fill(self, ino: int, payload: str, first: int, count: int) -> None:
        self.write(ino, 0, payload, first, count)

    def obj_read(self, ino: int, n: int) -> bytes:
        return self._content(ino)[:n]


# ------------------------------------------------------------ transitions


def current(system: System, p: Proc) -> Instr | None:
    """The operation process ``p`` executes next, or None when it is done."""
    return None if p.status is not Status.RUNNING else system.kinds[p.kind].program.code[p.pc]


def write_length(kind: Kind, ins: Instr) -> int:
    """The bytes a write or pwrite writes (0 for any other operation)."""
    if isinstance(ins, (Write, PWrite)):
        d: Data = ins.data
        return len(kind.payload(d.payload)[d.start:d.stop])
    return 0


def fault_operand(kind: Kind, ins: Instr) -> int:
    """What ``spec.semantics.fault_options`` needs of an operation: a
    write's length; a GET's ``body`` payload's length (where a cut may
    fall); for a buffer write, the longest payload (its buffer's length is
    known only when it runs)."""
    if isinstance(ins, GetObject):
        return len(kind.payload(ins.body))
    if isinstance(ins, WriteBuf):
        return max((len(b) for _, b in kind.payloads), default=0)
    return write_length(kind, ins)


def local_faults(system: System, p: Proc, can_fault: bool) -> list[tuple[str, int]]:
    """The injected faults process ``p``'s next step may suffer."""
    ins = current(system, p)
    if ins is None or not can_fault:
        return []
    return S.fault_options(ins, fault_operand(system.kinds[p.kind], ins), p.progress, system.granularity)


def faults(system: System, world: World, i: int) -> list[tuple[str, int]]:
    """The injected faults process ``i``'s next step may suffer (within
    the system's fault budget)."""
    return local_faults(system, world.procs[i], world.faults < system.faults)


def step_local(system: System, p: Proc, fs: FileSystem, fault: Fault, pub: bool) -> tuple[Proc, FileSystem]:
    """Process ``p`` takes one step on ``fs``; ``pub``: has some writer
    already published (recorded by a reader's first step).  Raises
    Blocked when it cannot step now (a lock it waits for)."""
    if p.status is not Status.RUNNING:
        raise ValueError(f"the process has ended ({p.status.value})")
    k = system.kinds[p.kind]
    d = PyDom(k, p, fs, fault, system.granularity, pub, system.features)
    S.step(k.program, p.pc, d)
    return d.proc(p.kind), d.fs


def step(system: System, world: World, i: int, fault: Fault = None) -> World:
    """Process ``i`` takes one step (failing with ``fault`` if given)."""
    q, fs = step_local(system, world.procs[i], world.fs, fault, published(world))
    procs = world.procs[:i] + (q,) + world.procs[i + 1:]
    return World(fs, procs, world.faults + (1 if fault else 0))


def crash(world: World) -> World:
    """Power loss: every running process dies, every file reverts to its
    durable bytes.  Nothing runs afterwards (no recovery is modelled)."""
    procs = tuple(p if p.status is not Status.RUNNING else p._replace(status=Status.CRASHED, regs=(UNSET,) * len(p.regs))
                  for p in world.procs)
    return World(F.crash(world.fs), procs, world.faults, Crash.AFTER_PUBLICATION if published(world) else Crash.BEFORE_PUBLICATION)


def successors(system: System, world: World, i: int) -> list[tuple[Fault, World]]:
    """Every way process ``i`` can take its next step (none while it is
    blocked, or once it has ended)."""
    if world.procs[i].status is not Status.RUNNING:
        return []
    try:
        return [(f, step(system, world, i, f)) for f in [None, *faults(system, world, i)]]
    except Blocked:
        return []


def enabled(system: System, world: World, i: int) -> bool:
    """Can process ``i`` take a step now (running, and not waiting)?"""
    p = world.procs[i]
    if p.status is not Status.RUNNING:
        return False
    try:
        step_local(system, p, world.fs, None, published(world))
    except Blocked:
        return False
    return True


def start(system: System, kind: int, fs: FileSystem) -> Proc:
    """A new process of ``system.kinds[kind]`` at its first operation, on
    ``fs`` (its local control flow run up to there)."""
    k = system.kinds[kind]
    p = Proc(kind, 0, Status.RUNNING, "", 0, (UNSET,) * len(k.reg), (), Began.NOT_YET)
    d = PyDom(k, p, fs, None, system.granularity, False, system.features)
    S.settle(k.program, 0, d)
    return d.proc(kind)


def initial(system: System) -> World:
    """Every process at its first operation, on a file system holding only
    the directories the programs need (``Program.dirs``)."""
    fs = FileSystem(dirs=system.dirs)
    return World(fs, tuple(start(system, ki, fs) for ki in system.kind_of), 0)
