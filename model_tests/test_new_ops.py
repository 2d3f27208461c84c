"""link, mkdir, O_APPEND, symlink, flock, fdatasync, renameat2: the model.

Each operation's rules are stated once in ``spec/semantics.py``; these tests
pin them on hand-picked programs run by the model (Linux semantics: the
fidelity machine compares them with the kernel op by op), and check the
explorer on the protocols real tools build from them: git's link-to-publish,
an O_APPEND index, a first-writer-wins symlink, writers and readers under
flock, and renameat2(RENAME_NOREPLACE).
"""

from __future__ import annotations

import pytest

from spec import Process, Program, Role, SetupError, System, explore
from spec.machine import Blocked, enabled, initial, step
from spec.ops import (
    ENTRY,
    O_APPEND,
    O_CREAT,
    O_EXCL,
    O_NOFOLLOW,
    O_RDONLY,
    O_RDWR,
    O_TRUNC,
    O_WRONLY,
    OUTPUT,
    TEMP,
    Close,
    Data,
    Failed,
    Fdatasync,
    Fstat,
    Flock,
    If,
    Instr,
    Invalid,
    Label,
    Length,
    Link,
    LockOp,
    Mkdir,
    Open,
    Outcome,
    Path,
    Read,
    Readlink,
    Rename,
    Return,
    Stat,
    Symlink,
    Unlink,
    Write,
)
from spec.properties import HITS, STAYS, SURVIVES
from spec.protocols import Protocol
from spec.state import Buf, Desc, Status, World

PAY = (("entry", b"ab"), ("output", b"AB"))
ERR = Failed()
OK, FAIL, MISS = Return(Outcome.OK), Return(Outcome.FAIL), Return(Outcome.MISS)


SENTINEL = Stat(Path("sentinel"))  # where the process waits after the last operation under test


def _run(*code: Instr, dirs: tuple[str, ...] = ()) -> tuple[World, list[str]]:
    """Run the operations one step each, in one process: the world after
    the last, and each operation's errno ("" for success)."""
    prog = Program("t", Role.WRITER, (*code, SENTINEL, OK), dirs=dirs)
    system = System((Process(prog, PAY),), granularity="write")
    w, errs = initial(system), []
    for _ in code:
        w = step(system, w, 0)
        errs.append(w.procs[0].last)
    return w, errs


def _last_errno(*code: Instr, dirs: tuple[str, ...] = ()) -> str:
    """The errno of the last operation."""
    return _run(*code, dirs=dirs)[1][-1]


# ------------------------------------------------------------ link, renameat2


def test_link_names_one_inode_twice() -> None:
    w, _ = _run(Open(TEMP, O_WRONLY | O_CREAT | O_EXCL), Write(Data("entry")), Link(TEMP, ENTRY), Unlink(TEMP), Close())
    assert w.fs.file("entry") == b"ab" and [n for n, _ in w.fs.names] == ["entry"]


def test_link_errors_in_linux_order() -> None:
    a, b = Path("a"), Path("b")
    assert _last_errno(Link(a, b)) == "ENOENT"  # old missing, checked first
    assert _last_errno(Open(a, O_WRONLY | O_CREAT), Open(b, O_WRONLY | O_CREAT, "g"), Link(a, b)) == "EEXIST"


def test_renameat2_noreplace_refuses_an_existing_name() -> None:
    a = Path("a")
    assert _last_errno(Open(a, O_WRONLY | O_CREAT), Open(ENTRY, O_WRONLY | O_CREAT, "g"),
                       Rename(a, ENTRY, noreplace=True)) == "EEXIST"
    w, errs = _run(Open(a, O_WRONLY | O_CREAT), Rename(a, ENTRY, noreplace=True))
    assert errs[-2:] == ["", ""] and w.fs.lookup("entry") is not None and w.fs.lookup("a") is None


# ------------------------------------------------------------ mkdir


def test_open_under_a_missing_directory_is_enoent_and_mkdir_makes_it_work() -> None:
    deep = Path("objects/ab/entry")
    assert _last_errno(Open(deep, O_WRONLY | O_CREAT)) == "ENOENT"
    assert _last_errno(Mkdir(Path("objects/ab"))) == "ENOENT"  # its parent is missing
    w, errs = _run(Mkdir(Path("objects")), Mkdir(Path("objects/ab")), Open(deep, O_WRONLY | O_CREAT), Write(Data("entry")),
                   Close())
    assert set(errs) == {""} and w.fs.file("objects/ab/entry") == b"ab"
    assert w.fs.dirs == ("objects", "objects/ab")


def test_mkdir_of_an_existing_directory_is_eexist_and_a_program_names_the_ones_it_needs() -> None:
    assert _last_errno(Mkdir(Path("d")), dirs=("d",)) == "EEXIST"
    w, errs = _run(Open(Path("d/e/entry"), O_WRONLY | O_CREAT), dirs=("d/e",))
    assert errs[0] == "" and w.fs.dirs == ("d", "d/e")


def test_a_name_is_a_directory_or_a_file_never_both() -> None:
    prog = Program("both", Role.WRITER, (Mkdir(Path("d")), Open(Path("d"), O_WRONLY | O_CREAT), OK))
    with pytest.raises(SetupError, match="both as a directory and as a file"):
        System((Process(prog, PAY),))


# ------------------------------------------------------------ O_APPEND


def _appender() -> Program:
    return Program("append", Role.WRITER, (Open(ENTRY, O_WRONLY | O_CREAT | O_APPEND), If(ERR, "fail"),
                                           Write(Data("entry")), Close(), OK, Label("fail"), FAIL))


def test_appends_land_whole_at_the_end_even_at_byte_granularity() -> None:
    """Two appenders of b'ab': every ending holds b'abab', never a mix, and
    a write is one step (the explorer never sees half of it)."""
    system = System((Process(_appender(), PAY),) * 2)
    ex = explore(system, [], stop_when_all_violated=False)
    ends = [w for w in ex.worlds() if all(p.status is not Status.RUNNING for p in w.procs)]
    assert ends and {w.fs.file("entry") for w in ends} == {b"abab"}
    sizes = {len(w.fs.file("entry") or b"") for w in ex.worlds()}
    assert sizes == {0, 2, 4}


def test_an_append_moves_the_offset_to_the_end() -> None:
    w, _ = _run(Open(ENTRY, O_WRONLY | O_CREAT | O_APPEND), Write(Data("entry")), Write(Data("entry")))
    assert w.fs.file("entry") == b"abab"


# ------------------------------------------------------------ symlink


def _first_writer_wins() -> Program:
    """saracen/gobuildcache's shape: the output by temp and rename, then a
    symlink from the entry to it; EEXIST means another writer won."""
    tmp = Path("output.tmp", private=True)
    return Program("symlink-publish", Role.WRITER, (
        Open(tmp, O_WRONLY | O_CREAT | O_EXCL), If(ERR, "fail"), Write(Data("entry")), If(ERR, "fail"),
        Close(), If(ERR, "fail"), Rename(tmp, OUTPUT), If(ERR, "fail"),
        Symlink(OUTPUT, ENTRY), If(Failed(frozenset({"EEXIST"})), "done"), If(ERR, "fail"),
        Label("done"), OK, Label("fail"), FAIL), publishes=((ENTRY, "entry"),))


def test_a_symlink_is_followed_by_open_and_refused_with_o_nofollow() -> None:
    w, errs = _run(Open(OUTPUT, O_WRONLY | O_CREAT), Write(Data("entry")), Close(), Symlink(OUTPUT, ENTRY),
                   Open(ENTRY, O_RDONLY, "g"), Read(Length("entry", 1), "g", "buf"), Readlink(ENTRY, "lnk"),
                   Open(ENTRY, O_RDONLY | O_NOFOLLOW, "h"))
    assert errs[:-1] == [""] * 7 and errs[-1] == "ELOOP"
    assert w.fs.file("entry") == b"ab"  # what a reader sees, through the link


def test_readlink_gives_the_target_and_o_creat_through_a_dangling_link_makes_it() -> None:
    w, _ = _run(Symlink(OUTPUT, ENTRY), Readlink(ENTRY))
    assert Buf(b"output") in w.procs[0].regs
    w, errs = _run(Symlink(OUTPUT, ENTRY), Open(ENTRY, O_WRONLY | O_CREAT), Write(Data("entry")), Close())
    assert set(errs) == {""} and w.fs.lookup("output") is not None and w.fs.file("entry") == b"ab"
    assert _last_errno(Symlink(OUTPUT, ENTRY), Open(ENTRY, O_WRONLY | O_CREAT | O_EXCL)) == "EEXIST"


def test_first_writer_wins_by_symlink_keeps_the_entry_complete() -> None:
    proto = Protocol(_first_writer_wins())
    assert explore(System.of(proto, 3, readers=1, faults=1), [STAYS, HITS]).violations == {}


# ------------------------------------------------------------ flock


def _locked_writer() -> Program:
    """write-file's O_TRUNC race, under an exclusive flock."""
    return Program("locked-write-file", Role.WRITER, (
        Open(ENTRY, O_WRONLY | O_CREAT), If(ERR, "fail"), Flock(LockOp.EXCLUSIVE), If(ERR, "close_fail"),
        Open(ENTRY, O_WRONLY | O_CREAT | O_TRUNC, "g"),
        If(ERR, "close_fail"), Write(Data("entry"), "g"), If(ERR, "close_fail"), Close("g"), Close(), OK,
        Label("close_fail"), Close(), Label("fail"), FAIL), publishes=((ENTRY, "entry"),))


def _locked_reader() -> Program:
    return Program("locked-read", Role.READER, (
        Open(ENTRY, O_RDONLY), If(ERR, "miss"), Flock(LockOp.SHARED), Read(Length("entry", 1)), Close(),
        If(Invalid("entry"), "miss"), Return(Outcome.HIT), Label("miss"), MISS))


def test_a_reader_waits_while_a_writer_holds_the_lock() -> None:
    system = System((Process(_locked_writer(), PAY), Process(_locked_reader(), PAY)))
    w = initial(system)
    w = step(system, w, 0)  # writer opens
    w = step(system, w, 0)  # writer takes LOCK_EX
    w = step(system, w, 1)  # reader opens
    assert not enabled(system, w, 1)  # LOCK_SH waits
    with pytest.raises(Blocked):
        step(system, w, 1)
    for _ in range(5):  # open(O_TRUNC), write, close g, close f (drops the lock), return
        w = step(system, w, 0)
    assert w.procs[0].status is Status.OK and enabled(system, w, 1)


def test_locked_readers_never_see_a_half_written_entry_but_the_entry_still_empties() -> None:
    """The lock orders readers after writers: they always hit.  It does not
    stop a second writer's O_TRUNC from emptying a published entry."""
    ex = explore(System((Process(_locked_writer(), PAY),) * 2 + (Process(_locked_reader(), PAY),)), [STAYS, HITS])
    assert ex.verdict(HITS) == "holds"
    assert ex.verdict(STAYS) == "violated"


def test_exit_and_close_drop_the_lock() -> None:
    """A writer that returns still holding LOCK_EX does not block the next."""
    held = Program("holds", Role.WRITER, (Open(ENTRY, O_RDWR | O_CREAT), Flock(LockOp.EXCLUSIVE), OK))
    system = System((Process(held, PAY),) * 2)
    ex = explore(system, [], stop_when_all_violated=False)
    ends = [w for w in ex.worlds() if all(p.status is Status.OK for p in w.procs)]
    assert ends and all(w.fs.locks == () for w in ends)
    w, errs = _run(Open(ENTRY, O_RDWR | O_CREAT), Flock(LockOp.EXCLUSIVE), Flock(LockOp.SHARED), Close())
    assert set(errs) == {""}


def test_lock_conversion_and_a_descriptor_of_ones_own() -> None:
    """LOCK_EX on a description that holds LOCK_SH converts it when alone;
    a second description of the same process conflicts like any other."""
    w, errs = _run(Open(ENTRY, O_RDWR | O_CREAT), Flock(LockOp.SHARED), Flock(LockOp.EXCLUSIVE))
    assert set(errs) == {""} and w.procs[0].regs[0] == Desc(0, 0, 3, False, -1) and w.fs.locks == ((0, -1),)
    prog = Program("self", Role.WRITER, (Open(ENTRY, O_RDWR | O_CREAT), Flock(LockOp.EXCLUSIVE),
                                         Open(ENTRY, O_RDWR, "g"), Flock(LockOp.SHARED, "g"), OK))
    system = System((Process(prog, PAY),))
    w = initial(system)
    for _ in range(3):
        w = step(system, w, 0)
    assert not enabled(system, w, 0)  # it waits for itself: Linux deadlocks too
    d = w.procs[0].regs[0]
    assert isinstance(d, Desc) and d.lock == -1


# ------------------------------------------------------------ fdatasync


def test_fdatasync_makes_the_data_survive_a_crash_like_fsync() -> None:
    def writer(sync: Instr) -> Protocol:
        return Protocol(Program(f"rename-{sync}", Role.WRITER, (
            Open(TEMP, O_WRONLY | O_CREAT | O_EXCL), If(ERR, "fail"), Write(Data("entry")), If(ERR, "cu"),
            sync, If(ERR, "cu"), Close(), If(ERR, "u"), Rename(TEMP, ENTRY), If(ERR, "u"), OK,
            Label("cu"), Close(), Label("u"), Unlink(TEMP), Label("fail"), FAIL), publishes=((ENTRY, "entry"),)))

    assert explore(System.of(writer(Fdatasync()), 2, 0, faults=1, crashes=1), [SURVIVES]).verdict(SURVIVES) == "holds"
    without = Fstat()  # stands where the sync was, and syncs nothing
    assert explore(System.of(writer(without), 2, 0, crashes=1), [SURVIVES]).verdict(SURVIVES) == "violated"
