"""Does the solver's transition agree with ``spec.machine``, state by state?

For states the explorer reaches, every move (process, fault) is taken both
ways: by ``spec.machine.step`` and by :func:`proofs.symbolic.step` on the
abstraction of the state (``proofs.concrete.abstract``).  With every input
concrete, Z3's simplifier evaluates the symbolic successor to constants,
which must equal the abstraction of the model's successor on every field
the model defines: each process's pc, status, errno, progress, began and
registers, every name, every inode's size and its bytes below the size.
This is the evidence that the encoding is the model, not a hand copy of it.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import islice

import z3  # type: ignore[import-untyped]

from spec.explore import Setup, build, explore
from spec.machine import World, faults, step as model_step

from .bmc import Scenario
from .concrete import abstract, kind_of_array
from .symbolic import SymState, System, step


@dataclass(frozen=True)
class Mismatch:
    """One field on which the two interpreters disagree after one move."""

    state: World
    process: int
    fault: tuple[str, int] | None
    field: str
    model: str
    solver: str


def _value(e: z3.ExprRef) -> str:
    return str(z3.simplify(e, expand_select_store=True))


def _fields(s: SymState, sysm: System, n: int, sizes: list[int]) -> dict[str, z3.ExprRef]:
    out: dict[str, z3.ExprRef] = {"faults": s.faults, "pub": s.pub, "nino": s.fs.nino}
    out.update({f"name:{k}": v for k, v in s.fs.names.items()})
    for i in range(n):
        for name, arr in (("pc", s.pc), ("st", s.st), ("last", s.last), ("prog", s.prog), ("began", s.began)):
            out[f"{name}[{i}]"] = arr[i]
        for (r, f), arr in s.regs.items():
            out[f"{r}.{f}[{i}]"] = arr[i]
        for k, arr in s.priv.items():
            out[f"priv:{k}[{i}]"] = arr[i]
    for ino, size in enumerate(sizes):
        out[f"size[{ino}]"] = s.fs.size[ino]
        for b in range(size):
            out[f"data[{ino},{b}]"] = s.fs.data[ino, b]
    return out


def mismatches(setup: Setup, max_states: int = 200) -> tuple[int, list[Mismatch]]:
    """(moves compared, disagreements) over up to ``max_states`` explored states."""
    model = build(setup)
    cfg = model.config
    scn = Scenario.of_setup(setup)
    base = scn.system()
    states = list(islice(explore(setup, properties=(), stop_when_all_violated=False).parent, max_states))
    moves, bad = 0, []
    for w in states:
        sysm = System(base.kinds, kind_of_array(base, cfg, w.procs), base.bytes, cfg.fault_budget)
        s = abstract(sysm, cfg, w)
        for i, p in enumerate(w.procs):
            if p.status != "run":
                continue
            for fault in [None, *faults(cfg, w, i)]:
                moves += 1
                after_model = model_step(cfg, w, i, fault)
                tr = step(sysm, s, z3.IntVal(i), z3.BoolVal(fault is not None))
                if not z3.is_true(z3.simplify(tr.enabled, expand_select_store=True)):
                    bad.append(Mismatch(w, i, fault, "enabled", "True", _value(tr.enabled)))
                    continue
                want = _fields(abstract(sysm, cfg, after_model), sysm, len(w.procs), [len(c or b"") for c in after_model.fs.contents])
                got = _fields(tr.after, sysm, len(w.procs), [len(c or b"") for c in after_model.fs.contents])
                for name, expr in want.items():
                    a, b = _value(expr), _value(got[name])
                    if a != b:
                        bad.append(Mismatch(w, i, fault, name, a, b))
    return moves, bad
