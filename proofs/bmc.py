"""Bounded model checking: a shortest counterexample within a System and
depth k, decoded into a ``spec.trace.Trace`` and replayed in the model.

Any :class:`~spec.system.System` at byte granularity without crashes: the
usual shape (``System.of``) or processes written out one by one (two
writers of payloads of different lengths, say).  The solver's choices (who
steps, with a fault or not) are named as the model names them and replayed
by ``spec.trace.replay``; a run that does not replay, or does not violate
the property in the model, is a :class:`DecodeError`, never a result.

The encoding is quantifier-free: N is concrete, so are the payloads and
hence every byte range (``Bytes(bound)``).  The search deepens one step at a
time, so the first model found is a shortest counterexample.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import z3

from spec.machine import faults, initial, step as model_step
from spec.properties import Property
from spec.state import Status, World
from spec.system import System
from spec.trace import Trace, TraceStep, replay

from .props import Procs, formula
from .symbolic import (
    SymFS,
    SymState,
    SymSystem,
    Term,
    encode,
    initial_state,
    may_create,
    op_pcs,
    reads_variant,
    step,
    term_if,
)


class DecodeError(RuntimeError):
    """A solver model did not replay in ``spec.machine``: the encoding and
    the model disagree (a bug to report, never a result)."""


class BoundTooSmall(RuntimeError):
    """A run within the depth makes a file longer than the bytes the
    encoding represents (``SymSystem.bytes.bound``: the longest payload
    and one), e.g. a pwrite far past the end: "no violation" would not be
    a result for it, so the search says so instead."""


def max_inodes(system: System, depth: int) -> int:
    """The inodes a run of ``depth`` steps can create: one per operation
    that may create one (``proofs.symbolic.may_create``) of each process,
    when its program only jumps forward (each runs at most once); else one
    per step."""
    sysm = encode(system)
    total = 0
    for ki in system.kind_of:
        k = sysm.kinds[ki]
        if any(0 <= t <= pc for pc, t in enumerate(k.program.targets)):
            return depth
        total += sum(1 for pc in op_pcs(k) if may_create(sysm, k, k.program.code[pc]))
    return total


@dataclass
class BmcResult:
    """What the search found: a trace (steps over process names) reaching a
    violation of ``property`` at ``depth``, or nothing up to ``bound``."""

    system: System
    property: Property
    bound: int
    steps: tuple[TraceStep, ...] | None
    depth: int
    outcome: str  # "counterexample", "none" (no violation up to bound) or "unknown"
    seconds: float
    worlds: list[World] = field(default_factory=list, repr=False)
    reason: str = ""

    def trace(self) -> Trace | None:
        """The counterexample in the common trace format."""
        return None if self.steps is None else Trace(self.system, self.steps, self.property.name)


# Per query: a deterministic work budget (Z3's rlimit), so that the outcome
# does not depend on the machine's load; the largest query of the catalogue
# uses about 10 million (go-output-file at depth 9), the budget is 50 times
# that.  The wall-clock timeout is only a backstop.  Running out of either
# is ``unknown``, a failure, never a pass.
RLIMIT = 500_000_000
TIMEOUT_MS = 600_000


def search(system: System, prop: Property, depth: int, timeout_ms: int = TIMEOUT_MS, start: int = 0) -> BmcResult:
    """A shortest run of ``system`` of at most ``depth`` steps that violates
    ``prop`` (asked only from depth ``start`` on: pass the shortest depth
    when an exhaustive search has already shown that no shallower run
    violates).

    Each depth is a fresh, non-incremental QF_AUFLIA query: measured about
    three times faster here than one incremental solver with push/pop,
    which gives up Z3's preprocessing."""
    started = time.perf_counter()
    sysm = encode(system)
    n = len(system.processes)
    inodes = max_inodes(system, depth)
    s, facts = scalarize(initial_state(sysm, n), sysm, n, inodes, "@0")
    sels: list[tuple[Term, Term, Term]] = []
    bad = z3.Not(formula(prop)(sysm, s, Procs(n)))
    # Each query also asks whether a file outgrew the encoding's byte bound
    # in a state not asked about yet: a "no" for every depth is what makes
    # "none" a result (bytes past the bound are dropped, so a run there
    # would be under-checked).  Asked with the property, not alone: one
    # query per depth, as before.
    overflows = [_overflow(sysm, s, inodes)]
    # Symmetry breaking: of two identical processes (same program, same
    # payloads), the later-named one never takes its first step before the
    # earlier one.  Sound: renaming identical processes maps every run to
    # one that obeys this, and the properties do not depend on names.
    twins = [i for i in range(n - 1) if system.kind_of[i] == system.kind_of[i + 1]]
    for t in range(depth + 1):
        if t >= start:
            solver = z3.SolverFor("QF_AUFLIA")
            solver.set("timeout", timeout_ms)
            solver.set("rlimit", RLIMIT)
            solver.add(*facts, z3.Or(bad, *overflows))
            overflows = []
            r = solver.check()
            if r == z3.sat:
                model = solver.model()
                if not z3.is_true(model.eval(bad, True)):
                    raise BoundTooSmall(f"a run may make a file longer than the {sysm.bytes.bound} bytes the "
                                        "encoding represents; no verdict for this system")
                choices = [(model.eval(p, True).as_long(), z3.is_true(model.eval(f, True)), model.eval(c, True).as_long())
                           for p, f, c in sels]
                steps, worlds = decode(system, choices)
                res = BmcResult(system, prop, depth, steps, t, "counterexample", time.perf_counter() - started, worlds)
                return _checked(res)
            if r == z3.unknown:
                return BmcResult(system, prop, depth, None, t, "unknown", time.perf_counter() - started,
                                 reason=solver.reason_unknown())
            if t == depth:
                break
        p, f, c = z3.Int(f"sel@{t}"), z3.Bool(f"fault@{t}"), z3.Int(f"cut@{t}")
        s, facts = _extend(sysm, s, facts, p, f, c, n, inodes, t)
        facts += _first_steps_in_order(sels, p, twins)
        sels.append((p, f, c))
        bad = z3.Not(formula(prop)(sysm, s, Procs(n)))
        overflows.append(_overflow(sysm, s, inodes))
    return BmcResult(system, prop, depth, None, depth, "none", time.perf_counter() - started)


def _overflow(sysm: SymSystem, s: SymState, inodes: int) -> Term:
    """Some file of ``s`` is longer than the bytes the encoding represents
    (a symlink's size is its target name's length: it has no bytes)."""
    bound = sysm.bytes.bound or 0
    link = s.fs.link
    return z3.Or([z3.And(s.fs.size[i] > bound, *([] if link is None else [link[i] < 0])) for i in range(inodes)])


def _first_steps_in_order(sels: list[tuple[Term, Term, Term]], p: Term, twins: list[int]) -> list[Term]:
    return [z3.Implies(p == i + 1, z3.Or([q == i for q, _, _ in sels])) for i in twins]


def _extend(sysm: SymSystem, s: SymState, facts: list[Term], p: Term, f: Term, c: Term, n: int, inodes: int,
            t: int) -> tuple[SymState, list[Term]]:
    """One more step: process ``p`` moves (with fault ``f`` of variant
    ``c``, or not)."""
    # One transition per concrete process id: with constant indexes the
    # simplifier resolves every select, so each step is small.
    trs = [step(sysm, s, z3.IntVal(i), f, c) for i in range(n)]
    s2, eqs = scalarize(Chosen(s, [tr.after for tr in trs], p), sysm, n, inodes, f"@{t + 1}")
    return s2, facts + [p >= 0, p < n, z3.Or([z3.And(p == i, tr.enabled) for i, tr in enumerate(trs)]), *eqs]


@dataclass(frozen=True)
class Chosen:
    """The state after process ``sel`` steps, given each process's own
    successor: process i's fields come from ``afters[i]`` when i stepped,
    else from ``before``; shared fields from the chosen successor."""

    before: SymState
    afters: list[SymState]
    sel: Term

    def local(self, get: Callable[[SymState], Term], i: int) -> Term:
        return term_if(self.sel == i, get(self.afters[i])[i], get(self.before)[i])

    def shared(self, get: Callable[[SymState], Term]) -> Term:
        out = get(self.afters[-1])
        for i in range(len(self.afters) - 2, -1, -1):
            out = term_if(self.sel == i, get(self.afters[i]), out)
        return out


def scalarize(src: SymState | Chosen, sysm: SymSystem, n: int, inodes: int, tag: str) -> tuple[SymState, list[Term]]:
    """A state of fresh scalar constants (arrays as Store chains of them
    over the n processes and the bounded inodes and bytes), and the
    equations that make it equal ``src`` there.  Every value the bounded run
    can read lies in that range, so the solver works on small scalar terms:
    far faster than arrays unrolled as terms or equated as wholes."""
    eqs: list[Term] = []
    I = z3.IntSort()
    chosen = src if isinstance(src, Chosen) else Chosen(src, [src], z3.IntVal(0))

    def scalar(name: str, value: Term) -> Term:
        v = z3.Const(f"{name}{tag}", value.sort())
        # Selects over Store chains become if-then-else: measured ten times
        # faster on go-output-file than leaving them to the array theory.
        eqs.append(v == z3.simplify(value, expand_select_store=True))
        return v

    def per_proc(name: str, get: Callable[[SymState], Term]) -> Term:
        default = z3.BoolVal(False) if get(chosen.before).range() == z3.BoolSort() else z3.IntVal(0)
        out = z3.K(I, default)
        for i in range(n):
            value = chosen.local(get, i) if isinstance(src, Chosen) else get(src)[i]
            out = z3.Store(out, i, scalar(f"{name}[{i}]", value))
        return out

    def shared(name: str, get: Callable[[SymState], Term]) -> Term:
        return scalar(name, chosen.shared(get))

    size = z3.K(I, z3.IntVal(0))
    data = z3.Array(f"data-free{tag}", I, I, I)
    for ino in range(inodes):
        size = z3.Store(size, ino, shared(f"size[{ino}]", _get_size(ino)))
        for b in range(sysm.bytes.bound or 0):
            data = z3.Store(data, ino, b, shared(f"data[{ino},{b}]", _get_byte(ino, b)))

    def per_inode(name: str, default: int, get: Callable[[SymState], Term | None]) -> Term | None:
        if get(chosen.before) is None:
            return None  # not a feature of this system
        out = z3.K(I, z3.IntVal(default))
        for ino in range(inodes):
            out = z3.Store(out, ino, shared(f"{name}[{ino}]", _get_at(get, ino)))
        return out

    fs = SymFS({k: shared(f"name:{k}", _get_name(k)) for k in sysm.shared_paths}, size, data,
               shared("nino", lambda st: st.fs.nino), {k: shared(f"dir:{k}", _get_dir(k)) for k in sysm.dirs},
               per_inode("link", -1, lambda st: st.fs.link), per_inode("lock", 0, lambda st: st.fs.lock),
               {k: shared(f"object:{k}", _get_object(k)) for k in sysm.object_keys},
               {k: shared(f"etag:{k}", _get_etag(k)) for k in sysm.object_keys},
               None if chosen.before.fs.etags is None else shared("etags", _get_etags))
    eqs.append(fs.nino <= inodes)
    out = SymState(per_proc("pc", lambda st: st.pc), per_proc("st", lambda st: st.st), per_proc("last", lambda st: st.last),
                   per_proc("prog", lambda st: st.prog), per_proc("began", lambda st: st.began),
                   {k: per_proc(f"{k[0]}.{k[1]}", _get_reg(k)) for k in chosen.before.regs},
                   {k: per_proc(f"priv:{k}", _get_priv(k)) for k in chosen.before.priv}, fs,
                   shared("faults", lambda st: st.faults), shared("pub", lambda st: st.pub),
                   {k: shared(f"pub:{k}", _get_pub(k)) for k in chosen.before.pub_path})
    return out, eqs


Getter = Callable[[SymState], Term]


def _get_size(j: int) -> Getter:
    return lambda st: st.fs.size[j]


def _get_byte(j: int, b: int) -> Getter:
    return lambda st: st.fs.data[j, b]


def _get_name(k: str) -> Getter:
    return lambda st: st.fs.names[k]


def _get_object(k: str) -> Getter:
    return lambda st: st.fs.objects[k]


def _get_etag(k: str) -> Getter:
    return lambda st: st.fs.etag[k]


def _get_etags(st: SymState) -> Term:
    return st.fs.etags


def _get_dir(k: str) -> Getter:
    return lambda st: st.fs.dirs[k]


def _get_at(get: Callable[[SymState], Term | None], j: int) -> Getter:
    def at(st: SymState) -> Term:
        arr = get(st)
        assert arr is not None
        return arr[j]
    return at


def _get_reg(k: tuple[str, str]) -> Getter:
    return lambda st: st.regs[k]


def _get_priv(k: str) -> Getter:
    return lambda st: st.priv[k]


def _get_pub(k: str) -> Getter:
    return lambda st: st.pub_path[k]


def decode(system: System, choices: list[tuple[int, bool, int]]) -> tuple[tuple[TraceStep, ...], list[World]]:
    """Turn the solver's (process, fault?, fault variant) choices into
    trace steps, naming each fault as the model does (its errno, bytes
    landed before it - for an object-store request, the variant), and run
    them on ``spec.machine``; DecodeError if a step is impossible."""
    w = initial(system)
    worlds = [w]
    steps: list[TraceStep] = []
    for n, (i, faulty, cut) in enumerate(choices, 1):
        name = system.names[i]
        if w.procs[i].status is not Status.RUNNING:
            raise DecodeError(f"step {n}: the solver stepped {name}, which has ended ({w.procs[i].status.value})")
        fault = None
        if faulty:
            allowed = faults(system, w, i)
            ins = system.kinds[w.procs[i].kind].program.code[w.procs[i].pc]
            if reads_variant(ins):
                allowed = [a for a in allowed if a[1] == cut]
            if len(allowed) != 1:
                raise DecodeError(f"step {n}: the solver injected a fault into {name} but the model allows {allowed}")
            fault = allowed[0]
        steps.append(TraceStep(name, fault))
        w = model_step(system, w, i, fault)
        worlds.append(w)
    return tuple(steps), worlds


def _checked(res: BmcResult) -> BmcResult:
    """Confirm in the model that the decoded run ends in a violation, and
    that ``spec.trace.replay`` of its trace passes the same worlds."""
    why = res.property.check(res.system, res.worlds[-1])
    if why is None:
        raise DecodeError(f"the solver's run does not violate {res.property.name} in the model")
    trace = res.trace()
    assert trace is not None
    if replay(trace) != res.worlds:
        raise DecodeError("spec.trace.replay of the solver's trace passes other worlds than the decoding")
    res.reason = why
    return res
