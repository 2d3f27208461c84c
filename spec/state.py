"""The model's state, typed: process status, registers, processes, worlds.

Every value here is an immutable tuple (NamedTuple or a str/int enum), so
states hash, compare and sort fast: the explorer stores hundreds of
thousands of them.  The enums are ``str``/``int`` subclasses for the same
reason (their hash and equality are the C ones) and so that ``"ok"`` in a
JSON file and ``Status.OK`` are the same value.

Modelled: what one process holds (program counter, last errno, the bytes of
a multi-step write already done, registers, private names) and the shared
file system (``spec.fs.FileSystem``).  Not modelled here: what the process
runs (``spec.system.Process``) - a process refers to it by ``kind``, an
index into the system's distinct programs-with-payloads.
"""

from __future__ import annotations

import enum
from typing import NamedTuple, Union

from .fs import FileSystem


class Status(enum.StrEnum):
    """How far a process has got: running, or how it ended."""

    RUNNING = "run"
    OK = "ok"  # a writer published
    FAIL = "fail"  # a writer gave up
    HIT = "hit"  # a reader accepted what it read
    MISS = "miss"  # a reader found nothing it accepts
    SIGBUS = "sigbus"  # killed by a mapped read past the end of file
    CRASHED = "crashed"  # stopped by a power loss


class Began(enum.IntEnum):
    """When a reader took its first step, relative to the first publication
    (what ``reader-after-publication-hits`` speaks about)."""

    NOT_YET = 0
    BEFORE_PUBLICATION = 1
    AFTER_PUBLICATION = 2


class Crash(enum.IntEnum):
    """Whether the machine lost power, and whether some writer had
    published by then."""

    NONE = 0
    BEFORE_PUBLICATION = 1
    AFTER_PUBLICATION = 2


class RegKind(enum.StrEnum):
    """What a register holds.  Each operation declares the kind of every
    register it reads or sets (``spec.semantics``)."""

    FD = "fd"  # an open file description
    SIZE = "size"  # a size from stat/fstat
    BUF = "buf"  # bytes read
    MAP = "map"  # a mapping


# Mode bits of a descriptor: what it was opened for.
READ_BIT, WRITE_BIT = 1, 2


class Desc(NamedTuple):
    """An open file description: its inode, offset and mode bits, whether
    it was opened with O_APPEND, and the flock it holds (0 none, 1 shared,
    -1 exclusive)."""

    ino: int
    off: int
    mode: int
    append: bool = False
    lock: int = 0


class Size(NamedTuple):
    """A size register: bytes, or -1 (no such file, or a failed fstat)."""

    n: int


class Buf(NamedTuple):
    """A buffer register: the bytes a read or a mapped read returned."""

    data: bytes


class Mapped(NamedTuple):
    """A mapping: the inode it maps and its length."""

    ino: int
    length: int


# A register holds one of these, or () while unset.
Reg = Union[Desc, Size, Buf, Mapped, tuple[()]]
UNSET: tuple[()] = ()


class Proc(NamedTuple):
    """One process's local state.

    kind:     index of what it runs (program and payloads) in the system.
    pc:       index of its next instruction; len(code) once it returned.
    status:   running, or how it ended.
    last:     errno of its last operation, "" for success.
    progress: bytes of the current write already done (byte granularity).
    regs:     register values, in the program's register order.
    private:  its private names, sorted (name, inode) pairs.
    began:    when a reader took its first step.
    """

    kind: int
    pc: int
    status: Status
    last: str
    progress: int
    regs: tuple[Reg, ...]
    private: tuple[tuple[str, int], ...]
    began: Began


class World(NamedTuple):
    """Everything: the file system, the processes, the faults injected so
    far, and whether the machine crashed."""

    fs: FileSystem
    procs: tuple[Proc, ...]
    faults: int
    crashed: Crash = Crash.NONE


def published(world: World) -> bool:
    """Has some writer returned success?  (Only writers end OK.)"""
    return any(q.status == Status.OK for q in world.procs)
