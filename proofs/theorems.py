"""The theorems: what ``idemwrite prove`` proves or refutes, and how.

Naming scheme: ``<protocol>/<property>/<scope>``, where scope is
``all-N-all-L`` (inductive proof for any number of writers and readers
and any entry length), ``bmc`` (bounded model checking of a catalogue
claim) or ``drop-<assumption>`` (the same question with one assumption of
an unbounded theorem taken away, by bounded model checking).

Every theorem declares the outcome it expects: from the catalogue's
``Claim`` where the catalogue speaks (``holds`` at every fault budget ->
``proved``, ``violated`` at the budget used -> ``counterexample``), and from
the theorem's statement for the dropped assumptions (an assumption that is
needed must yield a counterexample; one that turns out not to be needed is
declared so, and checked over every interleaving of a small scope).  The
outcome itself is always computed.
"""

from __future__ import annotations

import builtins
import time
from dataclasses import dataclass, field
from typing import Callable

from spec.explore import ENTRY_BYTES, OUTPUT_BYTES, Setup
from spec.machine import World, published
from spec.ops import Chtimes, Goto, If, PWrite, Return, Write
from spec.protocols import protocol
from spec.trace import Trace, TraceStep

from . import invariants as inv
from .bmc import BmcResult, Scenario, search
from .induction import Check, concrete_consecution, prove, unbounded_system, vacuity
from .props import HITS, NO_SIGBUS, STAYS
from .small_scope import search_all

READER = "go-read-entry"
MMAP_READER = "mmap-read"
# The reader each property is about (None: the property needs no reader).
READER_OF: dict[str, str | None] = {STAYS: READER, HITS: READER, NO_SIGBUS: MMAP_READER}
PROVED, COUNTEREXAMPLE, UNKNOWN = "proved", "counterexample", "unknown"

# The assumptions an unbounded theorem may rest on.
SAME_LENGTH = "same-length"
SAME_BYTES = "same-bytes"
ONE_PROTOCOL = "one-protocol"
NO_NUL = "no-nul"
ASSUMPTION_TEXT = {
    SAME_LENGTH: "every writer (and the reader) means an entry of the same length L",
    SAME_BYTES: "every writer writes the same bytes",
    ONE_PROTOCOL: "no process writes the entry with another protocol",
    NO_NUL: "the entry has no zero byte (the reader's own validation accepts it)",
}


@dataclass(frozen=True)
class Theorem:
    """One named claim and the way to settle it.

    ``invariant``: prove by induction (unbounded); ``scenario``/``depth``:
    search for a counterexample by BMC (after a failed induction, or alone).
    ``exhaustive``: the depth covers every complete run of the scenario, so
    "no counterexample" is a proof for that scope.
    """

    name: str
    protocol: str
    property: str
    statement: str
    expect: str
    assumptions: tuple[str, ...] = ()
    invariant: inv.Invariant | None = None
    vacuity_setup: Setup | None = None
    scenario: Callable[[], Scenario] | None = None
    depth: int = 0
    exhaustive: bool = False
    dropped: str | None = None
    reader: str = READER

    @builtins.property  # the field ``property`` shadows the builtin here
    def scope(self) -> str:
        if self.invariant is not None and self.scenario is None:
            return "all N, all L"
        assert self.scenario is not None
        scn = self.scenario()
        lens = sorted({len(b) for _, pls in scn.procs for n, b in pls if n == "entry"})
        w = sum(1 for n in scn.names if n.startswith("W"))
        r = len(scn.names) - w
        what = "every run" if self.exhaustive else f"depth <= {self.depth}"
        return f"N = {w}+{r}R, L in {lens}, F = {scn.faults}, {what}"


@dataclass
class Result:
    """A theorem's computed outcome, with everything that backs it."""

    theorem: Theorem
    outcome: str
    seconds: float
    checks: list[Check] = field(default_factory=list)
    bmc: BmcResult | None = None
    cti: str = ""
    note: str = ""

    @property
    def as_expected(self) -> bool:
        return self.outcome == self.theorem.expect

    @property
    def trace(self) -> Trace | None:
        return None if self.bmc is None else self.bmc.trace()

    @property
    def steps(self) -> tuple[TraceStep, ...] | None:
        return None if self.bmc is None else self.bmc.steps


# ------------------------------------------------------------ scenarios


def _payloads(entry: bytes) -> tuple[tuple[str, bytes], ...]:
    return (("entry", entry), ("output", OUTPUT_BYTES[:len(entry)]))


def custom(writers: list[tuple[str, bytes]], reader_entry: bytes | None, faults: int = 0, reader: str = READER) -> Scenario:
    """Writers with payloads of their own (which Setup cannot express),
    and optionally one reader that expects ``reader_entry``."""
    procs = [(name, _payloads(entry)) for name, entry in writers]
    names = [f"W{i + 1}" for i in range(len(writers))]
    if reader_entry is not None:
        procs.append((reader, _payloads(reader_entry)))
        names.append("R1")
    return Scenario(tuple(procs), faults, tuple(names))


def from_setup(**kw: object) -> Callable[[], Scenario]:
    return lambda: Scenario.of_setup(Setup(**kw))  # type: ignore[arg-type]


def _max_steps(scn: Scenario) -> int:
    """Every process's longest run, in steps, summed: a BMC depth at which
    every run of the scenario has ended (programs only jump forward).  A
    write takes one step per byte (one for an empty write); branches,
    jumps, chtimes and returns take none (they are folded into the step
    before them)."""
    total = 0
    for name, pls in scn.procs:
        prog = protocol(name).program
        lens = dict(pls)
        longest = [0] * (len(prog.code) + 1)
        for pc in range(len(prog.code) - 1, -1, -1):
            ins = prog.code[pc]
            if isinstance(ins, Return):
                continue
            if isinstance(ins, Goto):
                longest[pc] = longest[prog.targets[pc]]
            elif isinstance(ins, If):
                longest[pc] = max(longest[prog.targets[pc]], longest[pc + 1])
            elif isinstance(ins, Chtimes):
                longest[pc] = longest[pc + 1]
            elif isinstance(ins, (Write, PWrite)):
                longest[pc] = max(1, len(lens[ins.data.payload][ins.data.start:ins.data.stop])) + longest[pc + 1]
            else:
                longest[pc] = 1 + longest[pc + 1]
        total += longest[0]
    return total


# ------------------------------------------------------------ the catalogue of theorems

A, B, X, Z = ENTRY_BYTES[:1], ENTRY_BYTES[:2], b"xy", b"a\x00"
LONG = ENTRY_BYTES[:3]


def _late_reader(w: World) -> bool:
    return published(w) and any(p.began == 2 and p.status == "run" for p in w.procs)


def _mid_write_after_publication(w: World) -> bool:
    return published(w) and any(p.progress > 0 for p in w.procs)


def _a_writer_failed(w: World) -> bool:
    return any(p.status == "fail" for p in w.procs)


SAMPLES: list[Callable[[World], bool]] = [_late_reader, _mid_write_after_publication, _a_writer_failed]


def _claim_expect(proto: str, prop: str, faults: int | None) -> str:
    claim = protocol(proto).claim(prop)
    assert claim is not None, f"{proto} makes no claim about {prop}"
    if faults is None:
        return PROVED if claim.holds_up_to is None else COUNTEREXAMPLE
    return PROVED if claim.expected(faults) == "holds" else COUNTEREXAMPLE


def _unbounded(proto: str, prop: str, invariant: inv.Invariant, statement: str) -> Theorem:
    """The proof's assumptions: one payload for every process (the
    encoding gives all kinds the same L and bytes), only ``proto`` writers,
    and for the reader property an entry the reader's validation accepts."""
    used = (SAME_LENGTH, SAME_BYTES, ONE_PROTOCOL) + ((NO_NUL,) if prop == HITS else ())
    reader = READER_OF[prop] or READER
    return Theorem(f"{proto}/{prop}/all-N-all-L", proto, prop, statement, _claim_expect(proto, prop, None), used,
                   invariant, Setup((proto,), writers=2, readers=1, reader=reader, faults=2, entry_length=2), reader=reader)


def _bmc(proto: str, prop: str, faults: int, length: int, depth: int, statement: str, invariant: inv.Invariant | None = None) -> Theorem:
    readers = 0 if prop == STAYS else 1
    return Theorem(f"{proto}/{prop}/bmc", proto, prop, statement, _claim_expect(proto, prop, faults), (), invariant, None,
                   from_setup(protocols=(proto,), writers=2, readers=readers, reader=READER_OF[prop], faults=faults, entry_length=length),
                   depth, reader=READER_OF[prop] or READER)


def _drop(proto: str, prop: str, dropped: str, expect: str, scenario: Callable[[], Scenario], statement: str) -> Theorem:
    t = Theorem(f"{proto}/{prop}/drop-{dropped}", proto, prop, statement, expect, (), None, None, scenario, 0, True, dropped)
    object.__setattr__(t, "depth", _max_steps(scenario()))
    return t


def _drops(proto: str, prop: str, needed: tuple[str, ...]) -> list[Theorem]:
    """One theorem per assumption: a counterexample where it is needed,
    no counterexample over every run of a small scope where it is not."""
    reader = LONG if prop != STAYS else None
    kind = READER_OF[prop] or READER
    other = "write-file"
    cases: dict[str, tuple[Callable[[], Scenario], str]] = {
        SAME_LENGTH: (lambda: custom([(proto, LONG), (proto, A)], reader, reader=kind),
                      f"writers of {LONG!r} and of {A!r} (same bytes where they overlap)"),
        SAME_BYTES: (lambda: custom([(proto, B), (proto, X)], B if prop != STAYS else None, reader=kind),
                     f"writers of {B!r} and of {X!r} (same length)"),
        ONE_PROTOCOL: (from_setup(protocols=(proto, other), writers=2, readers=0 if prop == STAYS else 1, reader=kind, faults=0, entry_length=1),
                       f"one {proto} writer and one {other} writer"),
        NO_NUL: (lambda: custom([(proto, Z)], Z, reader=kind), f"a writer of {Z!r}, which the reader's validation rejects"),
    }
    out = []
    for name in (SAME_LENGTH, SAME_BYTES, ONE_PROTOCOL, NO_NUL):
        if name == NO_NUL and prop != HITS:
            continue
        scenario, what = cases[name]
        expect = COUNTEREXAMPLE if name in needed else PROVED
        verdict = "breaks" if name in needed else "still keeps"
        out.append(_drop(proto, prop, name, expect, scenario, f"without '{ASSUMPTION_TEXT[name]}': {what}; {proto} {verdict} {prop}"))
    return out


def catalogue() -> list[Theorem]:
    """Every theorem ``idemwrite prove`` runs, in order."""
    wtt, rip = "write-then-truncate", "rename-into-place"
    thms = [
        _unbounded(wtt, STAYS, inv.in_place_writer, "after the first publication the entry always holds exactly the L entry bytes"),
        _unbounded(wtt, HITS, inv.in_place_reader, "a reader that begins after the first publication ends with a hit"),
        _unbounded(rip, STAYS, inv.rename_writer, "after the first publication the entry always holds exactly the L entry bytes"),
        _unbounded(rip, HITS, inv.rename_reader, "a reader that begins after the first publication ends with a hit"),
        _bmc("write-file", STAYS, 0, 1, 8, "the induction that proves write-then-truncate fails for write-file; "
             "a second writer's O_TRUNC empties the published entry", inv.in_place_writer),
        _bmc("write-file", HITS, 0, 1, 10, "a reader between a second writer's O_TRUNC and its write finds the entry empty"),
        _bmc("go-index-entry", STAYS, 1, 1, 12, "a faulted writer's remove deletes another writer's published entry"),
        _bmc("go-index-entry", HITS, 1, 1, 12, "after that remove a late reader misses"),
        _bmc("create-exclusive", STAYS, 0, 1, 6, "EEXIST is success before the creator has written"),
        _bmc("create-exclusive", HITS, 0, 1, 8, "a reader after that publication finds the entry empty"),
        _bmc("go-output-file", STAYS, 1, 1, 12, "copyFile's truncate-to-0 on a faulted write empties a completed output"),
    ]
    thms += [
        _unbounded(wtt, NO_SIGBUS, inv.in_place_mapper, "no mmap-read reader ever dies of SIGBUS: the entry never shrinks under a mapping"),
        _unbounded(rip, NO_SIGBUS, inv.rename_mapper, "no mmap-read reader ever dies of SIGBUS: a mapped inode is never written again"),
        _bmc("write-file", NO_SIGBUS, 0, 1, 12, "the induction that proves write-then-truncate fails for write-file; "
             "its O_TRUNC empties a file a reader has mapped, and the reader's touch faults", inv.in_place_mapper),
    ]
    thms += _drops(wtt, STAYS, (SAME_LENGTH, SAME_BYTES, ONE_PROTOCOL))
    thms += _drops(wtt, HITS, (SAME_LENGTH, ONE_PROTOCOL, NO_NUL))
    thms += _drops(rip, STAYS, (ONE_PROTOCOL,))
    thms += _drops(rip, HITS, (SAME_LENGTH, ONE_PROTOCOL, NO_NUL))
    thms += _drops(wtt, NO_SIGBUS, (ONE_PROTOCOL,))
    thms += _drops(rip, NO_SIGBUS, (ONE_PROTOCOL,))
    return thms


def find(name: str) -> Theorem:
    """The theorem called ``name``; KeyError lists the known names."""
    for t in catalogue():
        if t.name == name:
            return t
    raise KeyError(f"unknown theorem {name!r}; known: {', '.join(t.name for t in catalogue())}")


# ------------------------------------------------------------ running


def run(t: Theorem) -> Result:
    """Settle ``t``: induction (with vacuity) when it has an invariant and
    an unbounded scope; otherwise, or when the induction fails, BMC."""
    started = time.perf_counter()
    res = Result(t, UNKNOWN, 0.0)
    if t.invariant is not None and t.scenario is None:
        assert t.vacuity_setup is not None
        sysm = unbounded_system(t.protocol, t.reader)
        res.checks = prove(sysm, t.invariant, t.property, valid_entry=NO_NUL in t.assumptions).checks
        res.checks += vacuity(sysm, t.invariant, t.vacuity_setup, SAMPLES)
        if all(c.passed for c in res.checks):
            res.outcome = PROVED
        else:
            res.note = "; ".join(f"{c.name}: {c.answer}" for c in res.checks if not c.passed)
        res.seconds = time.perf_counter() - started
        return res
    assert t.scenario is not None
    scn = t.scenario()
    start = 0
    if t.exhaustive:
        # Every run of the small scope, explicitly; the solver then has to
        # find the violation on its own at the depth the search reports.
        ex = search_all(scn, t.property)
        res.note = f"{ex.states} states searched"
        if ex.violation_depth is None:
            res.outcome = PROVED
            res.seconds = time.perf_counter() - started
            return res
        start = ex.violation_depth
    if t.invariant is not None:
        # The induction that proves the fixed protocol, attempted here: it
        # must fail for all N and L, and at this concrete scope it must meet
        # a counterexample to induction (quantifier-free, so Z3 shows one).
        attempt = prove(unbounded_system(t.protocol, t.reader), t.invariant, t.property, valid_entry=NO_NUL in t.assumptions)
        broken = [c for c in attempt.checks if not c.passed]
        res.checks.append(Check("unbounded induction attempt", "fails" if broken and not attempt.unknown else
                                ("unknown" if attempt.unknown else "proves"), "fails", sum(c.seconds for c in attempt.checks),
                                "; ".join(f"{c.name}: {c.answer}" for c in broken)))
        check, res.cti = concrete_consecution(scn, t.invariant)
        res.checks.append(check)
    res.bmc = search(scn, t.property, t.depth, start=start)
    if res.bmc.outcome == "counterexample" and all(c.passed for c in res.checks):
        res.outcome = COUNTEREXAMPLE
    elif res.bmc.outcome == "none":
        res.note = f"no counterexample up to depth {t.depth}"
    else:
        res.note = res.bmc.reason or res.bmc.outcome
    res.seconds = time.perf_counter() - started
    return res


# ------------------------------------------------------------ as data


def summary(res: Result) -> dict[str, object]:
    """A result as plain data (the ``--json`` row; also what a worker
    process sends back)."""
    t = res.theorem
    out: dict[str, object] = {
        "theorem": t.name, "protocol": t.protocol, "property": t.property, "scope": t.scope,
        "outcome": res.outcome, "expected": t.expect, "as_expected": res.as_expected, "seconds": round(res.seconds, 3),
        "statement": t.statement, "assumptions": [ASSUMPTION_TEXT[a] for a in t.assumptions],
        "dropped": None if t.dropped is None else ASSUMPTION_TEXT[t.dropped], "note": res.note,
        "counterexample_to_induction": res.cti or None,
        "checks": [{"check": c.name, "answer": c.answer, "expect": c.expect, "seconds": round(c.seconds, 3)} for c in res.checks],
        "counterexample": None,
    }
    b = res.bmc
    if b is not None and b.steps is not None:
        trace = b.trace()
        out["counterexample"] = {
            "depth": b.depth, "violation": b.reason, "steps": [st.to_json() for st in b.steps],
            "names": list(b.scenario.names), "table": render(b),
            "trace": None if trace is None else trace_json(trace),
        }
    return out


def trace_json(trace: Trace) -> dict[str, object]:
    from spec.trace import to_json

    return to_json(trace)


def render(b: BmcResult) -> str:
    """The counterexample as a step table (the model's own wording), for a
    scenario that Setup cannot express as well as one it can."""
    from spec.trace import describe_op, describe_result, files, show

    assert b.steps is not None
    cfg = b.scenario.config()
    names = b.scenario.names
    rows = [["step", "proc", "op", "result", "entry", "output"]]
    for n, (st, before, after) in enumerate(zip(b.steps, b.worlds, b.worlds[1:]), 1):
        i = names.index(st.process)
        fs = dict(files(after.fs))
        rows.append([str(n), st.process, describe_op(cfg, before, i), describe_result(cfg, before, after, i, st.fault),
                     show(fs.get("entry")), show(fs.get("output"))])
    if all(r[5] == "-" for r in rows[1:]):
        rows = [r[:5] for r in rows]
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in rows)
