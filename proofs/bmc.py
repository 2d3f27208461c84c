"""Bounded model checking: a shortest counterexample within N processes and
depth k, decoded into the project's trace format and replayed in the model.

A :class:`Scenario` is the fixed process mix: usually an explorer
``Setup`` (then the counterexample is a ``spec.trace.Trace`` that the model
replay and the OS replay consume), or processes with payloads of their own
(two writers of different lengths, say), which ``Setup`` cannot express;
those are replayed step by step on ``spec.machine`` with the same Config.

The encoding is quantifier-free: N is concrete, so are the payloads and
hence every byte range (``Bytes(bound)``).  The search deepens one step at a
time, so the first model found is a shortest counterexample.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import z3  # type: ignore[import-untyped]

from spec.explore import Setup, build
from spec.ops import Open, OpenFlags
from spec.machine import Config, Kind, World, initial, local_faults, step as model_step
from spec.properties import get_property
from spec.protocols import protocol
from spec.trace import Trace, TraceStep, replay

from .props import PROPERTY_FORMULAS, Procs
from .symbolic import Bytes, SymFS, SymKind, SymPayload, SymState, System, initial_state, step


class DecodeError(RuntimeError):
    """A solver model did not replay in ``spec.machine``: the encoding and
    the model disagree (a bug to report, never a result)."""


def concrete_payload(data: bytes) -> SymPayload:
    """A payload of concrete bytes, as an array built from K and Store."""
    arr: z3.ArrayRef = z3.K(z3.IntSort(), z3.IntVal(0))
    for i, byte in enumerate(data):
        arr = z3.Store(arr, i, byte)
    return SymPayload(z3.IntVal(len(data)), arr)


@dataclass(frozen=True)
class Scenario:
    """Who runs: each process's protocol and payloads, the fault budget,
    and the explorer Setup it comes from (None when Setup cannot say it)."""

    procs: tuple[tuple[str, tuple[tuple[str, bytes], ...]], ...]
    faults: int
    names: tuple[str, ...]
    setup: Setup | None = None
    kinds: tuple[tuple[str, tuple[tuple[str, bytes], ...]], ...] = field(init=False, compare=False)

    def __post_init__(self) -> None:
        kinds: list[tuple[str, tuple[tuple[str, bytes], ...]]] = []
        for proc in self.procs:
            if proc not in kinds:
                kinds.append(proc)
        object.__setattr__(self, "kinds", tuple(kinds))

    @staticmethod
    def of_setup(setup: Setup) -> "Scenario":
        if setup.crashes or setup.granularity != "byte":
            raise ValueError("the solver encodes byte granularity without crashes only")
        model = build(setup)
        procs = tuple((name, setup.payloads()) for name in setup.process_protocols())
        return Scenario(procs, setup.faults, model.names, setup)

    def config(self) -> Config:
        """The model's Config for these processes (byte granularity)."""
        return Config(tuple(Kind(name, protocol(name).program, pls) for name, pls in self.kinds), "byte", self.faults)

    def kind_index(self) -> tuple[int, ...]:
        return tuple(self.kinds.index(p) for p in self.procs)

    def max_inodes(self) -> int:
        """At most one inode per creating open a process can execute (the
        catalogue's programs only jump forward, so each open runs once)."""
        return sum(sum(1 for ins in protocol(name).program.code if isinstance(ins, Open) and OpenFlags.CREAT in ins.flags)
                   for name, _ in self.procs)

    def system(self) -> System:
        kinds = tuple(SymKind(name, protocol(name).program, {n: concrete_payload(b) for n, b in pls})
                      for name, pls in self.kinds)
        kind_of: z3.ArrayRef = z3.K(z3.IntSort(), z3.IntVal(0))
        for i, ki in enumerate(self.kind_index()):
            kind_of = z3.Store(kind_of, i, ki)
        bound = max(len(b) for _, pls in self.kinds for _, b in pls) + 1
        return System(kinds, kind_of, Bytes(bound), self.faults)


@dataclass
class BmcResult:
    """What the search found: a trace (steps over process names) reaching a
    violation of ``property`` at ``depth``, or nothing up to ``bound``."""

    scenario: Scenario
    property: str
    bound: int
    steps: tuple[TraceStep, ...] | None
    depth: int
    outcome: str  # "counterexample", "none" (no violation up to bound) or "unknown"
    seconds: float
    worlds: list[World] = field(default_factory=list, repr=False)
    reason: str = ""

    def trace(self) -> Trace | None:
        """The counterexample in the common trace format, when the scenario
        is an explorer Setup."""
        if self.steps is None or self.scenario.setup is None:
            return None
        return Trace(self.scenario.setup, self.steps, self.property)


# Per query: a deterministic work budget (Z3's rlimit), so that the outcome
# does not depend on the machine's load; the largest query of the catalogue
# uses about 10 million (go-output-file at depth 9), the budget is 50 times
# that.  The wall-clock timeout is only a backstop.  Running out of either
# is ``unknown``, a failure, never a pass.
RLIMIT = 500_000_000
TIMEOUT_MS = 600_000


def search(scn: Scenario, prop: str, depth: int, timeout_ms: int = TIMEOUT_MS, start: int = 0) -> BmcResult:
    """A shortest run of at most ``depth`` steps that violates ``prop``
    (asked only from depth ``start`` on: pass the shortest depth when an
    exhaustive search has already shown that no shallower run violates).

    Each depth is a fresh, non-incremental QF_AUFLIA query: measured about
    three times faster here than one incremental solver with push/pop,
    which gives up Z3's preprocessing."""
    started = time.perf_counter()
    sysm = scn.system()
    n = len(scn.procs)
    inodes = scn.max_inodes()
    s, facts = scalarize(initial_state(sysm, n), sysm, n, inodes, "@0")
    sels: list[tuple[z3.ArithRef, z3.BoolRef]] = []
    formula = PROPERTY_FORMULAS[prop]
    # Symmetry breaking: of two identical processes (same program, same
    # payloads), the later-named one never takes its first step before the
    # earlier one.  Sound: renaming identical processes maps every run to
    # one that obeys this, and the properties do not depend on names.
    twins = [i for i in range(n - 1) if scn.procs[i] == scn.procs[i + 1]]
    for t in range(depth + 1):
        if t < start:
            p, f = z3.Int(f"sel@{t}"), z3.Bool(f"fault@{t}")
            s, facts = _extend(sysm, s, facts, p, f, n, inodes, t)
            facts += _first_steps_in_order(sels, p, twins)
            sels.append((p, f))
            continue
        solver = z3.SolverFor("QF_AUFLIA")
        solver.set("timeout", timeout_ms)
        solver.set("rlimit", RLIMIT)
        solver.add(*facts, z3.Not(formula(sysm, s, Procs(n))))
        r = solver.check()
        if r == z3.sat:
            model = solver.model()
            choices = [(model.eval(p, True).as_long(), z3.is_true(model.eval(f, True))) for p, f in sels]
            steps, worlds = decode(scn, choices)
            return _checked(BmcResult(scn, prop, depth, steps, t, "counterexample", time.perf_counter() - started, worlds))
        if r == z3.unknown:
            return BmcResult(scn, prop, depth, None, t, "unknown", time.perf_counter() - started, reason=solver.reason_unknown())
        if t == depth:
            break
        p, f = z3.Int(f"sel@{t}"), z3.Bool(f"fault@{t}")
        s, facts = _extend(sysm, s, facts, p, f, n, inodes, t)
        facts += _first_steps_in_order(sels, p, twins)
        sels.append((p, f))
    return BmcResult(scn, prop, depth, None, depth, "none", time.perf_counter() - started)


def _first_steps_in_order(sels: list[tuple[z3.ArithRef, z3.BoolRef]], p: z3.ArithRef, twins: list[int]) -> list[z3.BoolRef]:
    return [z3.Implies(p == i + 1, z3.Or([q == i for q, _ in sels])) for i in twins]


def _extend(sysm: System, s: SymState, facts: list[z3.BoolRef], p: z3.ArithRef, f: z3.BoolRef, n: int, inodes: int,
            t: int) -> tuple[SymState, list[z3.BoolRef]]:
    """One more step: process ``p`` moves (with fault ``f`` or not)."""
    # One transition per concrete process id: with constant indexes the
    # simplifier resolves every select, so each step is small.
    trs = [step(sysm, s, z3.IntVal(i), f) for i in range(n)]
    s2, eqs = scalarize(Chosen(s, [tr.after for tr in trs], p), sysm, n, inodes, f"@{t + 1}")
    return s2, facts + [p >= 0, p < n, z3.Or([z3.And(p == i, tr.enabled) for i, tr in enumerate(trs)]), *eqs]


@dataclass(frozen=True)
class Chosen:
    """The state after process ``sel`` steps, given each process's own
    successor: process i's fields come from ``afters[i]`` when i stepped,
    else from ``before``; shared fields from the chosen successor."""

    before: SymState
    afters: list[SymState]
    sel: z3.ArithRef

    def local(self, get: Callable[[SymState], z3.ArrayRef], i: int) -> z3.ExprRef:
        return z3.If(self.sel == i, get(self.afters[i])[i], get(self.before)[i])

    def shared(self, get: Callable[[SymState], z3.ExprRef]) -> z3.ExprRef:
        out = get(self.afters[-1])
        for i in range(len(self.afters) - 2, -1, -1):
            out = z3.If(self.sel == i, get(self.afters[i]), out)
        return out


def scalarize(src: SymState | Chosen, sysm: System, n: int, inodes: int, tag: str) -> tuple[SymState, list[z3.BoolRef]]:
    """A state of fresh scalar constants (arrays as Store chains of them
    over the n processes and the bounded inodes and bytes), and the
    equations that make it equal ``src`` there.  Every value the bounded run
    can read lies in that range, so the solver works on small scalar terms:
    far faster than arrays unrolled as terms or equated as wholes."""
    eqs: list[z3.BoolRef] = []
    I = z3.IntSort()
    chosen = src if isinstance(src, Chosen) else Chosen(src, [src], z3.IntVal(0))

    def scalar(name: str, value: z3.ExprRef) -> z3.ExprRef:
        v = z3.Const(f"{name}{tag}", value.sort())
        # Selects over Store chains become if-then-else: measured ten times
        # faster on go-output-file than leaving them to the array theory.
        eqs.append(v == z3.simplify(value, expand_select_store=True))
        return v

    def per_proc(name: str, get: Callable[[SymState], z3.ArrayRef]) -> z3.ArrayRef:
        default = z3.BoolVal(False) if get(chosen.before).range() == z3.BoolSort() else z3.IntVal(0)
        out = z3.K(I, default)
        for i in range(n):
            value = chosen.local(get, i) if isinstance(src, Chosen) else get(src)[i]
            out = z3.Store(out, i, scalar(f"{name}[{i}]", value))
        return out

    def shared(name: str, get: Callable[[SymState], z3.ExprRef]) -> z3.ExprRef:
        return scalar(name, chosen.shared(get))

    size = z3.K(I, z3.IntVal(0))
    data = z3.Array(f"data-free{tag}", I, I, I)
    for ino in range(inodes):
        size = z3.Store(size, ino, shared(f"size[{ino}]", _get_size(ino)))
        for b in range(sysm.bytes.bound or 0):
            data = z3.Store(data, ino, b, shared(f"data[{ino},{b}]", _get_byte(ino, b)))
    fs = SymFS({k: shared(f"name:{k}", _get_name(k)) for k in sysm.shared_paths}, size, data,
               shared("nino", lambda st: st.fs.nino))
    eqs.append(fs.nino <= inodes)
    out = SymState(per_proc("pc", lambda st: st.pc), per_proc("st", lambda st: st.st), per_proc("last", lambda st: st.last),
                   per_proc("prog", lambda st: st.prog), per_proc("began", lambda st: st.began),
                   {k: per_proc(f"{k[0]}.{k[1]}", _get_reg(k)) for k in chosen.before.regs},
                   {k: per_proc(f"priv:{k}", _get_priv(k)) for k in chosen.before.priv}, fs,
                   shared("faults", lambda st: st.faults), shared("pub", lambda st: st.pub),
                   {k: shared(f"pub:{k}", _get_pub(k)) for k in chosen.before.pub_path})
    return out, eqs


Getter = Callable[[SymState], z3.ExprRef]


def _get_size(j: int) -> Getter:
    return lambda st: st.fs.size[j]


def _get_byte(j: int, b: int) -> Getter:
    return lambda st: st.fs.data[j, b]


def _get_name(k: str) -> Getter:
    return lambda st: st.fs.names[k]


def _get_reg(k: tuple[str, str]) -> Getter:
    return lambda st: st.regs[k]


def _get_priv(k: str) -> Getter:
    return lambda st: st.priv[k]


def _get_pub(k: str) -> Getter:
    return lambda st: st.pub_path[k]


def decode(scn: Scenario, choices: list[tuple[int, bool]]) -> tuple[tuple[TraceStep, ...], list[World]]:
    """Turn the solver's (process, fault?) choices into trace steps, naming
    each fault as the model does (its errno, bytes landed before it), and
    replay them on ``spec.machine``; DecodeError if a step is impossible."""
    cfg = scn.config()
    w = initial(cfg, scn.kind_index())
    worlds = [w]
    steps: list[TraceStep] = []
    for n, (i, faulty) in enumerate(choices, 1):
        p = w.procs[i]
        if p.status != "run":
            raise DecodeError(f"step {n}: the solver stepped {scn.names[i]}, which has ended ({p.status})")
        fault = None
        if faulty:
            allowed = local_faults(cfg, p, w.faults < cfg.fault_budget)
            if len(allowed) != 1:
                raise DecodeError(f"step {n}: the solver injected a fault into {scn.names[i]} but the model allows {allowed}")
            fault = allowed[0]
        steps.append(TraceStep(scn.names[i], fault))
        w = model_step(cfg, w, i, fault)
        worlds.append(w)
    return tuple(steps), worlds


def _checked(res: BmcResult) -> BmcResult:
    """Confirm in the model that the decoded run ends in a violation; with a
    Setup, through ``spec.trace.replay`` (the explorer's replay) too."""
    cfg = res.scenario.config()
    why = get_property(res.property).check(cfg, res.worlds[-1])
    if why is None:
        raise DecodeError(f"the solver's run does not violate {res.property} in the model")
    trace = res.trace()
    if trace is not None:
        last = replay(trace)[-1]
        if get_property(res.property).check(build(trace.setup).config, last) is None:
            raise DecodeError(f"spec.trace.replay of the solver's trace does not violate {res.property}")
    res.reason = why
    return res
