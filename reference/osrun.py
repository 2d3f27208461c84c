"""The production runner: a whole program on real files, as fast as the calls allow.

``spec.machine`` runs a :class:`spec.ops.Program` on a pure model; :func:`run`
runs the *same value* with real ``os.*`` calls, as one process, to its end.
Nothing here restates a protocol or a rule of ``spec.semantics``:

- each operation is its call from ``reference.syscalls.BINDINGS``, and what
  the call does to the registers on success or failure comes from the
  semantics (``reference.outcomes``);
- control flow between operations - branches, gotos, local operations such
  as chtimes, returns - is ``spec.semantics.settle`` itself, run once when
  the program is compiled on a value domain of *staged* values (functions
  of the process's environment): a branch whose condition is known then
  (an error branch, for a given errno) is folded away; one that depends on
  a size or a buffer becomes a test at run time, built from
  ``spec.semantics.holds``.

A program is compiled once (:func:`compiled`, cached per program value)
into a list of small closures over an environment list; running it is a
loop ``pc = code[pc](env)``.  Thread-safe: all state is in ``env``.

Path mapping (:func:`resolve_paths`).  A shared ``Path`` (``entry``,
``output``) is a real file the caller names (or ``root/<name>``).  A private
``Path`` (``entry.tmp``) gets a name no other process uses, in the same
directory as the shared file it extends: ``<real entry>.tmp.<pid>.<hex>``.

Where the runner knowingly differs from the model: it follows loops through
operations forever, as a real program would (a loop of branches alone is
refused by ``settle``: when compiling, on the paths after each operation's
success, else when an errno first takes the program there); and a kernel
error the model does not know (EISDIR, EACCES) is reported as it is.
"""

from __future__ import annotations

import _thread
import operator
import os
from typing import Any, Callable, Mapping, NamedTuple, Sequence, Union

from spec import fs as F
from spec import semantics as S
from spec.ops import Data, Instr, Length, LockOp, Outcome, Path, Program, ProgramError, PWrite
from spec.state import RegKind, Status

from .mapping import Killed
from .outcomes import Effect, Effects, NoFlow, outcomes
from .syscalls import (BINDINGS, LOCK_OPS, UNSET, Arg, Bound, Call, Const, Env, Get, Len, Slot, Unheld, closure,
                       errno_name, is_set, release, write_all)

# ------------------------------------------------------------ layout


class Layout:
    """Where a program's registers, real paths and payloads sit in an
    environment, after ``base`` slots of the interpreter's own."""

    def __init__(self, program: Program, base: int) -> None:
        self.program = program
        self.kinds: dict[str, RegKind] = S.registers(program)
        self.paths: tuple[Path, ...] = S.paths(program)
        self.payloads: tuple[str, ...] = program.payloads()
        regs = tuple(self.kinds)
        self.reg = {r: base + i for i, r in enumerate(regs)}
        self.path = {p: base + len(regs) + i for i, p in enumerate(self.paths)}
        first = base + len(regs) + len(self.paths)
        self.payload = {n: first + i for i, n in enumerate(self.payloads)}
        self.init: tuple[object, ...] = tuple(UNSET[k] for k in self.kinds.values())
        # The registers that hold an inode, which exit releases (a real
        # descriptor or mapping, here).
        self.holds = frozenset(S.holders(program))
        self.holders = tuple((self.reg[r], self.kinds[r]) for r in self.kinds if r in self.holds)

    def payload_slot(self, name: str) -> int:
        try:
            return self.payload[name]
        except KeyError:
            raise ProgramError(f"{self.program.name}: no payload {name!r}") from None

    def release(self, env: Env, keep: int | None = None) -> None:
        """Release what the holders hold, as exit does (``keep`` stays)."""
        for s, kind in self.holders:
            v = env[s]
            if s != keep and is_set(kind, v):
                env[s] = UNSET[kind]
                release(kind, v)

    def apply(self, env: Env, effects: Effects, result: object) -> None:
        """Make register ``effects`` (``reference.outcomes``): a holder
        given the call's result releases what it held (the model overwrites
        it: the old description is gone); a cleared one is forgotten (the
        call released it)."""
        for e in effects:
            s, kind = self.reg[e.reg], self.kinds[e.reg]
            if e.what == "result":
                old, env[s] = env[s], result
                if e.reg in self.holds and is_set(kind, old):
                    release(kind, old)
            elif e.what == "const":
                env[s] = e.value
            else:
                env[s] = UNSET[kind]


def last_failed(last: str, errnos: frozenset[str]) -> bool:
    """``Dom.failed``: the last operation (errno ``last``, "" for success)
    failed, with one of ``errnos`` or any."""
    return last != "" and (not errnos or last in errnos)


# ------------------------------------------------------------ staged values


class Staged:
    """A value known only when the program runs: a function of its
    environment.  Arithmetic and comparisons with other values stage
    too, so ``spec.semantics.holds`` and ``spec.semantics.length`` build
    run-time tests and lengths out of them."""

    __slots__ = ("at",)

    def __init__(self, at: Get) -> None:
        self.at = at

    def _with(self, other: object, f: Callable[[Any, Any], Any], swap: bool = False) -> "Staged":
        a = self.at
        if isinstance(other, Staged):
            b = other.at
            return Staged(lambda env: f(b(env), a(env)) if swap else f(a(env), b(env)))
        return Staged(lambda env: f(other, a(env)) if swap else f(a(env), other))

    def __add__(self, other: object) -> "Staged":
        return self if not isinstance(other, Staged) and other == 0 else self._with(other, operator.add)

    def __radd__(self, other: object) -> "Staged":
        return self._with(other, operator.add, swap=True)

    def __sub__(self, other: object) -> "Staged":
        return self._with(other, operator.sub)

    def __rsub__(self, other: object) -> "Staged":
        return self._with(other, operator.sub, swap=True)

    def __lt__(self, other: object) -> "Staged":
        return self._with(other, operator.lt)

    def __le__(self, other: object) -> "Staged":
        return self._with(other, operator.le)

    def __gt__(self, other: object) -> "Staged":
        return self._with(other, operator.gt)

    def __ge__(self, other: object) -> "Staged":
        return self._with(other, operator.ge)

    def __eq__(self, other: object) -> Any:
        return self._with(other, operator.eq)

    def __ne__(self, other: object) -> Any:
        return self._with(other, operator.ne)

    __hash__ = object.__hash__

    def __bool__(self) -> bool:
        raise ProgramError("a staged value was tested when compiling (use m.ite/m.branch)")


class PayloadLen(Staged):
    """``len(payload) + delta``, staged, keeping that form: the runner
    passes it to a call as a :class:`~reference.syscalls.Len`, read inline
    (the truncate-after of every writer)."""

    __slots__ = ("slot", "delta")

    def __init__(self, slot: int, delta: int = 0) -> None:
        super().__init__(lambda env: len(env[slot]) + delta)
        self.slot, self.delta = slot, delta

    def __add__(self, other: object) -> "Staged":
        if isinstance(other, int) and not isinstance(other, bool):
            return PayloadLen(self.slot, self.delta + other)
        return super().__add__(other)

    def __sub__(self, other: object) -> "Staged":
        if isinstance(other, int) and not isinstance(other, bool):
            return PayloadLen(self.slot, self.delta - other)
        return super().__sub__(other)


def getter(v: object) -> Get:
    """A staged value's function, or a constant's."""
    if isinstance(v, Staged):
        return v.at
    return lambda env: v


def _lift(f: Callable[..., Any], *vs: object) -> Any:
    """``f`` of values some of which may be staged."""
    if not any(isinstance(v, Staged) for v in vs):
        return f(*vs)
    gs = [getter(v) for v in vs]
    return Staged(lambda env: f(*[g(env) for g in gs]))


# ------------------------------------------------------------ control flow


class _Leaf(NamedTuple):
    """Go on with the operation at ``pc``."""

    pc: int


class _Ret(NamedTuple):
    """The program returns with ``status`` (a hit keeps register ``keep``)."""

    status: Status
    keep: str | None


class _Branch(NamedTuple):
    """A test at run time."""

    cond: Get
    then: "_Node"
    other: "_Node"


class _Local(NamedTuple):
    """A local operation (chtimes), then the rest."""

    ins: Instr
    then: "_Node"


_Node = Union[_Leaf, _Ret, _Branch, _Local]

# The runner's own slots: the last errno, the first failure (errno, pc),
# how the program ended.
_LAST, _FIRST, _END, _FIXED = 0, 1, 2, 3
STOP = -1  # what the closure of a return hands the loop


class _Planner(NoFlow):
    """The value domain in which ``spec.semantics.settle`` is run when
    compiling: the last errno is known (right after an operation) or
    staged (after a local operation); sizes, buffers and payload lengths
    are staged.  It records where control goes as a tree of nodes.
    (``spec.semantics.step`` is not run on it: a step is the runner's.)"""

    def __init__(self, layout: Layout, last: str | None) -> None:
        self.layout, self.last = layout, last
        self._locals: list[Instr] = []
        self._node: _Node | None = None

    def plan(self, pc: int) -> _Node:
        S.settle(self.layout.program, pc, self)
        assert self._node is not None
        return self._node

    def _end(self, node: _Node) -> None:
        for ins in reversed(self._locals):
            node = _Local(ins, node)
        self._node = node

    # -- logic
    def and_(self, *bs: object) -> Any:
        return _lift(lambda *xs: all(xs), *bs)

    def or_(self, *bs: object) -> Any:
        return _lift(lambda *xs: any(xs), *bs)

    def not_(self, b: object) -> Any:
        return _lift(operator.not_, b)

    def ite(self, c: object, a: object, b: object) -> Any:
        if not isinstance(c, Staged):
            return a if c else b
        return _lift(lambda x, y, z: y if x else z, c, a, b)

    # -- control flow
    def branch(self, cond: object, then: Callable[[], None], other: Callable[[], None]) -> None:
        if not isinstance(cond, Staged):
            (then if cond else other)()
            return
        prefix, last = self._locals, self.last
        self._locals = []
        then()
        a = self._node
        self._locals, self.last = [], last
        other()
        b = self._node
        assert a is not None and b is not None
        self._locals, self.last = prefix, last
        self._end(_Branch(cond.at, a, b))

    def run_op(self, ins: Instr) -> None:
        self._locals.append(ins)
        self.last = None  # known only when it has run

    def stop_at(self, pc: int) -> None:
        self._end(_Leaf(pc))

    def finish(self, status: Status, keep: str | None) -> None:
        self._end(_Ret(status, keep))

    def failed(self, errnos: frozenset[str]) -> Any:
        if self.last is not None:
            return last_failed(self.last, errnos)
        return Staged(lambda env: last_failed(env[_LAST], errnos))

    # -- registers and payloads
    def _slot(self, reg: str) -> Staged:
        return Staged(operator.itemgetter(self.layout.reg[reg]))

    def size_of(self, reg: str) -> Any:
        return self._slot(reg)  # an unset size reads as -1 (syscalls.NO_SIZE)

    def valid(self, reg: str, length: object) -> Any:
        return _lift(F.valid, self._slot(reg), length)

    def payload_len(self, name: str) -> Any:
        return PayloadLen(self.layout.payload_slot(name))


# ------------------------------------------------------------ operands


class RunOperands:
    """The runner's operands: whole calls on the payloads given."""

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self.stage = _Planner(layout, None)

    def reg(self, name: str) -> int:
        return self.layout.reg[name]

    def path(self, path: Path) -> int:
        return self.layout.path[path]

    def data(self, data: Data) -> Arg:
        s = self.layout.payload_slot(data.payload)
        if data.start is None and data.stop is None:
            return Slot(s)  # no bounds: the whole payload (Python's slice rules), the writers' hot path
        lo, n = (getter(v) for v in S.data_range(self.stage, data))
        return lambda env: env[s][lo(env):lo(env) + n(env)]

    def offset(self, ins: PWrite) -> Arg:
        return Const(ins.offset)

    def lock(self, op: LockOp) -> Arg:
        return Const(LOCK_OPS[op])  # a conflict waits, as the program would

    def length(self, n: Length) -> Arg:
        v = S.length(self.stage, n)
        if isinstance(v, PayloadLen):
            return Len(v.slot, v.delta)
        return v.at if isinstance(v, Staged) else Const(v)


# ------------------------------------------------------------ the compiled program

Step = Callable[[Env], int]


class OpError(NamedTuple):
    """The failure that made a writer fail: errno name, the operation as
    source text, the real path involved (or None for a descriptor op)."""

    errno: str
    op: str
    path: str | None


class Compiled:
    """A Program compiled for :func:`run`: one closure per operation, and
    one per run-time branch, local operation and return on the way between
    them, over an environment list (errno, first failure, end, registers,
    real paths, payloads)."""

    def __init__(self, program: Program) -> None:
        self.program = program
        self.layout = lay = Layout(program, _FIXED)
        self.paths, self.payload_names = lay.paths, lay.payloads
        self.init: tuple[object, ...] = ("", None, None, *lay.init)
        self._operands = RunOperands(lay)
        self._lock = _thread.allocate_lock()
        self._after: dict[tuple[int, str], int] = {}
        code: list[Step] = [_not_an_operation] * len(program.code)
        self.code = code
        for pc, ins in enumerate(program.code):
            if S.is_operation(ins):
                code[pc] = self._operation(ins, pc)
        self.start = self._emit(_Planner(lay, "").plan(0))

    # -- running

    def execute(self, paths: Sequence[str], payloads: Sequence[object]) -> tuple[Status, Any, tuple[str, int] | None]:
        """Run with real ``paths`` and ``payloads`` in slot order (see
        ``self.paths``/``self.payload_names``): (status, hit value, first
        failure as (errno, pc)).  The lean entry point for ``write_entry``."""
        env: Env = [*self.init, *paths, *payloads]
        code = self.code
        pc = self.start
        try:
            while pc >= 0:
                pc = code[pc](env)
        finally:
            if pc >= 0:  # interrupted: still release what it holds, as exit would
                self.layout.release(env)
        end: tuple[Status, Any, tuple[str, int] | None] = env[_END]
        return end

    def error(self, first: tuple[str, int] | None, paths: Mapping[Path, str]) -> OpError | None:
        """The OpError for a first failure ``(errno, pc)``: the path the
        operation acts on (a rename's destination)."""
        if first is None:
            return None
        errno, pc = first
        ins = self.program.code[pc]
        attrs = S.spec_of(ins).paths
        path = getattr(ins, attrs[-1]) if attrs else None
        return OpError(errno, str(ins), paths.get(path) if path is not None else None)

    # -- compiling

    def _append(self, step: Step) -> int:
        self.code.append(step)
        return len(self.code) - 1

    def _after_op(self, pc: int, last: str) -> int:
        """Where control goes after the operation at ``pc`` ended with
        ``last``: settled once per errno, then remembered."""
        nxt = self._after.get((pc, last))
        if nxt is None:
            with self._lock:
                nxt = self._after.get((pc, last))
                if nxt is None:
                    nxt = self._after[(pc, last)] = self._emit(_Planner(self.layout, last).plan(pc + 1))
        return nxt

    def _emit(self, node: _Node) -> int:
        """The code index that runs ``node``."""
        if isinstance(node, _Leaf):
            return node.pc
        if isinstance(node, _Ret):
            return self._append(self._return(node.status, node.keep))
        if isinstance(node, _Branch):
            a, b, cond = self._emit(node.then), self._emit(node.other), node.cond
            return self._append(lambda env: a if cond(env) else b)
        nxt = self._emit(node.then)  # a local operation: whatever its result, the rest follows
        return self._append(self._op(node.ins, -1, nxt, lambda last: nxt))

    def _operation(self, ins: Instr, pc: int) -> Step:
        return self._op(ins, pc, self._after_op(pc, ""), lambda last: self._after_op(pc, last))

    def _op(self, ins: Instr, pc: int, ok: int, after: Callable[[str], int]) -> Step:
        """The closure of operation ``ins``: its call, the register effects
        of its outcome, and where control goes next."""
        bound = BINDINGS[type(ins)](ins, self._operands)
        out, lay = outcomes(ins), self.layout
        # A failure the writer reports: of an operation that can fail (not a
        # stat's or a reader's open's miss, a question asked).
        counts = pc >= 0 and S.can_fault(ins)
        memo: dict[str, int] = {}

        def fail(env: Env, e: OSError) -> int:
            name = errno_name(e)
            if isinstance(e, Unheld):  # nothing to ask the kernel: the semantics answer
                assert out.unheld is not None, f"{ins}: a call without its register, which the semantics allow"
                name = out.unheld
            env[_LAST] = name
            if counts and env[_FIRST] is None:
                env[_FIRST] = (name, pc)
            lay.apply(env, out.on_error(name), None)
            nxt = memo.get(name)
            if nxt is None:
                nxt = memo[name] = after(name)
            return nxt

        if out.dies is not None:
            return self._dying(closure(bound), out.ok, out.dies, ok, fail)
        return _fused(bound, out.ok, lay, ok, fail)

    def _dying(self, call: Call, effects: Effects, status: Status, ok: int, fail: Callable[[Env, OSError], int]) -> Step:
        """An operation whose call may report the process killed (a mapped
        read's SIGBUS): it then ends, releasing everything."""
        lay = self.layout

        def op(env: Env) -> int:
            try:
                v = call(env)
            except OSError as e:
                return fail(env, e)
            except Killed:
                lay.release(env)
                env[_END] = (status, None, env[_FIRST])
                return STOP
            lay.apply(env, effects, v)
            env[_LAST] = ""
            return ok

        return op

    def _return(self, status: Status, keep: str | None) -> Step:
        """``finish``: exit releases every holder but ``keep`` (a hit's value)."""
        slot = self.layout.reg[keep] if keep is not None else None
        lay = self.layout
        pairs = tuple((s, UNSET[kind]) for s, kind in lay.holders)

        def ret(env: Env) -> int:
            for s, unset in pairs:
                if env[s] != unset:
                    lay.release(env, slot)
                    break
            env[_END] = (status, env[slot] if slot is not None else None, env[_FIRST])
            return STOP

        return ret


def _not_an_operation(env: Env) -> int:
    raise AssertionError("control reached an instruction that settle folds away")


Fail = Callable[[Env, OSError], int]


def _fused(bound: Bound, effects: Effects, lay: Layout, ok: int, fail: Fail) -> Step:
    """The closure of an operation: its call fused into it (no Python call
    but the system call's) for the shapes of the writers' and readers' hot
    paths, with its success effect inline - none, or one register set or
    cleared; any other call or effects through
    :func:`~reference.syscalls.closure` and :meth:`Layout.apply`."""
    fn, args = bound
    shape = tuple(type(x) for x in args)
    if not effects:
        return _no_effect(fn, args, shape, ok, fail)
    if len(effects) == 1 and effects[0].what != "const":
        e: Effect = effects[0]
        s, kind = lay.reg[e.reg], lay.kinds[e.reg]
        if e.reg in lay.holds and e.what == "result" and shape == (Slot, Const, Const):
            return _replacing(fn, _slot(args[0]), _const(args[1]), _const(args[2]), s, kind, ok, fail)
        if (e.what == "clear" or e.reg not in lay.holds) and shape in ((Slot,), (Slot, Len)):
            return _storing(fn, args, s, e.what == "result", UNSET[kind], ok, fail)
    call = closure(bound)

    def general(env: Env) -> int:
        try:
            v = call(env)
        except OSError as err:
            return fail(env, err)
        lay.apply(env, effects, v)
        env[_LAST] = ""
        return ok

    return general


def _no_effect(fn: Callable[..., object], args: tuple[Arg, ...], shape: tuple[type, ...], ok: int, fail: Fail) -> Step:
    """An operation that sets no register: its call, inline."""
    if fn is write_all and shape == (Slot, Slot):
        return _write_whole(_slot(args[0]), _slot(args[1]), ok, fail)
    if shape == (Slot,):
        a = _slot(args[0])

        def s1(env: Env) -> int:
            try:
                fn(env[a])
            except OSError as err:
                return fail(env, err)
            env[_LAST] = ""
            return ok

        return s1
    if shape == (Slot, Slot):
        a, b = _slot(args[0]), _slot(args[1])

        def s2(env: Env) -> int:
            try:
                fn(env[a], env[b])
            except OSError as err:
                return fail(env, err)
            env[_LAST] = ""
            return ok

        return s2
    if shape == (Slot, Len):
        a, (b, d) = _slot(args[0]), _len(args[1])

        def sl(env: Env) -> int:
            try:
                fn(env[a], len(env[b]) + d)
            except OSError as err:
                return fail(env, err)
            env[_LAST] = ""
            return ok

        return sl
    call = closure(Bound(fn, args))

    def any_shape(env: Env) -> int:
        try:
            call(env)
        except OSError as err:
            return fail(env, err)
        env[_LAST] = ""
        return ok

    return any_shape


def _replacing(fn: Callable[..., object], a: int, b: object, c: object, s: int, kind: RegKind, ok: int,
               fail: Fail) -> Step:
    """``s = fn(env[a], b, c)`` into a holder (an open): what the register
    held is released (the model overwrites it)."""
    unset = UNSET[kind]

    def replace(env: Env) -> int:
        try:
            v = fn(env[a], b, c)
        except OSError as err:
            return fail(env, err)
        old, env[s] = env[s], v
        if old != unset:
            release(kind, old)
        env[_LAST] = ""
        return ok

    return replace


def _storing(fn: Callable[..., object], args: tuple[Arg, ...], s: int, store: bool, unset: object, ok: int,
             fail: Fail) -> Step:
    """A call whose result goes to register ``s`` (``store``), or that
    clears it (a close: the call released it)."""
    a = _slot(args[0])
    if len(args) == 2:
        b, d = _len(args[1])

        def stored_len(env: Env) -> int:  # a read of len(payload)+d
            try:
                v = fn(env[a], len(env[b]) + d)
            except OSError as err:
                return fail(env, err)
            env[s] = v if store else unset
            env[_LAST] = ""
            return ok

        return stored_len

    def stored(env: Env) -> int:
        try:
            v = fn(env[a])
        except OSError as err:
            return fail(env, err)
        env[s] = v if store else unset
        env[_LAST] = ""
        return ok

    return stored


def _write_whole(fd: int, data: int, ok: int, fail: Fail) -> Step:
    """``write_all(fd, payload)``, the first write inline: the hot path of
    every writer."""
    os_write = os.write

    def write(env: Env) -> int:
        b = env[data]
        try:
            n = os_write(env[fd], b)
            if n < len(b):  # a short write: go on from where it stopped
                write_all(env[fd], b[n:])
        except OSError as err:
            return fail(env, err)
        env[_LAST] = ""
        return ok

    return write


def _slot(arg: Arg) -> int:
    assert isinstance(arg, Slot)
    return arg.i


def _len(arg: Arg) -> Len:
    assert isinstance(arg, Len)
    return arg


def _const(arg: Arg) -> Any:
    assert isinstance(arg, Const)
    return arg.value


_COMPILED: dict[int, tuple[Program, Compiled]] = {}


def compiled(program: Program) -> Compiled:
    """The compiled form of ``program``, made once and cached.  Keyed by
    identity (hashing a Program walks its whole source); the cache holds
    the program, so an id is never reused while cached."""
    hit = _COMPILED.get(id(program))
    if hit is not None and hit[0] is program:
        return hit[1]
    c = Compiled(program)
    _COMPILED[id(program)] = (program, c)
    return c


# ------------------------------------------------------------ paths


def private_name(base: str) -> str:
    """A file name no other process or thread will pick: ``base.<pid>.<hex>``."""
    return f"{base}.{os.getpid()}.{os.urandom(4).hex()}"


Root = Union[str, os.PathLike[str], Mapping[Union[str, Path], Union[str, os.PathLike[str]]]]


def resolve_paths(program: Program, root: Root) -> dict[Path, str]:
    """The real path of every Path the program names.

    ``root`` is a directory (a shared name ``n`` is ``root/n``) or a mapping
    from Path names (or Paths) to real paths.  A private Path ``p.x`` whose
    prefix ``p`` is mapped lives beside it: ``<real p>.x.<pid>.<hex>``."""
    shared: dict[str, str] = {}
    directory: str | None = None
    if isinstance(root, Mapping):
        for key, real in root.items():
            shared[key.name if isinstance(key, Path) else str(key)] = os.fspath(real)
    else:
        directory = os.fspath(root)
    out: dict[Path, str] = {}
    for path in S.paths(program):
        if not path.private:
            if path.name in shared:
                out[path] = shared[path.name]
            elif directory is not None:
                out[path] = os.path.join(directory, path.name)
            else:
                raise ProgramError(f"{program.name}: no real path given for {path.name!r} (given: {sorted(shared)})")
            continue
        head, dot, rest = path.name.partition(".")
        if head in shared:
            out[path] = private_name(shared[head] + dot + rest)
        elif directory is not None:
            out[path] = private_name(os.path.join(directory, path.name))
        elif shared:
            out[path] = private_name(os.path.join(os.path.dirname(next(iter(shared.values()))), path.name))
        else:
            raise ProgramError(f"{program.name}: no directory for private path {path.name!r}")
    return out


def make_dirs(program: Program, root: Root) -> None:
    """Make the directories ``program`` needs to exist before it runs
    (``Program.dirs``, with their parents) under directory ``root``; those
    that exist stay.  A mapping of names says nothing of where they go: a
    ProgramError."""
    if isinstance(root, Mapping):
        raise ProgramError(f"{program.name}: needs directories {list(program.dirs)}; give a directory as the root")
    for d in program.dirs:
        os.makedirs(os.path.join(os.fspath(root), d), exist_ok=True)


# ------------------------------------------------------------ running


class RunResult(NamedTuple):
    """How a whole-program run ended.

    status: as ``spec.state.Proc.status``: ok, fail, hit, miss or sigbus.
    value:  the buffer a HIT returns (None otherwise).
    error:  the first failing operation that makes a writer fail, if any
            (set even when the program recovers and returns ok)."""

    status: Status
    value: bytes | None
    error: OpError | None

    @property
    def outcome(self) -> Outcome | None:
        """The Outcome, or None when the process died of SIGBUS."""
        return None if self.status is Status.SIGBUS else Outcome(self.status.value)


def run(program: Program, payloads: Mapping[str, bytes], root: Root) -> RunResult:
    """Run ``program`` to its end on real files, as one process.

    ``payloads`` gives the bytes of each payload the program names;
    ``root`` says where its paths are (see :func:`resolve_paths`); the
    directories it needs (``Program.dirs``) are made there first
    (:func:`make_dirs`).  A flock that conflicts waits, as the program
    would.
    Descriptors and mappings still open at the end are released, as exit
    would.  Raises ProgramError for a missing payload or unmapped path;
    every OS error is data in the result, never an exception."""
    c = compiled(program)
    missing = [n for n in c.payload_names if n not in payloads]
    if missing:
        raise ProgramError(f"{program.name}: no payload {missing[0]!r} (given: {sorted(payloads)})")
    real = resolve_paths(program, root)
    if program.dirs:
        make_dirs(program, root)
    status, value, first = c.execute([real[p] for p in c.paths], [payloads[n] for n in c.payload_names])
    return RunResult(status, value, c.error(first, real))
