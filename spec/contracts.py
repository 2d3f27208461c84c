"""PEP 316 contracts over the model, for CrossHair to search.

Two kinds of contract live here, both over pure functions of small typed
values (CrossHair makes them symbolic):

- **Operation semantics** at the level of the interpreter: each function
  runs one operation through the model's own semantics (the operation's
  row of ``spec.semantics.OPS`` on ``spec.machine.PyDom``) on a
  one-process world built from plain arguments, and its ``post:`` lines state what Linux
  promises of that call (the file-system helpers in ``spec.fs`` carry the
  byte-level contracts).
- **Inductive steps**: "if a small symbolic state satisfies the protocol's
  invariant, every enabled step of every process keeps it".  The state is
  an abstraction of ``spec.machine.World`` for single-file writers
  (:class:`EntryState`); the step is the real ``spec.machine.step`` on the
  concrete World it stands for, so nothing here restates a protocol.  For
  ``write-then-truncate`` CrossHair finds no counterexample; for
  ``write-file`` (O_TRUNC first) it must find one - the second writer's
  open emptying a published entry - and ``model_tests/test_crosshair.py``
  asserts that it does.

CrossHair's search is bounded (a per-condition time limit), so a clean run
is evidence, not proof; the Z3 proofs in ``proofs/`` are the proofs.  The
bounds are explicit in the preconditions: an entry of STEP_LENGTH bytes,
two writers (which covers every N, see above).
"""

from __future__ import annotations

from typing import NamedTuple

from . import fs as F
from .fs import FileSystem
from .machine import PyDom, local_faults, start, step
from .ops import (
    ENTRY,
    Chtimes,
    Close,
    Data,
    Ftruncate,
    Goto,
    If,
    Instr,
    Length,
    Open,
    OpenFlags,
    Outcome,
    Program,
    PWrite,
    Return,
    Role,
    Write,
)
from .protocols import CATALOGUE
from .state import UNSET, WRITE_BIT, Began, Desc, Proc, Reg, Status, World
from .system import Process, System

PAYLOAD = b"abc"  # every writer's entry is a prefix of this (no zero bytes)
MAX_WRITERS = 3
MAX_FILE = 6  # bytes a symbolic file may hold (twice the longest entry)
# The inductive-step contracts fix the entry's length: CrossHair's search
# stalls on a file compared with a slice of symbolic length.  Two bytes is
# the least length with a "middle of a write" (the Z3 proofs take L symbolic).
STEP_LENGTH = 2

# ------------------------------------------------------------ one operation
# Each runs a two-instruction program (the operation, then return) through
# the model's own semantics for it, on a file system with at most one file.


def _run_op(op: Instr, content: bytes | None, offset: int | None, payload: bytes = PAYLOAD) -> tuple[bytes | None, str, int]:
    """Run ``op`` once with the model's own semantics, on a world whose
    ``entry`` holds ``content`` (None: no such file); ``offset`` is that of
    a descriptor ``f`` already open for writing on it (None: f unset).
    Returns the entry's content after, the errno ("" for success) and f's
    offset after (-1 when unset).

    The operation alone, not ``step``: step would settle into the return,
    which releases f and clears the errno this wants to look at."""
    prog = Program("op", Role.WRITER, (op, Return(Outcome.OK)))
    kind = System((Process(prog, (("entry", payload),)),), granularity="write").kinds[0]
    fs = FileSystem() if content is None else FileSystem((("entry", 0),), (content,), (b"",))
    regs: list[Reg] = [UNSET] * len(kind.reg)
    if offset is not None:
        regs[kind.reg["f"]] = Desc(0, offset, WRITE_BIT)
    p = Proc(0, 0, Status.RUNNING, "", 0, tuple(regs), (), Began.NOT_YET)
    d = PyDom(kind, p, fs, None, "write", False)
    d.run_op(op)
    reg = d.regs[kind.reg["f"]]
    return d.fs.file("entry"), d.last, reg.off if isinstance(reg, Desc) else -1


def open_op(content: bytes | None, write: bool, creat: bool, trunc: bool, excl: bool) -> tuple[bytes | None, str]:
    """open(entry, flags, 0666): the entry's content after, and the errno.
    O_TRUNC empties the file even without write access: Linux does, POSIX
    leaves it undefined (the OS lockstep tests found the first model wrong).

    post: (__return__[1] == "EEXIST") == (content is not None and creat and excl)
    post: (__return__[1] == "ENOENT") == (content is None and not creat)
    post: __return__[1] in ("", "EEXIST", "ENOENT")
    post: __return__[1] != "" or __return__[0] is not None
    post: __return__[1] != "" or not trunc or __return__[0] == b""
    post: __return__[1] != "" or trunc or __return__[0] == (b"" if content is None else content)
    post: __return__[1] == "" or __return__[0] == content
    """
    flags = OpenFlags.WRITE if write else OpenFlags.READ
    for on, flag in ((creat, OpenFlags.CREAT), (trunc, OpenFlags.TRUNC), (excl, OpenFlags.EXCL)):
        if on:
            flags |= flag
    after, errno, _ = _run_op(Open(ENTRY, flags), content, None)
    return after, errno


def write_op(content: bytes, offset: int, n: int) -> tuple[bytes | None, int]:
    """write(f, PAYLOAD[:n]) with f at ``offset``: the content after, and
    f's offset after.  A write of no bytes changes nothing, even past the
    end (Linux does not extend the file; CrossHair found that the first
    version of this contract, ``write_at`` for every n, said otherwise).

    pre: 0 <= offset <= MAX_FILE
    pre: 0 <= n <= len(PAYLOAD)
    pre: len(content) <= MAX_FILE
    post: __return__[1] == offset + n
    post: n == 0 or __return__[0] == F.write_at(content, offset, PAYLOAD[:n])
    post: n > 0 or __return__[0] == content
    post: __return__[0] is not None and len(__return__[0]) == (max(len(content), offset + n) if n else len(content))
    """
    after, _, off = _run_op(Write(Data("entry")), content, offset, PAYLOAD[:n])
    return after, off


def pwrite_op(content: bytes, fd_offset: int, at: int, n: int) -> tuple[bytes | None, int]:
    """pwrite(f, PAYLOAD[:n], at): the content after, and f's offset after
    (pwrite never moves it).

    pre: 0 <= fd_offset <= MAX_FILE
    pre: 0 <= at <= MAX_FILE
    pre: 0 <= n <= len(PAYLOAD)
    pre: len(content) <= MAX_FILE
    post: __return__[1] == fd_offset
    post: n == 0 or __return__[0] == F.write_at(content, at, PAYLOAD[:n])
    post: n > 0 or __return__[0] == content
    """
    after, _, off = _run_op(PWrite(Data("entry"), at), content, fd_offset, PAYLOAD[:n])
    return after, off


def ftruncate_op(content: bytes, n: int) -> bytes | None:
    """ftruncate(f, n) on a descriptor open for writing.

    pre: 0 <= n <= MAX_FILE
    pre: len(content) <= MAX_FILE
    post: __return__ is not None
    post: len(__return__) == n
    post: __return__[:min(n, len(content))] == content[:min(n, len(content))]
    post: __return__[len(content):] == bytes(max(0, n - len(content)))
    """
    return _run_op(Ftruncate(Length(None, n)), content, 0)[0]


# ------------------------------------------------------------ inductive steps


class Writer(NamedTuple):
    """One single-file writer, as much of ``spec.machine.Proc`` as
    ``write-file`` and ``write-then-truncate`` use.

    pc:       next instruction (an operation while running).
    holds:    whether its descriptor ``f`` is open (on the entry's inode).
    offset:   f's offset (0 when not open).
    progress: bytes of the current write already done.
    status:   "run", "ok" or "fail".
    """

    pc: int
    holds: bool
    offset: int
    progress: int
    status: str


class EntryState(NamedTuple):
    """A small world of writers of one entry.

    length:  the entry's length L; every writer writes PAYLOAD[:L].
    content: the entry's bytes, None while no file has the name.
    writers: each writer process.
    """

    length: int
    content: bytes | None
    writers: tuple[Writer, ...]


def _program(name: str) -> Program:
    return CATALOGUE[name].program


def _system(name: str, length: int) -> System:
    """One writer of the protocol, byte granularity, one fault available
    (a world may hold more processes of the same kind)."""
    return System((Process(_program(name), (("entry", PAYLOAD[:length]),)),), faults=1)


def well_formed(s: EntryState, name: str) -> bool:
    """``s`` stands for a World of ``name`` writers: bounds, pcs at
    operations, descriptors held exactly between open and close."""
    code = _program(name).code
    if not (1 <= s.length <= len(PAYLOAD) and 1 <= len(s.writers) <= MAX_WRITERS):
        return False
    if s.content is not None and len(s.content) > MAX_FILE:
        return False
    for w in s.writers:
        if w.status != "run":
            if w != Writer(len(code), False, 0, 0, w.status) or w.status not in ("ok", "fail"):
                return False
            continue
        if not 0 <= w.pc < len(code):
            return False
        ins = code[w.pc]
        if isinstance(ins, (If, Goto, Return, Chtimes)):
            return False  # settle never stops at local control flow
        if w.holds != isinstance(ins, (Write, Ftruncate, Close)):
            return False  # these programs hold f exactly there
        if w.holds and s.content is None:
            return False  # nothing unlinks the entry in these programs
        if not 0 <= w.offset <= MAX_FILE or (not w.holds and w.offset != 0):
            return False
        if isinstance(ins, Write):
            if not 0 <= w.progress < s.length:
                return False
        elif w.progress != 0:
            return False
    return True


def entry_invariant(s: EntryState, name: str) -> bool:
    """The invariant that makes ``published-entry-stays-complete`` hold:

    - the entry is always a prefix of the payload (never torn, no hole);
    - once a writer has returned ok, the entry is the whole payload;
    - a writer in the middle of its write has written its first
      ``progress`` bytes at offset ``progress``, and the file is at least
      that long (so its next byte lands in place, not past a hole);
    - a writer at its truncate has written everything: offset L, file L;
    - a writer at its success-path close sees the whole payload.
    """
    e = PAYLOAD[:s.length]
    c = s.content
    code = _program(name).code
    success_close = next(i for i, ins in enumerate(code) if isinstance(ins, Close))
    if c is not None and c != e[:len(c)]:
        return False
    for w in s.writers:
        if w.status == "ok" and c != e:
            return False
        if w.status != "run":
            continue
        ins = code[w.pc]
        if isinstance(ins, Write) and (w.offset != w.progress or c is None or len(c) < w.offset):
            return False
        if isinstance(ins, Ftruncate) and (w.offset != s.length or c != e):
            return False
        if w.pc == success_close and c != e:
            return False
    return True


def to_world(s: EntryState, name: str) -> World:
    """The concrete World that ``s`` stands for (the entry is inode 0)."""
    # Durable bytes do not matter here (no crash, no fsync in these programs).
    fs = FileSystem() if s.content is None else FileSystem((("entry", 0),), (s.content,), (b"",))
    procs = []
    for w in s.writers:
        regs: tuple[Reg, ...] = (Desc(0, w.offset, WRITE_BIT),) if w.holds else (UNSET,)
        procs.append(Proc(0, w.pc, _status(w.status), "", w.progress, regs, (), Began.NOT_YET))
    return World(fs, tuple(procs), 0)


def _status(s: str) -> Status:
    """A Writer's status as the model's: by comparison, not ``Status(s)``,
    which CrossHair would have to solve for every member of the enum."""
    return Status.RUNNING if s == "run" else Status.OK if s == "ok" else Status.FAIL


def from_world(w: World, length: int) -> EntryState:
    """The EntryState of a World of single-file writers."""
    writers = []
    for p in w.procs:
        f = p.regs[0]
        writers.append(Writer(p.pc, isinstance(f, Desc), f.off if isinstance(f, Desc) else 0, p.progress, p.status.value))
    return EntryState(length, w.fs.file("entry"), tuple(writers))


def _step(s: EntryState, name: str, i: int, fault: bool) -> EntryState:
    """Writer ``i`` takes its next step in the model, failing if ``fault``
    and its operation can fail."""
    system = _system(name, s.length)
    w = to_world(s, name)
    options = local_faults(system, w.procs[i], True)
    return from_world(step(system, w, i, options[0] if fault and options else None), s.length)


# The step contracts take two writers, not a tuple of symbolic length:
# CrossHair finds write-file's counterexample in seconds this way and not at
# all with a variable-length tuple.  Two suffice: every clause of
# entry_invariant relates the file to one writer, and a step changes the
# file and one writer, so a step that keeps the clauses of the stepping
# writer and of any one other writer keeps them for every N.


def write_then_truncate_step(content: bytes | None, w0: Writer, w1: Writer, i: int, fault: bool) -> EntryState:
    """One step of ``write-then-truncate`` keeps the invariant.

    pre: well_formed(EntryState(STEP_LENGTH, content, (w0, w1)), "write-then-truncate")
    pre: entry_invariant(EntryState(STEP_LENGTH, content, (w0, w1)), "write-then-truncate")
    pre: i in (0, 1)
    pre: (w0, w1)[i].status == "run"
    post: well_formed(__return__, "write-then-truncate")
    post: entry_invariant(__return__, "write-then-truncate")
    """
    return _step(EntryState(STEP_LENGTH, content, (w0, w1)), "write-then-truncate", i, fault)


def write_file_step(content: bytes | None, w0: Writer, w1: Writer, i: int, fault: bool) -> EntryState:
    """One step of ``write-file`` keeps the same invariant - it does not:
    CrossHair must refute this contract (the known-bad twin), with a
    published entry and a second writer about to open it with O_TRUNC.

    pre: well_formed(EntryState(STEP_LENGTH, content, (w0, w1)), "write-file")
    pre: entry_invariant(EntryState(STEP_LENGTH, content, (w0, w1)), "write-file")
    pre: i in (0, 1)
    pre: (w0, w1)[i].status == "run"
    post: entry_invariant(__return__, "write-file")
    """
    return _step(EntryState(STEP_LENGTH, content, (w0, w1)), "write-file", i, fault)


def initial_state(name: str, writers: int, length: int) -> EntryState:
    """The base case: ``writers`` processes at their first operation, no file.

    pre: name in ("write-file", "write-then-truncate")
    pre: 1 <= writers <= MAX_WRITERS
    pre: 1 <= length <= len(PAYLOAD)
    post: well_formed(__return__, name)
    post: entry_invariant(__return__, name)
    """
    p = start(_system(name, length), 0, FileSystem())
    return from_world(World(FileSystem(), (p,) * writers, 0), length)
