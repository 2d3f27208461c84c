"""The exceptions of the public entry API: one small class per failure.

Each message says what was wrong and what to do.  All derive from
:class:`IdemwriteError`; the ones about bad arguments are also ValueErrors,
so ``except ValueError`` still works for callers that do not know this
package.  A failed *read* is never an exception: it is a miss (None).
"""

from __future__ import annotations

import errno as errno_mod
import os


class IdemwriteError(Exception):
    """Base class of every error the entry API raises."""


class UnknownProtocolError(IdemwriteError, ValueError):
    """No writer protocol of that name is in the catalogue."""

    def __init__(self, name: str, known: tuple[str, ...]) -> None:
        super().__init__(name)
        self.name, self.known = name, known

    def __reduce__(self) -> tuple[type, tuple[object, ...]]:  # picklable across processes
        return type(self), (self.name, self.known)

    def __str__(self) -> str:
        return f"unknown protocol {self.name!r}; use one of: {', '.join(self.known)}"


class NotAWriterError(IdemwriteError, ValueError):
    """The protocol named is a reader: it looks entries up, it cannot write one."""

    def __init__(self, name: str, writers: tuple[str, ...]) -> None:
        super().__init__(name)
        self.name, self.writers = name, writers

    def __reduce__(self) -> tuple[type, tuple[object, ...]]:
        return type(self), (self.name, self.writers)

    def __str__(self) -> str:
        return (f"{self.name!r} is a reader protocol and cannot write an entry; use read_entry to read, "
                f"or write with one of: {', '.join(self.writers)}")


class UnsupportedProtocolError(IdemwriteError, ValueError):
    """The writer protocol needs more than one file or payload (an output
    file beside the entry), which write_entry does not provide."""

    def __init__(self, name: str, needs: str, usable: tuple[str, ...]) -> None:
        super().__init__(name)
        self.name, self.needs, self.usable = name, needs, usable

    def __reduce__(self) -> tuple[type, tuple[object, ...]]:
        return type(self), (self.name, self.needs, self.usable)

    def __str__(self) -> str:
        return (f"protocol {self.name!r} {self.needs}; write_entry writes one entry file, "
                f"so use one of: {', '.join(self.usable)} (or reference.osrun.run for the full program)")


class BadSizeError(IdemwriteError, ValueError):
    """read_entry was asked for a negative size."""

    def __init__(self, size: int) -> None:
        super().__init__(size)
        self.size = size

    def __reduce__(self) -> tuple[type, tuple[object, ...]]:
        return type(self), (self.size,)

    def __str__(self) -> str:
        return f"entry size must be >= 0, not {self.size}: pass the exact length every writer of the entry writes"


_HINTS = {
    "ENOSPC": "free some space on the file system",
    "EDQUOT": "free some space or raise the disk quota",
    "EFBIG": "the file would exceed the process's file-size limit (ulimit -f) or the file system's largest file",
    "EACCES": "check the permissions of the file and of its directory",
    "EPERM": "check the permissions of the file and of its directory, and whether either is immutable (lsattr)",
    "EROFS": "the file system is read-only: write the entry somewhere writable",
    "ENOENT": "create the directory first",
    "ENOTDIR": "a component of the path is not a directory: fix the path",
    "EISDIR": "the path is a directory: give a file path",
    "EIO": "the device reported an I/O error: check it, then write again",
}


class WriteError(IdemwriteError, OSError):
    """The write protocol ran its error path: the entry was not published.

    An OSError, so ``except OSError`` and ``e.errno == errno.ENOSPC`` work
    as for any failed write:

    errno:       the failing call's errno as a number (0 if unknown);
    errno_name:  the same by name (``"ENOSPC"``), as the model spells it;
    strerror:    the system's text for it;
    filename:    the entry's real path (also ``path``);
    op:          the failing operation, as the protocol's source text;
    file:        the file that call touched (a temp file, or the entry);
    protocol:    the catalogue protocol that ran.
    """

    def __init__(self, path: str, protocol: str, errno: str, op: str, file: str | None = None) -> None:
        code = int(getattr(errno_mod, errno, 0))
        super().__init__(code, os.strerror(code) if code else "unknown error", path)
        self.path, self.protocol, self.errno_name, self.op, self.file = path, protocol, errno, op, file

    def __reduce__(self) -> tuple[type, tuple[object, ...]]:
        return type(self), (self.path, self.protocol, self.errno_name, self.op, self.file)

    def __str__(self) -> str:
        where = f" on {self.file}" if self.file and self.file != self.path else ""
        hint = _HINTS.get(self.errno_name, "fix the cause, then write again")
        return (f"writing entry {self.path} ({self.protocol}) failed: {self.op}{where} returned {self.errno_name} "
                f"({self.strerror}); the entry may now be missing or incomplete, which read_entry reports as a miss; {hint}")



class UnsafePathError(IdemwriteError, OSError):
    """A cache file about to be written is a symbolic link or a special file
    (a FIFO, a device, a socket), or sits in a subdirectory that is a link.

    A cache directory may be shared by the users of one machine, and any of
    them may have put such a file there: writing through a link would
    change a file outside the directory (another user's, with the writer's
    rights), and opening a FIFO to write would block.  Nothing was written.

    errno: ELOOP for a link (what ``open`` with O_NOFOLLOW returns), ENXIO
    for a special file; ``what`` says which, in words.
    """

    def __init__(self, path: str, what: str) -> None:
        code = errno_mod.ELOOP if what.startswith("a symbolic link") else errno_mod.ENXIO
        super().__init__(code, os.strerror(code), path)
        self.path, self.what = path, what

    def __reduce__(self) -> tuple[type, tuple[object, ...]]:
        return type(self), (self.path, self.what)

    def __str__(self) -> str:
        return (f"refusing to write {self.path}: it is {self.what}. A cache directory shared with other users may "
                f"hold links and special files they made; writing through a link would change a file outside "
                f"the cache, and a FIFO would block. Remove it (`idemwrite cache verify DIR` lists every such "
                f"file), then write again")
