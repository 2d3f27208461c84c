"""The step-wise OS world (``reference.osworld``) keeps the model's promises, step by step.

Promises checked, each on a tiny system stepped on real files beside the
model (``spec.machine``), comparing ``OSWorld.snapshot()`` with
``project(system, world)`` after every step:

- an injected fault - one that strikes before any effect (a failing open,
  write or ftruncate) or after a write landed a byte - is reported by its
  errno name and the process moves on to its error path, as in the model; the world counts it against the fault budget, so the
  faults offered afterwards (``OSWorld.faults``) are the model's;
- a real errno from the kernel (a reader's open of a missing entry: ENOENT)
  ends the operation and the process goes on (a miss), as in the model;
- a byte-granular write counts its progress one byte per step;
- processes started without a name are ``W1, W2, ..`` and ``R1, ..``,
  counted per role;
- a snapshot's ``same`` lists exactly the names that share one inode.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from reference.osworld import OSWorld, project
from spec import machine as M
from spec.machine import Fault
from spec.protocols import CATALOGUE
from spec.state import Status
from spec.system import System


def _system(faults: int = 0, entry_length: int = 2) -> System:
    """One write-then-truncate writer and one go-read-entry reader."""
    return System.of(CATALOGUE["write-then-truncate"], n=1, readers=1, faults=faults, entry_length=entry_length)


def _lockstep(system: System, root: Path, schedule: list[tuple[int, Fault]]) -> OSWorld:
    """Run ``schedule`` on the model and on real files; after every step the
    sandbox, the processes, the fault count and the faults offered next
    must be the model's.  Returns the (closed) real world."""
    world = M.initial(system)
    with OSWorld(system, root) as real:
        for i, fault in schedule:
            world = M.step(system, world, i, fault)
            real.step(i, fault)
            assert real.snapshot() == project(system, world)
            assert real.faults_used == world.faults
            for j in range(len(world.procs)):
                assert real.faults(j) == M.faults(system, world, j)
    return real


def _to_end(system: System, i: int) -> list[tuple[int, Fault]]:
    """The steps process ``i`` takes alone, without faults, until it ends."""
    world, steps = M.initial(system), list[tuple[int, Fault]]()
    while M.current(system, world.procs[i]) is not None:
        world = M.step(system, world, i)
        steps.append((i, None))
    return steps


def test_a_fault_before_any_effect_is_reported_and_counted(tmp_path: Path) -> None:
    """W1's open fails with an injected EACCES: W1 reports EACCES, takes its
    error path to FAIL at once, and the one fault of the budget is spent (no more
    faults are offered to anyone)."""
    system = _system(faults=1)
    world = M.initial(system)
    fault = M.faults(system, world, 0)[0]
    assert fault[0] == "EACCES"
    real = _lockstep(system, tmp_path, [(0, fault)] + _to_end(system, 1))
    assert real.proc(0).status is Status.FAIL and real.faults_used == 1
    assert real.faults(1) == []


def _faulted(system: System, at: int, fault: Fault) -> list[tuple[int, Fault]]:
    """W1 steps ``at`` times, suffers ``fault``, then runs alone to its end."""
    steps: list[tuple[int, Fault]] = [(0, None)] * at + [(0, fault)]
    world = M.initial(system)
    for i, f in steps:
        world = M.step(system, world, i, f)
    while M.current(system, world.procs[0]) is not None:
        world = M.step(system, world, 0)
        steps.append((0, None))
    return steps


@pytest.mark.parametrize("at,fault", [(1, ("ENOSPC", 0)), (2, ("ENOSPC", 1)), (3, ("EIO", 0))],
                         ids=["write-fails-first", "write-fails-after-a-byte", "ftruncate-fails"])
def test_a_faulted_operation_reports_its_errno_and_takes_the_error_path(
        tmp_path: Path, at: int, fault: tuple[str, int]) -> None:
    """A write or ftruncate that suffers an injected fault - before any
    effect, or after a byte landed - leaves W1 running with the fault's
    errno name as its last result (and heading for its error path), as in
    the model; W1 then ends FAIL."""
    system = _system(faults=1)
    schedule = _faulted(system, at, fault)
    world = M.initial(system)
    for i, f in schedule[:at + 1]:
        world = M.step(system, world, i, f)
    assert world.procs[0].status is Status.RUNNING and world.procs[0].last == fault[0]  # the promise is visible
    real = _lockstep(system, tmp_path, schedule)
    assert real.proc(0).status is Status.FAIL


def test_a_fault_free_run_spends_no_budget(tmp_path: Path) -> None:
    """Steps without a fault leave the budget whole: faults stay offered."""
    system = _system(faults=1)
    real = _lockstep(system, tmp_path, _to_end(system, 0)[:3])
    assert real.faults_used == 0


def test_a_kernel_errno_ends_the_operation(tmp_path: Path) -> None:
    """R1 reads before anything is written: the kernel's ENOENT ends its open
    and R1 goes on to a miss, as the model says."""
    system = _system()
    real = _lockstep(system, tmp_path, _to_end(system, 1))
    assert real.proc(1).status is Status.MISS


def test_a_byte_granular_write_progresses_a_byte_a_step(tmp_path: Path) -> None:
    """W1 writes a 3-byte entry one byte per step and publishes; each step's
    progress and file bytes are the model's."""
    system = _system(entry_length=3)
    real = _lockstep(system, tmp_path, _to_end(system, 0))
    assert real.proc(0).status is Status.OK
    assert (tmp_path / "entry").read_bytes() == system.kinds[0].payload("entry")


def test_unnamed_processes_are_numbered_per_role(tmp_path: Path) -> None:
    system = System.of(CATALOGUE["write-then-truncate"], n=2, readers=2)
    writer, reader = system.kind_of[0], system.kind_of[-1]
    with OSWorld(system, tmp_path, processes=(writer, reader, writer, reader, reader)) as real:
        assert real.names == ("W1", "R1", "W2", "R2", "R3")


def test_a_snapshot_groups_exactly_the_names_sharing_an_inode(tmp_path: Path) -> None:
    """After W1 publishes, one name per inode: no group.  A hard link made
    beside it (a stray name in the sandbox) groups the two names."""
    system = _system()
    with OSWorld(system, tmp_path) as real:
        for i, _ in _to_end(system, 0):
            real.step(i)
        assert real.snapshot().same == ()
        os.link(tmp_path / "entry", tmp_path / "other")
        assert real.snapshot().same == (("entry", "other"),)
