"""Translate a System into Promela, for cross-checking the explorer with SPIN.

The explorer (``spec.explore``) is our own code; a verdict it gives is only as
good as its value domain (``spec.machine.PyDom``: the model's file system and
process state), its search and its reductions.  This module writes the same
bounded system as a Promela model so that SPIN, an independent model checker
with no symmetry reduction and no inode garbage collection, can confirm or
refute each verdict.  Any :class:`~spec.system.System` is translated, a
catalogue protocol or a user's own: no protocol is translated by hand.

How: :class:`PmlDom` is a value domain of ``spec.semantics`` (a
:class:`~spec.semantics.Dom`) whose values are Promela expressions
(:class:`Expr`, with Python's operators building bigger ones) and whose
effects and checks emit Promela statements.  Each step of a process -
``spec.semantics.step``: the operation (one byte of it at byte
granularity), a reader's first step noted against the first publication,
then the local control flow (``spec.semantics.settle``: branches, gotos,
local operations, the return) - is run once on this domain per operation
and per fault that may strike it, and becomes one ``d_step`` (one
indivisible transition) guarded by the process's ``pc``.  A check that
holds ends the operation (``if :: cond -> last = E_..  :: else -> ...``,
the rest of the operation nested in the ``else``, closed at its end); a
conditional effect or a branch is an ``if``/``else``.  So every rule of
an operation (register kinds, the order of its errors, where a fault
strikes and how many bytes land first, payload and length resolution,
local control flow) is the table's, not restated here; what this module
owns is the encoding: how registers, inodes and names are Promela
variables, and the Promela of each primitive of the domain (a file's
bytes, a read, a mapped read, a resize, an fsync).

The encoding:

- one ``proctype`` per kind of process (a program and its payloads); its
  registers are process-local variables by kind (``spec.semantics.registers``):
  a descriptor ``r_f_ino/_off/_mode``, a size ``r_st`` (-1 when unset, as
  in the model), a buffer ``r_buf_len`` (``NOLEN`` when unset) and
  ``r_buf[]``, a mapping ``r_map_ino/_len``; an unset inode is ``NOINO``
  (-1, the model's own "no inode");
- injected faults: each operation gets one more ``d_step`` per fault
  ``spec.semantics.fault_options`` offers (at write granularity one per
  number of bytes landing first; at byte granularity one, at the current
  byte), enabled while the global ``faults`` counter is below the budget;
- the file system: shared names as global inode numbers, private names (a
  temp file) as process-local ones, and a global pool of inodes (size and
  bytes; bytes past the size are always zero), one slot per (process,
  ``create`` of its code), so an unlinked or renamed-over inode lives on
  for its holders;
- what a system's programs use beyond plain files, only where they use
  it (so every other model's text is as before): a ``bool dir_*`` per
  directory the programs name; an inode's ``link`` (0, or 1 + the index
  of its target among the symlinks' targets) and a symlink's size, its
  target's length; an inode's flock state ``lock`` and a descriptor's
  ``_lock`` and (O_APPEND) ``_app``; a write of more than one byte in one
  step as a loop over its bytes (an append lands whole);
- the object store, where the programs use it: per key a global inode
  number (``ob_<key>``) and ETag, and the last ETag handed out; an object
  is an inode slot its PUT fills whole and nobody writes again; a fault on
  a request is one transition per variant ``spec.semantics.fault_options``
  offers (a PUT lost before or after the store acted, a GET failing or cut
  after k bytes); a buffer write (a GET's body) is a loop over its bytes;
- a process waiting for a lock (``Dom.block``): the operation's checks
  before the wait make no change, so the wait's condition, on the state
  before the step, is part of the ``d_step``'s guard - the process has
  no transition until another releases the lock, as in the explorer;
- one power loss (``System.crashes == 1``), as ``spec.machine.crash``: each
  inode also keeps its durable bytes (what its last fsync saw), and a
  ``Crash`` process may, once, at any point, stop every running process
  (status ``crashed``) and revert every named inode to its durable bytes;
  nothing runs afterwards;
- the properties ``published-entry-stays-complete``,
  ``reader-after-publication-hits``, ``reader-never-accepts-corrupt``,
  ``mmap-reader-never-faults``, ``index-implies-complete-output``,
  ``remote-hit-serves-complete-output`` and
  ``remote-record-names-complete-output`` as an
  ``assert`` at the end of every process transition, and in ``init`` where
  a process returns before its first operation (so in every reachable state
  before a crash: the initial state can only fail one if a process ends at
  once), and ``published-entry-survives-crash`` at the end of the crash
  transition (the explorer, too, checks it only after a crash, and the
  others only before).

Not translated: programs with a backward jump (each ``create`` must run at
most once for its fixed inode slot; the catalogue has no loops), files too
long for byte offsets, properties other than the eight above, and the
explorer's reductions (symmetry, inode renumbering and collection): SPIN
sees every inode slot and every process order, so its state counts are
larger; the verdicts, the shortest counterexamples' lengths and, where the
encodings can be matched (:func:`lifted_states`), the state counts must
agree (``model_tests/test_spin.py``).  What the cross-check cannot see is
a mistake in ``spec.semantics`` itself: both checkers run that table.

Pure: this module builds strings and runs nothing (``proofs.spin`` runs SPIN).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, TypeGuard, Union

from spec import semantics as S
from spec.semantics import OBJECTS
from spec.explore import Exploration
from spec.fs import PAGE_SIZE, FileSystem
from spec.machine import fault_operand, start
from spec.ops import (
    ACTION_KEY,
    OUTPUT_KEY,
    Data,
    GetObject,
    Instr,
    Key,
    Length,
    Mkdir,
    Path,
    Program,
    ProgramError,
    Readlink,
    Role,
    Symlink,
    WriteBuf,
)
from spec.properties import (
    HITS,
    INDEX_OUTPUT,
    NO_CORRUPT,
    NO_SIGBUS,
    REMOTE_HIT,
    REMOTE_RECORD,
    STAYS,
    SURVIVES,
    Property,
    get_property,
    objects_put,
)
from spec.state import UNSET, Began, Crash, RegKind, Status
from spec.system import Kind, System

# Every property of spec.properties; SURVIVES speaks of post-crash states.
SUPPORTED: tuple[Property, ...] = (STAYS, HITS, NO_CORRUPT, NO_SIGBUS, INDEX_OUTPUT, SURVIVES, REMOTE_HIT, REMOTE_RECORD)

NOLEN = 255  # "no buffer": an unset buffer register; also the bound on byte offsets


class TranslationError(ProgramError):
    """The program or bounds use something this translator does not model
    (a loop, a file too long for a byte offset, an unknown property); the
    message says which."""


# ------------------------------------------------------------ expressions


def _binary(op: str, swap: bool = False) -> Callable[["Expr", object], "Expr"]:
    """The method for Python's operator ``op`` (``swap``: its reflected form)."""
    def method(self: Expr, o: object) -> Expr:
        return self._op(op, o, swap)
    return method


class Expr:
    """A Promela expression: a value of :class:`PmlDom`.

    Python's arithmetic and comparison operators build bigger expressions
    (``a + 1``, ``a < b``, ``a == b``), as ``spec.semantics`` expects of a
    domain's values.  The text is produced when a statement uses the
    value (:meth:`render`): a value read from a variable that has been
    assigned since renders as a copy taken where it was read (``_Read``),
    so values behave as the model's Python values do.  An expression is
    not a Python truth value: the semantics branches on the domain's
    values only through the domain (``check``, ``when``, ``branch``)."""

    def render(self) -> str:
        raise NotImplementedError

    def reads(self) -> Iterator["_Read"]:
        """The variable reads this value is made of."""
        return iter(())

    def _op(self, op: str, other: object, swap: bool = False) -> "Expr":
        if not isinstance(other, (Expr, int)):
            raise TypeError(f"no Promela operator {op} for {other!r}")
        a, b = (other, self) if swap else (self, other)
        if op in ("+", "-") and isinstance(a, Expr) and _known(b) and b == 0:
            return a  # x + 0, x - 0
        if op == "+" and isinstance(b, Expr) and _known(a) and a == 0:
            return b  # 0 + x
        return _Op("({} " + op + " {})", (a, b))

    __add__, __radd__ = _binary("+"), _binary("+", swap=True)
    __sub__, __rsub__ = _binary("-"), _binary("-", swap=True)
    __lt__, __le__, __gt__, __ge__ = _binary("<"), _binary("<="), _binary(">"), _binary(">=")
    eq, ne = _binary("=="), _binary("!=")

    # Any, not Expr: object's own signature says bool (an Expr is what is returned).
    def __eq__(self, o: object) -> Any:
        return self.eq(o)

    def __ne__(self, o: object) -> Any:
        return self.ne(o)

    def __hash__(self) -> int:
        raise TypeError("a Promela expression is not hashable")

    def __bool__(self) -> bool:
        raise TranslationError(f"the Promela value {self.render()} was used as a Python truth value: "
                               "the semantics must decide on domain values through m.check, m.when or m.branch")


# A value of the domain: an expression, or a number (or bool) known when translating.
Val = Union[Expr, int]


def text(v: Val) -> str:
    """The Promela text of a value."""
    if isinstance(v, Expr):
        return v.render()
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(int(v))


def _known(v: Val) -> TypeGuard[int]:
    """Is ``v`` a number known now (not a Promela expression)?"""
    return not isinstance(v, Expr)


class _Name(Expr):
    """A macro or a scratch variable assigned once: never stale."""

    def __init__(self, name: str) -> None:
        self.name = name

    def render(self) -> str:
        return self.name


class _Op(Expr):
    """An operator applied to values, as a format string."""

    def __init__(self, fmt: str, args: tuple[Val, ...]) -> None:
        self.fmt, self.args = fmt, args

    def render(self) -> str:
        return self.fmt.format(*(text(a) for a in self.args))

    def reads(self) -> Iterator["_Read"]:
        for a in self.args:
            if isinstance(a, Expr):
                yield from a.reads()


@dataclass
class _Slot:
    """A place in the code where a statement may be put later: where a
    value was read, in case it has to be copied there (``_Read``)."""

    stmt: str = ""


class _Read(Expr):
    """A value read from the state: its text, and the variables it depends
    on with their versions at the time of reading.  If one of them has been
    assigned when the value is used, the value is copied into a scratch
    variable at the place it was read (its slot), and renders as that."""

    def __init__(self, dom: "PmlDom", txt: str, deps: tuple[tuple[str, int], ...]) -> None:
        self.dom, self.txt, self.deps = dom, txt, deps
        self.slot, self.home = _Slot(), dom.stack[-1]  # where it was read
        self.home.append(self.slot)
        self.copy: str | None = None

    def render(self) -> str:
        if self.copy is None and self.dom.stale(self.deps):
            self.copy = self.dom.copy(self)
        return self.copy or self.txt

    def reads(self) -> Iterator["_Read"]:
        yield self


def _deps(v: Val) -> tuple[tuple[str, int], ...]:
    """What a value built from reads depends on (a copied read: nothing)."""
    return tuple(d for r in (v.reads() if isinstance(v, Expr) else ()) if r.copy is None for d in r.deps)


@dataclass(frozen=True, eq=False)
class _Text:
    """A buffer value: the target name of symlink ``link`` (its ``link``
    field: 1 + the index of the target in ``targets``)."""

    link: Val
    targets: tuple[str, ...]


@dataclass(frozen=True, eq=False)
class _Bytes:
    """A buffer value: ``count`` bytes of inode ``ino`` from ``start``
    (bytes past the file's size read as zero)."""

    ino: Val
    start: Val
    count: Val


# ------------------------------------------------------------ statements


@dataclass
class _If:
    """``if :: cond -> then :: else -> other fi`` (``else`` keeps a d_step
    deterministic)."""

    cond: str
    then: list["_Stmt"] = field(default_factory=list)
    other: list["_Stmt"] = field(default_factory=list)


_Stmt = Union[str, _Slot, _If]


def _lines(block: list[_Stmt]) -> list[str]:
    out: list[str] = []
    for s in block:
        if isinstance(s, str):
            out.append(s)
        elif isinstance(s, _Slot):
            if s.stmt:
                out.append(s.stmt)
        else:
            out += ["if", f":: {s.cond} ->", *_indent(_lines(s.then) or ["skip"]),
                    ":: else ->", *_indent(_lines(s.other) or ["skip"]), "fi;"]
    return out


def _indent(lines: list[str], n: int = 1) -> list[str]:
    return ["  " * n + ln for ln in lines]


def _ident(name: str) -> str:
    """A Promela identifier for a protocol, path or register name."""
    return "".join(c if c.isalnum() else "_" for c in name)


def _status(s: Status) -> str:
    return f"S_{_ident(s.value).upper()}"


# Status values, S_RUN first: ``byte status[NPROC]`` starts at 0, running.
STATUSES: tuple[Status, ...] = (Status.RUNNING, *(s for s in Status if s is not Status.RUNNING))


class _Stop(Exception):
    """The operation ended here on every path (a check or fault known to hold)."""


# ------------------------------------------------------------ the domain


class PmlDom:
    """One transition of one process, as Promela: the semantics' value
    domain (``spec.semantics.Dom``) whose values are Promela expressions
    and whose effects are statements appended to the transition's code.

    Python's ``if`` only decides what is known when translating (a
    constant condition, the fault this transition injects); a condition on
    the state becomes a Promela ``if``.  Every variable's version is
    counted (``epoch``) so that a value read before an assignment to its
    variable and used after it is copied where it was read (``_Read``)."""

    def __init__(self, pt: "_Proctype", pc: int, fault: tuple[str, int] | None) -> None:
        self.pt, self.tr, self.kind = pt, pt.tr, pt.kind
        self.granularity = pt.tr.system.granularity
        self.features = pt.tr.system.features
        self.pc = pc
        self.strikes: str | None = fault[0] if fault is not None else None
        self.landed = fault[1] if fault is not None else 0
        self.root: list[_Stmt] = []
        self.stack: list[list[_Stmt]] = [self.root]  # the blocks from the root to where code goes now
        self.conds: list[Val] = []  # the condition of each block above the root (stack[1:])
        self.waits: list[str] = []  # where the process cannot take this step (Dom.block), on the state before it
        self.epoch: dict[str, int] = {}
        self.clock = 0
        self.ended: set[str] = set()  # variables assigned on paths that ended the operation
        self.temps = 0
        self.loops = False
        self.creates = 0
        self.pending = ""  # the scratch variable of an operation not finished this step
        self.died = False
        self.running: list[Instr] = []
        # Whether some writer had published before this step, as the model
        # reads it (a copy is taken here if the step changes a status first).
        self.pub = self._read("PUBLISHED", "status")

    # -- code and versions

    def emit(self, *stmts: str) -> None:
        self.stack[-1].extend(stmts)

    def temp(self) -> str:
        """A fresh scratch variable (zeroed at the end of the transition)."""
        name = f"t{self.temps}"
        self.temps += 1
        self.tr.temps = max(self.tr.temps, self.temps)
        return name

    def stale(self, deps: tuple[tuple[str, int], ...]) -> bool:
        return any(self.epoch.get(k, 0) != e for k, e in deps)

    def _bump(self, *keys: str) -> None:
        for k in keys:
            self.clock += 1
            self.epoch[k] = self.clock

    def _read(self, txt: str, key: str = "", of: Val = 0) -> _Read:
        """The variable ``txt``, versioned as ``key`` (by default its name
        before any index; ``of``: the value its text is indexed by)."""
        key = key or _key(txt)
        return _Read(self, txt, ((key, self.epoch.get(key, 0)), *_deps(of)))

    def copy(self, read: _Read) -> str:
        """Copy ``read`` into a scratch variable where it was read (it is
        used after its variable changed)."""
        if not any(b is read.home for b in self.stack):
            raise TranslationError(f"{self.kind.name}: {read.txt}, read on one path of an if, is used after the if, changed")
        t = self.temp()
        read.slot.stmt = f"{t} = {read.txt};"
        return t

    def _assign(self, *pairs: tuple[str, Val]) -> None:
        """Assign variables: every value is rendered before any changes."""
        rendered = [f"{target} = {text(v)};" for target, v in pairs if text(v) != target]
        self._bump(*(_key(target) for target, _ in pairs))
        self.emit(*rendered)

    def _let(self, v: Val) -> Val:
        """``v`` as it is now, in a scratch variable (a number stays one)."""
        if _known(v):
            return v
        t = self.temp()
        self.emit(f"{t} = {text(v)};")
        return _Name(t)

    def _fork(self, cond: Val) -> _If:
        node = _If(text(cond))
        self.stack[-1].append(node)
        return node

    def _inside(self, block: list[_Stmt], cond: Val, body: Callable[[], object]) -> None:
        self.stack.append(block)
        self.conds.append(cond)
        try:
            body()
        finally:
            self.stack.pop()
            self.conds.pop()

    def _merge(self, before: dict[str, int], *paths: dict[str, int]) -> None:
        """After an if/else: a variable assigned on some path has a new version."""
        self.epoch = dict(before)
        changed = {k for p in paths for k in p if p[k] != before.get(k, 0)}
        self._bump(*sorted(changed))

    def _exit_if(self, cond: Val, body: Callable[[], None]) -> None:
        """Where ``cond`` holds, ``body`` ends the operation; the rest of it
        goes on in the ``else`` branch (closed by :meth:`run_op`)."""
        if _known(cond):
            if cond:
                body()
                raise _Stop
            return
        node, before = self._fork(cond), dict(self.epoch)
        self._inside(node.then, cond, body)
        self.ended |= {k for k in self.epoch if self.epoch[k] != before.get(k, 0)}
        self.epoch = before
        self.stack.append(node.other)
        self.conds.append(self.not_(cond))

    # -- logic (numbers known now are folded)

    def and_(self, *bs: Val) -> Val:
        return _connect("&&", bs, decides=False)

    def or_(self, *bs: Val) -> Val:
        return _connect("||", bs, decides=True)

    def not_(self, b: Val) -> Val:
        if _known(b):
            return not b
        if isinstance(b, _Op) and b.fmt == "!{}":
            return b.args[0]  # not "!!": Promela reads that as an operator of its own
        return _Op("!{}", (b,))

    def ite(self, c: Val, a: Val, b: Val) -> Val:
        if _known(c):
            return a if c else b
        if _known(a) and _known(b) and a == b:
            return a
        return _Op("({} -> {} : {})", (c, a, b))

    # -- the step

    def check(self, cond: Val, errno: str, then: Callable[[], None] | None = None) -> None:
        def fail() -> None:
            if then is not None:
                then()
            self.emit(f"last = {self.tr.errno(errno)};")
        self._exit_if(cond, fail)

    # The fault this transition injects is known when translating: a
    # transition per fault that may strike (``_Proctype.faults``).
    def faulted(self) -> bool:
        return self.strikes is not None

    def fault_bytes(self) -> int:
        return self.landed

    def fault_point(self) -> None:
        if self.strikes is not None:
            self.emit(f"last = {self.tr.errno(self.strikes)};")
            raise _Stop

    def when(self, cond: Val, effect: Callable[[], Val], otherwise: Val) -> Val:
        if _known(cond):
            return effect() if cond else otherwise
        if otherwise is None:  # an effect only, no value
            self.branch(cond, effect, lambda: None)
            return None
        t = self.temp()
        self.branch(cond, lambda: self.emit(f"{t} = {text(effect())};"), lambda: self.emit(f"{t} = {text(otherwise)};"))
        return _Name(t)

    def branch(self, cond: Val, then: Callable[[], None], other: Callable[[], None]) -> None:
        if _known(cond):
            (then if cond else other)()
            return
        node, before = self._fork(cond), dict(self.epoch)
        self._inside(node.then, cond, then)
        after_then, self.epoch = self.epoch, dict(before)
        self._inside(node.other, self.not_(cond), other)
        self._merge(before, after_then, self.epoch)

    def run_op(self, ins: Instr) -> None:
        depth, ended = len(self.stack), self.ended
        self.ended = set()
        self.running.append(ins)
        try:
            S.spec_of(ins).run(ins, self)
            self.emit(f"last = {self.tr.errno('')};")
        except _Stop:
            pass
        self.running.pop()
        # The operation's nesting closes here; what follows runs on every path.
        del self.stack[depth:]
        del self.conds[depth - 1:]
        self._bump(*sorted(self.ended))
        self.ended = ended

    def block(self, cond: Val) -> None:
        if _known(cond) and not cond:
            return
        # The guard is tested on the state before the step: nothing may
        # have changed it yet (spec.semantics._flock waits before any effect).
        if self.epoch or self.temps:
            raise TranslationError(f"{self.kind.name}: {self.running[-1]} waits after an effect; "
                                   "its wait cannot be the transition's guard")
        self.waits.append(text(self.and_(*self.conds, cond)))

    def die(self, cond: Val, status: Status) -> None:
        self.died = self.died or not _known(cond) or bool(cond)
        self._exit_if(cond, lambda: self.finish(status, None))

    def progress(self) -> Val:
        return self._read("progress")

    def complete(self, done: Val) -> None:
        if _known(done) and done:
            self._assign(("progress", 0))
            return
        if self.creates:
            raise TranslationError(f"{self.kind.name}: an operation that creates an inode takes more than one step; "
                                   "its inode slot would be reused")
        # "Not finished" in a scratch variable: it is 0, finished, on every
        # path that does not come here (a failed check ends the operation).
        self.pending = self.pending or self.temp()
        self.emit(f"{self.pending} = {text(self.not_(done))};")
        self._assign(("progress", self.ite(_Name(self.pending), self.progress() + 1, 0)))

    def after_op(self, settle: Callable[[], None]) -> None:
        go = self.not_(_Name(self.pending)) if self.pending else True
        if self.died:
            go = self.and_(go, self._read("status[me]").eq(_Name(_status(Status.RUNNING))))
        self.branch(go, settle, lambda: None)

    def stop_at(self, pc: int) -> None:
        self._assign(("pc", pc))

    def finish(self, status: Status, keep: str | None) -> None:
        S.release_locks(self, self.kind.program, keep)
        self._assign(("status[me]", _Name(_status(status))), ("pc", _Name("DONE")), ("last", _Name(self.tr.errno(""))),
                     ("progress", 0))
        for reg in self.kind.reg_kind:
            if reg != keep:
                self.clear(reg)
        if status is Status.HIT and keep is not None and NO_CORRUPT in self.tr.props:
            payloads = _payloads_of(self.tr.system, self.kind.program.reads.name)
            self.emit(f"assert({_holds(f'{_reg(keep)}_len', f'{_reg(keep)}[%d]', payloads)}); /* {NO_CORRUPT} */")

    def failed(self, errnos: frozenset[str]) -> Val:
        last = self._read("last")
        if not errnos:
            return last.ne(_Name(self.tr.errno("")))
        return self.or_(*(last.eq(_Name(self.tr.errno(e))) for e in sorted(errnos)))

    def began(self) -> Val:
        return self._read("began[me]")

    def published(self) -> Val:
        return self.pub

    def set_began(self, b: Val) -> None:
        self._assign(("began[me]", b))

    # -- registers

    def _kind_of(self, reg: str) -> RegKind:
        return self.kind.reg_kind[reg]

    def held(self, reg: str) -> Val:
        return self._read(f"{_reg(reg)}_ino").ne(_Name("NOINO"))

    def fd_ino(self, reg: str) -> Val:
        return self._read(f"{_reg(reg)}_ino")

    def fd_off(self, reg: str) -> Val:
        return self._read(f"{_reg(reg)}_off")

    def fd_mode(self, reg: str) -> Val:
        return self._read(f"{_reg(reg)}_mode")

    def size_of(self, reg: str) -> Val:
        return self._read(_reg(reg))

    def map_ino(self, reg: str) -> Val:
        return self._read(f"{_reg(reg)}_ino")

    def map_len(self, reg: str) -> Val:
        return self._read(f"{_reg(reg)}_len")

    def valid(self, reg: str, length: Val) -> Val:
        if not _known(length):
            raise TranslationError(f"{self.kind.name}: a validation length must be known when translating")
        r = _reg(reg)
        return self._read(_valid(f"{r}_len", f"{r}[%d]", int(length)), r)

    def fd_append(self, reg: str) -> Val:
        return self._read(f"{_reg(reg)}_app") if S.APPEND in self.features else False

    def fd_lock(self, reg: str) -> Val:
        return self._read(f"{_reg(reg)}_lock") if S.LOCKS in self.features else 0

    def set_fd(self, reg: str, ino: Val, off: Val, mode: int, append: bool = False) -> None:
        r = _reg(reg)
        extra: list[tuple[str, Val]] = []
        if S.APPEND in self.features:
            extra.append((f"{r}_app", append))
        if S.LOCKS in self.features:
            extra.append((f"{r}_lock", 0))  # a new open description holds no lock
        self._assign((f"{r}_ino", ino), (f"{r}_off", off), (f"{r}_mode", mode), *extra)

    def set_fd_lock(self, reg: str, lock: Val) -> None:
        self._assign((f"{_reg(reg)}_lock", lock))

    def set_fd_off(self, reg: str, off: Val) -> None:
        self._assign((f"{_reg(reg)}_off", off))

    def set_size(self, reg: str, n: Val) -> None:
        self._assign((_reg(reg), n))

    def set_buf(self, reg: str, buf: Val | _Bytes | _Text) -> None:
        if isinstance(buf, _Text):
            self._set_text(reg, buf)
            return
        if not isinstance(buf, _Bytes):
            raise TranslationError(f"{self.kind.name}: buffer {reg!r} set to {buf!r}, not bytes of a file")
        self.pt.fills.add(self.running[-1])
        r, ino, count = _reg(reg), text(buf.ino), text(buf.count)
        at = text(buf.start + _Name("j"))
        self.clear(reg)
        self.loops = True
        self._bump(r)
        self.emit("j = 0;", f"do :: j < {count} -> {r}[j] = node[{ino}].data[{at}]; j++ :: else -> break od;",
                  f"{r}_len = {count};")

    def _set_text(self, reg: str, buf: _Text) -> None:
        """Buffer ``reg`` holds the target name of a symlink (readlink)."""
        r = _reg(reg)
        self.clear(reg)
        for k, name in enumerate(buf.targets):
            stores = [*(f"{r}[{j}] = {b};" for j, b in enumerate(name.encode())), f"{r}_len = {len(name)};"]
            is_it = buf.link.eq(k + 1) if isinstance(buf.link, Expr) else buf.link == k + 1
            self.branch(is_it, self._emitter(stores), lambda: None)
        self._bump(r)

    def _emitter(self, stmts: list[str]) -> Callable[[], None]:
        return lambda: self.emit(*stmts)

    def set_map(self, reg: str, ino: Val, n: Val) -> None:
        r = _reg(reg)
        self._assign((f"{r}_ino", ino), (f"{r}_len", n))

    def clear(self, reg: str) -> None:
        r, kind = _reg(reg), self._kind_of(reg)
        if kind is RegKind.FD:
            self.set_fd(reg, _Name("NOINO"), 0, 0)
        elif kind is RegKind.SIZE:
            self.set_size(reg, -1)
        elif kind is RegKind.MAP:
            self.set_map(reg, _Name("NOINO"), 0)
        else:
            # Bytes past the length are kept zero so that equal buffers are equal states.
            self.loops = True
            self._bump(r)
            self.emit(f"{r}_len = NOLEN;", "j = 0;", f"do :: j < BUFMAX -> {r}[j] = 0; j++ :: else -> break od;")

    # -- payloads

    def payload_len(self, name: str) -> int:
        return len(self.kind.payload(name))

    # -- the file system

    def lookup(self, path: Path) -> Val:
        return self._read(_name(path))

    def create(self) -> Val:
        # The slot of this process for this create (it runs at most once: no loops).
        slot = self.pt.slot(self.pc, self.creates)
        self.creates += 1
        ino = f"ibase + {slot}"
        self._bump("node.size")
        self.emit(f"node[{ino}].size = 0;")
        return _Name(f"({ino})")

    def bind(self, path: Path, ino: Val) -> None:
        self._assign((_name(path), ino))

    def unbind(self, path: Path) -> None:
        self._assign((_name(path), _Name("NOINO")))

    def dir_exists(self, path: str) -> Val:
        return self._read(_dir(path))

    def add_dir(self, path: str) -> None:
        self._assign((_dir(path), 1))

    def create_link(self, target: Path) -> Val:
        slot = self.pt.slot(self.pc, self.creates)
        self.creates += 1
        ino, n = f"ibase + {slot}", len(target.name)
        self._bump("node.size", "node.link", "node.durable")
        durable = [f"node[{ino}].dsize = {n};"] if self.tr.system.crashes else []  # a symlink is durable at once
        self.emit(f"node[{ino}].size = {n};", *durable, f"node[{ino}].link = {self.tr.targets.index(target.name) + 1};")
        return _Name(f"({ino})")

    def _link(self, ino: Val) -> Expr:
        """Inode ``ino``'s ``link`` field (0 for NOINO: no symlink)."""
        i = text(ino)
        return self._read(f"({i} == NOINO -> 0 : node[{i}].link)", "node.link", ino)

    def is_link(self, ino: Val) -> Val:
        if S.LINKS not in self.features:
            return False  # no program makes one
        return self._link(ino).ne(0)

    def link_target(self, ino: Val) -> Val:
        link, out = self._link(ino), self.ite(False, 0, -1)
        for k in range(len(self.tr.targets) - 1, -1, -1):
            out = self.ite(link.eq(k + 1), self._read(f"nm_{_ident(self.tr.targets[k])}"), out)
        return out

    def bind_target(self, link: Val, ino: Val) -> None:
        at = self._link(link)
        for k, t in enumerate(self.tr.targets):
            self.branch(at.eq(k + 1), self._assigner(f"nm_{_ident(t)}", ino), lambda: None)

    def _assigner(self, var: str, v: Val) -> Callable[[], None]:
        return lambda: self._assign((var, v))

    def link_text(self, ino: Val) -> _Text:
        return _Text(self._link(ino) if S.LINKS in self.features else 0, self.tr.targets)

    def lock_state(self, ino: Val) -> Val:
        if S.LOCKS not in self.features:
            return 0
        i = text(ino)
        return self._read(f"({i} == NOINO -> 0 : node[{i}].lock)", "node.lock", ino)

    def set_lock(self, ino: Val, state: Val) -> None:
        i, v = text(ino), text(state)
        self._bump("node.lock")
        self.emit(f"node[{i}].lock = {v};")

    def file_size(self, ino: Val) -> Val:
        return self._read(f"node[{text(ino)}].size", "node.size", ino)

    def resize(self, ino: Val, n: Val) -> None:
        self.pt.grows.add(self.running[-1])
        i, size = text(ino), text(n)
        self.loops = True
        self._bump("node.size", "node.data")
        # Cut bytes are zeroed: bytes past the size are always zero, so a
        # later extension or a hole reads zero, as in ``spec.fs``.
        self.emit(f"j = {size};", f"do :: j < node[{i}].size -> node[{i}].data[j] = 0; j++ :: else -> break od;",
                  f"node[{i}].size = {size};")

    def write(self, ino: Val, at: Val, payload: str, first: Val, count: Val) -> None:
        if not _known(count):
            self._write_run(ino, at, payload, first, count)
            return
        if not count:
            return  # a write of no bytes changes nothing, even past the end
        self.pt.grows.add(self.running[-1])
        data, i = self.kind.payload(payload), text(ino)
        stores = [f"node[{i}].data[{text(at + k)}] = {_byte_at(data, first + k)};" for k in range(int(count))]
        end = text(at + count)
        self._bump("node.size", "node.data")
        self.emit(*stores, f"if :: {end} > node[{i}].size -> node[{i}].size = {end} :: else -> skip fi;")

    def _write_run(self, ino: Val, at: Val, payload: str, first: Val, count: Val) -> None:
        """A write of a number of bytes known only in the state (an
        O_APPEND write lands whole): a loop over them.  Bytes past a size
        are always zero, so a hole before them needs no filling."""
        self.pt.grows.add(self.running[-1])
        data, i = self.kind.payload(payload), text(ino)
        n, start, end = text(count), text(at + _Name("j")), text(at + count)
        byte = _byte_at(data, first + _Name("j"))
        self.loops = True
        self._bump("node.size", "node.data")
        self.emit("j = 0;", f"do :: j < {n} -> node[{i}].data[{start}] = {byte}; j++ :: else -> break od;",
                  f"if :: {end} > node[{i}].size -> node[{i}].size = {end} :: else -> skip fi;")

    def read(self, ino: Val, off: Val, n: Val) -> tuple[_Bytes, Val]:
        size = self.file_size(ino)
        got = self._let(self.ite(off >= size, 0, self.ite(size - off < n, size - off, n)))
        return _Bytes(ino, off, got), got

    def sync(self, ino: Val) -> None:
        if not self.tr.system.crashes:
            return  # durable bytes are kept only where a crash can read them
        i = text(ino)
        self.loops = True
        self._bump("node.durable")
        self.emit(f"node[{i}].dsize = node[{i}].size;", "j = 0;",
                  f"do :: j < MAXLEN -> node[{i}].ddata[j] = node[{i}].data[j]; j++ :: else -> break od;")

    def mapped_read(self, ino: Val, n: Val) -> tuple[Val, _Bytes]:
        # A byte in a page wholly past the end of file is SIGBUS (spec.fs.mapped_read).
        backed = _Op("((({} + {}) / {}) * {})", (self.file_size(ino), PAGE_SIZE - 1, PAGE_SIZE, PAGE_SIZE))
        return n > backed, _Bytes(ino, 0, n)

    def buf_len(self, reg: str) -> Val:
        r = _reg(reg)
        return self._read(f"({r}_len == NOLEN -> 0 : {r}_len)", r)

    def write_buf(self, ino: Val, at: Val, reg: str, first: Val, count: Val) -> None:
        if _known(count) and not count:
            return
        self.pt.grows.add(self.running[-1])
        i, r = text(ino), _reg(reg)
        n, start, end = text(count), text(at + _Name("j")), text(at + count)
        self.loops = True
        self._bump("node.size", "node.data")
        self.emit("j = 0;", f"do :: j < {n} -> node[{i}].data[{start}] = {r}[{text(first + _Name('j'))}]; j++ "
                  ":: else -> break od;", f"if :: {end} > node[{i}].size -> node[{i}].size = {end} :: else -> skip fi;")

    # -- the object store: per key its object's inode and ETag

    def obj_lookup(self, key: Key) -> Val:
        return self._read(_object(key))

    def obj_etag(self, key: Key) -> Val:
        return self._read(f"{_object(key)}_etag")

    def obj_bind(self, key: Key, ino: Val) -> None:
        self._assign(("etags", self._read("etags") + 1))
        self._assign((_object(key), ino), (f"{_object(key)}_etag", self._read("etags")))

    def obj_unbind(self, key: Key) -> None:
        self._assign((_object(key), _Name("NOINO")))

    def fill(self, ino: Val, payload: str, first: Val, count: Val) -> None:
        self.write(ino, 0, payload, first, count)

    def obj_read(self, ino: Val, n: Val) -> _Bytes:
        return _Bytes(ino, 0, n)

    # -- the transition's code

    def body(self) -> list[str]:
        """The transition's statements, its scratch variables zeroed after
        them (so that they never tell two states apart)."""
        scratch = [f"t{k}" for k in range(self.temps)] + (["j"] if self.loops else [])
        return _lines(self.root) + ([" ".join(f"{v} = 0;" for v in scratch)] if scratch else [])


def _connect(op: str, bs: tuple[Val, ...], decides: bool) -> Val:
    """``op`` over ``bs``: an operand known to be ``decides`` decides it;
    the other known ones drop out."""
    if any(_known(b) and bool(b) is decides for b in bs):
        return decides
    rest = tuple(b for b in bs if not _known(b))
    if not rest:
        return not decides
    return rest[0] if len(rest) == 1 else _Op("(" + f" {op} ".join(["{}"] * len(rest)) + ")", rest)


def _key(var: str) -> str:
    """What a variable's version is counted by: its name before any index."""
    return var.split("[")[0]


def _reg(name: str) -> str:
    return f"r_{_ident(name)}"


def _object(key: Key | str) -> str:
    return f"ob_{_ident(key if isinstance(key, str) else key.name)}"


def _dir(path: str) -> str:
    return f"dir_{_ident(path)}"


def _name(path: Path) -> str:
    return f"pv_{_ident(path.name)}" if path.private else f"nm_{_ident(path.name)}"


def _byte_at(data: bytes, index: Val) -> str:
    """``data[index]`` (a conditional expression when the index is not
    known now; data is constant)."""
    if _known(index):
        return str(data[int(index)])
    i = text(index)
    expr = str(data[-1])
    for k in range(len(data) - 2, -1, -1):
        expr = f"({i} == {k} -> {data[k]} : {expr})"
    return expr


def _valid(length: str, byte: str, n: int) -> str:
    """``spec.fs.valid``: exactly ``n`` bytes, no zero byte (``byte % k``
    is byte k)."""
    return "(" + " && ".join([f"{length} == {n}", *(f"{byte % k} != 0" for k in range(n))]) + ")"


# ------------------------------------------------------------ one kind of process


def _operand_bytes(dom: PmlDom, ins: Instr) -> int:
    """A bound on how far ``ins`` can extend a file or fill a buffer: the
    sum of its byte counts, lengths and offsets (a file grows only to an
    offset plus a count, or to a length)."""
    total = 0
    for f in dataclasses.fields(ins):
        v = getattr(ins, f.name)
        if isinstance(v, bool):
            continue
        if isinstance(v, int):
            total += abs(v)
        elif isinstance(v, Data):
            total += int(S.data_range(dom, v)[1])
        elif isinstance(v, Length):
            total += max(0, int(S.length(dom, v)))
    if isinstance(ins, (GetObject, WriteBuf)):
        # A GET's body, or a write of one: at most the longest object.
        total += max((len(b) for _, b in dom.kind.payloads), default=0)
    return total


class _Proctype:
    """The proctype of one kind of process.  ``slots`` numbers the inodes
    its code creates (one per (operation, create): each gets the fixed
    inode slot ``ibase + slot``); ``grows`` and ``fills`` are the
    operations that extend a file or fill a buffer (for the bounds)."""

    def __init__(self, tr: "_Translation", k: int, name: str) -> None:
        self.tr, self.kind, self.name = tr, tr.system.kinds[k], name
        self.index = k
        prog = self.kind.program
        for i, t in enumerate(prog.targets):
            if t != -1 and t <= i:
                raise TranslationError(f"{prog.name}: backward jump at {i}; loops are not translated "
                                       "(a create could reuse its inode slot)")
        self.slots: dict[tuple[int, int], int] = {}
        self.grows: set[Instr] = set()
        self.fills: set[Instr] = set()
        self.body = self._transitions()

    def slot(self, pc: int, n: int) -> int:
        return self.slots.setdefault((pc, n), len(self.slots))

    def faults(self, pc: int) -> list[tuple[str, int]]:
        """The faults that may strike the operation at ``pc`` (at byte
        granularity the byte index lives in ``progress``)."""
        if self.tr.system.faults == 0:
            return []
        ins = self.kind.program.code[pc]
        return S.fault_options(ins, fault_operand(self.kind, ins), 0, self.tr.system.granularity)

    def _transitions(self) -> list[str]:
        prog, out = self.kind.program, []
        for pc, ins in enumerate(prog.code):
            if S.is_operation(ins):
                for f in [None, *self.faults(pc)]:
                    out += self._transition(pc, f)
        return out

    def _transition(self, pc: int, fault: tuple[str, int] | None) -> list[str]:
        dom = PmlDom(self, pc, fault)
        S.step(self.kind.program, pc, dom)
        # Nothing runs after a power loss; a process waiting for a lock does not run.
        guard = " && ".join([*(["crashed == 0"] if self.tr.system.crashes else []), f"pc == {pc}",
                             *(["faults < MAXFAULTS"] if fault else []), *(f"!({w})" for w in dom.waits)])
        body = (["faults++;"] if fault else []) + dom.body() + self.tr.asserts
        what = str(self.kind.program.code[pc])
        if fault:
            what += f"  [fault {fault[0]}" + (f", {fault[1]} bytes first" if fault[1] else "") + "]"
        return [f":: d_step {{ /* {pc}: {what} */", f"     {guard} ->", *_indent(body, 3), "   }"]

    def bounds(self) -> tuple[int, int]:
        """(how far one process's operations can extend files, the largest
        buffer one of its operations can fill)."""
        dom = PmlDom(self, -1, None)
        code = self.kind.program.code
        grows = sum(_operand_bytes(dom, ins) for ins in code if ins in self.grows)
        fills = max([_operand_bytes(dom, ins) for ins in code if ins in self.fills], default=0)
        if any(isinstance(ins, Readlink) for ins in code):
            fills = max([fills, *(len(t) for t in self.tr.targets)])  # a target's name
        return grows, fills

    def render(self) -> list[str]:
        prog = self.kind.program
        first = start(self.tr.system, self.index, FileSystem())
        if any(r != UNSET for r in first.regs) or first.private or first.progress:
            raise TranslationError(f"{prog.name}: its local control flow before its first operation sets registers or names")
        pc = str(first.pc) if first.status is Status.RUNNING else "DONE"
        regs = [ln for name, kind in self.kind.reg_kind.items() for ln in _declare(name, kind, self.tr.system.features)]
        privates = [f"short {_name(p)} = NOINO;" for p in S.paths(prog) if p.private]
        locals_ = [f"byte pc = {pc};", f"byte last = {self.tr.errno(first.last)};", "byte progress;", *regs, *privates]
        header = f"/* {prog.name} ({prog.role.value}): {prog.summary} */"
        return [header, f"proctype {self.name}(byte me; byte ibase) {{", *_indent(locals_),
                # Blocking here, with every option disabled, is the process's normal end.
                "  end: do", *_indent(self.body or [":: false  /* no operation: it never steps */"]), "  od", "}"]


def _declare(name: str, kind: RegKind, features: frozenset[str]) -> list[str]:
    """A register's variables, unset."""
    r = _reg(name)
    if kind is RegKind.FD:
        return [f"short {r}_ino = NOINO;", f"byte {r}_off;", f"byte {r}_mode;",
                *([f"bool {r}_app;"] if S.APPEND in features else []),
                *([f"short {r}_lock;  /* 0, 1 shared, -1 exclusive */"] if S.LOCKS in features else [])]
    if kind is RegKind.SIZE:
        return [f"short {r} = -1;"]
    if kind is RegKind.BUF:
        return [f"byte {r}_len = NOLEN;", f"byte {r}[BUFMAX];"]
    return [f"short {r}_ino = NOINO;", f"byte {r}_len;"]


# ------------------------------------------------------------ properties


def _payloads_of(system: System, path: str) -> list[bytes]:
    """Every payload any writer in the run means to store at ``path``."""
    out: list[bytes] = []
    for k in system.kinds:
        for p, payload in k.program.publishes:
            b = k.payload(payload)
            if p.name == path and b not in out:
                out.append(b)
    return out


def _holds(length: str, byte: str, payloads: list[bytes]) -> str:
    """The content (length ``length``, byte k ``byte % k``) equals one of ``payloads``."""
    if not payloads:
        return "false"
    alts = [" && ".join([f"{length} == {len(p)}", *(f"{byte % k} == {b}" for k, b in enumerate(p))]) for p in payloads]
    return "(" + " || ".join(f"({a})" for a in alts) + ")"


def _objects_of(system: System, key: str) -> list[bytes]:
    """Every object any process in the run means to PUT at ``key``."""
    return sorted(objects_put(system, key))


def _link_targets(system: System) -> tuple[str, ...]:
    """Every symlink's target name, sorted (an inode's ``link`` is 1 + an index here)."""
    return tuple(sorted({ins.target.name for k in system.kinds for ins in k.program.code if isinstance(ins, Symlink)}))


def _reached(system: System, path: str) -> str:
    """The inode holding the file ``path`` names, as ``spec.fs.FileSystem.file``
    reads it: through a symlink to its target; NOINO when there is none (or
    the target is itself a symlink)."""
    n = f"nm_{_ident(path)}"
    if S.LINKS not in system.features:
        return n

    def link(x: str) -> str:
        return f"({x} == NOINO -> 0 : node[{x}].link)"

    target = "NOINO"
    for k, t in reversed(list(enumerate(_link_targets(system)))):
        target = f"({link(n)} == {k + 1} -> nm_{_ident(t)} : {target})"
    return f"({link(n)} == 0 -> {n} : ({link(target)} == 0 -> {target} : NOINO))"


def _file_is(system: System, path: str, payloads: list[bytes]) -> str:
    n = _reached(system, path)
    return f"({n} != NOINO && {_holds(f'node[{n}].size', f'node[{n}].data[%d]', payloads)})"


def _invariant(system: System, prop: Property) -> str | None:
    """A global invariant for ``prop`` (None: it is checked locally, at the
    reader's hit, as ``reader-never-accepts-corrupt`` is)."""
    n = len(system.processes)
    if prop == SURVIVES:
        return f"(crashed != {int(Crash.AFTER_PUBLICATION)} || ({_invariant(system, STAYS)}))"
    if prop == STAYS:
        # Per kind, as in spec.properties: once one of its processes
        # returned ok, each path it publishes holds some writer's payload.
        parts = []
        for ki, k in enumerate(system.kinds):
            if k.program.role is not Role.WRITER:
                continue  # only writers end ok
            ok = " || ".join(f"status[{i}] == {_status(Status.OK)}" for i in range(n) if system.kind_of[i] == ki)
            for path, _ in k.program.publishes:
                parts.append(f"(!({ok}) || {_file_is(system, path.name, _payloads_of(system, path.name))})")
        return " && ".join(parts) or "true"
    if prop == HITS:
        after, missed = int(Began.AFTER_PUBLICATION), (_status(Status.MISS), _status(Status.SIGBUS))
        return " && ".join(f"!(began[{i}] == {after} && (status[{i}] == {missed[0]} || status[{i}] == {missed[1]}))"
                           for i in range(n))
    if prop == NO_SIGBUS:
        return " && ".join(f"status[{i}] != {_status(Status.SIGBUS)}" for i in range(n))
    if prop == INDEX_OUTPUT:
        entries, outputs = _payloads_of(system, "entry"), _payloads_of(system, "output")
        if not entries or not outputs:
            return "true"
        e = _reached(system, "entry")
        index = " || ".join(_valid(f"node[{e}].size", f"node[{e}].data[%d]", len(p)) for p in entries)
        return f"({e} == NOINO || !({index}) || {_file_is(system, 'output', outputs)})"
    if prop == NO_CORRUPT:
        return None
    if prop == REMOTE_RECORD:
        outputs = _objects_of(system, OUTPUT_KEY.name)
        if not outputs or OBJECTS not in system.features:
            return "true"
        o, a = _object(OUTPUT_KEY), _object(ACTION_KEY)
        return f"({a} == NOINO || ({o} != NOINO && {_holds(f'node[{o}].size', f'node[{o}].data[%d]', outputs)}))"
    if prop == REMOTE_HIT:
        parts = []
        for i in range(n):
            k = system.kinds[system.kind_of[i]]
            if k.program.role is not Role.READER:
                continue
            for path, name in k.program.publishes:
                parts.append(f"(status[{i}] != {_status(Status.HIT)} || {_file_is(system, path.name, [k.payload(name)])})")
        return " && ".join(parts) or "true"
    raise TranslationError(f"property {prop} is not translated (supported: {', '.join(map(str, SUPPORTED))})")


# ------------------------------------------------------------ the model


class _Translation:
    """What the whole model shares while it is built: the system, the
    properties and their asserts, the errno numbers in use, how many
    scratch variables a transition needs."""

    def __init__(self, system: System, props: tuple[Property, ...]) -> None:
        self.system, self.props = system, props
        self.errnos: dict[str, int] = {"": 0}
        self.temps = 0
        progs = [k.program for k in system.kinds]
        # Every symlink's target name (an inode's ``link`` is 1 + its index).
        self.targets = _link_targets(system)
        self.dirs = _named_dirs(progs)
        invariants = [(p, e) for p in props if (e := _invariant(system, p)) is not None]
        # As in spec.explore: the crash property is checked after the crash, the others before.
        self.asserts = [f"assert({e}); /* {p} */" for p, e in invariants if not p.after_crash]
        self.after_crash = [f"assert({e}); /* {p} */" for p, e in invariants if p.after_crash]

    def errno(self, name: str) -> str:
        """The macro of an errno ("" is success), numbered in order of first use."""
        self.errnos.setdefault(name, len(self.errnos))
        return "E_OK" if name == "" else f"E_{name}"


def translate(system: System, properties: Iterable[Property | str] = (STAYS,)) -> str:
    """The Promela model of ``system`` checking ``properties`` (as asserts)."""
    props = tuple(get_property(p) for p in properties)
    for p in props:
        if p not in SUPPORTED:
            raise TranslationError(f"property {p} is not translated (supported: {', '.join(map(str, SUPPORTED))})")
    tr = _Translation(system, props)
    types: list[_Proctype] = []
    for k, kind in enumerate(system.kinds):
        same = sum(1 for t in types if t.kind.program == kind.program)
        types.append(_Proctype(tr, k, f"P_{_ident(kind.name)}" + (f"_{same + 1}" if same else "")))
    bounds = [types[k].bounds() for k in system.kind_of]
    maxlen = max(1, sum(g for g, _ in bounds))
    bufmax = max([maxlen, *(f for _, f in bounds)])
    if bufmax >= NOLEN:
        raise TranslationError(f"files up to {bufmax} bytes do not fit the model's byte offsets; use a smaller L or N")
    bases, ibase = [], 0
    for k in system.kind_of:
        bases.append(ibase)
        ibase += len(types[k].slots)
    shared = _shared_names(system)
    proctypes = [ln for t in types for ln in ["", *t.render()]]  # before the globals: it numbers errnos
    return "\n".join([
        *_header(system, props),
        *_globals(tr, max(ibase, 1), maxlen, bufmax, shared),
        *proctypes,
        *(["", *_crash(system, shared, tr.after_crash)] if system.crashes else []),
        "",
        *_init(tr, types, bases),
        "",
    ])


def _object_keys(system: System) -> list[str]:
    """Every object key a program names."""
    return sorted({ins.key.name for k in system.kinds for ins in k.program.code if isinstance(ins, S.OBJECT_OPS)})


def _shared_names(system: System) -> list[str]:
    """Every shared name of a file a program uses, publishes or reads (and ``entry``)."""
    names = {"entry"}
    for k in system.kinds:
        names |= {p.name for p in S.paths(k.program) if not p.private}
        names |= {p.name for p, _ in k.program.publishes} | {k.program.reads.name}
    made = {ins.path.name for k in system.kinds for ins in k.program.code if isinstance(ins, Mkdir)}
    return sorted(names - made)


def _named_dirs(programs: list[Program]) -> list[str]:
    """Every directory the programs name: above a path, made, or there at the start."""
    dirs: set[str] = set()
    for prog in programs:
        for path in S.paths(prog):
            dirs.update(path.parents())
        for d in prog.dirs:
            dirs.update((*Path(d).parents(), d))
        dirs |= {ins.path.name for ins in prog.code if isinstance(ins, Mkdir)}
    return sorted(dirs)


def _header(system: System, props: tuple[Property, ...]) -> list[str]:
    procs = ", ".join(f"{n}={p.program.name}" for n, p in zip(system.names, system.processes))
    payloads = "; ".join(f"{k.name}: " + ", ".join(f"{n}={b!r}" for n, b in k.payloads) for k in system.kinds)
    return [
        "/* Generated by proofs/promela.py from the spec's semantics; do not edit.",
        f" * processes: {procs}",
        f" * payloads: {payloads}",
        f" * fault budget {system.faults}; granularity {system.granularity}; crashes {system.crashes}",
        f" * properties (asserted after every transition): {', '.join(map(str, props))}",
        " */",
    ]


def _globals(tr: _Translation, ninodes: int, maxlen: int, bufmax: int, shared: list[str]) -> list[str]:
    system = tr.system
    defs = [f"#define {tr.errno(e)} {k}" for e, k in tr.errnos.items()]
    defs += [f"#define {_status(s)} {k}" for k, s in enumerate(STATUSES)]
    n = len(system.processes)
    published = " || ".join(f"status[{i}] == {_status(Status.OK)}" for i in range(n))
    temps = ", ".join(f"t{k}" for k in range(tr.temps))
    return [
        *defs,
        "#define NOINO -1", f"#define NOLEN {NOLEN}", "#define DONE 255",
        f"#define NPROC {n}", f"#define NINO {ninodes}", f"#define MAXLEN {maxlen}",
        f"#define BUFMAX {bufmax}", f"#define MAXFAULTS {system.faults}",
        # Only writers end ok, so this is spec.state.published.
        f"#define PUBLISHED ({published})",
        "",
        _inode_type(system),
        "Inode node[NINO];          /* inode slot ibase+k: the k-th create of that process's code */",
        *(f"short nm_{_ident(s)} = NOINO;  /* the inode the shared name {s!r} points at */" for s in shared),
        *(f"bool {_dir(d)} = {int(d in system.dirs)};  /* the directory {d!r} exists */" for d in tr.dirs),
        *(ln for k in _object_keys(system) for ln in (
            f"short {_object(k)} = NOINO;  /* the inode holding the object at key {k!r} */",
            f"short {_object(k)}_etag = -1;  /* its ETag */")),
        *(["byte etags;                /* the last ETag handed out */"] if OBJECTS in system.features else []),
        "byte status[NPROC];        /* S_RUN, or how the process ended */",
        "byte began[NPROC];         /* readers: 0 not yet stepped, 1 first step before publication, 2 after */",
        "byte faults;               /* injected faults so far (the budget is MAXFAULTS) */",
        *(["byte crashed;              /* 0 no power loss, 1 one before any publication, 2 after */"] if system.crashes else []),
        # Not ``hidden`` (pan's breadth-first mode refuses hidden variables):
        # every transition zeroes them at its end, so they never tell states apart.
        *([f"short {temps};  /* scratch inside one d_step: values copied before they changed */"] if temps else []),
        "byte j;                    /* scratch inside one d_step: a byte index */",
    ]


def _inode_type(system: System) -> str:
    """The Inode typedef: size and bytes; durable ones only where a crash
    can read them, a symlink's target and a lock only where a program
    makes one (they would only grow the state vector)."""
    fields = ["byte size", "byte data[MAXLEN]", *(["byte dsize", "byte ddata[MAXLEN]"] if system.crashes else [])]
    extra = [*(["byte link"] if S.LINKS in system.features else []), *(["short lock"] if S.LOCKS in system.features else [])]
    if not extra:
        return (f"typedef Inode {{ {'; '.join(fields)} }}  /* bytes past "
                f"{'(d)size' if system.crashes else 'size'} are always 0 */")
    return (f"typedef Inode {{ {'; '.join(fields + extra)} }}  /* bytes past size are always 0; "
            "link: 0, or 1 + its target's index; lock: 0, n > 0 shared by n, -1 exclusive */")


def _revert(name: str) -> list[str]:
    """After a power loss, the inode that ``name`` points at holds its durable bytes."""
    n = f"nm_{_ident(name)}"
    return ["if", f":: {n} != NOINO ->", f"  node[{n}].size = node[{n}].dsize; j = 0;",
            f"  do :: j < MAXLEN -> node[{n}].data[j] = node[{n}].ddata[j]; j++ :: else -> break od;",
            ":: else -> skip", "fi;"]


def _crash(system: System, shared: list[str], asserts: list[str]) -> list[str]:
    """The power loss: once, at any point, as ``spec.machine.crash``.  Unnamed
    inodes are left as they are: nothing can reach them any more."""
    run, crashed = _status(Status.RUNNING), _status(Status.CRASHED)
    stop = [f"if :: status[{i}] == {run} -> status[{i}] = {crashed} :: else -> skip fi;" for i in range(len(system.processes))]
    when = f"crashed = (PUBLISHED -> {int(Crash.AFTER_PUBLICATION)} : {int(Crash.BEFORE_PUBLICATION)});"
    body = [when, *stop, *(ln for s in shared for ln in _revert(s)), "j = 0;", *asserts]
    return ["proctype Crash() {", "  end: d_step {", f"    crashed == {int(Crash.NONE)} ->", *_indent(body, 3), "  }", "}"]


def _ended_at_start(system: System) -> list[tuple[int, Status]]:
    """The processes that return before their first operation, and how."""
    firsts = [start(system, k, FileSystem()).status for k in system.kind_of]
    return [(me, st) for me, st in enumerate(firsts) if st is not Status.RUNNING]


def _init(tr: _Translation, types: list[_Proctype], bases: list[int]) -> list[str]:
    """Start every process.  Where one returns before its first operation,
    its status is set first, and the initial state checked, in one d_step."""
    assert int(Began.NOT_YET) == 0 and STATUSES[0] is Status.RUNNING  # the globals' zero values
    system, ended = tr.system, _ended_at_start(tr.system)
    statuses = " ".join(f"status[{me}] = {_status(st)};" for me, st in ended)
    first = [f"d_step {{ {statuses} {' '.join(tr.asserts)} }}"] if ended else []
    runs = [f"run {types[k].name}({me}, {bases[me]});" for me, k in enumerate(system.kind_of)]
    return ["init {", "  atomic {", *_indent([*first, *runs, *(["run Crash();"] if system.crashes else [])], 2), "  }", "}"]


# ------------------------------------------------------------ reading SPIN's answers


def explorer_depth(system: System, pan_depth: int) -> int:
    """The depth of a violation pan found at ``pan_depth``, in the
    explorer's units: pan numbers depths from 0 and counts init's
    statements as steps (a ``run`` per process, one for the crash
    process, and the d_step of the processes that end at once, in which
    a violation is one of the initial state)."""
    init = len(system.processes) + system.crashes + (1 if _ended_at_start(system) else 0)
    return 0 if pan_depth < init else pan_depth + 1 - init


def lifted_states(result: Exploration) -> int:
    """The number of states SPIN must store for an unreduced ``result``
    (``symmetry=False``) whose writers' only effect at their first
    operation is creating the file (open with O_CREAT, without O_TRUNC or
    O_EXCL, no unlink, no rename: ``write-then-truncate``, and
    ``go-index-entry`` without faults, where its remove is unreachable).

    The Promela model puts the inode in the slot of the writer that created
    it; the explorer numbers it 0.  For such writers any writer that has
    opened may have been the creator (its open commutes to the front of the
    writers' opens without changing what anyone sees), so each explorer state
    with k >= 1 writers past their open is k SPIN states.  Plus one: pan
    stores init's state before its atomic block of ``run`` statements.
    """
    system = result.system
    writers = [i for i, p in enumerate(system.processes) if p.program.role is Role.WRITER]
    lifted = 0
    for w in result.worlds():
        opened = sum(1 for i in writers if w.procs[i].pc > 0 or w.procs[i].status is not Status.RUNNING)
        lifted += max(1, opened)
    return lifted + 1


__all__ = ["Expr", "PmlDom", "SUPPORTED", "TranslationError", "explorer_depth", "lifted_states", "translate"]
