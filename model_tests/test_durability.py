"""Durability: what a crash keeps, checked directly and by an independent enumerator.

SPEC.md's persistence model (§3, "A crash"): names are durable at once (a
journalled directory); data is durable only through a *successful* fsync;
at a crash every named file reverts to the bytes its inode had at its last
successful fsync (a never-synced file is empty), and unnamed files vanish.

Two kinds of test:

- direct tests of the semantics (``spec.machine``): a successful fsync
  makes the inode's current bytes durable; a failed one (its injected EIO)
  does not; a crash keeps exactly the fsynced bytes, under every name;
- an ALICE-style crash-state enumerator written here from the words above,
  *not* from ``spec.fs``: it replays a schedule's operations (paths, flags,
  data, faults) on its own small file system with per-inode durable bytes,
  and says what a crash after each prefix leaves.  For every schedule of
  two writers of each catalogue writer (whole writes, up to one fault),
  the set of crash states it produces must equal the set of crashed worlds
  the explorer reaches (``spec.explore`` with one crash).

Not compared: private temp files, which the model keeps per process (a
temp file left by a crash is not part of the model's state - a deliberate
abstraction: no protocol here reads another's temp file).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from spec import CATALOGUE, System, explore
from spec.machine import Fault, crash, initial, step, successors
from spec.ops import (Close, Data, Fdatasync, Fstat, Fsync, Ftruncate, Instr, Open, OpenFlags, PWrite, Rename,
                      Stat, Unlink, Write)
from spec.state import Status, World

WRITERS = ("write-file", "write-then-truncate", "go-index-entry", "rename-into-place", "rename-into-place-fsync",
           "create-exclusive")
ENTRY_LENGTH = 2


# ------------------------------------------------------------ direct tests of the semantics


def _fsync_program_world(fault: Fault) -> tuple[System, World, World]:
    """rename-into-place-fsync, one writer, run up to its fsync; the world
    before the fsync and after it (with ``fault``)."""
    system = System.of(CATALOGUE["rename-into-place-fsync"], 1, readers=0, faults=1, entry_length=ENTRY_LENGTH,
                       granularity="write")
    w = initial(system)
    prog = system.kinds[0].program
    while not isinstance(prog.code[w.procs[0].pc], Fsync):
        w = step(system, w, 0)
    return system, w, step(system, w, 0, fault)


def _temp(world: World) -> tuple[bytes, bytes]:
    """The writer's temp file: (current bytes, durable bytes)."""
    (_, ino), = world.procs[0].private
    data, durable = world.fs.contents[ino], world.fs.durable[ino]
    assert isinstance(data, bytes) and isinstance(durable, bytes)
    return data, durable


def test_a_successful_fsync_makes_the_bytes_durable() -> None:
    system, before, after = _fsync_program_world(None)
    entry = system.kinds[0].payload("entry")
    assert _temp(before) == (entry, b"")  # written, not yet durable
    assert _temp(after) == (entry, entry)


def test_a_failed_fsync_does_not_make_the_bytes_durable() -> None:
    """fsync's injected EIO: the data stays not durable (the process
    then takes its error path, which never renames the temp file)."""
    system, before, after = _fsync_program_world(("EIO", 0))
    assert after.procs[0].last == "EIO" or after.procs[0].status is not Status.RUNNING
    ino = before.procs[0].private[0][1]
    assert after.fs.durable[ino] == b""
    assert crash(after).fs.file("entry") is None  # never renamed: no entry after a crash


def test_a_crash_keeps_only_what_was_fsynced() -> None:
    """Every writer: after the whole protocol, a crash leaves the entry
    whole only where an fsync made it durable before the rename; the
    others leave a name with an empty file (names are durable at once)."""
    for name in WRITERS:
        system = System.of(CATALOGUE[name], 1, readers=0, entry_length=ENTRY_LENGTH, granularity="write")
        w = initial(system)
        while w.procs[0].status is Status.RUNNING:
            w = step(system, w, 0)
        after = crash(w).fs.file("entry")
        entry = system.kinds[0].payload("entry")
        assert after == (entry if name == "rename-into-place-fsync" else b""), name


# ------------------------------------------------------------ the independent enumerator


@dataclass
class Inode:
    data: bytes = b""
    durable: bytes = b""  # what the last successful fsync saw


@dataclass
class Disk:
    """The persistence model of SPEC.md, as a small mutable file system:
    names (durable at once) to inodes, each inode's bytes and durable
    bytes; descriptors and private names per process."""

    inodes: list[Inode] = field(default_factory=list)
    names: dict[str, int] = field(default_factory=dict)
    private: dict[tuple[int, str], int] = field(default_factory=dict)
    fds: dict[tuple[int, str], list[int]] = field(default_factory=dict)  # (proc, reg) -> [inode, offset]

    def copy(self) -> Disk:
        return Disk([Inode(i.data, i.durable) for i in self.inodes], dict(self.names), dict(self.private),
                     {k: list(v) for k, v in self.fds.items()})

    def after_crash(self) -> tuple[tuple[str, bytes], ...]:
        """Each name's durable bytes: what a crash now leaves."""
        return tuple(sorted((n, self.inodes[i].durable) for n, i in self.names.items()))

    # -- names: a private path is per process

    def _get(self, proc: int, path: object) -> int | None:
        name, private = path.name, path.private  # type: ignore[attr-defined]
        return self.private.get((proc, name)) if private else self.names.get(name)

    def _set(self, proc: int, path: object, ino: int | None) -> None:
        name, private = path.name, path.private  # type: ignore[attr-defined]
        table: dict = self.private if private else self.names  # type: ignore[type-arg]
        key = (proc, name) if private else name
        if ino is None:
            table.pop(key, None)
        else:
            table[key] = ino

    # -- one operation; returns whether it succeeded

    def apply(self, proc: int, ins: Instr, payload: bytes, fault: Fault) -> bool:
        if isinstance(ins, Open):
            ino = self._get(proc, ins.path)
            if ino is not None and ins.flags & OpenFlags.CREAT and ins.flags & OpenFlags.EXCL:
                return False
            if ino is None and not ins.flags & OpenFlags.CREAT:
                return False
            if fault:
                return False
            if ino is None:
                self.inodes.append(Inode())
                ino = len(self.inodes) - 1
                self._set(proc, ins.path, ino)
            if ins.flags & OpenFlags.TRUNC:
                self.inodes[ino].data = b""
            self.fds[(proc, ins.fd)] = [ino, 0]
            return True
        if isinstance(ins, (Write, PWrite)):
            ino, off = self.fds[(proc, ins.fd)]
            assert ins.data == Data("entry"), ins
            data = payload[:fault[1]] if fault else payload
            at = ins.offset if isinstance(ins, PWrite) else off
            old = self.inodes[ino].data
            self.inodes[ino].data = old[:at] + bytes(max(0, at - len(old))) + data + old[at + len(data):]
            if isinstance(ins, Write):
                self.fds[(proc, ins.fd)][1] = at + len(data)
            return not fault
        if isinstance(ins, Ftruncate):
            if fault:
                return False
            ino = self.fds[(proc, ins.fd)][0]
            n = (len(payload) if ins.n.payload else 0) + ins.n.delta
            old = self.inodes[ino].data
            self.inodes[ino].data = old[:n] + bytes(max(0, n - len(old)))
            return True
        if isinstance(ins, (Fsync, Fdatasync)):
            if fault:
                return False  # a failed fsync makes nothing durable
            ino = self.fds[(proc, ins.fd)][0]
            self.inodes[ino].durable = self.inodes[ino].data
            return True
        if isinstance(ins, Close):
            self.fds.pop((proc, ins.fd), None)  # released even when close fails
            return not fault
        if isinstance(ins, Rename):
            if fault:
                return False
            ino = self._get(proc, ins.src)
            if ino is None:
                return False
            self._set(proc, ins.src, None)
            self._set(proc, ins.dst, ino)
            return True
        if isinstance(ins, Unlink):
            if self._get(proc, ins.path) is None:
                return False
            self._set(proc, ins.path, None)
            return True
        if isinstance(ins, (Stat, Fstat)):
            return True
        raise AssertionError(f"the enumerator does not know {ins}")


def enumerate_crash_states(system: System) -> set[tuple[tuple[str, bytes], ...]]:
    """Every crash state of every schedule of ``system`` (the model picks
    which process steps and which faults it may take - the schedule - and
    this file system says what each step does to the disk)."""
    out: set[tuple[tuple[str, bytes], ...]] = set()

    def walk(world: World, disk: Disk, depth: int) -> None:
        out.add(disk.after_crash())
        assert depth < 50, "a schedule longer than any here"
        for i, p in enumerate(world.procs):
            if p.status is not Status.RUNNING:
                continue
            kind = system.kinds[p.kind]
            ins = kind.program.code[p.pc]
            for fault, nxt in successors(system, world, i):
                d = disk.copy()
                d.apply(i, ins, kind.payload("entry"), fault)
                walk(nxt, d, depth + 1)

    walk(initial(system), Disk(), 0)
    return out


def explorer_crash_states(system: System) -> set[tuple[tuple[str, bytes], ...]]:
    """The crashed worlds the explorer reaches, as name -> bytes."""
    result = explore(system, properties=(), stop_when_all_violated=False)
    states = set()
    for w in result.worlds():
        if w.crashed:
            states.add(tuple(sorted((n, w.fs.file(n) or b"") for n, _ in w.fs.names)))
    return states


@pytest.mark.parametrize("name", WRITERS)
@pytest.mark.parametrize("faults", [0, 1])
def test_the_enumerator_and_the_explorer_agree_on_crash_states(name: str, faults: int) -> None:
    """Two writers of ``name``, every schedule: the crash states the
    enumerator derives from the persistence model are exactly the explorer's."""
    system = System.of(CATALOGUE[name], 2, readers=0, faults=faults, entry_length=ENTRY_LENGTH, granularity="write",
                       crashes=1)
    mine, theirs = enumerate_crash_states(system), explorer_crash_states(system)
    assert mine == theirs, (sorted(mine - theirs), sorted(theirs - mine))
    assert len(mine) >= 2  # not vacuous: a crash can leave different things


def _durable_even_when_failing(monkeypatch: pytest.MonkeyPatch) -> None:
    """A model bug: fsync syncs before its fault point, so a failed fsync
    has made the bytes durable."""
    from spec import semantics as S

    original = S.OPS[Fsync]

    def durable_first(ins: Fsync, m: Any) -> None:
        m.sync(m.fd_ino(ins.fd))
        original.run(ins, m)

    monkeypatch.setitem(S.OPS, Fsync, original.__class__(durable_first, original.regs, original.paths, original.fault,
                                                         original.local))


def test_the_direct_test_catches_a_failed_fsync_made_durable(monkeypatch: pytest.MonkeyPatch) -> None:
    """The known-bad twin of the failed-fsync test (no protocol here
    renames a temp file whose fsync failed, so only the direct test can
    see this bug)."""
    _durable_even_when_failing(monkeypatch)
    with pytest.raises(AssertionError):
        test_a_failed_fsync_does_not_make_the_bytes_durable()


def test_the_enumerator_catches_a_crash_that_keeps_unsynced_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    """The known-bad twin: a model whose crash keeps every file's current
    bytes (as if all were fsynced) differs from the enumerator: after
    rename-into-place without fsync the explorer's crash leaves the whole
    entry, where the persistence model leaves it empty."""
    from spec import fs as F

    original = F.crash

    def keeps_everything(fs: F.FileSystem) -> F.FileSystem:
        return original(fs._replace(durable=fs.contents))

    monkeypatch.setattr(F, "crash", keeps_everything)  # spec.machine.crash calls it through the module
    system = System.of(CATALOGUE["rename-into-place"], 2, readers=0, faults=0, entry_length=ENTRY_LENGTH,
                       granularity="write", crashes=1)
    mine, theirs = enumerate_crash_states(system), explorer_crash_states(system)
    assert (("entry", b"ab"),) in theirs - mine
