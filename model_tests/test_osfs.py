"""The OS interpreter against the model, operation by operation.

Each test runs the same Program values in ``spec.machine`` and in
``reference.osfs.OSWorld`` with the same schedule and faults, and compares
the whole state after *every* step: the shared files, each process's
private files, and each process's pc, status, last errno, write progress
and registers (a descriptor's mode, offset and the bytes of its file, even
unlinked; a mapping's length and file).  A disagreement is either a model
bug or an interpreter bug; either way it fails here.

Also: the whole-program path (``reference.osfs.run``) against the model run
to completion, from several starting states, for every catalogue protocol;
and known-bad twins (an interpreter that forgets O_TRUNC, one that ignores a
fault) that the comparison must catch.
"""

from __future__ import annotations

import os
import pathlib
import random
from typing import Sequence

import pytest

from spec.explore import Setup, build
from spec.machine import RUNNING, SIGBUS, Config, Fault, Kind, World, faults, initial, step
from spec.ops import (
    ENTRY,
    O_CREAT,
    O_EXCL,
    O_RDONLY,
    O_RDWR,
    O_TRUNC,
    O_WRONLY,
    OUTPUT,
    TEMP,
    Close,
    Data,
    Failed,
    Fstat,
    Fsync,
    Ftruncate,
    If,
    Instr,
    Label,
    Length,
    MapRead,
    Mmap,
    Open,
    Outcome,
    Program,
    ProgramError,
    PWrite,
    Read,
    Rename,
    Return,
    Role,
    SizeIs,
    Stat,
    Unlink,
    Write,
)
from spec.protocols import CATALOGUE, READERS, WRITERS
from reference.osfs import OSWorld, Snapshot, compiled, project, run

OK, FAIL, HIT = Return(Outcome.OK), Return(Outcome.FAIL), Return(Outcome.HIT)
Schedule = Sequence[tuple[int, Fault]]


def prog(name: str, *source: Instr, role: Role = Role.WRITER) -> Program:
    return Program(name, role, tuple(source))


def kind(program: Program, entry: bytes = b"abc", output: bytes = b"XYZ") -> Kind:
    return Kind(program.name, program, (("entry", entry), ("output", output)))


def lockstep(tmp_path: pathlib.Path, kinds: Sequence[Kind], schedule: Schedule, *, granularity: str = "byte", budget: int = 9) -> tuple[World, Snapshot]:
    """Run ``schedule`` on the model and on the OS, one process per kind,
    asserting equal state after every step; the final pair."""
    cfg = Config(tuple(kinds), granularity, budget)
    procs = tuple(range(len(kinds)))
    world = initial(cfg, procs)
    with OSWorld(cfg, procs, tmp_path) as real:
        assert real.snapshot() == project(cfg, world), "initial states differ"
        for n, (i, fault) in enumerate(schedule, 1):
            world = step(cfg, world, i, fault)
            real.step(i, fault)
            got, want = real.snapshot(), project(cfg, world)
            assert got == want, f"step {n} (P{i + 1}, fault {fault}):\n OS    {got}\n model {want}"
        return world, real.snapshot()


def entry_of(snap: Snapshot) -> bytes | None:
    return dict(snap.files)["entry"]


def regs(snap: Snapshot, i: int) -> tuple[tuple[object, ...], ...]:
    return snap.procs[i].regs


WRITE_CLOSE = prog("write-close", Open(ENTRY, O_WRONLY | O_CREAT), Write(), Close(), OK)


# ------------------------------------------------------------ one op at a time


def test_write_lands_one_byte_per_step(tmp_path: pathlib.Path) -> None:
    _, snap = lockstep(tmp_path, [kind(WRITE_CLOSE)], [(0, None)] * 2)
    assert entry_of(snap) == b"a"
    assert snap.procs[0].progress == 1


def test_write_then_close_completes(tmp_path: pathlib.Path) -> None:
    world, snap = lockstep(tmp_path, [kind(WRITE_CLOSE)], [(0, None)] * 5)
    assert entry_of(snap) == b"abc" and snap.procs[0].status == "ok"
    assert regs(snap, 0) == ((),), "exit releases the descriptor"


def test_o_trunc_empties_a_complete_file(tmp_path: pathlib.Path) -> None:
    trunc = prog("trunc", Open(ENTRY, O_WRONLY | O_CREAT | O_TRUNC), Close(), OK)
    _, snap = lockstep(tmp_path, [kind(WRITE_CLOSE), kind(trunc)], [(0, None)] * 5 + [(1, None)])
    assert entry_of(snap) == b""


def test_torn_write_after_o_trunc_leaves_a_hole(tmp_path: pathlib.Path) -> None:
    """write-file's bug on the real kernel: W1's offset survives W2's
    O_TRUNC, so W1's next byte lands after a zero-filled hole."""
    wf = CATALOGUE["write-file"].program
    _, snap = lockstep(tmp_path, [kind(wf), kind(wf)], [(0, None), (0, None), (1, None), (0, None)])
    assert entry_of(snap) == b"\x00b"


def test_o_excl_second_creator_gets_eexist(tmp_path: pathlib.Path) -> None:
    excl = prog("excl", Open(ENTRY, O_WRONLY | O_CREAT | O_EXCL), If(Failed(), "f"), Close(), OK, Label("f"), FAIL)
    _, snap = lockstep(tmp_path, [kind(excl), kind(excl)], [(0, None), (1, None)])
    assert snap.procs[1].status == "fail"
    assert entry_of(snap) == b""


def test_open_without_creat_misses(tmp_path: pathlib.Path) -> None:
    reader = CATALOGUE["go-read-entry"].program
    _, snap = lockstep(tmp_path, [kind(reader)], [(0, None)])
    assert snap.procs[0].status == "miss"


@pytest.mark.parametrize("n", [0, 1, 3, 5, 4097])
def test_ftruncate_shrinks_and_extends_with_zeros(tmp_path: pathlib.Path, n: int) -> None:
    p = prog("trunc-to", Open(ENTRY, O_RDWR | O_CREAT), Write(), Ftruncate(Length(None, n)), Fstat(), Read(Length(None, 9000)), Close(), OK)
    _, snap = lockstep(tmp_path, [kind(p)], [(0, None)] * 5)
    assert entry_of(snap) == (b"abc" + bytes(max(0, n - 3)))[:n]


def test_pwrite_past_end_zero_fills_and_keeps_offset(tmp_path: pathlib.Path) -> None:
    p = prog("pwrite", Open(ENTRY, O_WRONLY | O_CREAT), PWrite(Data(), 4), Write(Data(stop=1)), Close(), OK)
    _, snap = lockstep(tmp_path, [kind(p)], [(0, None)] * 6)
    assert entry_of(snap) == b"a\x00\x00\x00abc", "pwrite lands at 4; the offset stays 0 for the write"


def test_unlink_while_open_keeps_the_inode(tmp_path: pathlib.Path) -> None:
    holder = prog("holder", Open(ENTRY, O_RDWR | O_CREAT), Write(), Fstat(), Read(), Close(), OK)
    remover = prog("remover", Unlink(ENTRY), OK)
    sched = [(0, None), (0, None), (1, None), (0, None), (0, None), (0, None)]
    _, snap = lockstep(tmp_path, [kind(holder), kind(remover)], sched)
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
    _, snap = lockstep(tmp_path, [kind(old), kind(holder), kind(rip)], sched)
    assert entry_of(snap) == b"abc"
    assert snap.private[2] == ()
    assert regs(snap, 1)[1] == (b"XYZ",), "the reader read the old inode"


def test_private_names_are_per_process(tmp_path: pathlib.Path) -> None:
    tmp = prog("tmp", Open(TEMP, O_WRONLY | O_CREAT | O_EXCL), If(Failed(), "f"), Write(), Close(), OK, Label("f"), FAIL)
    _, snap = lockstep(tmp_path, [kind(tmp), kind(tmp)], [(0, None), (1, None)])
    assert [p.status for p in snap.procs] == ["run", "run"], "no EEXIST: each has its own temp file"
    assert len(os.listdir(tmp_path)) == 2


def test_stat_of_a_missing_file_is_minus_one(tmp_path: pathlib.Path) -> None:
    p = prog("stat", Stat(ENTRY), If(SizeIs("==", Length(None, -1)), "m"), OK, Label("m"), FAIL)
    _, snap = lockstep(tmp_path, [kind(p)], [(0, None)])
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
    world, snap = lockstep(tmp_path, [kind(p)], [(0, None)] * 12)
    assert snap.procs[0].status == "ok"


# ------------------------------------------------------------ faults


@pytest.mark.parametrize("k", [0, 1, 2])
def test_write_fault_at_byte_k_lands_k_bytes(tmp_path: pathlib.Path, k: int) -> None:
    wc = CATALOGUE["write-then-truncate"].program
    sched: list[tuple[int, Fault]] = [(0, None)] * (1 + k) + [(0, ("ENOSPC", k))]
    _, snap = lockstep(tmp_path, [kind(wc)], sched + [(0, None)])
    assert entry_of(snap) == b"abc"[:k]
    assert snap.procs[0].status == "fail"


@pytest.mark.parametrize("k", [0, 1, 2])
def test_write_fault_at_write_granularity(tmp_path: pathlib.Path, k: int) -> None:
    gie = CATALOGUE["go-index-entry"].program
    _, snap = lockstep(tmp_path, [kind(gie), kind(gie)], [(0, None), (0, ("ENOSPC", k)), (1, None)], granularity="write")
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
    cfg = Config((kind(prog_),), "byte", 1)
    world = initial(cfg, (0,))
    sched: list[tuple[int, Fault]] = []
    for n in range(40):
        if world.procs[0].status != RUNNING:
            break
        f = faults(cfg, world, 0)[0] if n == at else None
        sched.append((0, f))
        world = step(cfg, world, 0, f)
    assert any(f for _, f in sched), "the fault was injected"
    _, snap = lockstep(tmp_path, [kind(prog_)], sched, budget=1)
    assert snap.procs[0].status == "fail"


def test_failing_close_really_closes(tmp_path: pathlib.Path) -> None:
    cfg = Config((kind(WRITE_CLOSE),), "write", 1)
    with OSWorld(cfg, (0,), tmp_path) as real:
        real.step(0)
        fd = int(real.procs[0].regs[0][0])  # type: ignore[call-overload]
        real.step(0)
        real.step(0, ("EIO", 0))
        assert real.procs[0].status == "ok" and real.procs[0].last == ""
        with pytest.raises(OSError):
            os.fstat(fd)


def test_a_fault_the_op_cannot_suffer_is_refused(tmp_path: pathlib.Path) -> None:
    cfg = Config((kind(WRITE_CLOSE),), "byte", 1)
    with OSWorld(cfg, (0,), tmp_path) as real:
        with pytest.raises(ValueError):
            real.step(0, ("ENOSPC", 0))  # an open fails with EACCES, not ENOSPC


# ------------------------------------------------------------ mmap


def test_mapped_read_past_the_last_page_is_sigbus(tmp_path: pathlib.Path) -> None:
    """A real SIGBUS: map 5000 bytes, another writer's O_TRUNC empties the
    file, touching the mapping kills the (forked) reader, in both."""
    big = bytes(range(1, 256)) * 20
    mm, wf = CATALOGUE["mmap-read"].program, CATALOGUE["write-file"].program
    sched: list[tuple[int, Fault]] = [(0, None)] * 3 + [(1, None)] * 4 + [(2, None)] + [(1, None)]
    world, snap = lockstep(tmp_path, [kind(wf, big), kind(mm, big), kind(wf, big)], sched, granularity="write")
    assert snap.procs[1].status == SIGBUS


def test_mapped_read_inside_the_last_page_reads_zeros(tmp_path: pathlib.Path) -> None:
    """The file shrinks to 1 byte under a 3-byte mapping: still in the page,
    so the tail reads as zeros (and the reader's check says miss)."""
    mm = CATALOGUE["mmap-read"].program
    shrink = prog("shrink", Open(ENTRY, O_WRONLY), Ftruncate(Length(None, 1)), Close(), OK)
    wc = CATALOGUE["write-then-truncate"].program
    sched: list[tuple[int, Fault]] = [(0, None)] * 6 + [(1, None)] * 4 + [(2, None)] * 3 + [(1, None)]
    world, snap = lockstep(tmp_path, [kind(wc), kind(mm), kind(shrink)], sched)
    assert snap.procs[1].status == "miss"


def test_mapping_of_size_zero_and_unset(tmp_path: pathlib.Path) -> None:
    p = prog("map0", Open(ENTRY, O_RDONLY | O_CREAT), Fstat(), Mmap(), Close(), MapRead(), HIT, role=Role.READER)
    nomap = prog("nomap", MapRead(), OK)  # a mapping never made: EINVAL
    _, snap = lockstep(tmp_path, [kind(p), kind(nomap)], [(0, None)] * 5 + [(1, None)])
    assert snap.procs[0].status == "hit" and regs(snap, 0)[3] == (b"",)


# ------------------------------------------------------------ random lockstep


@pytest.mark.parametrize("protocol", WRITERS)
@pytest.mark.parametrize("reader", READERS)
def test_random_interleavings_agree(tmp_path: pathlib.Path, protocol: str, reader: str) -> None:
    """Seeded random schedules with faults: every state agrees."""
    for seed in range(4):
        for granularity in ("byte", "write"):
            setup = Setup((protocol,), writers=2, readers=1, reader=reader, faults=2, entry_length=3, granularity=granularity)
            model = build(setup)
            kinds = tuple(p.kind for p in model.init.procs)
            rnd = random.Random(f"{protocol}/{reader}/{seed}/{granularity}")
            world = initial(model.config, kinds)
            sandbox = tmp_path / f"{seed}-{granularity}"
            sandbox.mkdir()
            with OSWorld(model.config, kinds, sandbox, model.names) as real:
                while live := [i for i, p in enumerate(world.procs) if p.status == RUNNING]:
                    i = rnd.choice(live)
                    allowed = faults(model.config, world, i)
                    assert real.faults(i) == allowed
                    f = rnd.choice(allowed) if allowed and rnd.random() < 0.3 else None
                    world = step(model.config, world, i, f)
                    real.step(i, f)
                    assert real.snapshot() == project(model.config, world), (seed, granularity)


# ------------------------------------------------------------ whole program


PRE_STATES: dict[str, bytes | None] = {
    "empty-dir": None, "complete": b"abc", "short": b"ab", "long": b"abcd", "hole": b"\x00bc", "other": b"xyz",
}


@pytest.mark.parametrize("pre", sorted(PRE_STATES))
@pytest.mark.parametrize("protocol", sorted(CATALOGUE))
def test_whole_program_run_matches_the_model(tmp_path: pathlib.Path, protocol: str, pre: str) -> None:
    """``run`` (compiled closures) ends like the model run alone, from a
    state where entry and output hold the same ``pre`` bytes."""
    pre_bytes = PRE_STATES[pre]
    program = CATALOGUE[protocol].program
    kinds: list[Kind] = [kind(program)]
    procs: tuple[int, ...] = (0,)
    if pre_bytes is not None:
        # Seed both files with the model's own operations, so the model
        # starts its run from the state the real files are given.
        seed_entry = prog("seed-entry", Open(ENTRY, O_WRONLY | O_CREAT), Write(Data("entry")), Close(), OK)
        seed_output = prog("seed-output", Open(OUTPUT, O_WRONLY | O_CREAT), Write(Data("entry")), Close(), OK)
        kinds += [kind(seed_entry, pre_bytes), kind(seed_output, pre_bytes)]
        procs = (1, 2, 0)
    cfg = Config(tuple(kinds), "write", 0)
    world = initial(cfg, procs)
    for i in range(len(procs)):
        while world.procs[i].status == RUNNING:
            world = step(cfg, world, i)
    if pre_bytes is not None:
        for name in ("entry", "output"):
            (tmp_path / name).write_bytes(pre_bytes)
    got = run(program, {"entry": b"abc", "output": b"XYZ"}, tmp_path)
    mine = world.procs[-1]
    assert got.status == mine.status
    if mine.status == "hit":
        assert got.value == next(v[0] for v in mine.regs if v)
    real = {n: (tmp_path / n).read_bytes() for n in os.listdir(tmp_path)}
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


class ForgetsTrunc(OSWorld):
    """A broken OS interpreter: opens without O_TRUNC."""

    def _open(self, ins, p, k, fault, i):  # type: ignore[no-untyped-def, override]
        flags = ins.flags & ~O_TRUNC
        return super()._open(Open(ins.path, flags, ins.fd), p, k, fault, i)


class IgnoresFaults(OSWorld):
    """A broken OS interpreter: a write fault writes everything anyway."""

    def _write(self, ins, p, k, fault, i):  # type: ignore[no-untyped-def, override]
        return super()._write(ins, p, k, None, i)


@pytest.mark.parametrize("broken,schedule,granularity", [
    (ForgetsTrunc, [(0, None)] * 5 + [(1, None)], "byte"),
    (IgnoresFaults, [(0, None), (0, ("ENOSPC", 1))], "write"),
])
def test_lockstep_catches_a_broken_interpreter(tmp_path: pathlib.Path, broken: type[OSWorld], schedule: Schedule, granularity: str) -> None:
    wf = CATALOGUE["write-file"].program
    cfg = Config((kind(wf), kind(wf)), granularity, 1)
    world = initial(cfg, (0, 1))
    differs = False
    with broken(cfg, (0, 1), tmp_path) as real:
        for i, f in schedule:
            world = step(cfg, world, i, f)
            real.step(i, f)
            differs |= real.snapshot() != project(cfg, world)
    assert differs, f"{broken.__name__} went unnoticed"


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
    kinds = [kind(WRITE_CLOSE), kind(p)]
    cfg = Config(tuple(kinds), "write", 0)
    world, sched = initial(cfg, (0, 1)), []
    for i in (0, 1):
        while world.procs[i].status == RUNNING:
            world = step(cfg, world, i)
            sched.append((i, None))
    lockstep(tmp_path, kinds, sched, granularity="write")


@pytest.mark.parametrize("name", sorted(EDGES))
def test_edges_agree(tmp_path: pathlib.Path, name: str) -> None:
    _after_a_complete_entry(tmp_path, EDGES[name])


def test_o_rdonly_o_trunc_truncates_on_linux(tmp_path: pathlib.Path) -> None:
    _after_a_complete_entry(tmp_path, prog("t", Open(ENTRY, O_RDONLY | O_TRUNC), Close(), OK))


# ------------------------------------------------------------ compiled conditions


@pytest.mark.parametrize("op", ["==", "!=", ">"])
def test_compiled_size_conditions_agree_with_holds(op: str) -> None:
    """The compiled SizeIs restates spec.machine.holds: pin it, size by size
    (-1 is a missing file), against the model's own function."""
    from spec.machine import Proc, holds

    for delta in (-1, 0, 1):
        cond = SizeIs(op, Length("entry", delta))
        p = prog("c", Stat(ENTRY), If(cond, "y"), OK, Label("y"), FAIL)
        c, k = compiled(p), kind(p)
        for size in (-1, 0, 1, 2, 3, 4):
            env = [*c.init, "/nonexistent", b"abc"]
            env[c.slot["st"]] = size
            model = holds(cond, Proc(0, 0, RUNNING, "", 0, ((size,),), (), 0), k)
            assert c._cond(cond)(env) == model, (op, delta, size)


def test_compiled_validity_agrees_with_holds() -> None:
    from spec.machine import Proc, holds
    from spec.ops import Invalid

    cond = Invalid("entry")
    p = prog("v", Open(ENTRY, O_RDONLY), Read(), If(cond, "m"), HIT, Label("m"), Return(Outcome.MISS), role=Role.READER)
    c, k = compiled(p), kind(p)
    for buf in (None, b"", b"ab", b"abc", b"a\x00c", b"abcd", b"xyz"):
        env = [*c.init, "/nonexistent", b"abc"]
        env[c.slot["buf"]] = buf
        model = holds(cond, Proc(0, 0, RUNNING, "", 0, ((), () if buf is None else (buf,)), (), 0), k)
        assert c._cond(cond)(env) == model, buf


# ------------------------------------------------------------ path mapping


def test_paths_from_a_directory_or_a_mapping(tmp_path: pathlib.Path) -> None:
    from reference.osfs import resolve_paths

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
