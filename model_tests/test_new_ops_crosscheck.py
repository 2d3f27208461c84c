"""link, mkdir, O_APPEND, symlink, flock, fdatasync, renameat2: the solver and SPIN.

``test_new_ops.py`` pins the model's behaviour of the operations issue 13
added; here the two other interpreters of ``spec.semantics`` run them:

- the solver's transition (``proofs.symbolic``) against ``spec.machine``,
  field by field on explored states (``proofs.conformance``), on programs
  that use every new operation - and every check each one makes - and on
  a process waiting for a lock, which must have no transition at all;
- bounded model checking finds the explorer's shortest counterexample in
  systems using them, and finds none where the explorer says a property
  holds (searched to the explorer's depth, so every reachable state);
- SPIN gives the explorer's verdict and shortest-counterexample depth.

Each checker has its known-bad twin here: a solver domain that ignores
waits is caught by conformance, a Promela domain that ignores them by SPIN.
The protocols are values defined here, as real tools build them: git's
link-to-publish, an O_APPEND log, a first-writer-wins symlink (saracen/
gobuildcache's shape), writers and readers under flock, objects in
subdirectories published by renameat2(RENAME_NOREPLACE).  SPIN's cases are
skipped where ``spin`` or ``gcc`` is missing, as in ``test_spin.py``.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path as FsPath
from typing import Any

import pytest
import z3

from proofs import symbolic
from proofs.bmc import search
from proofs.conformance import mismatches
from proofs.induction import unbounded_system
from proofs.promela import PmlDom, TranslationError, explorer_depth, translate
from proofs.spin import run_spin, spin_missing
from spec import CATALOGUE, Process, Program, Role, System, explore
from spec import semantics as S
from spec.machine import enabled, initial, step
from spec.ops import (
    ENTRY,
    O_APPEND,
    O_CREAT,
    O_EXCL,
    O_NOFOLLOW,
    O_RDONLY,
    O_RDWR,
    O_WRONLY,
    OUTPUT,
    TEMP,
    Close,
    Data,
    Failed,
    Fdatasync,
    Flock,
    Fstat,
    Ftruncate,
    If,
    Invalid,
    Label,
    Length,
    Link,
    LockOp,
    Mkdir,
    Open,
    OpenFlags,
    Outcome,
    Path,
    PWrite,
    Read,
    Readlink,
    Rename,
    Return,
    Stat,
    Symlink,
    Unlink,
    Write,
)
from spec.programs import GO_READ_ENTRY
from spec.properties import HITS, STAYS, SURVIVES, Property
from spec.state import Status

ERR = Failed()
EEXIST = Failed(frozenset({"EEXIST"}))
OK, FAIL, MISS, HIT = Return(Outcome.OK), Return(Outcome.FAIL), Return(Outcome.MISS), Return(Outcome.HIT)
PAY = (("entry", b"ab"), ("output", b"AB"))
PAY1 = (("entry", b"a"), ("output", b"A"))  # where the solver searches every reachable state
TMP = Path("output.tmp", private=True)
DEEP = Path("objects/ab/entry")

# ------------------------------------------------------------ the protocols

# flock: write-file's truncate-then-write under LOCK_EX; the reader takes
# LOCK_SH.  Readers always hit; a second writer still empties the entry.
LOCKED_WRITE = Program("locked-truncate-write", Role.WRITER, (
    Open(ENTRY, O_WRONLY | O_CREAT), If(ERR, "fail"), Flock(LockOp.EXCLUSIVE), If(ERR, "close_fail"),
    Ftruncate(Length(None, 0)), If(ERR, "close_fail"), Write(Data("entry")), If(ERR, "close_fail"), Close(), OK,
    Label("close_fail"), Close(), Label("fail"), FAIL), publishes=((ENTRY, "entry"),))
LOCKED_READ = Program("locked-read", Role.READER, (
    Open(ENTRY, O_RDONLY), If(ERR, "miss"), Flock(LockOp.SHARED), Read(Length("entry", 1)), Close(),
    If(Invalid("entry"), "miss"), HIT, Label("miss"), MISS))

# symlink: the output by temp and rename, then entry -> output; EEXIST means
# another writer won.  A reader opening with O_NOFOLLOW never gets in.
SYMLINK_PUBLISH = Program("symlink-publish", Role.WRITER, (
    Open(TMP, O_WRONLY | O_CREAT | O_EXCL), If(ERR, "fail"), Write(Data("entry")), If(ERR, "fail"),
    Close(), If(ERR, "fail"), Rename(TMP, OUTPUT), If(ERR, "fail"),
    Symlink(OUTPUT, ENTRY), If(EEXIST, "done"), If(ERR, "fail"),
    Label("done"), OK, Label("fail"), FAIL), publishes=((ENTRY, "entry"),))
READ_NOFOLLOW = Program("read-nofollow", Role.READER, (
    Open(ENTRY, O_RDONLY | O_NOFOLLOW), If(ERR, "miss"), Read(Length("entry", 1)), Close(),
    If(Invalid("entry"), "miss"), HIT, Label("miss"), MISS))

# O_APPEND: each write lands whole at the end; a second writer doubles the entry.
APPEND_ENTRY = Program("append-entry", Role.WRITER, (
    Open(ENTRY, O_WRONLY | O_CREAT | O_APPEND), If(ERR, "fail"), Write(Data("entry")), If(ERR, "fail"), Close(), OK,
    Label("fail"), FAIL), publishes=((ENTRY, "entry"),))

# link: git's publish - a complete, fdatasync'ed temp file gets its final
# name by link(2), EEXIST meaning another writer won; and its known-bad
# twin, which removes the old entry first.
LINK_PUBLISH = Program("link-publish", Role.WRITER, (
    Open(TEMP, O_WRONLY | O_CREAT | O_EXCL), If(ERR, "fail"), Write(Data("entry")), If(ERR, "cu"),
    Fdatasync(), If(ERR, "cu"), Close(), If(ERR, "u"), Link(TEMP, ENTRY), If(EEXIST, "done"), If(ERR, "u"),
    Label("done"), Unlink(TEMP), OK, Label("cu"), Close(), Label("u"), Unlink(TEMP), Label("fail"), FAIL),
    publishes=((ENTRY, "entry"),))
LINK_REPLACE = Program("link-replace", Role.WRITER, (
    Open(TEMP, O_WRONLY | O_CREAT | O_EXCL), If(ERR, "fail"), Write(Data("entry")), If(ERR, "cu"),
    Close(), If(ERR, "u"), Unlink(ENTRY), Link(TEMP, ENTRY), If(ERR, "u"), Unlink(TEMP), OK,
    Label("cu"), Close(), Label("u"), Unlink(TEMP), Label("fail"), FAIL), publishes=((ENTRY, "entry"),))


def _objects_writer(cleanup: str) -> Program:
    """An object in a subdirectory, made on demand, published by
    renameat2(RENAME_NOREPLACE); ``cleanup`` is where its failure goes:
    ``u`` removes the temp file, ``rm`` (the known-bad twin) the object."""
    return Program(f"objects-noreplace-{cleanup}", Role.WRITER, (
        Mkdir(Path("objects/ab")), If(EEXIST, "open"), If(ERR, "fail"), Label("open"),
        Open(TEMP, O_WRONLY | O_CREAT | O_EXCL), If(ERR, "fail"), Write(Data("entry")), If(ERR, "cu"),
        Close(), If(ERR, "u"), Rename(TEMP, DEEP, noreplace=True), If(ERR, cleanup), OK,
        Label("rm"), Unlink(DEEP), Label("cu"), Close(), Label("u"), Unlink(TEMP), Label("fail"), FAIL),
        publishes=((DEEP, "entry"),), reads=DEEP, dirs=("objects",))


OBJECTS = _objects_writer("u")
OBJECTS_REMOVE = _objects_writer("rm")
READ_OBJECT = Program("read-object", Role.READER, (
    Open(DEEP, O_RDONLY), If(ERR, "miss"), Read(Length("entry", 1)), Close(),
    If(Invalid("entry"), "miss"), HIT, Label("miss"), MISS), reads=DEEP, dirs=("objects",))

# Every check the new operations make, each refused in turn (the errno in
# the comment), and their successes; the program goes on regardless.
LNK, LNK2 = Path("lnk"), Path("lnk2")
REFUSED = Program("new-ops-refused", Role.WRITER, (
    Link(TEMP, ENTRY),  # ENOENT: no old
    Mkdir(Path("a/b")),  # ENOENT: no parent
    Open(Path("a/b/entry"), O_WRONLY | O_CREAT, "h"),  # ENOENT: no directory
    Mkdir(Path("a")), Mkdir(Path("a")),  # EEXIST
    Readlink(ENTRY),  # ENOENT
    Open(ENTRY, O_RDWR | O_CREAT),
    Readlink(ENTRY),  # EINVAL: no symlink
    Symlink(OUTPUT, ENTRY),  # EEXIST
    Link(ENTRY, ENTRY),  # EEXIST
    Flock(LockOp.SHARED, "g"),  # EBADF
    Fdatasync("g"),  # EBADF
    Symlink(OUTPUT, LNK),  # dangling
    Open(LNK, O_RDONLY | O_NOFOLLOW, "h"),  # ELOOP
    Open(LNK, O_RDONLY, "h"),  # ENOENT: dangling
    Stat(LNK),  # ENOENT
    Readlink(LNK),
    Open(LNK, O_WRONLY | O_CREAT, "h"),  # creates the target
    Write(Data("output"), "h"), Stat(LNK),
    Symlink(LNK, LNK2), Open(LNK2, O_RDONLY, "h"),  # ELOOP: a link to a link
    Rename(ENTRY, OUTPUT, noreplace=True),  # EEXIST
    Flock(LockOp.SHARED), Flock(LockOp.EXCLUSIVE), Flock(LockOp.UNLOCK), Flock(LockOp.UNLOCK, "g"),
    Open(ENTRY, O_WRONLY | O_APPEND, "h"), Write(Data("entry"), "h"), PWrite(Data("entry"), 0, "h"), Fstat("h"),
    Flock(LockOp.EXCLUSIVE, "h"),  # held at exit, which drops it
    FAIL))


def system(*programs: Program, faults: int = 0, payloads: tuple[tuple[str, bytes], ...] = PAY, **kw: Any) -> System:
    return System(tuple(Process(p, payloads) for p in programs), faults=faults, **kw)


PROTOCOLS = (LOCKED_WRITE, LOCKED_READ, SYMLINK_PUBLISH, READ_NOFOLLOW, APPEND_ENTRY, LINK_PUBLISH, LINK_REPLACE,
             OBJECTS, OBJECTS_REMOVE, READ_OBJECT, REFUSED)


def test_the_programs_use_every_new_operation() -> None:
    code = [ins for p in PROTOCOLS for ins in p.code]
    for op in (Link, Mkdir, Symlink, Readlink, Flock, Fdatasync):
        assert any(isinstance(ins, op) for ins in code), op
    assert {ins.op for ins in code if isinstance(ins, Flock)} == set(LockOp)
    assert any(isinstance(ins, Rename) and ins.noreplace for ins in code)
    flags = [ins.flags for ins in code if isinstance(ins, Open)]
    assert any(OpenFlags.APPEND in f for f in flags) and any(OpenFlags.NOFOLLOW in f for f in flags)
    assert S.features(PROTOCOLS) == {S.LINKS, S.LOCKS, S.APPEND, S.HARDLINKS}


def test_the_catalogue_is_encoded_as_before() -> None:
    """No new representation for systems that do not use it: no feature,
    no directory, the old descriptor fields, no Promela variable."""
    for proto in CATALOGUE.writers():
        if S.features([proto.program]) or any(isinstance(ins, Mkdir) for ins in proto.program.code):
            continue  # the remote tier, the atlas's links, locks, appends, directories: their own representation
        sysm = symbolic.encode(System.of(proto, 2, 1, reader=proto.reader, faults=1))
        assert not sysm.features and not sysm.dirs and not sysm.link_targets
        assert all(f in dict(symbolic.REG_FIELDS[sysm.reg_kind[r]]) for r, f, _ in sysm.fields())
        text = translate(System.of(proto, 2, 1, reader=proto.reader, faults=1), [STAYS])
        assert not any(w in text for w in ("].link", "].lock", "dir_", "_app", "_lock"))


# ------------------------------------------------------------ the solver's transition


def test_the_model_refuses_every_check() -> None:
    sys1 = system(REFUSED)
    w, errnos = initial(sys1), set()
    while w.procs[0].status is Status.RUNNING:
        w = step(sys1, w, 0)
        errnos.add(w.procs[0].last)
    assert errnos == {"", "ENOENT", "EEXIST", "EINVAL", "EBADF", "ELOOP"}
    assert w.fs.locks == () and w.fs.dirs == ("a",)


CONFORMANCE = [
    pytest.param(system(REFUSED, faults=1), 150, id="refused"),
    pytest.param(system(LOCKED_WRITE, LOCKED_WRITE, LOCKED_READ, faults=1), 40, id="flock"),
    pytest.param(system(SYMLINK_PUBLISH, SYMLINK_PUBLISH, READ_NOFOLLOW, faults=1), 40, id="symlink"),
    pytest.param(system(APPEND_ENTRY, APPEND_ENTRY, GO_READ_ENTRY, faults=1), 40, id="append"),
    pytest.param(system(LINK_PUBLISH, LINK_PUBLISH, faults=1), 40, id="link"),
    pytest.param(system(OBJECTS, OBJECTS_REMOVE, READ_OBJECT, faults=1), 40, id="mkdir-noreplace"),
]


@pytest.mark.parametrize("sys_, states", CONFORMANCE)
def test_the_solver_transition_is_the_model_s(sys_: System, states: int) -> None:
    moves, bad = mismatches(sys_, max_states=states)
    assert moves > states and not bad, bad[:3]


def test_a_waiting_process_has_no_transition_in_the_solver() -> None:
    """Conformance sees waits: the explored states include a reader
    waiting for LOCK_SH (the model gives it no move; the solver's
    transition must not be enabled), and a domain that ignores waits is
    caught."""
    sys_ = system(LOCKED_WRITE, LOCKED_READ)
    w = initial(sys_)
    for i in (0, 0, 1):  # the writer opens and locks; the reader opens
        w = step(sys_, w, i)
    assert not enabled(sys_, w, 1)
    assert not mismatches(sys_, max_states=40)[1]


def test_a_solver_that_ignores_waits_is_caught_by_conformance(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(symbolic.Z3Dom, "block", lambda self, cond: None)
    _, bad = mismatches(system(LOCKED_WRITE, LOCKED_READ), max_states=40)
    assert bad and {m.field for m in bad} == {"enabled"}


def test_an_unbounded_append_lands_whole_at_the_end() -> None:
    """The unbounded encoding (any number of processes, a payload of any
    length L, bytes as a lambda): from any state where an O_APPEND writer
    is at its write, the step makes the file L bytes longer, ending in the
    payload's last byte (and such a state exists: not vacuous)."""
    sysm = unbounded_system(APPEND_ENTRY, GO_READ_ENTRY)
    s, p = symbolic.fresh_state(sysm, "@0"), z3.Int("p")
    tr = symbolic.step(sysm, s, p, z3.BoolVal(False))
    pay, ino, size = sysm.kinds[0].payloads["entry"], s.regs[("f", "ino")][p], s.fs.size
    at_write = [sysm.kind_of[p] == 0, s.pc[p] == APPEND_ENTRY.code.index(Write(Data("entry"))), s.st[p] == 0,
                s.prog[p] == 0, s.regs[("f", "set")][p], s.regs[("f", "append")][p], s.regs[("f", "mode")][p] == 2,
                ino >= 0, pay.length >= 1, tr.enabled]
    lands = z3.And(tr.after.fs.size[ino] == size[ino] + pay.length,
                   tr.after.fs.data[ino, size[ino] + pay.length - 1] == pay.data[pay.length - 1])
    for claim, want in ((z3.BoolVal(True), z3.sat), (z3.Not(lands), z3.unsat)):
        solver = z3.Solver()
        solver.add(*at_write, claim)
        assert solver.check() == want


# ------------------------------------------------------------ bounded model checking

BMC = [
    # (system, property): the explorer's verdict is asserted too.
    pytest.param(system(LOCKED_WRITE, LOCKED_WRITE, LOCKED_READ), STAYS, "violated", id="flock/stays"),
    pytest.param(system(LOCKED_WRITE, LOCKED_WRITE, LOCKED_READ, payloads=PAY1), HITS, "holds", id="flock/hits"),
    pytest.param(system(SYMLINK_PUBLISH, SYMLINK_PUBLISH, payloads=PAY1), STAYS, "holds", id="symlink/stays"),
    pytest.param(system(SYMLINK_PUBLISH, READ_NOFOLLOW), HITS, "violated", id="symlink+nofollow/hits"),
    pytest.param(system(APPEND_ENTRY, APPEND_ENTRY), STAYS, "violated", id="append/stays"),
    pytest.param(system(LINK_REPLACE, LINK_REPLACE), STAYS, "violated", id="link-replace/stays"),
    pytest.param(system(OBJECTS_REMOVE, OBJECTS_REMOVE, payloads=PAY1), STAYS, "violated", id="mkdir-noreplace-rm/stays"),
]


@pytest.mark.parametrize("sys_, prop, verdict", BMC)
def test_bmc_agrees_with_the_explorer(sys_: System, prop: Property, verdict: str) -> None:
    """A counterexample at the explorer's least depth (``search`` replays
    it in the model and checks the violation there), or none in any run
    as long as the explorer's depth: every reachable state."""
    ours = explore(sys_, [prop])
    assert ours.verdict(prop) == verdict
    if verdict == "violated":
        depth = ours.violations[prop.name].depth
        res = search(sys_, prop, depth)
        assert (res.outcome, res.depth) == ("counterexample", depth)
    else:
        assert search(sys_, prop, ours.depth).outcome == "none"


# ------------------------------------------------------------ SPIN

needs_spin = pytest.mark.skipif(spin_missing() is not None, reason=spin_missing() or "")

SPIN = [
    pytest.param(system(LOCKED_WRITE, LOCKED_WRITE, LOCKED_READ), STAYS, "violated", id="flock/stays"),
    pytest.param(system(LOCKED_WRITE, LOCKED_WRITE, LOCKED_READ), HITS, "holds", id="flock/hits"),
    # LOCK_SH fails (ENOLCK) and the reader reads anyway.
    pytest.param(system(LOCKED_WRITE, LOCKED_WRITE, LOCKED_READ, faults=1), HITS, "violated", id="flock/F1/hits"),
    pytest.param(system(LOCKED_WRITE, LOCKED_WRITE, LOCKED_READ, faults=1, granularity="write"), STAYS, "violated",
                 id="flock/F1/write/stays"),
    pytest.param(system(SYMLINK_PUBLISH, SYMLINK_PUBLISH, GO_READ_ENTRY, faults=1), STAYS, "holds", id="symlink/F1/stays"),
    pytest.param(system(SYMLINK_PUBLISH, SYMLINK_PUBLISH, GO_READ_ENTRY, faults=1), HITS, "holds", id="symlink/F1/hits"),
    pytest.param(system(SYMLINK_PUBLISH, READ_NOFOLLOW), HITS, "violated", id="symlink+nofollow/hits"),
    pytest.param(system(SYMLINK_PUBLISH, SYMLINK_PUBLISH, crashes=1), SURVIVES, "violated", id="symlink/crash"),
    pytest.param(system(APPEND_ENTRY, APPEND_ENTRY, faults=1), STAYS, "violated", id="append/F1/stays"),
    pytest.param(system(APPEND_ENTRY, APPEND_ENTRY, faults=1, granularity="write"), STAYS, "violated", id="append/write"),
    pytest.param(system(LINK_PUBLISH, LINK_PUBLISH, faults=1), STAYS, "holds", id="link/F1/stays"),
    pytest.param(system(LINK_PUBLISH, LINK_PUBLISH, faults=1, crashes=1), SURVIVES, "holds", id="link+fdatasync/crash"),
    pytest.param(system(LINK_REPLACE, LINK_REPLACE), STAYS, "violated", id="link-replace/stays"),
    pytest.param(system(OBJECTS, OBJECTS, READ_OBJECT, faults=1), HITS, "holds", id="mkdir-noreplace/F1/hits"),
    pytest.param(system(OBJECTS_REMOVE, OBJECTS_REMOVE), STAYS, "violated", id="mkdir-noreplace-rm/stays"),
    pytest.param(system(REFUSED, faults=1), STAYS, "holds", id="refused/F1"),
    pytest.param(system(REFUSED, faults=1, granularity="write"), STAYS, "holds", id="refused/F1/write"),
]


def spin_verdict(sys_: System, prop: Property, workdir: FsPath) -> tuple[str, int | None]:
    """SPIN's verdict (breadth first, every interleaving) and the depth of
    its violation in the explorer's units."""
    run = run_spin(translate(sys_, [prop]), workdir, reduce=False, bfs=True, opt="-O0")
    return run.verdict, None if run.error_depth is None else explorer_depth(sys_, run.error_depth)


@needs_spin
@pytest.mark.parametrize("sys_, prop, verdict", SPIN)
def test_spin_agrees_with_the_explorer(sys_: System, prop: Property, verdict: str, tmp_path: FsPath) -> None:
    ours = explore(sys_, [prop])
    depth = ours.violations[prop.name].depth if prop.name in ours.violations else None
    assert (ours.verdict(prop), spin_verdict(sys_, prop, tmp_path)) == (verdict, (verdict, depth))


@needs_spin
def test_a_translator_that_ignores_waits_is_caught_by_spin(monkeypatch: pytest.MonkeyPatch, tmp_path: FsPath) -> None:
    """The wait is the d_step's guard: without it a locked reader reads
    between a writer's truncate and its write, which the explorer - where
    the reader waits - never sees."""
    sys_ = system(LOCKED_WRITE, LOCKED_WRITE, LOCKED_READ)
    assert explore(sys_, [HITS]).verdict(HITS) == "holds"
    monkeypatch.setattr(PmlDom, "block", lambda self, cond: None)
    assert spin_verdict(sys_, HITS, tmp_path)[0] == "violated"


def test_the_wait_for_a_lock_is_the_transitions_guard() -> None:
    text = translate(system(LOCKED_WRITE, LOCKED_READ), [HITS])
    guard = next(ln for ln in text.splitlines() if ln.strip().startswith("pc == 2 &&"))
    assert "node[r_f_ino].lock" in guard and guard.rstrip().endswith("->")


def test_a_wait_after_an_effect_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """A wait can be a guard only if nothing changed before it (as in
    ``spec.semantics._flock``); the translator refuses one that comes later."""
    flock = S.OPS[Flock]

    def late(ins: Flock, m: S.Dom) -> None:
        m.set_fd_lock(ins.fd, 0)  # an effect first
        flock.run(ins, m)

    monkeypatch.setitem(S.OPS, Flock, replace(flock, run=late))
    with pytest.raises(TranslationError, match="waits after an effect"):
        translate(system(LOCKED_WRITE, LOCKED_READ), [HITS])
