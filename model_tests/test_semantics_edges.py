"""The model's semantics at its edges, one operation at a time.

The explorer's verdicts exercise each operation only as the catalogue's
protocols use it; these tests pin what the catalogue does not reach, each
stated as the promise SPEC.md's operation table makes (the mutation run,
``make mutate``, found each gap):

- the first inode a run makes is inode 0, and a name or key bound to it
  exists: EEXIST, 412 and HEAD's size see it;
- the object store's conditions: If-None-Match refuses an existing key,
  If-Match refuses a missing key and an ETag that is not the current one;
  HEAD of a missing key is 404 with -1 for size and ETag;
- a GET's faults: no body (EIO, no buffer) or a body cut after k bytes
  for every k shorter than the object; the fault options of each kind of
  operation, at each granularity;
- a descriptor is used only as it was opened: no read of an O_WRONLY one,
  no write of an O_RDONLY one;
- ``!=`` in a branch condition, a HIT's register, a loop with no operation;
- two shared flocks count as two: after one is dropped an exclusive
  request still waits.
"""

from __future__ import annotations

import pytest

from spec import Process, Program, ProgramError, Role, System
from spec.machine import enabled, initial, step, successors
from spec.ops import (
    ENTRY,
    O_CREAT,
    O_RDONLY,
    O_RDWR,
    O_WRONLY,
    Chtimes,
    Close,
    Data,
    DeleteObject,
    Flock,
    GetObject,
    Goto,
    HeadObject,
    If,
    Instr,
    Key,
    Label,
    Length,
    LockOp,
    Open,
    Outcome,
    Path,
    Precondition,
    PutObject,
    Read,
    Return,
    SizeIs,
    Stat,
    Symlink,
    Write,
    WriteBuf,
)
from spec.semantics import fault_options, registers
from spec.state import Buf, RegKind, Size, World

PAY = (("entry", b"ab"), ("output", b"XYZ"))
OK = Return(Outcome.OK)
SENTINEL = Stat(Path("sentinel"))  # where the process waits after the operations under test
K = Key("o/k")


def _system(*code: Instr, faults: int = 0) -> System:
    prog = Program("t", Role.WRITER, (*code, SENTINEL, OK))
    return System((Process(prog, PAY),), faults=faults, granularity="write")


def _run(*code: Instr) -> tuple[World, list[str], System]:
    """Each operation one step, in one process, no faults: the world
    after the last, and each operation's errno ("" for success)."""
    system = _system(*code)
    w, errs = initial(system), []
    for _ in code:
        w = step(system, w, 0)
        errs.append(w.procs[0].last)
    return w, errs, system


def _reg(w: World, system: System, name: str) -> object:
    return dict(zip(system.kinds[0].reg, w.procs[0].regs))[name]


# ------------------------------------------------------------ inode 0 exists


def test_a_symlink_over_the_first_file_made_is_eexist() -> None:
    w, errs, _ = _run(Open(ENTRY, O_WRONLY | O_CREAT), Symlink(Path("elsewhere"), ENTRY))
    assert errs == ["", "EEXIST"]


def test_if_none_match_refuses_the_first_object_stored() -> None:
    _, errs, _ = _run(PutObject(K), PutObject(K, cond=Precondition.IF_NONE_MATCH))
    assert errs == ["", "EPRECONDITION"]


# ------------------------------------------------------------ the object store's conditions


def test_if_match_takes_the_current_etag_and_refuses_a_stale_one() -> None:
    """HEAD gives the ETag; a PUT If-Match with it succeeds and makes a new
    ETag, so the same PUT again is 412, and the object is the first PUT's."""
    head = HeadObject(K, "st", "e")
    cond = PutObject(K, Data("entry"), Precondition.IF_MATCH, "e")
    w, errs, system = _run(PutObject(K), head, cond, cond)
    assert errs == ["", "", "", "EPRECONDITION"]
    assert w.fs.object_bytes(K.name) == b"ab"
    # The same where the object is not the first inode made.
    w, errs, system = _run(PutObject(K), PutObject(K), head, cond, cond)
    assert errs == ["", "", "", "", "EPRECONDITION"]
    assert w.fs.object_bytes(K.name) == b"ab"


def test_if_match_on_a_missing_key_is_412_and_stores_nothing() -> None:
    w, errs, system = _run(HeadObject(K, "st", "e"), PutObject(K, cond=Precondition.IF_MATCH, etag="e"))
    assert errs == ["ENOENT", "EPRECONDITION"]
    assert w.fs.object_bytes(K.name) is None


def test_a_plain_put_overwrites_and_a_delete_removes() -> None:
    """The last writer wins; DELETE removes the key, and a second DELETE
    of the missing key is no error (204)."""
    w, errs, _ = _run(PutObject(K), PutObject(K, Data("entry")))
    assert errs == ["", ""] and w.fs.object_bytes(K.name) == b"ab"
    w, errs, _ = _run(PutObject(K), PutObject(K, Data("entry")), DeleteObject(K), DeleteObject(K))
    assert errs == ["", "", "", ""] and w.fs.object_bytes(K.name) is None


def test_head_gives_size_and_etag_or_minus_one_for_both() -> None:
    w, errs, system = _run(HeadObject(K, "st", "e"))
    assert errs == ["ENOENT"]
    assert _reg(w, system, "st") == Size(-1) and _reg(w, system, "e") == Size(-1)
    w, errs, system = _run(PutObject(K), HeadObject(K, "st", "e"))
    assert errs == ["", ""] and _reg(w, system, "st") == Size(3)
    etag = _reg(w, system, "e")
    assert isinstance(etag, Size) and etag.n >= 0


def test_a_faulted_head_leaves_minus_one() -> None:
    system = _system(PutObject(K), HeadObject(K, "st", "e"), faults=1)
    w = step(system, initial(system), 0)
    faulted = [s for _, s in successors(system, w, 0) if s.procs[0].last == "EIO"]
    assert faulted and all(_reg(s, system, "st") == Size(-1) == _reg(s, system, "e") for s in faulted)


def test_a_get_is_the_object_whole_or_cut_short_or_no_body() -> None:
    """With one fault a GET of a 3-byte object ends as: the 3 bytes; EIO
    and no buffer; or a success with the first k bytes, k = 0, 1, 2."""
    system = _system(PutObject(K), GetObject(K, "buf", "output"), faults=1)
    w = step(system, initial(system), 0)
    seen = set()
    for _, s in successors(system, w, 0):
        buf = _reg(s, system, "buf")
        seen.add((s.procs[0].last, buf.data if isinstance(buf, Buf) else None))
    assert seen == {("", b"XYZ"), ("EIO", None), ("", b""), ("", b"X"), ("", b"XY")}


def test_a_get_of_a_missing_key_is_404_with_no_buffer() -> None:
    w, errs, system = _run(GetObject(K))
    assert errs == ["ENOENT"] and not isinstance(_reg(w, system, "buf"), Buf)


# ------------------------------------------------------------ fault options


@pytest.mark.parametrize("ins, data_bytes, progress, granularity, want", [
    (PutObject(K), 3, 0, "byte", [("EIO", 0), ("EIO", 1)]),
    (DeleteObject(K), 0, 0, "write", [("EIO", 0), ("EIO", 1)]),
    (GetObject(K), 3, 0, "byte", [("EIO", -1), ("EIO", 0), ("EIO", 1), ("EIO", 2)]),
    (Write(), 3, 0, "write", [("ENOSPC", 0), ("ENOSPC", 1), ("ENOSPC", 2)]),
    (Write(), 3, 2, "byte", [("ENOSPC", 2)]),
    (Write(), 0, 0, "byte", []),
    (WriteBuf(), 2, 0, "write", [("ENOSPC", 0), ("ENOSPC", 1)]),
    (WriteBuf(), 0, 0, "write", [("ENOSPC", 0)]),
    (WriteBuf(), 2, 1, "byte", [("ENOSPC", 1)]),
    (Open(ENTRY, O_RDONLY), 0, 0, "write", []),
])
def test_fault_options(ins: Instr, data_bytes: int, progress: int, granularity: str,
                       want: list[tuple[str, int]]) -> None:
    """PUT and DELETE: lost before the store acted, or after; GET: no
    body, or cut after k bytes; a write at write granularity lets any
    prefix land, at byte granularity fails at its next byte, and a write
    of no bytes cannot fail (a buffer write can: its length is unknown
    until it runs); a reader's plain open never faults."""
    assert fault_options(ins, data_bytes, progress, granularity) == want


# ------------------------------------------------------------ descriptors and branches


def test_a_descriptor_is_used_only_as_it_was_opened() -> None:
    _, errs, _ = _run(Open(ENTRY, O_WRONLY | O_CREAT), Read())
    assert errs == ["", "EBADF"]
    _, errs, _ = _run(Open(ENTRY, O_WRONLY | O_CREAT), Close(), Open(ENTRY, O_RDONLY), Write())
    assert errs == ["", "", "", "EBADF"]
    _, errs, _ = _run(Open(ENTRY, O_RDWR | O_CREAT), Write(), Read())
    assert errs == ["", "", ""]


@pytest.mark.parametrize("op", ["!=", "==", ">"])
def test_size_conditions(op: str) -> None:
    """A 1-byte file against the 2-byte entry payload: != holds, == and > do not."""
    prog = Program("t", Role.WRITER, (
        Open(ENTRY, O_WRONLY | O_CREAT), Write(Data("entry", 0, 1)), Stat(ENTRY),
        If(SizeIs(op, Length("entry")), "yes"), Return(Outcome.FAIL),
        Label("yes"), OK))
    system = System((Process(prog, PAY),), granularity="write")
    w = initial(system)
    for _ in range(3):
        w = step(system, w, 0)
    assert w.procs[0].status.value == ("ok" if op == "!=" else "fail")


def test_a_hit_names_its_buffer_register() -> None:
    prog = Program("r", Role.READER, (Open(ENTRY, O_RDONLY), Return(Outcome.HIT, "b")))
    assert registers(prog)["b"] is RegKind.BUF
    miss = Program("r", Role.READER, (Stat(ENTRY, "n"), Return(Outcome.MISS, "n")))
    assert registers(miss) == {"n": RegKind.SIZE}


@pytest.mark.parametrize("loop", [Goto("top"), If(SizeIs("!=", Length("entry")), "top")])
def test_a_loop_with_no_operation_is_a_program_error(loop: Instr) -> None:
    """By goto, or by a branch taken every time (the entry is missing:
    its size -1 is never the payload's length)."""
    prog = Program("spin", Role.WRITER, (Stat(ENTRY), Label("top"), loop, OK))
    system = System((Process(prog, PAY),))
    with pytest.raises(ProgramError, match="a loop with no operation"):
        step(system, initial(system), 0)


def test_a_program_of_control_flow_alone_is_no_loop() -> None:
    """Every instruction is control flow, each visited once from the
    first: the loop check must let it through."""
    code: list[Instr] = []
    for i in range(6):
        code += [Goto(f"l{i}"), Label(f"l{i}")]
    prog = Program("chain", Role.WRITER, (*code, OK))
    system = System((Process(prog, PAY),))
    assert initial(system).procs[0].status.value == "ok"


@pytest.mark.parametrize("granularity", ["byte", "write"])
def test_a_write_takes_a_step_per_byte_at_byte_granularity(granularity: str) -> None:
    """Write and a buffer's write: at byte granularity each byte is a step
    of its own and the process moves on after the last; at write
    granularity the whole write is one step."""
    for write in (Write(), WriteBuf()):
        prog = Program("t", Role.WRITER, (Open(ENTRY, O_WRONLY | O_CREAT), Write(), Close(), Open(ENTRY, O_RDONLY),
                                          Read(Length("entry")), Close(), Open(Path("copy"), O_WRONLY | O_CREAT), write,
                                          SENTINEL, OK))
        system = System((Process(prog, PAY),), granularity=granularity)
        w = initial(system)
        at = len(prog.code) - 3  # the write under test (an equal Write comes first)
        while w.procs[0].pc != at:  # to the write under test
            w = step(system, w, 0)
        w = step(system, w, 0)
        if granularity == "byte":
            assert w.procs[0].pc == at, "a 2-byte write ended after its first byte"
            w = step(system, w, 0)
        assert w.procs[0].pc == at + 1, "the write did not end after its last byte"
        assert w.fs.file("copy") == b"ab", (write, w.fs)


@pytest.mark.parametrize("data, want", [
    (Data("entry", 1), b"b"), (Data("entry", -1), b"b"), (Data("entry", 0, 1), b"a"),
    (Data("entry", None, -1), b"a"), (Data("entry", 5), b""), (Data("entry", -9, 9), b"ab"),
])
def test_a_slice_of_a_payload_follows_python(data: Data, want: bytes) -> None:
    w, errs, _ = _run(Open(ENTRY, O_WRONLY | O_CREAT), Write(data))
    assert errs == ["", ""] and w.fs.file("entry") == want


def test_chtimes_follows_a_symlink() -> None:
    """Like stat, and unlike O_NOFOLLOW: through a link to an existing
    file it succeeds (times are not modelled)."""
    _, errs, _ = _run(Open(ENTRY, O_WRONLY | O_CREAT), Symlink(ENTRY, Path("lnk")), Chtimes(Path("lnk")))
    assert errs == ["", "", ""]


# ------------------------------------------------------------ flock


def test_two_shared_locks_count_as_two() -> None:
    """Descriptors f and g of one process each take LOCK_SH; f drops its
    lock; a LOCK_EX on a third description must still wait for g."""
    prog = Program("t", Role.WRITER, (
        Open(ENTRY, O_RDWR | O_CREAT), Open(ENTRY, O_RDWR, "g"), Open(ENTRY, O_RDWR, "h"),
        Flock(LockOp.SHARED), Flock(LockOp.SHARED, "g"), Flock(LockOp.UNLOCK), Flock(LockOp.EXCLUSIVE, "h"), OK))
    system = System((Process(prog, PAY),))
    w = initial(system)
    for _ in range(6):
        w = step(system, w, 0)
    assert not enabled(system, w, 0)
