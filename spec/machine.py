"""The model interpreter: processes running programs over the file system.

A :class:`World` is the whole system at one instant: the file system, each
process's local state, and the faults used so far.  :func:`step` is the one
transition: process ``i`` executes its next operation (one byte of it at byte
granularity), optionally failing with an injected fault, and then runs its
local control flow (branches, jumps, return) up to its next operation; local
control flow is invisible to others, so it takes no step of its own.

Modelled: each process's descriptor table (an open description per
descriptor, with its own offset), its registers, private names (temp files),
and how it ended.  A process that returns releases its descriptors and
mappings, as exit would.  Not modelled: fork (no shared descriptions), threads
within a process, scheduling fairness (every interleaving is allowed).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, NamedTuple

from . import fs as F
from .fs import FileSystem
from .ops import (
    Chtimes,
    Close,
    Cond,
    Data,
    Failed,
    Fstat,
    Fsync,
    Ftruncate,
    Goto,
    If,
    Instr,
    Invalid,
    Length,
    MapRead,
    Mmap,
    Open,
    OpenFlags,
    Outcome,
    Path,
    Program,
    ProgramError,
    PWrite,
    Read,
    Rename,
    Return,
    Role,
    SizeIs,
    Stat,
    Unlink,
    Write,
)

RUNNING = "run"
SIGBUS = "sigbus"
CRASHED = "crashed"
READ_BIT, WRITE_BIT = 1, 2

# The errno each operation fails with when the fault budget injects a fault.
FAULT_ERRNO: dict[type, str] = {
    Open: F.EACCES,
    Write: F.ENOSPC,
    PWrite: F.ENOSPC,
    Ftruncate: F.EIO,
    Fsync: F.EIO,
    Close: F.EIO,
    Rename: F.EIO,
}


class Proc(NamedTuple):
    """One process's local state (a plain tuple, so states hash and sort fast).

    kind:     index of what it runs (program and payloads) in the Config.
    pc:       index of its next instruction; len(code) once it returned.
    status:   "run", an Outcome value ("ok", "fail", "hit", "miss") or "sigbus".
    last:     errno of its last operation, "" for success.
    progress: bytes of the current write already done (byte granularity).
    regs:     register values, by the program's register order: a descriptor
              (inode, offset, mode bits), a size (n,) (-1: no such file), a
              buffer (bytes,), a mapping (inode, length); () when unset.
    private:  its private names, sorted (name, inode) pairs.
    began:    0 not yet stepped, 1 first step before publication, 2 after.
    """

    kind: int
    pc: int
    status: str
    last: str
    progress: int
    regs: tuple[tuple[object, ...], ...]
    private: tuple[tuple[str, int], ...]
    began: int


class World(NamedTuple):
    """Everything: the file system, the processes, the faults used, and
    whether the machine crashed (0 no, 1 before any publication, 2 after)."""

    fs: FileSystem
    procs: tuple[Proc, ...]
    faults: int
    crashed: int = 0


@dataclass(frozen=True)
class Kind:
    """What a process runs: a program, its payloads, and derived tables."""

    protocol: str
    program: Program
    payloads: tuple[tuple[str, bytes], ...]
    reg: dict[str, int] = field(init=False, compare=False, repr=False)
    inode_regs: tuple[int, ...] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        names = self.program.registers()
        object.__setattr__(self, "reg", {n: i for i, n in enumerate(names)})
        holders = {getattr(i, "fd") for i in self.program.code if isinstance(i, Open)}
        holders |= {i.into for i in self.program.code if isinstance(i, Mmap)}
        object.__setattr__(self, "inode_regs", tuple(self.reg[n] for n in names if n in holders))

    def payload(self, name: str) -> bytes:
        for n, b in self.payloads:
            if n == name:
                return b
        raise ProgramError(f"{self.protocol}: no payload {name!r} (has {[n for n, _ in self.payloads]})")

    def length(self, n: Length) -> int:
        return n.delta if n.payload is None else len(self.payload(n.payload)) + n.delta

    def data(self, d: Data) -> bytes:
        return self.payload(d.payload)[d.start:d.stop]


@dataclass(frozen=True)
class Config:
    """The fixed part of a run: what each kind runs, and the bounds."""

    kinds: tuple[Kind, ...]
    granularity: str = "byte"
    fault_budget: int = 0

    def __post_init__(self) -> None:
        if self.granularity not in ("byte", "write"):
            raise ValueError(f"granularity must be 'byte' or 'write', not {self.granularity!r}")


# ------------------------------------------------------------ registers


def _get(p: Proc, k: Kind, name: str) -> tuple[object, ...]:
    return p.regs[k.reg[name]]


def _set(p: Proc, k: Kind, name: str, value: tuple[object, ...]) -> Proc:
    regs = list(p.regs)
    regs[k.reg[name]] = value
    return p._replace(regs=tuple(regs))


def _resolve(fs: FileSystem, p: Proc, path: Path) -> int | None:
    if path.private:
        return next((i for n, i in p.private if n == path.name), None)
    return fs.lookup(path.name)


def _bind(fs: FileSystem, p: Proc, path: Path, ino: int) -> tuple[FileSystem, Proc]:
    if path.private:
        priv = tuple(sorted([(n, i) for n, i in p.private if n != path.name] + [(path.name, ino)]))
        return fs, p._replace(private=priv)
    return F.bind(fs, path.name, ino), p


def _unbind(fs: FileSystem, p: Proc, path: Path) -> tuple[FileSystem, Proc]:
    if path.private:
        return fs, p._replace(private=tuple((n, i) for n, i in p.private if n != path.name))
    return F.unbind(fs, path.name), p


# ------------------------------------------------------------ operations
# Each handler returns the process (pc not yet advanced unless it finished
# a multi-step write) and the file system after the operation.  ``fault`` is
# None or (errno, k): k bytes land before the error (write granularity).

Fault = tuple[str, int] | None
Result = tuple[Proc, FileSystem, bool]  # (proc, fs, op complete)


def _fail(p: Proc, errno: str) -> Proc:
    return p._replace(last=errno)


def _open(ins: Open, p: Proc, fs: FileSystem, k: Kind, cfg: Config, fault: Fault) -> Result:
    if fault:
        return _fail(p, fault[0]), fs, True
    ino = _resolve(fs, p, ins.path)
    flags = ins.flags
    if ino is not None and OpenFlags.CREAT in flags and OpenFlags.EXCL in flags:
        return _fail(p, F.EEXIST), fs, True
    if ino is None:
        if OpenFlags.CREAT not in flags:
            return _fail(p, F.ENOENT), fs, True
        fs, ino = F.create(fs)
        fs, p = _bind(fs, p, ins.path, ino)
    mode = (READ_BIT if OpenFlags.READ in flags else 0) | (WRITE_BIT if OpenFlags.WRITE in flags else 0)
    if OpenFlags.TRUNC in flags:
        # Linux truncates even with O_RDONLY|O_TRUNC (POSIX leaves it undefined).
        fs = F.set_content(fs, ino, b"")
    return _set(p, k, ins.fd, (ino, 0, mode))._replace(last=""), fs, True


def _descriptor(p: Proc, k: Kind, fd: str, bit: int) -> tuple[int, int, int] | None:
    d = _get(p, k, fd)
    if not d or not (int(d[2]) & bit):  # type: ignore[call-overload]
        return None
    return int(d[0]), int(d[1]), int(d[2])  # type: ignore[call-overload]


def _write_common(p: Proc, fs: FileSystem, k: Kind, cfg: Config, fault: Fault, fd: str, data: bytes, at: int | None) -> Result:
    """write (at None: at the descriptor's offset, advancing it) or pwrite."""
    if at is not None and at < 0:
        # Linux's pwrite64 refuses a negative offset before it even looks
        # at the descriptor (EINVAL, not EBADF), and before a byte is written.
        return _fail(p, F.EINVAL), fs, True
    d = _descriptor(p, k, fd, WRITE_BIT)
    if d is None:
        return _fail(p, F.EBADF), fs, True
    ino, off, mode = d
    base = off if at is None else at
    if cfg.granularity == "write":
        n = fault[1] if fault else len(data)
        chunk, done = data[:n], True
    elif fault or not data:
        chunk, done = b"", True
    else:
        chunk = data[p.progress:p.progress + 1]
        done = p.progress + 1 == len(data)
    start = base + (0 if at is None or cfg.granularity == "write" else p.progress)
    if chunk:
        fs = F.set_content(fs, ino, F.write_at(fs.contents[ino] or b"", start, chunk))
    if at is None:
        p = _set(p, k, fd, (ino, off + len(chunk), mode))
    progress = 0 if done else p.progress + 1
    return p._replace(progress=progress, last=fault[0] if fault else ""), fs, done


def _write(ins: Write, p: Proc, fs: FileSystem, k: Kind, cfg: Config, fault: Fault) -> Result:
    return _write_common(p, fs, k, cfg, fault, ins.fd, k.data(ins.data), None)


def _pwrite(ins: PWrite, p: Proc, fs: FileSystem, k: Kind, cfg: Config, fault: Fault) -> Result:
    return _write_common(p, fs, k, cfg, fault, ins.fd, k.data(ins.data), ins.offset)


def _read(ins: Read, p: Proc, fs: FileSystem, k: Kind, cfg: Config, fault: Fault) -> Result:
    d = _descriptor(p, k, ins.fd, READ_BIT)
    if d is None:
        return _set(_fail(p, F.EBADF), k, ins.into, ()), fs, True
    ino, off, mode = d
    got = (fs.contents[ino] or b"")[off:off + k.length(ins.n)]
    p = _set(p, k, ins.fd, (ino, off + len(got), mode))
    return _set(p, k, ins.into, (got,))._replace(last=""), fs, True


def _ftruncate(ins: Ftruncate, p: Proc, fs: FileSystem, k: Kind, cfg: Config, fault: Fault) -> Result:
    n = k.length(ins.n)
    if n < 0:
        return _fail(p, F.EINVAL), fs, True  # Linux checks the length before the descriptor
    d = _descriptor(p, k, ins.fd, WRITE_BIT)
    if d is None:
        return _fail(p, F.EBADF if not _get(p, k, ins.fd) else F.EINVAL), fs, True
    if fault:
        return _fail(p, fault[0]), fs, True
    ino = d[0]
    return p._replace(last=""), F.set_content(fs, ino, F.truncate(fs.contents[ino] or b"", n)), True


def _fsync(ins: Fsync, p: Proc, fs: FileSystem, k: Kind, cfg: Config, fault: Fault) -> Result:
    d = _get(p, k, ins.fd)
    if not d:
        return _fail(p, F.EBADF), fs, True
    if fault:
        return _fail(p, fault[0]), fs, True
    return p._replace(last=""), F.sync(fs, int(d[0])), True  # type: ignore[call-overload]


def _close(ins: Close, p: Proc, fs: FileSystem, k: Kind, cfg: Config, fault: Fault) -> Result:
    if not _get(p, k, ins.fd):
        return _fail(p, F.EBADF), fs, True
    # Linux releases the descriptor even when close reports an error.
    p = _set(p, k, ins.fd, ())
    return (_fail(p, fault[0]) if fault else p._replace(last="")), fs, True


def _size_of(fs: FileSystem, ino: int | None) -> tuple[tuple[int], str]:
    return ((-1,), F.ENOENT) if ino is None else ((fs.size(ino),), "")


def _stat(ins: Stat, p: Proc, fs: FileSystem, k: Kind, cfg: Config, fault: Fault) -> Result:
    size, err = _size_of(fs, _resolve(fs, p, ins.path))
    return _set(p, k, ins.into, size)._replace(last=err), fs, True


def _fstat(ins: Fstat, p: Proc, fs: FileSystem, k: Kind, cfg: Config, fault: Fault) -> Result:
    d = _get(p, k, ins.fd)
    if not d:
        return _set(_fail(p, F.EBADF), k, ins.into, (-1,)), fs, True
    return _set(p, k, ins.into, (fs.size(int(d[0])),))._replace(last=""), fs, True  # type: ignore[call-overload]


def _unlink(ins: Unlink, p: Proc, fs: FileSystem, k: Kind, cfg: Config, fault: Fault) -> Result:
    if _resolve(fs, p, ins.path) is None:
        return _fail(p, F.ENOENT), fs, True
    fs, p = _unbind(fs, p, ins.path)
    return p._replace(last=""), fs, True


def _rename(ins: Rename, p: Proc, fs: FileSystem, k: Kind, cfg: Config, fault: Fault) -> Result:
    if fault:
        return _fail(p, fault[0]), fs, True
    ino = _resolve(fs, p, ins.src)
    if ino is None:
        return _fail(p, F.ENOENT), fs, True
    fs, p = _unbind(fs, p, ins.src)
    fs, p = _bind(fs, p, ins.dst, ino)
    return p._replace(last=""), fs, True


def _chtimes(ins: Chtimes, p: Proc, fs: FileSystem, k: Kind, cfg: Config, fault: Fault) -> Result:
    return p._replace(last="" if _resolve(fs, p, ins.path) is not None else F.ENOENT), fs, True


def _mmap(ins: Mmap, p: Proc, fs: FileSystem, k: Kind, cfg: Config, fault: Fault) -> Result:
    d, size = _get(p, k, ins.fd), _get(p, k, ins.size)
    if not d:
        return _fail(p, F.EBADF), fs, True
    if not size or int(size[0]) < 0:  # type: ignore[call-overload]
        return _fail(p, F.EINVAL), fs, True
    if int(size[0]) > 0 and not int(d[2]) & READ_BIT:  # type: ignore[call-overload]
        return _fail(p, F.EACCES), fs, True  # PROT_READ needs a readable descriptor
    return _set(p, k, ins.into, (d[0], size[0]))._replace(last=""), fs, True


def _map_read(ins: MapRead, p: Proc, fs: FileSystem, k: Kind, cfg: Config, fault: Fault) -> Result:
    m = _get(p, k, ins.map)
    if not m:
        return _fail(p, F.EINVAL), fs, True
    got = F.mapped_read(fs.contents[int(m[0])] or b"", int(m[1]))  # type: ignore[call-overload]
    if got is None:
        return _finish(p, k, SIGBUS, None), fs, True
    return _set(p, k, ins.into, (got,))._replace(last=""), fs, True


Handler = Callable[..., Result]
HANDLERS: dict[type, Handler] = {
    Open: _open,
    Write: _write,
    PWrite: _pwrite,
    Read: _read,
    Ftruncate: _ftruncate,
    Fsync: _fsync,
    Close: _close,
    Stat: _stat,
    Fstat: _fstat,
    Unlink: _unlink,
    Rename: _rename,
    Chtimes: _chtimes,
    Mmap: _mmap,
    MapRead: _map_read,
}


# ------------------------------------------------------------ control flow


def holds(cond: Cond, p: Proc, k: Kind) -> bool:
    """Evaluate a branch condition on the process's local state."""
    if isinstance(cond, Failed):
        return p.last != "" and (not cond.errnos or p.last in cond.errnos)
    if isinstance(cond, SizeIs):
        v = _get(p, k, cond.reg)
        size, n = (int(v[0]) if v else -1), k.length(cond.n)  # type: ignore[call-overload]
        if cond.op == "==":
            return size == n
        if cond.op == "!=":
            return size != n
        if cond.op == ">":
            return size > n
        raise ProgramError(f"unknown comparison {cond.op!r}")
    if isinstance(cond, Invalid):
        v = _get(p, k, cond.reg)
        return not valid(v[0] if v else None, len(k.payload(cond.payload)))  # type: ignore[arg-type]
    raise ProgramError(f"unknown condition {cond!r}")


def valid(buf: bytes | None, length: int) -> bool:
    """The reader's validation: exactly ``length`` bytes, none of them a
    zero byte of a hole (Go's parser rejects NUL in every field)."""
    return buf is not None and len(buf) == length and 0 not in buf


def _finish(p: Proc, k: Kind, status: str, value: str | None) -> Proc:
    """Return: exit releases descriptors and mappings; a hit keeps its value."""
    regs: list[tuple[object, ...]] = [()] * len(p.regs)
    if value is not None:
        regs[k.reg[value]] = p.regs[k.reg[value]]
    return p._replace(pc=len(k.program.code), status=status, last="", progress=0, regs=tuple(regs))


def settle(p: Proc, k: Kind, fs: FileSystem) -> Proc:
    """Run local control flow from ``p.pc`` up to the next operation.

    ``chtimes`` runs here too, as part of the step before it: times are not
    modelled, so it changes nothing another process can see and commutes
    with every other step; folding it in is a sound reduction (it would
    otherwise add a step, and states, to every writer)."""
    code, targets = k.program.code, k.program.targets
    for _ in range(len(code) + 1):
        if p.status != RUNNING:
            return p
        ins = code[p.pc]
        if isinstance(ins, If):
            p = p._replace(pc=targets[p.pc] if holds(ins.cond, p, k) else p.pc + 1)
        elif isinstance(ins, Goto):
            p = p._replace(pc=targets[p.pc])
        elif isinstance(ins, Chtimes):
            p = _chtimes(ins, p, fs, k, None, None)[0]._replace(pc=p.pc + 1)  # type: ignore[arg-type]
        elif isinstance(ins, Return):
            hit = ins.outcome is Outcome.HIT
            p = _finish(p, k, ins.outcome.value, ins.value if hit else None)
        else:
            return p
    raise ProgramError(f"{k.protocol}: a loop with no operation in it at pc {p.pc}")


# ------------------------------------------------------------ transitions


def published(world: World) -> bool:
    """Has some writer returned success?  (Only writers end "ok".)"""
    return any(q.status == Outcome.OK.value for q in world.procs)


def current(cfg: Config, p: Proc) -> Instr | None:
    """The operation process ``p`` executes next, or None when it is done."""
    return None if p.status != RUNNING else cfg.kinds[p.kind].program.code[p.pc]


def local_faults(cfg: Config, p: Proc, can_fault: bool) -> list[tuple[str, int]]:
    """The injected faults process ``p``'s next step may suffer."""
    ins = current(cfg, p)
    if ins is None or not can_fault or type(ins) not in FAULT_ERRNO:
        return []
    errno = FAULT_ERRNO[type(ins)]
    k = cfg.kinds[p.kind]
    if isinstance(ins, (Write, PWrite)):
        n = len(k.data(ins.data))
        if cfg.granularity == "write":
            return [(errno, j) for j in range(n)]
        return [(errno, p.progress)] if n else []
    if isinstance(ins, Open) and ins.flags == OpenFlags.READ:
        return []  # readers' opens do not fail: a failed lookup is a plain miss
    return [(errno, 0)]


def faults(cfg: Config, world: World, i: int) -> list[tuple[str, int]]:
    """The injected faults process ``i``'s next step may suffer."""
    return local_faults(cfg, world.procs[i], world.faults < cfg.fault_budget)


def step_local(cfg: Config, p: Proc, fs: FileSystem, fault: Fault, pub: bool) -> tuple[Proc, FileSystem]:
    """Process ``p`` takes one step on ``fs``; ``pub``: has some writer
    already published (recorded by a reader's first step)."""
    k = cfg.kinds[p.kind]
    ins = current(cfg, p)
    if ins is None:
        raise ValueError(f"the process has ended ({p.status})")
    q, fs, done = HANDLERS[type(ins)](ins, p, fs, k, cfg, fault)
    if p.began == 0 and k.program.role is Role.READER:
        q = q._replace(began=2 if pub else 1)
    if done and q.status == RUNNING:
        q = settle(q._replace(pc=q.pc + 1), k, fs)
    return q, fs


def step(cfg: Config, world: World, i: int, fault: Fault = None) -> World:
    """Process ``i`` takes one step (failing with ``fault`` if given)."""
    q, fs = step_local(cfg, world.procs[i], world.fs, fault, published(world))
    procs = world.procs[:i] + (q,) + world.procs[i + 1:]
    return World(fs, procs, world.faults + (1 if fault else 0))


def crash(world: World) -> World:
    """Power loss: every running process dies, every file reverts to its
    durable bytes.  Nothing runs afterwards (no recovery is modelled)."""
    procs = tuple(p if p.status != RUNNING else p._replace(status=CRASHED, regs=((),) * len(p.regs)) for p in world.procs)
    return World(F.crash(world.fs), procs, world.faults, 2 if published(world) else 1)


def successors(cfg: Config, world: World, i: int) -> list[tuple[Fault, World]]:
    """Every way process ``i`` can take its next step."""
    if world.procs[i].status != RUNNING:
        return []
    out: list[tuple[Fault, World]] = [(None, step(cfg, world, i))]
    for f in faults(cfg, world, i):
        out.append((f, step(cfg, world, i, f)))
    return out


def initial(cfg: Config, kinds_of_procs: tuple[int, ...]) -> World:
    """Every process at its first operation, on an empty file system."""
    procs = []
    for ki in kinds_of_procs:
        k = cfg.kinds[ki]
        p = Proc(ki, 0, RUNNING, "", 0, ((),) * len(k.reg), (), 0)
        procs.append(settle(p, k, FileSystem()))
    return World(FileSystem(), tuple(procs), 0)
