"""Unbounded proofs by induction, and their vacuity checks.

The system: every integer is a process id; ``kind_of`` (unconstrained)
says whether it runs the writer protocol, the reader, or nothing; the
entry's length L >= 1 and bytes ``pay`` are symbolic; faults are unlimited
(every operation may fail wherever ``spec.semantics.fault_options`` lets it,
so the result covers every fault budget F).  One theorem is proved by
three validity checks, each an unsat query:

- initiation:  the initial state satisfies the invariant;
- consecution: the invariant and one step of any process (split by kind,
  operation and fault, so a failure names its step) imply the invariant
  after the step;
- property:    the invariant implies the property.

and vacuity checks: on states the explorer reached (concrete, built from
K and Store), the invariant holds and some step is enabled, so neither the
invariant nor the transition is unsatisfiable.  ``unknown`` from Z3 is a
failure of the check, never a pass.

The same induction at a concrete scope (N processes, length L) is
quantifier-free; :func:`concrete_consecution` uses it to find a
counterexample to induction, which Z3 cannot do with the quantifiers.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import z3

from spec.explore import explore
from spec.machine import faults
from spec.ops import Program, Role
from spec.properties import Property
from spec.state import Status, World
from spec.system import System

from .concrete import abstract, kind_of_array, kind_map
from .invariants import Invariant, View
from .props import Procs, formula
from .symbolic import (
    Bytes,
    SymKind,
    SymPayload,
    SymState,
    SymSystem,
    Term,
    case_step,
    cases,
    encode,
    fault_allowed,
    fresh_state,
    initial_state,
)

# Per query; each takes well under a second when the invariant is right.
# The work budget (rlimit) makes an ``unknown`` independent of load.
TIMEOUT_MS = 120_000
RLIMIT = 100_000_000


@dataclass
class Check:
    """One solver query: ``expect`` is the answer that passes."""

    name: str
    answer: str
    expect: str
    seconds: float
    detail: str = ""

    @property
    def passed(self) -> bool:
        return self.answer == self.expect


@dataclass
class InductionResult:
    """Every check of one inductive proof attempt."""

    checks: list[Check] = field(default_factory=list)

    @property
    def proved(self) -> bool:
        return bool(self.checks) and all(c.passed for c in self.checks)

    @property
    def unknown(self) -> bool:
        return any(c.answer == "unknown" for c in self.checks)

    def failures(self) -> list[Check]:
        return [c for c in self.checks if not c.passed]


def _query(name: str, facts: list[Term], expect: str = "unsat", detail: str = "") -> Check:
    started = time.perf_counter()
    solver = z3.Solver()
    solver.set("timeout", TIMEOUT_MS)
    solver.set("rlimit", RLIMIT)
    solver.add(*facts)
    answer = str(solver.check())
    if answer == "unknown":
        detail = (detail + " " if detail else "") + f"({solver.reason_unknown()})"
    return Check(name, answer, expect, time.perf_counter() - started, detail)


def unbounded_system(writer: Program, reader: Program) -> SymSystem:
    """Writers of ``writer`` and readers of ``reader``, any number of each,
    all with one entry of symbolic length L and bytes ``pay`` (and, where
    the programs name other payloads - a remote tier's ``output`` - one of
    each, symbolic too: ``L_output`` and ``pay_output``)."""
    names = ["entry", *(n for prog in (writer, reader) for n in prog.payloads() if n != "entry")]
    payloads = {n: SymPayload(z3.Int("L" if n == "entry" else f"L_{n}"),
                              z3.Array("pay" if n == "entry" else f"pay_{n}", z3.IntSort(), z3.IntSort()))
                for n in dict.fromkeys(names)}
    kinds = tuple(SymKind(prog, payloads) for prog in (writer, reader))
    return SymSystem(kinds, z3.Array("kind_of", z3.IntSort(), z3.IntSort()), Bytes(None), None)


def assumptions(sysm: SymSystem, valid_entry: bool = True) -> list[Term]:
    """Every payload's length >= 1 and, with ``valid_entry``, no payload
    holds a zero byte (the reader's own validation accepts the complete
    entry: Go's parser rejects NUL in every field).  The bytes are
    otherwise arbitrary integers."""
    out: list[Term] = []
    for name, pl in sysm.kinds[0].payloads.items():
        b = z3.Int(f"b_{name}")
        out.append(pl.length >= 1)
        if valid_entry:
            out.append(z3.ForAll([b], z3.Implies(z3.And(b >= 0, b < pl.length), pl.data[b] != 0)))
    return out


def _view(sysm: SymSystem, s: SymState, procs: Procs) -> View:
    roles = [k.program.role for k in sysm.kinds]
    reader = roles.index(Role.READER) if Role.READER in roles else None
    return View(sysm, s, procs, roles.index(Role.WRITER), reader)


def _may_fault(sysm: SymSystem, ki: int, pc: int) -> bool:
    k = sysm.kinds[ki]
    return not z3.is_false(z3.simplify(fault_allowed(sysm, k, k.program.code[pc])))


def _case_name(sysm: SymSystem, ki: int, pc: int, fault: bool) -> str:
    k = sysm.kinds[ki]
    return f"{k.name}@{pc} {k.program.code[pc]}" + (" [fault]" if fault else "")


def prove(sysm: SymSystem, inv: Invariant, prop: Property, procs: Procs = Procs(), valid_entry: bool = True) -> InductionResult:
    """Initiation, consecution (per step case) and property, as unsat
    queries; ``procs`` is all integers for the unbounded proof."""
    base = assumptions(sysm, valid_entry)
    res = InductionResult()
    init = _view(sysm, initial_state(sysm, procs.n), procs)
    res.checks.append(_query("initiation", base + [z3.Not(z3.And([c for _, c in inv(init)]))]))
    s = fresh_state(sysm, "")
    now = _view(sysm, s, procs)
    holds = [c for _, c in inv(now)]
    p = z3.Int("p")
    for ki, pc in cases(sysm):
        for fault in (False, True) if _may_fault(sysm, ki, pc) else (False,):
            tr = case_step(sysm, s, p, z3.BoolVal(fault), ki, pc)
            after = inv(_view(sysm, tr.after, procs))
            scope = [] if procs.n is None else [p >= 0, p < procs.n]
            res.checks.append(_query("consecution " + _case_name(sysm, ki, pc, fault),
                                     base + holds + scope + [tr.enabled, z3.Not(z3.And([c for _, c in after]))],
                                     detail=", ".join(n for n, _ in after)))
    res.checks.append(_query("invariant implies property", base + holds + [z3.Not(formula(prop)(sysm, s, procs))]))
    return res


# ------------------------------------------------------------ vacuity


def vacuity(sysm: SymSystem, inv: Invariant, system: System, wanted: list[Callable[[World], bool]]) -> list[Check]:
    """Non-vacuity, on states the explorer reached for ``system`` (whose
    entry fixes L and the bytes):

    - for each predicate in ``wanted``, one such state: the invariant holds
      there (its negation is unsat) and, with it, some step is enabled (sat);
    - for each consecution case (program, operation, fault or not), one
      state where a process can take exactly that step: the invariant and
      that step's guard together are satisfiable, so no consecution query
      is passed only because its step can never happen.

    A state the explorer cannot provide is itself a failed check."""
    explored = list(explore(system, properties=(), stop_when_all_violated=False).worlds())
    checks: list[Check] = []
    fix: list[Term] = []
    for name, pl in sysm.kinds[0].payloads.items():
        value = system.kinds[0].payload(name)
        fix += [pl.length == len(value)] + [pl.data[i] == byte for i, byte in enumerate(value)]

    def concrete(w: World) -> tuple[SymSystem, SymState, Term]:
        conc = SymSystem(sysm.kinds, kind_of_array(sysm, system, w.procs), sysm.bytes, None)
        s = abstract(conc, system, w)
        return conc, s, z3.And([c for _, c in inv(_view(conc, s, Procs()))])

    for n, want in enumerate(wanted):
        w = next((w for w in explored if want(w)), None)
        tag = f"vacuity: sample {n + 1} ({want.__name__.strip('_').replace('_', ' ')})"
        if w is None:
            checks.append(Check(tag, "missing", "found", 0.0, "the explorer reached no such state"))
            continue
        conc, s, holds = concrete(w)
        checks.append(_query(tag + " satisfies the invariant", fix + [z3.Not(holds)]))
        p, f = z3.Int("p"), z3.Bool("fault")
        steps = [case_step(conc, s, p, f, ki, pc).enabled for ki, pc in cases(conc)]
        checks.append(_query(tag + " has an enabled step", fix + [holds, z3.Or(steps)], expect="sat"))
    km = kind_map(sysm, system)
    for ki, pc in cases(sysm):
        for fault in (False, True) if _may_fault(sysm, ki, pc) else (False,):
            tag = "vacuity: " + _case_name(sysm, ki, pc, fault)
            found = _enabling(explored, system, km, ki, pc, fault)
            if found is None:
                checks.append(Check(tag, "missing", "found", 0.0, "no explored state enables this step"))
                continue
            w, i = found
            conc, s, holds = concrete(w)
            guard = case_step(conc, s, z3.IntVal(i), z3.BoolVal(fault), ki, pc).enabled
            checks.append(_query(tag + ": invariant and step satisfiable", fix + [holds, guard], expect="sat"))
    return checks


def _enabling(explored: list[World], system: System, km: dict[int, int], ki: int, pc: int,
              fault: bool) -> tuple[World, int] | None:
    """An explored state and a process in it that is about to run
    operation ``pc`` of SymSystem kind ``ki`` (able to fault, if ``fault``)."""
    for w in explored:
        for i, p in enumerate(w.procs):
            if p.status is Status.RUNNING and p.pc == pc and km[p.kind] == ki:
                if not fault or faults(system, w, i):
                    return w, i
    return None


# ------------------------------------------------------------ refutation


def concrete_consecution(system: System, inv: Invariant) -> tuple[Check, str]:
    """Consecution at a concrete scope (the system's processes and
    payloads), quantifier-free: ``sat`` is a counterexample to induction,
    described as the step that breaks which conjunct."""
    sysm = encode(system)
    n = len(system.processes)
    procs = Procs(n)
    s = fresh_state(sysm, "")
    now = inv(_view(sysm, s, procs))
    p, f = z3.Int("p"), z3.Bool("fault")
    started = time.perf_counter()
    for ki, pc in cases(sysm):
        tr = case_step(sysm, s, p, f, ki, pc)
        after = inv(_view(sysm, tr.after, procs))
        solver = z3.Solver()
        solver.set("timeout", TIMEOUT_MS)
        solver.set("rlimit", RLIMIT)
        budget = [] if sysm.fault_budget is None else [z3.Implies(f, s.faults < sysm.fault_budget)]
        solver.add(*[c for _, c in now], p >= 0, p < n, tr.enabled, *budget, z3.Not(z3.And([c for _, c in after])))
        r = solver.check()
        if r == z3.unknown:
            return Check("concrete consecution", "unknown", "sat", time.perf_counter() - started, solver.reason_unknown()), ""
        if r == z3.sat:
            m = solver.model()
            broken = [name for name, c in after if z3.is_false(m.eval(c, True))]
            k = sysm.kinds[ki]
            who = system.names[m.eval(p, True).as_long()]
            why = (f"{who} ({k.name}) at `{k.program.code[pc]}`" + (" with a fault" if z3.is_true(m.eval(f, True)) else "")
                   + f" breaks {', '.join(broken)}")
            return Check("concrete consecution", "sat", "sat", time.perf_counter() - started, why), why
    return Check("concrete consecution", "unsat", "sat", time.perf_counter() - started, "the invariant is inductive at this scope"), ""
