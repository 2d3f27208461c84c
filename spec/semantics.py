"""Each operation's semantics, stated once: the table every interpreter runs.

An operation's meaning is a small function over a :class:`Dom`, the value
domain an interpreter provides.  The model (``spec.machine``) runs it with
Python values, the solver (``proofs.symbolic``) with Z3 terms, and the
Promela translator (``proofs.promela``) with Promela expressions and
statements, so every rule below - which registers an operation reads and
sets, the errors it checks in the order Linux checks them, where an
injected fault strikes and how many bytes land before it, and what it does
to the file system - is written here and nowhere else.  The OS interpreter
(``reference``) makes the real call instead of running the effect, but
takes from here which registers are what, which faults may strike, and
(:func:`probe`) whether the kernel refuses the call before a fault could.

The shape of an operation's function:

- ``m.check(cond, errno)``: Linux's checks, in Linux's order; the first
  that holds ends the operation with that errno (``then`` runs first: the
  effects a failure still has, e.g. a failed stat's size of -1);
- ``m.fault_point()``: where an injected fault strikes (the operation then
  ends with the fault's errno, keeping the effects made before it: a
  failing write's landed bytes, a failing close's released descriptor);
- the effect, with ``m.when`` for effects under a condition and
  ``m.ite`` for values.  Python's own ``if`` is only for what is known
  when the program is written (open flags, granularity).

Also here: the branch conditions (:func:`holds`), local control flow
(:func:`settle`: branches, gotos, returns and local operations are folded
into the step before them), which faults a step may suffer
(:func:`fault_options`), and each program's registers and their kinds
(:func:`registers`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable, Protocol

from . import fs as F
from .ops import (
    Chtimes,
    Close,
    Fdatasync,
    Flock,
    Link,
    LockOp,
    Mkdir,
    Readlink,
    Symlink,
    Cond,
    Data,
    DeleteObject,
    Failed,
    GetObject,
    HeadObject,
    Key,
    Precondition,
    PutObject,
    WriteBuf,
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
from .state import READ_BIT, WRITE_BIT, Began, RegKind, Status

# A value of the interpreter's domain: an int or bool for the model, a Z3
# term for the solver, a Promela expression for the translator.
V = Any


class Control(Protocol):
    """What running local control flow needs (:func:`holds`,
    :func:`settle`, :func:`step`, :func:`length`, :func:`data_range`): the
    logic, branches, how the process goes on or ends, and the registers a
    condition reads.  Every :class:`Dom` is one; an interpreter that makes
    the real call for each operation instead of running its function (the
    OS interpreter) need provide only this.

    Values are the domain's own; Python's arithmetic and comparison
    operators work on them (``a + 1``, ``a < b``, ``a == b``); the
    connectives and choice go through :meth:`and_`, :meth:`or_`,
    :meth:`not_` and :meth:`ite`.  Registers are named by the program's
    register names.
    """

    # -- logic
    def and_(self, *bs: V) -> V: ...
    def or_(self, *bs: V) -> V: ...
    def not_(self, b: V) -> V: ...
    def ite(self, c: V, a: V, b: V) -> V: ...

    # -- control flow
    def branch(self, cond: V, then: Callable[[], None], other: Callable[[], None]) -> None:
        """Local control flow: ``then`` where ``cond`` holds, else ``other``."""

    def run_op(self, ins: Instr) -> None:
        """Run operation ``ins``: its function from :data:`OPS` (whose
        checks end the operation, not the step); the OS interpreter makes
        the real call instead."""

    def after_op(self, settle: Callable[[], None]) -> None:
        """Run local control flow after the operation, if it is finished
        and the process still runs."""

    def stop_at(self, pc: int) -> None:
        """Local control flow reached the operation at ``pc``: the process
        waits there for its next step."""

    def finish(self, status: Status, keep: str | None) -> None:
        """The process returns with ``status``: exit releases every
        register but ``keep`` (a hit's value)."""

    def failed(self, errnos: frozenset[str]) -> V:
        """The last operation failed (with one of ``errnos``, or any)."""

    def began(self) -> V: ...
    def published(self) -> V: ...
    def set_began(self, b: V) -> None: ...

    # -- what conditions read
    def size_of(self, reg: str) -> V:
        """A size register's value; -1 when unset."""

    def valid(self, reg: str, length: V) -> V:
        """The reader's validation of buffer ``reg`` (``spec.fs.valid``)."""

    def payload_len(self, name: str) -> V: ...


class Dom(Control, Protocol):
    """What an interpreter provides for the operations' functions to run
    on: :class:`Control`, and checks, faults, registers and the file
    system.  Paths are ``spec.ops.Path`` values (private ones are the
    process's own).
    """

    granularity: str  # "byte": a write lands a byte a step; "write": whole
    # What the system's programs use at all (:func:`features`): a system
    # with no symlink has none to follow, so its steps need not ask.
    features: frozenset[str]

    # -- the step: checks, faults, conditional effects, completion
    def check(self, cond: V, errno: str, then: Callable[[], None] | None = None) -> None:
        """When ``cond`` holds the operation fails here with ``errno``
        (``then``'s effects are made first); nothing after it runs."""

    def fault_point(self) -> None:
        """An injected fault strikes here: the operation ends with the
        fault's errno; effects already made stay."""

    def faulted(self) -> V:
        """Does an injected fault strike this step?"""

    def fault_bytes(self) -> V:
        """Bytes that land before the fault (write granularity)."""

    def when(self, cond: V, effect: Callable[[], V], otherwise: V) -> V:
        """Run ``effect`` only where ``cond`` holds; its value there, else
        ``otherwise``."""

    def die(self, cond: V, status: Status) -> None:
        """Where ``cond`` holds the process ends with ``status`` (SIGBUS):
        exit releases what it holds; nothing after it runs."""

    def block(self, cond: V) -> None:
        """Where ``cond`` holds the process cannot take this step at all
        (it waits, as for a lock another holds): no transition."""

    def progress(self) -> V:
        """Bytes of the current multi-step write already done."""

    def complete(self, done: V) -> None:
        """This step finishes the operation iff ``done`` (else the write
        goes on at the next step, one byte further)."""

    # -- registers
    def held(self, reg: str) -> V:
        """Register ``reg`` (a descriptor or a mapping) is set."""

    def fd_ino(self, reg: str) -> V: ...
    def fd_off(self, reg: str) -> V: ...
    def fd_mode(self, reg: str) -> V: ...
    def map_ino(self, reg: str) -> V: ...
    def map_len(self, reg: str) -> V: ...
    def fd_append(self, reg: str) -> V:
        """The descriptor was opened with O_APPEND."""

    def fd_lock(self, reg: str) -> V:
        """The flock its open description holds: 0, 1 shared, -1 exclusive."""

    def set_fd(self, reg: str, ino: V, off: V, mode: int, append: bool = False) -> None: ...
    def set_fd_off(self, reg: str, off: V) -> None: ...
    def set_fd_lock(self, reg: str, lock: V) -> None: ...
    def set_size(self, reg: str, n: V) -> None: ...
    def set_buf(self, reg: str, buf: V) -> None: ...
    def set_map(self, reg: str, ino: V, n: V) -> None: ...
    def clear(self, reg: str) -> None: ...

    # -- the file system
    def lookup(self, path: Path) -> V:
        """The inode ``path`` names, or -1."""

    def create(self) -> V:
        """A new, empty, unnamed inode."""

    def bind(self, path: Path, ino: V) -> None: ...
    def unbind(self, path: Path) -> None: ...
    def dir_exists(self, path: str) -> V: ...
    def add_dir(self, path: str) -> None: ...
    def create_link(self, target: Path) -> V:
        """A new, unnamed symlink inode pointing at ``target``."""

    def is_link(self, ino: V) -> V:
        """Inode ``ino`` is a symlink (False for -1)."""

    def link_target(self, ino: V) -> V:
        """The inode symlink ``ino``'s target names, or -1."""

    def bind_target(self, link: V, ino: V) -> None:
        """Point the name symlink ``link`` targets at ``ino``."""

    def link_text(self, ino: V) -> V:
        """Symlink ``ino``'s target name, as a buffer (readlink)."""

    def lock_state(self, ino: V) -> V:
        """Inode ``ino``'s flock state: 0, n > 0 shared by n, -1 exclusive."""

    def set_lock(self, ino: V, state: V) -> None: ...
    def file_size(self, ino: V) -> V: ...
    def resize(self, ino: V, n: V) -> None:
        """ftruncate: shrink, or extend with zero bytes."""

    def write(self, ino: V, at: V, payload: str, first: V, count: V) -> None:
        """``count`` bytes of ``payload`` from index ``first`` land at file
        offset ``at`` (a hole before them reads as zero bytes)."""

    def read(self, ino: V, off: V, n: V) -> tuple[V, V]:
        """At most ``n`` bytes from ``off``: (the buffer, bytes read)."""

    def sync(self, ino: V) -> None:
        """fsync: the inode's bytes become durable."""

    def mapped_read(self, ino: V, n: V) -> tuple[V, V]:
        """Touch ``n`` mapped bytes: (SIGBUS?, the buffer)."""

    def buf_len(self, reg: str) -> V:
        """The length of buffer register ``reg`` (0 when unset)."""

    def write_buf(self, ino: V, at: V, reg: str, first: V, count: V) -> None:
        """``count`` bytes of buffer ``reg`` from index ``first`` land at
        file offset ``at`` (as :meth:`write`)."""

    # -- the object store (shared by every process; the keys are ``Key``s)
    def obj_lookup(self, key: Key) -> V:
        """The inode holding the object at ``key``, or -1 (404)."""

    def obj_etag(self, key: Key) -> V:
        """The object's ETag (-1 when there is none)."""

    def obj_bind(self, key: Key, ino: V) -> None:
        """``key`` now names inode ``ino`` with the next ETag."""

    def obj_unbind(self, key: Key) -> None: ...

    def fill(self, ino: V, payload: str, first: V, count: V) -> None:
        """A new object's bytes, whole, in one step: ``count`` bytes of
        ``payload`` from index ``first`` into the empty inode ``ino``."""

    def obj_read(self, ino: V, n: V) -> V:
        """The first ``n`` bytes of object ``ino``, as a buffer (an
        object's inode is never written again, so they stay its bytes)."""


class PyLogic:
    """The logic on Python values - :class:`Control`'s connectives and
    choice, and :meth:`Dom.when` - for every domain whose values are
    Python's own (the model's, the OS interpreter's)."""

    __slots__ = ()

    def and_(self, *bs: V) -> bool:
        return all(bs)

    def or_(self, *bs: V) -> bool:
        return any(bs)

    def not_(self, b: V) -> bool:
        return not b

    def ite(self, c: V, a: V, b: V) -> V:
        return a if c else b

    def when(self, cond: V, effect: Callable[[], V], otherwise: V) -> V:
        return effect() if cond else otherwise


# ------------------------------------------------------------ operands


def length(m: Control, n: Length) -> V:
    """A symbolic length's value: ``len(payload) + delta`` or a constant."""
    return n.delta if n.payload is None else m.payload_len(n.payload) + n.delta


def _slice_index(m: Control, i: int | None, n: V, default: V) -> V:
    """Python's slice rule for one bound, on a length of the domain."""
    if i is None:
        return default
    raw = n + i if i < 0 else i
    return m.ite(raw < 0, 0, m.ite(raw > n, n, raw))


def data_range(m: Control, d: Data) -> tuple[V, V]:
    """``payload[start:stop]`` as (first index, byte count), with Python's
    slice rules on the payload's length."""
    n = m.payload_len(d.payload)
    lo = _slice_index(m, d.start, n, 0)
    hi = _slice_index(m, d.stop, n, n)
    return lo, m.ite(hi > lo, hi - lo, 0)


def _mode(flags: OpenFlags) -> int:
    return (READ_BIT if OpenFlags.READ in flags else 0) | (WRITE_BIT if OpenFlags.WRITE in flags else 0)


def _allows(m: Dom, fd: str, bit: int) -> V:
    """Descriptor ``fd`` is held and open for ``bit`` (read or write)."""
    modes = [mode for mode in (READ_BIT, WRITE_BIT, READ_BIT | WRITE_BIT) if mode & bit]
    return m.and_(m.held(fd), m.or_(*[m.fd_mode(fd) == mode for mode in modes]))


# ------------------------------------------------------------ operations


# What a system's programs use (:func:`features`): the rules for each are
# only run where the programs can need them, so a system without symlinks
# explores, proves and translates exactly as before they existed.
LINKS, LOCKS, APPEND, HARDLINKS, OBJECTS = "links", "locks", "append", "hardlinks", "objects"
OBJECT_OPS = (PutObject, GetObject, HeadObject, DeleteObject)


def features(programs: Iterable[Program]) -> frozenset[str]:
    """The features ``programs`` use: symlinks, flock, O_APPEND, hard
    links, the object store."""
    out: set[str] = set()
    for prog in programs:
        for ins in prog.code:
            if isinstance(ins, OBJECT_OPS):
                out.add(OBJECTS)
            elif isinstance(ins, Symlink):
                out.add(LINKS)
            elif isinstance(ins, Link):
                out.add(HARDLINKS)
            elif isinstance(ins, Flock):
                out.add(LOCKS)
            elif isinstance(ins, Open) and OpenFlags.APPEND in ins.flags:
                out.add(APPEND)
    return frozenset(out)


def _walk(m: Dom, path: Path, then: Callable[[], None] | None = None) -> None:
    """Path resolution: every directory above the name must exist.  ``then``:
    the effects of the operation's own ENOENT, which a missing directory
    has too (the caller sees one ENOENT, whichever name was missing)."""
    for d in path.parents():
        m.check(m.not_(m.dir_exists(d)), F.ENOENT, then)


def _follow(m: Dom, named: V, nofollow: bool) -> V:
    """The inode an open or a stat of a name reaches: through a symlink to
    its target (-1 when dangling); ELOOP with O_NOFOLLOW.  One hop: a link
    to a link is ELOOP here (Linux follows up to 40; a deliberate
    abstraction, kept out of the fidelity machine's programs)."""
    if LINKS not in m.features:
        return named
    link = m.is_link(named)
    if nofollow:
        m.check(link, F.ELOOP)
    target = m.link_target(named)
    m.check(m.and_(link, m.is_link(target)), F.ELOOP)
    return m.ite(link, target, named)


def _open(ins: Open, m: Dom) -> None:
    """open(path, flags, 0666)."""
    m.fault_point()  # EACCES, before the kernel looks at the name
    _walk(m, ins.path)
    flags = ins.flags
    named = m.lookup(ins.path)
    if OpenFlags.CREAT in flags and OpenFlags.EXCL in flags:
        m.check(named >= 0, F.EEXIST)  # the name itself: O_EXCL never follows a link
    ino = _follow(m, named, OpenFlags.NOFOLLOW in flags)
    exists = ino >= 0
    if OpenFlags.CREAT not in flags:
        m.check(m.not_(exists), F.ENOENT)
    else:
        ino = m.when(m.not_(exists), lambda: _create(m, ins.path, named), ino)
    if OpenFlags.TRUNC in flags:
        m.resize(ino, 0)  # Linux truncates even with O_RDONLY|O_TRUNC
    # A register still holding a descriptor is overwritten (the old
    # description is gone, and its flock with it; the OS interpreter
    # closes it).
    if LOCKS in m.features:
        _unlock(m, ins.fd)
    m.set_fd(ins.fd, ino, 0, _mode(flags), OpenFlags.APPEND in flags)


def _create(m: Dom, path: Path, named: V) -> V:
    """A new file named ``path`` - or, through a dangling symlink, named
    what the link points at (O_CREAT creates the target)."""
    ino = m.create()
    if LINKS in m.features:
        m.branch(m.is_link(named), lambda: m.bind_target(named, ino), lambda: m.bind(path, ino))
    else:
        m.bind(path, ino)
    return ino


def _write(ins: Write | PWrite, m: Dom) -> None:
    """write(fd, data) at the descriptor's offset, or pwrite at ``offset``.

    At byte granularity one byte lands per step (``m.progress()`` counts
    them) and an injected fault lands none; at write granularity the whole
    write is one step, and a fault lets its first k bytes land."""
    at = ins.offset if isinstance(ins, PWrite) else None
    if at is not None:
        # Linux's pwrite64 refuses a negative offset before it looks at
        # the descriptor (EINVAL, not EBADF), and before a byte is written.
        m.check(at < 0, F.EINVAL)
    m.check(m.not_(_allows(m, ins.fd, WRITE_BIT)), F.EBADF)
    lo, n = data_range(m, ins.data)
    ino, off = m.fd_ino(ins.fd), m.fd_off(ins.fd)
    faulted = m.faulted()
    if m.granularity == "write":
        first, count, done = 0, m.ite(faulted, m.fault_bytes(), n), True
        start = off if at is None else at
    else:
        first = m.progress()
        nothing = m.or_(faulted, n == 0)
        count = m.ite(nothing, 0, 1)
        done = m.or_(nothing, first + 1 == n)
        start = off if at is None else at + first
    if APPEND in m.features:
        # O_APPEND: the whole write lands at the end of file as it is now,
        # in one step (the inode's lock is held for all of it), even a
        # pwrite (Linux ignores its offset); the offset moves to the end -
        # but only when a byte lands (Linux returns before it places a
        # write of no bytes, and keeps a failed write's position).
        app, end = m.fd_append(ins.fd), m.file_size(ino)
        first, start = m.ite(app, 0, first), m.ite(app, end, start)
        count = m.ite(app, m.ite(faulted, m.fault_bytes() if m.granularity == "write" else 0, n), count)
        done = m.or_(app, done)
        off = m.ite(m.and_(app, at is None, count > 0), end, off)
    m.write(ino, start, ins.data.payload, lo + first, count)
    if at is None:
        m.set_fd_off(ins.fd, off + count)
    m.complete(done)
    m.fault_point()  # ENOSPC, after the bytes that landed


def _write_buf(ins: WriteBuf, m: Dom) -> None:
    """write(fd, buf): as write, with a buffer's bytes (at byte granularity
    a byte a step; at write granularity a fault lets a prefix land).  A
    fault may strike even a write of an empty buffer (then nothing lands):
    the buffer's length is known only when the program runs."""
    m.check(m.not_(_allows(m, ins.fd, WRITE_BIT)), F.EBADF)
    n = m.buf_len(ins.buf)
    ino, off = m.fd_ino(ins.fd), m.fd_off(ins.fd)
    faulted = m.faulted()
    if m.granularity == "write":
        first, done = 0, True
        count = m.ite(faulted, m.ite(m.fault_bytes() < n, m.fault_bytes(), n), n)
    else:
        first = m.progress()
        nothing = m.or_(faulted, n == 0)
        count = m.ite(nothing, 0, 1)
        done = m.or_(nothing, first + 1 == n)
    m.write_buf(ino, off, ins.buf, first, count)
    m.set_fd_off(ins.fd, off + count)
    m.complete(done)
    m.fault_point()  # ENOSPC, after the bytes that landed


def _read(ins: Read, m: Dom) -> None:
    """read(fd, n) at the offset, into a buffer (a failed read leaves none)."""
    m.check(m.not_(_allows(m, ins.fd, READ_BIT)), F.EBADF, lambda: m.clear(ins.into))
    ino, off = m.fd_ino(ins.fd), m.fd_off(ins.fd)
    buf, got = m.read(ino, off, length(m, ins.n))
    m.set_fd_off(ins.fd, off + got)
    m.set_buf(ins.into, buf)


def _ftruncate(ins: Ftruncate, m: Dom) -> None:
    """ftruncate(fd, n)."""
    n = length(m, ins.n)
    m.check(n < 0, F.EINVAL)  # Linux checks the length before the descriptor
    m.check(m.not_(m.held(ins.fd)), F.EBADF)
    m.check(m.not_(_allows(m, ins.fd, WRITE_BIT)), F.EINVAL)
    m.fault_point()  # EIO
    m.resize(m.fd_ino(ins.fd), n)


def _fsync(ins: Fsync | Fdatasync, m: Dom) -> None:
    """fsync(fd) and fdatasync(fd): the file's bytes become durable."""
    m.check(m.not_(m.held(ins.fd)), F.EBADF)
    m.fault_point()  # EIO
    m.sync(m.fd_ino(ins.fd))


def _close(ins: Close, m: Dom) -> None:
    """close(fd)."""
    m.check(m.not_(m.held(ins.fd)), F.EBADF)
    if LOCKS in m.features:
        _unlock(m, ins.fd)  # the open description goes, and its lock with it
    m.clear(ins.fd)
    m.fault_point()  # EIO: Linux releases the descriptor even when close fails


def _stat(ins: Stat, m: Dom) -> None:
    """stat(path): its size, or -1 and ENOENT (through a symlink)."""
    _walk(m, ins.path, lambda: m.set_size(ins.into, -1))
    ino = _follow(m, m.lookup(ins.path), False)
    m.check(ino < 0, F.ENOENT, lambda: m.set_size(ins.into, -1))
    m.set_size(ins.into, m.file_size(ino))


def _fstat(ins: Fstat, m: Dom) -> None:
    """fstat(fd): the size of the file it holds."""
    m.check(m.not_(m.held(ins.fd)), F.EBADF, lambda: m.set_size(ins.into, -1))
    m.set_size(ins.into, m.file_size(m.fd_ino(ins.fd)))


def _unlink(ins: Unlink, m: Dom) -> None:
    """unlink(path): the name goes (a symlink itself, not its target);
    holders keep the inode."""
    _walk(m, ins.path)
    m.check(m.lookup(ins.path) < 0, F.ENOENT)
    m.unbind(ins.path)


def _rename(ins: Rename, m: Dom) -> None:
    """rename(src, dst): dst names src's inode, atomically;
    renameat2(RENAME_NOREPLACE) refuses an existing dst."""
    m.fault_point()  # EIO
    _walk(m, ins.src)
    ino = m.lookup(ins.src)
    m.check(ino < 0, F.ENOENT)
    _walk(m, ins.dst)
    if ins.noreplace:
        m.check(m.lookup(ins.dst) >= 0, F.EEXIST)
    if HARDLINKS in m.features:
        # Two names of one inode: rename does nothing, and succeeds
        # (vfs_rename: source == target).  Only link makes such names.
        m.when(m.lookup(ins.dst) != ino, lambda: _move(m, ins.src, ins.dst, ino), None)
    else:
        _move(m, ins.src, ins.dst, ino)


def _move(m: Dom, src: Path, dst: Path, ino: V) -> None:
    m.unbind(src)
    m.bind(dst, ino)


def _link(ins: Link, m: Dom) -> None:
    """link(old, new): a second name for old's inode (a symlink itself,
    as linkat without AT_SYMLINK_FOLLOW)."""
    _walk(m, ins.old)
    ino = m.lookup(ins.old)
    m.check(ino < 0, F.ENOENT)
    _walk(m, ins.new)
    m.check(m.lookup(ins.new) >= 0, F.EEXIST)
    m.fault_point()  # EIO
    m.bind(ins.new, ino)


def _mkdir(ins: Mkdir, m: Dom) -> None:
    """mkdir(path)."""
    _walk(m, ins.path)
    m.check(m.dir_exists(ins.path.name), F.EEXIST)
    m.fault_point()  # ENOSPC
    m.add_dir(ins.path.name)


def _symlink(ins: Symlink, m: Dom) -> None:
    """symlink(target, path): the target need not exist."""
    _walk(m, ins.path)
    m.check(m.lookup(ins.path) >= 0, F.EEXIST)
    m.fault_point()  # EIO
    m.bind(ins.path, m.create_link(ins.target))


def _readlink(ins: Readlink, m: Dom) -> None:
    """readlink(path): the target's name (a failed readlink leaves no buffer)."""
    _walk(m, ins.path, lambda: m.clear(ins.into))
    named = m.lookup(ins.path)
    m.check(named < 0, F.ENOENT, lambda: m.clear(ins.into))
    m.check(m.not_(m.is_link(named)), F.EINVAL, lambda: m.clear(ins.into))
    m.set_buf(ins.into, m.link_text(named))


def _flock(ins: Flock, m: Dom) -> None:
    """flock(fd, op): the lock belongs to the open description.  A
    conflicting request waits (the process is not enabled) until the
    holder drops it; taking a lock the description holds in the other mode
    converts it - by dropping the old lock first, as Linux does
    (fs/locks.c flock_lock_inode): a shared lock that must wait to become
    exclusive waits without it, so the drop is a step of its own and the
    request goes on at the next, as any other."""
    m.check(m.not_(m.held(ins.fd)), F.EBADF)
    if ins.op is LockOp.UNLOCK:
        _unlock(m, ins.fd)
        return
    ino, mine = m.fd_ino(ins.fd), m.fd_lock(ins.fd)
    state = m.lock_state(ino)
    if ins.op is LockOp.SHARED:
        m.block(m.and_(state == -1, mine != -1))  # another holds it exclusively
        new, want = m.ite(mine == 1, state, m.ite(mine == -1, 1, state + 1)), 1
    else:
        drops = m.and_(mine == 1, state > 1)  # others share it: let go of ours, then wait
        m.block(m.and_(mine == 0, state != 0))  # others hold it
        new, want = m.ite(drops, state - 1, -1), m.ite(drops, 0, -1)
        m.complete(m.or_(m.faulted(), m.not_(drops)))
    m.fault_point()  # ENOLCK
    m.set_lock(ino, new)
    m.set_fd_lock(ins.fd, want)


def _unlock(m: Dom, fd: str) -> None:
    """Drop the flock descriptor ``fd``'s open description holds, if any."""
    ino, mine = m.fd_ino(fd), m.fd_lock(fd)
    state = m.lock_state(ino)
    m.when(m.and_(m.held(fd), mine != 0),
           lambda: _set_unlocked(m, fd, ino, m.ite(mine == -1, 0, state - 1)), None)


def _set_unlocked(m: Dom, fd: str, ino: V, state: V) -> None:
    m.set_lock(ino, state)
    m.set_fd_lock(fd, 0)


def release_locks(m: Dom, program: Program, keep: str | None) -> None:
    """Exit drops every flock the process's descriptors hold (each
    domain's :meth:`Dom.finish` calls this first)."""
    if LOCKS in m.features:
        for reg, kind in registers(program).items():
            if kind is RegKind.FD and reg != keep:
                _unlock(m, reg)


def _chtimes(ins: Chtimes, m: Dom) -> None:
    """chtimes(path): times are not modelled, only ENOENT (through a symlink)."""
    _walk(m, ins.path)
    m.check(_follow(m, m.lookup(ins.path), False) < 0, F.ENOENT)


def _mmap(ins: Mmap, m: Dom) -> None:
    """mmap(fd, 0, size) of the size a size register holds (a failed mmap
    leaves the mapping register as it was)."""
    m.check(m.not_(m.held(ins.fd)), F.EBADF)
    size = m.size_of(ins.size)
    m.check(size < 0, F.EINVAL)
    # PROT_READ needs a readable descriptor (a mapping of 0 bytes maps nothing).
    m.check(m.and_(size > 0, m.not_(_allows(m, ins.fd, READ_BIT))), F.EACCES)
    m.set_map(ins.into, m.fd_ino(ins.fd), size)


def _map_read(ins: MapRead, m: Dom) -> None:
    """Touch every mapped byte: SIGBUS for a page wholly past the end."""
    m.check(m.not_(m.held(ins.map)), F.EINVAL)
    sigbus, buf = m.mapped_read(m.map_ino(ins.map), m.map_len(ins.map))
    m.die(sigbus, Status.SIGBUS)
    m.set_buf(ins.into, buf)


# ------------------------------------------------------------ the object store
# An injected fault on a request is an error or a timeout (EIO).  Its
# "bytes" say which: for a PUT or a DELETE, 0 - the request was lost before
# the store acted - or 1 - the store acted and the answer was lost (a
# timeout: the client cannot tell the two apart); for a GET, -1 - no body -
# or k >= 0 - the body is cut short after k bytes, and the client is not
# told (a network cut, a buggy proxy).  Retries are the protocol's business.


def _lost(m: Dom) -> V:
    """The request was lost before the store acted."""
    return m.and_(m.faulted(), m.fault_bytes() == 0)


def _put_object(ins: PutObject, m: Dom) -> None:
    """PUT key <- data: a new object, whole and atomically (readers see the
    old object or the new one); the last writer wins.  If-None-Match: *
    is 412 when the key exists, If-Match when it is missing or its ETag
    differs; the store decides each condition and the write as one
    (S3's conditional writes are atomic)."""
    m.check(_lost(m), F.EIO)
    cur = m.obj_lookup(ins.key)
    refused: V = False
    if ins.cond is Precondition.IF_NONE_MATCH:
        refused = cur >= 0
    elif ins.cond is Precondition.IF_MATCH:
        assert ins.etag is not None
        refused = m.or_(cur < 0, m.obj_etag(ins.key) != m.size_of(ins.etag))
    lo, n = data_range(m, ins.data)
    m.when(m.not_(refused), lambda: _store(m, ins.key, ins.data.payload, lo, n), None)
    m.fault_point()  # EIO: a timeout after the store acted
    m.check(refused, F.EPRECONDITION)


def _store(m: Dom, key: Key, payload: str, lo: V, n: V) -> None:
    ino = m.create()
    m.fill(ino, payload, lo, n)
    m.obj_bind(key, ino)


def _get_object(ins: GetObject, m: Dom) -> None:
    """GET key: the whole object into a buffer (a failed GET leaves none);
    a cut-short body is a success to the client, with fewer bytes."""
    cut = m.fault_bytes()
    m.check(m.and_(m.faulted(), cut < 0), F.EIO, lambda: m.clear(ins.into))
    ino = m.obj_lookup(ins.key)
    m.check(ino < 0, F.ENOENT, lambda: m.clear(ins.into))  # 404 NoSuchKey
    size = m.file_size(ino)
    n = m.ite(m.and_(m.faulted(), cut < size), cut, size)
    m.set_buf(ins.into, m.obj_read(ino, n))


def _head_object(ins: HeadObject, m: Dom) -> None:
    """HEAD key: its size and ETag (-1 for both on 404 or an error)."""
    def none() -> None:
        m.set_size(ins.into, -1)
        if ins.etag is not None:
            m.set_size(ins.etag, -1)

    m.check(m.faulted(), F.EIO, none)
    ino = m.obj_lookup(ins.key)
    m.check(ino < 0, F.ENOENT, none)
    m.set_size(ins.into, m.file_size(ino))
    if ins.etag is not None:
        m.set_size(ins.etag, m.obj_etag(ins.key))


def _delete_object(ins: DeleteObject, m: Dom) -> None:
    """DELETE key: gone at once for every reader (a missing key is no error)."""
    m.check(_lost(m), F.EIO)
    m.obj_unbind(ins.key)
    m.fault_point()  # EIO: a timeout after the store acted


# ------------------------------------------------------------ the table


@dataclass(frozen=True)
class OpSpec:
    """One operation: its function over a :class:`Dom`, the register
    operands it reads or sets (attribute, kind), the paths it names, the
    errno of its injected fault (None: it cannot fault), and whether it is
    local (invisible to other processes, so folded into the step before)."""

    run: Callable[[Any, Dom], None]
    regs: tuple[tuple[str, RegKind], ...]
    paths: tuple[str, ...] = ()
    fault: str | None = None
    local: bool = False


FD, SIZE, BUF, MAP = RegKind.FD, RegKind.SIZE, RegKind.BUF, RegKind.MAP

OPS: dict[type, OpSpec] = {
    Open: OpSpec(_open, (("fd", FD),), ("path",), F.EACCES),
    Write: OpSpec(_write, (("fd", FD),), (), F.ENOSPC),
    PWrite: OpSpec(_write, (("fd", FD),), (), F.ENOSPC),
    Read: OpSpec(_read, (("fd", FD), ("into", BUF))),
    Ftruncate: OpSpec(_ftruncate, (("fd", FD),), (), F.EIO),
    Fsync: OpSpec(_fsync, (("fd", FD),), (), F.EIO),
    Fdatasync: OpSpec(_fsync, (("fd", FD),), (), F.EIO),  # the model's durable bytes are data only
    Close: OpSpec(_close, (("fd", FD),), (), F.EIO),
    Stat: OpSpec(_stat, (("into", SIZE),), ("path",)),
    Fstat: OpSpec(_fstat, (("fd", FD), ("into", SIZE))),
    Unlink: OpSpec(_unlink, (), ("path",)),
    Rename: OpSpec(_rename, (), ("src", "dst"), F.EIO),
    Link: OpSpec(_link, (), ("old", "new"), F.EIO),
    Mkdir: OpSpec(_mkdir, (), ("path",), F.ENOSPC),
    Symlink: OpSpec(_symlink, (), ("target", "path"), F.EIO),
    Readlink: OpSpec(_readlink, (("into", BUF),), ("path",)),
    Flock: OpSpec(_flock, (("fd", FD),), (), F.ENOLCK),
    # Times are not modelled: chtimes changes nothing another process can
    # see and commutes with every other step, so folding it into the step
    # before it is a sound reduction (it would otherwise add a step, and
    # states, to every writer).
    Chtimes: OpSpec(_chtimes, (), ("path",), local=True),
    Mmap: OpSpec(_mmap, (("fd", FD), ("into", MAP), ("size", SIZE))),
    MapRead: OpSpec(_map_read, (("into", BUF), ("map", MAP))),
    WriteBuf: OpSpec(_write_buf, (("fd", FD), ("buf", BUF)), (), F.ENOSPC),
    # The object store: keys are not paths (no directory, no descriptor).
    PutObject: OpSpec(_put_object, (("etag", SIZE),), (), F.EIO),
    GetObject: OpSpec(_get_object, (("into", BUF),), (), F.EIO),
    HeadObject: OpSpec(_head_object, (("into", SIZE), ("etag", SIZE)), (), F.EIO),
    DeleteObject: OpSpec(_delete_object, (), (), F.EIO),
}

# The registers a branch condition or a return reads.
_COND_REGS: dict[type, RegKind] = {SizeIs: SIZE, Invalid: BUF}


def spec_of(ins: Instr) -> OpSpec:
    """The table row of operation ``ins``; ProgramError for control flow."""
    try:
        return OPS[type(ins)]
    except KeyError:
        raise ProgramError(f"{ins} is not an operation") from None


def is_operation(ins: Instr) -> bool:
    """Does ``ins`` take a step of its own (an operation that is not local)?"""
    row = OPS.get(type(ins))
    return row is not None and not row.local


def registers(program: Program) -> dict[str, RegKind]:
    """Every register the program names, in order of first appearance,
    with its kind; ProgramError if one is used as two kinds."""
    out: dict[str, RegKind] = {}

    def note(name: str, kind: RegKind) -> None:
        if out.setdefault(name, kind) is not kind:
            raise ProgramError(f"{program.name}: register {name!r} is used both as {out[name].value} and as {kind.value}")

    for ins in program.code:
        row = OPS.get(type(ins))
        if row is not None:
            for attr, kind in row.regs:
                if getattr(ins, attr) is not None:  # an optional operand (a HEAD's ETag)
                    note(getattr(ins, attr), kind)
        elif isinstance(ins, If) and isinstance(ins.cond, (SizeIs, Invalid)):
            note(ins.cond.reg, _COND_REGS[type(ins.cond)])
        elif isinstance(ins, Return) and ins.outcome is Outcome.HIT:
            note(ins.value, BUF)
    return out


def holders(program: Program) -> tuple[str, ...]:
    """The registers that hold an inode: descriptors and mappings (exit
    releases them; the explorer renumbers the inodes they hold)."""
    return tuple(r for r, k in registers(program).items() if k in (FD, MAP))


def paths(program: Program) -> tuple[Path, ...]:
    """Every path the program names, in order of first appearance."""
    out: list[Path] = []
    for ins in program.code:
        for attr in OPS[type(ins)].paths if type(ins) in OPS else ():
            p = getattr(ins, attr)
            if p not in out:
                out.append(p)
    return tuple(out)


# ------------------------------------------------------------ faults


def can_fault(ins: Instr) -> bool:
    """May an injected fault strike ``ins`` at all?  A reader's plain
    O_RDONLY open does not fail: a failed lookup is a plain miss."""
    row = OPS.get(type(ins))
    if row is None or row.fault is None:
        return False
    if isinstance(ins, Flock) and ins.op is LockOp.UNLOCK:
        return False  # flock(LOCK_UN) only fails for a bad descriptor
    return not (isinstance(ins, Open) and ins.flags == OpenFlags.READ)


def fault_options(ins: Instr, data_bytes: int, progress: int, granularity: str) -> list[tuple[str, int]]:
    """The faults that may strike ``ins`` this step, as (errno, bytes that
    land first): at write granularity any prefix of a write may land; at
    byte granularity a write fails at its next byte; a write of no bytes
    cannot fail.  ``data_bytes`` is the write's length, for a GET the
    length of its ``body`` payload, for a buffer write the longest
    payload (``spec.machine.fault_operand``); else ignored.  For the object
    store's requests, see "the object store" above."""
    if not can_fault(ins):
        return []
    errno = OPS[type(ins)].fault
    assert errno is not None
    if isinstance(ins, (PutObject, DeleteObject)):
        return [(errno, 0), (errno, 1)]  # lost before the store acted, or its answer lost after
    if isinstance(ins, GetObject):
        return [(errno, -1), *((errno, k) for k in range(data_bytes))]  # no body, or one cut after k bytes
    if isinstance(ins, WriteBuf):
        if granularity == "write":
            return [(errno, j) for j in range(max(1, data_bytes))]
        return [(errno, progress)]
    if isinstance(ins, (Write, PWrite)):
        if granularity == "write":
            return [(errno, j) for j in range(data_bytes)]
        return [(errno, progress)] if data_bytes else []
    return [(errno, 0)]


# ------------------------------------------------------------ control flow


def holds(cond: Cond, m: Control) -> V:
    """A branch condition on the process's local state.  A missing file's
    size (-1) compares as unequal and not greater."""
    if isinstance(cond, Failed):
        return m.failed(cond.errnos)
    if isinstance(cond, SizeIs):
        size, n = m.size_of(cond.reg), length(m, cond.n)
        if cond.op == "==":
            return size == n
        if cond.op == "!=":
            return size != n
        if cond.op == ">":
            return size > n
        raise ProgramError(f"unknown comparison {cond.op!r}")
    if isinstance(cond, Invalid):
        return m.not_(m.valid(cond.reg, m.payload_len(cond.payload)))
    raise ProgramError(f"unknown condition {cond!r}")


def settle(program: Program, pc: int, m: Control, fuel: int | None = None) -> None:
    """Run local control flow from ``pc`` up to the next operation:
    branches, gotos, local operations and the return.  Invisible to other
    processes, so it takes no step of its own."""
    code, targets = program.code, program.targets
    fuel = len(code) + 1 if fuel is None else fuel
    if fuel == 0:
        raise ProgramError(f"{program.name}: a loop with no operation in it at pc {pc}")
    ins = code[pc]
    if isinstance(ins, If):
        m.branch(holds(ins.cond, m), lambda: settle(program, targets[pc], m, fuel - 1),
                 lambda: settle(program, pc + 1, m, fuel - 1))
    elif isinstance(ins, Goto):
        settle(program, targets[pc], m, fuel - 1)
    elif isinstance(ins, Return):
        m.finish(Status(ins.outcome.value), ins.value if ins.outcome is Outcome.HIT else None)
    elif OPS[type(ins)].local:
        m.run_op(ins)
        settle(program, pc + 1, m, fuel - 1)
    else:
        m.stop_at(pc)


def step(program: Program, pc: int, m: Control) -> None:
    """A process at operation ``pc`` takes one step: the operation (or one
    byte of it), a reader's first step noted against the first
    publication, then local control flow up to its next operation."""
    m.run_op(program.code[pc])
    if program.role is Role.READER:
        after = m.ite(m.published(), Began.AFTER_PUBLICATION, Began.BEFORE_PUBLICATION)
        m.set_began(m.ite(m.began() == Began.NOT_YET, after, m.began()))
    m.after_op(lambda: settle(program, pc + 1, m))


# ------------------------------------------------------------ probing


class _Refused(Exception):
    """A check before the fault point holds: the kernel refuses the call."""


class _Reached(Exception):
    """The fault point was reached (with or without effects before it)."""

    def __init__(self, after_effects: bool) -> None:
        super().__init__(after_effects)
        self.after_effects = after_effects


def probe(ins: Instr, m: Dom) -> str:
    """Where an injected fault would strike ``ins`` on a state ``m`` can
    only observe (the OS interpreter's view of real descriptors and names):
    ``"refused"`` when an earlier check holds (the kernel must answer),
    ``"before"`` when it strikes before any effect (the call is not made),
    ``"after"`` when effects come first (the call is made - a write with
    the bytes that land - and its success is reported as the fault).

    ``m`` must raise through :meth:`Dom.check` and :meth:`Dom.fault_point`
    as :func:`probe_check` and :func:`probe_fault_point` do."""
    try:
        OPS[type(ins)].run(ins, m)
    except _Refused:
        return "refused"
    except _Reached as r:
        return "after" if r.after_effects else "before"
    return "none"


def probe_check(cond: bool) -> None:
    """:meth:`Dom.check` for a probing domain."""
    if cond:
        raise _Refused()


def probe_fault_point(after_effects: bool) -> None:
    """:meth:`Dom.fault_point` for a probing domain."""
    raise _Reached(after_effects)
