"""The verdict matrix: catalogue × properties × fault budgets, as data.

A :class:`Scenario` is one question with a declared answer: "does this mix
of writer protocols, read by this reader, keep this property at fault budget
F?", expected ``holds`` or ``violated`` with a reason (from the protocol's
claims, or from :data:`MIXES` for mixes and reader twins).  Scenarios that
share a setup are answered by one exploration.  Nothing here prints; the CLI
renders the results.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Iterable

from .explore import Setup, explore
from .properties import get_property
from .protocols import CATALOGUE, INDEX_OUTPUT, NO_CORRUPT, NO_SIGBUS, STAYS, SURVIVES, WRITERS, Claim, protocol
from .trace import Trace, from_exploration, setup_json


@dataclass(frozen=True)
class Scenario:
    """One cell of the matrix: a setup, a property, the declared answer."""

    setup: Setup
    property: str
    expected: str | None
    reason: str = ""


@dataclass(frozen=True)
class Mix:
    """A declared expectation for a mix of writers or a reader twin."""

    protocols: tuple[str, ...]
    reader: str
    claim: Claim


MIXES: tuple[Mix, ...] = (
    Mix(("write-file",), "read-unvalidated",
        Claim(NO_CORRUPT, -1, "without validation a reader accepts the empty or torn entry")),
    Mix(("write-file", "go-index-entry"), "go-read-entry",
        Claim(STAYS, -1, "two Go versions sharing a GOCACHE: the old one's O_TRUNC empties the new one's entry")),
    Mix(("write-file", "write-then-truncate"), "go-read-entry",
        Claim(STAYS, -1, "one O_TRUNC writer is enough to undo a safe writer's publication")),
)


@dataclass
class Result:
    """The answer to one scenario, with the exploration's figures."""

    scenario: Scenario
    verdict: str
    states: int
    transitions: int
    seconds: float
    trace: Trace | None

    @property
    def ok(self) -> bool:
        """The verdict is the declared one (or nothing was declared)."""
        return self.scenario.expected in (None, self.verdict)

    def to_json(self) -> dict[str, Any]:
        from .trace import to_json as trace_json

        return {
            **setup_json(self.scenario.setup),
            "property": self.scenario.property,
            "verdict": self.verdict,
            "expected": self.scenario.expected,
            "reason": self.scenario.reason,
            "states": self.states,
            "transitions": self.transitions,
            "seconds": round(self.seconds, 3),
            "trace": None if self.trace is None else trace_json(self.trace),
        }


def reader_for(proto: str, prop: str) -> str:
    """The reader that observes ``prop`` for writer ``proto``."""
    return "mmap-read" if prop == NO_SIGBUS else protocol(proto).reader


def default_scenarios(writers: int = 3, readers: int = 1, entry_length: int = 2,
                      granularity: str = "byte", fault_budgets: Iterable[int] = (0, 1)) -> list[Scenario]:
    """Every claim of every writer in the catalogue, and every mix, at each
    fault budget: what ``idemwrite check`` answers with no arguments."""
    out: list[Scenario] = []
    for f in fault_budgets:
        for name in WRITERS:
            for c in CATALOGUE[name].claims:
                crashes = 1 if c.property == SURVIVES else 0
                s = Setup((name,), writers, readers, reader_for(name, c.property), f, entry_length, granularity, crashes)
                out.append(Scenario(s, c.property, c.expected(f), c.reason))
        for m in MIXES:
            s = Setup(m.protocols, max(writers, len(m.protocols)), readers, m.reader, f, entry_length, granularity)
            out.append(Scenario(s, m.claim.property, m.claim.expected(f), m.claim.reason))
    return out


def declared(setup: Setup, prop: str) -> tuple[str | None, str]:
    """The declared answer for an ad-hoc setup, if the catalogue has one."""
    for m in MIXES:
        if m.protocols == setup.protocols and m.reader == setup.reader and m.claim.property == prop:
            return m.claim.expected(setup.faults), m.claim.reason
    if len(setup.protocols) == 1:
        c = protocol(setup.protocols[0]).claim(prop)
        if c is not None and reader_for(setup.protocols[0], prop) == setup.reader:
            return c.expected(setup.faults), c.reason
    return None, ""


def applicable(setup: Setup) -> list[str]:
    """Properties worth checking for an ad-hoc setup: the claimed ones, or
    else every property whose needs the setup meets."""
    claimed = [p for p in _all_properties() if declared(setup, p)[0] is not None and get_property(p).after_crash == bool(setup.crashes)]
    if claimed:
        return claimed
    publishes = {path.name for n in setup.protocols for path, _ in protocol(n).program.publishes}
    out = []
    for p in _all_properties():
        prop = get_property(p)
        if prop.needs_reader and setup.readers == 0:
            continue
        if prop.after_crash != bool(setup.crashes):
            continue
        if p == NO_SIGBUS and setup.reader != "mmap-read":
            continue
        if p == INDEX_OUTPUT and not {"entry", "output"} <= publishes:
            continue
        out.append(p)
    return out


def _all_properties() -> list[str]:
    from .properties import PROPERTIES

    return list(PROPERTIES)


def run(scenarios: list[Scenario]) -> list[Result]:
    """Answer every scenario, exploring each distinct setup once."""
    groups: dict[Setup, list[Scenario]] = {}
    for s in scenarios:
        groups.setdefault(s.setup, []).append(s)
    answers: dict[tuple[Setup, str], Result] = {}
    for setup, group in groups.items():
        started = time.perf_counter()
        ex = explore(setup, [s.property for s in group])
        seconds = time.perf_counter() - started
        for s in group:
            trace = from_exploration(ex, s.property) if s.property in ex.violations else None
            answers[(setup, s.property)] = Result(s, ex.verdict(s.property), ex.states, ex.transitions, seconds, trace)
    return [answers[(s.setup, s.property)] for s in scenarios]
