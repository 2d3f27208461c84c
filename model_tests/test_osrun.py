"""Promises of the compiled whole-program runner ``reference.osrun.run``.

Checked here, small and fast (the catalogue-wide comparison lives in
test_osfs.py):

- a hand-made program that uses one operand shape (payload lengths plus or
  minus a constant, data slices, a failing ftruncate or write, a return
  that keeps a descriptor open) ends as the model machine run to
  completion ends: same status, same hit value, same final file bytes;
- the first failure reported is the *first* one, even when later calls
  fail too;
- no descriptor is leaked: not by a return that still holds one, not by a
  run interrupted by an exception;
- a process killed by SIGBUS has no Outcome;
- staged lengths add and subtract like the numbers they stand for.
"""

from __future__ import annotations

import os
import pathlib
from typing import Mapping

import pytest

from spec.machine import initial, step
from spec.ops import (
    ENTRY,
    O_CREAT,
    O_RDONLY,
    O_RDWR,
    O_WRONLY,
    OUTPUT,
    Chtimes,
    Close,
    Mkdir,
    Path,
    PWrite,
    Rename,
    TEMP,
    Data,
    Failed,
    Fstat,
    Ftruncate,
    Goto,
    If,
    Instr,
    Label,
    Length,
    MapRead,
    Mmap,
    Open,
    Outcome,
    Program,
    Read,
    Return,
    Role,
    Write,
)
from spec.state import Buf, Status
from spec.system import Process, System
from reference.osrun import PayloadLen, Staged, resolve_paths, run

OK, FAIL, HIT = Return(Outcome.OK), Return(Outcome.FAIL), Return(Outcome.HIT)
PAYLOADS = {"entry": b"abcdef", "output": b"XYZ"}


def prog(name: str, *source: Instr, role: Role = Role.WRITER) -> Program:
    return Program(name, role, tuple(source))


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def agree(tmp_path: pathlib.Path, program: Program, payloads: Mapping[str, bytes] = PAYLOADS) -> Status:
    """Run ``program`` on the model to completion and with ``run`` on real
    files; assert the same status, hit value, file bytes, and that no
    descriptor stays open.  The status."""
    system = System((Process(program, tuple(payloads.items())),), 0, 0, "write")
    world = initial(system)
    while world.procs[0].status == Status.RUNNING:
        world = step(system, world, 0)
    before = _open_fds()
    got = run(program, payloads, tmp_path)
    assert _open_fds() == before, "the run leaked a descriptor"
    mine = world.procs[0]
    assert got.status == mine.status
    if mine.status == Status.HIT:
        assert got.value == next(v.data for v in mine.regs if isinstance(v, Buf))
    real = {str(p.relative_to(tmp_path)): p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    assert {n: real.get(n) for n, _ in world.fs.names} == {n: world.fs.file(n) for n, _ in world.fs.names}
    assert set(real) <= {n for n, _ in world.fs.names}, "a file the model does not have"
    return got.status


@pytest.mark.parametrize("delta", [-2, 0, 3])
def test_ftruncate_to_payload_length_plus_a_constant(tmp_path: pathlib.Path, delta: int) -> None:
    """ftruncate(f, len(entry)+delta) sizes the file as the model does."""
    p = prog("trunc", Open(ENTRY, O_WRONLY | O_CREAT), Write(Data("entry")), Ftruncate(Length("entry", delta)),
             Close(), OK)
    assert agree(tmp_path, p) == Status.OK


@pytest.mark.parametrize("delta", [-1, -3, 1])
def test_read_of_payload_length_plus_a_constant(tmp_path: pathlib.Path, delta: int) -> None:
    """A read of len(entry)+delta bytes returns what the model's does."""
    p = prog("reader", Open(ENTRY, O_RDWR | O_CREAT), Write(Data("entry")), Close(),
             Open(ENTRY, O_RDONLY), Read(Length("entry", delta)), Close(), HIT, role=Role.READER)
    assert agree(tmp_path, p) == Status.HIT


def test_data_slices_write_their_bounds(tmp_path: pathlib.Path) -> None:
    p = prog("slices", Open(ENTRY, O_WRONLY | O_CREAT), Write(Data("entry", 1, 4)), Write(Data("entry", 4)),
             Write(Data("entry", None, -5)), Close(), OK)
    assert agree(tmp_path, p) == Status.OK


def test_failing_ftruncate_and_write_are_branched_on(tmp_path: pathlib.Path) -> None:
    """ftruncate and write on a read-only descriptor fail, in both; the
    program sees the failure and the first one is the one reported."""
    p = prog("rdonly", Open(ENTRY, O_RDONLY | O_CREAT), Ftruncate(Length("entry", 1)), If(Failed(), "w"), OK,
             Label("w"), Write(Data("entry")), If(Failed(), "bad"), OK, Label("bad"), Close(), FAIL)
    assert agree(tmp_path, p) == Status.FAIL
    got = run(p, PAYLOADS, tmp_path)
    assert got.error is not None and got.error.op.startswith("ftruncate"), got.error


def test_return_while_holding_a_descriptor_releases_it(tmp_path: pathlib.Path) -> None:
    """exit closes what the program still holds (the model's exit)."""
    p = prog("leaky", Open(ENTRY, O_WRONLY | O_CREAT), Write(Data("entry")), OK)
    assert agree(tmp_path, p) == Status.OK


def test_return_after_a_failure_releases_descriptors(tmp_path: pathlib.Path) -> None:
    p = prog("leaky2", Open(OUTPUT, O_WRONLY | O_CREAT), Open(ENTRY, O_RDONLY, fd="g"), If(Failed(), "out"), OK,
             Label("out"), FAIL)
    assert agree(tmp_path, p) == Status.FAIL


class _Exploding(bytes):
    """A payload whose length cannot be taken: an interruption mid-run."""

    def __len__(self) -> int:
        raise KeyboardInterrupt


def test_an_interrupted_run_releases_its_descriptors(tmp_path: pathlib.Path) -> None:
    p = prog("interrupted", Open(ENTRY, O_WRONLY | O_CREAT), Ftruncate(Length("entry", 1)), Close(), OK)
    before = _open_fds()
    with pytest.raises(KeyboardInterrupt):
        run(p, {"entry": _Exploding(b"abc")}, tmp_path)
    assert _open_fds() == before


def test_sigbus_has_no_outcome(tmp_path: pathlib.Path) -> None:
    """A mapped read past the end of a file truncated under the mapping
    kills the process: SIGBUS, no Outcome, in both."""
    p = prog("bus", Open(ENTRY, O_RDWR | O_CREAT), Write(Data("entry")), Fstat(), Mmap(),
             Ftruncate(Length(None, 0)), MapRead(), Close(), HIT, role=Role.READER)
    assert agree(tmp_path, p) == Status.SIGBUS
    assert run(p, PAYLOADS, tmp_path).outcome is None


def test_staged_values_add_like_numbers() -> None:
    env: list[object] = [b"abc"]
    five, two = Staged(lambda e: 5), Staged(lambda e: 2)
    assert (five + two).at(env) == 7
    assert (five + 2).at(env) == 7 and (five + 0).at(env) == 5
    assert (PayloadLen(0) + two).at(env) == 5
    assert (PayloadLen(0) - 1).at(env) == 2 and (PayloadLen(0, 4) - 2).at(env) == 5


def test_reopening_a_register_releases_the_old_descriptor(tmp_path: pathlib.Path) -> None:
    """An open into a register that holds a descriptor drops the old one
    (the model overwrites it): nothing leaks, each file gets its write."""
    p = prog("reopen", Open(ENTRY, O_WRONLY | O_CREAT), Write(Data("entry", 0, 2)), Open(OUTPUT, O_WRONLY | O_CREAT),
             Write(Data("entry", 2)), Close(), OK)
    assert agree(tmp_path, p) == Status.OK


def test_failures_of_every_call_shape_are_data(tmp_path: pathlib.Path) -> None:
    """chtimes and rename of a missing name, a read from a write-only
    descriptor, a pwrite to a read-only one, a mkdir under a missing
    directory: each fails as in the model, and the program branches on it."""
    missing, nowhere = Path("missing"), Path("no/dir")
    p = prog("shapes", Chtimes(missing), If(Failed(frozenset({"ENOENT"})), "a"), OK,
             Label("a"), Rename(missing, OUTPUT), If(Failed(frozenset({"ENOENT"})), "b"), OK,
             Label("b"), Open(ENTRY, O_WRONLY | O_CREAT), Read(Length("entry", 1)), If(Failed(), "c"), OK,
             Label("c"), Close(), Open(ENTRY, O_RDONLY), PWrite(Data("entry"), 2), If(Failed(), "d"), OK,
             Label("d"), Mkdir(nowhere), If(Failed(frozenset({"ENOENT"})), "e"), OK, Label("e"), Close(), FAIL)
    assert agree(tmp_path, p) == Status.FAIL
    got = run(p, PAYLOADS, tmp_path)
    # chtimes is a local operation: its failure is branched on but is not
    # the run's first failure; the rename's is, reported at its destination.
    assert got.error is not None, got
    assert (got.error.errno, got.error.op, got.error.path) == ("ENOENT", "rename(missing, output)",
                                                               str(tmp_path / "output"))


def test_private_names_live_beside_their_mapped_prefix(tmp_path: pathlib.Path) -> None:
    """With a mapping, the temp file of ``entry`` is ``<real entry>.tmp.<pid>.<hex>``
    and a run that renames it into place leaves only the entry."""
    p = prog("rip", Open(TEMP, O_WRONLY | O_CREAT), Write(Data("entry")), Close(), Rename(TEMP, ENTRY), OK)
    real = tmp_path / "e175"
    name = resolve_paths(p, {ENTRY: real})[TEMP]
    assert name.startswith(f"{real}.tmp.{os.getpid()}.") and len(name) == len(f"{real}.tmp.{os.getpid()}.") + 8
    got = run(p, {"entry": b"abc"}, {"entry": real})
    assert got.outcome is Outcome.OK and os.listdir(tmp_path) == ["e175"] and real.read_bytes() == b"abc"


def test_program_dirs_are_made_first(tmp_path: pathlib.Path) -> None:
    obj = Path("objects/ab/cd")
    p = Program("in-dir", Role.WRITER, (Open(obj, O_WRONLY | O_CREAT), Write(Data("entry")), Close(), OK),
                dirs=("objects", "objects/ab"))
    got = run(p, {"entry": b"abc"}, tmp_path)
    assert got.outcome is Outcome.OK and (tmp_path / "objects" / "ab" / "cd").read_bytes() == b"abc"


def test_created_files_get_mode_0666_less_the_umask(tmp_path: pathlib.Path) -> None:
    """open(path, flags, 0666), as Go's os.Create: the mode is not the flags."""
    p = prog("create", Open(ENTRY, O_WRONLY | O_CREAT), Close(), OK)
    old = os.umask(0o022)
    try:
        run(p, {}, tmp_path)
    finally:
        os.umask(old)
    assert (tmp_path / "entry").stat().st_mode & 0o777 == 0o644


def test_a_hit_from_a_mapping_releases_it_at_exit(tmp_path: pathlib.Path) -> None:
    """A reader that returns while still holding its mapping and descriptor:
    the hit value is the mapped bytes, and exit releases both."""
    p = prog("maphit", Open(ENTRY, O_RDWR | O_CREAT), Write(Data("entry")), Fstat(), Mmap(), MapRead(), HIT,
             role=Role.READER)
    assert agree(tmp_path, p) == Status.HIT


def test_failing_mmap_and_fstat_are_data(tmp_path: pathlib.Path) -> None:
    """mmap of a write-only descriptor and fstat of a closed register fail
    as in the model; the program branches on both."""
    p = prog("mapfail", Open(ENTRY, O_WRONLY | O_CREAT), Write(Data("entry")), Fstat(), Mmap(), If(Failed(), "a"),
             OK, Label("a"), Close(), Fstat(), If(Failed(), "b"), OK, Label("b"), FAIL, role=Role.READER)
    assert agree(tmp_path, p) == Status.FAIL


@pytest.mark.parametrize("extra", [(), (Fstat(),)], ids=["one-register", "two-registers"])
def test_each_payload_is_written_where_the_program_names_it(tmp_path: pathlib.Path, extra: tuple[Instr, ...]) -> None:
    """A program that names two payloads writes each one's own bytes to its
    own file (with one register or two before the payloads in the
    runner's environment, so that the payloads' slots fall on both
    parities)."""
    p = prog("two", Open(ENTRY, O_WRONLY | O_CREAT), *extra, Write(Data("entry")), Close(),
             Open(OUTPUT, O_WRONLY | O_CREAT), Write(Data("output")), Close(), OK)
    assert agree(tmp_path, p) == Status.OK
    assert (tmp_path / "entry").read_bytes() == PAYLOADS["entry"]
    assert (tmp_path / "output").read_bytes() == PAYLOADS["output"]
