"""From calls to events: which file each call is on, and what it does to it.

The :class:`Tracker` walks the calls in order and keeps what the kernel
would: each process's descriptors (what file, opened how, at what offset),
which name points at which file and how long each file is (as far as the
log shows), each process's working directory.  It turns every call on a
named file into an :class:`Event` - one kind per thing a call does, from
the table :data:`CALLS` (one entry per system call) - and drops the rest.

Threads.  ``strace -f`` prints thread ids, and the threads of a process
share its descriptors (a Go program opens a file on one thread and writes
it on another); the recommended trace does not include clone, so which
threads form a process is not in the log.  Each thread starts as a process
of its own; a call on a descriptor its process does not hold is taken to
be on the descriptor of that number that another process holds, when
exactly one does, and the two are then one process (``Tracker.process``;
a child between fork and exec uses its parent's descriptors the same way).
Two processes that each ran execve are never taken to be one.  A thread
that runs execve after other calls is a child between fork and exec: its
descriptor table is a copy of its parent's (taken at its first call on a
descriptor), so closing or dup2ing over one of them closes the child's copy
only, and the file sees nothing.
After execve a thread is a process of its own, holding the descriptions
its old process held without O_CLOEXEC; when the last thread of a process
exits, its descriptors close.  When several processes hold the descriptor,
the call is ambiguous; if the rest of the log shows which process the
thread is in (a later unambiguous call; one process alone held every
descriptor the thread used when it used it; or, among those that did, the
process whose exit_group the thread's exit comes with), a second pass
(:func:`track`) starts from that knowledge;
else an ``ambiguous`` event goes to each candidate, and a lifted sequence
that contains one is an error (nothing is guessed).

Sizes.  A file's size is known from when the log shows it: created with
O_EXCL, or where the log showed the name missing, truncated, stat'ed;
unknown (None) for a file that existed before the log and was not stat'ed.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass
from typing import Callable, Sequence

from .parse import Args, Call, Exit, Record, flag_names, int_arg, st_size, unquote

AT_FDCWD = "AT_FDCWD"
# Process labels from here up are processes that ran execve (below: thread ids).
_EXECED = 1 << 40
# Kinds of event that the instruction language expresses today; every
# other kind names what it lacks (``spec.lift.generalise.OPERATIONS``).
IGNORED = "ignored"
AMBIGUOUS = "ambiguous"


@dataclass
class Inode:
    """A file, as far as the log shows it: its size, or None when unknown."""

    id: int
    size: int | None


@dataclass
class Desc:
    """An open file description: the name it was opened by (None for a
    pipe, a socket, or a descriptor inherited from before the log), its
    flags, its offset, its file."""

    id: int
    path: str | None
    flags: frozenset[str]
    tid: int
    offset: int = 0
    inode: Inode | None = None


@dataclass(frozen=True, eq=False)
class Event:
    """What one call did to one named file, in which thread and process
    (``Tracker.canon`` of ``process`` is the process it turned out to be).

    ``kind`` is ``open``, ``write``, ``pwrite``, ``read``, ``ftruncate``,
    ``fsync``, ``fdatasync``, ``close``, ``stat``, ``exists`` (access),
    ``fstat``, ``unlink``, ``rename``, ``renameat2(RENAME_NOREPLACE)``,
    ``link``, ``mkdir``, ``symlink``, ``readlink``, ``flock`` (``flags``:
    its ``LOCK_*`` names), ``chtimes``, ``mmap``; ``ignored`` for a call
    that changes neither contents nor names (``why`` says what it is);
    ``ambiguous``; or what the call does that the language has no
    operation for (``truncate``, ``fcntl locks``, ...).
    ``path`` is the name it is on (the descriptor's, for a call on a
    descriptor), ``path2`` a rename's or link's new name, or the name a
    symlink points at (see :func:`onto`); ``count`` the
    bytes written or read, ``asked`` those asked for, ``offset`` where in
    the file they were; ``length`` a truncate's length, a stat's size or a
    mapping's length; ``ino`` and ``size`` the file's identity and size
    after the call; ``regular`` whether a stat showed a regular file."""

    kind: str
    call: Call
    tid: int
    process: int
    path: str | None = None
    path2: str | None = None
    desc: Desc | None = None
    flags: frozenset[str] = frozenset()
    count: int = 0
    asked: int = 0
    offset: int = 0
    length: int | None = None
    ino: int = -1
    size: int | None = None
    regular: bool | None = None
    why: str = ""

    @property
    def ok(self) -> bool:
        return self.call.ok


_WRITE_FLAGS = frozenset({"O_WRONLY", "O_RDWR", "O_CREAT", "O_TRUNC"})
_SPECIAL = ("/dev/", "/proc/", "/sys/")


# Calls that give a file a (further) name: rename, link, renameat2's
# variants, and symlink, whose target the new name reaches.
_NAMING = ("rename", "link", "symlink")


def onto(e: Event) -> tuple[str, str] | None:
    """``(from, to)`` for a call that makes name ``to`` reach the file
    ``from`` names: a rename's or link's old and new names; a symlink's
    target and the link.  None for any other call."""
    if e.path is None or e.path2 is None or not e.kind.startswith(_NAMING):
        return None
    return (e.path2, e.path) if e.kind == "symlink" else (e.path, e.path2)


def writes(e: Event) -> bool:
    """Does the event write a regular file's contents or name it anew?"""
    if not e.ok or e.path is None or e.path.startswith(_SPECIAL):
        return False
    if e.kind == "open":
        return bool(e.flags & _WRITE_FLAGS) and "O_DIRECTORY" not in e.flags
    return e.kind.startswith(_NAMING) or e.kind in ("write", "pwrite", "ftruncate", "truncate", "fallocate", "mknod")


class Tracker:
    """The kernel's bookkeeping, as far as the log shows it (see the module doc)."""

    def __init__(self, merged: dict[int, int] | None = None, children: frozenset[int] = frozenset()) -> None:
        # fd -> process -> (description, close-on-exec): each process's
        # descriptor table (close-on-exec belongs to the descriptor, not
        # to the description: dup3 without O_CLOEXEC makes one without).
        self.by_fd: dict[int, dict[int, tuple[Desc, bool]]] = {}
        self.label: dict[int, int] = {}  # thread -> its process (a label; a thread id at first)
        # process -> the process it turned out to be (given: what a first
        # pass over the whole log found, so that a thread is known to be in
        # its process from its first call on)
        self.merged: dict[int, int] = dict(merged or {})
        # Threads that ran execve after other calls: children between fork
        # and exec.  A child's descriptor table is a copy of its parent's,
        # not the parent's own (``_copy``): what it closes or dup2s over
        # before its execve leaves the parent's descriptors open.
        self.children = children
        self.copy_of: dict[int, int] = {t: self.merged.pop(t) for t in children if t in self.merged}
        self.copies: set[int] = set()  # processes that are such a copy
        self.alive: dict[int, set[int]] = {}  # process -> its threads not yet exited
        self.cwd: dict[int, str] = {}
        self.names: dict[str, Inode] = {}
        self.absent: set[str] = set()
        self.directories: set[str] = set()
        self.events: list[Event] = []
        # thread label -> the processes that held each descriptor it used
        # when its call was ambiguous (one set per such call)
        self.held_by: dict[int, list[set[int]]] = {}
        self.exits: list[tuple[int, int, int]] = []  # (order, thread, its process then)
        self.last_call: dict[int, int] = {}  # thread -> order of its last call
        self.leaders: set[int] = set()  # threads that ran execve
        self._ids = 0
        self._execs = 0

    # -- processes: threads that share a descriptor table

    def canon(self, p: int) -> int:
        """What process label ``p`` turned out to be."""
        while p in self.merged:
            p = self.merged[p]
        return p

    def process(self, tid: int) -> int:
        """The process thread ``tid`` is in now."""
        p = self.canon(self.label.setdefault(tid, tid))
        self.alive.setdefault(p, set()).add(tid)
        return p

    def may_merge(self, a: int, b: int) -> bool:
        """Could processes ``a`` and ``b`` be one?  Not two that each ran
        execve: those are two programs."""
        a, b = self.canon(a), self.canon(b)
        if a in self.copies or b in self.copies:
            return a == b  # a child's table is its own from the fork on
        return a == b or not (a >= _EXECED and b >= _EXECED)

    def _parent(self, tid: int, p: int, holders: list[int]) -> int | None:
        """The process ``tid`` is a child of, when ``tid`` is a child
        between fork and exec whose table is not yet copied (``p``: its
        process now) and the log shows whose child it is: the one process
        that holds the descriptor it uses (or what a first pass found)."""
        if tid not in self.children or p != tid or p in self.copies:
            return None
        if tid in self.copy_of:
            return self.canon(self.copy_of[tid])
        return holders[0] if len(holders) == 1 else None

    def _copy(self, parent: int, child: int) -> None:
        """``child``'s descriptors are copies of ``parent``'s (sharing
        their descriptions, as fork does).  The copy is taken at the
        child's first call on a descriptor, so it may hold descriptors the
        parent opened after the fork: harmless, since the child only uses
        the ones it had and drops them all at execve."""
        self.copies.add(child)
        for table in self.by_fd.values():
            if parent in table:
                table[child] = table[parent]

    def closes_a_copy(self, tid: int, d: Desc) -> bool:
        """Is closing ``d`` in ``tid``'s process closing a child's copy of
        a description its parent still holds?  Then the file sees nothing."""
        p = self.process(tid)
        return p in self.copies and any(q != p and slot[0] is d for table in self.by_fd.values()
                                        for q, slot in table.items())

    def _merge(self, a: int, b: int) -> None:
        """Processes ``a`` and ``b`` are one: their threads share descriptors."""
        a, b = self.canon(a), self.canon(b)
        if a == b:
            return
        if a >= _EXECED:
            a, b = b, a  # the label of the process that ran execve stays
        self.merged[a] = b
        self.alive.setdefault(b, set()).update(self.alive.pop(a, set()))
        for table in self.by_fd.values():
            if a in table:
                d = table.pop(a)
                table.setdefault(b, d)

    def _new_id(self) -> int:
        self._ids += 1
        return self._ids

    def _drop(self, p: int) -> None:
        for table in self.by_fd.values():
            table.pop(p, None)

    def exec(self, tid: int) -> None:
        """``tid`` ran execve: it is a process of its own now, holding the
        descriptions its old process held without O_CLOEXEC."""
        old = self.process(tid)
        self._execs += 1
        new = _EXECED + self._execs  # the same label in every pass over the log
        self.label[tid] = new
        self.leaders.add(tid)
        self.alive[old].discard(tid)
        self.alive[new] = {tid}
        for table in self.by_fd.values():
            slot = table.get(old)
            if slot is not None and not slot[1]:
                table[new] = slot
        if not self.alive[old]:
            self._drop(old)

    def deduced(self) -> dict[int, int]:
        """Threads whose process the log shows only indirectly: the one
        process that held every descriptor the thread used, each time it
        used one that several held; or, of those, the process whose exit
        the thread's exit comes with (exit_group ends every thread of a
        process, the one that ran execve last)."""
        out: dict[int, int] = {}
        with_exit = self._exit_groups()

        def known(q: int) -> int:
            # A thread not known to be in any process, placed by its exit
            # for this deduction only (it is merged, if at all, by the next
            # pass's evidence).
            c = self.canon(q)
            return with_exit.get(c, c) if c < _EXECED else c

        for p, sets in self.held_by.items():
            if self.canon(p) != p:
                continue  # its process became known another way
            common = set.intersection(*({known(q) for q in s} for s in sets)) - {p}
            if len(common) == 1:
                out[p] = common.pop()
            elif known(p) in common:
                out[p] = known(p)
        return out

    def _exit_groups(self) -> dict[int, int]:
        """Each thread that exits after the last call of a thread that ran
        execve and before that thread exits: that thread's process."""
        out: dict[int, int] = {}
        for i, (order, tid, _) in enumerate(self.exits):
            for later, leader, process in self.exits[i + 1:]:
                if leader in self.leaders:
                    if self.last_call.get(leader, -1) < order and self.last_call.get(tid, -1) < order:
                        out[self.label.get(tid, tid)] = self.canon(process)
                    break
        return out

    def exit(self, tid: int) -> None:
        p = self.process(tid)
        self.alive[p].discard(tid)
        if not self.alive[p]:
            self._drop(p)  # the last thread is gone: so are the descriptors

    # -- descriptors

    def install(self, tid: int, fd: int, desc: Desc, cloexec: bool) -> None:
        """``fd`` of ``tid``'s process now holds ``desc`` (what it held
        before was closed, seen or not)."""
        self.by_fd.setdefault(fd, {})[self.process(tid)] = (desc, cloexec)

    def set_cloexec(self, tid: int, fd: int, on: bool) -> None:
        table = self.by_fd.get(fd) or {}
        p = self.process(tid)
        if p in table:
            table[p] = (table[p][0], on)

    def lookup(self, c: Call, fd: int | None) -> Desc | None:
        """The description ``fd`` of ``c``'s thread holds, or None (unknown,
        or ambiguous: then an ``ambiguous`` event goes to each candidate)."""
        if fd is None or fd < 0:
            return None
        table = self.by_fd.get(fd)
        if not table:
            return None
        p = self.process(c.pid)
        if p in table:
            return table[p][0]
        candidates = [(q, d) for q, (d, _) in table.items() if self.may_merge(p, q)]
        parent = self._parent(c.pid, p, [q for q, _ in candidates])
        if parent is not None and parent in table:
            self._copy(parent, p)
            return table[p][0]
        if len(candidates) == 1:
            q, d = candidates[0]
            self._merge(p, q)
            return d
        if p < _EXECED:
            self.held_by.setdefault(p, []).append({q for q, _ in candidates})
        for _, d in candidates:
            if d.path is not None:
                self.emit(AMBIGUOUS, c, path=d.path, desc=d,
                          why=f"descriptor {fd} is open in {len(candidates)} processes and this thread is not known to be in any")
        return None

    def release(self, tid: int, fd: int) -> Desc | None:
        """Close ``fd`` in ``tid``'s process."""
        slot = (self.by_fd.get(fd) or {}).pop(self.process(tid), None)
        return None if slot is None else slot[0]

    def lookup_quiet(self, tid: int, fd: int) -> Desc | None:
        """``lookup`` within ``tid``'s own process only, with no event."""
        slot = (self.by_fd.get(fd) or {}).get(self.process(tid))
        return None if slot is None else slot[0]

    # -- names

    def path(self, tid: int, dirfd: str | None, arg: str) -> str | None:
        """The name a path argument means, absolute when the log shows
        where it is relative to (else as given, normalised)."""
        p = unquote(arg)
        if p is None or p == "":
            return None
        if p.startswith("/"):
            return posixpath.normpath(p)
        base: str | None
        if dirfd is None or dirfd == AT_FDCWD:
            base = self.cwd.get(tid)
        else:
            n = int_arg(dirfd)
            d = self.lookup_quiet(tid, n) if n is not None else None
            base = d.path if d is not None and d.path is not None else f"<fd {dirfd}>"
        return posixpath.normpath(posixpath.join(base, p) if base else p)

    def inode(self, path: str) -> Inode:
        """The file ``path`` names (an unknown one, if the log has not shown it)."""
        ino = self.names.get(path)
        if ino is None:
            ino = self.names[path] = Inode(self._new_id(), None)
            self.absent.discard(path)
        return ino

    def gone(self, path: str) -> None:
        """The log shows ``path`` names nothing."""
        self.names.pop(path, None)
        self.absent.add(path)

    # -- events

    def emit(self, kind: str, c: Call, **kw: object) -> None:
        path = kw.get("path")
        desc = kw.get("desc")
        ino: Inode | None = None
        if isinstance(desc, Desc):
            ino = desc.inode
        elif isinstance(path, str):
            ino = self.names.get(path)
        dst = kw.get("path2")
        if kind.startswith(("rename", "link")) and isinstance(dst, str):
            ino = self.names.get(dst)
        if ino is not None:
            kw.setdefault("ino", ino.id)
            kw.setdefault("size", ino.size)
        self.events.append(Event(kind, c, c.pid, self.process(c.pid), **kw))  # type: ignore[arg-type]

    def run(self, records: Sequence[Record], args: Sequence[Args | None] | None = None) -> list[Event]:
        """Every event of the log, in order (``args``: each call's
        arguments, when another pass has them already)."""
        for i, rec in enumerate(records):
            if isinstance(rec, Exit):
                self.exits.append((rec.order, rec.pid, self.process(rec.pid)))
                self.exit(rec.pid)
                continue
            self.last_call[rec.pid] = rec.order
            handler = CALLS.get(rec.name, _unknown)
            a = args[i] if args is not None else None
            handler(self, rec, a if a is not None else Args(rec.args))
        return self.events


def track(records: list[Record]) -> tuple[list[Event], Tracker]:
    """Every event of the log, and the tracker's final state.  When a
    thread's call was ambiguous, the log is read again knowing from the
    start which threads turned out to share descriptors."""
    args = [Args(r.args) if isinstance(r, Call) else None for r in records]
    children = _children(records)
    tracker = Tracker(children=children)
    events = tracker.run(records, args)
    if any(e.kind == AMBIGUOUS for e in events):
        tracker = Tracker(tracker.merged | tracker.deduced(), children)
        events = tracker.run(records, args)
    return events, tracker


def _children(records: list[Record]) -> frozenset[int]:
    """Threads that ran execve after making other calls: children between
    fork and exec (the recommended trace has no clone; this is how the log
    shows one)."""
    seen: set[int] = set()
    out: set[int] = set()
    for r in records:
        if isinstance(r, Call):
            if r.name in ("execve", "execveat") and r.ok and r.pid in seen:
                out.add(r.pid)
            seen.add(r.pid)
    return frozenset(out)


# ------------------------------------------------------------ the calls

Handler = Callable[[Tracker, Call, Args], None]


def _arg(a: Args, i: int) -> str:
    return a[i]


def _skip(t: Tracker, c: Call, a: Args) -> None:
    """A call on no file (epoll_pwait, ...)."""


def _opener(dirfd: int | None, path: int, flags: int | None, fixed: frozenset[str] = frozenset()) -> Handler:
    def handle(t: Tracker, c: Call, a: Args) -> None:
        p = t.path(c.pid, _arg(a, dirfd) if dirfd is not None else None, _arg(a, path))
        if p is None:
            return
        raw = _arg(a, flags) if flags is not None else ""
        if raw.startswith("{"):  # openat2's struct open_how
            m = re.search(r"flags=([A-Z0-9_|]+)", raw)
            raw = m.group(1) if m else ""
        fl = frozenset(flag_names(raw)) | fixed if flags is not None else fixed
        if "O_DIRECTORY" in fl:
            t.directories.add(p)  # meant as a directory, whether or not it is one
        if not c.ok:
            if c.errno == "ENOENT":
                t.gone(p)
            t.emit("open", c, path=p, flags=fl)
            return
        assert c.ret is not None
        known_new = "O_CREAT" in fl and ("O_EXCL" in fl or p in t.absent)
        ino = t.names.get(p)
        if ino is None:
            ino = t.names[p] = Inode(t._new_id(), 0 if known_new else None)
            t.absent.discard(p)
        if "O_TRUNC" in fl:
            ino.size = 0  # Linux truncates even with O_RDONLY|O_TRUNC
        d = Desc(t._new_id(), p, fl, c.pid, 0, ino)
        t.install(c.pid, c.ret, d, "O_CLOEXEC" in fl)
        t.emit("open", c, path=p, desc=d, flags=fl)
    return handle


def _iov_len(arg: str) -> int:
    return sum(int(n) for n in re.findall(r"iov_len=(\d+)", arg))


def _writer(at: int | None, asked: Callable[[Args], int]) -> Handler:
    """write/pwrite64/writev/pwritev: ``at`` is the offset argument of a
    positional write."""
    def handle(t: Tracker, c: Call, a: Args) -> None:
        d = t.lookup(c, int_arg(_arg(a, 0)))
        if d is None or d.path is None:
            return
        n = c.ret if c.ok and c.ret is not None else 0
        pos = int_arg(_arg(a, at)) if at is not None else None
        ino = d.inode
        off = pos if pos is not None else d.offset
        if "O_APPEND" in d.flags and ino is not None and ino.size is not None and pos is None:
            off = ino.size  # O_APPEND: every write lands at the end
        if ino is not None and ino.size is not None and n:
            ino.size = max(ino.size, off + n)
        if pos is None:
            d.offset = off + n
        t.emit("pwrite" if at is not None else "write", c, path=d.path, desc=d, count=n, asked=asked(a), offset=off or 0)
    return handle


def _reader(at: int | None, asked: Callable[[Args], int]) -> Handler:
    def handle(t: Tracker, c: Call, a: Args) -> None:
        d = t.lookup(c, int_arg(_arg(a, 0)))
        if d is None or d.path is None:
            return
        n = c.ret if c.ok and c.ret is not None else 0
        pos = int_arg(_arg(a, at)) if at is not None else None
        off = pos if pos is not None else d.offset
        if pos is None:
            d.offset = off + n
        t.emit("pread" if at is not None else "read", c, path=d.path, desc=d, count=n, asked=asked(a), offset=off or 0)
    return handle


def _count(i: int) -> Callable[[Args], int]:
    return lambda a: int_arg(_arg(a, i)) or 0


def _ftruncate(t: Tracker, c: Call, a: Args) -> None:
    d = t.lookup(c, int_arg(_arg(a, 0)))
    if d is None or d.path is None:
        return
    n = int_arg(_arg(a, 1))
    if c.ok and d.inode is not None and n is not None:
        d.inode.size = n
    t.emit("ftruncate", c, path=d.path, desc=d, length=n)


def _on_fd(kind: str, fd: int = 0, why: str = "") -> Handler:
    """A call on a descriptor whose event is just its kind (fsync, flock,
    fdatasync, an ignored fchmod, ...)."""
    def handle(t: Tracker, c: Call, a: Args) -> None:
        d = t.lookup(c, int_arg(_arg(a, fd)))
        if d is not None and d.path is not None:
            t.emit(kind, c, path=d.path, desc=d, why=why)
    return handle


def _on_path(kind: str, dirfd: int | None, path: int, why: str = "") -> Handler:
    def handle(t: Tracker, c: Call, a: Args) -> None:
        p = t.path(c.pid, _arg(a, dirfd) if dirfd is not None else None, _arg(a, path))
        if p is not None:
            t.emit(kind, c, path=p, why=why)
    return handle


def _close(t: Tracker, c: Call, a: Args) -> None:
    fd = int_arg(_arg(a, 0))
    d = t.lookup(c, fd)
    if d is None or fd is None:
        return
    copy = t.closes_a_copy(c.pid, d)
    t.release(c.pid, fd)  # even a failed close releases the descriptor
    if d.path is not None and not copy:
        t.emit("close", c, path=d.path, desc=d)


def _close_range(t: Tracker, c: Call, a: Args) -> None:
    lo, hi = int_arg(_arg(a, 0)), int_arg(_arg(a, 1))
    if lo is None or hi is None or "CLOSE_RANGE_CLOEXEC" in _arg(a, 2):
        return
    for fd in [fd for fd in t.by_fd if lo <= fd <= hi]:
        held = t.lookup_quiet(c.pid, fd)
        copy = held is not None and t.closes_a_copy(c.pid, held)
        d = t.release(c.pid, fd)
        if d is not None and d.path is not None and not copy:
            t.emit("close", c, path=d.path, desc=d)


def _stat_result(t: Tracker, c: Call, p: str, struct: str, kind: str = "stat") -> None:
    if not c.ok:
        if c.errno == "ENOENT":
            t.gone(p)
        t.emit(kind, c, path=p)
        return
    size = st_size(struct)
    regular = None if "st_mode=" not in struct and "stx_mode=" not in struct else "S_IFREG" in struct
    if regular is False:
        t.directories.add(p)
    elif size is not None:
        t.inode(p).size = size
    t.emit(kind, c, path=p, length=size, regular=regular)


def _fstat_result(t: Tracker, c: Call, fd: int | None, struct: str) -> None:
    d = t.lookup(c, fd)
    if d is None or d.path is None:
        return
    size = st_size(struct) if c.ok else None
    if size is not None and d.inode is not None:
        d.inode.size = size
    t.emit("fstat", c, path=d.path, desc=d, length=size)


def _stat(dirfd: int | None, path: int, struct: int, flags: int | None) -> Handler:
    """stat, lstat, newfstatat, statx: a name's size; with AT_EMPTY_PATH
    and an empty name, the descriptor's (fstat)."""
    def handle(t: Tracker, c: Call, a: Args) -> None:
        if flags is not None and "AT_EMPTY_PATH" in _arg(a, flags) and unquote(_arg(a, path)) == "":
            _fstat_result(t, c, int_arg(_arg(a, dirfd if dirfd is not None else 0)), _arg(a, struct))
            return
        p = t.path(c.pid, _arg(a, dirfd) if dirfd is not None else None, _arg(a, path))
        if p is not None:
            _stat_result(t, c, p, _arg(a, struct))
    return handle


def _fstat(t: Tracker, c: Call, a: Args) -> None:
    _fstat_result(t, c, int_arg(_arg(a, 0)), _arg(a, 1))


def _access(dirfd: int | None, path: int) -> Handler:
    def handle(t: Tracker, c: Call, a: Args) -> None:
        p = t.path(c.pid, _arg(a, dirfd) if dirfd is not None else None, _arg(a, path))
        if p is not None:
            _stat_result(t, c, p, "", kind="exists")
    return handle


def _unlink(dirfd: int | None, path: int, flags: int | None) -> Handler:
    def handle(t: Tracker, c: Call, a: Args) -> None:
        p = t.path(c.pid, _arg(a, dirfd) if dirfd is not None else None, _arg(a, path))
        if p is None:
            return
        if flags is not None and "AT_REMOVEDIR" in _arg(a, flags):
            t.emit("rmdir", c, path=p)
        else:
            t.emit("unlink", c, path=p)
        if c.ok or c.errno == "ENOENT":
            t.gone(p)
    return handle


def _rename(od: int | None, old: int, nd: int | None, new: int, flags: int | None, kind: str = "rename") -> Handler:
    """rename, renameat, renameat2 (its flags name the variant), link, linkat."""
    def handle(t: Tracker, c: Call, a: Args) -> None:
        src = t.path(c.pid, _arg(a, od) if od is not None else None, _arg(a, old))
        dst = t.path(c.pid, _arg(a, nd) if nd is not None else None, _arg(a, new))
        if src is None or dst is None:
            return
        k = kind
        fl = _arg(a, flags) if flags is not None else ""
        for variant in ("RENAME_NOREPLACE", "RENAME_EXCHANGE", "RENAME_WHITEOUT"):
            if kind == "rename" and variant in fl:
                k = f"renameat2({variant})"
        if c.ok:
            ino = t.inode(src)
            if k in ("rename", "renameat2(RENAME_NOREPLACE)"):
                t.gone(src)
            t.names[dst] = ino
            t.absent.discard(dst)
        t.emit(k, c, path=src, path2=dst)
    return handle


def _symlink(target: int, nd: int | None, path: int) -> Handler:
    """symlink, symlinkat: ``path2`` is the name the link reaches (a
    relative target is relative to the link's directory)."""
    def handle(t: Tracker, c: Call, a: Args) -> None:
        p = t.path(c.pid, _arg(a, nd) if nd is not None else None, _arg(a, path))
        text = unquote(_arg(a, target))
        if p is None or not text:
            return
        to = posixpath.normpath(text if text.startswith("/") else posixpath.join(posixpath.dirname(p), text))
        if c.ok:
            # Opening the link reaches the target's file (none: dangling).
            if to in t.names:
                t.names[p] = t.names[to]
            else:
                t.names.pop(p, None)
            t.absent.discard(p)
        t.emit("symlink", c, path=p, path2=to, why=f"a symbolic link to {text}")
    return handle


def _flock(t: Tracker, c: Call, a: Args) -> None:
    d = t.lookup(c, int_arg(_arg(a, 0)))
    if d is not None and d.path is not None:
        t.emit("flock", c, path=d.path, desc=d, flags=frozenset(flag_names(_arg(a, 1))))


def _mkdir(dirfd: int | None, path: int) -> Handler:
    def handle(t: Tracker, c: Call, a: Args) -> None:
        p = t.path(c.pid, _arg(a, dirfd) if dirfd is not None else None, _arg(a, path))
        if p is not None:
            if c.ok or c.errno == "EEXIST":
                t.directories.add(p)
            t.emit("mkdir", c, path=p)
    return handle


def _utimensat(t: Tracker, c: Call, a: Args) -> None:
    if _arg(a, 1) == "NULL":  # futimens(fd): times only, on a descriptor
        d = t.lookup(c, int_arg(_arg(a, 0)))
        if d is not None and d.path is not None:
            t.emit(IGNORED, c, path=d.path, desc=d, why="futimens: sets times only")
        return
    p = t.path(c.pid, _arg(a, 0), _arg(a, 1))
    if p is not None:
        t.emit("chtimes", c, path=p)


def _mmap(t: Tracker, c: Call, a: Args) -> None:
    d = t.lookup(c, int_arg(_arg(a, 4)))
    if d is None or d.path is None:
        return
    t.emit("mmap", c, path=d.path, desc=d, length=int_arg(_arg(a, 1)), offset=int_arg(_arg(a, 5)) or 0,
           flags=frozenset(flag_names(_arg(a, 2)) + flag_names(_arg(a, 3))))


def _lseek(t: Tracker, c: Call, a: Args) -> None:
    d = t.lookup(c, int_arg(_arg(a, 0)))
    if d is None or not c.ok or c.ret is None:
        return
    moved = c.ret != d.offset
    d.offset = c.ret
    if d.path is not None:
        if moved:
            t.emit("lseek", c, path=d.path, desc=d, why="a seek that moves the offset")
        else:
            t.emit(IGNORED, c, path=d.path, desc=d, why="lseek to where the offset already is")


_FCNTL_IGNORED = ("F_GETFL", "F_GETFD", "F_SETFD", "F_GETOWN", "F_SETOWN", "F_GETSIG", "F_SETSIG", "F_GETLK",
                  "F_OFD_GETLK", "F_GETPIPE_SZ", "F_GET_SEALS", "F_GETLEASE", "F_NOTIFY", "F_GET_RW_HINT",
                  "F_SET_RW_HINT", "F_GET_FILE_RW_HINT", "F_SET_FILE_RW_HINT")


def _fcntl(t: Tracker, c: Call, a: Args) -> None:
    fd = int_arg(_arg(a, 0))
    cmd = _arg(a, 1)
    if cmd in ("F_DUPFD", "F_DUPFD_CLOEXEC"):
        _dup_to(t, c, fd, c.ret if c.ok else None, cmd == "F_DUPFD_CLOEXEC")
        return
    d = t.lookup(c, fd)
    if d is None:
        return
    if cmd == "F_SETFD" and fd is not None:
        t.set_cloexec(c.pid, fd, "FD_CLOEXEC" in _arg(a, 2))
    if d.path is None:
        return
    if cmd == "F_SETFL":
        if "O_APPEND" in _arg(a, 2) and "O_APPEND" not in d.flags:
            t.emit("O_APPEND", c, path=d.path, desc=d, why="fcntl(F_SETFL) turns O_APPEND on")
        else:
            t.emit(IGNORED, c, path=d.path, desc=d, why="fcntl(F_SETFL): status flags other than O_APPEND")
    elif cmd in ("F_SETLK", "F_SETLKW", "F_OFD_SETLK", "F_OFD_SETLKW"):
        t.emit("fcntl locks", c, path=d.path, desc=d, why="a record lock")
    elif cmd in _FCNTL_IGNORED:
        t.emit(IGNORED, c, path=d.path, desc=d, why=f"fcntl({cmd}): descriptor bookkeeping")
    else:
        t.emit("unknown", c, path=d.path, desc=d, why=f"fcntl({cmd})")


def _dup_to(t: Tracker, c: Call, old: int | None, new: int | None, cloexec: bool) -> None:
    d = t.lookup(c, old)
    if new is None:
        return
    over = t.lookup_quiet(c.pid, new)
    if over is not None and over is not d and over.path is not None and not t.closes_a_copy(c.pid, over):
        t.emit("dup", c, path=over.path, desc=over, why="dup2 over an open descriptor closes it")
    nd = d if d is not None else Desc(t._new_id(), None, frozenset(), c.pid)
    t.install(c.pid, new, nd, cloexec)
    if d is not None and d.path is not None:
        t.emit("dup", c, path=d.path, desc=d, why="a second descriptor sharing the offset")


def _dup(t: Tracker, c: Call, a: Args) -> None:
    _dup_to(t, c, int_arg(_arg(a, 0)), c.ret if c.ok else None, False)


def _dup2(t: Tracker, c: Call, a: Args) -> None:
    _dup_to(t, c, int_arg(_arg(a, 0)), c.ret if c.ok else None, "O_CLOEXEC" in _arg(a, 2))


def _new_fd(t: Tracker, c: Call, a: Args) -> None:
    """A call that returns a descriptor on no named file (a pipe, a socket, ...)."""
    if c.ok and c.ret is not None:
        t.install(c.pid, c.ret, Desc(t._new_id(), None, frozenset(), c.pid), "CLOEXEC" in c.args)


def _new_fds(arg: int) -> Handler:
    """pipe2, socketpair: two descriptors in an array argument."""
    def handle(t: Tracker, c: Call, a: Args) -> None:
        if c.ok:
            for fd in re.findall(r"-?\d+", _arg(a, arg)):
                t.install(c.pid, int(fd), Desc(t._new_id(), None, frozenset(), c.pid), "CLOEXEC" in c.args)
    return handle


def _copy(src: int, dst: int, offsets: tuple[int, ...]) -> Handler:
    """sendfile, copy_file_range: bytes from one descriptor to another,
    a read of the one and a write of the other (at their offsets)."""
    def handle(t: Tracker, c: Call, a: Args) -> None:
        n = c.ret if c.ok and c.ret is not None else 0
        explicit = any(_arg(a, i) not in ("NULL", "") for i in offsets)
        for i, kind in ((src, "read"), (dst, "write")):
            d = t.lookup(c, int_arg(_arg(a, i)))
            if d is None or d.path is None:
                continue
            if explicit:
                t.emit(f"{c.name} at an offset", c, path=d.path, desc=d)
                continue
            off = d.offset
            d.offset += n
            if kind == "write" and d.inode is not None and d.inode.size is not None and n:
                d.inode.size = max(d.inode.size, off + n)
            t.emit(kind, c, path=d.path, desc=d, count=n, asked=n if kind == "write" else n + 1, offset=off)
    return handle


def _chdir(t: Tracker, c: Call, a: Args) -> None:
    p = t.path(c.pid, None, _arg(a, 0))
    if c.ok and p is not None:
        t.cwd[c.pid] = p


def _fchdir(t: Tracker, c: Call, a: Args) -> None:
    d = t.lookup(c, int_arg(_arg(a, 0)))
    if c.ok and d is not None and d.path is not None:
        t.cwd[c.pid] = d.path


def _execve(t: Tracker, c: Call, a: Args) -> None:
    if c.ok:
        t.exec(c.pid)


def _ioctl(t: Tracker, c: Call, a: Args) -> None:
    d = t.lookup(c, int_arg(_arg(a, 0)))
    if d is None or d.path is None:
        return
    req = _arg(a, 1)
    if req.startswith(("FICLONE", "BTRFS_IOC_CLONE")):
        t.emit("reflink copies", c, path=d.path, desc=d, why=f"ioctl({req}) replaces the contents")
    else:
        t.emit(IGNORED, c, path=d.path, desc=d, why=f"ioctl({req})")


def _unknown(t: Tracker, c: Call, a: Args) -> None:
    """A call the table does not know: an error if it is on a file a
    sequence uses (it might change it), else nothing."""
    d = t.lookup(c, int_arg(_arg(a, 0))) if a.text.strip() else None
    if d is not None and d.path is not None:
        t.emit("unknown", c, path=d.path, desc=d, why=f"{c.name} is not in the lifter's table")
        return
    for arg in a.all():
        if arg.startswith('"'):
            p = t.path(c.pid, None, arg)
            if p is not None and p in t.names:
                t.emit("unknown", c, path=p, why=f"{c.name} is not in the lifter's table")


def _ignored_fd(why: str, fd: int = 0) -> Handler:
    return _on_fd(IGNORED, fd, why)


def _ignored_path(why: str, dirfd: int | None, path: int) -> Handler:
    return _on_path(IGNORED, dirfd, path, why)


_ATTRS = "sets attributes only (not contents or names)"

# One entry per system call: what it does to files, as events.  A call that
# changes contents or names and that the language lacks still has its entry
# here (its event's kind names what is missing); adding that operation to
# the language is one entry in ``spec.lift.generalise.OPERATIONS``.
CALLS: dict[str, Handler] = {
    # opening
    "open": _opener(None, 0, 1),
    "openat": _opener(0, 1, 2),
    "openat2": _opener(0, 1, 2),
    "creat": _opener(None, 0, None, frozenset({"O_WRONLY", "O_CREAT", "O_TRUNC"})),
    # contents
    "write": _writer(None, _count(2)),
    "writev": _writer(None, lambda a: _iov_len(_arg(a, 1))),
    "pwrite64": _writer(3, _count(2)),
    "pwritev": _writer(3, lambda a: _iov_len(_arg(a, 1))),
    "pwritev2": _writer(3, lambda a: _iov_len(_arg(a, 1))),
    "read": _reader(None, _count(2)),
    "readv": _reader(None, lambda a: _iov_len(_arg(a, 1))),
    "pread64": _reader(3, _count(2)),
    "preadv": _reader(3, lambda a: _iov_len(_arg(a, 1))),
    "preadv2": _reader(3, lambda a: _iov_len(_arg(a, 1))),
    "sendfile": _copy(1, 0, (2,)),
    "sendfile64": _copy(1, 0, (2,)),
    "copy_file_range": _copy(0, 2, (1, 3)),
    "splice": _on_fd("splice", 2),
    "ftruncate": _ftruncate,
    "truncate": _on_path("truncate", None, 0, "truncate by name"),
    "fallocate": _on_fd("fallocate"),
    "fsync": _on_fd("fsync"),
    "fdatasync": _on_fd("fdatasync"),
    "sync_file_range": _on_fd("sync_file_range"),
    "close": _close,
    "close_range": _close_range,
    "mmap": _mmap,
    "lseek": _lseek,
    # names
    "stat": _stat(None, 0, 1, None),
    "lstat": _stat(None, 0, 1, None),
    "newfstatat": _stat(0, 1, 2, 3),
    "fstatat64": _stat(0, 1, 2, 3),
    "statx": _stat(0, 1, 4, 2),
    "fstat": _fstat,
    "access": _access(None, 0),
    "faccessat": _access(0, 1),
    "faccessat2": _access(0, 1),
    "unlink": _unlink(None, 0, None),
    "unlinkat": _unlink(0, 1, 2),
    "rmdir": _on_path("rmdir", None, 0),
    "rename": _rename(None, 0, None, 1, None),
    "renameat": _rename(0, 1, 2, 3, None),
    "renameat2": _rename(0, 1, 2, 3, 4),
    "link": _rename(None, 0, None, 1, None, kind="link"),
    "linkat": _rename(0, 1, 2, 3, None, kind="link"),
    "symlink": _symlink(0, None, 1),
    "symlinkat": _symlink(0, 1, 2),
    "mkdir": _mkdir(None, 0),
    "mkdirat": _mkdir(0, 1),
    "mknod": _on_path("mknod", None, 0),
    "mknodat": _on_path("mknod", 0, 1),
    "utimensat": _utimensat,
    "utime": _on_path("chtimes", None, 0),
    "utimes": _on_path("chtimes", None, 0),
    "futimesat": _on_path("chtimes", 0, 1),
    "flock": _flock,
    "fcntl": _fcntl,
    "dup": _dup,
    "dup2": _dup2,
    "dup3": _dup2,
    # where names are relative to; what survives exec
    "chdir": _chdir,
    "fchdir": _fchdir,
    "execve": _execve,
    "execveat": _execve,
    # neither contents nor names
    "fchmod": _ignored_fd(_ATTRS),
    "fchown": _ignored_fd(_ATTRS),
    "fsetxattr": _ignored_fd(_ATTRS),
    "fremovexattr": _ignored_fd(_ATTRS),
    "fgetxattr": _ignored_fd("reads attributes"),
    "flistxattr": _ignored_fd("reads attributes"),
    "fstatfs": _ignored_fd("reads the file system's figures"),
    "fadvise64": _ignored_fd("advice to the page cache"),
    "readahead": _ignored_fd("advice to the page cache"),
    "getdents": _ignored_fd("reads a directory"),
    "getdents64": _ignored_fd("reads a directory"),
    "epoll_ctl": _ignored_fd("registers the descriptor with epoll", fd=2),
    "ioctl": _ioctl,
    "chmod": _ignored_path(_ATTRS, None, 0),
    "chown": _ignored_path(_ATTRS, None, 0),
    "lchown": _ignored_path(_ATTRS, None, 0),
    "fchmodat": _ignored_path(_ATTRS, 0, 1),
    "fchmodat2": _ignored_path(_ATTRS, 0, 1),
    "fchownat": _ignored_path(_ATTRS, 0, 1),
    "setxattr": _ignored_path(_ATTRS, None, 0),
    "lsetxattr": _ignored_path(_ATTRS, None, 0),
    "removexattr": _ignored_path(_ATTRS, None, 0),
    "lremovexattr": _ignored_path(_ATTRS, None, 0),
    "getxattr": _ignored_path("reads attributes", None, 0),
    "lgetxattr": _ignored_path("reads attributes", None, 0),
    "listxattr": _ignored_path("reads attributes", None, 0),
    "llistxattr": _ignored_path("reads attributes", None, 0),
    "readlink": _on_path("readlink", None, 0),
    "readlinkat": _on_path("readlink", 0, 1),
    "statfs": _ignored_path("reads the file system's figures", None, 0),
    "inotify_add_watch": _ignored_path("watches for changes", None, 1),
    # descriptors on no named file
    "pipe": _new_fds(0),
    "pipe2": _new_fds(0),
    "socketpair": _new_fds(3),
    **{name: _new_fd for name in ("socket", "accept", "accept4", "eventfd", "eventfd2", "epoll_create", "epoll_create1",
                                   "memfd_create", "timerfd_create", "signalfd", "signalfd4", "inotify_init",
                                   "inotify_init1", "fanotify_init", "userfaultfd", "perf_event_open", "pidfd_open",
                                   "pidfd_getfd", "open_tree", "fsopen", "fsmount", "fspick", "memfd_secret")},
    # calls on no file
    **{name: _skip for name in ("epoll_pwait", "epoll_pwait2", "epoll_wait", "poll", "ppoll", "select", "pselect6",
                                "getcwd", "pidfd_send_signal", "???", "sync", "syncfs", "umask", "exit_group")},
}
