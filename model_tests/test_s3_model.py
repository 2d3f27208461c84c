"""The object store in the model: its semantics, the remote protocols, and
every checker catching their known-bad twins.

Promises checked here:

- the object store's operations do what S3 does (``spec.semantics``, run by
  the model): a PUT is whole and atomic and the last writer wins; the
  conditional PUTs answer 412 as S3 does; a GET of a missing key is 404; a
  faulted GET either fails or hands over a body cut short, a faulted PUT
  either never reached the store or reached it and lost its answer;
- the explorer's verdicts on ``s3-put``/``s3-get`` and on each known-bad
  twin are the ones the catalogue declares, with shortest counterexamples;
- bounded model checking (Z3) and SPIN find each twin's violation at the
  explorer's least depth, and agree that the good protocols keep theirs;
- the OS interpreter refuses an object-store program with a specific error.
"""

from __future__ import annotations

from pathlib import Path as FsPath

import pytest

from proofs.bmc import search
from proofs.promela import explorer_depth, translate
from proofs.spin import run_spin, spin_missing
from reference.osrun import run as os_run
from reference.syscalls import RemoteOperationError
from spec import CATALOGUE, Process, System, explore
from spec.check import MIXES
from spec.fs import FileSystem
from spec.machine import initial, step
from spec.ops import (
    OUTPUT_KEY,
    Data,
    DeleteObject,
    Failed,
    GetObject,
    HeadObject,
    If,
    Key,
    Label,
    Outcome,
    Precondition,
    Program,
    ProgramError,
    PutObject,
    Return,
    Role,
)
from spec.programs import S3_GET, S3_GET_OVERWRITE, S3_GET_UNCHECKED, S3_PUT, S3_PUT_RECORD_FIRST
from spec.properties import HITS, NO_CORRUPT, REMOTE_HIT, REMOTE_RECORD, Property
from spec.state import Buf, Size, Status, World

K = Key("k")
PAYLOADS = (("entry", b"ab"), ("output", b"AB"))


def _prog(name: str, *code: object, role: Role = Role.WRITER) -> Program:
    return Program(name, role, (*code, Return(Outcome.OK)))  # type: ignore[arg-type]


def _run(system: System, *moves: tuple[int, tuple[str, int] | None]) -> World:
    w = initial(system)
    for i, fault in moves:
        w = step(system, w, i, fault)
    return w


# ------------------------------------------------------------ the semantics


def test_put_is_whole_and_the_last_writer_wins() -> None:
    """A PUT stores the whole payload in one step; a second PUT replaces it
    and takes a new ETag."""
    a = _prog("a", PutObject(K, Data("entry")))
    b = _prog("b", PutObject(K, Data("output")))
    system = System((Process(a, PAYLOADS), Process(b, PAYLOADS)))
    w = _run(system, (0, None))
    assert w.fs.object_bytes("k") == b"ab" and w.fs.object("k") == (0, 1)
    w = step(system, w, 1)
    assert w.fs.object_bytes("k") == b"AB" and w.fs.object("k")[1] == 2  # type: ignore[index]


@pytest.mark.parametrize("exists, expect", [(False, ""), (True, "EPRECONDITION")])
def test_if_none_match_is_412_when_the_key_exists(exists: bool, expect: str) -> None:
    """If-None-Match: * stores only where the key is absent; else 412 and
    the object is unchanged."""
    first = _prog("first", PutObject(K, Data("entry")))
    cond = Program("cond", Role.WRITER, (PutObject(K, Data("output"), Precondition.IF_NONE_MATCH),
                                         If(Failed(), "fail"), Return(Outcome.OK), Label("fail"), Return(Outcome.FAIL)))
    system = System((Process(first, PAYLOADS), Process(cond, PAYLOADS)))
    w = _run(system, *([(0, None)] if exists else []), (1, None))
    assert w.procs[1].status is (Status.FAIL if exists else Status.OK)
    assert w.fs.object_bytes("k") == (b"ab" if exists else b"AB")
    # The errno the branch saw: run the PUT alone and look before settling.
    probe = Program("probe", Role.WRITER, (PutObject(K, Data("output"), Precondition.IF_NONE_MATCH),
                                           If(Failed(frozenset({"EPRECONDITION"})), "p"), Return(Outcome.OK),
                                           Label("p"), Return(Outcome.FAIL)))
    system = System((Process(first, PAYLOADS), Process(probe, PAYLOADS)))
    w = _run(system, *([(0, None)] if exists else []), (1, None))
    assert (w.procs[1].status is Status.FAIL) == (expect == "EPRECONDITION")


def test_if_match_compares_the_etag_a_head_saw() -> None:
    """HEAD reads size and ETag; a PUT If-Match with that ETag stores, and
    412 once another PUT has changed the ETag in between."""
    seed = _prog("seed", PutObject(K, Data("entry")))
    guarded = Program("guarded", Role.WRITER, (
        HeadObject(K, "st", "etag"), If(Failed(), "fail"),
        PutObject(K, Data("output"), Precondition.IF_MATCH, "etag"), If(Failed(), "fail"),
        Return(Outcome.OK), Label("fail"), Return(Outcome.FAIL)))
    other = _prog("other", PutObject(K, Data("entry")))
    system = System((Process(seed, PAYLOADS), Process(guarded, PAYLOADS), Process(other, PAYLOADS)))
    w = _run(system, (0, None), (1, None))
    regs = dict(zip(system.kinds[1].reg, w.procs[1].regs))
    assert regs["st"] == Size(2) and regs["etag"] == Size(1)
    assert step(system, w, 1).procs[1].status is Status.OK
    raced = step(system, step(system, w, 2), 1)
    assert raced.procs[1].status is Status.FAIL and raced.fs.object_bytes("k") == b"ab"


def test_if_match_needs_an_etag_register() -> None:
    """A malformed conditional PUT is refused when the program is written."""
    with pytest.raises(ProgramError, match="If-Match"):
        PutObject(K, Data("entry"), Precondition.IF_MATCH)


def test_get_of_a_missing_key_is_404_and_delete_is_idempotent() -> None:
    """GET of an absent key fails with ENOENT and leaves no buffer; DELETE
    of an absent key succeeds; after DELETE the key is gone."""
    getter = Program("g", Role.READER, (GetObject(K, "buf", "entry"), If(Failed(frozenset({"ENOENT"})), "miss"),
                                        Return(Outcome.HIT), Label("miss"), Return(Outcome.MISS)))
    assert _run(System((Process(getter, PAYLOADS),)), (0, None)).procs[0].status is Status.MISS
    put_del = _prog("pd", DeleteObject(K), PutObject(K, Data("entry")), DeleteObject(K))
    system = System((Process(put_del, PAYLOADS),))
    w = _run(system, (0, None), (0, None))
    assert w.fs.object_bytes("k") == b"ab"
    w = step(system, w, 0)
    assert w.fs.object("k") is None and w.procs[0].status is Status.OK


def test_a_faulted_put_may_or_may_not_have_taken_effect() -> None:
    """The two faults of a PUT: lost before the store acted (nothing
    stored) or a timeout after it (stored); both report EIO."""
    put = Program("p", Role.WRITER, (PutObject(K, Data("entry")), If(Failed(frozenset({"EIO"})), "eio"),
                                     Return(Outcome.OK), Label("eio"), Return(Outcome.FAIL)))
    system = System((Process(put, PAYLOADS),), faults=1)
    from spec.machine import faults
    assert faults(system, initial(system), 0) == [("EIO", 0), ("EIO", 1)]
    lost, late = (_run(system, (0, f)) for f in (("EIO", 0), ("EIO", 1)))
    assert lost.fs.object("k") is None and lost.procs[0].status is Status.FAIL
    assert late.fs.object_bytes("k") == b"ab" and late.procs[0].status is Status.FAIL


def test_a_faulted_get_fails_or_is_cut_short_unbeknown() -> None:
    """A GET's faults: no body (EIO), or a prefix of k < len bytes that the
    client takes for success."""
    seed = _prog("seed", PutObject(K, Data("output")))
    getter = Program("g", Role.READER, (GetObject(K, "buf", "output"), If(Failed(), "miss"), Return(Outcome.HIT),
                                        Label("miss"), Return(Outcome.MISS)))
    system = System((Process(seed, PAYLOADS), Process(getter, PAYLOADS)), faults=1)
    from spec.machine import faults
    w = _run(system, (0, None))
    assert faults(system, w, 1) == [("EIO", -1), ("EIO", 0), ("EIO", 1)]
    assert step(system, w, 1, ("EIO", -1)).procs[1].status is Status.MISS
    for k in (0, 1):
        got = step(system, w, 1, ("EIO", k)).procs[1]
        assert got.status is Status.HIT and got.regs == (Buf(b"AB"[:k]),)
    assert step(system, w, 1).procs[1].regs == (Buf(b"AB"),)


def test_a_crash_of_the_getting_machine_leaves_the_store() -> None:
    """A power loss here reverts local files, not the remote objects."""
    from spec.fs import crash, create, put_object, set_content
    fs, ino = create(FileSystem())
    fs = put_object(set_content(fs, ino, b"AB"), "o/x", ino)
    assert crash(fs).object_bytes("o/x") == b"AB"


# ------------------------------------------------------------ the explorer


TWINS: list[tuple[str, System, Property, int]] = [
    ("s3-put-record-first", System.of(S3_PUT_RECORD_FIRST, 1, 1, S3_GET), REMOTE_RECORD, 1),
    ("s3-get-unchecked", System.of(S3_PUT, 1, 1, S3_GET_UNCHECKED, faults=1), REMOTE_HIT, 8),
    ("s3-get-overwrite", System.of(S3_PUT, 1, 2, S3_GET_OVERWRITE, entry_length=1), REMOTE_HIT, 10),
]
KEEPERS: list[tuple[str, System, Property]] = [
    ("s3-put+s3-get record", System.of(S3_PUT, 2, 1, S3_GET, faults=1), REMOTE_RECORD),
    ("s3-put+s3-get hit", System.of(S3_PUT, 1, 1, S3_GET, faults=1), REMOTE_HIT),
    ("s3-put+2 s3-get hit", System.of(S3_PUT, 1, 2, S3_GET, entry_length=1), REMOTE_HIT),
    ("s3-put+s3-get corrupt", System.of(S3_PUT, 1, 1, S3_GET, faults=1), NO_CORRUPT),
]


@pytest.mark.parametrize("name, system, prop, depth", TWINS, ids=[t[0] for t in TWINS])
def test_the_explorer_catches_each_twin(name: str, system: System, prop: Property, depth: int) -> None:
    """Each known-bad twin violates its property, at this least depth."""
    ex = explore(system, [prop])
    assert ex.verdict(prop) == "violated"
    assert ex.violations[prop.name].depth == depth


@pytest.mark.parametrize("name, system, prop", KEEPERS, ids=[k[0] for k in KEEPERS])
def test_the_good_protocols_keep_their_promises(name: str, system: System, prop: Property) -> None:
    """s3-put with s3-get keeps the remote properties, with a fault."""
    assert explore(system, [prop]).verdict(prop) == "holds"


@pytest.mark.parametrize("name, system, prop, depth", TWINS + [(k[0], k[1], k[2], -1) for k in KEEPERS],
                         ids=[t[0] for t in TWINS] + [k[0] for k in KEEPERS])
def test_the_reductions_keep_the_verdicts(name: str, system: System, prop: Property, depth: int) -> None:
    """Symmetry and inode renumbering (objects' inodes numbered by key)
    change no verdict and no shortest depth: the unreduced search agrees."""
    full = explore(system, [prop], symmetry=False)
    assert full.verdict(prop) == ("violated" if depth >= 0 else "holds")
    if depth >= 0:
        assert full.violations[prop.name].depth == depth


def test_the_catalogue_declares_what_the_explorer_finds() -> None:
    """Every claim of the remote protocols, and every remote mix, at F=0
    and F=1: the explorer's verdict is the declared one (the matrix
    ``idemwrite check`` prints, restricted to the remote tier)."""
    from spec.check import default_scenarios, run
    remote = [s for s in default_scenarios() if any(p.name.startswith("s3-") for p in s.system.writer_programs())]
    assert len(remote) >= 14
    results = run(remote)
    assert all(r.ok for r in results), [(r.scenario.system.bounds(), r.scenario.property.name, r.verdict)
                                        for r in results if not r.ok]
    # Every twin is declared violated somewhere (so the matrix tests the checker).
    violated = {(r.scenario.system.writer_programs()[0].name, r.scenario.system.reader_programs()[0].name)
                for r in results if r.verdict == "violated"}
    assert {("s3-put-record-first", "s3-get"), ("s3-put", "s3-get-unchecked"), ("s3-put", "s3-get-overwrite")} <= violated
    assert any(m.reader == S3_GET_OVERWRITE and m.readers == 2 for m in MIXES)


def test_an_unconditional_put_of_the_output_is_harmless_under_s3_semantics() -> None:
    """SPEC.md's reason for choosing the local overwrite as the twin: a
    putter that overwrites the content-addressed output unconditionally
    (no If-None-Match) keeps both remote properties, faults included,
    because a PUT is atomic and the bytes are the same."""
    from spec.ops import ACTION_KEY
    overwrite = Program("s3-put-unconditional", Role.WRITER, (
        PutObject(OUTPUT_KEY, Data("output")), If(Failed(), "fail"),
        PutObject(ACTION_KEY, Data("entry")), If(Failed(), "fail"),
        Return(Outcome.OK), Label("fail"), Return(Outcome.FAIL)))
    ex = explore(System.of(overwrite, 2, 2, S3_GET, faults=1, entry_length=1), [REMOTE_RECORD, REMOTE_HIT])
    assert ex.verdict(REMOTE_RECORD) == ex.verdict(REMOTE_HIT) == "holds"
    assert ex.states > 100  # it did explore the overwrites


def test_once_a_put_returned_a_get_hits_without_faults_only() -> None:
    """reader-after-publication-hits for the remote tier: a get that starts
    after a put returned hits when nothing fails; one fault (on the get)
    makes it a miss, which is the promise's limit (a failing remote is a
    miss, never a wrong file)."""
    assert explore(System.of(CATALOGUE["s3-put"], 2, 1, S3_GET), [HITS]).verdict(HITS) == "holds"
    ex = explore(System.of(CATALOGUE["s3-put"], 2, 1, S3_GET, faults=1), [HITS])
    assert ex.verdict(HITS) == "violated"


# ------------------------------------------------------------ BMC and SPIN


@pytest.mark.parametrize("name, system, prop, depth", TWINS, ids=[t[0] for t in TWINS])
def test_bmc_finds_each_twin_at_the_explorers_depth(name: str, system: System, prop: Property, depth: int) -> None:
    """Z3 finds the violation at the explorer's least depth, and its run
    replays in the model.  The longest twin is asked at that depth alone
    (the explorer has shown no shorter run; the full deepening takes
    minutes there)."""
    start = depth if depth > 8 else 0
    res = search(system, prop, depth, start=start)
    assert res.outcome == "counterexample" and res.depth == depth
    assert prop.check(system, res.worlds[-1]) is not None


def test_bmc_finds_no_violation_of_the_good_protocols() -> None:
    """The encoding is not vacuously violating: s3-put keeps the record
    property with a fault at every depth of its runs."""
    system = System.of(S3_PUT, 2, 0, S3_GET, faults=1)
    assert search(system, REMOTE_RECORD, 4).outcome == "none"


needs_spin = pytest.mark.skipif(spin_missing() is not None, reason=spin_missing() or "")


@needs_spin
@pytest.mark.parametrize("name, system, prop, depth", TWINS + [(k[0], k[1], k[2], -1) for k in KEEPERS],
                         ids=[t[0] for t in TWINS] + [k[0] for k in KEEPERS])
def test_spin_agrees(name: str, system: System, prop: Property, depth: int, tmp_path: FsPath) -> None:
    """SPIN, breadth first over every interleaving, gives the explorer's
    verdict, and a violation at the same least depth."""
    spin = run_spin(translate(system, [prop]), tmp_path, reduce=False, bfs=True, opt="-O0")
    assert spin.verdict == ("violated" if depth >= 0 else "holds"), spin.output
    if depth >= 0:
        assert spin.error_depth is not None and explorer_depth(system, spin.error_depth) == depth


def test_the_solver_transition_is_the_model_s_on_the_remote_tier() -> None:
    """Z3's step (with each fault's variant) equals the model's on every
    move of the explored states, object store included."""
    from proofs.conformance import mismatches
    for system in (System.of(S3_PUT, 1, 1, S3_GET, faults=1), System.of(S3_PUT_RECORD_FIRST, 1, 1, S3_GET_UNCHECKED,
                                                                         faults=1)):
        moves, bad = mismatches(system, max_states=40)
        assert moves > 40 and not bad, bad[:3]


def test_the_remote_theorems_prove_and_their_twins_are_refuted() -> None:
    """Induction for any number of putters and getters (with vacuity
    checks), and the same invariants failing, with a counterexample, on
    the twins."""
    from proofs.theorems import COUNTEREXAMPLE, PROVED, catalogue, run
    remote = {t.name: t for t in catalogue() if t.name.startswith("s3-")}
    assert len(remote) == 11  # 2 proofs, 3 twins, 6 dropped assumptions
    for name, t in remote.items():
        res = run(t)
        assert res.outcome == t.expect, (name, res.note)
        if name.endswith("all-N-all-L"):
            assert res.outcome == PROVED and any(c.name.startswith("vacuity") for c in res.checks)
        elif name.endswith("/bmc"):
            assert res.outcome == COUNTEREXAMPLE and res.bmc is not None
            assert [c.answer for c in res.checks] == ["fails", "sat"]  # the invariant fails on the twin
    # A needed assumption: with the model's length check, another output of one length is served.
    assert remote["s3-put/remote-hit-serves-complete-output/drop-same-bytes"].expect == COUNTEREXAMPLE


# ------------------------------------------------------------ the OS interpreter


@pytest.mark.parametrize("prog", [S3_PUT, S3_GET], ids=lambda p: p.name)
def test_the_os_interpreter_refuses_object_store_requests(prog: Program, tmp_path: FsPath) -> None:
    """No silent no-op: a program with a PUT or GET is refused before its
    first call, with an error that says where to check it instead."""
    with pytest.raises(RemoteOperationError, match="object-store"):
        os_run(prog, dict(PAYLOADS), str(tmp_path))
    assert list(tmp_path.iterdir()) == []


def test_keys_are_checked() -> None:
    """A key is a relative name, like a path."""
    for bad in ("", "/abs", "a//b", "a/../b"):
        with pytest.raises(ProgramError, match="bad key"):
            Key(bad)
    assert str(OUTPUT_KEY) == "o/output-id"
