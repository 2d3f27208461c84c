"""Promises of ``reference.outcomes``: what the OS interpreters learn from the semantics.

- :func:`outcomes` states, per operation, the register effects of the real call on success, on each of
  the semantics' checks and at the fault point; ``dies`` only for a mapped read; the errno for an unset
  register only where the operation needs a held register; and :meth:`Outcomes.on_error` maps an errno
  the semantics do not predict onto the fault point, else the first check.
- :class:`Probe` answers the semantics' questions from real descriptors and names: a missing name or an
  unset register is no inode, a symlink is followed to its target, a write lands its payload where the
  descriptor (or O_APPEND's end of file) says, and a flock is read back from /proc/locks.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path as FsPath
from typing import Any, Iterator

import pytest

from reference.outcomes import Effect, Outcomes, Probe, flock_holders, mode_bits, outcomes
from spec import semantics as S
from spec.ops import (O_CREAT, O_EXCL, O_NOFOLLOW, O_RDONLY, O_RDWR, O_WRONLY, Chtimes, Close, Data, Fdatasync,
                      Flock, Fstat, Fsync, Ftruncate, Instr, Link, LockOp, MapRead, Mkdir, Mmap, Open, Path, PWrite,
                      Read, Readlink, Rename, Stat, Symlink, Unlink, Write)
from spec.state import READ_BIT, WRITE_BIT, RegKind, Status
from reference.syscalls import NO_SIZE

P, Q = Path("p"), Path("q")
RESULT_F = Effect("result", "f")
CLEAR_F = Effect("clear", "f")

# (instruction, the outcomes the semantics give its real call)
TABLE: list[tuple[Instr, Outcomes]] = [
    # open: the descriptor is the call's result; it fails at its fault point (EACCES) before any effect;
    # it needs no held register.
    (Open(P, O_WRONLY | O_CREAT), Outcomes((RESULT_F,), None, (("ELOOP", ()),), (), None)),
    (Open(P, O_RDONLY), Outcomes((RESULT_F,), None, (("ELOOP", ()), ("ENOENT", ())), (), None)),
    # write needs a held descriptor (EBADF without one) and sets no register.
    (Write(), Outcomes((), None, (("EBADF", ()),), (), "EBADF")),
    # a failed read leaves no buffer behind; read has no fault point.
    (Read(), Outcomes((Effect("result", "buf"),), None, (("EBADF", (Effect("clear", "buf"),)),), None, "EBADF")),
    # a failing close still releases the descriptor.
    (Close(), Outcomes((CLEAR_F,), None, (("EBADF", ()),), (CLEAR_F,), "EBADF")),
    # a failed stat's size is -1.
    (Stat(P), Outcomes((Effect("result", "st"),), None,
                       (("ELOOP", ()), ("ENOENT", (Effect("const", "st", -1),))), None, None)),
    (Fstat(), Outcomes((Effect("result", "st"),), None, (("EBADF", (Effect("const", "st", -1),)),), None, "EBADF")),
    (Mmap(), Outcomes((Effect("result", "map"),), None, (("EBADF", ()), ("EINVAL", ()), ("EACCES", ())), None,
                      "EBADF")),
    # only a mapped read can report the process killed, by SIGBUS.
    (MapRead(), Outcomes((Effect("result", "buf"),), Status.SIGBUS, (("EINVAL", ()),), None, "EINVAL")),
    (Readlink(P), Outcomes((Effect("result", "buf"),), None,
                           (("ENOENT", (Effect("clear", "buf"),)), ("EINVAL", (Effect("clear", "buf"),))), None,
                           None)),
    (Unlink(P), Outcomes((), None, (("ENOENT", ()),), None, None)),
    (Flock(LockOp.EXCLUSIVE), Outcomes((), None, (("EBADF", ()),), (), "EBADF")),
    (Flock(LockOp.UNLOCK), Outcomes((), None, (("EBADF", ()),), None, "EBADF")),
    (PWrite(Data(), 0), Outcomes((), None, (("EINVAL", ()), ("EBADF", ())), (), "EBADF")),
    # a negative pwrite offset is refused whatever the registers hold (it is checked first).
    (PWrite(Data(), -1), Outcomes((), None, (("EINVAL", ()), ("EBADF", ())), (), "EINVAL")),
    # every other operation: no register effects, and EBADF for an unset descriptor where one is needed.
    (Open(P, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW),
     Outcomes((RESULT_F,), None, (("EEXIST", ()), ("ELOOP", ()), ("ELOOP", ())), (), None)),
    (Open(Path("d/p"), O_RDONLY), Outcomes((RESULT_F,), None, (("ENOENT", ()), ("ELOOP", ()), ("ENOENT", ())), (),
                                           None)),
    # a missing directory above a stat'ed name is ENOENT, with the size -1 too.
    (Stat(Path("d/p")), Outcomes((Effect("result", "st"),), None,
                                 (("ENOENT", (Effect("const", "st", -1),)), ("ELOOP", ()),
                                  ("ENOENT", (Effect("const", "st", -1),))), None, None)),
    (Rename(P, Q), Outcomes((), None, (("ENOENT", ()),), (), None)),
    (Rename(P, Q, True), Outcomes((), None, (("ENOENT", ()), ("EEXIST", ())), (), None)),
    (Link(P, Q), Outcomes((), None, (("ENOENT", ()), ("EEXIST", ())), (), None)),
    (Mkdir(P), Outcomes((), None, (("EEXIST", ()),), (), None)),
    (Symlink(P, Q), Outcomes((), None, (("EEXIST", ()),), (), None)),
    (Chtimes(P), Outcomes((), None, (("ELOOP", ()), ("ENOENT", ())), None, None)),
    (Flock(LockOp.SHARED), Outcomes((), None, (("EBADF", ()),), (), "EBADF")),
    (Ftruncate(), Outcomes((), None, (("EINVAL", ()), ("EBADF", ()), ("EINVAL", ())), (), "EBADF")),
    (Fsync(), Outcomes((), None, (("EBADF", ()),), (), "EBADF")),
    (Fdatasync(), Outcomes((), None, (("EBADF", ()),), (), "EBADF")),
    (Read(fd="g", into="b2"), Outcomes((Effect("result", "b2"),), None, (("EBADF", (Effect("clear", "b2"),)),), None,
                                       "EBADF")),
]


@pytest.mark.parametrize("ins,expected", TABLE, ids=[str(i) for i, _ in TABLE])
def test_outcomes_are_what_the_semantics_say(ins: Instr, expected: Outcomes) -> None:
    assert outcomes(ins) == expected


@pytest.mark.parametrize("ins", [i for i, _ in TABLE], ids=[str(i) for i, _ in TABLE])
def test_only_a_mapped_read_dies(ins: Instr) -> None:
    assert (outcomes(ins).dies is not None) == isinstance(ins, MapRead)


@pytest.mark.parametrize("errno", ["EIO", "EINTR", "EACCES", "EAGAIN"])
def test_close_failing_unpredictably_still_releases_the_descriptor(errno: str) -> None:
    """An errno the semantics do not predict maps onto the fault point: close's releases the register."""
    assert outcomes(Close()).on_error(errno) == (CLEAR_F,)


def test_an_unpredicted_error_without_a_fault_point_is_the_first_check() -> None:
    """stat has no fault point: an EACCES is its first check (ELOOP, no effect), not ENOENT's size -1."""
    assert outcomes(Stat(P)).on_error("EACCES") == ()
    assert outcomes(Stat(P)).on_error("ENOENT") == (Effect("const", "st", -1),)
    assert outcomes(Read()).on_error("EISDIR") == (Effect("clear", "buf"),)


def test_an_operation_without_checks_or_fault_point_has_no_error_effects() -> None:
    assert Outcomes((), None, (), None, None).on_error("EIO") == ()


# ------------------------------------------------------------ Probe on real files


@pytest.fixture
def root(tmp_path: FsPath) -> Iterator[FsPath]:
    (tmp_path / "file").write_bytes(b"abc")
    os.symlink("file", tmp_path / "link")
    os.symlink("gone", tmp_path / "dangling")
    (tmp_path / "d").mkdir()
    yield tmp_path


def _probe(root: FsPath, regs: dict[str, tuple[RegKind, Any]], payloads: dict[str, bytes] | None = None,
           fault: tuple[str, int] | None = None, features: frozenset[str] = frozenset({S.LINKS})) -> Probe:
    return Probe("write", regs, payloads or {"entry": b"xy"}, 0, fault, lambda p: str(root / p.name),
                 lambda d: str(root / d), features)


def _fd(root: FsPath, flags: int) -> int:
    return os.open(root / "file", flags)


@pytest.mark.parametrize("name,refused", [("file", None), ("link", None), ("dangling", "ENOENT"),
                                          ("missing", "ENOENT"), ("d/missing", "ENOENT")])
def test_probe_stat_follows_symlinks_and_refuses_missing_names(root: FsPath, name: str, refused: str | None) -> None:
    p = _probe(root, {"st": (RegKind.SIZE, NO_SIZE)}).run(Stat(Path(name)))
    assert p.refused == refused


def test_probe_names_inodes_and_their_sizes(root: FsPath) -> None:
    """A name's inode is its real inode, -1 when missing; a link's target is found, a file is no link."""
    p = _probe(root, {"f": (RegKind.FD, -1)})
    ino = p.lookup(Path("file"))
    assert ino == os.lstat(root / "file").st_ino
    assert p.file_size(ino) == 3
    assert p.lookup(Path("missing")) == -1
    assert not p.is_link(ino) and p.link_target(ino) == -1
    link = p.lookup(Path("link"))
    assert p.is_link(link) and p.link_target(link) == ino
    assert p.link_target(p.lookup(Path("dangling"))) == -1
    assert p.file_size(-1) == 0 and p.lock_state(-1) == 0


def test_probe_of_unset_registers_is_no_inode(root: FsPath) -> None:
    p = _probe(root, {"f": (RegKind.FD, -1), "map": (RegKind.MAP, None)})
    assert not p.held("f")
    assert (p.fd_ino("f"), p.fd_off("f"), p.fd_mode("f"), p.fd_append("f"), p.fd_lock("f")) == (-1, 0, 0, False, 0)
    assert (p.map_ino("map"), p.map_len("map")) == (-1, 0)


def test_probe_of_a_held_descriptor(root: FsPath) -> None:
    fd = _fd(root, os.O_RDWR | os.O_APPEND)
    try:
        p = _probe(root, {"f": (RegKind.FD, fd)})
        ino = p.fd_ino("f")
        assert ino == os.fstat(fd).st_ino and p.file_size(ino) == 3
        assert p.fd_mode("f") == READ_BIT | WRITE_BIT and p.fd_append("f")
        assert p.fd_lock("f") == 0
        fcntl.flock(fd, fcntl.LOCK_SH)
        assert p.fd_lock("f") == 1 and p.lock_state(ino) == 1
    finally:
        os.close(fd)


def test_probe_write_lands_the_payload_after_effects(root: FsPath) -> None:
    fd = _fd(root, os.O_WRONLY)
    try:
        os.lseek(fd, 1, os.SEEK_SET)
        p = _probe(root, {"f": (RegKind.FD, fd)}).run(Write())
        assert (p.where, p.refused, p.chunk, p.start, p.done) == ("after", None, b"xy", 1, True)
    finally:
        os.close(fd)


def test_probe_append_write_lands_at_the_end(root: FsPath) -> None:
    fd = _fd(root, os.O_WRONLY | os.O_APPEND)
    try:
        p = _probe(root, {"f": (RegKind.FD, fd)}, features=frozenset({S.APPEND})).run(Write())
        assert (p.where, p.chunk, p.start) == ("after", b"xy", 3)
    finally:
        os.close(fd)


def test_probe_write_refused_without_a_writable_descriptor(root: FsPath) -> None:
    assert _probe(root, {"f": (RegKind.FD, -1)}).run(Write()).where == "refused"
    fd = _fd(root, os.O_RDONLY)
    try:
        p = _probe(root, {"f": (RegKind.FD, fd)}).run(Write())
        assert (p.where, p.refused) == ("refused", "EBADF")
    finally:
        os.close(fd)


def test_mode_bits_and_flock_holders(root: FsPath) -> None:
    fds = [_fd(root, os.O_RDONLY), _fd(root, os.O_WRONLY), _fd(root, os.O_RDWR)]
    try:
        assert [mode_bits(fd) for fd in fds] == [READ_BIT, WRITE_BIT, READ_BIT | WRITE_BIT]
        st = os.fstat(fds[0])
        assert flock_holders(st.st_dev, st.st_ino) == 0
        fcntl.flock(fds[0], fcntl.LOCK_SH)
        fcntl.flock(fds[1], fcntl.LOCK_SH)
        assert flock_holders(st.st_dev, st.st_ino) == 2
        fcntl.flock(fds[0], fcntl.LOCK_UN)
        fcntl.flock(fds[1], fcntl.LOCK_UN)
        fcntl.flock(fds[2], fcntl.LOCK_EX)
        assert flock_holders(st.st_dev, st.st_ino) == -1
    finally:
        for fd in fds:
            os.close(fd)


def test_probe_pwrite_lands_at_its_offset_after_effects(root: FsPath) -> None:
    """A pwrite's fault (ENOSPC) strikes after its bytes land, wherever the descriptor's offset is."""
    fd = _fd(root, os.O_WRONLY)
    try:
        p = _probe(root, {"f": (RegKind.FD, fd)}).run(PWrite(Data(), 2))
        assert (p.where, p.chunk, p.start) == ("after", b"xy", 2)
    finally:
        os.close(fd)


def test_probe_close_faults_after_releasing(root: FsPath) -> None:
    """A failing close has already released the descriptor: its fault strikes after effects."""
    fd = _fd(root, os.O_RDONLY)
    try:
        assert _probe(root, {"f": (RegKind.FD, fd)}, fault=("EIO", 0)).run(Close()).where == "after"
    finally:
        os.close(fd)


@pytest.mark.parametrize("ins", [Open(P, O_WRONLY | O_CREAT), Flock(LockOp.EXCLUSIVE)], ids=str)
def test_probe_faults_before_effects(root: FsPath, ins: Instr) -> None:
    fd = _fd(root, os.O_RDWR)
    try:
        regs: dict[str, tuple[RegKind, Any]] = {"f": (RegKind.FD, fd)}
        p = _probe(root, regs, fault=("EIO", 0), features=frozenset({S.LOCKS})).run(ins)
        assert p.where == "before"
    finally:
        os.close(fd)
