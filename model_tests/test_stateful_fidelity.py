"""Is the file-system model faithful to Linux?  Arbitrary programs, op by op.

The lockstep machine (``test_stateful_lockstep.py``) runs the catalogue's
protocols; this one generates *arbitrary* straight-line programs from the
instruction language - random open flags, descriptors, offsets, lengths,
payload slices, truncates, unlinks and renames across two shared paths and
a private one, stats, mappings - for up to three processes, and runs them
in the model and on the real kernel in lockstep, comparing after every
step the whole sandbox and every process's registers (errno included).

The programs also make directories (``mkdir``, or ``Program.dirs``) and
files under them, symlinks (open through them, with ``O_NOFOLLOW``,
readlink), hard links, renameat2(RENAME_NOREPLACE), O_APPEND writes,
fdatasync, and flocks across processes: a process that must wait for a
lock is not stepped, and the model (``spec.machine.enabled``) and Linux
(``OSWorld.enabled``, the request with LOCK_NB) must agree on which can.

Where the two disagree, the model is wrong or the difference is a
deliberate abstraction; the abstractions are excluded from the generator
here (each one named, with its reason, in ``ABSTRACTIONS``) and pinned by a
test of its own, so a change on either side shows up.

The known-bad twin: with ``spec.fs.truncate`` broken to forget its zero
extension, the same machine must find a disagreement.
"""

from __future__ import annotations

import errno
import os
import pathlib
import shutil
import tempfile
from typing import Callable

import pytest
from hypothesis import Phase, event, given, settings, strategies as st
from hypothesis.control import currently_in_test_context
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test

from reference.lockstep import difference
from reference.osworld import OSWorld, Snapshot, project
from spec import fs as F
from spec.machine import enabled, faults, initial, step
from spec.ops import (
    Chtimes,
    Close,
    Data,
    Fdatasync,
    Flock,
    Fstat,
    Fsync,
    Ftruncate,
    Instr,
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
    Stat,
    Symlink,
    Unlink,
    Write,
)
from spec.state import Size, Status, World
from spec.system import Process, SetupError, System

PAYLOAD = b"xyz"  # no zero byte, so a hole is always visible
# Names.  Files (and a symlink's targets) at the root and under directories
# that a program names (``Program.dirs``) or makes (mkdir); symlinks only
# ever at the link names, and only files are their targets, so no link
# points at a link (see ABSTRACTIONS); private names, at the root and under
# a directory.
SHARED = (Path("a"), Path("b"))
NESTED = (Path("d/c"), Path("e/f/g"))
FILES = (*SHARED, *NESTED)
LINKS = (Path("l"), Path("m"), Path("d/l"))
PRIVATE = Path("t", private=True)
PRIVATES = (PRIVATE, Path("d/t", private=True))
PATHS = (*FILES, *LINKS, *PRIVATES)
DIRS = (Path("d"), Path("e"), Path("e/f"))
FDS = ("f", "g")

# Disagreements this machine found, all fixed, each pinned by a test below:
# a 0-byte read on a bad descriptor (the OS interpreter skipped read(2)), a
# negative ftruncate length and a negative pwrite offset (EINVAL on Linux;
# the model sliced with Python's negative indexes), and mmap of a write-only
# descriptor (EACCES on Linux; the model mapped it).  A negative read count
# has no meaning (read's count is a size_t): such a program is not generated.
# With the file system grown (links, directories, flock, O_APPEND), in
# spec/semantics.py and spec/system.py: a failed stat's size under a
# missing directory, O_CREAT through a link into a missing directory, an
# O_APPEND write of no bytes, an open over a locked descriptor, rename
# between two names of one inode, and a flock conversion that must wait.

# Where the model deliberately differs from Linux: kept out of the
# generator, each pinned by a test below that shows both sides (so a change
# on either shows up).
ABSTRACTIONS: dict[str, str] = {
    "symlink-chain": "a symlink to a symlink is ELOOP in the model after one hop; Linux follows up to 40. "
                     "Symlinks are made only at link names (LINKS) and point only at file names (FILES), and "
                     "a link name moves only to a link name, so no link points at a link.",
    "symlink-moved-across-directories": "the model resolves a symlink's target from the root; Linux from the "
                     "directory the link is in, so a symlink renamed or linked into another directory points "
                     "elsewhere on Linux only. A link name moves only within its own directory.",
    "flock-kept-by-a-mapping": "a mapping holds its open description (the kernel's vma, and the interpreter's "
                     "duplicate of the descriptor), so on Linux a flock on it outlives close() and a re-open of "
                     "the register until munmap or exit; the model drops it at once (it allows more, never "
                     "less: other processes may lock sooner). A system with a flock is generated without mmap.",
}

STATS: dict[str, int] = {"examples": 0, "steps": 0}


def _flags() -> st.SearchStrategy[OpenFlags]:
    rw = st.sampled_from([OpenFlags.READ, OpenFlags.WRITE, OpenFlags.READ | OpenFlags.WRITE])
    extras = st.lists(st.sampled_from([OpenFlags.CREAT, OpenFlags.TRUNC, OpenFlags.EXCL, OpenFlags.APPEND,
                                       OpenFlags.NOFOLLOW]), unique=True)

    def combine(base: OpenFlags, more: list[OpenFlags]) -> OpenFlags:
        for f in more:
            base |= f
        return base

    return st.builds(combine, rw, extras)


def _data() -> st.SearchStrategy[Data]:
    bound = st.none() | st.integers(-3, 3)
    return st.builds(Data, st.just("p"), bound, bound)


def _length(least: int = -2) -> st.SearchStrategy[Length]:
    return st.builds(Length, st.none(), st.integers(least, 6)) | st.builds(Length, st.just("p"), st.integers(max(least, -4), 2))


fd = st.sampled_from(FDS)
path = st.sampled_from(PATHS)
shared = st.sampled_from(SHARED)
files = st.sampled_from(FILES)
links = st.sampled_from(LINKS)
not_a_link = st.sampled_from((*FILES, *PRIVATES))
dirs = st.sampled_from(DIRS)
lock_op = st.sampled_from(list(LockOp))


def _same_dir(pair: tuple[Path, Path]) -> bool:
    return pair[0].parents() == pair[1].parents()


def _moves(make: Callable[[Path, Path], Instr]) -> st.SearchStrategy[Instr]:
    """rename or link: a file may go anywhere; a link name only to a link
    name (a symlink never lands where a link may point), in its own
    directory (see ABSTRACTIONS)."""
    link_pairs = st.tuples(links, links).filter(_same_dir)
    return st.builds(make, not_a_link, path) | link_pairs.map(lambda ab: make(*ab))


INSTRUCTIONS: st.SearchStrategy[Instr] = st.one_of(
    st.builds(Open, path, _flags(), fd),
    st.builds(Write, _data(), fd),
    st.builds(PWrite, _data(), st.integers(-2, 6), fd),
    st.builds(Read, _length(0), fd, st.just("buf")),
    st.builds(Ftruncate, _length(), fd),
    st.builds(Fsync, fd),
    st.builds(Fdatasync, fd),
    st.builds(Close, fd),
    st.builds(Stat, path, st.just("st")),
    st.builds(Fstat, fd, st.just("st")),
    st.builds(Unlink, path),
    _moves(lambda a, b: Rename(a, b)),
    _moves(lambda a, b: Rename(a, b, noreplace=True)),
    _moves(Link),
    st.builds(Mkdir, dirs),
    st.builds(Symlink, files, links),
    st.builds(Readlink, path, st.just("lbuf")),
    st.builds(Flock, lock_op, fd),
    st.builds(Chtimes, path),
    st.builds(Mmap, fd, st.just("st"), st.just("map")),
    st.builds(MapRead, st.just("map"), st.just("mbuf")),
)


def _program(body: list[Instr], n: int, dirs: tuple[str, ...] = ()) -> Program:
    return Program(f"arbitrary-{n}", Role.WRITER, (*body, Return(Outcome.OK)), dirs=dirs)


# Snippets that make the corners likely: random ops alone mostly meet
# missing files and closed descriptors, and never a mapping whose file
# shrinks under it (SIGBUS) - so some chunks create and fill a file, or map
# one, the way the protocols do; make a directory and a file in it; make a
# symlink and open through it; take a lock and write under it; append.
RW_CREAT = OpenFlags.READ | OpenFlags.WRITE | OpenFlags.CREAT
SNIPPETS: st.SearchStrategy[list[Instr]] = st.one_of(
    st.builds(lambda p, d, f: [Open(p, RW_CREAT, f), Write(d, f)], path, _data(), fd),
    st.builds(lambda p, m, d, f: [Open(p, m | OpenFlags.CREAT, f), Write(d, f), Fstat(f, "st"), Mmap(f, "st", "map")],
              path, st.sampled_from([OpenFlags.READ | OpenFlags.WRITE, OpenFlags.WRITE]), _data(), fd),
    st.builds(lambda f, n: [Ftruncate(Length(None, n), f), MapRead("map", "mbuf")], fd, st.integers(0, 2)),
    st.builds(lambda p, d, f: [Mkdir(Path("e")), Mkdir(Path("e/f")), Open(p, RW_CREAT, f), Write(d, f)],
              st.sampled_from([Path("e/f/g"), Path("d/c"), Path("d/t", private=True)]), _data(), fd),
    st.builds(lambda t, ln, m, f: [Symlink(t, ln), Open(ln, m, f)], files, links, _flags(), fd),
    st.builds(lambda p, op, d, f: [Open(p, RW_CREAT, f), Flock(op, f), Write(d, f), Flock(LockOp.UNLOCK, f)],
              st.sampled_from([Path("a"), Path("l")]), lock_op, _data(), fd),
    # Held across steps, and converted: processes meet on the lock.
    st.builds(lambda p, ops, d, f: [Open(p, RW_CREAT, f), *[Flock(op, f) for op in ops], Write(d, f), Close(f)],
              st.sampled_from([Path("a"), Path("l")]),
              st.lists(st.sampled_from([LockOp.SHARED, LockOp.EXCLUSIVE]), min_size=1, max_size=3), _data(), fd),
    st.builds(lambda p, d, f: [Open(p, OpenFlags.WRITE | OpenFlags.CREAT | OpenFlags.APPEND, f), Write(d, f)],
              st.sampled_from([Path("a"), Path("l")]), _data(), fd),
)
CHUNKS = INSTRUCTIONS.map(lambda i: [i]) | SNIPPETS


def _flatten(chunks: list[list[Instr]]) -> list[Instr]:
    return [ins for chunk in chunks for ins in chunk]


bodies = st.lists(CHUNKS, min_size=3, max_size=10).map(_flatten)
# Processes that meet on one lock: each starts by locking ``a`` (shared or
# exclusive, converting), writes under it, and goes on arbitrarily.
LOCKED = st.lists(st.sampled_from([LockOp.SHARED, LockOp.EXCLUSIVE]), min_size=1, max_size=3)
locking = st.builds(lambda ops, d, f, rest: [Open(Path("a"), RW_CREAT, f), *[Flock(op, f) for op in ops], Write(d, f),
                                             *rest], LOCKED, _data(), fd, st.lists(CHUNKS, max_size=5).map(_flatten))
programs = (st.lists(bodies, min_size=1, max_size=3) | st.lists(bodies, min_size=1, max_size=3)
            | st.lists(bodies, min_size=1, max_size=3) | st.lists(locking, min_size=2, max_size=3))
# The directories that exist from the start (Program.dirs), per example.
start_dirs = st.sampled_from([(), ("d",), ("e/f",), ("d", "e")])


def _without_abstractions(bodies: list[list[Instr]]) -> list[list[Instr]]:
    """What the generator cannot keep out by construction: a system with a
    flock runs without mmap (ABSTRACTIONS: flock-kept-by-a-mapping)."""
    if any(isinstance(i, Flock) for b in bodies for i in b):
        return [[i for i in b if not isinstance(i, (Mmap, MapRead))] for b in bodies]
    return bodies


class Fidelity(RuleBasedStateMachine):
    """Arbitrary programs, stepped in the model and on Linux together."""

    def __init__(self) -> None:
        super().__init__()
        self.root = tempfile.mkdtemp(prefix="idemwrite-fidelity-")
        self.os: OSWorld | None = None
        self.system: System | None = None
        self.model: World | None = None
        self.last = ""
        STATS["examples"] += 1

    @initialize(bodies=programs, granularity=st.sampled_from(["byte", "write"]), dirs=start_dirs)
    def start(self, bodies: list[list[Instr]], granularity: str, dirs: tuple[str, ...]) -> None:
        """One process per generated program, all at their first operation;
        a write lands a byte a step, or whole (a fault: its first k bytes);
        the first program names the directories that exist at the start."""
        # A symlink's target lies in a directory there from the start
        # (spec.system: the model does not walk a target's directories).
        dirs = tuple(sorted({*dirs, *(d for b in bodies for i in b if isinstance(i, Symlink) for d in i.target.parents())}))
        bodies = _without_abstractions(bodies)
        procs = tuple(Process(_program(b, n, dirs if n == 0 else ()), (("p", PAYLOAD),)) for n, b in enumerate(bodies))
        self.system = System(procs, 2, 0, granularity)
        self.model = initial(self.system)
        self.os = OSWorld(self.system, self.root)

    def teardown(self) -> None:
        if self.os is not None:
            self.os.close()
        shutil.rmtree(self.root, ignore_errors=True)

    @rule(i=st.integers(0, 2), fault=st.integers(-1, 3))
    def step_process(self, i: int, fault: int) -> None:
        """Process ``i`` takes one step; ``fault`` >= 0 picks an injected
        fault when its operation can suffer one."""
        assert self.system is not None and self.model is not None and self.os is not None
        i %= len(self.model.procs)
        p = self.model.procs[i]
        if not self._enabled(i):
            return  # it has ended, or it waits for a lock
        options = faults(self.system, self.model, i)
        f = options[fault % len(options)] if fault >= 0 and options else None
        ins = self.system.kinds[p.kind].program.code[p.pc]
        self.last = f"process {i}: {ins}" + (f" with fault {f}" if f else "")
        op = type(ins).__name__
        self.model = step(self.system, self.model, i, f)
        self.os.step(i, f)
        STATS["steps"] += 1
        # What the corners looked like (--hypothesis-show-statistics).
        q = self.model.procs[i]
        outcome = (q.last or "ok") if q.status == Status.RUNNING else ("SIGBUS" if q.status == Status.SIGBUS else "then returned")
        if currently_in_test_context():  # not in a pasted-back replay
            event(f"{op}: {outcome}" + (" (injected)" if f else ""))

    @rule(i=st.integers(0, 2), n=st.integers(2, 12))
    def run_process(self, i: int, n: int) -> None:
        """Process ``i`` runs ``n`` steps uninterrupted (fewer if it ends),
        checked after each: long programs get to their end, where the
        corners are (a mapping whose file has shrunk, a rename over an open
        file), within the examples' step budget."""
        for _ in range(n):
            self.step_process(i, -1)
            self.linux_agrees_with_the_model()

    def _enabled(self, i: int) -> bool:
        """Can process ``i`` step now?  Linux and the model must agree."""
        assert self.system is not None and self.model is not None and self.os is not None
        model, real = enabled(self.system, self.model, i), self.os.enabled(i)
        if model != real:
            raise AssertionError(f"model and Linux disagree after {self.last}: process {i} "
                                 f"can step {'in the model only' if model else 'on Linux only'}")
        return model

    @invariant()
    def linux_agrees_with_the_model(self) -> None:
        if self.os is None or self.model is None or self.system is None:
            return
        real, model = self.os.snapshot(), project(self.system, self.model)
        if real != model:
            raise AssertionError(f"model and Linux disagree after {self.last}\n" + difference(real, model))


TestFidelity = Fidelity.TestCase
# Arbitrary programs are cheap per step and need many examples to meet the
# corners (a hole, a rename over an open file): six times the profile's.
TestFidelity.settings = settings(max_examples=6 * settings().max_examples)


def test_a_broken_model_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """The known-bad twin: a model whose ftruncate forgets to zero-extend
    (and so leaves a file shorter than Linux does) must be caught."""
    monkeypatch.setattr(F, "truncate", lambda old, n: old[:n])
    with pytest.raises(AssertionError, match="model and Linux disagree"):
        # No shrinking: finding it is the point, and shrinking a program of
        # arbitrary ops costs a minute.
        run_state_machine_as_test(Fidelity, settings=settings(max_examples=300, derandomize=True, database=None, deadline=None,
                                                              phases=(Phase.explicit, Phase.generate)))


def _lockstep_once(body: tuple[Instr, ...], steps: int = 1, dirs: tuple[str, ...] = ()) -> tuple[Snapshot, Snapshot]:
    """Run one process's first ``steps`` steps (whole writes) in both
    interpreters; both snapshots."""
    system = System((Process(_program(list(body), 0, dirs), (("p", PAYLOAD),)),), 0, 0, "write")
    root = tempfile.mkdtemp(prefix="idemwrite-fidelity-")
    try:
        with OSWorld(system, root) as osw:
            model = initial(system)
            for _ in range(steps):
                model = step(system, model, 0)
                osw.step(0)
            return osw.snapshot(), project(system, model)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_zero_byte_read_on_a_bad_descriptor() -> None:
    """read(-1, buf, 0) is EBADF on Linux (the kernel checks the descriptor
    before the count); the model says so, the OS interpreter did not call
    the kernel.  Fixed in the binding of Read (``reference.syscalls.read_full``
    calls ``os.read(fd, 0)`` once when n == 0)."""
    real, model = _lockstep_once((Read(Length(None, 0), "f"), Fsync("g")))
    assert model.procs[0].last == "EBADF"
    assert real == model, difference(real, model)


def test_zero_byte_read_really_is_ebadf_on_linux() -> None:
    """The model's side of the disagreement above, checked on the kernel."""
    with pytest.raises(OSError) as info:
        os.read(-1, 0)
    assert info.value.errno == errno.EBADF


_FILLED = (Open(Path("a"), OpenFlags.READ | OpenFlags.WRITE | OpenFlags.CREAT, "f"), Write(Data("p"), "f"))


def test_negative_ftruncate_is_einval() -> None:
    """Fixed in spec/machine.py ``_ftruncate``, after the fault check:
    ``n = k.length(ins.n)``; ``if n < 0: return _fail(p, F.EINVAL), fs, True``."""
    real, model = _lockstep_once((*_FILLED, Ftruncate(Length(None, -1), "f"), Fsync("g")), 3)
    assert real.procs[0].last == "EINVAL" and dict(real.files)["a"] == PAYLOAD
    assert real == model, difference(real, model)


def test_negative_pwrite_offset_is_einval() -> None:
    """Fixed in spec/machine.py ``_write_common``, after the EBADF check and
    before the fault (the kernel refuses the offset before writing a byte,
    even a zero-length write): ``if at is not None and at < 0: return
    _fail(p, F.EINVAL), fs, True``."""
    real, model = _lockstep_once((*_FILLED, PWrite(Data("p"), -1, "f"), Fsync("g")), 3)
    assert real.procs[0].last == "EINVAL" and dict(real.files)["a"] == PAYLOAD
    assert real == model, difference(real, model)


def test_mmap_of_a_write_only_descriptor_is_eacces() -> None:
    """Fixed in spec/machine.py ``_mmap``, after the EINVAL check:
    ``if int(size[0]) > 0 and not int(d[2]) & READ_BIT: return _fail(p,
    F.EACCES), fs, True`` (size 0 maps nothing without asking the kernel,
    in the model, in reference.mapping and in Go)."""
    body = (Open(Path("a"), OpenFlags.WRITE | OpenFlags.CREAT, "f"), Write(Data("p"), "f"), Fstat("f", "st"),
            Mmap("f", "st", "map"), Fsync("g"))
    real, model = _lockstep_once(body, 4)
    assert real.procs[0].last == "EACCES"
    assert real == model, difference(real, model)


def test_a_failed_stat_or_readlink_is_one_enoent_whichever_name_is_missing() -> None:
    """Found by this machine: ``stat(d/t)`` with ``d`` there and ``t`` not
    set the size register to -1 in the model, but the OS interpreter left
    it unset - because the model left it unset when ``d`` was missing, and
    Linux answers ENOENT either way, so the interpreter could not tell the
    two apart (``reference.outcomes`` takes the first ENOENT's effects).
    Fixed in spec/semantics.py: ``_walk`` takes the operation's own
    ENOENT effects (a failed stat's size is -1, a failed readlink leaves
    no buffer, whichever name was missing)."""
    for dirs in ((), ("d",)):
        real, model = _lockstep_once((Stat(Path("d/c"), "st"), Fsync("g")), 1, dirs)
        assert real.procs[0].last == "ENOENT" and model.procs[0].regs[0] == Size(-1)
        assert real == model, difference(real, model)
        body = (Symlink(Path("a"), Path("l")), Readlink(Path("l"), "lbuf"), Readlink(Path("d/l"), "lbuf"), Fsync("g"))
        real, model = _lockstep_once(body, 3, dirs)
        assert real.procs[0].last == "ENOENT" and model.procs[0].regs[0] == ()
        assert real == model, difference(real, model)


def test_a_symlinks_target_lies_in_a_directory_there_from_the_start(tmp_path: pathlib.Path) -> None:
    """Found by this machine: ``open(l, O_WRONLY|O_CREAT|O_APPEND)`` with
    ``l`` a dangling symlink to ``e/f/g`` and ``e/f`` missing made
    ``e/f/g`` in the model (inside no directory), where Linux answers
    ENOENT: the model does not walk the directories above a link's target
    (the target is an inode's content, not a name the open knows).  Fixed
    in spec/system.py: a system whose symlink targets lie under a directory
    that is not there from the start (``Program.dirs``) is refused."""
    link = Symlink(Path("e/f/g"), Path("l"))
    prog = _program([link, Open(Path("l"), OpenFlags.WRITE | OpenFlags.CREAT, "f")], 0)
    with pytest.raises(SetupError, match="'e' above the target must exist from the start"):
        System((Process(prog, (("p", PAYLOAD),)),))
    os.symlink("e/f/g", tmp_path / "l")  # Linux's side
    with pytest.raises(FileNotFoundError):
        os.open(tmp_path / "l", os.O_WRONLY | os.O_CREAT)
    real, model = _lockstep_once((link, Open(Path("l"), OpenFlags.WRITE | OpenFlags.CREAT, "f"), Fsync("g")), 2, ("e/f",))
    assert dict(real.files)["e/f/g"] == b"" and real.procs[0].last == ""
    assert real == model, difference(real, model)


def test_an_append_of_no_bytes_leaves_the_offset() -> None:
    """Found by this machine: ``write(f, p[0:-3])`` (no bytes) on an
    O_APPEND descriptor at offset 0 of a 3-byte file moved the model's
    offset to 3; Linux leaves it at 0 (generic_write_checks returns before
    placing a write of no bytes at the end, and the position is only
    updated when the write returns > 0).  Fixed in spec/semantics.py
    ``_write``: the offset moves to the end only when a byte lands."""
    body = (Open(Path("a"), OpenFlags.WRITE | OpenFlags.CREAT, "g"), Write(Data("p"), "g"),
            Open(Path("a"), OpenFlags.WRITE | OpenFlags.APPEND, "f"), Write(Data("p", 0, -3), "f"), Fsync("g"))
    real, model = _lockstep_once(body, 4)
    assert model.procs[0].regs[1][:3] == ("fd", 2, 0)
    assert real == model, difference(real, model)


def test_an_open_over_a_locked_descriptor_drops_its_lock() -> None:
    """Found by this machine: ``open`` into a register whose description
    held LOCK_EX left the lock in the model's file system for good (the
    description was gone, so nothing could drop it), while on Linux the
    old description - closed by the interpreter, as its last reference
    goes - drops it: a later LOCK_EX on another description waited in the
    model only.  Fixed in spec/semantics.py ``_open``: the old
    description's lock is dropped, as close does."""
    rw = OpenFlags.READ | OpenFlags.WRITE | OpenFlags.CREAT
    body = (Open(Path("a"), rw, "f"), Flock(LockOp.EXCLUSIVE, "f"), Open(Path("a"), rw, "f"), Open(Path("a"), rw, "g"),
            Flock(LockOp.EXCLUSIVE, "g"))
    system = System((Process(_program(list(body), 0), (("p", PAYLOAD),)),), 0, 0, "write")
    root = tempfile.mkdtemp(prefix="idemwrite-fidelity-")
    try:
        with OSWorld(system, root) as osw:
            model = initial(system)
            for _ in range(4):
                model = step(system, model, 0)
                osw.step(0)
            assert osw.snapshot() == project(system, model), difference(osw.snapshot(), project(system, model))
            assert osw.enabled(0) and enabled(system, model, 0)
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.parametrize("noreplace", [False, True])
def test_rename_between_two_names_of_one_inode_does_nothing(noreplace: bool) -> None:
    """Found by this machine: ``rename(a, b)`` with ``b`` a hard link to
    ``a``'s inode removed ``a`` in the model; Linux does nothing and
    succeeds (rename(2); vfs_rename returns at once when source == target).
    renameat2(RENAME_NOREPLACE) is EEXIST first, as for any existing name.
    Fixed in spec/semantics.py ``_rename``."""
    body = (Open(Path("a"), OpenFlags.WRITE | OpenFlags.CREAT, "f"), Write(Data("p"), "f"), Link(Path("a"), Path("b")),
            Rename(Path("a"), Path("b"), noreplace), Fsync("g"))
    real, model = _lockstep_once(body, 4)
    assert real.procs[0].last == ("EEXIST" if noreplace else "")
    assert dict(real.files)["a"] == dict(real.files)["b"] == PAYLOAD and real.same == (("a", "b"),)
    assert real == model, difference(real, model)


def test_a_conversion_that_must_wait_lets_go_of_the_shared_lock() -> None:
    """Found by this machine: with two processes holding LOCK_SH, one's
    LOCK_EX waited in the model still holding its shared lock; on Linux it
    lets go first (fs/locks.c flock_lock_inode drops the old lock before it
    looks for conflicts), so the other can take LOCK_EX meanwhile: two
    sharers who both upgrade deadlocked in the model, and one wins on
    Linux.  Fixed in spec/semantics.py ``_flock``: the drop is a step of its
    own, then the request waits as any other."""
    rw = OpenFlags.READ | OpenFlags.WRITE | OpenFlags.CREAT
    body = [Open(Path("a"), rw, "f"), Flock(LockOp.SHARED, "f"), Flock(LockOp.EXCLUSIVE, "f"), Write(Data("p"), "f"),
            Close("f")]
    system = System(tuple(Process(_program(body, n), (("p", PAYLOAD),)) for n in range(2)), 0, 0, "write")
    root = tempfile.mkdtemp(prefix="idemwrite-fidelity-")
    try:
        with OSWorld(system, root) as osw:
            model = initial(system)
            # Both share; 1 asks for LOCK_EX (lets go, waits); 0 upgrades, writes, closes; 1 goes on.
            for i in (0, 0, 1, 1, 1, 0, 0, 0, 1, 1, 1):
                assert osw.enabled(i) == enabled(system, model, i), f"process {i}"
                if not enabled(system, model, i):
                    continue
                model = step(system, model, i)
                osw.step(i)
                real, proj = osw.snapshot(), project(system, model)
                assert real == proj, difference(real, proj)
            assert [p.status for p in model.procs] == [Status.OK, Status.OK]
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_a_fault_on_a_flock_that_let_go_ends_it() -> None:
    """Found by this machine (an interpreter bug): two sharers; one asks for
    LOCK_EX and lets go (a step: progress 1); the other ends; then ENOLCK
    strikes the request.  The model ends the operation (progress 0); the
    OS interpreter's path for a fault before any effect kept progress 1.
    Fixed in reference/osworld.py."""
    rw = OpenFlags.READ | OpenFlags.WRITE | OpenFlags.CREAT
    first = [Open(Path("a"), rw, "f"), Flock(LockOp.SHARED, "f"), Flock(LockOp.EXCLUSIVE, "f"), Write(Data("p"), "f")]
    second = [Open(Path("a"), rw, "f"), Flock(LockOp.SHARED, "f"), Fsync("f")]
    system = System((Process(_program(first, 0), (("p", PAYLOAD),)), Process(_program(second, 1), (("p", PAYLOAD),))),
                    1, 0, "byte")
    root = tempfile.mkdtemp(prefix="idemwrite-fidelity-")
    try:
        with OSWorld(system, root) as osw:
            model = initial(system)
            for i, fault in ((0, None), (0, None), (1, None), (1, None), (0, None), (1, None), (0, ("ENOLCK", 0))):
                if fault is not None:
                    assert model.procs[0].progress == 1 and osw.enabled(0)  # it let go; the other has ended
                model = step(system, model, i, fault)
                osw.step(i, fault)
                real, proj = osw.snapshot(), project(system, model)
                assert real == proj, difference(real, proj)
            assert model.procs[0].last == "ENOLCK" and model.procs[0].progress == 0
    finally:
        shutil.rmtree(root, ignore_errors=True)


# ------------------------------------------------------------ abstractions, pinned


def _both(body: tuple[Instr, ...], steps: int) -> tuple[Snapshot, Snapshot, str]:
    real, model = _lockstep_once(body, steps)
    return real, model, difference(real, model)


def test_abstraction_symlink_chain() -> None:
    """ABSTRACTIONS["symlink-chain"]: open through a link to a link is ELOOP
    in the model, and reads the file on Linux."""
    body = (Open(Path("a"), OpenFlags.WRITE | OpenFlags.CREAT, "g"), Write(Data("p"), "g"), Symlink(Path("a"), Path("m")),
            Symlink(Path("m"), Path("l")), Open(Path("l"), OpenFlags.READ, "f"), Fsync("g"))
    real, model, _ = _both(body, 5)
    assert model.procs[0].last == "ELOOP" and real.procs[0].last == ""
    assert real.files == model.files and real.links == model.links == (("l", "m"), ("m", "a"))


def test_abstraction_symlink_moved_across_directories() -> None:
    """ABSTRACTIONS["symlink-moved-across-directories"]: ``d/l`` -> ``b``
    linked as ``l``: the model's ``l`` points at ``b`` still; on Linux it
    holds ``../b``, which from the root names a file outside the sandbox."""
    body = (Open(Path("b"), OpenFlags.WRITE | OpenFlags.CREAT, "g"), Write(Data("p"), "g"),
            Symlink(Path("b"), Path("d/l")), Link(Path("d/l"), Path("l")), Fsync("g"))
    real, model = _lockstep_once(body, 4, ("d",))
    assert model.links == (("d/l", "b"), ("l", "b"))
    # One inode, read back through the root-level name: "../b" for both.
    assert real.links == (("d/l", "../b"), ("l", "../b"))
    assert dict(model.files)["l"] == PAYLOAD and dict(real.files)["l"] is None


def test_abstraction_flock_kept_by_a_mapping() -> None:
    """ABSTRACTIONS["flock-kept-by-a-mapping"]: LOCK_EX on a mapped
    description, then close: the model drops the lock, Linux keeps it (the
    mapping holds the description) - also with the kernel's own mmap, no
    duplicate descriptor involved."""
    body = (Open(Path("a"), OpenFlags.READ | OpenFlags.WRITE | OpenFlags.CREAT, "f"), Write(Data("p"), "f"),
            Fstat("f", "st"), Mmap("f", "st", "map"), Flock(LockOp.EXCLUSIVE, "f"), Close("f"), Fsync("g"))
    real, model, _ = _both(body, 6)
    assert model.locks == () and real.locks == (("a", -1),)
    assert _kernel_keeps_a_mapped_flock()


def _kernel_keeps_a_mapped_flock() -> bool:
    """mmap(2) through ctypes (Python's mmap duplicates the descriptor),
    flock, close: can another description lock the file?"""
    import ctypes
    import fcntl
    import mmap

    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    root = tempfile.mkdtemp(prefix="idemwrite-fidelity-")
    try:
        name = os.path.join(root, "a")
        fd = os.open(name, os.O_RDWR | os.O_CREAT)
        os.write(fd, PAYLOAD)
        addr = libc.mmap(None, len(PAYLOAD), mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.close(fd)
        other = os.open(name, os.O_RDONLY)
        try:
            try:
                fcntl.flock(other, fcntl.LOCK_SH | fcntl.LOCK_NB)
                kept = False
            except BlockingIOError:
                kept = True
            libc.munmap(addr, len(PAYLOAD))
            fcntl.flock(other, fcntl.LOCK_SH | fcntl.LOCK_NB)  # munmap drops it
        finally:
            os.close(other)
        return kept
    finally:
        shutil.rmtree(root, ignore_errors=True)


# ------------------------------------------------------------ the table, checked


def test_every_abstraction_has_its_pinning_test() -> None:
    """Each entry of ABSTRACTIONS has a ``test_abstraction_<name>`` here
    showing both sides, and each such test names an entry: the table and
    the tests cannot drift apart."""
    tests = {n[len("test_abstraction_"):] for n in globals() if n.startswith("test_abstraction_")}
    assert tests == {k.replace("-", "_") for k in ABSTRACTIONS}


def _abstraction_broken(body: list[Instr]) -> str | None:
    """Which ABSTRACTIONS entry one generated program would step into, or
    None: the generator's promise, stated from the table's words."""
    for ins in body:
        if isinstance(ins, Symlink) and (ins.path not in LINKS or ins.target not in FILES):
            return "symlink-chain"  # a link made elsewhere, or pointing at a link name
        if isinstance(ins, (Rename, Link)):
            src, dst = (ins.src, ins.dst) if isinstance(ins, Rename) else (ins.old, ins.new)
            if src in LINKS and dst not in LINKS:
                return "symlink-chain"  # a link name moved onto a file name: a link could point at it
            if src in LINKS and src.parents() != dst.parents():
                return "symlink-moved-across-directories"
    return None


@settings(max_examples=300, derandomize=True, database=None, deadline=None)
@given(programs)
def test_the_generator_keeps_out_what_the_table_names(bodies: list[list[Instr]]) -> None:
    """Sound as stated: no generated system (after the machine's own
    preparation) steps into an abstraction - no symlink made outside LINKS
    or at a target outside FILES, no link name moved onto a non-link name or
    into another directory, no mmap in a system that takes a flock."""
    prepared = _without_abstractions(bodies)
    for body in prepared:
        assert _abstraction_broken(body) is None, body
    if any(isinstance(i, Flock) for b in prepared for i in b):
        assert not any(isinstance(i, (Mmap, MapRead)) for b in prepared for i in b)  # flock-kept-by-a-mapping


@pytest.mark.parametrize("name, body", [
    ("symlink-chain", [Symlink(Path("l"), Path("m"))]),
    ("symlink-chain", [Rename(Path("l"), Path("a"))]),
    ("symlink-moved-across-directories", [Link(Path("d/l"), Path("l"))]),
])
def test_the_generator_check_sees_each_abstraction(name: str, body: list[Instr]) -> None:
    """The check above is not vacuous: a program that steps into an
    abstraction (the very bodies the pinning tests run) is named."""
    assert _abstraction_broken(body) == name
