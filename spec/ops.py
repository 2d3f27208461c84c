"""The instruction language in which every protocol is written once.

A protocol is a :class:`Program`: a tuple of instructions over named file
descriptors and registers, with labelled branches.  Nothing here executes
anything; these are plain, frozen, hashable values.  What each operation
means is stated once, in ``spec.semantics``, and run by every interpreter:
the model (``spec.machine``), the solver (``proofs.symbolic``), the Promela
translator (``proofs.promela``) and the real OS (``reference``).

What a write writes is not a literal: it is a slice of one of the process's
*payloads* (``"entry"``, ``"output"``), so one program serves every entry
length and every writer's data.  Lengths (``ftruncate(len(entry))``) are
symbolic for the same reason.

Modelled: the file-system calls a cache writer or reader makes on one machine
(open with O_CREAT/O_EXCL/O_TRUNC/O_APPEND/O_NOFOLLOW, write, read, ftruncate,
fstat, mmap, fsync and fdatasync, close, rename and renameat2's
RENAME_NOREPLACE, unlink, link, mkdir and nested paths, symlink and readlink,
flock), and the requests it makes to a shared object store (S3: PUT, GET,
HEAD, DELETE of whole objects, conditional PUTs).
Not modelled: permissions, renaming or removing directories, open
descriptors on directories, signals other than SIGBUS from a mapped read,
and the data's meaning beyond "equals a writer's payload".
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Union


class OpenFlags(enum.Flag):
    """open(2) flags that the protocols use; O_RDONLY is READ alone."""

    READ = enum.auto()
    WRITE = enum.auto()
    CREAT = enum.auto()
    TRUNC = enum.auto()
    EXCL = enum.auto()
    APPEND = enum.auto()  # every write lands at the end of file, atomically
    NOFOLLOW = enum.auto()  # a symlink as the last component is ELOOP

    def render(self) -> str:
        """The flags as a C programmer writes them, e.g. ``O_WRONLY|O_CREAT``."""
        rw = {
            OpenFlags.READ: "O_RDONLY",
            OpenFlags.WRITE: "O_WRONLY",
            OpenFlags.READ | OpenFlags.WRITE: "O_RDWR",
        }[self & (OpenFlags.READ | OpenFlags.WRITE)]
        extra = [f"O_{f.name}" for f in (OpenFlags.CREAT, OpenFlags.TRUNC, OpenFlags.EXCL, OpenFlags.APPEND,
                                           OpenFlags.NOFOLLOW) if f in self]
        return "|".join([rw, *extra])


O_RDONLY = OpenFlags.READ
O_WRONLY = OpenFlags.WRITE
O_RDWR = OpenFlags.READ | OpenFlags.WRITE
O_CREAT = OpenFlags.CREAT
O_TRUNC = OpenFlags.TRUNC
O_EXCL = OpenFlags.EXCL
O_APPEND = OpenFlags.APPEND
O_NOFOLLOW = OpenFlags.NOFOLLOW


@dataclass(frozen=True, order=True)
class Path:
    """A file name, possibly under directories (``objects/ab/cd``).
    ``private`` names are unique to the process using them (a temp file
    ``entry.tmp.<pid>``): two processes never share one.  The directories
    above a name are shared."""

    name: str
    private: bool = False

    def __post_init__(self) -> None:
        if not self.name or self.name.startswith("/") or "" in self.name.split("/") \
                or any(part in (".", "..") for part in self.name.split("/")):
            raise ProgramError(f"bad path {self.name!r}: relative names of one or more parts, no '.' or '..'")

    def __str__(self) -> str:
        return f"{self.name}.<pid>" if self.private else self.name

    def parents(self) -> tuple[str, ...]:
        """The directories above this name, outermost first."""
        parts = self.name.split("/")
        return tuple("/".join(parts[:i]) for i in range(1, len(parts)))


ENTRY = Path("entry")
OUTPUT = Path("output")
TEMP = Path("entry.tmp", private=True)


@dataclass(frozen=True)
class Length:
    """A length in bytes: ``len(payload) + delta``, or a constant when
    ``payload`` is None.  Symbolic so one program serves every length."""

    payload: str | None = "entry"
    delta: int = 0

    def __str__(self) -> str:
        if self.payload is None:
            return str(self.delta)
        base = f"len({self.payload})"
        return base if self.delta == 0 else f"{base}{self.delta:+d}"


@dataclass(frozen=True)
class Data:
    """The bytes ``payload[start:stop]`` of one of the process's payloads
    (Python slice rules, so ``Data(stop=-1)`` is all but the last byte)."""

    payload: str = "entry"
    start: int | None = None
    stop: int | None = None

    def __str__(self) -> str:
        if self.start is None and self.stop is None:
            return self.payload
        a = "" if self.start is None else str(self.start)
        b = "" if self.stop is None else str(self.stop)
        return f"{self.payload}[{a}:{b}]"


# ---------------------------------------------------------------- operations
# Each operation sets the process's last result: "" on success or an errno
# name; branches test that result.


@dataclass(frozen=True)
class Open:
    """open(path, flags, 0666) into descriptor register ``fd``."""

    path: Path
    flags: OpenFlags
    fd: str = "f"

    def __str__(self) -> str:
        return f"{self.fd} = open({self.path}, {self.flags.render()})"


@dataclass(frozen=True)
class Write:
    """write(fd, data) at the descriptor's offset, advancing it."""

    data: Data = Data()
    fd: str = "f"

    def __str__(self) -> str:
        return f"write({self.fd}, {self.data})"


@dataclass(frozen=True)
class PWrite:
    """pwrite(fd, data, offset): write at ``offset``; the descriptor's
    offset does not move."""

    data: Data
    offset: int
    fd: str = "f"

    def __str__(self) -> str:
        return f"pwrite({self.fd}, {self.data}, {self.offset})"


@dataclass(frozen=True)
class Read:
    """read(fd, n) at the offset into buffer register ``into``."""

    n: Length = Length("entry", 1)
    fd: str = "f"
    into: str = "buf"

    def __str__(self) -> str:
        return f"{self.into} = read({self.fd}, {self.n})"


@dataclass(frozen=True)
class Ftruncate:
    """ftruncate(fd, n): shrink to n bytes, or extend with zeros."""

    n: Length = Length("entry")
    fd: str = "f"

    def __str__(self) -> str:
        return f"ftruncate({self.fd}, {self.n})"


@dataclass(frozen=True)
class Fsync:
    """fsync(fd).  Without crashes in the model, only its faults matter."""

    fd: str = "f"

    def __str__(self) -> str:
        return f"fsync({self.fd})"


@dataclass(frozen=True)
class Close:
    """close(fd).  The descriptor is released even when close fails."""

    fd: str = "f"

    def __str__(self) -> str:
        return f"close({self.fd})"


@dataclass(frozen=True)
class Stat:
    """stat(path) into size register ``into`` (-1 when ENOENT)."""

    path: Path
    into: str = "st"

    def __str__(self) -> str:
        return f"{self.into} = stat({self.path})"


@dataclass(frozen=True)
class Fstat:
    """fstat(fd) into size register ``into``."""

    fd: str = "f"
    into: str = "st"

    def __str__(self) -> str:
        return f"{self.into} = fstat({self.fd})"


@dataclass(frozen=True)
class Unlink:
    """unlink(path): the name goes; open descriptors keep the inode."""

    path: Path

    def __str__(self) -> str:
        return f"unlink({self.path})"


@dataclass(frozen=True)
class Rename:
    """rename(src, dst): atomically points ``dst`` at src's inode; with
    ``noreplace`` it is renameat2(RENAME_NOREPLACE): EEXIST if ``dst``
    exists."""

    src: Path
    dst: Path
    noreplace: bool = False

    def __str__(self) -> str:
        if self.noreplace:
            return f"renameat2({self.src}, {self.dst}, RENAME_NOREPLACE)"
        return f"rename({self.src}, {self.dst})"


@dataclass(frozen=True)
class Link:
    """link(old, new): ``new`` names old's inode too (a hard link)."""

    old: Path
    new: Path

    def __str__(self) -> str:
        return f"link({self.old}, {self.new})"


@dataclass(frozen=True)
class Mkdir:
    """mkdir(path, 0777)."""

    path: Path

    def __str__(self) -> str:
        return f"mkdir({self.path})"


@dataclass(frozen=True)
class Symlink:
    """symlink(target, path): ``path`` becomes a symbolic link to ``target``
    (a shared name; opening ``path`` opens it)."""

    target: Path
    path: Path

    def __str__(self) -> str:
        return f"symlink({self.target}, {self.path})"


@dataclass(frozen=True)
class Readlink:
    """readlink(path) into buffer register ``into``: the link's target."""

    path: Path
    into: str = "buf"

    def __str__(self) -> str:
        return f"{self.into} = readlink({self.path})"


class LockOp(enum.Enum):
    """flock's operation."""

    SHARED = "LOCK_SH"
    EXCLUSIVE = "LOCK_EX"
    UNLOCK = "LOCK_UN"


@dataclass(frozen=True)
class Flock:
    """flock(fd, op): take a shared or exclusive lock on the file, waiting
    while another open description holds a conflicting one, or drop it.
    A lock belongs to the descriptor's open description: closing it, or the
    process's exit, drops it."""

    op: LockOp
    fd: str = "f"

    def __str__(self) -> str:
        return f"flock({self.fd}, {self.op.value})"


@dataclass(frozen=True)
class Fdatasync:
    """fdatasync(fd): fsync of the data (the model's durable bytes are data)."""

    fd: str = "f"

    def __str__(self) -> str:
        return f"fdatasync({self.fd})"


@dataclass(frozen=True)
class Chtimes:
    """chtimes(path, now, now).  Times are not modelled, only ENOENT."""

    path: Path

    def __str__(self) -> str:
        return f"chtimes({self.path})"


@dataclass(frozen=True)
class Mmap:
    """mmap(fd, 0, size) into mapping register ``into``, where size is the
    size register ``size`` (Go maps the size its fstat saw)."""

    fd: str = "f"
    size: str = "st"
    into: str = "map"

    def __str__(self) -> str:
        return f"{self.into} = mmap({self.fd}, {self.size})"


@dataclass(frozen=True)
class MapRead:
    """Touch every mapped byte, copying them into ``into``.  As on Linux, a
    byte in a page wholly past the file's *current* end raises SIGBUS (the
    process dies); a byte past the end but inside the last page reads 0."""

    map: str = "map"
    into: str = "buf"

    def __str__(self) -> str:
        return f"{self.into} = {self.map}[:]"


# ---------------------------------------------------------------- the object store
# An S3-compatible store shared by every process (every machine).  Each
# request sets the last result as a file operation does: "" (2xx), ENOENT
# (404), EPRECONDITION (412) or EIO (an error or a timeout).


@dataclass(frozen=True, order=True)
class Key:
    """An object's key, named like a file path (``o/<OutputID>``); the
    bucket and prefix are the store's, not the model's concern."""

    name: str

    def __post_init__(self) -> None:
        if not self.name or self.name.startswith("/") or "" in self.name.split("/") \
                or any(part in (".", "..") for part in self.name.split("/")):
            raise ProgramError(f"bad key {self.name!r}: relative names of one or more parts, no '.' or '..'")

    def __str__(self) -> str:
        return self.name


# The keys of a remote Go cache: the action record (``ac/<ActionID>``,
# the entry's bytes) and the output, addressed by its content
# (``o/<OutputID>``, OutputID = SHA-256 of the output).  One payload per
# key in a run, so a static name stands for the content address.
ACTION_KEY = Key("ac/action-id")
OUTPUT_KEY = Key("o/output-id")


class Precondition(enum.Enum):
    """A PUT's condition header."""

    NONE = ""
    IF_NONE_MATCH = "If-None-Match: *"  # 412 if the key exists
    IF_MATCH = "If-Match"  # 412 unless the key exists with the ETag given


@dataclass(frozen=True)
class PutObject:
    """PUT key <- data: the whole object, atomically; the last writer wins.
    With ``IF_MATCH`` the ETag compared is size register ``etag`` (a HEAD's)."""

    key: Key
    data: Data = Data("output")
    cond: Precondition = Precondition.NONE
    etag: str | None = None

    def __post_init__(self) -> None:
        if (self.cond is Precondition.IF_MATCH) != (self.etag is not None):
            raise ProgramError(f"PUT {self.key}: name an ETag register exactly when the condition is If-Match")

    def __str__(self) -> str:
        if self.cond is Precondition.IF_MATCH:
            return f"PUT {self.key} <- {self.data}  If-Match: {self.etag}"
        return f"PUT {self.key} <- {self.data}" + (f"  {self.cond.value}" if self.cond.value else "")


@dataclass(frozen=True)
class GetObject:
    """GET key into buffer ``into``: the whole object, or (a fault) a body
    cut short, which the client is not told of; ``body`` names the payload
    whose length bounds where a cut may fall."""

    key: Key
    into: str = "buf"
    body: str = "output"

    def __str__(self) -> str:
        return f"{self.into} = GET {self.key}"


@dataclass(frozen=True)
class HeadObject:
    """HEAD key: its size into size register ``into`` (-1 on 404), its
    ETag into size register ``etag`` when named."""

    key: Key
    into: str = "st"
    etag: str | None = None

    def __str__(self) -> str:
        regs = self.into if self.etag is None else f"{self.into}, {self.etag}"
        return f"{regs} = HEAD {self.key}"


@dataclass(frozen=True)
class DeleteObject:
    """DELETE key (a missing key is no error, as on S3)."""

    key: Key

    def __str__(self) -> str:
        return f"DELETE {self.key}"


@dataclass(frozen=True)
class WriteBuf:
    """write(fd, buf): the bytes buffer register ``buf`` holds (a GET's
    body), at the descriptor's offset, advancing it."""

    buf: str = "buf"
    fd: str = "f"

    def __str__(self) -> str:
        return f"write({self.fd}, {self.buf})"


# ---------------------------------------------------------------- control


@dataclass(frozen=True)
class Failed:
    """True when the last operation failed (with one of ``errnos``, or any
    errno when empty)."""

    errnos: frozenset[str] = frozenset()

    def __str__(self) -> str:
        return "err" if not self.errnos else "err in {" + ", ".join(sorted(self.errnos)) + "}"


@dataclass(frozen=True)
class SizeIs:
    """Compare size register ``reg`` with a length: ``op`` is ``==``, ``>``
    or ``!=``.  A missing file (-1) compares as unequal and not greater."""

    op: str
    n: Length = Length("entry")
    reg: str = "st"

    def __str__(self) -> str:
        return f"{self.reg} {self.op} {self.n}"


@dataclass(frozen=True)
class Invalid:
    """True when buffer ``reg`` is not a valid copy of ``payload``: the
    reader's own validation (exact length, no hole of zero bytes).  It
    cannot tell two writers' entries apart, just as Go's parser cannot."""

    payload: str = "entry"
    reg: str = "buf"

    def __str__(self) -> str:
        return f"!valid({self.reg})"


Cond = Union[Failed, SizeIs, Invalid]


@dataclass(frozen=True)
class If:
    """Jump to ``label`` when ``cond`` holds."""

    cond: Cond
    label: str

    def __str__(self) -> str:
        return f"if {self.cond}: goto {self.label}"


@dataclass(frozen=True)
class Goto:
    """Jump to ``label``."""

    label: str

    def __str__(self) -> str:
        return f"goto {self.label}"


@dataclass(frozen=True)
class Label:
    """A jump target; executes as nothing (and takes no step)."""

    name: str

    def __str__(self) -> str:
        return f"{self.name}:"


class Outcome(enum.Enum):
    """How a program ends.  Writers publish with OK; readers end HIT (with a
    buffer they accept) or MISS."""

    OK = "ok"
    FAIL = "fail"
    HIT = "hit"
    MISS = "miss"


@dataclass(frozen=True)
class Return:
    """End the program with ``outcome``; a HIT delivers buffer ``value``."""

    outcome: Outcome
    value: str = "buf"

    def __str__(self) -> str:
        if self.outcome is Outcome.HIT:
            return f"return hit({self.value})"
        return f"return {self.outcome.value}"


Op = Union[Open, Write, PWrite, Read, Ftruncate, Fsync, Fdatasync, Close, Stat, Fstat, Unlink, Rename, Link, Mkdir,
           Symlink, Readlink, Flock, Chtimes, Mmap, MapRead, PutObject, GetObject, HeadObject, DeleteObject, WriteBuf]
Instr = Union[Op, If, Goto, Label, Return]


class ProgramError(ValueError):
    """A program is malformed: an unknown label, no final return, ..."""


class Role(enum.Enum):
    """A writer publishes an entry; a reader looks it up."""

    WRITER = "writer"
    READER = "reader"


@dataclass(frozen=True)
class Program:
    """A protocol: a named, checked instruction sequence.

    ``code`` is the instruction tuple with labels removed and jumps
    resolved to indexes (``targets[i]`` for the If/Goto at ``i``);
    ``source`` keeps the labels for printing.  ``publishes`` names the paths
    a writer promises to leave complete and from which payload.
    """

    name: str
    role: Role
    source: tuple[Instr, ...]
    publishes: tuple[tuple[Path, str], ...] = ()
    reads: Path = ENTRY
    summary: str = ""
    dirs: tuple[str, ...] = ()  # directories that exist before it runs (a cache's subdirectories)
    code: tuple[Instr, ...] = field(init=False, compare=False, repr=False)
    targets: tuple[int, ...] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        code, targets = _resolve(self.name, self.source)
        object.__setattr__(self, "code", code)
        object.__setattr__(self, "targets", targets)

    def payloads(self) -> tuple[str, ...]:
        """The payload names the program's data and lengths refer to."""
        names: list[str] = []
        for ins in self.code:
            for attr in ("data", "n"):
                v = getattr(ins, attr, None)
                if isinstance(v, (Data, Length)) and v.payload and v.payload not in names:
                    names.append(v.payload)
            cond = getattr(ins, "cond", None)
            v = getattr(cond, "n", None) or (cond if isinstance(cond, Invalid) else None)
            if isinstance(v, (Length, Invalid)) and v.payload and v.payload not in names:
                names.append(v.payload)
            if isinstance(ins, GetObject) and ins.body not in names:
                names.append(ins.body)  # bounds where a cut-short body may end
        return tuple(names)

    def listing(self) -> str:
        """The program as indented pseudo-code, labels flush left."""
        lines = []
        for ins in self.source:
            lines.append(f"{ins}" if isinstance(ins, Label) else f"    {ins}")
        return "\n".join(lines)


def _resolve(name: str, source: tuple[Instr, ...]) -> tuple[tuple[Instr, ...], tuple[int, ...]]:
    """Drop labels, map each jump to an index in the label-free code."""
    where: dict[str, int] = {}
    code: list[Instr] = []
    for ins in source:
        if isinstance(ins, Label):
            if ins.name in where:
                raise ProgramError(f"{name}: label {ins.name!r} defined twice")
            where[ins.name] = len(code)
        else:
            code.append(ins)
    if not code or not isinstance(code[-1], (Return, Goto)):
        raise ProgramError(f"{name}: the last instruction must be a return or goto")
    targets: list[int] = []
    for ins in code:
        if isinstance(ins, (If, Goto)):
            if ins.label not in where:
                raise ProgramError(f"{name}: jump to unknown label {ins.label!r}")
            if where[ins.label] >= len(code):
                raise ProgramError(f"{name}: label {ins.label!r} is at the end, with nothing to run")
            targets.append(where[ins.label])
        else:
            targets.append(-1)
    return tuple(code), tuple(targets)
