"""The explorer against the catalogue's declarations and against itself.

The declared verdicts live in spec/protocols.py and spec/check.py (MIXES);
the explorer computes the verdicts.  These tests fail when the two differ,
when a trace does not replay to its violation, when the symmetry reduction
changes a verdict, or when a property is violated by nothing (untested).
"""

from __future__ import annotations

import math

import pytest

from spec import CATALOGUE, SetupError, System, UnknownProtocol, explore
from spec.check import Result, default_scenarios, run
from spec.properties import PROPERTIES
from spec.trace import from_exploration, from_json, replay, to_json


def mix(*names: str, n: int = 3, readers: int = 1, reader: str = "go-read-entry", **bounds: object) -> System:
    """A system of catalogue writers (by name) and readers of ``reader``."""
    return System.of([CATALOGUE[x] for x in names], n, readers, CATALOGUE[reader], **bounds)  # type: ignore[arg-type]

RESULTS: list[Result] = run(default_scenarios())


def _id(r: Result) -> str:
    s = r.scenario.system.describe()
    return f"{'+'.join(s['protocols'])}/{s['reader']}/{r.scenario.property}/F{s['faults']}"


@pytest.mark.parametrize("result", RESULTS, ids=_id)
def test_verdict_is_the_declared_one(result: Result) -> None:
    assert result.verdict == result.scenario.expected, result.scenario.reason


@pytest.mark.parametrize("result", [r for r in RESULTS if r.trace], ids=_id)
def test_every_trace_replays_to_the_same_violation(result: Result) -> None:
    assert result.trace is not None
    worlds = replay(result.trace)
    system = result.trace.system
    prop = result.scenario.property
    assert prop.check(system, worlds[-1]) is not None
    # shortest: no earlier state on the path violates it
    assert all(prop.check(system, w) is None for w in worlds[:-1])
    # and the JSON form round-trips to the same steps
    assert from_json(to_json(result.trace)).steps == result.trace.steps


def test_every_property_is_violated_by_some_catalogue_entry() -> None:
    violated = {r.scenario.property.name for r in RESULTS if r.verdict == "violated"}
    assert violated == set(PROPERTIES)


def test_every_protocol_keeps_something_or_is_a_known_bad_twin() -> None:
    """Each writer appears in the matrix with at least one declared claim."""
    writers = {p.name for r in RESULTS for p in r.scenario.system.writer_programs()}
    assert writers == {p.name for p in CATALOGUE.writers()}


def test_issue_headlines() -> None:
    """The seed's story, verdict by verdict."""
    def v(protocols: tuple[str, ...], prop: str, faults: int, writers: int = 2, readers: int = 0, reader: str = "go-read-entry") -> str:
        return explore(mix(*protocols, n=writers, readers=readers, reader=reader, faults=faults), [prop]).verdict(prop)

    stays = "published-entry-stays-complete"
    assert v(("write-file",), stays, 0) == "violated"
    assert v(("go-index-entry",), stays, 0) == "holds"
    assert v(("go-index-entry",), stays, 1) == "violated"
    assert v(("write-then-truncate",), stays, 1) == "holds"
    assert v(("create-exclusive",), stays, 0) == "violated"
    assert v(("go-output-file",), stays, 1) == "violated"
    assert v(("write-file", "write-then-truncate"), stays, 0) == "violated"


def test_write_file_counterexample_is_two_writers_and_shortest() -> None:
    ex = explore(mix("write-file", n=2, readers=0), ["published-entry-stays-complete"])
    trace = from_exploration(ex, "published-entry-stays-complete")
    assert {s.process for s in trace.steps} == {"W1", "W2"}
    assert len(trace.steps) == 5
    assert replay(trace)[-1].fs.file("entry") != b"ab"


@pytest.mark.parametrize("n", [2, 3, 5, 8])
def test_symmetry_counts_writers_per_local_state(n: int) -> None:
    """write-then-truncate, L=4, no faults or readers: a writer has 8 local
    states (open, 4 bytes, truncate, close, done) and the file's content is
    fixed by them, so the reduced state count is the number of multisets of
    N local states: C(N+7, 7)."""
    ex = explore(mix("write-then-truncate", n=n, readers=0, entry_length=4), stop_when_all_violated=False)
    assert ex.states == math.comb(n + 7, 7)


@pytest.mark.parametrize("system", [
    mix("write-file", faults=1),
    mix("go-index-entry", faults=1),
    mix("rename-into-place", reader="mmap-read", faults=1),
    mix("write-file", "write-then-truncate", faults=1),
    mix("go-output-file", n=2, faults=1, granularity="write", entry_length=3),
    mix("rename-into-place-fsync", n=2, faults=1, crashes=1),
    mix("rename-into-place", readers=0, crashes=1),
], ids=lambda s: "+".join(p.name for p in s.writer_programs()) + ("+crash" if s.crashes else ""))
def test_symmetry_reduction_keeps_verdicts_and_depths(system: System) -> None:
    a = explore(system, stop_when_all_violated=False)
    b = explore(system, stop_when_all_violated=False, symmetry=False)
    assert b.states > a.states
    assert {p: a.verdict(p) for p in a.properties} == {p: b.verdict(p) for p in b.properties}
    assert {p: v.depth for p, v in a.violations.items()} == {p: v.depth for p, v in b.violations.items()}


def test_only_fsync_before_rename_survives_a_crash() -> None:
    prop = "published-entry-survives-crash"
    def v(name: str) -> str:
        return explore(mix(name, n=2, readers=0, faults=1, crashes=1), [prop]).verdict(prop)

    assert v("rename-into-place-fsync") == "holds"
    assert v("rename-into-place") == "violated"
    assert v("write-then-truncate") == "violated"
    # and the crash-free properties are not judged on post-crash states
    ex = explore(mix("write-then-truncate", n=2, readers=0, faults=1, crashes=1), ["published-entry-stays-complete"])
    assert ex.verdict("published-entry-stays-complete") == "holds"


def test_write_granularity_finds_the_same_bugs() -> None:
    ex = explore(mix("write-file", n=2, granularity="write"))
    assert ex.verdict("published-entry-stays-complete") == "violated"
    ex = explore(mix("write-then-truncate", faults=1, granularity="write", entry_length=3))
    assert not ex.violations


@pytest.mark.parametrize("kwargs, message", [
    (dict(writers=CATALOGUE["go-read-entry"]), "is a reader"),
    (dict(reader=CATALOGUE["write-file"]), "is a writer"),
    (dict(entry_length=0), "entry length"),
    (dict(n=0), "writers >= 1"),
    (dict(granularity="page"), "granularity"),
    (dict(faults=-1), "faults"),
    (dict(crashes=2), "crashes"),
])
def test_bad_systems_are_refused_clearly(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {"writers": CATALOGUE["write-then-truncate"], **kwargs}
    with pytest.raises(SetupError, match=message):
        System.of(**args)  # type: ignore[arg-type]


def test_a_missing_payload_is_refused_clearly() -> None:
    from spec import Process

    with pytest.raises(SetupError, match="no payload 'entry'"):
        System((Process(CATALOGUE["write-then-truncate"].program, (("output", b"ab"),)),))


def test_unknown_protocol_names_the_known_ones() -> None:
    with pytest.raises(UnknownProtocol, match="write-then-truncate"):
        CATALOGUE["no-such"]
