"""From events to programs: sequences cut out of the log and generalised.

Selection.  The *targets* are the names matching a ``--path`` glob
(``fnmatch``, on the name as the log shows it, made absolute where the log
shows the working directory), or by default every regular file a call
wrote (opened for writing, written, truncated, renamed or linked onto).
A name renamed or linked onto a target (or that a symlink at the target
points to) is its *temp*; so is a name renamed onto a temp; the call may
have failed (EEXIST: another writer got there first).  A name a process
only tried to create (open O_CREAT failing with ENOENT or EEXIST) just
before it used a temp in the same directory is an earlier *try* for that
temp (mkstemp's first name, before git makes the directory).  Each
process's events on a target, on its temps and tries, and on the
descriptors opened by those names are that process's calls on the target.

Sequences.  A process's calls on a target are cut into sequences: a
read-only open up to the close of its descriptor is a *read* (with the
stats just before it); the rest are *writes*, a new one beginning at a stat
or open once the previous write has opened and closed its file.  A write
that changes no contents and no names (a chtimes alone) is not lifted; nor
is a stat that no sequence follows.  Directories made with mkdir by the
same process while a sequence runs, above a name it uses, belong to it.

Generalising.  The target is ``entry``; temps are ``entry.tmp``,
``entry.tmp2``, ... and then the tries (private, ``Path(...,
private=True)``, when one process only ever used that name, and the name
is no symlink's target); the directories a sequence makes (or tries to)
are ``dir``, ``dir2``, ``dir/dir``, ..., and a name in one of them is
under it (``dir/entry``: the program publishes and is read there);
descriptors are registers ``f``, ``g``, ...; the bytes a write wrote are
the slice of the ``entry`` payload at the file offsets they landed at,
where the payload is as long as the target's content once the sequence is
done (strace shows the bytes only up to ``-s``; the counts are exact);
lengths equal to the payload's, or one more or less, are ``len(entry)``
(+-1); a split point is counted from the nearer end of the payload
(``entry[:-1]``, ``entry[-1:]``).  A run of writes that is one copy loop
(full chunks of a power-of-two size of at least 4 KiB, or a short write and
its retry) is one write; consecutive reads of one descriptor are one read,
of one byte more than they got when they reached the end of the file.

Paths.  The result each call had in the log is the path the program takes:
a call that succeeded goes on only on success, a call that failed (stat's
ENOENT, O_EXCL's EEXIST, mkdir's or link's EEXIST) only with that errno,
and a size a stat showed is
compared.  Anything else - a failure where the log shows success, another
errno, another size - closes what is open and returns failure (a reader:
miss), because the log shows only one path.  A writer returns ok unless a
call failed in a way no program expects (then fail); a reader returns a hit
when it read, else a miss.  The reader's own check of what it read is
invisible to strace: lifted readers accept what they read (as
``read-unvalidated``).

Each kind of event is expressed by one entry of :data:`OPERATIONS`, each
open flag by one of :data:`FLAGS`, each flock operation by one of
:data:`LOCKS`; a kind, flag or operation without one (``truncate``,
``fcntl locks``, ``O_DIRECT``, ``LOCK_NB``, ...) is a
:class:`~spec.lift.errors.CannotExpress` naming the log line.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field, replace
from fnmatch import fnmatchcase
from typing import AbstractSet, Callable, Sequence

from ..ops import (
    Chtimes,
    Close,
    Data,
    Failed,
    Fdatasync,
    Flock,
    Fstat,
    Fsync,
    Ftruncate,
    Goto,
    If,
    Instr,
    Label,
    Length,
    Link,
    LockOp,
    MapRead,
    Mkdir,
    Mmap,
    Open,
    OpenFlags,
    Outcome,
    Path,
    Program,
    PWrite,
    Read,
    Readlink,
    Rename,
    Return,
    Role,
    SizeIs,
    Stat,
    Symlink,
    Unlink,
    Write,
)
from .errors import CannotExpress, CutOffLine, LiftError
from .parse import read_logs
from .track import AMBIGUOUS, IGNORED, Event, Tracker, onto, track, writes

# ------------------------------------------------------------ results


@dataclass(frozen=True)
class Occurrence:
    """One sequence the log shows: the process, the target's name, where
    it is in the log, and its payload's length."""

    pid: int
    path: str
    file: str
    first: int
    last: int
    payload: int

    def where(self) -> str:
        return f"{self.file}:{self.first}-{self.last}" if self.last != self.first else f"{self.file}:{self.first}"


@dataclass(frozen=True)
class LiftedProgram:
    """A program and every sequence of the log it generalises."""

    program: Program
    occurrences: tuple[Occurrence, ...]
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Ignored:
    """A call on a selected file that the programs leave out, and why."""

    call: str
    file: str
    line: int
    text: str
    why: str


@dataclass(frozen=True)
class Lifted:
    """What a log lifts to: the programs, the calls left out, and notes on
    every choice the lifter made."""

    programs: tuple[LiftedProgram, ...]
    ignored: tuple[Ignored, ...]
    notes: tuple[str, ...]
    files: tuple[str, ...] = ()

    def writers(self) -> tuple[LiftedProgram, ...]:
        return tuple(p for p in self.programs if p.program.role is Role.WRITER)

    def readers(self) -> tuple[LiftedProgram, ...]:
        return tuple(p for p in self.programs if p.program.role is Role.READER)


ONE_PATH = ("the log shows one path through each program: where a call could fail, or fail otherwise than the log "
            "shows, the lifted program closes what it has open and returns failure (a reader: miss); that is the "
            "lifter's choice, not necessarily what the program does")
NO_VALIDATION = ("a reader's check of what it read is invisible to strace: lifted readers accept what they read "
                 "(like read-unvalidated)")

# ------------------------------------------------------------ selection


def _special(p: str) -> bool:
    return p.startswith(("/dev/", "/proc/", "/sys/")) or p.startswith("<fd ")


def targets(events: Sequence[Event], globs: Sequence[str], directories: set[str]) -> set[str]:
    """The names whose sequences are lifted (see the module doc)."""
    names: set[str | None]
    if globs:
        names = {p for e in events for p in (e.path, e.path2) if p is not None and any(fnmatchcase(p, g) for g in globs)}
    else:
        names = {_named(e) for e in events if writes(e)}
    return {p for p in names if p is not None and p not in directories and not _special(p)}


def _named(e: Event) -> str | None:
    """The name a call writes: a rename's, link's or symlink's new name, else its own."""
    pair = onto(e)
    return pair[1] if pair is not None else e.path


def temps(events: Sequence[Event], chosen: set[str]) -> dict[str, set[str]]:
    """Each temp name and the targets it is renamed or linked onto (a name
    written and then renamed onto a target is its temp, not a target); a
    symlink's target is a temp of the link (its data, published by the link)."""
    out: dict[str, set[str]] = {}
    changed = True
    while changed:
        changed = False
        for e in events:
            pair = onto(e)
            # A failed one too (EEXIST: another writer's got there first):
            # the name was meant for the target all the same.
            if pair is None or not e.call.finished or pair[0] == pair[1]:
                continue
            src, to = pair
            dst = {to} if to in chosen else out.get(to, set())
            if dst and not dst <= out.get(src, set()):
                out.setdefault(src, set()).update(dst)
                changed = True
    return out


def attempts(events: Sequence[Event], chosen: set[str], tmp: dict[str, set[str]],
             proc: Callable[[int], int]) -> dict[str, str]:
    """Names a process only tried to create (every call on them an open
    with O_CREAT that failed with ENOENT or EEXIST) and the temp in the
    same directory that the same process used next: mkstemp's first try
    before the directory exists (git), or a name already taken.  Each is
    an earlier try for that temp and joins its sequence."""
    tried: dict[str, tuple[int, int]] = {}  # name -> (process, order of its last try)
    other: set[str] = set()
    for e in events:
        for p in (e.path, e.path2):
            if p is None or p in chosen or p in tmp:
                continue
            if e.kind == "open" and p == e.path and not e.ok and "O_CREAT" in e.flags \
                    and e.call.errno in ("ENOENT", "EEXIST") and tried.get(p, (proc(e.process), 0))[0] == proc(e.process):
                tried[p] = (proc(e.process), e.call.order)
            else:
                other.add(p)
    out: dict[str, str] = {}
    for name, (process, order) in tried.items():
        if name in other:
            continue
        nxt = next((p for e in events if e.call.order > order and proc(e.process) == process
                    for p in (e.path, e.path2) if p in tmp), None)
        if nxt is not None and posixpath.dirname(nxt) == posixpath.dirname(name):
            out[name] = nxt
    return out


# ------------------------------------------------------------ sequences

_CHANGES = frozenset({"write", "pwrite", "ftruncate", "unlink", "rename", "renameat2(RENAME_NOREPLACE)", "link",
                      "truncate", "fallocate", "mkdir",
                      "symlink", "mknod", "O_APPEND", "dup", "splice", "reflink copies", "unknown", AMBIGUOUS})
_WRITE_FLAGS = frozenset({"O_WRONLY", "O_RDWR", "O_CREAT", "O_TRUNC"})


@dataclass
class Episode:
    """One sequence: its role, its events in order, the process and target."""

    role: Role
    process: int
    target: str
    events: list[Event] = field(default_factory=list)

    def changes(self) -> bool:
        """Does it try to change contents or names (else it is not lifted)?"""
        return any(e.kind in _CHANGES or (e.kind == "open" and e.flags & _WRITE_FLAGS) or
                   (e.kind not in OPERATIONS and e.kind != IGNORED) for e in self.events)


def _read_only(e: Event) -> bool:
    return e.kind == "open" and not e.flags & _WRITE_FLAGS


def episodes(evs: list[Event], process: int, target: str) -> tuple[list[Episode], list[Event]]:
    """A process's events on one target cut into sequences, and the events
    left out (stats nothing follows)."""
    session: dict[int, int] = {}  # event index -> index of its read session's open
    open_ro: dict[int, int] = {}  # descriptor id -> index of its read-only open
    for i, e in enumerate(evs):
        if _read_only(e):
            session[i] = i
            if e.ok and e.desc is not None:
                open_ro[e.desc.id] = i
        elif e.desc is not None and e.desc.id in open_ro:
            session[i] = open_ro[e.desc.id]
            if e.kind == "close":
                del open_ro[e.desc.id]
    out: list[Episode] = []
    reads: dict[int, Episode] = {}
    stats: list[Event] = []
    cur: Episode | None = None
    held: set[int] = set()
    opened_and_closed = False
    for i, e in enumerate(evs):
        s = session.get(i)
        if s is not None:
            if s == i:
                reads[i] = Episode(Role.READER, process, target, stats + [e])
                out.append(reads[i])
                stats = []
                if not held:
                    cur = None
            else:
                reads[s].events.append(e)
            continue
        if e.kind in ("stat", "exists") and not held:
            stats.append(e)
            continue
        if cur is None or (e.kind == "open" and not held and opened_and_closed):
            cur = Episode(Role.WRITER, process, target)
            out.append(cur)
            held, opened_and_closed = set(), False
        cur.events.extend(stats + [e])
        stats = []
        if e.kind == "open" and e.ok and e.desc is not None:
            held.add(e.desc.id)
        elif e.kind == "close" and e.desc is not None and e.desc.id in held:
            held.discard(e.desc.id)
            opened_and_closed = True
    return out, stats


# ------------------------------------------------------------ generalising

FLAGS: dict[str, OpenFlags | None] = {
    "O_RDONLY": OpenFlags.READ,
    "O_WRONLY": OpenFlags.WRITE,
    "O_RDWR": OpenFlags.READ | OpenFlags.WRITE,
    "O_CREAT": OpenFlags.CREAT,
    "O_TRUNC": OpenFlags.TRUNC,
    "O_EXCL": OpenFlags.EXCL,
    "O_APPEND": OpenFlags.APPEND,
    "O_NOFOLLOW": OpenFlags.NOFOLLOW,
    # No effect on a regular file's contents or names, or on who sees what:
    "O_CLOEXEC": None,
    "O_LARGEFILE": None,
    "O_NOCTTY": None,
    "O_NONBLOCK": None,
    "O_NDELAY": None,
    "O_NOATIME": None,
}
# flock's operations; LOCK_NB (fail at once rather than wait) is not in the
# language: its flock always waits.
LOCKS: dict[str, LockOp] = {
    "LOCK_SH": LockOp.SHARED,
    "LOCK_EX": LockOp.EXCLUSIVE,
    "LOCK_UN": LockOp.UNLOCK,
}
_QUIET_FLAGS = frozenset({"O_CLOEXEC", "O_LARGEFILE"})
# Failures a program expects and goes on from: the writer still succeeds.
# (A directory or a name already there: another writer made it; a name
# that is no link, or none.)
_EXPECTED = {("stat", "ENOENT"), ("exists", "ENOENT"), ("unlink", "ENOENT"), ("open", "EEXIST"), ("open", "ENOENT"),
             ("mkdir", "EEXIST"), ("mkdir", "ENOENT"), ("link", "EEXIST"), ("renameat2(RENAME_NOREPLACE)", "EEXIST"), ("symlink", "EEXIST"),
             ("readlink", "EINVAL"), ("readlink", "ENOENT")}


def length_of(n: int, payload: int) -> Length:
    """A byte count as a length: ``len(entry)`` (+-1) when it is the
    payload's (or one off), else a constant."""
    if n == payload:
        return Length("entry")
    if n == 0:
        return Length(None, 0)
    if abs(n - payload) <= 1:
        return Length("entry", n - payload)
    return Length(None, n)


def _point(k: int, payload: int) -> int:
    """A split point inside the payload, counted from its nearer end."""
    return k if k <= payload - k else k - payload


def slice_of(offset: int, count: int, payload: int) -> Data | None:
    """The payload's bytes at ``offset``..``offset+count``, or None when
    they are not inside it."""
    if offset < 0 or offset + count > payload:
        return None
    if offset == 0 and count == payload:
        return Data("entry")
    if count == 0:
        return Data("entry", 0, 0)
    start = None if offset == 0 else _point(offset, payload)
    stop = None if offset + count == payload else _point(offset + count, payload)
    return Data("entry", start, stop)


def _power_chunk(n: int) -> bool:
    return n >= 4096 and n & (n - 1) == 0


def _merge(events: list[Event], notes: list[str]) -> list[Event]:
    """Copy loops as one write, read loops as one read (see the module doc)."""
    out: list[Event] = []
    runs: dict[int, list[Event]] = {}  # index in out -> the writes or reads merged into it
    for e in events:
        j = len(out) - 1
        prev = out[j] if out else None
        if (prev is not None and prev.kind == e.kind and e.kind in ("write", "read") and prev.desc is e.desc
                and prev.ok and e.ok and e.offset == prev.offset + prev.count):
            run = runs.get(j, [prev])
            if e.kind == "read" or _continues(run, e):
                runs[j] = run + [e]
                eof = e.kind == "read" and e.count < e.asked
                asked = prev.count + e.count + (1 if eof else 0) if e.kind == "read" else prev.asked + e.asked
                out[j] = replace(prev, count=prev.count + e.count, asked=asked, call=replace(prev.call, end=e.call.end))
                continue
        if e.kind == "read" and e.ok and e.count < e.asked:
            e = replace(e, asked=e.count + 1)  # a short read reached the end: one byte more than it got
        out.append(e)
    for run in runs.values():
        if run[0].kind == "read":
            note = "consecutive reads of one descriptor read as one read"
        elif run[0].count < run[0].asked:
            note = "a short write and the writes that finish it read as one write"
        else:
            note = f"a copy loop's writes ({run[0].count}-byte chunks, then the rest) read as one write"
        if note not in notes:
            notes.append(note)
    return out


def _continues(run: list[Event], e: Event) -> bool:
    """Is write ``e`` the next piece of the copy loop ``run``?"""
    last = run[-1]
    if last.count < last.asked:
        return True  # a short write and its retry
    chunk = run[0].count
    return _power_chunk(chunk) and all(w.count == w.asked == chunk for w in run) and e.asked <= chunk


class _Build:
    """One sequence's program, built instruction by instruction."""

    def __init__(self, ep: Episode, payload: int, names: dict[str, Path]) -> None:
        self.ep = ep
        self.payload = payload
        self.names = names
        self.reader = ep.role is Role.READER
        self.main: list[Instr] = []
        self.tails: dict[str, tuple[str, ...]] = {}
        self.held: list[str] = []
        self.reg: dict[int, str] = {}
        self.labels = 0
        self.unexpected: list[Event] = []
        self.did_read = False
        self.maps: list[str] = []
        self.notes: list[str] = []
        self.sizes: dict[int, int] = {}  # descriptor id -> the size its last kept fstat showed

    # -- registers and tails

    def free_reg(self) -> str:
        return next(r for r in "fghijklmnopqrstuvwxyz" if r not in self.held)

    def fd(self, e: Event) -> str:
        assert e.desc is not None
        if e.desc.id not in self.reg:
            raise LiftError(e.call.file, e.call.line, f"{e.call.text}: a call on a descriptor the sequence did not open")
        return self.reg[e.desc.id]

    def path(self, p: str | None, e: Event) -> Path:
        if p is None or p not in self.names:
            raise CannotExpress(e.call.file, e.call.line, e.call.name, "a name outside the selection",
                                e.call.text, f"{p} is neither the target nor a temp renamed onto it: add it with --path")
        return self.names[p]

    def tail(self, regs: tuple[str, ...]) -> str:
        end = "miss" if self.reader else "fail"
        name = end if not regs else f"close_{end}" if regs == ("f",) else f"close_{'_'.join(regs)}_{end}"
        self.tails.setdefault(name, regs)
        return name

    # -- one operation and the checks of its result

    def op(self, ins: Instr, e: Event, *, opens: str | None = None, closes: str | None = None,
           size: Length | None = None) -> None:
        before = tuple(self.held)
        on_fail = tuple(r for r in before if r != closes)
        on_ok = tuple(r for r in before if r != closes) + ((opens,) if opens else ())
        self.main.append(ins)
        if e.ok:
            self.main.append(If(Failed(), self.tail(on_fail)))
            if size is not None:
                self.main.append(If(SizeIs("!=", size), self.tail(on_ok)))
            self.held = list(on_ok)
            return
        errno = e.call.errno or "EIO"
        if (e.kind, errno) not in _EXPECTED:
            self.unexpected.append(e)
        self.labels += 1
        label = f"on_{errno.lower()}" if self.labels == 1 else f"on_{errno.lower()}_{self.labels}"
        self.main.append(If(Failed(frozenset({errno})), label))
        if on_fail != on_ok:
            self.main.append(If(Failed(), self.tail(on_fail)))
        self.main.append(Goto(self.tail(on_ok)))
        self.main.append(Label(label))
        self.held = list(on_fail)

    def finish(self) -> tuple[Instr, ...]:
        for m in self.maps:
            # The program reads its mapping's bytes after the calls strace shows.
            self.main.append(MapRead(m))
            self.did_read = True
        if self.reader:
            ok = self.did_read and not self.unexpected
            end = Return(Outcome.HIT) if ok else Return(Outcome.MISS)
        else:
            end = Return(Outcome.FAIL) if self.unexpected else Return(Outcome.OK)
        for e in self.unexpected:
            self.notes.append(f"the log shows {e.call.name} failing with {e.call.errno} ({e.call.where()}): "
                              f"the program returns {'miss' if self.reader else 'failure'} there")
        out: list[Instr] = [*self.main, end]
        for name, regs in self.tails.items():
            out.append(Label(name))
            out.extend(Close(r) for r in regs)
            out.append(Return(Outcome.MISS if self.reader else Outcome.FAIL))
        return tuple(out)


def _flags(e: Event, notes: list[str]) -> OpenFlags:
    out = OpenFlags(0)
    dropped = []
    for f in sorted(e.flags):
        if f not in FLAGS:
            raise CannotExpress(e.call.file, e.call.line, e.call.name, f"the open flag {f}", e.call.text)
        v = FLAGS[f]
        if v is None:
            if f not in _QUIET_FLAGS:
                dropped.append(f)
        else:
            out |= v
    if dropped:
        notes.append(f"open flags with no effect the model sees dropped: {', '.join(dropped)}")
    if not out & (OpenFlags.READ | OpenFlags.WRITE):
        out |= OpenFlags.READ  # O_RDONLY is 0: strace may print no access mode
    return out


def _open(b: _Build, e: Event) -> None:
    reg = b.free_reg()
    ins = Open(b.path(e.path, e), _flags(e, b.notes), fd=reg)
    if e.ok and e.desc is not None:
        b.reg[e.desc.id] = reg
    b.op(ins, e, opens=reg)


def _write(b: _Build, e: Event) -> None:
    n = e.count if e.ok else e.asked
    data = slice_of(e.offset, n, b.payload)
    if data is None:
        raise CannotExpress(e.call.file, e.call.line, e.call.name, "bytes that are not in the file at the end", e.call.text,
                            f"{n} bytes at offset {e.offset} of a {b.payload}-byte payload")
    if e.kind == "pwrite":
        b.op(PWrite(data, e.offset, fd=b.fd(e)), e)
    else:
        b.op(Write(data, fd=b.fd(e)), e)


def _read(b: _Build, e: Event) -> None:
    b.op(Read(length_of(e.asked, b.payload), fd=b.fd(e)), e)
    b.did_read = True


def _ftruncate(b: _Build, e: Event) -> None:
    b.op(Ftruncate(length_of(e.length or 0, b.payload), fd=b.fd(e)), e)


def _fsync(b: _Build, e: Event) -> None:
    b.op(Fsync(fd=b.fd(e)), e)


def _fdatasync(b: _Build, e: Event) -> None:
    b.op(Fdatasync(fd=b.fd(e)), e)


def _flock(b: _Build, e: Event) -> None:
    (op,) = [LOCKS[f] for f in e.flags]  # _first_unexpressed refused any other
    b.op(Flock(op, fd=b.fd(e)), e)


def _close(b: _Build, e: Event) -> None:
    reg = b.fd(e)
    b.op(Close(fd=reg), e, closes=reg)


def _stat(b: _Build, e: Event) -> None:
    size = length_of(e.length, b.payload) if e.kind == "stat" and e.ok and e.length is not None else None
    b.op(Stat(b.path(e.path, e)), e, size=size)


def _fstat(b: _Build, e: Event) -> None:
    if e.desc is not None and e.length is not None:
        b.sizes[e.desc.id] = e.length
    b.op(Fstat(fd=b.fd(e)), e, size=length_of(e.length, b.payload) if e.ok and e.length is not None else None)


def _unlink(b: _Build, e: Event) -> None:
    b.op(Unlink(b.path(e.path, e)), e)


def _rename(b: _Build, e: Event) -> None:
    b.op(Rename(b.path(e.path, e), b.path(e.path2, e), noreplace=e.kind != "rename"), e)


def _link(b: _Build, e: Event) -> None:
    b.op(Link(b.path(e.path, e), b.path(e.path2, e)), e)


def _mkdir(b: _Build, e: Event) -> None:
    b.op(Mkdir(b.path(e.path, e)), e)


def _symlink(b: _Build, e: Event) -> None:
    b.op(Symlink(b.path(e.path2, e), b.path(e.path, e)), e)


def _readlink(b: _Build, e: Event) -> None:
    # Its own register: a writer's check of a link must not clobber what a read got.
    b.op(Readlink(b.path(e.path, e), into="lnk"), e)


def _chtimes(b: _Build, e: Event) -> None:
    b.op(Chtimes(b.path(e.path, e)), e)


def _mmap(b: _Build, e: Event) -> None:
    shared_write = "PROT_WRITE" in e.flags and "MAP_SHARED" in e.flags
    if shared_write or e.offset != 0 or e.desc is None or b.sizes.get(e.desc.id) != e.length:
        raise CannotExpress(e.call.file, e.call.line, e.call.name,
                            "this mmap (only a read-only mapping from offset 0 of the size an fstat just gave)", e.call.text)
    reg = "map" if "map" not in b.maps else f"map{len(b.maps) + 1}"
    b.op(Mmap(fd=b.fd(e), size="st", into=reg), e)
    b.maps.append(reg)


# One entry per kind of event the language expresses.  A kind missing here
# (truncate, pread, fcntl locks, O_APPEND turned on by fcntl,
# renameat2(RENAME_EXCHANGE), ...) is reported as CannotExpress; when the
# language grows an operation, its entry goes here.
OPERATIONS: dict[str, Callable[[_Build, Event], None]] = {
    "open": _open,
    "write": _write,
    "pwrite": _write,
    "read": _read,
    "ftruncate": _ftruncate,
    "fsync": _fsync,
    "close": _close,
    "stat": _stat,
    "exists": _stat,
    "fstat": _fstat,
    "unlink": _unlink,
    "rename": _rename,
    "renameat2(RENAME_NOREPLACE)": _rename,
    "link": _link,
    "mkdir": _mkdir,
    "symlink": _symlink,
    "readlink": _readlink,
    "flock": _flock,
    "fdatasync": _fdatasync,
    "chtimes": _chtimes,
    "mmap": _mmap,
}


def _needed_fstats(events: list[Event]) -> list[Event]:
    """Keep an fstat only where an mmap of the size it gave follows on its
    descriptor (the one use the language has for it); drop the others."""
    out: list[Event] = []
    for i, e in enumerate(events):
        if e.kind == "fstat":
            nxt = next((x for x in events[i + 1:] if x.desc is e.desc and x.kind not in (IGNORED, "fstat")), None)
            if nxt is None or nxt.kind != "mmap" or nxt.length != e.length:
                out.append(replace(e, kind=IGNORED, why="fstat whose result no lifted call uses"))
                continue
        out.append(e)
    return out


def _payload(ep: Episode, events: list[Event], notes: list[str]) -> int:
    """The payload's length: the target's size once the sequence is done
    (a reader: what it read to the end)."""
    if ep.role is Role.READER:
        reads = [e for e in events if e.kind == "read" and e.ok]
        if reads and reads[-1].asked > reads[-1].count:
            return sum(e.count for e in reads)
        sized = [e.size for e in ep.events if e.size is not None]
        if sized:
            return sized[-1]
        return sum(e.count for e in reads)
    # What it wrote, or tried to: a failed write's bytes count too.
    end = max((e.offset + (e.count if e.ok else e.asked) for e in events if e.kind in ("write", "pwrite")), default=0)
    named = [e for e in ep.events if e.ok and ep.target in (e.path, e.path2) and e.ino >= 0]
    if named:
        ino = named[-1].ino
        sizes = [e.size for e in ep.events if e.ino == ino]
        if sizes and sizes[-1] is not None and sizes[-1] >= end:
            return sizes[-1]
    notes.append(f"the log does not show the target holding the whole payload at the end (its size before the log "
                 f"is unknown, or a write failed): the payload is taken to end where the last byte written, or "
                 f"meant to be, does ({end} bytes)")
    return end


def _first_unexpressed(ep: Episode) -> tuple[int, CannotExpress] | None:
    """The sequence's first call the language cannot express: its place in
    the log and the error to raise (a call the process never finished is
    bad input: raised at once)."""
    for e in ep.events:
        if not e.call.finished and e.kind != IGNORED:
            raise CutOffLine(e.call.file, e.call.line, f"{e.call.text}: the process ended inside this call, "
                             "so its result is unknown")
        c = e.call
        err: CannotExpress | None = None
        if e.kind == AMBIGUOUS:
            err = CannotExpress(c.file, c.line, c.name, "a call on a descriptor that cannot be told apart", c.text, e.why)
        elif e.kind not in OPERATIONS and e.kind != IGNORED:
            err = CannotExpress(c.file, c.line, c.name, e.kind, c.text,
                                f"a sequence on {ep.target} (pid {ep.events[0].tid}) makes it"
                                + (f" ({e.why})" if e.why else ""))
        elif e.kind == "open" and not e.flags <= FLAGS.keys():
            err = CannotExpress(c.file, c.line, c.name, f"the open flag {min(e.flags - FLAGS.keys())}", c.text)
        elif e.kind == "flock" and (len(e.flags) != 1 or not e.flags <= LOCKS.keys()):
            err = CannotExpress(c.file, c.line, c.name, f"flock({'|'.join(sorted(e.flags))})", c.text,
                                "the language's flock takes one of LOCK_SH, LOCK_EX, LOCK_UN and waits")
        if err is not None:
            return c.order, err
    return None


def _dirs(ep: Episode) -> dict[str, str]:
    """The directories the sequence makes (or tries to), named ``dir``,
    ``dir2``, ... and below one another ``dir/dir``: the directories the
    program needs, outermost first."""
    made = sorted({e.path for e in ep.events if e.kind == "mkdir" and e.path is not None}, key=lambda d: d.count("/"))
    out: dict[str, str] = {}
    for d in made:
        parent = posixpath.dirname(d)
        prefix = out[parent] + "/" if parent in out else ""
        k = 1 + sum(1 for x in out if posixpath.dirname(x) == parent)
        out[d] = prefix + ("dir" if k == 1 else f"dir{k}")
    return out


def _names(ep: Episode, private: dict[str, bool], tries: AbstractSet[str]) -> dict[str, Path]:
    """The program's name for each name the sequence uses: the target is
    ``entry``, its temps ``entry.tmp``, ``entry.tmp2``, ... (in order of
    use; earlier tries for a temp after every temp), each directory it
    makes as :func:`_dirs` says, and a name in one of those directories
    is under that directory's name."""
    dirs = _dirs(ep)
    base: dict[str, str] = {ep.target: "entry"}
    for group in ([p for p in private if p not in tries], [p for p in private if p in tries]):
        for e in ep.events:
            for p in (e.path, e.path2):
                if p is not None and p not in base and p in group:
                    n = sum(1 for b in base.values() if b.startswith("entry.tmp")) + 1
                    base[p] = "entry.tmp" if n == 1 else f"entry.tmp{n}"
    out = {d: Path(name) for d, name in dirs.items()}
    for p, b in base.items():
        d = posixpath.dirname(p)
        if d in dirs:
            out[p] = Path(f"{dirs[d]}/{b}", private=private.get(p, False))
            continue
        inside = [m for m in dirs if _ancestor(m, p)]
        if inside:
            e = next(x for x in ep.events if p in (x.path, x.path2))
            raise CannotExpress(e.call.file, e.call.line, e.call.name,
                                "a name in a directory the sequence did not make, below one it made", e.call.text,
                                f"{p} is below {inside[0]}")
        out[p] = Path(b, private=private.get(p, False))
    return out


def build(ep: Episode, private: dict[str, bool], tries: AbstractSet[str] = frozenset()
          ) -> tuple[tuple[Instr, ...], Path, int, list[str], list[Event]]:
    """A sequence's instructions, the target's name in them, the payload
    length, notes, and the events it leaves out."""
    notes: list[str] = []
    kept = _needed_fstats(ep.events)
    ignored = [e for e in kept if e.kind == IGNORED]
    events = _merge([e for e in kept if e.kind != IGNORED], notes)
    payload = _payload(ep, events, notes)
    if payload == 0 and ep.role is Role.WRITER:
        notes.append("some sequences have an empty payload (0 bytes): checked with the explorer's payloads, "
                     "such a program publishes an entry it never wrote")
    names = _names(ep, private, tries)
    if any(p in tries for p in names):
        notes.append("a name the process only tried to create (an open with O_CREAT that failed: mkstemp's first "
                     "try, before the directory was made) is taken as an earlier try for the temp after it: a "
                     "private name of its own")
    if any(e.kind == "mkdir" for e in ep.events):
        notes.append("the directory the sequence makes is the program's dir (created by its mkdir; the names in it "
                     "are dir/entry, dir/entry.tmp)")
    b = _Build(ep, payload, names)
    for e in events:
        OPERATIONS[e.kind](b, e)
    source = b.finish()
    return source, names[ep.target], payload, notes + b.notes, ignored


# ------------------------------------------------------------ the whole log


def _ignored(e: Event, why: str | None = None) -> Ignored:
    return Ignored(e.call.name, e.call.file, e.call.line, e.call.text, why or e.why)


def _ancestor(d: str, p: str) -> bool:
    return p.startswith(d.rstrip("/") + "/")


def lift_events(events: list[Event], tracker: Tracker, globs: Sequence[str], files: tuple[str, ...],
                notes: list[str]) -> Lifted:
    """Programs from a log's events (see the module doc)."""
    chosen = targets(events, globs, tracker.directories)
    tmp = temps(events, chosen)
    chosen -= set(tmp)
    tries = attempts(events, chosen, tmp, tracker.canon)
    per, private, mkdirs = _by_process_and_target(events, chosen, tmp, tries, tracker.canon)
    eps: list[Episode] = []
    left_out: list[Ignored] = []
    for (process, target), evs in per.items():
        found, stray = episodes(evs, process, target)
        eps.extend(found)
        left_out.extend(_ignored(e, "a stat whose result no lifted sequence uses") for e in stray)
    used_dirs = _attach_mkdirs(eps, mkdirs, tracker.canon)
    outside = sorted({e.path for e in mkdirs if e not in used_dirs and e.path is not None
                      and any(_ancestor(e.path, t) for t in chosen | set(tmp))})
    if outside:
        notes.append(f"{len(outside)} directories above the selected files were made with mkdir outside every "
                     f"sequence (e.g. {outside[0]}): the programs take them as there from the start, and name the "
                     f"files in them flat (entry)")
    lifted_eps = [ep for ep in eps if ep.changes() or ep.role is Role.READER]
    for ep in eps:
        if ep not in lifted_eps:
            left_out.extend(_ignored(e, "changes neither contents nor names (not part of a write)") for e in ep.events)
    lifted_eps.sort(key=lambda ep: ep.events[0].call.order)
    _refuse_the_first_unexpressed(lifted_eps)
    programs = _programs(lifted_eps, private, set(tries), left_out)
    general = [ONE_PATH] + ([NO_VALIDATION] if any(p.program.role is Role.READER for p in programs) else []) + notes
    left_out.sort(key=lambda x: (x.file, x.line))
    return Lifted(tuple(programs), tuple(left_out), tuple(general), files)


def _by_process_and_target(events: list[Event], chosen: set[str], tmp: dict[str, set[str]], tries: dict[str, str],
                           proc: Callable[[int], int]
                           ) -> tuple[dict[tuple[int, str], list[Event]], dict[str, bool], list[Event]]:
    """Each process's events on each target (its temps' and their earlier
    tries' included), whether each temp is private (one process used it;
    never a symlink's target, which every writer's link reaches), and the
    mkdirs."""
    # Which target a temp's event belongs to: the target of the temp's next
    # rename (or link, or symlink) by the same process, else of its last.
    into: dict[tuple[int, str], list[tuple[int, str]]] = {}
    shared: set[str] = set()
    for e in events:
        pair = onto(e)
        if pair is not None and pair[0] in tmp and e.call.finished:
            src, dst = pair
            if e.kind == "symlink":
                shared.add(src)
            while dst in tmp and dst not in chosen:
                dst = sorted(tmp[dst])[0]
            into.setdefault((proc(e.process), src), []).append((e.call.order, dst))
    for name, temp in tries.items():
        for (q, src), renames in list(into.items()):
            if src == temp:
                into[(q, name)] = renames
    tmp = {**tmp, **{name: tmp[temp] for name, temp in tries.items()}}
    users: dict[str, set[int]] = {}
    per: dict[tuple[int, str], list[Event]] = {}
    mkdirs: list[Event] = []
    for e in events:
        if e.kind == "mkdir":
            mkdirs.append(e)
            continue
        keys: list[str] = []
        for p in (e.path, e.path2):
            if p is None:
                continue
            if p in tmp:
                users.setdefault(p, set()).add(proc(e.process))
            t = p if p in chosen else _temp_target(into.get((proc(e.process), p), []), e.call.order) if p in tmp else None
            if t is not None and t not in keys:
                keys.append(t)
        for t in keys:
            per.setdefault((proc(e.process), t), []).append(e)
    return per, {p: len(users.get(p, ())) == 1 and p not in shared for p in tmp}, mkdirs


def _refuse_the_first_unexpressed(eps: list[Episode]) -> None:
    """The first call the language cannot express, in log order, is the error."""
    firsts = [x for x in (_first_unexpressed(ep) for ep in eps) if x is not None]
    if firsts:
        raise min(firsts, key=lambda x: x[0])[1]


def _programs(eps: list[Episode], private: dict[str, bool], tries: set[str],
              left_out: list[Ignored]) -> list[LiftedProgram]:
    """One program per distinct sequence, in order of first appearance."""
    groups: dict[tuple[Role, tuple[Instr, ...], Path], tuple[list[Occurrence], list[str]]] = {}
    for ep in eps:
        source, target, payload, ep_notes, ign = build(ep, private, tries)
        left_out.extend(_ignored(e) for e in ign)
        occ = Occurrence(ep.events[0].tid, ep.target, ep.events[0].call.file, ep.events[0].call.line,
                         max(e.call.end for e in ep.events), payload)
        occs, ns = groups.setdefault((ep.role, source, target), ([], []))
        occs.append(occ)
        ns.extend(n for n in ep_notes if n not in ns)
    programs = []
    for i, ((role, source, target), (occs, ns)) in enumerate(groups.items(), 1):
        first = occs[0]
        summary = (f"lifted: {len(occs)} sequence{'s' if len(occs) != 1 else ''} like {first.where()} "
                   f"(pid {first.pid}, {first.path}, {first.payload} bytes)")
        publishes = ((target, "entry"),) if role is Role.WRITER else ()
        programs.append(LiftedProgram(Program(f"lifted-{i}", role, source, publishes=publishes, reads=target,
                                              summary=summary), tuple(occs), tuple(ns)))
    return programs


def _temp_target(renames: list[tuple[int, str]], order: int) -> str | None:
    nxt = [t for o, t in renames if o >= order]
    if nxt:
        return nxt[0]
    return renames[-1][1] if renames else None


def _attach_mkdirs(eps: list[Episode], mkdirs: list[Event], proc: Callable[[int], int]) -> set[Event]:
    """Put each mkdir into the sequence it serves: made by the same
    process while the sequence runs, above a name the sequence uses."""
    used: set[Event] = set()
    for ep in eps:
        lo, hi = ep.events[0].call.order, ep.events[-1].call.order
        names = {p for e in ep.events for p in (e.path, e.path2) if p is not None}
        mine = [m for m in mkdirs if proc(m.process) == ep.process and lo <= m.call.order <= hi and m.path is not None
                and any(_ancestor(m.path, n) for n in names)]
        if mine:
            used.update(mine)
            ep.events = sorted(ep.events + mine, key=lambda e: e.call.order)
    return used


def lift(logs: Sequence[tuple[str, str]], paths: Sequence[str] = ()) -> Lifted:
    """Lift strace logs ``(name, text)`` - one file, or the ``-ff`` files
    of one run - into programs, one per distinct sequence on the names
    matching the globs ``paths`` (default: every regular file written).
    Raises a :class:`~spec.lift.errors.LiftError` for bad input or a call
    the language cannot express."""
    records, notes = read_logs(logs)
    events, tracker = track(records)
    return lift_events(events, tracker, paths, tuple(name for name, _ in logs), notes)

