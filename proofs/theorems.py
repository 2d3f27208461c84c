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
from typing import Any, Callable

from spec.machine import write_length
from spec.ops import Goto, If, Program, Return, Role
from spec.programs import S3_GET_OVERWRITE, S3_GET_UNCHECKED
from spec.properties import HITS, NO_SIGBUS, REMOTE_HIT, REMOTE_RECORD, STAYS, Property
from spec.protocols import CATALOGUE, Protocol
from spec.semantics import is_operation
from spec.state import Began, Status, World, published
from spec.system import ENTRY_BYTES, OUTPUT_BYTES, Process, System
from spec.trace import Trace, TraceStep, from_json, table, to_json

from . import invariants as inv
from .bmc import BmcResult, search
from .induction import Check, concrete_consecution, prove, unbounded_system, vacuity
from .small_scope import search_all

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

    ``invariant``: prove by induction (unbounded); ``system``/``depth``:
    search for a counterexample by BMC (after a failed induction, or alone).
    ``exhaustive``: the depth covers every complete run of the system, so
    "no counterexample" is a proof for that scope.  ``reader`` is the
    reader of the unbounded proof (the one that observes the property).
    """

    name: str
    protocol: Protocol
    property: Property
    statement: str
    expect: str
    reader: Program
    assumptions: tuple[str, ...] = ()
    invariant: inv.Invariant | None = None
    vacuity_system: System | None = None
    system: System | None = None
    depth: int = 0
    exhaustive: bool = False
    dropped: str | None = None

    @builtins.property  # the field ``property`` shadows the builtin here
    def scope(self) -> str:
        if self.invariant is not None and self.system is None:
            return "all N, all L"
        assert self.system is not None
        s = self.system
        lens = sorted({len(b) for p in s.processes for n, b in p.payloads if n == "entry"})
        what = "every run" if self.exhaustive else f"depth <= {self.depth}"
        return f"N = {s.count(Role.WRITER)}+{s.count(Role.READER)}R, L in {lens}, F = {s.faults}, {what}"


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


# ------------------------------------------------------------ systems


def _payloads(entry: bytes) -> tuple[tuple[str, bytes], ...]:
    return (("entry", entry), ("output", OUTPUT_BYTES[:len(entry)]))


def custom(writers: list[tuple[Protocol, bytes]], reader_entry: bytes | None, reader: Program, faults: int = 0) -> System:
    """Writers with payloads of their own (each its own process), and
    optionally one reader of ``reader`` that expects ``reader_entry``."""
    procs = [Process(proto.program, _payloads(entry)) for proto, entry in writers]
    if reader_entry is not None:
        procs.append(Process(reader, _payloads(reader_entry)))
    return System(tuple(procs), faults)


def _max_steps(system: System) -> int:
    """Every process's longest run, in steps, summed: a BMC depth at which
    every run of the system has ended (programs only jump forward).  A
    write takes one step per byte (one for an empty write); local control
    flow and local operations take none (they are folded into the step
    before them)."""
    total = 0
    for ki in system.kind_of:
        kind = system.kinds[ki]
        code, targets = kind.program.code, kind.program.targets
        longest = [0] * (len(code) + 1)
        for pc in range(len(code) - 1, -1, -1):
            ins = code[pc]
            if isinstance(ins, Return):
                continue
            if isinstance(ins, Goto):
                longest[pc] = longest[targets[pc]]
            elif isinstance(ins, If):
                longest[pc] = max(longest[targets[pc]], longest[pc + 1])
            elif is_operation(ins):
                longest[pc] = max(1, write_length(kind, ins)) + longest[pc + 1]
            else:
                longest[pc] = longest[pc + 1]
        total += longest[0]
    return total


# ------------------------------------------------------------ the catalogue of theorems

A, B, X, Z = ENTRY_BYTES[:1], ENTRY_BYTES[:2], b"xy", b"a\x00"
LONG = ENTRY_BYTES[:3]


def _late_reader(w: World) -> bool:
    return published(w) and any(p.began is Began.AFTER_PUBLICATION and p.status is Status.RUNNING for p in w.procs)


def _mid_write_after_publication(w: World) -> bool:
    return published(w) and any(p.progress > 0 for p in w.procs)


def _a_writer_failed(w: World) -> bool:
    return any(p.status is Status.FAIL for p in w.procs)


SAMPLES: list[Callable[[World], bool]] = [_late_reader, _mid_write_after_publication, _a_writer_failed]


def _claim_expect(proto: Protocol, prop: Property, faults: int | None) -> str:
    claim = proto.claim(prop)
    assert claim is not None, f"{proto.name} makes no claim about {prop.name}"
    if faults is None:
        return PROVED if claim.holds_up_to is None else COUNTEREXAMPLE
    return PROVED if claim.expected(faults) == "holds" else COUNTEREXAMPLE


def _unbounded(proto: Protocol, prop: Property, invariant: inv.Invariant, statement: str) -> Theorem:
    """The proof's assumptions: one payload for every process (the
    encoding gives all kinds the same L and bytes), only ``proto`` writers,
    and for the reader property an entry the reader's validation accepts."""
    used = (SAME_LENGTH, SAME_BYTES, ONE_PROTOCOL) + ((NO_NUL,) if prop == HITS else ())
    reader = proto.reader_for(prop)
    return Theorem(f"{proto.name}/{prop.name}/all-N-all-L", proto, prop, statement, _claim_expect(proto, prop, None),
                   reader, used, invariant, System.of(proto, 2, 1, reader, faults=2, entry_length=2))


def _bmc(proto: Protocol, prop: Property, faults: int, length: int, depth: int, statement: str,
         invariant: inv.Invariant | None = None) -> Theorem:
    reader = proto.reader_for(prop)
    system = System.of(proto, 2, 0 if prop == STAYS else 1, reader, faults=faults, entry_length=length)
    return Theorem(f"{proto.name}/{prop.name}/bmc", proto, prop, statement, _claim_expect(proto, prop, faults), reader,
                   (), invariant, None, system, depth)


def _remote_twin(reader: Program, prop: Property, system: System, statement: str,
                 invariant: inv.Invariant) -> Theorem:
    """A getter twin with s3-put: the invariant that proves s3-get must
    fail for it, and BMC must find the violation over every run of a small
    scope (from the least depth the explicit search reports)."""
    proto = CATALOGUE["s3-put"]
    return Theorem(f"{reader.name}/{prop.name}/bmc", proto, prop, statement, COUNTEREXAMPLE, reader, (), invariant,
                   None, system, _max_steps(system), True)


def _remote_drops(prop: Property) -> list[Theorem]:
    """The remote theorems' assumptions, each dropped over every run of a
    small scope: one putter (or two) and one getter, each with payloads of
    its own (an entry and an output)."""
    s3put, s3rf = CATALOGUE["s3-put"], CATALOGUE["s3-put-record-first"]

    def one(putter_output: bytes, other: bytes) -> System:
        """A putter of ``putter_output``, and a getter expecting ``other``
        (for the record property, a second putter of ``other`` too)."""
        putters = (putter_output,) if prop == REMOTE_HIT else (putter_output, other)
        return System(tuple(Process(s3put.program, (("entry", A), ("output", o))) for o in putters)
                      + (Process(s3put.reader_for(prop), (("entry", A), ("output", other))),))

    mixed = System.of([s3put, s3rf], 2, 1, s3put.reader_for(prop), entry_length=1)
    hit = prop == REMOTE_HIT
    who = "a getter expecting" if hit else "one of"
    cases = [
        (SAME_LENGTH, one(b"AB", b"A"), f"a putter of b'AB' and {who} b'A'", False),
        # The model's check of a body is its length (and no zero byte), not
        # its SHA-256: two outputs of one length look alike to it.
        (SAME_BYTES, one(b"X", b"A"), f"a putter of b'X' and {who} b'A'" + (
            " (the model's check is the length; the real one, SHA-256, would refuse b'X')" if hit else ""), hit),
        (ONE_PROTOCOL, mixed, "one s3-put and one s3-put-record-first putter", not hit),
    ]
    return [_drop(s3put, prop, name, COUNTEREXAMPLE if needed else PROVED, system,
                  f"without '{ASSUMPTION_TEXT[name]}': {what}; s3-put {'breaks' if needed else 'still keeps'} {prop.name}")
            for name, system, what, needed in cases]


def _drop(proto: Protocol, prop: Property, dropped: str, expect: str, system: System, statement: str) -> Theorem:
    return Theorem(f"{proto.name}/{prop.name}/drop-{dropped}", proto, prop, statement, expect, proto.reader_for(prop),
                   (), None, None, system, _max_steps(system), True, dropped)


def _drops(proto: Protocol, prop: Property, needed: tuple[str, ...]) -> list[Theorem]:
    """One theorem per assumption: a counterexample where it is needed,
    no counterexample over every run of a small scope where it is not."""
    reader_entry = LONG if prop != STAYS else None
    reader = proto.reader_for(prop)
    other = CATALOGUE["write-file"]
    cases: dict[str, tuple[Callable[[], System], str]] = {
        SAME_LENGTH: (lambda: custom([(proto, LONG), (proto, A)], reader_entry, reader),
                      f"writers of {LONG!r} and of {A!r} (same bytes where they overlap)"),
        SAME_BYTES: (lambda: custom([(proto, B), (proto, X)], B if prop != STAYS else None, reader),
                     f"writers of {B!r} and of {X!r} (same length)"),
        ONE_PROTOCOL: (lambda: System.of([proto, other], 2, 0 if prop == STAYS else 1, reader, entry_length=1),
                       f"one {proto.name} writer and one {other.name} writer"),
        NO_NUL: (lambda: custom([(proto, Z)], Z, reader), f"a writer of {Z!r}, which the reader's validation rejects"),
    }
    out = []
    for name in (SAME_LENGTH, SAME_BYTES, ONE_PROTOCOL, NO_NUL):
        if name == NO_NUL and prop != HITS:
            continue
        system, what = cases[name]
        expect = COUNTEREXAMPLE if name in needed else PROVED
        verdict = "breaks" if name in needed else "still keeps"
        out.append(_drop(proto, prop, name, expect, system(),
                         f"without '{ASSUMPTION_TEXT[name]}': {what}; {proto.name} {verdict} {prop.name}"))
    return out


def _every_run(proto: Protocol, prop: Property, system: System, statement: str) -> Theorem:
    """No counterexample over every complete run of a small scope: a proof
    for that scope (no invariant reaches all N for this protocol yet)."""
    return Theorem(f"{proto.name}/{prop.name}/every-run", proto, prop, statement, _claim_expect(proto, prop, system.faults),
                   proto.reader_for(prop), (), None, None, system, _max_steps(system), True)


def _hypershift() -> list[Theorem]:
    """openshift/hypershift#8624, from the atlas: the solver finds the
    partial output of the server before the fix, and finds none after it
    in any run of two writers with one fault."""
    before, after = CATALOGUE["hypershift-put"], CATALOGUE["hypershift-put-fixed"]
    return [
        _bmc(before, STAYS, 0, 1, 8, "a second put's os.WriteFile (O_TRUNC) empties the output a first put "
             "has published: a partial file at DiskPath (hypershift#8624)"),
        _every_run(after, STAYS, System.of(after, 2, 0, faults=1, entry_length=1),
                   "after #8624 (temp file and rename) the published output and action file stay complete"),
    ]


def catalogue() -> list[Theorem]:
    """Every theorem ``idemwrite prove`` runs, in order."""
    wtt, rip = CATALOGUE["write-then-truncate"], CATALOGUE["rename-into-place"]
    wf, gie, ce, gof = (CATALOGUE[n] for n in ("write-file", "go-index-entry", "create-exclusive", "go-output-file"))
    thms = [
        _unbounded(wtt, STAYS, inv.in_place_writer, "after the first publication the entry always holds exactly the L entry bytes"),
        _unbounded(wtt, HITS, inv.in_place_reader, "a reader that begins after the first publication ends with a hit"),
        _unbounded(rip, STAYS, inv.rename_writer, "after the first publication the entry always holds exactly the L entry bytes"),
        _unbounded(rip, HITS, inv.rename_reader, "a reader that begins after the first publication ends with a hit"),
        _bmc(wf, STAYS, 0, 1, 8, "the induction that proves write-then-truncate fails for write-file; "
             "a second writer's O_TRUNC empties the published entry", inv.in_place_writer),
        _bmc(wf, HITS, 0, 1, 10, "a reader between a second writer's O_TRUNC and its write finds the entry empty"),
        _bmc(gie, STAYS, 1, 1, 12, "a faulted writer's remove deletes another writer's published entry"),
        _bmc(gie, HITS, 1, 1, 12, "after that remove a late reader misses"),
        _bmc(ce, STAYS, 0, 1, 6, "EEXIST is success before the creator has written"),
        _bmc(ce, HITS, 0, 1, 8, "a reader after that publication finds the entry empty"),
        _bmc(gof, STAYS, 1, 1, 12, "copyFile's truncate-to-0 on a faulted write empties a completed output"),
    ]
    thms += [
        _unbounded(wtt, NO_SIGBUS, inv.in_place_mapper, "no mmap-read reader ever dies of SIGBUS: the entry never shrinks under a mapping"),
        _unbounded(rip, NO_SIGBUS, inv.rename_mapper, "no mmap-read reader ever dies of SIGBUS: a mapped inode is never written again"),
        _bmc(wf, NO_SIGBUS, 0, 1, 12, "the induction that proves write-then-truncate fails for write-file; "
             "its O_TRUNC empties a file a reader has mapped, and the reader's touch faults", inv.in_place_mapper),
    ]
    s3put, s3rf = CATALOGUE["s3-put"], CATALOGUE["s3-put-record-first"]
    thms += [
        _unbounded(s3put, REMOTE_RECORD, inv.remote_record, "for any number of putters and getters, with any faults, "
                   "the action record never names a missing or partial output object"),
        _unbounded(s3put, REMOTE_HIT, inv.remote_served, "for any number of putters and getters on one machine, with "
                   "any faults, a remote hit's local file holds exactly the output while it is served"),
        _bmc(s3rf, REMOTE_RECORD, 0, 1, 2, "the induction that proves s3-put fails for the record-first order; "
             "its first PUT makes a record whose output is not there", inv.remote_record),
        _remote_twin(S3_GET_UNCHECKED, REMOTE_HIT, System.of(s3put, 1, 1, S3_GET_UNCHECKED, faults=1, entry_length=1),
                     "the induction that proves s3-get fails without its check; a body cut short is stored and "
                     "served", inv.remote_served),
        _remote_twin(S3_GET_OVERWRITE, REMOTE_HIT, System.of(s3put, 1, 2, S3_GET_OVERWRITE, entry_length=1),
                     "the induction that proves s3-get fails with O_TRUNC; a second getter empties the file a first "
                     "one serves", inv.remote_served),
    ]
    thms += _remote_drops(REMOTE_RECORD) + _remote_drops(REMOTE_HIT)
    thms += _hypershift()
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
    if t.invariant is not None and t.system is None:
        assert t.vacuity_system is not None
        sysm = unbounded_system(t.protocol.program, t.reader)
        res.checks = prove(sysm, t.invariant, t.property, valid_entry=NO_NUL in t.assumptions).checks
        res.checks += vacuity(sysm, t.invariant, t.vacuity_system, SAMPLES)
        if all(c.passed for c in res.checks):
            res.outcome = PROVED
        else:
            res.note = "; ".join(f"{c.name}: {c.answer}" for c in res.checks if not c.passed)
        res.seconds = time.perf_counter() - started
        return res
    assert t.system is not None
    start = 0
    if t.exhaustive:
        # Every run of the small scope, explicitly; the solver then has to
        # find the violation on its own at the depth the search reports.
        ex = search_all(t.system, t.property)
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
        attempt = prove(unbounded_system(t.protocol.program, t.reader), t.invariant, t.property,
                        valid_entry=NO_NUL in t.assumptions)
        broken = [c for c in attempt.checks if not c.passed]
        res.checks.append(Check("unbounded induction attempt", "fails" if broken and not attempt.unknown else
                                ("unknown" if attempt.unknown else "proves"), "fails", sum(c.seconds for c in attempt.checks),
                                "; ".join(f"{c.name}: {c.answer}" for c in broken)))
        check, res.cti = concrete_consecution(t.system, t.invariant)
        res.checks.append(check)
    res.bmc = search(t.system, t.property, t.depth, start=start)
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
        "theorem": t.name, "protocol": t.protocol.name, "property": t.property.name, "scope": t.scope,
        "outcome": res.outcome, "expected": t.expect, "as_expected": res.as_expected, "seconds": round(res.seconds, 3),
        "statement": t.statement, "assumptions": [ASSUMPTION_TEXT[a] for a in t.assumptions],
        "dropped": None if t.dropped is None else ASSUMPTION_TEXT[t.dropped], "note": res.note,
        "counterexample_to_induction": res.cti or None,
        "checks": [{"check": c.name, "answer": c.answer, "expect": c.expect, "seconds": round(c.seconds, 3)} for c in res.checks],
        "counterexample": None,
    }
    trace = res.trace
    if res.bmc is not None and trace is not None:
        out["counterexample"] = {
            "depth": res.bmc.depth, "violation": res.bmc.reason, "steps": [st.to_json() for st in trace.steps],
            "names": list(trace.system.names), "table": table(trace), "trace": replayable_json(trace),
        }
    return out


def replayable_json(trace: Trace) -> dict[str, Any] | None:
    """The trace as ``spec.trace`` JSON when ``spec.trace.from_json`` gives
    it back (its system has the ``System.of`` shape); None for a system
    written process by process, which that JSON cannot say."""
    data = to_json(trace)
    try:
        back = from_json(data).system
    except (KeyError, ValueError):
        return None
    return data if back == trace.system else None
