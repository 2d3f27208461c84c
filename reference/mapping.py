"""Mapped reads on the real kernel: mmap through ctypes, touched in a child.

``Mmap`` calls the C library's ``mmap`` through ctypes with the size the
program's size register holds: Python's ``mmap`` module refuses to map past
end of file, which the model - and C, and Go - allow.  ``MapRead`` touches
the mapping in a forked child, which copies the bytes back through a pipe:
when the kernel kills the child with SIGBUS (a page wholly past the file's
*current* end), the toucher reports it and this Python process lives on.
So SIGBUS is observed from the real kernel, not predicted by re-implementing
the model's page rule.

A :class:`Region` also holds a duplicate of the descriptor it was mapped
from: the model's mapping holds its inode, and the duplicate is how a
snapshot reads that inode's bytes (``reference.osworld``).

Linux-specific (``/proc``, fork, SIGBUS semantics).
"""

from __future__ import annotations

import errno as errno_mod
import faulthandler
import functools
import mmap as mmap_mod
import os
import signal
from typing import Any, NamedTuple


class Region(NamedTuple):
    """A read-only shared mapping: its address, its length, and a duplicate
    of the descriptor it maps (held as long as the mapping)."""

    addr: int
    length: int
    dup: int


class Killed(Exception):
    """Touching the mapping killed the toucher with ``signum`` (SIGBUS)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


@functools.cache
def _libc() -> tuple[Any, Any, int | None]:
    """The C library's mmap and munmap, typed, and MAP_FAILED; loaded on
    first use, so that writers never pay for it at import."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    c_mmap, c_munmap = libc.mmap, libc.munmap
    c_mmap.restype = ctypes.c_void_p
    c_mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
    c_munmap.restype = ctypes.c_int
    c_munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    return c_mmap, c_munmap, ctypes.c_void_p(-1).value


def map_file(fd: int, size: int) -> Region:
    """mmap(fd, 0, size), read-only and shared.  Raises OSError with the
    kernel's errno.

    As Go's ``syscall.Mmap`` and ``mmap.Open`` do: a negative size is
    EINVAL (mmap's length is a size_t: there is no call to make), and size
    0 maps nothing (Linux would answer EINVAL)."""
    dup = os.dup(fd)  # EBADF here is the kernel's answer for a bad descriptor
    if size < 0:
        os.close(dup)
        raise OSError(errno_mod.EINVAL, os.strerror(errno_mod.EINVAL))
    if size == 0:
        return Region(0, 0, dup)
    c_mmap, _, map_failed = _libc()
    addr = c_mmap(None, size, mmap_mod.PROT_READ, mmap_mod.MAP_SHARED, fd, 0)
    if addr is None or addr == map_failed:
        import ctypes

        err = ctypes.get_errno()
        os.close(dup)
        raise OSError(err, os.strerror(err))
    return Region(int(addr), size, dup)


def unmap(region: Region) -> None:
    """Release a mapping made by :func:`map_file` and its duplicate."""
    if region.length:
        _libc()[1](region.addr, region.length)
    try:
        os.close(region.dup)
    except OSError:
        pass


def touch(region: Region) -> bytes:
    """Touch every mapped byte and return them.  Raises :class:`Killed`
    when the kernel delivers SIGBUS.  The touch runs in a forked child, so
    that SIGBUS kills the child, not this process: the answer is the real
    kernel's."""
    if region.length == 0:
        return b""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: touch, send, and leave without cleanup
        try:
            os.close(r)
            faulthandler.disable()  # pytest's handler would print a traceback
            signal.signal(signal.SIGBUS, signal.SIG_DFL)
            import ctypes

            left = memoryview(ctypes.string_at(region.addr, region.length))
            while left:
                left = left[os.write(w, left):]
            os._exit(0)
        except BaseException:
            os._exit(70)
    os.close(w)
    try:
        data = _drain(r)
    finally:
        os.close(r)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGBUS:
        raise Killed(signal.SIGBUS)
    if not (os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0) or len(data) != region.length:
        raise RuntimeError(f"mapped-read child ended with status {status:#x} after {len(data)} of {region.length} bytes")
    return data


def _drain(fd: int) -> bytes:
    """Everything a pipe delivers until its writer closes it."""
    parts: list[bytes] = []
    while chunk := os.read(fd, 65536):
        parts.append(chunk)
    return b"".join(parts)
