"""The solver interpreter: each instruction of ``spec.ops`` as a Z3 transition.

One symbolic state (:class:`SymState`) stands for every state of the model
(``spec.machine.World``) at once.  Per-process fields are Z3 arrays indexed
by a process id, so the same encoding serves a fixed N (bounded model
checking: ids 0..N-1) and an unbounded one (every integer is a process; a
process that never steps is simply idle).  :func:`step` builds, from the
*program values* (``program.code``, ``program.targets``) and nothing else,
the state after process ``p`` runs its next operation with or without an
injected fault: no protocol is encoded by hand.

Modelled exactly as ``spec.machine`` does at byte granularity: open flags
(CREAT, EXCL, TRUNC, read/write mode), one byte per write step with a
progress counter, zero-filled holes, ftruncate that shrinks or zero-extends,
per-process private names, unlink, atomic rename, stat/fstat sizes, mmap and
page-granular SIGBUS, the fault of each operation (``FAULT_ERRNO``, no bytes
land on a faulted byte step, readers' opens never fault), local control flow
(branches, gotos, chtimes, return) folded into the preceding operation, and
a reader's ``began`` mark (before/after the first publication).

Abstracted (and why it is sound for the properties proved):

- a *buffer* register keeps its length and whether it holds a zero byte, not
  its bytes: the reader's validation (``spec.machine.valid``) looks at
  nothing else, so every branch a reader takes is decided exactly;
- file content past a file's size is unspecified (the model has no bytes
  there); every read clips to the size, and growth zero-fills explicitly;
- inodes are never collected: an inode nobody names or holds is unreachable
  and changes nothing;
- ``published(world)`` is a ghost flag set when a writer returns ok (ok is
  final, so the flag equals the model's "some process has status ok");
- only byte granularity (the explorer's default) is encoded, and no power
  loss (``Setup.crashes`` = 0): durable content is not represented, so
  nothing here speaks about the crash properties.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable, Mapping

import z3  # type: ignore[import-untyped]

from spec import fs as F
from spec.machine import FAULT_ERRNO, READ_BIT, RUNNING, SIGBUS, WRITE_BIT
from spec.ops import (
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

# Errnos and statuses as small integers (index = code).
ERRNOS: tuple[str, ...] = ("", F.ENOENT, F.EEXIST, F.EBADF, F.EINVAL, F.ENOSPC, F.EIO, F.EACCES)
STATUSES: tuple[str, ...] = (RUNNING, Outcome.OK.value, Outcome.FAIL.value, Outcome.HIT.value, Outcome.MISS.value, SIGBUS)
OK_CODE = STATUSES.index(Outcome.OK.value)
RUN_CODE = STATUSES.index(RUNNING)


def errno_code(name: str) -> int:
    """The integer standing for errno ``name`` ("" is success)."""
    return ERRNOS.index(name)


def status_code(name: str) -> int:
    """The integer standing for process status ``name``."""
    return STATUSES.index(name)


# ------------------------------------------------------------ kinds and bytes


@dataclass(frozen=True)
class SymPayload:
    """A payload: its length and its bytes (an Int array, byte b at index b;
    a zero byte is what the reader's validation rejects)."""

    length: z3.ArithRef
    data: z3.ArrayRef


@dataclass(frozen=True)
class SymKind:
    """What a process runs: a catalogue program and its payloads."""

    protocol: str
    program: Program
    payloads: Mapping[str, SymPayload]

    def payload(self, name: str) -> SymPayload:
        if name not in self.payloads:
            raise ProgramError(f"{self.protocol}: no payload {name!r}")
        return self.payloads[name]

    def length(self, n: Length) -> z3.ArithRef:
        if n.payload is None:
            return z3.IntVal(n.delta)
        return self.payload(n.payload).length + n.delta

    def data(self, d: Data) -> tuple[z3.ArithRef, z3.ArithRef, z3.ArrayRef]:
        """(first index, byte count, byte array) of ``payload[start:stop]``,
        with Python's slice rules on a symbolic length."""
        pl = self.payload(d.payload)
        lo = _slice_index(d.start, pl.length, 0)
        hi = _slice_index(d.stop, pl.length, None)
        return lo, _max(z3.IntVal(0), hi - lo), pl.data


def _slice_index(i: int | None, n: z3.ArithRef, default: int | None) -> z3.ArithRef:
    if i is None:
        return n if default is None else z3.IntVal(default)
    raw = n + i if i < 0 else z3.IntVal(i)
    return _min(_max(z3.IntVal(0), raw), n)


def _max(a: z3.ArithRef, b: z3.ArithRef) -> z3.ArithRef:
    return z3.If(a >= b, a, b)


def _min(a: z3.ArithRef, b: z3.ArithRef) -> z3.ArithRef:
    return z3.If(a <= b, a, b)


@dataclass(frozen=True)
class Bytes:
    """How to say "for every byte index below n": a finite conjunction when
    every length is concrete and at most ``bound`` (bounded model checking,
    quantifier-free), a quantifier otherwise (unbounded proofs)."""

    bound: int | None = None

    def forall_below(self, n: z3.ArithRef, body: Callable[[z3.ArithRef], z3.BoolRef]) -> z3.BoolRef:
        if self.bound is None:
            b = z3.FreshInt("b")
            return z3.ForAll([b], z3.Implies(z3.And(b >= 0, b < n), body(b)))
        return z3.And([z3.Implies(j < n, body(z3.IntVal(j))) for j in range(self.bound)])

    def zero_fill(self, data: z3.ArrayRef, ino: z3.ArithRef, lo: z3.ArithRef, hi: z3.ArithRef) -> z3.ArrayRef:
        """``data`` with bytes [lo, hi) of inode ``ino`` set to zero: a
        lambda when unbounded, else one Store per byte index below the bound
        (no byte at or past the bound is ever touched in a bounded run:
        every write lands below the longest payload)."""
        if self.bound is None:
            i, b = z3.FreshInt("i"), z3.FreshInt("b")
            return z3.Lambda([i, b], z3.If(z3.And(i == ino, b >= lo, b < hi), z3.IntVal(0), data[i, b]))
        for j in range(self.bound):
            data = z3.Store(data, ino, j, z3.If(z3.And(lo <= j, j < hi), z3.IntVal(0), data[ino, j]))
        return data


# ------------------------------------------------------------ registers

FD, SIZE, BUF, MAP = "fd", "size", "buf", "map"
# Fields of each register class, and whether each is Bool (else Int).
REG_FIELDS: dict[str, tuple[tuple[str, bool], ...]] = {
    FD: (("set", True), ("ino", False), ("off", False), ("mode", False)),
    SIZE: (("n", False),),  # -1: unset or no such file (the model treats both alike)
    BUF: (("set", True), ("len", False), ("nz", True)),  # nz: holds no zero byte
    MAP: (("set", True), ("ino", False), ("n", False)),
}


def register_classes(programs: tuple[Program, ...]) -> dict[str, str]:
    """Each register name the programs use, and its class."""
    out: dict[str, str] = {}

    def put(name: str, cls: str) -> None:
        if out.setdefault(name, cls) != cls:
            raise ProgramError(f"register {name!r} used both as {out[name]} and {cls}")

    for prog in programs:
        for ins in prog.code:
            if isinstance(ins, Open):
                put(ins.fd, FD)
            elif isinstance(ins, (Stat, Fstat)):
                put(ins.into, SIZE)
            elif isinstance(ins, (Read, MapRead)):
                put(ins.into, BUF)
            elif isinstance(ins, Mmap):
                put(ins.into, MAP)
    return out


def _reg_default(cls: str, fname: str, is_bool: bool) -> z3.ExprRef:
    if is_bool:
        return z3.BoolVal(False)
    return z3.IntVal(-1 if (cls, fname) == (SIZE, "n") else 0)


# ------------------------------------------------------------ state


@dataclass(frozen=True)
class Local:
    """One process's local state, as scalars (read out of the arrays)."""

    pc: z3.ArithRef
    st: z3.ArithRef
    last: z3.ArithRef
    prog: z3.ArithRef
    began: z3.ArithRef
    regs: Mapping[tuple[str, str], z3.ExprRef]
    priv: Mapping[str, z3.ArithRef]

    def reg(self, name: str, fname: str) -> z3.ExprRef:
        return self.regs[(name, fname)]

    def with_regs(self, name: str, **values: z3.ExprRef) -> "Local":
        regs = dict(self.regs)
        for k, v in values.items():
            regs[(name, k)] = v
        return replace(self, regs=regs)


@dataclass(frozen=True)
class SymFS:
    """The shared file system: names, inode sizes and bytes, next inode."""

    names: Mapping[str, z3.ArithRef]  # shared path -> inode, -1 when absent
    size: z3.ArrayRef  # inode -> size
    data: z3.ArrayRef  # (inode, byte) -> byte (0..255); unspecified past size
    nino: z3.ArithRef  # the next inode number create() hands out


@dataclass(frozen=True)
class SymState:
    """A symbolic World.

    pc, st, last, prog, began: per-process arrays (program counter, status
    code, errno code of the last op, bytes of the current write done, 0/1/2
    as ``Proc.began``); regs: (register, field) -> per-process array;
    priv: private path -> per-process array of inodes (-1: unbound);
    fs: the shared file system; faults: injected faults so far;
    pub: some writer has returned ok; pub_path: some writer that publishes
    that path has returned ok.
    """

    pc: z3.ArrayRef
    st: z3.ArrayRef
    last: z3.ArrayRef
    prog: z3.ArrayRef
    began: z3.ArrayRef
    regs: Mapping[tuple[str, str], z3.ArrayRef]
    priv: Mapping[str, z3.ArrayRef]
    fs: SymFS
    faults: z3.ArithRef
    pub: z3.BoolRef
    pub_path: Mapping[str, z3.BoolRef]

    def local(self, p: z3.ArithRef) -> Local:
        return Local(self.pc[p], self.st[p], self.last[p], self.prog[p], self.began[p],
                     {k: a[p] for k, a in self.regs.items()}, {k: a[p] for k, a in self.priv.items()})

    def file_ino(self, path: str) -> z3.ArithRef:
        return self.fs.names[path]


@dataclass(frozen=True)
class System:
    """The fixed part: the kinds, which kind each process id runs, how byte
    quantifiers are expanded, and the fault budget (None: unlimited)."""

    kinds: tuple[SymKind, ...]
    kind_of: z3.ArrayRef  # process id -> kind index
    bytes: Bytes = field(default_factory=Bytes)
    fault_budget: int | None = None
    reg_class: dict[str, str] = field(init=False, compare=False)
    shared_paths: tuple[str, ...] = field(init=False, compare=False)
    private_paths: tuple[str, ...] = field(init=False, compare=False)

    def __post_init__(self) -> None:
        progs = tuple(k.program for k in self.kinds)
        object.__setattr__(self, "reg_class", register_classes(progs))
        shared: set[str] = set()
        private: set[str] = set()
        for prog in progs:
            for ins in prog.code:
                for attr in ("path", "src", "dst"):
                    path = getattr(ins, attr, None)
                    if isinstance(path, Path):
                        (private if path.private else shared).add(path.name)
            for path, _ in prog.publishes:
                shared.add(path.name)
            shared.add(prog.reads.name)
        object.__setattr__(self, "shared_paths", tuple(sorted(shared)))
        object.__setattr__(self, "private_paths", tuple(sorted(private)))

    def published_paths(self) -> tuple[str, ...]:
        return tuple(sorted({p.name for k in self.kinds for p, _ in k.program.publishes}))

    def fields(self) -> list[tuple[str, str, bool]]:
        """(register, field, is_bool) for every register field."""
        return [(r, f, b) for r, cls in self.reg_class.items() for f, b in REG_FIELDS[cls]]


def fresh_state(sysm: System, tag: str) -> SymState:
    """A state of unconstrained fresh constants (names end in ``tag``)."""
    I, B = z3.IntSort(), z3.BoolSort()

    def arr(name: str, rng: z3.SortRef = I) -> z3.ArrayRef:
        return z3.Array(f"{name}{tag}", I, rng)

    regs = {(r, f): arr(f"{r}.{f}", B if b else I) for r, f, b in sysm.fields()}
    fs = SymFS({n: z3.Int(f"name:{n}{tag}") for n in sysm.shared_paths}, arr("size"),
               z3.Array(f"data{tag}", I, I, I), z3.Int(f"nino{tag}"))
    return SymState(arr("pc"), arr("st"), arr("last"), arr("prog"), arr("began"), regs,
                     {n: arr(f"priv:{n}") for n in sysm.private_paths}, fs, z3.Int(f"faults{tag}"),
                     z3.Bool(f"pub{tag}"), {n: z3.Bool(f"pub:{n}{tag}") for n in sysm.published_paths()})


def initial_state(sysm: System, n: int | None = None) -> SymState:
    """Every process at its first operation (after settling), on an empty
    file system; as terms, so no quantifier is needed to state it (for
    ``n`` processes, arrays of Stores; for all integers, a lambda over the
    process's kind)."""
    I = z3.IntSort()
    p = z3.Int("p_init")
    pcs = [settle(k, 0, _blank_local(sysm, k), _empty_fs(sysm), sysm).pc for k in sysm.kinds]
    sts = [settle(k, 0, _blank_local(sysm, k), _empty_fs(sysm), sysm).st for k in sysm.kinds]

    def by_kind(vals: list[z3.ArithRef]) -> z3.ArrayRef:
        if n is not None:
            arr: z3.ArrayRef = z3.K(I, vals[0])
            for i in range(n):
                arr = z3.Store(arr, i, z3.simplify(z3.substitute(by_kind_expr(vals), (p, z3.IntVal(i)))))
            return arr
        return z3.Lambda([p], by_kind_expr(vals))

    def by_kind_expr(vals: list[z3.ArithRef]) -> z3.ArithRef:
        expr: z3.ArithRef = vals[-1]
        for i in range(len(vals) - 2, -1, -1):
            expr = z3.If(sysm.kind_of[p] == i, vals[i], expr)
        return expr

    regs = {(r, f): z3.K(I, _reg_default(sysm.reg_class[r], f, b)) for r, f, b in sysm.fields()}
    return SymState(by_kind(pcs), by_kind(sts), z3.K(I, z3.IntVal(0)), z3.K(I, z3.IntVal(0)), z3.K(I, z3.IntVal(0)),
                    regs, {n: z3.K(I, z3.IntVal(-1)) for n in sysm.private_paths}, _empty_fs(sysm),
                    z3.IntVal(0), z3.BoolVal(False), {n: z3.BoolVal(False) for n in sysm.published_paths()})


def _empty_fs(sysm: System) -> SymFS:
    # Content past a file's size is unspecified: an unconstrained array.
    I = z3.IntSort()
    return SymFS({n: z3.IntVal(-1) for n in sysm.shared_paths}, z3.K(I, z3.IntVal(0)),
                 z3.Array("data@init", I, I, I), z3.IntVal(0))


def _blank_local(sysm: System, k: SymKind) -> Local:
    regs = {(r, f): _reg_default(sysm.reg_class[r], f, b) for r, f, b in sysm.fields()}
    z = z3.IntVal(0)
    return Local(z, z3.IntVal(RUN_CODE), z, z, z, regs, {n: z3.IntVal(-1) for n in sysm.private_paths})


# ------------------------------------------------------------ merging


def _ite(c: z3.BoolRef, a: z3.ExprRef, b: z3.ExprRef) -> z3.ExprRef:
    return a if a.eq(b) else z3.If(c, a, b)


def merge_local(c: z3.BoolRef, a: Local, b: Local) -> Local:
    """``a`` where ``c`` holds, else ``b``, field by field."""
    return Local(_ite(c, a.pc, b.pc), _ite(c, a.st, b.st), _ite(c, a.last, b.last), _ite(c, a.prog, b.prog),
                 _ite(c, a.began, b.began), {k: _ite(c, v, b.regs[k]) for k, v in a.regs.items()},
                 {k: _ite(c, v, b.priv[k]) for k, v in a.priv.items()})


def merge_fs(c: z3.BoolRef, a: SymFS, b: SymFS) -> SymFS:
    return SymFS({k: _ite(c, v, b.names[k]) for k, v in a.names.items()}, _ite(c, a.size, b.size),
                 _ite(c, a.data, b.data), _ite(c, a.nino, b.nino))


# ------------------------------------------------------------ operations
# A handler returns (local, fs, done): ``done`` is False only for a byte of
# a write that is not its last.  ``fault`` is a Bool: the step suffers the
# operation's injected fault (only where ``fault_allowed`` says it may).

Result = tuple[Local, SymFS, z3.BoolRef]
TRUE, FALSE = z3.BoolVal(True), z3.BoolVal(False)


def _err(name: str) -> z3.ArithRef:
    return z3.IntVal(errno_code(name))


def _resolve(fs: SymFS, loc: Local, path: Path) -> z3.ArithRef:
    return loc.priv[path.name] if path.private else fs.names[path.name]


def _bind(fs: SymFS, loc: Local, path: Path, ino: z3.ArithRef) -> tuple[SymFS, Local]:
    if path.private:
        return fs, replace(loc, priv={**loc.priv, path.name: ino})
    return replace(fs, names={**fs.names, path.name: ino}), loc


def _set_size(fs: SymFS, ino: z3.ArithRef, n: z3.ArithRef, sysm: System, zero_from: z3.ArithRef | None = None) -> SymFS:
    """Size of ``ino`` becomes ``n``; bytes in [zero_from, n) become zero
    (the zero-extension of ftruncate and of a write past the end)."""
    data = fs.data if zero_from is None else sysm.bytes.zero_fill(fs.data, ino, zero_from, n)
    return replace(fs, size=z3.Store(fs.size, ino, n), data=data)


def _fd_ok(loc: Local, fd: str, bit: int) -> z3.BoolRef:
    mode = loc.reg(fd, "mode")
    bits = [m for m in (1, 2, 3) if m & bit]
    return z3.And(loc.reg(fd, "set"), z3.Or([mode == m for m in bits]))


def _open(ins: Open, k: SymKind, loc: Local, fs: SymFS, fault: z3.BoolRef, sysm: System) -> Result:
    ino = _resolve(fs, loc, ins.path)
    flags = ins.flags
    exists = ino >= 0
    eexist = z3.And(exists, z3.BoolVal(OpenFlags.CREAT in flags and OpenFlags.EXCL in flags))
    enoent = z3.And(z3.Not(exists), z3.BoolVal(OpenFlags.CREAT not in flags))
    ok = z3.And(z3.Not(fault), z3.Not(eexist), z3.Not(enoent))
    create = z3.And(ok, z3.Not(exists))
    new = z3.If(exists, ino, fs.nino)
    made, mloc = _bind(replace(_set_size(fs, fs.nino, z3.IntVal(0), sysm), nino=fs.nino + 1), loc, ins.path, fs.nino)
    fs2, loc2 = merge_fs(create, made, fs), merge_local(create, mloc, loc)
    mode = (READ_BIT if OpenFlags.READ in flags else 0) | (WRITE_BIT if OpenFlags.WRITE in flags else 0)
    if OpenFlags.TRUNC in flags:
        # Linux truncates even with O_RDONLY|O_TRUNC, as spec.machine does.
        fs2 = merge_fs(ok, _set_size(fs2, new, z3.IntVal(0), sysm), fs2)
    opened = loc2.with_regs(ins.fd, set=TRUE, ino=new, off=z3.IntVal(0), mode=z3.IntVal(mode))
    last = z3.If(fault, _err(FAULT_ERRNO[Open]), z3.If(eexist, _err(F.EEXIST), z3.If(enoent, _err(F.ENOENT), _err(""))))
    return replace(merge_local(ok, opened, loc2), last=last), fs2, TRUE


def _write_common(sysm: System, k: SymKind, loc: Local, fs: SymFS, fault: z3.BoolRef, fd: str, data: Data, at: int | None) -> Result:
    lo, n, pay = k.data(data)
    ok = _fd_ok(loc, fd, WRITE_BIT)
    ino, off = loc.reg(fd, "ino"), loc.reg(fd, "off")
    writes = z3.And(ok, z3.Not(fault), n > 0)
    start = off if at is None else z3.IntVal(at) + loc.prog
    old = fs.size[ino]
    grown = _set_size(fs, ino, _max(old, start + 1), sysm, zero_from=old)
    wrote = replace(grown, data=z3.Store(grown.data, ino, start, pay[lo + loc.prog]))
    done = z3.Or(z3.Not(writes), loc.prog + 1 == n)
    loc2 = loc if at is not None else merge_local(writes, loc.with_regs(fd, off=off + 1), loc)
    loc2 = replace(loc2, prog=z3.If(ok, z3.If(done, z3.IntVal(0), loc.prog + 1), loc.prog),
                   last=z3.If(z3.Not(ok), _err(F.EBADF), z3.If(fault, _err(F.ENOSPC), _err(""))))
    return loc2, merge_fs(writes, wrote, fs), done


def _write(ins: Write, k: SymKind, loc: Local, fs: SymFS, fault: z3.BoolRef, sysm: System) -> Result:
    return _write_common(sysm, k, loc, fs, fault, ins.fd, ins.data, None)


def _pwrite(ins: PWrite, k: SymKind, loc: Local, fs: SymFS, fault: z3.BoolRef, sysm: System) -> Result:
    return _write_common(sysm, k, loc, fs, fault, ins.fd, ins.data, ins.offset)


def _no_zero(sysm: System, fs: SymFS, ino: z3.ArithRef, start: z3.ArithRef, n: z3.ArithRef) -> z3.BoolRef:
    return sysm.bytes.forall_below(n, lambda j: fs.data[ino, start + j] != 0)


def _read(ins: Read, k: SymKind, loc: Local, fs: SymFS, fault: z3.BoolRef, sysm: System) -> Result:
    ok = _fd_ok(loc, ins.fd, READ_BIT)
    ino, off = loc.reg(ins.fd, "ino"), loc.reg(ins.fd, "off")
    got = _max(z3.IntVal(0), _min(k.length(ins.n), fs.size[ino] - off))
    good = loc.with_regs(ins.fd, off=off + got).with_regs(ins.into, set=TRUE, len=got, nz=_no_zero(sysm, fs, ino, off, got))
    bad = loc.with_regs(ins.into, set=FALSE, len=z3.IntVal(0), nz=FALSE)
    return replace(merge_local(ok, good, bad), last=z3.If(ok, _err(""), _err(F.EBADF))), fs, TRUE


def _ftruncate(ins: Ftruncate, k: SymKind, loc: Local, fs: SymFS, fault: z3.BoolRef, sysm: System) -> Result:
    ok = _fd_ok(loc, ins.fd, WRITE_BIT)
    ino, n = loc.reg(ins.fd, "ino"), k.length(ins.n)
    does = z3.And(ok, z3.Not(fault))
    last = z3.If(z3.Not(loc.reg(ins.fd, "set")), _err(F.EBADF),
                 z3.If(z3.Not(ok), _err(F.EINVAL), z3.If(fault, _err(FAULT_ERRNO[Ftruncate]), _err(""))))
    return replace(loc, last=last), merge_fs(does, _set_size(fs, ino, n, sysm, zero_from=fs.size[ino]), fs), TRUE


def _fsync(ins: Fsync, k: SymKind, loc: Local, fs: SymFS, fault: z3.BoolRef, sysm: System) -> Result:
    last = z3.If(z3.Not(loc.reg(ins.fd, "set")), _err(F.EBADF), z3.If(fault, _err(FAULT_ERRNO[Fsync]), _err("")))
    return replace(loc, last=last), fs, TRUE


def _close(ins: Close, k: SymKind, loc: Local, fs: SymFS, fault: z3.BoolRef, sysm: System) -> Result:
    held = loc.reg(ins.fd, "set")
    # Linux releases the descriptor even when close reports an error.
    last = z3.If(z3.Not(held), _err(F.EBADF), z3.If(fault, _err(FAULT_ERRNO[Close]), _err("")))
    released = loc.with_regs(ins.fd, set=FALSE, ino=z3.IntVal(0), off=z3.IntVal(0), mode=z3.IntVal(0))
    return replace(merge_local(held, released, loc), last=last), fs, TRUE


def _stat(ins: Stat, k: SymKind, loc: Local, fs: SymFS, fault: z3.BoolRef, sysm: System) -> Result:
    ino = _resolve(fs, loc, ins.path)
    found = ino >= 0
    loc2 = loc.with_regs(ins.into, n=z3.If(found, fs.size[ino], z3.IntVal(-1)))
    return replace(loc2, last=z3.If(found, _err(""), _err(F.ENOENT))), fs, TRUE


def _fstat(ins: Fstat, k: SymKind, loc: Local, fs: SymFS, fault: z3.BoolRef, sysm: System) -> Result:
    held = loc.reg(ins.fd, "set")
    loc2 = loc.with_regs(ins.into, n=z3.If(held, fs.size[loc.reg(ins.fd, "ino")], z3.IntVal(-1)))
    return replace(loc2, last=z3.If(held, _err(""), _err(F.EBADF))), fs, TRUE


def _unlink(ins: Unlink, k: SymKind, loc: Local, fs: SymFS, fault: z3.BoolRef, sysm: System) -> Result:
    found = _resolve(fs, loc, ins.path) >= 0
    fs2, loc2 = _bind(fs, loc, ins.path, z3.IntVal(-1))
    fs2, loc2 = merge_fs(found, fs2, fs), merge_local(found, loc2, loc)
    return replace(loc2, last=z3.If(found, _err(""), _err(F.ENOENT))), fs2, TRUE


def _rename(ins: Rename, k: SymKind, loc: Local, fs: SymFS, fault: z3.BoolRef, sysm: System) -> Result:
    ino = _resolve(fs, loc, ins.src)
    ok = z3.And(z3.Not(fault), ino >= 0)
    fs2, loc2 = _bind(fs, loc, ins.src, z3.IntVal(-1))
    fs2, loc2 = _bind(fs2, loc2, ins.dst, ino)
    last = z3.If(fault, _err(FAULT_ERRNO[Rename]), z3.If(ino >= 0, _err(""), _err(F.ENOENT)))
    return replace(merge_local(ok, loc2, loc), last=last), merge_fs(ok, fs2, fs), TRUE


def _mmap(ins: Mmap, k: SymKind, loc: Local, fs: SymFS, fault: z3.BoolRef, sysm: System) -> Result:
    held, size = loc.reg(ins.fd, "set"), loc.reg(ins.size, "n")
    ok = z3.And(held, size >= 0)
    loc2 = merge_local(ok, loc.with_regs(ins.into, set=TRUE, ino=loc.reg(ins.fd, "ino"), n=size), loc)
    last = z3.If(z3.Not(held), _err(F.EBADF), z3.If(size < 0, _err(F.EINVAL), _err("")))
    return replace(loc2, last=last), fs, TRUE


def _map_read(ins: MapRead, k: SymKind, loc: Local, fs: SymFS, fault: z3.BoolRef, sysm: System) -> Result:
    held, ino, n = loc.reg(ins.map, "set"), loc.reg(ins.map, "ino"), loc.reg(ins.map, "n")
    size = fs.size[ino]
    backed = ((size + (F.PAGE_SIZE - 1)) / F.PAGE_SIZE) * F.PAGE_SIZE
    sigbus = z3.And(held, n > backed)
    # Bytes past the end inside the last page read as zero.
    got = loc.with_regs(ins.into, set=TRUE, len=n, nz=z3.And(n <= size, _no_zero(sysm, fs, ino, z3.IntVal(0), n)))
    got = replace(got, last=_err(""))
    loc2 = merge_local(sigbus, finish(k, loc, status_code(SIGBUS), None, sysm), got)
    return merge_local(held, loc2, replace(loc, last=_err(F.EINVAL))), fs, TRUE


HANDLERS: dict[type, Callable[..., Result]] = {
    Open: _open, Write: _write, PWrite: _pwrite, Read: _read, Ftruncate: _ftruncate, Fsync: _fsync,
    Close: _close, Stat: _stat, Fstat: _fstat, Unlink: _unlink, Rename: _rename, Mmap: _mmap, MapRead: _map_read,
}


def fault_allowed(ins: Instr, k: SymKind) -> z3.BoolRef:
    """``spec.machine.local_faults``: may this operation suffer a fault?"""
    if type(ins) not in FAULT_ERRNO:
        return FALSE
    if isinstance(ins, (Write, PWrite)):
        return k.data(ins.data)[1] > 0
    if isinstance(ins, Open) and ins.flags == OpenFlags.READ:
        return FALSE  # readers' opens do not fail: a failed lookup is a plain miss
    return TRUE


# ------------------------------------------------------------ control flow


def holds(cond: Cond, k: SymKind, loc: Local) -> z3.BoolRef:
    """A branch condition on the local state (``spec.machine.holds``)."""
    if isinstance(cond, Failed):
        codes = [errno_code(e) for e in cond.errnos]
        return z3.And(loc.last != 0, z3.Or([loc.last == c for c in codes]) if codes else TRUE)
    if isinstance(cond, SizeIs):
        size, n = loc.reg(cond.reg, "n"), k.length(cond.n)
        ops = {"==": size == n, "!=": size != n, ">": size > n}
        if cond.op not in ops:
            raise ProgramError(f"unknown comparison {cond.op!r}")
        return ops[cond.op]
    if isinstance(cond, Invalid):
        return z3.Not(z3.And(loc.reg(cond.reg, "set"), loc.reg(cond.reg, "len") == k.payload(cond.payload).length,
                             loc.reg(cond.reg, "nz")))
    raise ProgramError(f"unknown condition {cond!r}")


def finish(k: SymKind, loc: Local, status: int, value: str | None, sysm: System) -> Local:
    """Return: exit releases every register but a hit's value."""
    regs = {(r, f): (v if r == value else _reg_default(sysm.reg_class[r], f, z3.is_bool(v)))
            for (r, f), v in loc.regs.items()}
    return replace(loc, pc=z3.IntVal(len(k.program.code)), st=z3.IntVal(status), last=_err(""),
                   prog=z3.IntVal(0), regs=regs)


def settle(k: SymKind, pc: int, loc: Local, fs: SymFS, sysm: System, fuel: int | None = None) -> Local:
    """Run local control flow from instruction ``pc`` to the next operation
    (``spec.machine.settle``), as a case split on the local state."""
    code, targets = k.program.code, k.program.targets
    fuel = len(code) + 1 if fuel is None else fuel
    if fuel == 0:
        raise ProgramError(f"{k.protocol}: a loop with no operation in it at pc {pc}")
    ins = code[pc]
    if isinstance(ins, If):
        c = holds(ins.cond, k, loc)
        return merge_local(c, settle(k, targets[pc], loc, fs, sysm, fuel - 1), settle(k, pc + 1, loc, fs, sysm, fuel - 1))
    if isinstance(ins, Goto):
        return settle(k, targets[pc], loc, fs, sysm, fuel - 1)
    if isinstance(ins, Chtimes):
        found = _resolve(fs, loc, ins.path) >= 0
        return settle(k, pc + 1, replace(loc, last=z3.If(found, _err(""), _err(F.ENOENT))), fs, sysm, fuel - 1)
    if isinstance(ins, Return):
        hit = ins.outcome is Outcome.HIT
        return finish(k, loc, status_code(ins.outcome.value), ins.value if hit else None, sysm)
    return replace(loc, pc=z3.IntVal(pc), st=z3.IntVal(RUN_CODE))


def op_pcs(k: SymKind) -> tuple[int, ...]:
    """The instruction indexes at which a process of kind ``k`` can stop
    (its operations; local control flow never waits)."""
    return tuple(i for i, ins in enumerate(k.program.code) if type(ins) in HANDLERS)


# ------------------------------------------------------------ the transition


@dataclass(frozen=True)
class Transition:
    """Process ``p`` steps (with ``fault`` or not) from a state: ``enabled``
    says it can, ``after`` is the state it leads to."""

    enabled: z3.BoolRef
    after: SymState


def case_step(sysm: System, s: SymState, p: z3.ArithRef, fault: z3.BoolRef, ki: int, pc: int) -> Transition:
    """The step of a process of kind ``ki`` at operation ``pc``."""
    k = sysm.kinds[ki]
    ins = k.program.code[pc]
    loc = s.local(p)
    loc2, fs2, done = HANDLERS[type(ins)](ins, k, loc, s.fs, fault, sysm)
    if k.program.role is Role.READER:
        loc2 = replace(loc2, began=z3.If(loc.began == 0, z3.If(s.pub, z3.IntVal(2), z3.IntVal(1)), loc.began))
    running = loc2.st == RUN_CODE
    loc2 = merge_local(z3.And(done, running), settle(k, pc + 1, loc2, fs2, sysm), loc2)
    enabled = z3.And(sysm.kind_of[p] == ki, loc.pc == pc, loc.st == RUN_CODE,
                     z3.Implies(fault, fault_allowed(ins, k)))
    ok_now = z3.And(loc.st != OK_CODE, loc2.st == OK_CODE) if k.program.role is Role.WRITER else FALSE
    pub_path = {n: z3.Or(v, ok_now) if any(pp.name == n for pp, _ in k.program.publishes) else v
                for n, v in s.pub_path.items()}
    after = SymState(
        z3.Store(s.pc, p, loc2.pc), z3.Store(s.st, p, loc2.st), z3.Store(s.last, p, loc2.last),
        z3.Store(s.prog, p, loc2.prog), z3.Store(s.began, p, loc2.began),
        {key: (a if loc2.regs[key].eq(loc.regs[key]) else z3.Store(a, p, loc2.regs[key])) for key, a in s.regs.items()},
        {key: (a if loc2.priv[key].eq(loc.priv[key]) else z3.Store(a, p, loc2.priv[key])) for key, a in s.priv.items()},
        fs2, s.faults + z3.If(fault, 1, 0), z3.Or(s.pub, ok_now), pub_path)
    return Transition(enabled, after)


def cases(sysm: System) -> list[tuple[int, int]]:
    """Every (kind, operation pc) a step can start from."""
    return [(ki, pc) for ki, k in enumerate(sysm.kinds) for pc in op_pcs(k)]


def step(sysm: System, s: SymState, p: z3.ArithRef, fault: z3.BoolRef) -> Transition:
    """Any process ``p`` takes its next step: the case split over every
    kind and operation, merged into one transition."""
    steps = [case_step(sysm, s, p, fault, ki, pc) for ki, pc in cases(sysm)
             if not z3.is_false(z3.simplify(sysm.kind_of[p] == ki))]
    budget = TRUE if sysm.fault_budget is None else z3.Implies(fault, s.faults < sysm.fault_budget)
    enabled = z3.And(budget, z3.Or([t.enabled for t in steps]))
    after = steps[-1].after
    for t in reversed(steps[:-1]):
        after = merge_state(t.enabled, t.after, after)
    return Transition(enabled, after)


def merge_state(c: z3.BoolRef, a: SymState, b: SymState) -> SymState:
    """``a`` where ``c`` holds, else ``b``."""
    return SymState(
        _ite(c, a.pc, b.pc), _ite(c, a.st, b.st), _ite(c, a.last, b.last), _ite(c, a.prog, b.prog),
        _ite(c, a.began, b.began), {k: _ite(c, v, b.regs[k]) for k, v in a.regs.items()},
        {k: _ite(c, v, b.priv[k]) for k, v in a.priv.items()}, merge_fs(c, a.fs, b.fs),
        _ite(c, a.faults, b.faults), _ite(c, a.pub, b.pub), {k: _ite(c, v, b.pub_path[k]) for k, v in a.pub_path.items()})


def state_eq(a: SymState, b: SymState) -> z3.BoolRef:
    """Field-wise equality of two states (arrays as wholes)."""
    eqs = [a.pc == b.pc, a.st == b.st, a.last == b.last, a.prog == b.prog, a.began == b.began,
           a.fs.size == b.fs.size, a.fs.data == b.fs.data, a.fs.nino == b.fs.nino, a.faults == b.faults, a.pub == b.pub]
    eqs += [v == b.regs[k] for k, v in a.regs.items()] + [v == b.priv[k] for k, v in a.priv.items()]
    eqs += [v == b.fs.names[k] for k, v in a.fs.names.items()] + [v == b.pub_path[k] for k, v in a.pub_path.items()]
    return z3.And(eqs)
