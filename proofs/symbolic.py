"""The solver interpreter: the semantics of ``spec.semantics`` on Z3 terms.

One symbolic state (:class:`SymState`) stands for every state of the model
(``spec.state.World``) at once.  Per-process fields are Z3 arrays indexed
by a process id, so the same encoding serves a fixed N (bounded model
checking: ids 0..N-1) and an unbounded one (every integer is a process; a
process that never steps is simply idle).

What each operation does is stated in ``spec.semantics`` and nowhere here:
:class:`Z3Dom` is its value domain on Z3 terms, and :func:`case_step` runs
``spec.semantics.step`` on it, so one step of a process is built from the
*program value* and the table of operations alone.  The domain turns the
table's control into terms: a failed check ends the operation by guarding
every later effect with "no check failed yet" (the errno becomes an
if-then-else chain over the checks); ``when``, ``branch`` and the settling
after an operation run both ways and merge the states under the condition.

Abstracted (and why it is sound for the properties proved):

- a *buffer* register keeps its length and whether it holds a zero byte, not
  its bytes: the reader's validation (``spec.fs.valid``) looks at nothing
  else, so every branch a reader takes is decided exactly;
- file content past a file's size is unspecified (the model has no bytes
  there); every read clips to the size, and growth zero-fills explicitly;
- inodes are never collected: an inode nobody names or holds is unreachable
  and changes nothing;
- ``published(world)`` is a ghost flag set when a writer returns ok (ok is
  final, so the flag equals the model's "some process has status ok");
- only byte granularity (the explorer's default) is encoded, and no power
  loss (``System.crashes`` = 0): durable content is not represented, so
  nothing here speaks about the crash properties.

What a system's programs use beyond plain files (``spec.semantics.features``
and ``Program.dirs``) is represented only where they use it, so a system
that uses none of it is encoded exactly as before it existed:

- directories: a Bool per directory name the programs can name
  (``SymSystem.dirs``), true at the start for ``System.dirs``;
- symlinks ("links"): an Int per inode, the index of its target name in
  ``SymSystem.link_targets`` (-1: not a symlink); a symlink's size is its
  target's length, as in ``spec.fs``, and it has no bytes;
- flock ("locks"): an Int per inode, its lock state (0, n > 0 shared by
  n, -1 exclusive), and a ``lock`` field in every descriptor register;
  a process waiting for a lock (``Dom.block``) has no transition: the
  block's condition, under the checks before it, is conjoined negated
  into the transition's ``enabled``;
- O_APPEND ("append"): an ``append`` field in every descriptor register,
  and writes of more than one byte in one step (an append lands whole);
- the object store ("objects"): per key the inode holding its object (-1:
  none) and its ETag, and the last ETag handed out; an object's inode is
  filled whole by its PUT and never written again, so a buffer that a GET
  filled is its source inode and length (a ``src`` field in every buffer
  register: the bytes of ``src`` from 0).  Only a GET sets ``src``: a
  program that writes (``WriteBuf``) a buffer a local read filled is not
  encoded (its bytes could change under it).  An injected fault on a
  request chooses its variant with a per-step integer ``cut`` (the
  model's "bytes" of the fault: a PUT lost before or after the store
  acted, a GET's body cut after k bytes), constrained to the choices
  ``spec.semantics.fault_options`` offers.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable, Mapping

import z3

from spec import fs as F
from spec import semantics as S
from spec.ops import (
    Data,
    DeleteObject,
    GetObject,
    Instr,
    Key,
    Mkdir,
    Path,
    Program,
    ProgramError,
    PutObject,
    Read,
    Readlink,
    MapRead,
    Role,
    Symlink,
    WriteBuf,
)
from spec.machine import write_length
from spec.state import RegKind, Status
from spec.system import Kind, System

TRUE, FALSE = z3.BoolVal(True), z3.BoolVal(False)
Term = Any  # a Z3 term (z3 has no type hints)
# Z3 makes each term once, so a constant is known by its id: a third of
# the cost of z3.is_true, asked tens of thousands of times per theorem.
_TRUE_ID, _FALSE_ID = TRUE.get_id(), FALSE.get_id()


def is_true(b: Term) -> bool:
    """``b`` is the term true."""
    return bool(b.get_id() == _TRUE_ID)


def is_false(b: Term) -> bool:
    """``b`` is the term false."""
    return bool(b.get_id() == _FALSE_ID)

# ------------------------------------------------------------ codes

STATUSES: tuple[Status, ...] = tuple(Status)


def status_code(status: Status | str) -> int:
    """The integer standing for a process status (its place in ``Status``)."""
    return STATUSES.index(Status(status))


RUN_CODE, OK_CODE = status_code(Status.RUNNING), status_code(Status.OK)


# The errnos ``spec.fs`` declares (each constant is its own name), in its
# order; "" (success) is 0.
ERRNOS: tuple[str, ...] = ("", *(v for k, v in vars(F).items() if isinstance(v, str) and k == v and k.startswith("E")))


def errno_code(name: str) -> int:
    """The integer standing for errno ``name`` ("" is success, 0)."""
    try:
        return ERRNOS.index(name)
    except ValueError:
        raise ProgramError(f"unknown errno {name!r}: spec.fs declares {', '.join(ERRNOS[1:])}") from None


# ------------------------------------------------------------ kinds and bytes


@dataclass(frozen=True)
class SymPayload:
    """A payload: its length and its bytes (an Int array, byte b at index b;
    a zero byte is what the reader's validation rejects)."""

    length: Term
    data: Term


@dataclass(frozen=True)
class SymKind:
    """What a process runs: a program and its payloads."""

    program: Program
    payloads: Mapping[str, SymPayload]

    @property
    def name(self) -> str:
        return self.program.name

    def payload(self, name: str) -> SymPayload:
        if name not in self.payloads:
            raise ProgramError(f"{self.name}: no payload {name!r}")
        return self.payloads[name]


@dataclass(frozen=True)
class Bytes:
    """How to say "for every byte index below n": a finite conjunction when
    every length is concrete and at most ``bound`` (bounded model checking,
    quantifier-free), a quantifier otherwise (unbounded proofs)."""

    bound: int | None = None

    def forall_below(self, n: Term, body: Callable[[Term], Term]) -> Term:
        if self.bound is None:
            b = z3.FreshInt("b")
            return z3.ForAll([b], z3.Implies(z3.And(b >= 0, b < n), body(b)))
        return z3.And([z3.Implies(j < n, body(z3.IntVal(j))) for j in range(self.bound)])

    def zero_fill(self, data: Term, ino: Term, lo: Term, hi: Term) -> Term:
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

    def write_run(self, data: Term, ino: Term, old: Term, at: Term, count: Term, src: Term, first: Term) -> Term:
        """``data`` with ``count`` bytes of ``src`` from index ``first``
        at bytes [at, at + count) of inode ``ino``, and the hole [old, at)
        before them zero-filled: a lambda when unbounded, else one Store
        per byte index below the bound (the bound covers every byte a
        bounded run writes; ``proofs.bmc`` checks that it does)."""
        def byte(i: Term, b: Term, was: Term) -> Term:
            return z3.If(z3.And(i == ino, at <= b, b < at + count), src[first + b - at],
                         z3.If(z3.And(i == ino, old <= b, b < at), z3.IntVal(0), was))
        if self.bound is None:
            i, b = z3.FreshInt("i"), z3.FreshInt("b")
            return z3.Lambda([i, b], byte(i, b, data[i, b]))
        for j in range(self.bound):
            data = z3.Store(data, ino, j, byte(ino, z3.IntVal(j), data[ino, j]))
        return data


# ------------------------------------------------------------ registers

# The fields that represent a register of each kind, and whether each is
# Bool (else Int).  A buffer is its length and "holds no zero byte".
REG_FIELDS: dict[RegKind, tuple[tuple[str, bool], ...]] = {
    RegKind.FD: (("set", True), ("ino", False), ("off", False), ("mode", False)),
    RegKind.SIZE: (("n", False),),  # -1: unset or no such file (the model treats both alike)
    RegKind.BUF: (("set", True), ("len", False), ("nz", True)),
    RegKind.MAP: (("set", True), ("ino", False), ("n", False)),
}


# The descriptor fields a feature adds (``spec.semantics.features``): its
# flock (0, 1 shared, -1 exclusive) and whether it was opened O_APPEND.
FEATURE_FD_FIELDS: tuple[tuple[str, str, bool], ...] = ((S.LOCKS, "lock", False), (S.APPEND, "append", True))


def register_kinds(programs: tuple[Program, ...]) -> dict[str, RegKind]:
    """Each register name the programs use, and its kind
    (``spec.semantics.registers``); one name is one kind across programs,
    since the state keeps one array per register name."""
    out: dict[str, RegKind] = {}
    for prog in programs:
        for name, kind in S.registers(prog).items():
            if out.setdefault(name, kind) is not kind:
                raise ProgramError(f"register {name!r} is used both as {out[name].value} and as {kind.value}")
    return out


def reg_default(kind: RegKind, fname: str, is_bool: bool) -> Term:
    """An unset register's field."""
    if is_bool:
        return FALSE
    return z3.IntVal(-1 if (kind, fname) == (RegKind.SIZE, "n") else 0)


@dataclass(frozen=True)
class SymBuf:
    """A buffer value: its length and whether it holds no zero byte; for a
    GET's body, the object's inode whose first ``length`` bytes it is."""

    length: Term
    no_zero: Term
    src: Term | None = None


# ------------------------------------------------------------ state


@dataclass(frozen=True)
class Local:
    """One process's local state, as scalars (read out of the arrays)."""

    pc: Term
    st: Term
    last: Term
    prog: Term
    began: Term
    regs: Mapping[tuple[str, str], Term]
    priv: Mapping[str, Term]

    def reg(self, name: str, fname: str) -> Term:
        return self.regs[(name, fname)]


@dataclass(frozen=True)
class SymFS:
    """The shared file system: names, inode sizes and bytes, next inode;
    and, only where the programs use them, directories, symlinks and locks."""

    names: Mapping[str, Term]  # shared path -> inode, -1 when absent
    size: Term  # inode -> size
    data: Term  # (inode, byte) -> byte (0..255); unspecified past size
    nino: Term  # the next inode number create() hands out
    dirs: Mapping[str, Term] = field(default_factory=dict)  # directory -> it exists (Bool)
    link: Term | None = None  # inode -> its target's index in SymSystem.link_targets, -1: no symlink
    lock: Term | None = None  # inode -> flock state: 0, n > 0 shared by n, -1 exclusive
    objects: Mapping[str, Term] = field(default_factory=dict)  # key -> its object's inode, -1 when absent
    etag: Mapping[str, Term] = field(default_factory=dict)  # key -> its object's ETag
    etags: Term | None = None  # the last ETag handed out


@dataclass(frozen=True)
class SymState:
    """A symbolic World.

    pc, st, last, prog, began: per-process arrays (program counter, status
    code, errno code of the last op, bytes of the current write done,
    ``Began`` as an integer); regs: (register, field) -> per-process array;
    priv: private path -> per-process array of inodes (-1: unbound);
    fs: the shared file system; faults: injected faults so far;
    pub: some writer has returned ok; pub_path: some writer that publishes
    that path has returned ok.
    """

    pc: Term
    st: Term
    last: Term
    prog: Term
    began: Term
    regs: Mapping[tuple[str, str], Term]
    priv: Mapping[str, Term]
    fs: SymFS
    faults: Term
    pub: Term
    pub_path: Mapping[str, Term]

    def local(self, p: Term) -> Local:
        return Local(self.pc[p], self.st[p], self.last[p], self.prog[p], self.began[p],
                     {k: a[p] for k, a in self.regs.items()}, {k: a[p] for k, a in self.priv.items()})

    def file_ino(self, path: str) -> Term:
        return self.fs.names[path]


@dataclass(frozen=True)
class SymSystem:
    """The solver's view of who runs: the kinds, which kind each process id
    runs, how byte quantifiers are expanded, and the fault budget (None:
    unlimited).  :func:`encode` builds one from a ``spec.system.System``;
    the unbounded proofs build one with a symbolic payload and an
    unconstrained ``kind_of``."""

    kinds: tuple[SymKind, ...]
    kind_of: Term  # process id -> kind index
    bytes: Bytes = field(default_factory=Bytes)
    fault_budget: int | None = None
    reg_kind: dict[str, RegKind] = field(init=False, compare=False)
    shared_paths: tuple[str, ...] = field(init=False, compare=False)
    private_paths: tuple[str, ...] = field(init=False, compare=False)
    features: frozenset[str] = field(init=False, compare=False)
    dirs: tuple[str, ...] = field(init=False, compare=False)  # every directory the programs can name
    start_dirs: frozenset[str] = field(init=False, compare=False)  # those that exist at the start
    link_targets: tuple[str, ...] = field(init=False, compare=False)  # every symlink's target name
    object_keys: tuple[str, ...] = field(init=False, compare=False)  # every key the programs name

    def __post_init__(self) -> None:
        progs = tuple(k.program for k in self.kinds)
        object.__setattr__(self, "reg_kind", register_kinds(progs))
        object.__setattr__(self, "features", S.features(progs))
        object.__setattr__(self, "object_keys", tuple(sorted({ins.key.name for prog in progs for ins in prog.code
                                                              if isinstance(ins, S.OBJECT_OPS)})))
        for prog in progs:
            _check_buffer_writes(prog)
        shared: set[str] = set()
        private: set[str] = set()
        dirs: set[str] = set()
        start: set[str] = set()
        targets: set[str] = set()
        for prog in progs:
            for path in S.paths(prog):
                (private if path.private else shared).add(path.name)
                dirs.update(path.parents())
            shared.update(p.name for p, _ in prog.publishes)
            shared.add(prog.reads.name)
            for d in prog.dirs:
                start.update((*Path(d).parents(), d))
            for ins in prog.code:
                if isinstance(ins, Mkdir):
                    dirs.add(ins.path.name)
                    shared.discard(ins.path.name)  # a directory, not a file's name
                elif isinstance(ins, Symlink):
                    targets.add(ins.target.name)
        object.__setattr__(self, "shared_paths", tuple(sorted(shared)))
        object.__setattr__(self, "private_paths", tuple(sorted(private)))
        object.__setattr__(self, "dirs", tuple(sorted(dirs | start)))
        object.__setattr__(self, "start_dirs", frozenset(start))
        object.__setattr__(self, "link_targets", tuple(sorted(targets)))

    def published_paths(self) -> tuple[str, ...]:
        return tuple(sorted({p.name for k in self.kinds for p, _ in k.program.publishes}))

    def kind_fields(self, kind: RegKind) -> tuple[tuple[str, bool], ...]:
        """The fields of a register of ``kind`` (a descriptor's and a
        buffer's grow with the features the programs use)."""
        base = REG_FIELDS[kind]
        if kind is RegKind.FD:
            return base + tuple((f, b) for feat, f, b in FEATURE_FD_FIELDS if feat in self.features)
        if kind is RegKind.BUF and S.OBJECTS in self.features:
            return base + (("src", False),)
        return base

    def fields(self) -> list[tuple[str, str, bool]]:
        """(register, field, is_bool) for every register field."""
        return [(r, f, b) for r, kind in self.reg_kind.items() for f, b in self.kind_fields(kind)]

    def default(self, reg: str, fname: str) -> Term:
        kind = self.reg_kind[reg]
        return reg_default(kind, fname, dict(self.kind_fields(kind))[fname])


def _check_buffer_writes(prog: Program) -> None:
    """A buffer written with ``WriteBuf`` must be a GET's body only (whose
    bytes, an object's, never change): ProgramError otherwise."""
    written = {ins.buf for ins in prog.code if isinstance(ins, WriteBuf)}
    for ins in prog.code:
        if isinstance(ins, (Read, Readlink, MapRead)) and ins.into in written:
            raise ProgramError(f"{prog.name}: {ins} fills buffer {ins.into!r}, which a write(fd, buf) writes; "
                               "the solver encodes the bytes of a GET's body only")


def file_ino(sysm: SymSystem, s: SymState, path: str) -> Term:
    """The inode holding the file ``path`` names, as ``spec.fs.FileSystem.file``
    reads it: through a symlink to its target; -1 when there is none (or
    the target is itself a symlink)."""
    d = Z3Dom(sysm, sysm.kinds[0], _blank_local(sysm), s.fs, FALSE, FALSE)
    named = s.fs.names[path]
    if s.fs.link is None:
        return named
    target = d.link_target(named)
    return _ite(d.is_link(named), _ite(d.is_link(target), -1, target), named)


def concrete_payload(data: bytes) -> SymPayload:
    """A payload of concrete bytes, as an array built from K and Store."""
    arr = z3.K(z3.IntSort(), z3.IntVal(0))
    for i, byte in enumerate(data):
        arr = z3.Store(arr, i, byte)
    return SymPayload(z3.IntVal(len(data)), arr)


def encode(system: System) -> SymSystem:
    """``system`` as the solver sees it: kind i is ``system.kinds[i]`` with
    concrete payloads, process i runs kind ``system.kind_of[i]``, every
    byte range is bounded by the longest payload, the fault budget is the
    system's.  Only byte granularity without crashes is encoded."""
    if system.crashes or system.granularity != "byte":
        raise ValueError("the solver encodes byte granularity without crashes only")
    kinds = tuple(SymKind(k.program, {n: concrete_payload(b) for n, b in k.payloads}) for k in system.kinds)
    kind_of = z3.K(z3.IntSort(), z3.IntVal(0))
    for i, ki in enumerate(system.kind_of):
        kind_of = z3.Store(kind_of, i, ki)
    bound = max((len(b) for k in system.kinds for _, b in k.payloads), default=0) + 1
    if S.APPEND in system.features:
        # Appends pile up: a file may hold every byte every process writes.
        bound = max(bound, sum(_bytes_written(system.kinds[ki]) for ki in system.kind_of) + 1)
    return SymSystem(kinds, kind_of, Bytes(bound), system.faults)


def _bytes_written(kind: Kind) -> int:
    """The bytes one run of ``kind``'s program writes at most (each write
    once: a program that loops may write more, which BMC's bound check
    then reports)."""
    return sum(write_length(kind, ins) for ins in kind.program.code)


def fresh_state(sysm: SymSystem, tag: str) -> SymState:
    """A state of unconstrained fresh constants (names end in ``tag``)."""
    I, B = z3.IntSort(), z3.BoolSort()

    def arr(name: str, rng: Term = I) -> Term:
        return z3.Array(f"{name}{tag}", I, rng)

    regs = {(r, f): arr(f"{r}.{f}", B if b else I) for r, f, b in sysm.fields()}
    fs = SymFS({n: z3.Int(f"name:{n}{tag}") for n in sysm.shared_paths}, arr("size"),
               z3.Array(f"data{tag}", I, I, I), z3.Int(f"nino{tag}"),
               {d: z3.Bool(f"dir:{d}{tag}") for d in sysm.dirs},
               arr("link") if S.LINKS in sysm.features else None, arr("lock") if S.LOCKS in sysm.features else None,
               {k: z3.Int(f"object:{k}{tag}") for k in sysm.object_keys},
               {k: z3.Int(f"etag:{k}{tag}") for k in sysm.object_keys},
               z3.Int(f"etags{tag}") if S.OBJECTS in sysm.features else None)
    return SymState(arr("pc"), arr("st"), arr("last"), arr("prog"), arr("began"), regs,
                    {n: arr(f"priv:{n}") for n in sysm.private_paths}, fs, z3.Int(f"faults{tag}"),
                    z3.Bool(f"pub{tag}"), {n: z3.Bool(f"pub:{n}{tag}") for n in sysm.published_paths()})


def initial_state(sysm: SymSystem, n: int | None = None) -> SymState:
    """Every process at its first operation (``spec.semantics.settle`` from
    pc 0), on an empty file system; as terms, so no quantifier is needed to
    state it (for ``n`` processes, arrays of Stores; for all integers, a
    lambda over the process's kind)."""
    I = z3.IntSort()
    p = z3.Int("p_init")
    started = [_settled(sysm, k) for k in sysm.kinds]

    def by_kind(vals: list[Term]) -> Term:
        if all(v.eq(vals[0]) for v in vals):
            return z3.K(I, vals[0])
        if n is not None:
            arr = z3.K(I, vals[0])
            for i in range(n):
                arr = z3.Store(arr, i, z3.simplify(z3.substitute(by_kind_expr(vals), (p, z3.IntVal(i)))))
            return arr
        return z3.Lambda([p], by_kind_expr(vals))

    def by_kind_expr(vals: list[Term]) -> Term:
        expr = vals[-1]
        for i in range(len(vals) - 2, -1, -1):
            expr = z3.If(sysm.kind_of[p] == i, vals[i], expr)
        return expr

    def per_kind(get: Callable[[Local], Term]) -> Term:
        return by_kind([get(loc) for loc in started])

    return SymState(per_kind(lambda l: l.pc), per_kind(lambda l: l.st), per_kind(lambda l: l.last),
                    per_kind(lambda l: l.prog), per_kind(lambda l: l.began),
                    {key: per_kind(_reg_getter(key)) for key in started[0].regs},
                    {key: per_kind(_priv_getter(key)) for key in started[0].priv}, _empty_fs(sysm),
                    z3.IntVal(0), FALSE, {n: FALSE for n in sysm.published_paths()})


def _reg_getter(key: tuple[str, str]) -> Callable[[Local], Term]:
    return lambda loc: loc.regs[key]


def _priv_getter(key: str) -> Callable[[Local], Term]:
    return lambda loc: loc.priv[key]


def _empty_fs(sysm: SymSystem) -> SymFS:
    # Content past a file's size is unspecified: an unconstrained array.
    I = z3.IntSort()
    return SymFS({n: z3.IntVal(-1) for n in sysm.shared_paths}, z3.K(I, z3.IntVal(0)),
                 z3.Array("data@init", I, I, I), z3.IntVal(0),
                 {d: z3.BoolVal(d in sysm.start_dirs) for d in sysm.dirs},
                 z3.K(I, z3.IntVal(-1)) if S.LINKS in sysm.features else None,
                 z3.K(I, z3.IntVal(0)) if S.LOCKS in sysm.features else None,
                 {k: z3.IntVal(-1) for k in sysm.object_keys}, {k: z3.IntVal(-1) for k in sysm.object_keys},
                 z3.IntVal(0) if S.OBJECTS in sysm.features else None)


def _blank_local(sysm: SymSystem) -> Local:
    regs = {(r, f): reg_default(sysm.reg_kind[r], f, b) for r, f, b in sysm.fields()}
    z = z3.IntVal(0)
    return Local(z, z3.IntVal(RUN_CODE), z, z, z, regs, {n: z3.IntVal(-1) for n in sysm.private_paths})


def _settled(sysm: SymSystem, k: SymKind) -> Local:
    """A new process of kind ``k``: local control flow run from pc 0."""
    d = Z3Dom(sysm, k, _blank_local(sysm), _empty_fs(sysm), FALSE, FALSE)
    S.settle(k.program, 0, d)
    return d.loc


# ------------------------------------------------------------ terms


def _lift(x: Term) -> Term:
    """A Python bool or int as a Z3 term (a term as itself)."""
    if isinstance(x, bool):
        return z3.BoolVal(x)
    if isinstance(x, int):
        return z3.IntVal(int(x))
    return x


def _and(*bs: Term) -> Term:
    """Conjunction, folding the constants away."""
    terms = [_lift(b) for b in bs]
    if any(is_false(b) for b in terms):
        return FALSE
    terms = [b for b in terms if not is_true(b)]
    return TRUE if not terms else terms[0] if len(terms) == 1 else z3.And(terms)


def _or(*bs: Term) -> Term:
    """Disjunction, folding the constants away."""
    terms = [_lift(b) for b in bs]
    if any(is_true(b) for b in terms):
        return TRUE
    terms = [b for b in terms if not is_false(b)]
    return FALSE if not terms else terms[0] if len(terms) == 1 else z3.Or(terms)


def _not(b: Term) -> Term:
    b = _lift(b)
    return FALSE if is_true(b) else TRUE if is_false(b) else z3.Not(b)


def _ite(c: Term, a: Term, b: Term) -> Term:
    """If-then-else, folding a constant condition and equal branches."""
    if a is b:
        return a
    return _chooser(_lift(c))(_lift(a), _lift(b))


def term_if(c: Term, a: Term, b: Term) -> Term:
    """``z3.If`` for two terms of one sort, without its argument coercion:
    a third of the time, and the encoding makes tens of thousands."""
    ctx = a.ctx
    return z3.z3._to_expr_ref(z3.Z3_mk_ite(ctx.ref(), c.as_ast(), a.as_ast(), b.as_ast()), ctx)


def _chooser(c: Term) -> Callable[[Term, Term], Term]:
    """``x`` where ``c`` holds, else ``y``, for many pairs of terms under
    one condition (the merges below), with ``c``'s constness found once.
    Most pairs are one unchanged term, caught before asking Z3."""
    if is_true(c):
        return lambda x, y: x
    if is_false(c):
        return lambda x, y: y
    return lambda x, y: x if x is y or x.eq(y) else term_if(c, x, y)


def _max(a: Term, b: Term) -> Term:
    return z3.If(a >= b, a, b)


def _min(a: Term, b: Term) -> Term:
    return z3.If(a <= b, a, b)


# ------------------------------------------------------------ merging


def merge_local(c: Term, a: Local, b: Local) -> Local:
    """``a`` where ``c`` holds, else ``b``, field by field."""
    if a is b:
        return a
    pick = _chooser(c)
    return Local(pick(a.pc, b.pc), pick(a.st, b.st), pick(a.last, b.last), pick(a.prog, b.prog),
                 pick(a.began, b.began), {k: pick(v, b.regs[k]) for k, v in a.regs.items()},
                 {k: pick(v, b.priv[k]) for k, v in a.priv.items()})


def merge_fs(c: Term, a: SymFS, b: SymFS) -> SymFS:
    if a is b:
        return a
    pick = _chooser(c)
    return SymFS({k: pick(v, b.names[k]) for k, v in a.names.items()}, pick(a.size, b.size),
                 pick(a.data, b.data), pick(a.nino, b.nino), {k: pick(v, b.dirs[k]) for k, v in a.dirs.items()},
                 None if a.link is None else pick(a.link, b.link), None if a.lock is None else pick(a.lock, b.lock),
                 {k: pick(v, b.objects[k]) for k, v in a.objects.items()},
                 {k: pick(v, b.etag[k]) for k, v in a.etag.items()},
                 None if a.etags is None else pick(a.etags, b.etags))


# ------------------------------------------------------------ the value domain


class Z3Dom:
    """One process's step on Z3 terms: the solver's ``spec.semantics.Dom``.

    ``loc`` and ``fs`` are the process's local state and the file system,
    replaced (never mutated) as the semantics runs; :func:`case_step` reads
    them out afterwards.  ``live`` is "no check of the current operation
    has failed yet": every effect is made under it, so an effect after a
    failed check is merged away; ``errs`` are the checks so far, each with
    the condition under which it is the one that failed; ``blocked`` is
    where the process cannot take the step at all (it waits for a lock)."""

    def __init__(self, sysm: SymSystem, kind: SymKind, loc: Local, fs: SymFS, fault: Term, pub: Term,
                 cut: Term | None = None) -> None:
        self.sysm, self.kind, self.loc, self.fs, self.fault, self.pub = sysm, kind, loc, fs, fault, pub
        # The fault's variant (its "bytes"): free unless the caller names it.
        self.cut: Term = z3.FreshInt("cut") if cut is None else cut
        self.granularity = "byte"
        self.features = sysm.features
        self.blocked: Term = FALSE
        self.live: Term = TRUE
        self.done: Term = TRUE
        self.errs: list[tuple[Term, int]] = []
        self.ins: Instr | None = None
        self.created = False  # some create() was made (see may_create)

    # -- updates, under the guard
    def _put_local(self, new: Local) -> None:
        self.loc = new if is_true(self.live) else merge_local(self.live, new, self.loc)

    def _put_fs(self, new: SymFS) -> None:
        self.fs = new if is_true(self.live) else merge_fs(self.live, new, self.fs)

    def _put_reg(self, reg: str, **values: Term) -> None:
        regs = dict(self.loc.regs)
        for fname, v in values.items():
            if (reg, fname) not in regs:
                raise ProgramError(f"register {reg!r} has no field {fname!r} ({self.sysm.reg_kind.get(reg)})")
            regs[(reg, fname)] = _lift(v)
        self._put_local(replace(self.loc, regs=regs))

    def _under(self, guard: Term, effect: Callable[[], Term]) -> Term:
        outer, self.live = self.live, guard
        try:
            return effect()
        finally:
            self.live = outer

    def _fork(self, body: Callable[[], None]) -> tuple[Local, SymFS]:
        """The local state and file system after ``body``, which is undone."""
        saved = self.loc, self.fs
        body()
        out = self.loc, self.fs
        self.loc, self.fs = saved
        return out

    # -- logic
    def and_(self, *bs: Term) -> Term:
        return _and(*bs)

    def or_(self, *bs: Term) -> Term:
        return _or(*bs)

    def not_(self, b: Term) -> Term:
        return _not(b)

    def ite(self, c: Term, a: Term, b: Term) -> Term:
        return _ite(c, a, b)

    # -- the step
    def check(self, cond: Term, errno: str, then: Callable[[], None] | None = None) -> None:
        fails = _and(self.live, cond)
        if is_false(fails):
            return
        if then is not None:
            self._under(fails, then)
        self.errs.append((fails, errno_code(errno)))
        self.live = _and(self.live, _not(cond))

    def fault_point(self) -> None:
        assert self.ins is not None
        errno = S.OPS[type(self.ins)].fault
        if errno is not None and S.can_fault(self.ins):
            self.check(self.fault, errno)

    def faulted(self) -> Term:
        return self.fault

    def fault_bytes(self) -> Term:
        # Only the object store's requests read it at byte granularity.
        return self.cut

    def when(self, cond: Term, effect: Callable[[], Term], otherwise: Term) -> Term:
        outer = self.live
        inner = self.live = _and(outer, cond)
        value = effect()
        # A check inside the effect ends the operation there only.
        self.live = outer if self.live is inner else _or(self.live, _and(outer, _not(cond)))
        return _ite(cond, value, otherwise)

    def branch(self, cond: Term, then: Callable[[], None], other: Callable[[], None]) -> None:
        c = _lift(cond)
        if is_true(c) or is_false(c):
            (then if is_true(c) else other)()
            return
        (la, fa), (lb, fb) = self._fork(then), self._fork(other)
        self.loc, self.fs = merge_local(c, la, lb), merge_fs(c, fa, fb)

    def run_op(self, ins: Instr) -> None:
        saved = self.ins, self.live, self.errs
        self.ins, self.errs = ins, []
        S.spec_of(ins).run(ins, self)
        # The checks exclude each other (each holds only where none before
        # it did), so their order in the chain does not matter.
        last = z3.IntVal(0)
        for fails, code in reversed(self.errs):
            last = z3.If(fails, code, last)
        self.ins, self.live, self.errs = saved
        self._put_local(replace(self.loc, last=last))

    def block(self, cond: Term) -> None:
        # Where no check before it failed: a block after a failed check is
        # no block (the operation already ended with the errno).
        self.blocked = _or(self.blocked, _and(self.live, cond))

    def die(self, cond: Term, status: Status) -> None:
        dies = _and(self.live, cond)
        if is_false(dies):
            return
        self._under(dies, lambda: self.finish(status, None))
        self.live = _and(self.live, _not(cond))

    def progress(self) -> Term:
        return self.loc.prog

    def complete(self, done: Term) -> None:
        self.done = _ite(self.live, done, self.done)
        self._put_local(replace(self.loc, prog=_ite(done, z3.IntVal(0), self.loc.prog + 1)))

    def after_op(self, settle: Callable[[], None]) -> None:
        goes_on = _and(self.done, self.loc.st == RUN_CODE)
        settled, fs = self._fork(settle)
        self.loc, self.fs = merge_local(goes_on, settled, self.loc), merge_fs(goes_on, fs, self.fs)

    def stop_at(self, pc: int) -> None:
        self._put_local(replace(self.loc, pc=z3.IntVal(pc)))

    def finish(self, status: Status, keep: str | None) -> None:
        S.release_locks(self, self.kind.program, keep)
        regs = {(r, f): v if r == keep else self.sysm.default(r, f) for (r, f), v in self.loc.regs.items()}
        z = z3.IntVal(0)
        self._put_local(replace(self.loc, pc=z3.IntVal(len(self.kind.program.code)), st=z3.IntVal(status_code(status)),
                                last=z, prog=z, regs=regs))

    def failed(self, errnos: frozenset[str]) -> Term:
        last = self.loc.last
        return _and(last != 0, _or(*[last == errno_code(e) for e in sorted(errnos)]) if errnos else TRUE)

    def began(self) -> Term:
        return self.loc.began

    def published(self) -> Term:
        return self.pub

    def set_began(self, b: Term) -> None:
        self._put_local(replace(self.loc, began=_lift(b)))

    # -- registers
    def held(self, reg: str) -> Term:
        return self.loc.reg(reg, "set")

    def fd_ino(self, reg: str) -> Term:
        return self.loc.reg(reg, "ino")

    def fd_off(self, reg: str) -> Term:
        return self.loc.reg(reg, "off")

    def fd_mode(self, reg: str) -> Term:
        return self.loc.reg(reg, "mode")

    def size_of(self, reg: str) -> Term:
        return self.loc.reg(reg, "n")

    def map_ino(self, reg: str) -> Term:
        return self.loc.reg(reg, "ino")

    def map_len(self, reg: str) -> Term:
        return self.loc.reg(reg, "n")

    def valid(self, reg: str, length: Term) -> Term:
        return _and(self.loc.reg(reg, "set"), self.loc.reg(reg, "len") == length, self.loc.reg(reg, "nz"))

    def fd_append(self, reg: str) -> Term:
        return self.loc.regs.get((reg, "append"), FALSE)

    def fd_lock(self, reg: str) -> Term:
        return self.loc.regs.get((reg, "lock"), z3.IntVal(0))

    def set_fd(self, reg: str, ino: Term, off: Term, mode: int, append: bool = False) -> None:
        extra: dict[str, Term] = {}
        if S.APPEND in self.features:
            extra["append"] = append
        if S.LOCKS in self.features:
            extra["lock"] = 0  # a new open description holds no lock
        self._put_reg(reg, set=True, ino=ino, off=off, mode=mode, **extra)

    def set_fd_lock(self, reg: str, lock: Term) -> None:
        self._put_reg(reg, lock=lock)

    def set_fd_off(self, reg: str, off: Term) -> None:
        self._put_reg(reg, off=off)

    def set_size(self, reg: str, n: Term) -> None:
        self._put_reg(reg, n=n)

    def set_buf(self, reg: str, buf: SymBuf) -> None:
        if S.OBJECTS in self.features:
            self._put_reg(reg, set=True, len=buf.length, nz=buf.no_zero, src=-1 if buf.src is None else buf.src)
        else:
            self._put_reg(reg, set=True, len=buf.length, nz=buf.no_zero)

    def set_map(self, reg: str, ino: Term, n: Term) -> None:
        self._put_reg(reg, set=True, ino=ino, n=n)

    def clear(self, reg: str) -> None:
        self._put_reg(reg, **{f: reg_default(self.sysm.reg_kind[reg], f, b)
                              for f, b in self.sysm.kind_fields(self.sysm.reg_kind[reg])})

    # -- payloads
    def payload_len(self, name: str) -> Term:
        return self.kind.payload(name).length

    # -- the file system
    def lookup(self, path: Path) -> Term:
        return self.loc.priv[path.name] if path.private else self.fs.names[path.name]

    def create(self) -> Term:
        self.created = True
        ino = self.fs.nino
        link = None if self.fs.link is None else z3.Store(self.fs.link, ino, -1)
        self._put_fs(replace(self.fs, size=z3.Store(self.fs.size, ino, 0), nino=ino + 1, link=link))
        return ino

    def bind(self, path: Path, ino: Term) -> None:
        if path.private:
            self._put_local(replace(self.loc, priv={**self.loc.priv, path.name: _lift(ino)}))
        else:
            self._put_fs(replace(self.fs, names={**self.fs.names, path.name: _lift(ino)}))

    def unbind(self, path: Path) -> None:
        self.bind(path, -1)

    def dir_exists(self, path: str) -> Term:
        return self.fs.dirs[path]

    def add_dir(self, path: str) -> None:
        self._put_fs(replace(self.fs, dirs={**self.fs.dirs, path: TRUE}))

    def create_link(self, target: Path) -> Term:
        if self.fs.link is None:
            raise ProgramError(f"symlink({target}, ...) in a system whose features are {sorted(self.features)}")
        self.created = True
        ino = self.fs.nino
        # A symlink's size is its target name's length (spec.fs); it has no bytes.
        self._put_fs(replace(self.fs, size=z3.Store(self.fs.size, ino, len(target.name)), nino=ino + 1,
                             link=z3.Store(self.fs.link, ino, self.sysm.link_targets.index(target.name))))
        return ino

    def _link_index(self, ino: Term) -> Term:
        assert self.fs.link is not None
        return self.fs.link[ino]

    def is_link(self, ino: Term) -> Term:
        if self.fs.link is None:
            return FALSE  # no program makes one
        return _and(ino >= 0, self._link_index(ino) >= 0)

    def _by_target(self, ino: Term, value: Callable[[str], Term], otherwise: Term) -> Term:
        """``value(t)`` for symlink ``ino``'s target name t."""
        k, out = self._link_index(ino), _lift(otherwise)
        for j in range(len(self.sysm.link_targets) - 1, -1, -1):
            out = _ite(k == j, _lift(value(self.sysm.link_targets[j])), out)
        return out

    def link_target(self, ino: Term) -> Term:
        if self.fs.link is None:
            return z3.IntVal(-1)
        return _ite(self.is_link(ino), self._by_target(ino, lambda t: self.fs.names[t], -1), -1)

    def bind_target(self, link: Term, ino: Term) -> None:
        k = self._link_index(link)
        names = {**self.fs.names}
        for j, t in enumerate(self.sysm.link_targets):
            names[t] = _ite(k == j, _lift(ino), names[t])
        self._put_fs(replace(self.fs, names=names))

    def link_text(self, ino: Term) -> SymBuf:
        if self.fs.link is None:
            return SymBuf(z3.IntVal(0), TRUE)  # never used: no inode is a symlink
        return SymBuf(self._by_target(ino, lambda t: z3.IntVal(len(t)), 0), TRUE)  # a name holds no zero byte

    def lock_state(self, ino: Term) -> Term:
        return z3.IntVal(0) if self.fs.lock is None else self.fs.lock[ino]

    def set_lock(self, ino: Term, state: Term) -> None:
        assert self.fs.lock is not None, "flock in a system without the locks feature"
        self._put_fs(replace(self.fs, lock=z3.Store(self.fs.lock, ino, _lift(state))))

    def file_size(self, ino: Term) -> Term:
        return self.fs.size[ino]

    def resize(self, ino: Term, n: Term) -> None:
        n = _lift(n)
        old = self.fs.size[ino]
        # Growth zero-fills; nothing past the new size is kept (unspecified).
        data = self.fs.data if z3.is_int_value(n) and n.as_long() == 0 else self.sysm.bytes.zero_fill(self.fs.data, ino, old, n)
        self._put_fs(replace(self.fs, size=z3.Store(self.fs.size, ino, n), data=data))

    def write(self, ino: Term, at: Term, payload: str, first: Term, count: Term) -> None:
        if S.APPEND in self.features:
            self._write_run(ino, at, payload, first, _lift(count))
            return
        # Byte granularity: ``count`` is 0 or 1.  A write of no bytes
        # changes nothing, even past the end; one byte grows the file to
        # cover it, zero-filling a hole before it.
        old = self.fs.size[ino]
        size = _max(old, at + 1)
        grown = self.sysm.bytes.zero_fill(self.fs.data, ino, old, size)
        wrote = replace(self.fs, size=z3.Store(self.fs.size, ino, size),
                        data=z3.Store(grown, ino, at, self.kind.payload(payload).data[first]))
        self._under(_and(self.live, count > 0), lambda: self._put_fs(wrote))

    def _write_run(self, ino: Term, at: Term, payload: str, first: Term, count: Term) -> None:
        """A write of ``count`` bytes in one step (an O_APPEND write lands
        whole): the file grows to cover them, zero-filling a hole before
        them; a write of no bytes changes nothing."""
        old = self.fs.size[ino]
        data = self.sysm.bytes.write_run(self.fs.data, ino, old, at, count, self.kind.payload(payload).data, first)
        wrote = replace(self.fs, size=z3.Store(self.fs.size, ino, _max(old, at + count)), data=data)
        self._under(_and(self.live, count > 0), lambda: self._put_fs(wrote))

    def _no_zero(self, ino: Term, start: Term, n: Term) -> Term:
        return self.sysm.bytes.forall_below(n, lambda j: self.fs.data[ino, start + j] != 0)

    def read(self, ino: Term, off: Term, n: Term) -> tuple[SymBuf, Term]:
        got = _max(z3.IntVal(0), _min(n, self.fs.size[ino] - off))
        return SymBuf(got, self._no_zero(ino, off, got)), got

    def sync(self, ino: Term) -> None:
        pass  # durable content is not represented (no power loss)

    def mapped_read(self, ino: Term, n: Term) -> tuple[Term, SymBuf]:
        size = self.fs.size[ino]
        backed = ((size + (F.PAGE_SIZE - 1)) / F.PAGE_SIZE) * F.PAGE_SIZE
        # Bytes past the end inside the last page read as zero.
        return n > backed, SymBuf(n, _and(n <= size, self._no_zero(ino, z3.IntVal(0), n)))

    def buf_len(self, reg: str) -> Term:
        return _ite(self.loc.reg(reg, "set"), self.loc.reg(reg, "len"), 0)

    def write_buf(self, ino: Term, at: Term, reg: str, first: Term, count: Term) -> None:
        # Byte granularity: ``count`` is 0 or 1, as in :meth:`write`; the
        # byte is the buffer's source object's (only a GET's body is written).
        old = self.fs.size[ino]
        size = _max(old, at + 1)
        byte = self.fs.data[self.loc.reg(reg, "src"), first]
        grown = self.sysm.bytes.zero_fill(self.fs.data, ino, old, size)
        wrote = replace(self.fs, size=z3.Store(self.fs.size, ino, size), data=z3.Store(grown, ino, at, byte))
        self._under(_and(self.live, _lift(count) > 0), lambda: self._put_fs(wrote))

    # -- the object store
    def obj_lookup(self, key: Key) -> Term:
        return self.fs.objects[key.name]

    def obj_etag(self, key: Key) -> Term:
        return self.fs.etag[key.name]

    def obj_bind(self, key: Key, ino: Term) -> None:
        assert self.fs.etags is not None
        etag = self.fs.etags + 1
        self._put_fs(replace(self.fs, objects={**self.fs.objects, key.name: _lift(ino)},
                             etag={**self.fs.etag, key.name: etag}, etags=etag))

    def obj_unbind(self, key: Key) -> None:
        self._put_fs(replace(self.fs, objects={**self.fs.objects, key.name: z3.IntVal(-1)}))

    def fill(self, ino: Term, payload: str, first: Term, count: Term) -> None:
        self._write_run(ino, z3.IntVal(0), payload, first, _lift(count))

    def obj_read(self, ino: Term, n: Term) -> SymBuf:
        return SymBuf(n, self._no_zero(ino, z3.IntVal(0), n), ino)


# ------------------------------------------------------------ faults


def _blank_dom(sysm: SymSystem, k: SymKind) -> Z3Dom:
    return Z3Dom(sysm, k, _blank_local(sysm), _empty_fs(sysm), FALSE, FALSE)


def fault_allowed(sysm: SymSystem, k: SymKind, ins: Instr) -> Term:
    """May an injected fault strike ``ins`` (``spec.semantics.fault_options``
    at byte granularity)?  Its answer depends on the state only through
    whether the write's length is zero, which is symbolic here."""
    empty, some = (bool(S.fault_options(ins, b, 0, "byte")) for b in (0, 1))
    if empty == some:
        return z3.BoolVal(empty)
    data = getattr(ins, "data", None)
    if not isinstance(data, Data):
        raise ProgramError(f"{ins}: its faults depend on a length, but it writes no data")
    n = S.data_range(_blank_dom(sysm, k), data)[1]
    return n > 0 if some else n == 0


def fault_variant(sysm: SymSystem, k: SymKind, ins: Instr, cut: Term) -> Term:
    """The fault's variant ``cut`` is one ``spec.semantics.fault_options``
    offers: for a PUT or a DELETE 0 (lost before the store acted) or 1
    (after); for a GET -1 (no body) or a cut after 0 <= k < len(body).
    Other operations do not read it."""
    if isinstance(ins, (PutObject, DeleteObject)):
        return z3.Or(cut == 0, cut == 1)
    if isinstance(ins, GetObject):
        return z3.And(cut >= -1, cut < k.payload(ins.body).length)
    return TRUE


def reads_variant(ins: Instr) -> bool:
    """Does a fault on ``ins`` come in variants (``cut``)?"""
    return isinstance(ins, (PutObject, DeleteObject, GetObject))


def may_create(sysm: SymSystem, k: SymKind, ins: Instr) -> bool:
    """Can operation ``ins`` create an inode (does its semantics call
    ``create``)?  A bound on the inodes a bounded run needs."""
    d = _blank_dom(sysm, k)
    d.run_op(ins)
    return d.created


# ------------------------------------------------------------ the transition


def op_pcs(k: SymKind) -> tuple[int, ...]:
    """The instruction indexes at which a process of kind ``k`` can stop
    (its operations; local control flow never waits)."""
    return tuple(i for i, ins in enumerate(k.program.code) if S.is_operation(ins))


@dataclass(frozen=True)
class Transition:
    """Process ``p`` steps (with ``fault`` or not) from a state: ``enabled``
    says it can, ``after`` is the state it leads to."""

    enabled: Term
    after: SymState


def case_step(sysm: SymSystem, s: SymState, p: Term, fault: Term, ki: int, pc: int,
              cut: Term | None = None) -> Transition:
    """The step of a process of kind ``ki`` at operation ``pc``:
    ``spec.semantics.step`` run on :class:`Z3Dom` (``cut``: the fault's
    variant, free when not given)."""
    k = sysm.kinds[ki]
    loc = s.local(p)
    d = Z3Dom(sysm, k, loc, s.fs, fault, s.pub, cut)
    S.step(k.program, pc, d)
    loc2 = d.loc
    waits = [] if is_false(d.blocked) else [z3.Not(d.blocked)]  # a process waiting for a lock cannot step
    ins = k.program.code[pc]
    variant = fault_variant(sysm, k, ins, d.cut)
    enabled = z3.And(sysm.kind_of[p] == ki, loc.pc == pc, loc.st == RUN_CODE,
                     z3.Implies(fault, fault_allowed(sysm, k, ins)),
                     *([] if is_true(variant) else [z3.Implies(fault, variant)]), *waits)
    ok_now = z3.And(loc.st != OK_CODE, loc2.st == OK_CODE) if k.program.role is Role.WRITER else FALSE
    pub_path = {n: z3.Or(v, ok_now) if any(pp.name == n for pp, _ in k.program.publishes) else v
                for n, v in s.pub_path.items()}

    def put(a: Term, new: Term, old: Term) -> Term:
        return a if new is old or new.eq(old) else z3.Store(a, p, new)

    after = SymState(
        z3.Store(s.pc, p, loc2.pc), z3.Store(s.st, p, loc2.st), z3.Store(s.last, p, loc2.last),
        z3.Store(s.prog, p, loc2.prog), z3.Store(s.began, p, loc2.began),
        {key: put(a, loc2.regs[key], loc.regs[key]) for key, a in s.regs.items()},
        {key: put(a, loc2.priv[key], loc.priv[key]) for key, a in s.priv.items()},
        d.fs, s.faults + z3.If(fault, 1, 0), z3.Or(s.pub, ok_now), pub_path)
    return Transition(enabled, after)


def cases(sysm: SymSystem) -> list[tuple[int, int]]:
    """Every (kind, operation pc) a step can start from."""
    return [(ki, pc) for ki, k in enumerate(sysm.kinds) for pc in op_pcs(k)]


def step(sysm: SymSystem, s: SymState, p: Term, fault: Term, cut: Term | None = None) -> Transition:
    """Any process ``p`` takes its next step: the case split over every
    kind and operation, merged into one transition (``cut``: the fault's
    variant, shared by the cases)."""
    cut = z3.FreshInt("cut") if cut is None else cut
    steps = [case_step(sysm, s, p, fault, ki, pc, cut) for ki, pc in cases(sysm)
             if not is_false(z3.simplify(sysm.kind_of[p] == ki))]
    budget = TRUE if sysm.fault_budget is None else z3.Implies(fault, s.faults < sysm.fault_budget)
    enabled = z3.And(budget, z3.Or([t.enabled for t in steps]))
    after = steps[-1].after
    for t in reversed(steps[:-1]):
        after = merge_state(t.enabled, t.after, after)
    return Transition(enabled, after)


def merge_state(c: Term, a: SymState, b: SymState) -> SymState:
    """``a`` where ``c`` holds, else ``b``."""
    pick = _chooser(c)
    return SymState(
        pick(a.pc, b.pc), pick(a.st, b.st), pick(a.last, b.last), pick(a.prog, b.prog),
        pick(a.began, b.began), {k: pick(v, b.regs[k]) for k, v in a.regs.items()},
        {k: pick(v, b.priv[k]) for k, v in a.priv.items()}, merge_fs(c, a.fs, b.fs),
        pick(a.faults, b.faults), pick(a.pub, b.pub), {k: pick(v, b.pub_path[k]) for k, v in a.pub_path.items()})
