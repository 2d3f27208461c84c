"""The verdict matrix: catalogue x properties x fault budgets, as data.

A :class:`Scenario` is one question with a declared answer: "does this
system (a mix of writer protocols, read by some reader) keep this property
at fault budget F?", expected ``holds`` or ``violated`` with a reason (from
the protocol's claims, or from :data:`MIXES` for mixes and reader twins).
Scenarios that share a system are answered by one exploration.  Nothing
here prints or reads a clock: the CLI renders and times the results.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable

from .explore import explore
from .ops import Program
from .programs import (
    GO_INDEX_ENTRY,
    GO_READ_ENTRY,
    READ_UNVALIDATED,
    S3_GET,
    S3_GET_OVERWRITE,
    S3_GET_UNCHECKED,
    S3_PUT,
    WRITE_FILE,
    WRITE_THEN_TRUNCATE,
)
from .properties import PROPERTIES, REMOTE_HIT, STAYS, NO_CORRUPT, Property
from .protocols import CATALOGUE, Catalogue, Claim
from .semantics import OBJECTS
from .system import System
from .trace import Trace, from_exploration, system_json


@dataclass(frozen=True)
class Scenario:
    """One cell of the matrix: a system, a property, the declared answer."""

    system: System
    property: Property
    expected: str | None
    reason: str = ""


@dataclass(frozen=True)
class Mix:
    """A declared expectation for a mix of writers or a reader twin;
    ``n`` and ``readers``, when given, replace the matrix's counts (two
    getters on one machine, say)."""

    writers: tuple[Program, ...]
    reader: Program
    claim: Claim
    n: int | None = None
    readers: int | None = None


MIXES: tuple[Mix, ...] = (
    Mix((WRITE_FILE,), READ_UNVALIDATED,
        Claim(NO_CORRUPT, -1, "without validation a reader accepts the empty or torn entry")),
    Mix((WRITE_FILE, GO_INDEX_ENTRY), GO_READ_ENTRY,
        Claim(STAYS, -1, "two Go versions sharing a GOCACHE: the old one's O_TRUNC empties the new one's entry")),
    Mix((WRITE_FILE, WRITE_THEN_TRUNCATE), GO_READ_ENTRY,
        Claim(STAYS, -1, "one O_TRUNC writer is enough to undo a safe writer's publication")),
    # The remote tier's getters: one machine putting, and on another one or
    # two getters of the same entry into one local directory.
    Mix((S3_PUT,), S3_GET_UNCHECKED,
        Claim(REMOTE_HIT, 0, "a body cut short is written into the local directory and served as a hit"), n=1),
    Mix((S3_PUT,), S3_GET,
        Claim(REMOTE_HIT, None, "two getters write the same checked bytes, and neither ever shortens the file"),
        n=1, readers=2),
    Mix((S3_PUT,), S3_GET_OVERWRITE,
        Claim(REMOTE_HIT, -1, "a second getter's O_TRUNC empties the file a first getter serves"), n=1, readers=2),
)


@dataclass(frozen=True)
class Result:
    """The answer to one scenario, with the exploration's figures
    (``seconds`` is filled in by a caller that timed the run)."""

    scenario: Scenario
    verdict: str
    states: int
    transitions: int
    trace: Trace | None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """The verdict is the declared one (or nothing was declared)."""
        return self.scenario.expected in (None, self.verdict)

    def to_json(self) -> dict[str, Any]:
        from .trace import to_json as trace_json

        return {
            **system_json(self.scenario.system),
            "property": self.scenario.property.name,
            "verdict": self.verdict,
            "expected": self.scenario.expected,
            "reason": self.scenario.reason,
            "states": self.states,
            "transitions": self.transitions,
            "seconds": round(self.seconds, 3),
            "trace": None if self.trace is None else trace_json(self.trace),
        }


def default_scenarios(writers: int = 3, readers: int = 1, entry_length: int = 2, granularity: str = "byte",
                      fault_budgets: Iterable[int] = (0, 1), catalogue: Catalogue = CATALOGUE) -> list[Scenario]:
    """Every claim of every writer in the catalogue, and every mix, at each
    fault budget: what ``idemwrite check`` answers with no arguments."""
    out: list[Scenario] = []
    for f in fault_budgets:
        for proto in catalogue.writers():
            for c in proto.claims:
                s = System.of(proto, proto.writer_count(writers), readers, proto.reader_for(c.property), faults=f,
                              entry_length=entry_length, granularity=granularity, crashes=int(c.property.after_crash),
                              variants=proto.variants)
                out.append(Scenario(s, c.property, c.expected(f), c.reason))
        for m in MIXES:
            n = max(writers if m.n is None else m.n, len(m.writers))
            s = System.of(m.writers, n, readers if m.readers is None else m.readers, m.reader, faults=f,
                          entry_length=entry_length, granularity=granularity)
            out.append(Scenario(s, m.claim.property, m.claim.expected(f), m.claim.reason))
    return out


def declared(system: System, prop: Property, catalogue: Catalogue = CATALOGUE) -> tuple[str | None, str]:
    """The declared answer for a system, if the catalogue has one: a mix's,
    or the claim of its one writer protocol about a property observed by
    the system's reader."""
    writers, readers = system.writer_programs(), system.reader_programs()
    reader = readers[0] if readers else None
    for m in MIXES:
        if m.writers == writers and m.reader == reader and m.claim.property == prop:
            return m.claim.expected(system.faults), m.claim.reason
    if len(writers) == 1:
        proto = next((p for p in catalogue if p.program == writers[0]), None)
        c = proto.claim(prop) if proto is not None else None
        if proto is not None and c is not None and (reader is None or proto.reader_for(prop) == reader):
            return c.expected(system.faults), c.reason
    return None, ""


def applicable(system: System, catalogue: Catalogue = CATALOGUE) -> list[Property]:
    """Properties worth checking for a system: the claimed ones, or else
    every property whose needs the system meets."""
    crashes = bool(system.crashes)
    claimed = [p for p in PROPERTIES.values() if declared(system, p, catalogue)[0] is not None and p.after_crash == crashes]
    if claimed:
        return claimed
    published = {path.name for prog in system.writer_programs() for path, _ in prog.publishes}
    readers = system.reader_programs()
    out = []
    for p in PROPERTIES.values():
        if p.after_crash != crashes or (p.needs_reader and not readers):
            continue
        if p.needs_objects and OBJECTS not in system.features:
            continue
        if p.observed_by is not None and p.observed_by not in readers:
            continue
        if not set(p.needs_paths) <= published:
            continue
        out.append(p)
    return out


def groups(scenarios: list[Scenario]) -> dict[System, list[Scenario]]:
    """Scenarios by system: each system is explored once."""
    out: dict[System, list[Scenario]] = {}
    for s in scenarios:
        out.setdefault(s.system, []).append(s)
    return out


def answer(system: System, group: list[Scenario], progress: Callable[[int, int], None] | None = None) -> list[Result]:
    """Explore ``system`` once and answer every scenario of ``group``
    (``progress`` as for :func:`spec.explore.explore`)."""
    ex = explore(system, [s.property for s in group], progress=progress)
    return [Result(s, ex.verdict(s.property), ex.states, ex.transitions,
                   from_exploration(ex, s.property) if s.property.name in ex.violations else None)
            for s in group]


def run(scenarios: list[Scenario]) -> list[Result]:
    """Answer every scenario, exploring each distinct system once."""
    answers: dict[tuple[System, str], Result] = {}
    for system, group in groups(scenarios).items():
        for r in answer(system, group):
            answers[(system, r.scenario.property.name)] = r
    return [answers[(s.system, s.property.name)] for s in scenarios]
