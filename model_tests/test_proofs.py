"""The Z3 proofs: ``idemwrite prove`` as a whole, each counterexample
replayed in the model, the explorer and on real files, the solver's
transition against ``spec.machine`` (on the catalogue and on a program made
of calls the kernel refuses), and known-bad twins that each check must
catch (a broken invariant, a false invariant, a broken Z3 domain).
BMC of a protocol value defined in a test: ``test_own_protocol.py``.
"""

from __future__ import annotations

import json
import os
import pathlib
from dataclasses import replace
from typing import Any

import pytest
import z3

from proofs import cli, invariants, symbolic
from proofs.conformance import mismatches
from proofs.induction import prove, unbounded_system, vacuity
from proofs.theorems import COUNTEREXAMPLE, PROVED, SAMPLES, UNKNOWN, catalogue, find, run
from spec import fs as F
from spec.explore import explore
from spec.machine import initial, step
from spec.ops import (
    ENTRY,
    O_CREAT,
    O_WRONLY,
    TEMP,
    Close,
    Data,
    Fstat,
    Ftruncate,
    Length,
    Mmap,
    Open,
    Outcome,
    Program,
    PWrite,
    Read,
    Rename,
    Return,
    Role,
    Unlink,
    Write,
)
from spec.programs import GO_READ_ENTRY, WRITE_THEN_TRUNCATE
from spec.properties import HITS, NO_SIGBUS, STAYS, get_property
from spec.protocols import CATALOGUE
from spec.semantics import OBJECTS
from spec.state import Began, Status
from spec.system import Process, System
from spec.trace import Trace, TraceStep, files, from_json, replay

Row = dict[str, Any]


@pytest.fixture(scope="module")
def rows() -> dict[str, Row]:
    """Every theorem, run once (in parallel, as ``idemwrite prove`` does)."""
    names = [t.name for t in catalogue()]
    return {str(r["theorem"]): r for r in cli.run_all(names, os.cpu_count() or 1)}


def test_every_theorem_has_its_declared_outcome(rows: dict[str, Row]) -> None:
    bad = {n: (r["outcome"], r["expected"], r["note"]) for n, r in rows.items() if cli.failed(r)}
    assert not bad


def test_the_issue_s_theorems_are_all_there(rows: dict[str, Row]) -> None:
    for proto in ("write-then-truncate", "rename-into-place"):
        for prop in (STAYS, HITS):
            r = rows[f"{proto}/{prop}/all-N-all-L"]
            assert (r["outcome"], r["scope"]) == (PROVED, "all N, all L")
    assert rows[f"write-then-truncate/{NO_SIGBUS}/all-N-all-L"]["outcome"] == PROVED
    for proto, prop in [("write-file", STAYS), ("write-file", HITS), ("go-index-entry", STAYS), ("go-index-entry", HITS),
                        ("create-exclusive", STAYS), ("go-output-file", STAYS)]:
        assert rows[f"{proto}/{prop}/bmc"]["outcome"] == COUNTEREXAMPLE


def test_unbounded_proofs_pass_every_check_including_vacuity(rows: dict[str, Row]) -> None:
    for name, r in rows.items():
        if not name.endswith("all-N-all-L"):
            continue
        kinds = [c["check"] for c in r["checks"]]
        assert "initiation" in kinds and "invariant implies property" in kinds
        assert _consecution_cases(kinds) == list(CONSECUTION_CASES[name])  # pinned, see above
        assert sum(k.startswith("vacuity") and k.endswith("has an enabled step") for k in kinds) == len(SAMPLES)
        # every consecution case has its own non-vacuity witness
        steps = {k.removeprefix("consecution ") for k in kinds if k.startswith("consecution")}
        witnessed = {k.removeprefix("vacuity: ").removesuffix(": invariant and step satisfiable") for k in kinds}
        assert steps <= witnessed, steps - witnessed
        assert all(c["answer"] == c["expect"] for c in r["checks"]), name


# Every consecution case of every unbounded theorem, pinned: each operation
# of the writer and the reader, with and without an injected fault where
# the semantics let one strike (spec.semantics.can_fault; a write of
# symbolic length may always fault).  Dropping a case - a fault step
# forgotten by the induction, an operation skipped - fails the test below;
# a new operation or fault is added here on purpose.
CONSECUTION_CASES: dict[str, tuple[str, ...]] = {
    # The remote tier: every object-store request may fault (an error, a
    # timeout, a body cut short), as may the local write's calls.
    "s3-put/remote-record-names-complete-output/all-N-all-L": (
        "s3-put@0 PUT o/output-id <- output  If-None-Match: *",
        "s3-put@0 PUT o/output-id <- output  If-None-Match: * [fault]",
        "s3-put@3 PUT ac/action-id <- entry",
        "s3-put@3 PUT ac/action-id <- entry [fault]",
        "s3-get@0 rec = GET ac/action-id",
        "s3-get@0 rec = GET ac/action-id [fault]",
        "s3-get@3 out = GET o/output-id",
        "s3-get@3 out = GET o/output-id [fault]",
        "s3-get@6 f = open(output, O_WRONLY|O_CREAT)",
        "s3-get@6 f = open(output, O_WRONLY|O_CREAT) [fault]",
        "s3-get@8 write(f, out)",
        "s3-get@8 write(f, out) [fault]",
        "s3-get@10 ftruncate(f, len(output))",
        "s3-get@10 ftruncate(f, len(output)) [fault]",
        "s3-get@12 close(f)",
        "s3-get@12 close(f) [fault]",
        "s3-get@15 close(f)",
        "s3-get@15 close(f) [fault]",
    ),
    "s3-put/remote-hit-serves-complete-output/all-N-all-L": (
        "s3-put@0 PUT o/output-id <- output  If-None-Match: *",
        "s3-put@0 PUT o/output-id <- output  If-None-Match: * [fault]",
        "s3-put@3 PUT ac/action-id <- entry",
        "s3-put@3 PUT ac/action-id <- entry [fault]",
        "s3-get@0 rec = GET ac/action-id",
        "s3-get@0 rec = GET ac/action-id [fault]",
        "s3-get@3 out = GET o/output-id",
        "s3-get@3 out = GET o/output-id [fault]",
        "s3-get@6 f = open(output, O_WRONLY|O_CREAT)",
        "s3-get@6 f = open(output, O_WRONLY|O_CREAT) [fault]",
        "s3-get@8 write(f, out)",
        "s3-get@8 write(f, out) [fault]",
        "s3-get@10 ftruncate(f, len(output))",
        "s3-get@10 ftruncate(f, len(output)) [fault]",
        "s3-get@12 close(f)",
        "s3-get@12 close(f) [fault]",
        "s3-get@15 close(f)",
        "s3-get@15 close(f) [fault]",
    ),
    "write-then-truncate/published-entry-stays-complete/all-N-all-L": (
        "write-then-truncate@0 f = open(entry, O_WRONLY|O_CREAT)",
        "write-then-truncate@0 f = open(entry, O_WRONLY|O_CREAT) [fault]",
        "write-then-truncate@2 write(f, entry)",
        "write-then-truncate@2 write(f, entry) [fault]",
        "write-then-truncate@4 ftruncate(f, len(entry))",
        "write-then-truncate@4 ftruncate(f, len(entry)) [fault]",
        "write-then-truncate@6 close(f)",
        "write-then-truncate@6 close(f) [fault]",
        "write-then-truncate@10 close(f)",
        "write-then-truncate@10 close(f) [fault]",
        "go-read-entry@0 f = open(entry, O_RDONLY)",
        "go-read-entry@2 buf = read(f, len(entry)+1)",
        "go-read-entry@3 close(f)",
        "go-read-entry@3 close(f) [fault]",
    ),
    "write-then-truncate/reader-after-publication-hits/all-N-all-L": (
        "write-then-truncate@0 f = open(entry, O_WRONLY|O_CREAT)",
        "write-then-truncate@0 f = open(entry, O_WRONLY|O_CREAT) [fault]",
        "write-then-truncate@2 write(f, entry)",
        "write-then-truncate@2 write(f, entry) [fault]",
        "write-then-truncate@4 ftruncate(f, len(entry))",
        "write-then-truncate@4 ftruncate(f, len(entry)) [fault]",
        "write-then-truncate@6 close(f)",
        "write-then-truncate@6 close(f) [fault]",
        "write-then-truncate@10 close(f)",
        "write-then-truncate@10 close(f) [fault]",
        "go-read-entry@0 f = open(entry, O_RDONLY)",
        "go-read-entry@2 buf = read(f, len(entry)+1)",
        "go-read-entry@3 close(f)",
        "go-read-entry@3 close(f) [fault]",
    ),
    "rename-into-place/published-entry-stays-complete/all-N-all-L": (
        "rename-into-place@0 f = open(entry.tmp.<pid>, O_WRONLY|O_CREAT|O_EXCL)",
        "rename-into-place@0 f = open(entry.tmp.<pid>, O_WRONLY|O_CREAT|O_EXCL) [fault]",
        "rename-into-place@2 write(f, entry)",
        "rename-into-place@2 write(f, entry) [fault]",
        "rename-into-place@4 close(f)",
        "rename-into-place@4 close(f) [fault]",
        "rename-into-place@6 rename(entry.tmp.<pid>, entry)",
        "rename-into-place@6 rename(entry.tmp.<pid>, entry) [fault]",
        "rename-into-place@9 close(f)",
        "rename-into-place@9 close(f) [fault]",
        "rename-into-place@10 unlink(entry.tmp.<pid>)",
        "go-read-entry@0 f = open(entry, O_RDONLY)",
        "go-read-entry@2 buf = read(f, len(entry)+1)",
        "go-read-entry@3 close(f)",
        "go-read-entry@3 close(f) [fault]",
    ),
    "rename-into-place/reader-after-publication-hits/all-N-all-L": (
        "rename-into-place@0 f = open(entry.tmp.<pid>, O_WRONLY|O_CREAT|O_EXCL)",
        "rename-into-place@0 f = open(entry.tmp.<pid>, O_WRONLY|O_CREAT|O_EXCL) [fault]",
        "rename-into-place@2 write(f, entry)",
        "rename-into-place@2 write(f, entry) [fault]",
        "rename-into-place@4 close(f)",
        "rename-into-place@4 close(f) [fault]",
        "rename-into-place@6 rename(entry.tmp.<pid>, entry)",
        "rename-into-place@6 rename(entry.tmp.<pid>, entry) [fault]",
        "rename-into-place@9 close(f)",
        "rename-into-place@9 close(f) [fault]",
        "rename-into-place@10 unlink(entry.tmp.<pid>)",
        "go-read-entry@0 f = open(entry, O_RDONLY)",
        "go-read-entry@2 buf = read(f, len(entry)+1)",
        "go-read-entry@3 close(f)",
        "go-read-entry@3 close(f) [fault]",
    ),
    "write-then-truncate/mmap-reader-never-faults/all-N-all-L": (
        "write-then-truncate@0 f = open(entry, O_WRONLY|O_CREAT)",
        "write-then-truncate@0 f = open(entry, O_WRONLY|O_CREAT) [fault]",
        "write-then-truncate@2 write(f, entry)",
        "write-then-truncate@2 write(f, entry) [fault]",
        "write-then-truncate@4 ftruncate(f, len(entry))",
        "write-then-truncate@4 ftruncate(f, len(entry)) [fault]",
        "write-then-truncate@6 close(f)",
        "write-then-truncate@6 close(f) [fault]",
        "write-then-truncate@10 close(f)",
        "write-then-truncate@10 close(f) [fault]",
        "mmap-read@0 f = open(entry, O_RDONLY)",
        "mmap-read@2 st = fstat(f)",
        "mmap-read@3 map = mmap(f, st)",
        "mmap-read@4 close(f)",
        "mmap-read@4 close(f) [fault]",
        "mmap-read@6 buf = map[:]",
    ),
    "rename-into-place/mmap-reader-never-faults/all-N-all-L": (
        "rename-into-place@0 f = open(entry.tmp.<pid>, O_WRONLY|O_CREAT|O_EXCL)",
        "rename-into-place@0 f = open(entry.tmp.<pid>, O_WRONLY|O_CREAT|O_EXCL) [fault]",
        "rename-into-place@2 write(f, entry)",
        "rename-into-place@2 write(f, entry) [fault]",
        "rename-into-place@4 close(f)",
        "rename-into-place@4 close(f) [fault]",
        "rename-into-place@6 rename(entry.tmp.<pid>, entry)",
        "rename-into-place@6 rename(entry.tmp.<pid>, entry) [fault]",
        "rename-into-place@9 close(f)",
        "rename-into-place@9 close(f) [fault]",
        "rename-into-place@10 unlink(entry.tmp.<pid>)",
        "mmap-read@0 f = open(entry, O_RDONLY)",
        "mmap-read@2 st = fstat(f)",
        "mmap-read@3 map = mmap(f, st)",
        "mmap-read@4 close(f)",
        "mmap-read@4 close(f) [fault]",
        "mmap-read@6 buf = map[:]",
    ),
}


def _consecution_cases(checks: list[str]) -> list[str]:
    return [k.removeprefix("consecution ") for k in checks if k.startswith("consecution ")]


def _witnessed_cases(checks: list[str]) -> list[str]:
    return [k.removeprefix("vacuity: ").removesuffix(": invariant and step satisfiable") for k in checks
            if k.startswith("vacuity: ") and k.endswith(": invariant and step satisfiable")]


def test_each_theorem_checks_exactly_its_pinned_consecution_cases(rows: dict[str, Row]) -> None:
    """Per unbounded theorem, the consecution queries are exactly the
    pinned cases (each once, every fault case among them), and each has
    exactly one non-vacuity witness."""
    proved = {n for n in rows if n.endswith("all-N-all-L")}
    assert proved == set(CONSECUTION_CASES)
    for name in sorted(proved):
        kinds = [c["check"] for c in rows[name]["checks"]]
        assert _consecution_cases(kinds) == list(CONSECUTION_CASES[name]), name
        assert sorted(_witnessed_cases(kinds)) == sorted(CONSECUTION_CASES[name]), name


def test_the_pinned_cases_follow_from_the_semantics() -> None:
    """The pinned table is not arbitrary: per theorem, one case per
    operation of the writer and of the reader (``spec.semantics.is_operation``)
    and a fault case exactly where ``spec.semantics.can_fault`` says an
    injected fault may strike - derived here without proofs/."""
    from spec import semantics as S

    by_name = {t.name: t for t in catalogue()}
    for name, pinned in CONSECUTION_CASES.items():
        t = by_name[name]
        want = []
        for prog in (t.protocol.program, t.reader):
            for pc, ins in enumerate(prog.code):
                if S.is_operation(ins):
                    want.append(f"{prog.name}@{pc} {ins}")
                    if S.can_fault(ins):
                        want.append(f"{prog.name}@{pc} {ins} [fault]")
        assert list(pinned) == want, name
    assert sum(c.endswith("[fault]") for cs in CONSECUTION_CASES.values() for c in cs) >= 6 * 5


def test_an_induction_that_forgets_the_fault_steps_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """The known-bad twin: an induction whose fault steps are dropped (no
    operation may fault) still proves the theorem - which is why the cases
    are pinned - and the pinned comparison names what is missing."""
    from proofs import induction

    name = "write-then-truncate/published-entry-stays-complete/all-N-all-L"
    t = find(name)
    monkeypatch.setattr(induction, "_may_fault", lambda sysm, ki, pc: False)
    res = prove(unbounded_system(t.protocol.program, t.reader), t.invariant, t.property)  # type: ignore[arg-type]
    got = _consecution_cases([c.name for c in res.checks])
    assert res.proved  # the broken induction passes on its own...
    missing = set(CONSECUTION_CASES[name]) - set(got)
    assert missing and all(m.endswith("[fault]") for m in missing)  # ...the pinned cases do not


def test_write_file_induction_genuinely_fails_then_bmc_finds_a_trace(rows: dict[str, Row]) -> None:
    for prop in (STAYS, NO_SIGBUS):
        r = rows[f"write-file/{prop}/bmc"]
        answers = {c["check"]: c["answer"] for c in r["checks"]}
        assert answers == {"unbounded induction attempt": "fails", "concrete consecution": "sat"}
        assert "O_TRUNC" in r["counterexample_to_induction"]
        assert r["counterexample"]["trace"] is not None


def test_each_needed_assumption_dropped_yields_a_counterexample(rows: dict[str, Row]) -> None:
    for name, r in rows.items():
        if name.endswith("all-N-all-L"):
            for text in r["assumptions"]:
                drops = [d for d in rows.values() if d["dropped"] == text and d["protocol"] == r["protocol"]
                         and d["property"] == r["property"]]
                assert len(drops) == 1, (name, text)
    assert rows[f"write-then-truncate/{STAYS}/drop-same-length"]["outcome"] == COUNTEREXAMPLE
    assert rows[f"write-then-truncate/{STAYS}/drop-same-bytes"]["outcome"] == COUNTEREXAMPLE


def _traces(rows: dict[str, Row]) -> list[tuple[str, Trace]]:
    """Every counterexample, as a trace over its theorem's System (the JSON
    trace, where the row has one, is the same trace)."""
    out = []
    for name, r in rows.items():
        cex = r["counterexample"]
        if cex is None:
            continue
        t = find(name)
        assert t.system is not None
        trace = Trace(t.system, tuple(TraceStep.from_json(x) for x in cex["steps"]), t.property.name)
        if cex["trace"] is not None:
            assert from_json(cex["trace"]) == trace, name
        out.append((name, trace))
    return out


def test_bmc_traces_replay_in_the_model_and_the_explorer_agrees(rows: dict[str, Row]) -> None:
    traces = _traces(rows)
    assert len(traces) == 26  # 20 of one machine, 5 of the remote tier, hypershift's partial output (the atlas)
    assert sum(r["counterexample"]["trace"] is not None for r in rows.values() if r["counterexample"]) >= 10
    for name, trace in traces:
        prop = get_property(trace.property)
        assert prop.check(trace.system, replay(trace)[-1]) is not None, name
        # Both are shortest: breadth-first and iterative deepening agree
        # (on systems written process by process too).
        ex = explore(trace.system, [prop])
        assert ex.verdict(prop) == "violated", name
        assert ex.violations[prop.name].depth == len(trace.steps), name


def test_bmc_traces_replay_on_real_files(rows: dict[str, Row], tmp_path: pathlib.Path) -> None:
    replay_mod = pytest.importorskip("reference.replay", reason="reference.replay (the OS replay) is not written yet")
    # The remote tier's traces make object-store requests, which the OS
    # interpreter refuses (test_s3_model.py): they replay in the model only.
    traces = [(n, t) for n, t in _traces(rows) if rows[n]["counterexample"]["trace"] is not None
              and OBJECTS not in t.system.features]
    for n, (name, trace) in enumerate(traces):
        snaps = replay_mod.replay_snapshots(trace, tmp_path / f"run{n}")
        real = [snap.files for snap in snaps]
        assert real == replay_mod.replay_trace(trace, tmp_path / f"again{n}")
        model = [files(w.fs) for w in replay(trace)[1:]]
        assert real == model, name
        first = trace.system.processes[0]
        if trace.property == STAYS.name:  # some published file is missing, short or torn
            payloads = dict(first.payloads)
            assert any(dict(real[-1]).get(p.name) != payloads[pl] for p, pl in first.program.publishes), name
        elif trace.property == NO_SIGBUS.name:  # the real reader dies of SIGBUS
            assert snaps[-1].procs[-1].status == Status.SIGBUS, name
        else:  # the real reader, begun after publication, misses
            reader = snaps[-1].procs[-1]
            assert (reader.began, reader.status) in ((Began.AFTER_PUBLICATION, Status.MISS),
                                                     (Began.AFTER_PUBLICATION, Status.SIGBUS)), (name, reader)


def test_the_solver_transition_is_the_model_s() -> None:
    wtt, gof = CATALOGUE["write-then-truncate"], CATALOGUE["go-output-file"]
    for system in (System.of(wtt, 2, 1, faults=1, entry_length=2), System.of(gof, 2, 0, faults=1, entry_length=2)):
        moves, bad = mismatches(system, max_states=25)
        assert moves > 40 and not bad, bad[:3]


# Every check the catalogue's programs never fail, one after the other:
# each call below is refused, and the program goes on regardless.
REFUSED = Program("refused-calls", Role.WRITER, (
    Open(ENTRY, O_WRONLY | O_CREAT),
    Write(Data("entry")),
    Ftruncate(Length(None, -1)),  # EINVAL: a negative length
    PWrite(Data("entry"), -1),  # EINVAL: a negative offset
    Fstat(),
    Mmap(),  # EACCES: mapping a write-only descriptor
    Read(),  # EBADF: reading a write-only descriptor
    Close(),
    Close(),  # EBADF: nothing to close
    Unlink(TEMP),  # ENOENT
    Rename(TEMP, ENTRY),  # ENOENT
    Return(Outcome.FAIL),
))


def test_the_solver_transition_is_the_model_s_on_every_refused_call() -> None:
    system = System((Process(REFUSED, (("entry", b"ab"),)),), faults=1)
    w, errnos = initial(system), set()
    while w.procs[0].status is Status.RUNNING:
        w = step(system, w, 0)
        errnos.add(w.procs[0].last)
    assert {F.EINVAL, F.EACCES, F.EBADF, F.ENOENT} <= errnos  # the model does refuse them
    moves, bad = mismatches(system)
    assert moves > 15 and not bad, bad[:3]


def test_a_broken_z3_domain_is_caught_by_conformance(monkeypatch: pytest.MonkeyPatch) -> None:
    write = symbolic.Z3Dom.write

    def write_loses_the_byte(self: symbolic.Z3Dom, ino: Any, at: Any, payload: str, first: Any, count: Any) -> None:
        data = self.fs.data
        write(self, ino, at, payload, first, count)
        self.fs = replace(self.fs, data=data)

    monkeypatch.setattr(symbolic.Z3Dom, "write", write_loses_the_byte)
    _, bad = mismatches(System.of(CATALOGUE["write-then-truncate"], 1, 0, entry_length=1), max_states=10)
    assert any(m.field.startswith("data[") for m in bad)


def test_a_check_the_z3_domain_skips_is_caught_by_conformance(monkeypatch: pytest.MonkeyPatch) -> None:
    check = symbolic.Z3Dom.check

    def no_eacces(self: symbolic.Z3Dom, cond: Any, errno: str, then: Any = None) -> None:
        if errno != F.EACCES:
            check(self, cond, errno, then)

    monkeypatch.setattr(symbolic.Z3Dom, "check", no_eacces)
    _, bad = mismatches(System((Process(REFUSED, (("entry", b"ab"),)),)))
    assert any(m.field.startswith("last[") for m in bad)


def test_a_non_inductive_invariant_fails_consecution() -> None:
    def weakened(v: invariants.View) -> invariants.Conjuncts:
        return [(n, c) for n, c in invariants.in_place_writer(v) if n != "writer-offset"]

    res = prove(unbounded_system(WRITE_THEN_TRUNCATE, GO_READ_ENTRY), weakened, STAYS, valid_entry=False)
    assert not res.proved and any(c.name.startswith("consecution") for c in res.failures())


def test_a_false_invariant_fails_initiation_and_vacuity() -> None:
    def false(v: invariants.View) -> invariants.Conjuncts:
        return [("false", z3.BoolVal(False))]

    sysm = unbounded_system(WRITE_THEN_TRUNCATE, GO_READ_ENTRY)
    assert [c.name for c in prove(sysm, false, STAYS).failures()] == ["initiation"]  # consecution is vacuously fine
    checks = vacuity(sysm, false, System.of(WRITE_THEN_TRUNCATE, 2, 1, faults=2, entry_length=2), SAMPLES)
    assert checks and all(not c.passed for c in checks)


def test_an_invariant_false_on_reachable_states_fails_vacuity() -> None:
    def entry_never_exists(v: invariants.View) -> invariants.Conjuncts:
        return invariants.in_place_writer(v) + [("no-entry", v.E == -1)]

    sysm = unbounded_system(WRITE_THEN_TRUNCATE, GO_READ_ENTRY)
    checks = vacuity(sysm, entry_never_exists, System.of(WRITE_THEN_TRUNCATE, 2, 1, faults=2, entry_length=2), SAMPLES)
    assert not any(c.answer == "missing" for c in checks)
    assert any(not c.passed for c in checks)


def test_unknown_and_unexpected_outcomes_fail_the_command(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    name = f"create-exclusive/{STAYS}/bmc"
    assert cli.main(["--theorem", name, "--json", "--jobs", "1"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["ok"] and out["theorems"][0]["outcome"] == COUNTEREXAMPLE

    real = cli.run_all

    def degrade(names: list[str], jobs: int, done_one: Any = None) -> list[Row]:
        return [{**r, "outcome": UNKNOWN, "as_expected": False} for r in real(names, 1)]

    monkeypatch.setattr(cli, "run_all", degrade)
    assert cli.main(["--theorem", name]) == 1
    assert "EXPECTED counterexample" in capsys.readouterr().out


def test_unknown_theorem_name_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--theorem", "no-such/theorem"]) == 2
    assert "unknown theorem" in capsys.readouterr().err
    with pytest.raises(KeyError):
        find("no-such/theorem")


def test_run_of_one_theorem_reports_a_trace_people_can_read() -> None:
    res = run(find(f"write-then-truncate/{STAYS}/drop-same-bytes"))
    assert res.outcome == COUNTEREXAMPLE and res.bmc is not None and res.bmc.steps
    assert "torn" in res.theorem.statement or "same length" in res.theorem.statement


def test_bmc_says_so_when_a_file_outgrows_its_byte_bound() -> None:
    """The encoding represents the bytes below the longest payload and one;
    a pwrite far past the end lands where nothing is represented.  "No
    violation" would be an under-checked answer, so BMC raises instead -
    and a writer that stays in bounds gets its answer."""
    from proofs.bmc import BoundTooSmall, search
    from spec import Process, Program, Role, System
    from spec.ops import ENTRY, O_CREAT, O_WRONLY, OUTPUT, Data, Open, Outcome, PWrite, Return, Write
    from spec.properties import STAYS

    def writer(offset: int) -> System:
        """Publishes the entry (STAYS holds), and also pwrites a scratch
        file at ``offset``."""
        prog = Program(f"pwrite-at-{offset}", Role.WRITER, (
            Open(ENTRY, O_WRONLY | O_CREAT), Write(Data("entry")), Open(OUTPUT, O_WRONLY | O_CREAT, "g"),
            PWrite(Data("entry"), offset, "g"), Return(Outcome.OK)), publishes=((ENTRY, "entry"),))
        return System((Process(prog, (("entry", b"ab"),)),))

    with pytest.raises(BoundTooSmall, match="longer than the 3 bytes"):
        search(writer(5), STAYS, depth=6)
    assert search(writer(0), STAYS, depth=6).outcome == "none"


# ------------------------------------------------------------ induction edges (found by the mutation run)


def test_induction_edge_a_proof_and_its_checks() -> None:
    """write-then-truncate's all-N proof passes; each check names what it
    asked about (no solver's reason for an answer that is not unknown);
    its HITS proof rests on the assumption that the entry's bytes are
    non-zero (the reader's validation), and fails without it; s3-put's
    proof keeps its two payloads (the record and the output) apart."""
    t = find("write-then-truncate/published-entry-stays-complete/all-N-all-L")
    res = prove(unbounded_system(t.protocol.program, t.reader), t.invariant, t.property)  # type: ignore[arg-type]
    assert res.proved and res.checks
    assert all(" (" not in c.detail for c in res.checks), [c.detail for c in res.checks if " (" in c.detail]
    hits = find("write-then-truncate/reader-after-publication-hits/all-N-all-L")
    sysm = unbounded_system(hits.protocol.program, hits.reader)
    assert prove(sysm, hits.invariant, hits.property).proved  # type: ignore[arg-type]
    assert not prove(sysm, hits.invariant, hits.property, valid_entry=False).proved  # type: ignore[arg-type]
    for name in ("s3-put/remote-record-names-complete-output/all-N-all-L", "s3-put/remote-hit-serves-complete-output/all-N-all-L"):
        assert run(find(name)).outcome == PROVED, name


def test_induction_edge_concrete_consecution_finds_and_describes_the_breaking_step() -> None:
    """For write-file the invariant that proves write-then-truncate is not
    inductive: the check says which process, at which operation, breaks
    which conjunct; for write-then-truncate it is inductive at that scope.
    Each check's seconds lie within the call's own time."""
    from time import perf_counter

    from proofs.induction import concrete_consecution

    for name, answer in (("write-file", "sat"), ("write-then-truncate", "unsat")):
        started = perf_counter()
        check, why = concrete_consecution(System.of(CATALOGUE[name], 2, 0, entry_length=1), invariants.in_place_writer)
        took = perf_counter() - started
        assert check.answer == answer and 0 <= check.seconds <= took, (check, took)
        if answer == "sat":
            assert why == check.detail and why.startswith("W") and "at `" in why and " breaks " in why, why
        else:
            assert why == "" and check.detail == "the invariant is inductive at this scope"


def test_induction_edge_vacuity_of_a_true_invariant_passes_and_counts_from_one() -> None:
    """Every vacuity check of write-then-truncate's real invariant passes
    (a state is found for every sample and every consecution case), and
    the samples are numbered from 1."""
    t = find("write-then-truncate/published-entry-stays-complete/all-N-all-L")
    sysm = unbounded_system(t.protocol.program, t.reader)
    checks = vacuity(sysm, t.invariant, System.of(WRITE_THEN_TRUNCATE, 2, 1, faults=2, entry_length=2), SAMPLES)  # type: ignore[arg-type]
    assert checks and all(c.passed for c in checks), [c for c in checks if not c.passed]
    assert checks[0].name.startswith("vacuity: sample 1 (")
