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

import z3

from spec.explore import Setup, build
from spec.machine import Config, Kind, World, initial, local_faults, step as model_step
from spec.properties import get_property
from spec.protocols import protocol
from spec.trace import Trace, TraceStep, replay

from .props import PROPERTY_FORMULAS, Procs
from .symbolic import Bytes, SymKind, SymPayload, System, initial_state, step


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
        model = build(setup)
        procs = tuple((name, setup.payloads()) for name in setup.process_protocols())
        return Scenario(procs, setup.faults, model.names, setup)

    def config(self) -> Config:
        """The model's Config for these processes (byte granularity)."""
        return Config(tuple(Kind(name, protocol(name).program, pls) for name, pls in self.kinds), "byte", self.faults)

    def kind_index(self) -> tuple[int, ...]:
        return tuple(self.kinds.index(p) for p in self.procs)

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


def search(scn: Scenario, prop: str, depth: int, timeout_ms: int = 60_000) -> BmcResult:
    """A shortest run of at most ``depth`` steps that violates ``prop``."""
    started = time.perf_counter()
    sysm = scn.system()
    n = len(scn.procs)
    solver = z3.Solver()
    solver.set("timeout", timeout_ms)
    s = initial_state(sysm, n)
    sels: list[tuple[z3.ArithRef, z3.BoolRef]] = []
    formula = PROPERTY_FORMULAS[prop]
    for t in range(depth + 1):
        solver.push()
        solver.add(z3.Not(formula(sysm, s, Procs(n))))
        r = solver.check()
        if r == z3.sat:
            model = solver.model()
            choices = [(model.eval(p, True).as_long(), z3.is_true(model.eval(f, True))) for p, f in sels]
            solver.pop()
            steps, worlds = decode(scn, choices)
            return _checked(BmcResult(scn, prop, depth, steps, t, "counterexample", time.perf_counter() - started, worlds))
        solver.pop()
        if r == z3.unknown:
            return BmcResult(scn, prop, depth, None, t, "unknown", time.perf_counter() - started, reason=solver.reason_unknown())
        if t == depth:
            break
        p, f = z3.Int(f"sel@{t}"), z3.Bool(f"fault@{t}")
        tr = step(sysm, s, p, f)
        # Unrolled as terms (no fresh state per step): measured faster than
        # equating fresh arrays, which makes the solver reason about
        # extensionality.
        solver.add(p >= 0, p < n, tr.enabled)
        nxt = tr.after
        sels.append((p, f))
        s = nxt
    return BmcResult(scn, prop, depth, None, depth, "none", time.perf_counter() - started)


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
