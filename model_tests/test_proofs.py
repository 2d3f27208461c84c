"""The Z3 proofs: ``idemwrite prove`` as a whole, each counterexample
replayed in the model, the explorer and on real files, the solver's
transition against ``spec.machine``, and known-bad twins that each check
must catch (a broken invariant, a false invariant, a broken encoding).
"""

from __future__ import annotations

import json
import os
import pathlib
from dataclasses import replace
from typing import Any

import pytest
import z3  # type: ignore[import-untyped]

from proofs import cli, invariants, symbolic
from proofs.conformance import mismatches
from proofs.induction import prove, unbounded_system, vacuity
from proofs.props import HITS, NO_SIGBUS, STAYS
from proofs.theorems import COUNTEREXAMPLE, PROVED, SAMPLES, UNKNOWN, catalogue, find, run
from spec.explore import Setup, explore
from spec.properties import get_property
from spec.explore import build
from spec.ops import Write
from spec.trace import files, from_json, replay

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
        assert sum(k.startswith("consecution") for k in kinds) >= 8
        assert sum(k.startswith("vacuity") and k.endswith("has an enabled step") for k in kinds) == len(SAMPLES)
        # every consecution case has its own non-vacuity witness
        steps = {k.removeprefix("consecution ") for k in kinds if k.startswith("consecution")}
        witnessed = {k.removeprefix("vacuity: ").removesuffix(": invariant and step satisfiable") for k in kinds}
        assert steps <= witnessed, steps - witnessed
        assert all(c["answer"] == c["expect"] for c in r["checks"]), name


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


def _setup_traces(rows: dict[str, Row]) -> list[tuple[str, Any]]:
    out = []
    for name, r in rows.items():
        cex = r["counterexample"]
        if cex is not None and cex["trace"] is not None:
            out.append((name, from_json(cex["trace"])))
    return out


def test_bmc_traces_replay_in_the_model_and_the_explorer_agrees(rows: dict[str, Row]) -> None:
    traces = _setup_traces(rows)
    assert len(traces) >= 10
    for name, trace in traces:
        cfg = build(trace.setup).config
        assert get_property(trace.property).check(cfg, replay(trace)[-1]) is not None, name
        if name.endswith("/bmc"):
            # Both are shortest: breadth-first and iterative deepening agree.
            ex = explore(trace.setup, [trace.property])
            assert ex.verdict(trace.property) == "violated", name
            assert ex.violations[trace.property].depth == len(trace.steps), name


def test_bmc_traces_replay_on_real_files(rows: dict[str, Row], tmp_path: pathlib.Path) -> None:
    replay_mod = pytest.importorskip("reference.replay", reason="reference.replay (the OS replay) is not written yet")
    for n, (name, trace) in enumerate(_setup_traces(rows)):
        snaps = replay_mod.replay_snapshots(trace, tmp_path / f"run{n}")
        real = [snap.files for snap in snaps]
        assert real == replay_mod.replay_trace(trace, tmp_path / f"again{n}")
        model = [files(w.fs) for w in replay(trace)[1:]]
        assert real == model, name
        path = "output" if trace.setup.protocols[0] == "go-output-file" else "entry"
        last = dict(real[-1]).get(path)
        full = dict(trace.setup.payloads())[path]
        if trace.property == STAYS:
            assert last is None or len(last) < len(full) or last != full, name  # missing, short or torn
        elif trace.property == NO_SIGBUS:  # the real reader dies of SIGBUS
            assert snaps[-1].procs[-1].status == "sigbus", name
        else:  # the real reader, begun after publication, misses
            reader = snaps[-1].procs[-1]
            assert (reader.began, reader.status) in ((2, "miss"), (2, "sigbus")), (name, reader)


def test_the_solver_transition_is_the_model_s() -> None:
    for setup in (Setup(("write-then-truncate",), writers=2, readers=1, faults=1, entry_length=2),
                  Setup(("go-output-file",), writers=2, readers=0, faults=1, entry_length=2)):
        moves, bad = mismatches(setup, max_states=25)
        assert moves > 40 and not bad, bad[:3]


def test_a_broken_encoding_is_caught_by_conformance(monkeypatch: pytest.MonkeyPatch) -> None:
    write = symbolic.HANDLERS[Write]

    def write_loses_the_byte(ins, k, loc, fs, fault, sysm):  # type: ignore[no-untyped-def]
        loc2, fs2, done = write(ins, k, loc, fs, fault, sysm)
        return loc2, replace(fs2, data=fs.data), done

    monkeypatch.setitem(symbolic.HANDLERS, Write, write_loses_the_byte)
    _, bad = mismatches(Setup(("write-then-truncate",), writers=1, readers=0, entry_length=1), max_states=10)
    assert any(m.field.startswith("data[") for m in bad)


def test_a_non_inductive_invariant_fails_consecution() -> None:
    def weakened(v: invariants.View) -> invariants.Conjuncts:
        return [(n, c) for n, c in invariants.in_place_writer(v) if n != "writer-offset"]

    res = prove(unbounded_system("write-then-truncate", "go-read-entry"), weakened, STAYS, valid_entry=False)
    assert not res.proved and any(c.name.startswith("consecution") for c in res.failures())


def test_a_false_invariant_fails_initiation_and_vacuity() -> None:
    def false(v: invariants.View) -> invariants.Conjuncts:
        return [("false", z3.BoolVal(False))]

    sysm = unbounded_system("write-then-truncate", "go-read-entry")
    assert [c.name for c in prove(sysm, false, STAYS).failures()] == ["initiation"]  # consecution is vacuously fine
    checks = vacuity(sysm, false, Setup(("write-then-truncate",), writers=2, readers=1, faults=2, entry_length=2), SAMPLES)
    assert checks and all(not c.passed for c in checks)


def test_an_invariant_false_on_reachable_states_fails_vacuity() -> None:
    def entry_never_exists(v: invariants.View) -> invariants.Conjuncts:
        return invariants.in_place_writer(v) + [("no-entry", v.E == -1)]

    sysm = unbounded_system("write-then-truncate", "go-read-entry")
    checks = vacuity(sysm, entry_never_exists, Setup(("write-then-truncate",), writers=2, readers=1, faults=2, entry_length=2), SAMPLES)
    assert not any(c.answer == "missing" for c in checks)
    assert any(not c.passed for c in checks)


def test_unknown_and_unexpected_outcomes_fail_the_command(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    name = f"create-exclusive/{STAYS}/bmc"
    assert cli.main(["--theorem", name, "--json", "--jobs", "1"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["ok"] and out["theorems"][0]["outcome"] == COUNTEREXAMPLE

    real = cli.run_all

    def degrade(names: list[str], jobs: int) -> list[Row]:
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
