"""The real call behind each operation: one binding per operation, in one table.

:data:`BINDINGS` maps each operation type of ``spec.ops`` to a *binder*: given
the instruction and an :class:`Operands` (where the interpreter keeps the
operands), it returns the call as a :class:`Bound`: the function that makes
the system call and returns what it returns - or raises OSError with the
kernel's errno - and its arguments, read from the process's environment
``env``.  The production runner (``reference.osrun``)
and the step-wise world (``reference.osworld``) both take their calls from
here; they differ only in their operands (a step of a byte-granular write
writes the bytes the semantics say land in that step, not the whole data).

A binding says *which* call an operation is and what it returns, nothing
else: which errors the kernel may answer, where a fault strikes, and which
register the result goes to come from ``spec.semantics`` (see
``reference.outcomes``).

Registers hold real values in ``env``: a descriptor is an int (-1 when
unset, so that the kernel itself answers EBADF), a size an int
(:data:`NO_SIZE` when unset: it reads as -1, as ``Dom.size_of`` says), a
buffer bytes (None when unset), a mapping a ``reference.mapping.Region``
(None when unset).
"""

from __future__ import annotations

import errno as errno_mod
import fcntl
import functools
import os
from typing import Any, Callable, NamedTuple, Protocol, Union

from spec.ops import (
    Chtimes,
    Close,
    Data,
    DeleteObject,
    Fdatasync,
    Flock,
    Fstat,
    Fsync,
    Ftruncate,
    GetObject,
    HeadObject,
    Length,
    Link,
    LockOp,
    MapRead,
    Mkdir,
    Mmap,
    Open,
    OpenFlags,
    Path,
    ProgramError,
    PutObject,
    PWrite,
    Read,
    Readlink,
    Rename,
    Stat,
    Symlink,
    Unlink,
    Write,
    WriteBuf,
)
from spec.state import RegKind

from .mapping import Region, map_file, touch, unmap

# A process's environment: its registers, real paths and payloads (and the
# interpreter's own slots), by slot.
Env = list[Any]
Get = Callable[[Env], Any]
Call = Callable[[Env], object]


def errno_name(e: OSError) -> str:
    """The errno of ``e`` by name (``"ENOENT"``), as the model spells it."""
    return errno_mod.errorcode.get(e.errno or 0, f"E{e.errno}")


def os_flags(flags: OpenFlags) -> int:
    """The open(2) flags for a model ``OpenFlags`` (plus O_CLOEXEC, as Go
    always adds: a descriptor never leaks into a child)."""
    rw = flags & (OpenFlags.READ | OpenFlags.WRITE)
    n = {OpenFlags.READ: os.O_RDONLY, OpenFlags.WRITE: os.O_WRONLY}.get(rw, os.O_RDWR)
    if OpenFlags.CREAT in flags:
        n |= os.O_CREAT
    if OpenFlags.TRUNC in flags:
        n |= os.O_TRUNC
    if OpenFlags.EXCL in flags:
        n |= os.O_EXCL
    if OpenFlags.APPEND in flags:
        n |= os.O_APPEND
    if OpenFlags.NOFOLLOW in flags:
        n |= os.O_NOFOLLOW
    return n | os.O_CLOEXEC


def read_full(fd: int, n: int) -> bytes:
    """read until ``n`` bytes or end of file (Go's io.ReadFull; the model's
    one Read)."""
    if n <= 0:
        os.read(fd, 0)  # the kernel still checks the descriptor (EBADF), as the model does
        return b""
    parts: list[bytes] = []
    left = n
    while left > 0:
        got = os.read(fd, left)
        if not got:
            break
        parts.append(got)
        left -= len(got)
    return b"".join(parts)


def write_all(fd: int, data: bytes) -> None:
    """write all of ``data``, going on after a short write as Go's
    File.Write does.  An empty write still asks the kernel (EBADF)."""
    n = os.write(fd, data)
    while n < len(data):
        data = data[n:]
        n = os.write(fd, data)


def pwrite_all(fd: int, data: bytes, at: int) -> None:
    """pwrite all of ``data`` at offset ``at`` (the descriptor's offset
    stays); an empty pwrite still asks the kernel (EBADF, EINVAL)."""
    done = os.pwrite(fd, data, at)
    while done < len(data):
        done += os.pwrite(fd, data[done:], at + done)


def _ebadf() -> OSError:
    return OSError(errno_mod.EBADF, os.strerror(errno_mod.EBADF))


def fsync(fd: int) -> None:
    """os.fsync, except that an unset descriptor (-1) gets the kernel's
    EBADF rather than Python's ValueError (os.fsync checks before the call)."""
    if fd < 0:
        raise _ebadf()
    os.fsync(fd)


def fdatasync(fd: int) -> None:
    """os.fdatasync, with the kernel's EBADF for -1 (as :func:`fsync`)."""
    if fd < 0:
        raise _ebadf()
    os.fdatasync(fd)


def flock(fd: int, op: int) -> None:
    """fcntl.flock, with the kernel's EBADF for -1 (Python refuses a
    negative descriptor before the call).  With LOCK_NB a conflict is
    EWOULDBLOCK (:class:`BlockingIOError`); without it the call waits."""
    if fd < 0:
        raise _ebadf()
    fcntl.flock(fd, op)


# flock's operation for each LockOp.
LOCK_OPS = {LockOp.SHARED: fcntl.LOCK_SH, LockOp.EXCLUSIVE: fcntl.LOCK_EX, LockOp.UNLOCK: fcntl.LOCK_UN}


def held_lock(fd: int) -> int:
    """The flock the open description of ``fd`` holds, as the model spells
    it: 0 none, 1 shared, -1 exclusive (its ``lock:`` lines in
    /proc/self/fdinfo, Linux 4.14 and later)."""
    with open(f"/proc/self/fdinfo/{fd}", "rb") as f:
        for line in f:
            if line.startswith(b"lock:") and b"FLOCK" in line:
                return -1 if b" WRITE " in line else 1
    return 0


def flock_would_wait(fd: int, op: int) -> bool:
    """Would flock(fd, op) wait?  Asked of the kernel: the request is made
    with LOCK_NB and what the description held is put back.  A request
    the kernel answers EWOULDBLOCK after dropping the description's own
    lock (a conversion: fs/locks.c drops the old lock before it looks for
    conflicts) changed something, so it does not wait: it is a step."""
    if fd < 0 or op == fcntl.LOCK_UN:
        return False
    before = held_lock(fd)
    try:
        fcntl.flock(fd, op | fcntl.LOCK_NB)
    except BlockingIOError:
        if held_lock(fd) == before:
            return True
    except OSError:
        return False  # another error: the step fails with it
    # Put back what it held (no other process runs in between: the
    # description's own lock, or none, is always free to take back).
    back = {0: fcntl.LOCK_UN, 1: fcntl.LOCK_SH, -1: fcntl.LOCK_EX}[before]
    fcntl.flock(fd, back | fcntl.LOCK_NB)
    return False


def link(old: str, new: str) -> None:
    """link(2): a symlink ``old`` is linked itself (linkat without
    AT_SYMLINK_FOLLOW; said outright, as os.link's default leaves it to
    the platform's link())."""
    os.link(old, new, follow_symlinks=False)


def mkdir(path: str) -> None:
    os.mkdir(path, 0o777)


def link_text(target: str, link: str) -> str:
    """What symlink ``link`` (a model name) holds to point at ``target``
    (a model name): the target relative to the link's directory, so the
    tree can move."""
    return os.path.relpath(target, os.path.dirname(link) or ".")


def symlink(text: str, path: str) -> None:
    os.symlink(text, path)


def readlink(path: str, name: str) -> bytes:
    """readlink(2) of symlink ``path`` (model name ``name``): the target as
    the model names it, relative to the root (the link holds it relative
    to its own directory, :func:`link_text`)."""
    text = os.readlink(path)
    return os.fsencode(os.path.normpath(os.path.join(os.path.dirname(name), text)))


AT_FDCWD, RENAME_NOREPLACE = -100, 1


@functools.cache
def _renameat2() -> Any:
    """The C library's renameat2 (glibc 2.28), typed; loaded on first use."""
    import ctypes

    fn = ctypes.CDLL(None, use_errno=True).renameat2
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return fn


def rename_noreplace(src: str, dst: str) -> None:
    """renameat2(AT_FDCWD, src, AT_FDCWD, dst, RENAME_NOREPLACE): EEXIST
    from the kernel when ``dst`` exists (Python has no binding)."""
    if _renameat2()(AT_FDCWD, os.fsencode(src), AT_FDCWD, os.fsencode(dst), RENAME_NOREPLACE) != 0:
        import ctypes

        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e), src, None, dst)


def close_quietly(fd: int) -> None:
    try:
        os.close(fd)
    except OSError:
        pass


class RemoteOperationError(ProgramError):
    """The program makes an object-store request (or writes a GET's body),
    which the OS interpreter does not run: it has only the local kernel to
    ask.  The model, the solver and SPIN check such programs; the real S3
    client is the GOCACHEPROG server's ``--remote`` tier."""


def _remote(ins: Any, o: Operands) -> Bound:
    raise RemoteOperationError(
        f"{ins}: the OS interpreter runs file-system calls only, not object-store requests or a GET's body; "
        "check this program with the explorer, BMC or SPIN (idemwrite check / trace / prove)")


class Unheld(OSError):
    """The call needs a register that is unset and has no value the kernel
    could be asked about (a mapping never made): the interpreter answers
    with the semantics' own refusal (``reference.outcomes``)."""


def touch_mapping(region: Region | None) -> bytes:
    """Touch every byte of a mapping (``reference.mapping.touch``)."""
    if region is None:
        raise Unheld()
    return touch(region)


# ------------------------------------------------------------ registers


class _NoSize(int):
    """The value of an unset size register: -1 to every reader, as
    ``Dom.size_of`` says, but told apart from a size of -1 that a failed
    stat set (the model's ``UNSET`` and ``Size(-1)`` differ)."""


NO_SIZE = _NoSize(-1)
UNSET: dict[RegKind, Any] = {RegKind.FD: -1, RegKind.SIZE: NO_SIZE, RegKind.BUF: None, RegKind.MAP: None}


def is_set(kind: RegKind, value: object) -> bool:
    """Does a register of ``kind`` hold ``value`` (not its unset value)?"""
    return value != -1 if kind is RegKind.FD else value is not UNSET[kind]


def release(kind: RegKind, value: Any) -> None:
    """What exit does to a register: close a descriptor, unmap a mapping."""
    if kind is RegKind.FD and value != -1:
        close_quietly(value)
    elif kind is RegKind.MAP and value is not None:
        unmap(value)


# ------------------------------------------------------------ the table


class Slot(NamedTuple):
    """An argument read from slot ``i`` of the environment."""

    i: int


class Const(NamedTuple):
    """An argument known when compiling."""

    value: Any


class Len(NamedTuple):
    """An argument: the length of slot ``i``'s value, plus ``delta``."""

    i: int
    delta: int = 0


# An argument: a slot, a constant, a length, or a function of the environment.
Arg = Union[Slot, Const, Len, Get]


class Bound(NamedTuple):
    """An operation's call: ``fn`` applied to ``args``.  Data, so the
    runner can fuse a call into its step (``reference.osrun``) while the
    world calls it through :func:`closure`."""

    fn: Callable[..., object]
    args: tuple[Arg, ...]


def getter_of(arg: Arg) -> Get:
    """The function of the environment that gives ``arg``."""
    if isinstance(arg, Slot):
        i = arg.i
        return lambda env: env[i]
    if isinstance(arg, Const):
        v = arg.value
        return lambda env: v
    if isinstance(arg, Len):
        j, delta = arg
        return lambda env: len(env[j]) + delta
    return arg


def closure(b: Bound) -> Call:
    """The call as one function of the environment."""
    fn, gets = b.fn, tuple(getter_of(a) for a in b.args)
    return lambda env: fn(*[g(env) for g in gets])


class Operands(Protocol):
    """Where an interpreter keeps an instruction's operands."""

    def reg(self, name: str) -> int:
        """The slot of register ``name``."""

    def path(self, path: Path) -> int:
        """The slot of ``path``'s real name."""

    def data(self, data: Data) -> Arg:
        """The bytes a write writes (in this call)."""

    def offset(self, ins: PWrite) -> Arg:
        """Where a pwrite writes (in this call)."""

    def length(self, n: Length) -> Arg:
        """A length's value."""

    def lock(self, op: LockOp) -> Arg:
        """flock's operation argument (the step-wise world adds LOCK_NB:
        there a conflict is a process that is not enabled)."""


def stat_size(path: str) -> int:
    return os.stat(path).st_size


def fstat_size(fd: int) -> int:
    return os.fstat(fd).st_size


def _open(ins: Open, o: Operands) -> Bound:
    return Bound(os.open, (Slot(o.path(ins.path)), Const(os_flags(ins.flags)), Const(0o666)))


def _write(ins: Write, o: Operands) -> Bound:
    return Bound(write_all, (Slot(o.reg(ins.fd)), o.data(ins.data)))


def _pwrite(ins: PWrite, o: Operands) -> Bound:
    return Bound(pwrite_all, (Slot(o.reg(ins.fd)), o.data(ins.data), o.offset(ins)))


def _read(ins: Read, o: Operands) -> Bound:
    return Bound(read_full, (Slot(o.reg(ins.fd)), o.length(ins.n)))


def _ftruncate(ins: Ftruncate, o: Operands) -> Bound:
    return Bound(os.ftruncate, (Slot(o.reg(ins.fd)), o.length(ins.n)))


def _fsync(ins: Fsync, o: Operands) -> Bound:
    return Bound(fsync, (Slot(o.reg(ins.fd)),))


def _close(ins: Close, o: Operands) -> Bound:
    return Bound(os.close, (Slot(o.reg(ins.fd)),))


def _stat(ins: Stat, o: Operands) -> Bound:
    return Bound(stat_size, (Slot(o.path(ins.path)),))


def _fstat(ins: Fstat, o: Operands) -> Bound:
    return Bound(fstat_size, (Slot(o.reg(ins.fd)),))


def _unlink(ins: Unlink, o: Operands) -> Bound:
    return Bound(os.unlink, (Slot(o.path(ins.path)),))


def _rename(ins: Rename, o: Operands) -> Bound:
    return Bound(rename_noreplace if ins.noreplace else os.rename, (Slot(o.path(ins.src)), Slot(o.path(ins.dst))))


def _fdatasync(ins: Fdatasync, o: Operands) -> Bound:
    return Bound(fdatasync, (Slot(o.reg(ins.fd)),))


def _link(ins: Link, o: Operands) -> Bound:
    return Bound(link, (Slot(o.path(ins.old)), Slot(o.path(ins.new))))


def _mkdir(ins: Mkdir, o: Operands) -> Bound:
    return Bound(mkdir, (Slot(o.path(ins.path)),))


def _symlink(ins: Symlink, o: Operands) -> Bound:
    return Bound(symlink, (Const(link_text(ins.target.name, ins.path.name)), Slot(o.path(ins.path))))


def _readlink(ins: Readlink, o: Operands) -> Bound:
    return Bound(readlink, (Slot(o.path(ins.path)), Const(ins.path.name)))


def _flock(ins: Flock, o: Operands) -> Bound:
    return Bound(flock, (Slot(o.reg(ins.fd)), o.lock(ins.op)))


def _chtimes(ins: Chtimes, o: Operands) -> Bound:
    return Bound(os.utime, (Slot(o.path(ins.path)),))


def _mmap(ins: Mmap, o: Operands) -> Bound:
    return Bound(map_file, (Slot(o.reg(ins.fd)), Slot(o.reg(ins.size))))


def _map_read(ins: MapRead, o: Operands) -> Bound:
    return Bound(touch_mapping, (Slot(o.reg(ins.map)),))


Binder = Callable[[Any, Operands], Bound]

BINDINGS: dict[type, Binder] = {
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
    Fdatasync: _fdatasync,
    Link: _link,
    Mkdir: _mkdir,
    Symlink: _symlink,
    Readlink: _readlink,
    Flock: _flock,
    Chtimes: _chtimes,
    Mmap: _mmap,
    MapRead: _map_read,
    # Refused when the program is compiled, before any call is made.
    PutObject: _remote,
    GetObject: _remote,
    HeadObject: _remote,
    DeleteObject: _remote,
    WriteBuf: _remote,
}


def _flock_waits(ins: Flock, o: Operands) -> Bound:
    return Bound(flock_would_wait, (Slot(o.reg(ins.fd)), Const(LOCK_OPS[ins.op])))


# For the operations that can wait (the semantics' ``m.block``), the
# question the step-wise world asks the kernel: would the call wait now?
# (The production runner just makes the call, and it waits.)
WAITS: dict[type, Binder] = {Flock: _flock_waits}
