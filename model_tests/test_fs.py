"""The pure file-system semantics, op by op, on hand-picked cases."""

from __future__ import annotations

from spec import fs as F
from spec.machine import step


def test_write_past_the_end_zero_fills_the_hole() -> None:
    assert F.write_at(b"ab", 4, b"x") == b"ab\x00\x00x"
    assert F.write_at(b"abcd", 1, b"XY") == b"aXYd"


def test_ftruncate_shrinks_or_extends_with_zeros() -> None:
    assert F.truncate(b"abcd", 2) == b"ab"
    assert F.truncate(b"ab", 4) == b"ab\x00\x00"


def test_mapped_read_faults_only_for_pages_wholly_past_the_end() -> None:
    assert F.mapped_read(b"", 2) is None
    assert F.mapped_read(b"a", 2) == b"a\x00"  # same page: reads zero, no SIGBUS
    assert F.mapped_read(b"x" * F.PAGE_SIZE, F.PAGE_SIZE + 1) is None


def test_unlink_keeps_the_inode_for_its_holder() -> None:
    """A process writes through a descriptor whose name another removed: the
    bytes land in the unnamed inode, which the explorer keeps while held."""
    from spec.machine import initial
    from spec.ops import ENTRY, O_CREAT, O_RDWR, Data, Open, Outcome, Program, Return, Role, Unlink, Write
    from spec.system import Process, System

    prog = Program("t", Role.WRITER, (Open(ENTRY, O_RDWR | O_CREAT), Unlink(ENTRY), Write(Data("entry")), Return(Outcome.OK)))
    system = System((Process(prog, (("entry", b"ab"),)),), granularity="write")
    w = initial(system)
    w = step(system, w, 0)  # open
    w = step(system, w, 0)  # unlink
    assert w.fs.lookup("entry") is None
    w = step(system, w, 0)  # write through the held descriptor
    ino = w.procs[0].regs[0]
    assert ino == () and b"ab" in w.fs.contents  # returned: descriptor released, bytes went to the inode


def test_rename_replaces_the_name_atomically() -> None:
    fs, a = F.create(F.FileSystem())
    fs = F.bind(fs, "entry", a)
    fs, b = F.create(fs)
    fs = F.set_content(F.bind(fs, "tmp", b), b, b"new")
    fs = F.bind(F.unbind(fs, "tmp"), "entry", b)
    assert fs.file("entry") == b"new" and fs.lookup("tmp") is None
