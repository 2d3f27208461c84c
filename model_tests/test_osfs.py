"""The OS interpreter against the model, operation by operation.

Each test runs the same Program values in ``spec.machine`` and in
``reference.osworld.OSWorld`` with the same schedule and faults, and compares
the whole state after *every* step: the shared files, each process's
private files, and each process's pc, status, last errno, write progress
and registers (a descriptor's mode, offset and the bytes of its file, even
unlinked; a mapping's length and file).  A disagreement is either a model
bug or an interpreter bug; either way it fails here.

Also: the production runner (``reference.osrun.run``) against the model run
to completion, from several starting states, for every catalogue protocol;
and known-bad twins (an interpreter that forgets O_TRUNC, one that ignores a
fault) that the comparison must catch.
"""

from __future__ import annotations

import os
import pathlib
import random
from typing import Callable, Sequence

import pytest

from spec import semantics as S
from spec import fs as F
from spec.machine import Blocked, Fault, PyDom, enabled, faults, initial, step
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
    Cond,
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
    Invalid,
    Label,
    Length,
    Link,
    LockOp,
    MapRead,
    Mkdir,
    Mmap,
    Open,
    Outcome,
    Path,
    Program,
    ProgramError,
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
from spec.protocols import CATALOGUE
from spec.state import UNSET, Began, Buf, Proc, Reg, Size, Status, World
from spec.system import Kind, Process, System
from reference import syscalls
from reference.osrun import compiled, resolve_paths, run
from reference.lockstep import difference
from reference.osworld import OSWorld, Snapshot, project

OK, FAIL, HIT = Return(Outcome.OK), Return(Outcome.FAIL), Return(Outcome.HIT)
Schedule = Sequence[tuple[int, Fault]]
# The protocols the OS interpreter runs: not the remote tier's, whose
# object-store requests it refuses (test_s3_model.py).
LOCAL = [p.name for p in CATALOGUE if S.OBJECTS not in S.features([p.program])]
WRITERS = [p.name for p in CATALOGUE.writers() if p.name in LOCAL]
READERS = [p.name for p in CATALOGUE.readers() if p.name in LOCAL]


def prog(name: str, *source: Instr, role: Role = Role.WRITER) -> Program:
    return Program(name, role, tuple(source))


def proc(program: Program, entry: bytes = b"abc", output: bytes = b"XYZ") -> Process:
    return Process(program, (("entry", entry), ("output", output)))


def lockstep(tmp_path: pathlib.Path, procs: Sequence[Process], schedule: Schedule, *, granularity: str = "byte",
             budget: int = 9, world_type: type[OSWorld] = OSWorld) -> tuple[World, Snapshot]:
    """Run ``schedule`` on the model and on the OS, asserting equal state
    after every step; the final pair."""
    system = System(tuple(procs), budget, 0, granularity)
    world = initial(system)
    with world_type(system, tmp_path) as real:
        assert real.snapshot() == project(system, world), "initial states differ"
        for n, (i, fault) in enumerate(schedule, 1):
            world = step(system, world, i, fault)
            real.step(i, fault)
            got, want = real.snapshot(), project(system, world)
            assert got == want, f"step {n} (P{i + 1}, fault {fault}):\n OS    {got}\n model {want}"
        return world, real.snapshot()


def entry_of(snap: Snapshot) -> bytes | None:
    return dict(snap.files)["entry"]


def regs(snap: Snapshot, i: int) -> tuple[tuple[object, ...], ...]:
    return snap.procs[i].regs


WRITE_CLOSE = prog("write-close", Open(ENTRY, O_WRONLY | O_CREAT), Write(), Close(), OK)


# ------------------------------------------------------------ one op at a time


def test_write_lands_one_byte_per_step(tmp_path: pathlib.Path) -> None:
    _, snap = lockstep(tmp_path, [proc(WRITE_CLOSE)], [(0, None)] * 2)
    assert entry_of(snap) == b"a"
    assert snap.procs[0].progress == 1


def test_write_then_close_completes(tmp_path: pathlib.Path) -> None:
    world, snap = lockstep(tmp_path, [proc(WRITE_CLOSE)], [(0, None)] * 5)
    assert entry_of(snap) == b"abc" and snap.procs[0].status == "ok"
    assert regs(snap, 0) == ((),), "exit releases the descriptor"


def test_o_trunc_empties_a_complete_file(tmp_path: pathlib.Path) -> None:
    trunc = prog("trunc", Open(ENTRY, O_WRONLY | O_CREAT | O_TRUNC), Close(), OK)
    _, snap = lockstep(tmp_path, [proc(WRITE_CLOSE), proc(trunc)], [(0, None)] * 5 + [(1, None)])
    assert entry_of(snap) == b""


def test_torn_write_after_o_trunc_leaves_a_hole(tmp_path: pathlib.Path) -> None:
    """write-file's bug on the real kernel: W1's offset survives W2's
    O_TRUNC, so W1's next byte lands after a zero-filled hole."""
    wf = CATALOGUE["write-file"].program
    _, snap = lockstep(tmp_path, [proc(wf), proc(wf)], [(0, None), (0, None), (1, None), (0, None)])
    assert entry_of(snap) == b"\x00b"


def test_o_excl_second_creator_gets_eexist(tmp_path: pathlib.Path) -> None:
    excl = prog("excl", Open(ENTRY, O_WRONLY | O_CREAT | O_EXCL), If(Failed(), "f"), Close(), OK, Label("f"), FAIL)
    _, snap = lockstep(tmp_path, [proc(excl), proc(excl)], [(0, None), (1, None)])
    assert snap.procs[1].status == "fail"
    assert entry_of(snap) == b""


def test_open_without_creat_misses(tmp_path: pathlib.Path) -> None:
    reader = CATALOGUE["go-read-entry"].program
    _, snap = lockstep(tmp_path, [proc(reader)], [(0, None)])
    assert snap.procs[0].status == "miss"


@pytest.mark.parametrize("n", [0, 1, 3, 5, 4097])
def test_ftruncate_shrinks_and_extends_with_zeros(tmp_path: pathlib.Path, n: int) -> None:
    p = prog("trunc-to", Open(ENTRY, O_RDWR | O_CREAT), Write(), Ftruncate(Length(None, n)), Fstat(), Read(Length(None, 9000)), Close(), OK)
    _, snap = lockstep(tmp_path, [proc(p)], [(0, None)] * 5)
    assert entry_of(snap) == (b"abc" + bytes(max(0, n - 3)))[:n]


def test_pwrite_past_end_zero_fills_and_keeps_offset(tmp_path: pathlib.Path) -> None:
    p = prog("pwrite", Open(ENTRY, O_WRONLY | O_CREAT), PWrite(Data(), 4), Write(Data(stop=1)), Close(), OK)
    _, snap = lockstep(tmp_path, [proc(p)], [(0, None)] * 6)
    assert entry_of(snap) == b"a\x00\x00\x00abc", "pwrite lands at 4; the offset stays 0 for the write"


def test_unlink_while_open_keeps_the_inode(tmp_path: pathlib.Path) -> None:
    holder = prog("holder", Open(ENTRY, O_RDWR | O_CREAT), Write(), Fstat(), Read(), Close(), OK)
    remover = prog("remover", Unlink(ENTRY), OK)
    sched = [(0, None), (0, None), (1, None), (0, None), (0, None), (0, None)]
    _, snap = lockstep(tmp_path, [proc(holder), proc(remover)], sched)
    assert entry_of(snap) is None, "the name is gone"
    fd = regs(snap, 0)[0]
    assert fd[0] == "fd" and fd[3] == b"abc", "the descriptor still holds the written bytes"
    assert regs(snap, 0)[1] == (3,), "fstat of the unlinked inode"


def test_rename_replaces_the_name_atomically(tmp_path: pathlib.Path) -> None:
    """A reader holding the old entry keeps the old bytes; the name points at
    the renamed temp file; the temp file's private name is gone."""
    old = prog("old", Open(ENTRY, O_WRONLY | O_CREAT), Write(Data("output")), Close(), OK)
    holder = prog("holder", Open(ENTRY, O_RDONLY), Read(), Close(), HIT, role=Role.READER)
    rip = CATALOGUE["rename-into-place"].program
    sched = [(0, None)] * 5 + [(1, None)] + [(2, None)] * 6 + [(1, None)]
    _, snap = lockstep(tmp_path, [proc(old), proc(holder), proc(rip)], sched)
    assert entry_of(snap) == b"abc"
    assert snap.private[2] == ()
    assert regs(snap, 1)[1] == (b"XYZ",), "the reader read the old inode"


def test_private_names_are_per_process(tmp_path: pathlib.Path) -> None:
    tmp = prog("tmp", Open(TEMP, O_WRONLY | O_CREAT | O_EXCL), If(Failed(), "f"), Write(), Close(), OK, Label("f"), FAIL)
    _, snap = lockstep(tmp_path, [proc(tmp), proc(tmp)], [(0, None), (1, None)])
    assert [p.status for p in snap.procs] == ["run", "run"], "no EEXIST: each has its own temp file"
    assert len(os.listdir(tmp_path)) == 2


def test_stat_of_a_missing_file_is_minus_one(tmp_path: pathlib.Path) -> None:
    p = prog("stat", Stat(ENTRY), If(SizeIs("==", Length(None, -1)), "m"), OK, Label("m"), FAIL)
    _, snap = lockstep(tmp_path, [proc(p)], [(0, None)])
    assert snap.procs[0].status == "fail"


def test_wrong_mode_and_closed_descriptors(tmp_path: pathlib.Path) -> None:
    """The kernel's EBADF/EINVAL match the model's: write on O_RDONLY,
    read on O_WRONLY, ftruncate on O_RDONLY, ops after close."""
    p = prog(
        "modes",
        Open(ENTRY, O_WRONLY | O_CREAT), Read(), Close(),
        Open(ENTRY, O_RDONLY), Write(), Ftruncate(), Close(),
        Close(), Fsync(), Fstat(), Write(), Read(), OK,
    )
    world, snap = lockstep(tmp_path, [proc(p)], [(0, None)] * 12)
    assert snap.procs[0].status == "ok"


# ------------------------------------------------------------ faults


@pytest.mark.parametrize("k", [0, 1, 2])
def test_write_fault_at_byte_k_lands_k_bytes(tmp_path: pathlib.Path, k: int) -> None:
    wc = CATALOGUE["write-then-truncate"].program
    sched: list[tuple[int, Fault]] = [(0, None)] * (1 + k) + [(0, ("ENOSPC", k))]
    _, snap = lockstep(tmp_path, [proc(wc)], sched + [(0, None)])
    assert entry_of(snap) == b"abc"[:k]
    assert snap.procs[0].status == "fail"


@pytest.mark.parametrize("k", [0, 1, 2])
def test_write_fault_at_write_granularity(tmp_path: pathlib.Path, k: int) -> None:
    gie = CATALOGUE["go-index-entry"].program
    _, snap = lockstep(tmp_path, [proc(gie), proc(gie)], [(0, None), (0, ("ENOSPC", k)), (1, None)], granularity="write")
    assert snap.procs[0].last == "ENOSPC"


@pytest.mark.parametrize("protocol,at", [
    ("write-then-truncate", 0),  # open
    ("write-then-truncate", 4),  # ftruncate
    ("write-then-truncate", 5),  # close
    ("go-index-entry", 5),  # close, then the remove
    ("rename-into-place-fsync", 4),  # fsync
    ("rename-into-place", 5),  # rename
])
def test_injected_faults(tmp_path: pathlib.Path, protocol: str, at: int) -> None:
    """Run one writer; fault its step number ``at``; the rest runs clean."""
    prog_ = CATALOGUE[protocol].program
    system = System((proc(prog_),), 1)
    world = initial(system)
    sched: list[tuple[int, Fault]] = []
    for n in range(40):
        if world.procs[0].status != Status.RUNNING:
            break
        f = faults(system, world, 0)[0] if n == at else None
        sched.append((0, f))
        world = step(system, world, 0, f)
    assert any(f for _, f in sched), "the fault was injected"
    _, snap = lockstep(tmp_path, [proc(prog_)], sched, budget=1)
    assert snap.procs[0].status == "fail"


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_failing_close_really_closes(tmp_path: pathlib.Path) -> None:
    with OSWorld(System((proc(WRITE_CLOSE),), 1, 0, "write"), tmp_path) as real:
        before = _open_fds()
        real.step(0)
        real.step(0)
        assert _open_fds() == before + 1, "the descriptor is open"
        real.step(0, ("EIO", 0))
        assert real.proc(0).status == Status.OK and real.proc(0).last == ""
        assert _open_fds() == before, "the failing close released the descriptor"


def test_a_fault_the_op_cannot_suffer_is_refused(tmp_path: pathlib.Path) -> None:
    with OSWorld(System((proc(WRITE_CLOSE),), 1), tmp_path) as real:
        with pytest.raises(ValueError):
            real.step(0, ("ENOSPC", 0))  # an open fails with EACCES, not ENOSPC


# ------------------------------------------------------------ mmap


def test_mapped_read_past_the_last_page_is_sigbus(tmp_path: pathlib.Path) -> None:
    """A real SIGBUS: map 5000 bytes, another writer's O_TRUNC empties the
    file, touching the mapping kills the (forked) reader, in both."""
    big = bytes(range(1, 256)) * 20
    mm, wf = CATALOGUE["mmap-read"].program, CATALOGUE["write-file"].program
    sched: list[tuple[int, Fault]] = [(0, None)] * 3 + [(1, None)] * 4 + [(2, None)] + [(1, None)]
    world, snap = lockstep(tmp_path, [proc(wf, big), proc(mm, big), proc(wf, big)], sched, granularity="write")
    assert snap.procs[1].status == Status.SIGBUS


def test_mapped_read_inside_the_last_page_reads_zeros(tmp_path: pathlib.Path) -> None:
    """The file shrinks to 1 byte under a 3-byte mapping: still in the page,
    so the tail reads as zeros (and the reader's check says miss)."""
    mm = CATALOGUE["mmap-read"].program
    shrink = prog("shrink", Open(ENTRY, O_WRONLY), Ftruncate(Length(None, 1)), Close(), OK)
    wc = CATALOGUE["write-then-truncate"].program
    sched: list[tuple[int, Fault]] = [(0, None)] * 6 + [(1, None)] * 4 + [(2, None)] * 3 + [(1, None)]
    world, snap = lockstep(tmp_path, [proc(wc), proc(mm), proc(shrink)], sched)
    assert snap.procs[1].status == "miss"


def test_mapping_of_size_zero_and_unset(tmp_path: pathlib.Path) -> None:
    p = prog("map0", Open(ENTRY, O_RDONLY | O_CREAT), Fstat(), Mmap(), Close(), MapRead(), HIT, role=Role.READER)
    nomap = prog("nomap", MapRead(), OK)  # a mapping never made: EINVAL
    _, snap = lockstep(tmp_path, [proc(p), proc(nomap)], [(0, None)] * 5 + [(1, None)])
    assert snap.procs[0].status == "hit" and regs(snap, 0)[3] == (b"",)


# ------------------------------------------------------------ random lockstep


@pytest.mark.parametrize("protocol", WRITERS)
@pytest.mark.parametrize("reader", READERS)
def test_random_interleavings_agree(tmp_path: pathlib.Path, protocol: str, reader: str) -> None:
    """Seeded random schedules with faults: every state agrees."""
    for seed in range(4):
        for granularity in ("byte", "write"):
            system = System.of(CATALOGUE[protocol], 2, 1, CATALOGUE[reader], faults=2, entry_length=3,
                               granularity=granularity)
            rnd = random.Random(f"{protocol}/{reader}/{seed}/{granularity}")
            world = initial(system)
            sandbox = tmp_path / f"{seed}-{granularity}"
            sandbox.mkdir()
            with OSWorld(system, sandbox) as real:
                assert real.names == system.names
                # A process waiting for a lock (gradle's, cargo's flock) is not enabled.
                while live := [i for i in range(len(world.procs)) if enabled(system, world, i)]:
                    i = rnd.choice(live)
                    allowed = faults(system, world, i)
                    assert real.faults(i) == allowed
                    f = rnd.choice(allowed) if allowed and rnd.random() < 0.3 else None
                    world = step(system, world, i, f)
                    real.step(i, f)
                    assert real.snapshot() == project(system, world), (seed, granularity)


# ------------------------------------------------------------ whole program


PRE_STATES: dict[str, bytes | None] = {
    "empty-dir": None, "complete": b"abc", "short": b"ab", "long": b"abcd", "hole": b"\x00bc", "other": b"xyz",
}


@pytest.mark.parametrize("pre", sorted(PRE_STATES))
@pytest.mark.parametrize("protocol", sorted(LOCAL))
def test_whole_program_run_matches_the_model(tmp_path: pathlib.Path, protocol: str, pre: str) -> None:
    """``run`` (compiled closures) ends like the model run alone, from a
    state where entry and output hold the same ``pre`` bytes."""
    pre_bytes = PRE_STATES[pre]
    program = CATALOGUE[protocol].program
    procs: list[Process] = []
    if pre_bytes is not None:
        # Seed both files with the model's own operations, so the model
        # starts its run from the state the real files are given.
        seed_entry = prog("seed-entry", Open(ENTRY, O_WRONLY | O_CREAT), Write(Data("entry")), Close(), OK)
        seed_output = prog("seed-output", Open(OUTPUT, O_WRONLY | O_CREAT), Write(Data("entry")), Close(), OK)
        procs += [proc(seed_entry, pre_bytes), proc(seed_output, pre_bytes)]
    procs.append(proc(program))
    system = System(tuple(procs), 0, 0, "write")
    world = initial(system)
    for i in range(len(procs)):
        while world.procs[i].status == Status.RUNNING:
            world = step(system, world, i)
    if pre_bytes is not None:
        for name in ("entry", "output"):
            (tmp_path / name).write_bytes(pre_bytes)
    got = run(program, {"entry": b"abc", "output": b"XYZ"}, tmp_path)
    mine = world.procs[-1]
    assert got.status == mine.status
    if mine.status == Status.HIT:
        assert got.value == next(v.data for v in mine.regs if isinstance(v, Buf))
    # Every regular file under the directory, by its relative name (git's
    # object lives in a directory the program makes).
    real = {str(p.relative_to(tmp_path)): p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    assert {n: real.get(n) for n, _ in world.fs.names} == {n: world.fs.file(n) for n, _ in world.fs.names}


def test_run_reports_the_failing_call(tmp_path: pathlib.Path) -> None:
    got = run(CATALOGUE["write-then-truncate"].program, {"entry": b"abc"}, {"entry": tmp_path / "no" / "entry"})
    assert got.outcome is Outcome.FAIL
    assert got.error is not None and got.error.errno == "ENOENT" and got.error.op.startswith("f = open(entry")


def test_run_rejects_missing_payloads_and_paths(tmp_path: pathlib.Path) -> None:
    with pytest.raises(ProgramError):
        run(CATALOGUE["go-put"].program, {"entry": b"abc"}, tmp_path)
    with pytest.raises(ProgramError):
        run(CATALOGUE["go-put"].program, {"entry": b"abc", "output": b"x"}, {"entry": tmp_path / "e"})


def test_a_loop_without_operations_is_refused() -> None:
    spin = prog("spin", Label("top"), If(Failed(), "top"), Stat(ENTRY), If(Failed(), "top"), Label("x"), If(SizeIs("==", Length(None, 0)), "x"), OK)
    with pytest.raises(ProgramError):
        compiled(spin)


def test_compiled_programs_are_cached() -> None:
    p = CATALOGUE["write-then-truncate"].program
    assert compiled(p) is compiled(p)


# ------------------------------------------------------------ known-bad twins


def _forgets_trunc(monkeypatch: pytest.MonkeyPatch) -> type[OSWorld]:
    """A broken OS interpreter: its open binding drops O_TRUNC."""
    binder = syscalls.BINDINGS[Open]

    def no_trunc(ins: Open, o: syscalls.Operands) -> syscalls.Bound:
        return binder(Open(ins.path, ins.flags & ~O_TRUNC, ins.fd), o)

    monkeypatch.setitem(syscalls.BINDINGS, Open, no_trunc)
    return OSWorld


class _IgnoresFaults(OSWorld):
    """A broken OS interpreter: a write fault writes everything anyway."""

    def step(self, i: int, fault: Fault = None) -> None:
        super().step(i, None if isinstance(self.current(i), (Write, PWrite)) else fault)


def _ignores_faults(monkeypatch: pytest.MonkeyPatch) -> type[OSWorld]:
    return _IgnoresFaults


@pytest.mark.parametrize("broken,schedule,granularity", [
    (_forgets_trunc, [(0, None)] * 5 + [(1, None)], "byte"),
    (_ignores_faults, [(0, None), (0, ("ENOSPC", 1))], "write"),
])
def test_lockstep_catches_a_broken_interpreter(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch,
                                               broken: Callable[[pytest.MonkeyPatch], type[OSWorld]],
                                               schedule: Schedule, granularity: str) -> None:
    wf = CATALOGUE["write-file"].program
    world_type = broken(monkeypatch)
    with pytest.raises(AssertionError, match=r"step \d+ \(P\d, fault .*\):"):
        lockstep(tmp_path, [proc(wf), proc(wf)], schedule, granularity=granularity, budget=1, world_type=world_type)


# ------------------------------------------------------------ edges no protocol reaches


EDGES: dict[str, Program] = {
    "o_excl-without-o_creat-opens": prog("t", Open(ENTRY, O_WRONLY | O_EXCL), Close(), OK),
    "rename-onto-itself": prog("t", Rename(ENTRY, ENTRY), OK),
    "rename-of-a-missing-temp": prog("t", Rename(TEMP, ENTRY), OK),
    "o_creat-o_excl-o_trunc-on-existing": prog("t", Open(ENTRY, O_WRONLY | O_CREAT | O_TRUNC | O_EXCL), Close(), OK),
    "reopen-into-the-same-register": prog("t", Open(ENTRY, O_RDWR), Open(ENTRY, O_RDWR), Read(), Close(), OK),
    "read-then-write-share-the-offset": prog("t", Open(ENTRY, O_RDWR), Read(Length(None, 1)), Write(Data(stop=1)), Close(), OK),
    "unlink-a-missing-temp": prog("t", Unlink(TEMP), OK),
}


def _after_a_complete_entry(tmp_path: pathlib.Path, p: Program) -> None:
    """P1 writes "abc" and ends; then ``p`` runs to its end; in lockstep."""
    procs = [proc(WRITE_CLOSE), proc(p)]
    system = System(tuple(procs), 0, 0, "write")
    world, sched = initial(system), []
    for i in (0, 1):
        while world.procs[i].status == Status.RUNNING:
            world = step(system, world, i)
            sched.append((i, None))
    lockstep(tmp_path, procs, sched, granularity="write")


@pytest.mark.parametrize("name", sorted(EDGES))
def test_edges_agree(tmp_path: pathlib.Path, name: str) -> None:
    _after_a_complete_entry(tmp_path, EDGES[name])


def test_o_rdonly_o_trunc_truncates_on_linux(tmp_path: pathlib.Path) -> None:
    _after_a_complete_entry(tmp_path, prog("t", Open(ENTRY, O_RDONLY | O_TRUNC), Close(), OK))


# ------------------------------------------------------------ compiled conditions


def _model_holds(cond: Cond, program: Program, regs: dict[str, Reg]) -> object:
    """``spec.semantics.holds`` on the model's domain, with ``regs`` set."""
    k = Kind(program, (("entry", b"abc"),))
    values = tuple(regs.get(r, UNSET) for r in k.reg)
    p = Proc(0, 0, Status.RUNNING, "", 0, values, (), Began.NOT_YET)
    return S.holds(cond, PyDom(k, p, initial(System((Process(program, k.payloads),))).fs, None, "write", False))


@pytest.mark.parametrize("op", ["==", "!=", ">"])
def test_compiled_size_conditions_agree_with_the_model(tmp_path: pathlib.Path, op: str) -> None:
    """The runner stages ``spec.semantics.holds`` when compiling: a size
    test, size by size (-1: a missing file), ends the run as the model's
    own holds decides it."""
    for delta in (-1, 0, 1):
        cond = SizeIs(op, Length("entry", delta))
        p = prog("c", Stat(ENTRY), If(cond, "y"), OK, Label("y"), FAIL)
        for size in (-1, 0, 1, 2, 3, 4):
            sandbox = tmp_path / f"{op}{delta}{size}"
            sandbox.mkdir()
            if size >= 0:
                (sandbox / "entry").write_bytes(b"x" * size)
            want = Status.FAIL if _model_holds(cond, p, {"st": Size(size)}) else Status.OK
            assert run(p, {"entry": b"abc"}, sandbox).status == want, (op, delta, size)


def test_compiled_validity_agrees_with_the_model(tmp_path: pathlib.Path) -> None:
    """The same for the reader's validation, and an unset buffer (the
    read of a missing file fails)."""
    cond = Invalid("entry")
    p = prog("v", Open(ENTRY, O_RDONLY), Read(), If(cond, "m"), HIT, Label("m"), Return(Outcome.MISS), role=Role.READER)
    for n, content in enumerate((None, b"", b"ab", b"abc", b"a\x00c", b"abcd", b"xyz")):
        sandbox = tmp_path / str(n)
        sandbox.mkdir()
        if content is not None:
            (sandbox / "entry").write_bytes(content)
        buf: Reg = UNSET if content is None else Buf(content)
        want = Status.MISS if _model_holds(cond, p, {"buf": buf}) else Status.HIT
        assert run(p, {"entry": b"abc"}, sandbox).status == want, content


# ------------------------------------------------------------ path mapping


def test_paths_from_a_directory_or_a_mapping(tmp_path: pathlib.Path) -> None:
    rip = CATALOGUE["rename-into-place"].program
    by_dir = resolve_paths(rip, tmp_path)
    assert by_dir[ENTRY] == str(tmp_path / "entry")
    assert os.path.dirname(by_dir[TEMP]) == str(tmp_path) and os.path.basename(by_dir[TEMP]).startswith("entry.tmp.")
    by_map = resolve_paths(rip, {ENTRY: tmp_path / "x" / "e175"})
    assert by_map[TEMP].startswith(str(tmp_path / "x" / "e175") + ".tmp.")
    assert resolve_paths(rip, {"entry": "/a/b"})[TEMP] != resolve_paths(rip, {"entry": "/a/b"})[TEMP], "unique per run"


def test_run_with_a_mapping_leaves_no_temp_file(tmp_path: pathlib.Path) -> None:
    got = run(CATALOGUE["rename-into-place"].program, {"entry": b"abc"}, {"entry": tmp_path / "e"})
    assert got.outcome is Outcome.OK and os.listdir(tmp_path) == ["e"]


# ------------------------------------------------------------ the new operations
#
# link, mkdir, O_APPEND, symlink/readlink/O_NOFOLLOW, flock, fdatasync,
# renameat2(RENAME_NOREPLACE): the protocols real tools build from them,
# in lockstep (only a process that can step steps: a flock may wait), and
# whole, by the production runner.

ERR = Failed()
OBJ = Path("objects/ab/entry")


def _git_publish() -> Program:
    """git's loose object: an exclusive temp in the object's directory
    (made on ENOENT), link to publish (EEXIST: another wrote it), unlink."""
    tmp = Path("objects/ab/tmp", private=True)
    return prog("git-link", Label("again"), Open(tmp, O_WRONLY | O_CREAT | O_EXCL), If(Failed(frozenset({"ENOENT"})), "mkdir"),
                If(ERR, "fail"), Write(Data("entry")), If(ERR, "cu"), Fdatasync(), If(ERR, "cu"), Close(), If(ERR, "u"),
                Link(tmp, OBJ), If(Failed(frozenset({"EEXIST"})), "u_ok"), If(ERR, "u"), Unlink(tmp), OK,
                Label("u_ok"), Unlink(tmp), OK,
                Label("mkdir"), Mkdir(Path("objects/ab")), If(Failed(frozenset({"EEXIST"})), "again"), If(ERR, "fail"),
                Goto("again"),
                Label("cu"), Close(), Label("u"), Unlink(tmp), Label("fail"), FAIL)


def _read(path: Path, name: str = "read") -> Program:
    return prog(name, Open(path, O_RDONLY), If(ERR, "miss"), Read(), Close(), If(Invalid("entry"), "miss"), HIT,
                Label("miss"), Return(Outcome.MISS), role=Role.READER)


def _appender() -> Program:
    return prog("append", Open(ENTRY, O_WRONLY | O_CREAT | O_APPEND), If(ERR, "fail"), Write(Data("entry")), Close(), OK,
                Label("fail"), FAIL)


def _symlink_publish() -> Program:
    """The output by temp and renameat2(RENAME_NOREPLACE), then a symlink
    from the entry to it; EEXIST means another writer won."""
    tmp = Path("output.tmp", private=True)
    return prog("symlink-publish", Open(tmp, O_WRONLY | O_CREAT | O_EXCL), If(ERR, "fail"), Write(Data("entry")),
                If(ERR, "cu"), Close(), If(ERR, "u"), Rename(tmp, OUTPUT, noreplace=True), If(ERR, "u"),
                Symlink(OUTPUT, ENTRY), If(Failed(frozenset({"EEXIST"})), "done"), If(ERR, "fail"), Readlink(ENTRY, "lnk"),
                Label("done"), OK, Label("u"), Unlink(tmp), Label("fail"), FAIL, Label("cu"), Close(), Goto("u"))


def _locked_writer() -> Program:
    return prog("locked-write", Open(ENTRY, O_RDWR | O_CREAT), If(ERR, "fail"), Flock(LockOp.SHARED), Flock(LockOp.EXCLUSIVE),
                If(ERR, "cf"), Ftruncate(Length(None, 0)), Write(Data("entry")), If(ERR, "cf"), Flock(LockOp.UNLOCK), Close(),
                OK, Label("cf"), Close(), Label("fail"), FAIL)


def _locked_reader() -> Program:
    return prog("locked-read", Open(ENTRY, O_RDONLY | O_NOFOLLOW), If(ERR, "miss"), Flock(LockOp.SHARED), Read(), Close(),
                If(Invalid("entry"), "miss"), HIT, Label("miss"), Return(Outcome.MISS), role=Role.READER)


NEW_SYSTEMS: dict[str, tuple[tuple[Program, ...], tuple[str, ...]]] = {
    "git-link": ((_git_publish(), _git_publish(), _read(OBJ)), ("objects",)),
    "append": ((_appender(), _appender(), _read(ENTRY)), ()),
    "symlink-publish": ((_symlink_publish(), _symlink_publish(), _read(ENTRY)), ()),
    "flock": ((_locked_writer(), _locked_writer(), _locked_reader()), ()),
}


def _new_system(name: str, granularity: str, faults_: int = 2) -> System:
    progs, dirs = NEW_SYSTEMS[name]
    first = Program(progs[0].name, progs[0].role, progs[0].source, dirs=dirs)
    return System(tuple(proc(p) for p in (first, *progs[1:])), faults_, 0, granularity)


@pytest.mark.parametrize("name", sorted(NEW_SYSTEMS))
def test_new_protocols_random_interleavings_agree(tmp_path: pathlib.Path, name: str) -> None:
    """Seeded random schedules with faults over the protocols built from
    the new operations: the model and the kernel agree on which process
    can step, and on every state."""
    for seed in range(6):
        for granularity in ("byte", "write"):
            system = _new_system(name, granularity)
            rnd = random.Random(f"{name}/{seed}/{granularity}")
            world = initial(system)
            sandbox = tmp_path / f"{seed}-{granularity}"
            sandbox.mkdir()
            with OSWorld(system, sandbox) as real:
                assert real.snapshot() == project(system, world)
                # A process waiting for a lock (gradle's, cargo's flock) is not enabled.
                while live := [i for i in range(len(world.procs)) if enabled(system, world, i)]:
                    can = [i for i in live if enabled(system, world, i)]
                    assert can == [i for i in live if real.enabled(i)], (seed, granularity)
                    assert can, "no process can step: a deadlock"
                    i = rnd.choice(can)
                    allowed = faults(system, world, i)
                    f = rnd.choice(allowed) if allowed and rnd.random() < 0.3 else None
                    world = step(system, world, i, f)
                    real.step(i, f)
                    got, want = real.snapshot(), project(system, world)
                    assert got == want, f"{seed} {granularity}: " + difference(got, want)


def test_a_process_that_waits_cannot_step_in_either(tmp_path: pathlib.Path) -> None:
    """Both say so, and stepping it raises Blocked having changed nothing."""
    system = _new_system("flock", "write")
    world = initial(system)
    with OSWorld(system, tmp_path) as real:
        for i in (0, 0, 0, 2):  # W1 opens, shares, converts (alone: at once); R1 opens
            world = step(system, world, i)
            real.step(i)
        before = real.snapshot()
        assert not enabled(system, world, 2) and not real.enabled(2)
        with pytest.raises(Blocked):
            step(system, world, 2)
        for fault in (None, ("ENOLCK", 0)):
            with pytest.raises(Blocked):
                real.step(2, fault)
        assert real.snapshot() == before == project(system, world)


@pytest.mark.parametrize("name", sorted(NEW_SYSTEMS))
def test_whole_new_program_run_matches_the_model(tmp_path: pathlib.Path, name: str) -> None:
    """``run`` of each writer alone, twice, then its reader: as the model
    run alone - the same statuses, names, links and bytes."""
    progs, dirs = NEW_SYSTEMS[name]
    system = _new_system(name, "write", 0)
    world = initial(system)
    for i in range(len(progs)):
        while world.procs[i].status == Status.RUNNING:
            world = step(system, world, i)
    got = [run(p if i else system.kinds[0].program, {"entry": b"abc", "output": b"XYZ"}, tmp_path)
           for i, p in enumerate(progs)]
    assert [g.status for g in got] == [p.status for p in world.procs]
    real = {}
    for top, subdirs, names in os.walk(tmp_path):
        for n in names:
            full = pathlib.Path(top) / n
            real[str(full.relative_to(tmp_path))] = (os.readlink(full) if full.is_symlink() else full.read_bytes())
    model = {n: (c.target if isinstance(c := world.fs.contents[i], F.Symlink) else c) for n, i in world.fs.names}
    assert real == model


def test_run_makes_the_directories_a_program_names(tmp_path: pathlib.Path) -> None:
    p = Program("nested", Role.WRITER, (Open(Path("d/e/x"), O_WRONLY | O_CREAT), Write(Data("entry")), Close(), OK),
                dirs=("d/e",))
    assert run(p, {"entry": b"abc"}, tmp_path).outcome is Outcome.OK
    assert (tmp_path / "d" / "e" / "x").read_bytes() == b"abc"
    assert run(p, {"entry": b"abc"}, tmp_path).outcome is Outcome.OK, "made again: they stay"
    with pytest.raises(ProgramError, match="give a directory as the root"):
        run(p, {"entry": b"abc"}, {"d/e/x": tmp_path / "x"})


def test_a_symlink_holds_its_target_relative_to_its_directory_and_readlink_maps_it_back(tmp_path: pathlib.Path) -> None:
    """So the tree can move: ``d/l`` -> ``a`` is the text ``../a``; readlink
    gives the model's name, ``a``."""
    p = prog("links", Open(Path("a"), O_WRONLY | O_CREAT), Write(Data("entry")), Close(), Symlink(Path("a"), Path("d/l")),
             Readlink(Path("d/l")), HIT)
    p = Program(p.name, p.role, p.source, dirs=("d",))
    got = run(p, {"entry": b"abc"}, tmp_path / "one")
    assert got.value == b"a" and os.readlink(tmp_path / "one" / "d" / "l") == "../a"
    os.rename(tmp_path / "one", tmp_path / "two")
    assert (tmp_path / "two" / "d" / "l").read_bytes() == b"abc"


def test_production_flock_waits_for_the_holder(tmp_path: pathlib.Path) -> None:
    """The production runner's flock blocks, as the program's would: a
    locked writer finishes only once another description lets go."""
    import fcntl
    import threading

    (tmp_path / "entry").write_bytes(b"old")
    holder = os.open(tmp_path / "entry", os.O_RDONLY)
    fcntl.flock(holder, fcntl.LOCK_EX)
    done: list[Outcome | None] = []
    t = threading.Thread(target=lambda: done.append(run(_locked_writer(), {"entry": b"abc"}, tmp_path).outcome))
    t.start()
    t.join(0.3)
    assert t.is_alive() and not done, "it waits for the lock"
    os.close(holder)  # drops it
    t.join(10)
    assert done == [Outcome.OK] and (tmp_path / "entry").read_bytes() == b"abc"


@pytest.mark.parametrize("op", [Fdatasync(), Flock(LockOp.SHARED), Flock(LockOp.UNLOCK)])
def test_an_unset_descriptor_is_the_kernels_ebadf(tmp_path: pathlib.Path, op: Instr) -> None:
    """os.fdatasync(-1) and fcntl.flock(-1) are Python's ValueError; the
    bindings ask for the kernel's EBADF, as the model says."""
    _, snap = lockstep(tmp_path, [proc(prog("t", op, Stat(ENTRY), OK))], [(0, None)])
    assert snap.procs[0].last == "EBADF"


def test_renameat2_noreplace_is_the_kernels(tmp_path: pathlib.Path) -> None:
    (tmp_path / "a").write_bytes(b"1")
    (tmp_path / "b").write_bytes(b"2")
    with pytest.raises(FileExistsError):
        syscalls.rename_noreplace(str(tmp_path / "a"), str(tmp_path / "b"))
    syscalls.rename_noreplace(str(tmp_path / "a"), str(tmp_path / "c"))
    assert sorted(os.listdir(tmp_path)) == ["b", "c"]


def test_lockstep_catches_a_link_that_follows_the_symlink(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A known-bad twin: a link binding that follows the symlink (linkat
    with AT_SYMLINK_FOLLOW) links the target, not the symlink."""
    monkeypatch.setattr(syscalls, "link", lambda old, new: os.link(os.path.realpath(old), new))
    p = prog("t", Open(Path("a"), O_WRONLY | O_CREAT), Symlink(Path("a"), Path("l")), Link(Path("l"), Path("m")), Stat(ENTRY), OK)
    with pytest.raises(AssertionError, match=r"step 3 \(P1"):
        lockstep(tmp_path, [proc(p)], [(0, None)] * 3, granularity="write")
