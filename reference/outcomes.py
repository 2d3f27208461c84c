"""What ``spec.semantics`` says a real call does, for the OS interpreters.

The OS interpreters make the real call (``reference.syscalls``) where the
model runs an operation's effect, so they need from the semantics what the
kernel does not tell them.  Both are read off the operation's own function
in ``spec.semantics.OPS`` by running it on a small value domain:

- :func:`outcomes` (once per instruction): which registers the call sets
  or clears when it succeeds, when one of the semantics' checks refuses it
  (a failed stat's size of -1, a failed read's buffer gone), and when it
  fails at its fault point (a failing close still releases the
  descriptor); the status the process ends with when the call reports it
  killed (SIGBUS); and the errno when the call needs a register that is
  unset and there is no kernel to ask.  It runs the function on
  :class:`_Recorder`, whose values are unknown except for "the call's
  result".
- :class:`Probe` (per step, in ``reference.osworld``): the value domain of
  ``spec.semantics.probe`` over the real descriptors, which says whether an
  injected fault strikes before any effect (the call is not made), after
  effects (the call is made, and the fault reported), or whether the
  kernel must refuse first; and which bytes a write lands in this step and
  where (at byte or write granularity), with whether the write is then
  complete.

A kernel error the semantics do not predict (EISDIR, EACCES on a
directory, ...) is mapped onto them by :meth:`Outcomes.on_error`: the
first check with the same errno, else the fault point (effects before it
stay, as for an injected fault), else the first check.
"""

from __future__ import annotations

import fcntl
import functools
import os
import stat
from typing import Any, Callable, Mapping, NamedTuple

from spec import fs as F
from spec import semantics as S
from spec.ops import Instr, Path, ProgramError
from spec.state import READ_BIT, WRITE_BIT, RegKind, Status

from .syscalls import RemoteOperationError, held_lock, is_set


class _NoObjectStore:
    """The primitives of the object store and of a buffer write, which the
    OS interpreters do not run (``reference.syscalls`` refuses such a
    program when it is compiled; these are never reached before that)."""

    def _refuse(self) -> Any:
        raise RemoteOperationError("the OS interpreter runs no object-store request and no write of a GET's body")

    def buf_len(self, reg: str) -> Any:
        return self._refuse()

    def write_buf(self, ino: object, at: object, reg: str, first: object, count: object) -> None:
        self._refuse()

    def obj_lookup(self, key: object) -> Any:
        return self._refuse()

    def obj_etag(self, key: object) -> Any:
        return self._refuse()

    def obj_bind(self, key: object, ino: object) -> None:
        self._refuse()

    def obj_unbind(self, key: object) -> None:
        self._refuse()

    def fill(self, ino: object, payload: str, first: object, count: object) -> None:
        self._refuse()

    def obj_read(self, ino: object, n: object) -> Any:
        return self._refuse()

# ------------------------------------------------------------ outcomes


class Effect(NamedTuple):
    """One register effect: ``what`` is ``"result"`` (the register gets the
    call's result), ``"const"`` (it gets ``value``) or ``"clear"``."""

    what: str
    reg: str
    value: object = None


Effects = tuple[Effect, ...]


class Outcomes(NamedTuple):
    """What a call does to the process's registers, by how it ended.

    ok:       the call succeeded.
    dies:     the status when the call reports the process killed (None:
              the semantics never kill it).
    refusals: per check of the semantics, in order: its errno and the
              effects of that failure.
    fault:    the effects made before the fault point (None: no fault point).
    unheld:   the errno when the call needs a register that is unset and
              has nothing to ask the kernel with (None: the kernel is asked).
    """

    ok: Effects
    dies: Status | None
    refusals: tuple[tuple[str, Effects], ...]
    fault: Effects | None
    unheld: str | None

    def on_error(self, errno: str) -> Effects:
        """The effects of a call the kernel failed with ``errno``."""
        for e, effects in self.refusals:
            if e == errno:
                return effects
        if self.fault is not None:
            return self.fault
        return self.refusals[0][1] if self.refusals else ()


class _Unknown:
    """A value the recorder does not know: an inode, an offset, a condition
    on them.  Arithmetic and comparisons give unknowns; Python's own
    ``if`` on one is a semantics function branching on a value of its
    domain, which the table's rules forbid."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"<{self.name}>"

    def _any(self, other: object) -> "_Unknown":
        return ANY

    __add__ = __radd__ = __sub__ = __rsub__ = __lt__ = __le__ = __gt__ = __ge__ = _any

    def __eq__(self, other: object) -> Any:
        return ANY

    def __ne__(self, other: object) -> Any:
        return ANY

    __hash__ = object.__hash__

    def __bool__(self) -> bool:
        raise ProgramError("a semantics function branched in Python on a value of its domain (use m.ite/m.when)")


ANY = _Unknown("unknown")
RESULT = _Unknown("the call's result")  # what the real call returns
DIED = _Unknown("the call reported the process killed")


class _Stop(Exception):
    """The recorded run ends here (a check fired, the fault point)."""


class NoFlow:
    """``spec.semantics.Control``'s flow members for a domain on which
    they are not run (one operation's function, or only ``settle``): they
    raise."""

    def _flow(self) -> Any:
        raise ProgramError(f"{type(self).__name__} does not run this part of spec.semantics")

    def branch(self, cond: object, then: Callable[[], None], other: Callable[[], None]) -> None:
        self._flow()

    def run_op(self, ins: Instr) -> None:
        self._flow()

    def after_op(self, settle: Callable[[], None]) -> None:
        self._flow()

    def stop_at(self, pc: int) -> None:
        self._flow()

    def finish(self, status: Status, keep: str | None) -> None:
        self._flow()

    def failed(self, errnos: frozenset[str]) -> Any:
        return self._flow()

    def began(self) -> Any:
        return self._flow()

    def published(self) -> Any:
        return self._flow()

    def set_began(self, b: object) -> None:
        self._flow()


def _truth(b: object) -> bool | None:
    return b if isinstance(b, bool) else None


class _Recorder(_NoObjectStore, NoFlow):
    """Runs one operation's function to record its register effects.

    mode ``"ok"``: no check fires, no fault strikes; ``"refuse"``: the
    ``k``-th check reached fires; ``"fault"``: the fault point fires;
    ``"unheld"``: every register is unset, and a check fires when it
    certainly holds."""

    granularity = "write"  # a call is the whole operation
    # Every rule's checks, whatever a system uses: the table is per
    # instruction, and a check a system never reaches is never asked for.
    features = frozenset({S.LINKS, S.LOCKS, S.APPEND, S.HARDLINKS})

    def __init__(self, mode: str, k: int = -1) -> None:
        self.mode, self.k = mode, k
        self.checks = 0
        self.effects: list[Effect] = []
        self.errno: str | None = None
        self.has_fault_point = False
        self.dies: Status | None = None
        self._guarded = 0

    def run(self, ins: Instr) -> "_Recorder":
        try:
            S.spec_of(ins).run(ins, self)
        except _Stop:
            pass
        return self

    # -- logic (three-valued: True, False, unknown)
    def and_(self, *bs: object) -> object:
        truths = [_truth(b) for b in bs]
        return False if False in truths else True if all(truths) else ANY

    def or_(self, *bs: object) -> object:
        truths = [_truth(b) for b in bs]
        return True if True in truths else False if all(t is False for t in truths) else ANY

    def not_(self, b: object) -> object:
        t = _truth(b)
        return ANY if t is None else not t

    def ite(self, c: object, a: object, b: object) -> object:
        t = _truth(c)
        return ANY if t is None else a if t else b

    # -- the step
    def check(self, cond: object, errno: str, then: Callable[[], None] | None = None) -> None:
        fire = (self.mode == "refuse" and self.checks == self.k) or (self.mode == "unheld" and cond is True)
        self.checks += 1
        if fire:
            if then is not None:
                then()
            self.errno = errno
            raise _Stop

    def fault_point(self) -> None:
        self.has_fault_point = True
        if self.mode == "fault":
            raise _Stop

    def faulted(self) -> object:
        return self.mode == "fault"

    def fault_bytes(self) -> object:
        return ANY

    def when(self, cond: object, effect: Callable[[], object], otherwise: object) -> object:
        self._guarded += 1
        try:
            effect()
        finally:
            self._guarded -= 1
        return ANY

    def branch(self, cond: object, then: Callable[[], None], other: Callable[[], None]) -> None:
        t = _truth(cond)
        if t is not None:
            (then if t else other)()
            return
        self._guarded += 1  # both ways, as under m.when: no register effect may depend on it
        try:
            then()
            other()
        finally:
            self._guarded -= 1

    def block(self, cond: object) -> None:
        pass  # waiting is the kernel's (the call does not return until it may)

    def die(self, cond: object, status: Status) -> None:
        if cond is not DIED:
            raise ProgramError(f"the OS interpreter can only die of what its call reports, not of {cond!r}")
        self.dies = status

    def progress(self) -> object:
        return ANY

    def complete(self, done: object) -> None:
        pass

    # -- registers
    def held(self, reg: str) -> object:
        return False if self.mode == "unheld" else ANY

    def fd_ino(self, reg: str) -> object:
        return ANY

    fd_off = fd_mode = size_of = map_ino = map_len = fd_append = fd_lock = fd_ino

    def valid(self, reg: str, length: object) -> object:
        return ANY

    def _effect(self, what: str, reg: str, value: object = None) -> None:
        if self._guarded:
            raise ProgramError("a register effect under m.when: the OS interpreter cannot tell when it applies")
        self.effects.append(Effect(what, reg, value))

    def _set(self, reg: str, value: object) -> None:
        if value is RESULT:
            self._effect("result", reg)
        elif isinstance(value, (int, bytes)) and not isinstance(value, bool):
            self._effect("const", reg, value)
        else:
            raise ProgramError(f"register {reg!r} is set to {value!r}, which the OS interpreter cannot know")

    def set_fd(self, reg: str, ino: object, off: object, mode: int, append: bool = False) -> None:
        self._effect("result", reg)  # the descriptor the call returned

    def set_fd_off(self, reg: str, off: object) -> None:
        pass  # the kernel keeps the offset

    def set_fd_lock(self, reg: str, lock: object) -> None:
        pass  # and the description's lock

    def set_size(self, reg: str, n: object) -> None:
        self._set(reg, n)

    def set_buf(self, reg: str, buf: object) -> None:
        self._set(reg, buf)

    def set_map(self, reg: str, ino: object, n: object) -> None:
        self._effect("result", reg)  # the mapping the call made

    def clear(self, reg: str) -> None:
        self._effect("clear", reg)

    # -- payloads and the file system: the kernel's business
    def payload_len(self, name: str) -> object:
        return ANY

    def lookup(self, path: Path) -> object:
        return ANY

    def create(self) -> object:
        return ANY

    def bind(self, path: Path, ino: object) -> None:
        pass

    def unbind(self, path: Path) -> None:
        pass

    def dir_exists(self, path: str) -> object:
        return ANY

    def add_dir(self, path: str) -> None:
        pass

    def create_link(self, target: Path) -> object:
        return ANY

    def is_link(self, ino: object) -> object:
        return ANY

    def link_target(self, ino: object) -> object:
        return ANY

    def bind_target(self, link: object, ino: object) -> None:
        pass

    def link_text(self, ino: object) -> object:
        return RESULT  # readlink's buffer is what the call returns

    def lock_state(self, ino: object) -> object:
        return ANY

    def set_lock(self, ino: object, state: object) -> None:
        pass

    def file_size(self, ino: object) -> object:
        return RESULT

    def resize(self, ino: object, n: object) -> None:
        pass

    def write(self, ino: object, at: object, payload: str, first: object, count: object) -> None:
        pass

    def read(self, ino: object, off: object, n: object) -> tuple[object, object]:
        return RESULT, ANY

    def sync(self, ino: object) -> None:
        pass

    def mapped_read(self, ino: object, n: object) -> tuple[object, object]:
        return DIED, RESULT


@functools.cache
def outcomes(ins: Instr) -> Outcomes:
    """What the real call of operation ``ins`` does to the registers, read
    off its function in ``spec.semantics.OPS`` (see the module doc)."""
    ok = _Recorder("ok").run(ins)
    refusals: list[tuple[str, Effects]] = []
    for k in range(ok.checks):
        r = _Recorder("refuse", k).run(ins)
        assert r.errno is not None
        refusals.append((r.errno, tuple(r.effects)))
    fault = _Recorder("fault").run(ins)
    unheld = _Recorder("unheld").run(ins)
    return Outcomes(tuple(ok.effects), ok.dies, tuple(refusals),
                    tuple(fault.effects) if fault.has_fault_point else None, unheld.errno)


# ------------------------------------------------------------ probing

_MODE_BITS = {os.O_RDONLY: READ_BIT, os.O_WRONLY: WRITE_BIT, os.O_RDWR: READ_BIT | WRITE_BIT}


def mode_bits(fd: int) -> int:
    """What a real descriptor is open for, as the model's mode bits."""
    return _MODE_BITS[fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE]


def flock_holders(dev: int, ino: int) -> int:
    """Inode (``dev``, ``ino``)'s flock state from /proc/locks, as the
    model spells it: 0 free, n > 0 shared by n, -1 exclusive (a waiting
    request, ``->``, holds nothing)."""
    key = f" {os.major(dev):02x}:{os.minor(dev):02x}:{ino} ".encode()
    shared = 0
    with open("/proc/locks", "rb") as f:
        for line in f:
            if key in line and b" FLOCK " in line and b"->" not in line:
                if b" WRITE " in line:
                    return -1
                shared += 1
    return shared


class Probe(S.PyLogic, _NoObjectStore, NoFlow):
    """The value domain of ``spec.semantics.probe`` for one step of one
    process on real files: registers are the real ones (a descriptor is
    held when set, its mode, O_APPEND and flock from the kernel), names
    looked up with lstat, payloads and lengths concrete.  An inode is its
    real inode number (-1: none).

    After :meth:`run`: ``where`` (``"refused"``, ``"before"``, ``"after"``
    or ``"none"``), ``refused`` (the refusing check's errno), ``blocked``
    (the semantics say the step must wait), and for a write
    ``chunk``/``start`` (the bytes that land in this step, and for a pwrite
    where) and ``done`` (does this step complete the operation: a
    byte-granular write, a flock conversion that must wait)."""

    def __init__(self, granularity: str, regs: Mapping[str, tuple[RegKind, Any]], payloads: Mapping[str, bytes],
                 progress: int, fault: tuple[str, int] | None, real: Callable[[Path], str],
                 real_dir: Callable[[str], str] | None = None, features: frozenset[str] = frozenset()) -> None:
        self.granularity, self.features = granularity, features
        self._regs, self._payloads, self._progress, self._fault, self._real = regs, payloads, progress, fault, real
        self._real_dir = real_dir
        self._effects = False
        # What the probe learnt of each inode it met: (dev, is a symlink,
        # a real path naming it or None, a descriptor holding it or -1).
        self._seen: dict[int, tuple[int, bool, str | None, int]] = {}
        self.where = ""
        self.refused: str | None = None
        self.blocked = False
        self.chunk: bytes | None = None
        self.start: int | None = None
        self.done: bool | None = None

    def run(self, ins: Instr) -> "Probe":
        self.where = S.probe(ins, self)
        return self

    # -- the step
    def check(self, cond: object, errno: str, then: Callable[[], None] | None = None) -> None:
        if cond:
            self.refused = errno
        S.probe_check(bool(cond))

    def fault_point(self) -> None:
        S.probe_fault_point(self._effects)

    def faulted(self) -> bool:
        return self._fault is not None

    def fault_bytes(self) -> int:
        return self._fault[1] if self._fault is not None else 0

    def die(self, cond: object, status: Status) -> None:
        self._effects = True

    def block(self, cond: object) -> None:
        self.blocked = bool(cond)  # the world asks the kernel itself (reference.syscalls.flock_would_wait)

    def progress(self) -> int:
        return self._progress

    def complete(self, done: object) -> None:
        self.done = bool(done)

    # -- registers
    def _value(self, reg: str, kind: RegKind) -> Any:
        k, v = self._regs[reg]
        return v if k is kind else None

    def held(self, reg: str) -> bool:
        kind, v = self._regs[reg]
        return is_set(kind, v)

    def _fd(self, reg: str) -> int:
        return int(self._value(reg, RegKind.FD)) if self.held(reg) else -1

    def fd_ino(self, reg: str) -> int:
        fd = self._fd(reg)
        if fd < 0:
            return -1
        st = os.fstat(fd)
        self._seen[st.st_ino] = (st.st_dev, False, None, fd)
        return st.st_ino

    def fd_off(self, reg: str) -> int:
        return os.lseek(self._value(reg, RegKind.FD), 0, os.SEEK_CUR) if self.held(reg) else 0

    def fd_mode(self, reg: str) -> int:
        return mode_bits(self._value(reg, RegKind.FD)) if self.held(reg) else 0

    def fd_append(self, reg: str) -> bool:
        fd = self._fd(reg)
        return fd >= 0 and bool(fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_APPEND)

    def fd_lock(self, reg: str) -> int:
        fd = self._fd(reg)
        return held_lock(fd) if fd >= 0 else 0

    def size_of(self, reg: str) -> int:
        return int(self._value(reg, RegKind.SIZE))

    def map_ino(self, reg: str) -> int:
        m = self._value(reg, RegKind.MAP)
        return -1 if m is None else int(m.dup)

    def map_len(self, reg: str) -> int:
        m = self._value(reg, RegKind.MAP)
        return 0 if m is None else int(m.length)

    def valid(self, reg: str, length: int) -> bool:
        return F.valid(self._value(reg, RegKind.BUF), length)

    def set_fd(self, reg: str, ino: object, off: object, mode: int, append: bool = False) -> None:
        self._effects = True

    def set_fd_off(self, reg: str, off: object) -> None:
        self._effects = True

    def set_fd_lock(self, reg: str, lock: object) -> None:
        self._effects = True

    def set_size(self, reg: str, n: object) -> None:
        self._effects = True

    def set_buf(self, reg: str, buf: object) -> None:
        self._effects = True

    def set_map(self, reg: str, ino: object, n: object) -> None:
        self._effects = True

    def clear(self, reg: str) -> None:
        self._effects = True

    # -- payloads and the file system
    def payload_len(self, name: str) -> int:
        return len(self._payloads[name])

    def _name(self, real: str) -> int:
        """The inode real name ``real`` names (not following a symlink), or -1."""
        try:
            st = os.lstat(real)
        except OSError:
            return -1
        self._seen[st.st_ino] = (st.st_dev, stat.S_ISLNK(st.st_mode), real, -1)
        return st.st_ino

    def lookup(self, path: Path) -> int:
        return self._name(self._real(path))

    def dir_exists(self, path: str) -> bool:
        assert self._real_dir is not None, "a probe of an operation under a directory needs real_dir"
        return os.path.isdir(self._real_dir(path))

    def is_link(self, ino: int) -> bool:
        return ino >= 0 and self._seen[ino][1]

    def link_target(self, ino: int) -> int:
        if not self.is_link(ino):
            return -1
        link = self._seen[ino][2]
        assert link is not None
        return self._name(os.path.join(os.path.dirname(link), os.readlink(link)))

    def link_text(self, ino: object) -> bytes:
        return b""

    def lock_state(self, ino: int) -> int:
        return flock_holders(self._seen[ino][0], ino) if ino >= 0 else 0

    def file_size(self, ino: int) -> int:
        if ino < 0:
            return 0
        _, _, real, fd = self._seen[ino]
        return os.fstat(fd).st_size if fd >= 0 else os.lstat(real).st_size if real is not None else 0

    def create(self) -> int:
        self._effects = True
        return -1

    def create_link(self, target: Path) -> int:
        self._effects = True
        return -1

    def bind(self, path: Path, ino: object) -> None:
        self._effects = True

    def bind_target(self, link: object, ino: object) -> None:
        self._effects = True

    def unbind(self, path: Path) -> None:
        self._effects = True

    def add_dir(self, path: str) -> None:
        self._effects = True

    def set_lock(self, ino: object, state: object) -> None:
        self._effects = True

    def resize(self, ino: object, n: object) -> None:
        self._effects = True

    def sync(self, ino: object) -> None:
        self._effects = True

    def write(self, ino: object, at: int, payload: str, first: int, count: int) -> None:
        self._effects = True
        self.chunk = self._payloads[payload][first:first + count]
        self.start = at

    def read(self, ino: object, off: object, n: object) -> tuple[bytes, int]:
        return b"", 0

    def mapped_read(self, ino: object, n: object) -> tuple[bool, bytes]:
        return False, b""
