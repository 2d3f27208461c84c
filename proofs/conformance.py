"""Does the solver's transition agree with ``spec.machine``, state by state?

For states the explorer reaches, every move (process, fault) is taken both
ways: by ``spec.machine.step`` (the semantics on Python values) and by
:func:`proofs.symbolic.step` (the same semantics on Z3 terms) on the
abstraction of the state (``proofs.concrete.abstract``).  With every input
concrete, Z3's simplifier evaluates the symbolic successor to constants,
which must equal the abstraction of the model's successor on every field
the model defines: each process's pc, status, errno, progress, began and
registers, every name, every inode's size and its bytes below the size,
and the object store's keys and ETags.
This is the evidence that the Z3 domain and its merging of checks and
branches give the model's transition, not another one.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import islice

import z3

from spec.explore import explore
from spec.machine import Fault, enabled, faults, step as model_step
from spec.state import Status, World
from spec.system import System

from .concrete import abstract, file_bytes, kind_of_array
from .symbolic import SymState, SymSystem, Term, encode, step


@dataclass(frozen=True)
class Mismatch:
    """One field on which the two interpreters disagree after one move."""

    state: World
    process: int
    fault: Fault
    field: str
    model: str
    solver: str


def _value(e: Term) -> str:
    return str(z3.simplify(e, expand_select_store=True))


def _fields(s: SymState, n: int, sizes: list[int]) -> dict[str, Term]:
    """Every field the model defines: ``sizes`` are the model's inodes'
    byte counts (the solver's bytes past them are unspecified)."""
    out: dict[str, Term] = {"faults": s.faults, "pub": s.pub, "nino": s.fs.nino}
    out.update({f"name:{k}": v for k, v in s.fs.names.items()})
    out.update({f"dir:{k}": v for k, v in s.fs.dirs.items()})
    out.update({f"object:{k}": v for k, v in s.fs.objects.items()})
    out.update({f"etag:{k}": v for k, v in s.fs.etag.items()})
    if s.fs.etags is not None:
        out["etags"] = s.fs.etags
    for i in range(n):
        for name, arr in (("pc", s.pc), ("st", s.st), ("last", s.last), ("prog", s.prog), ("began", s.began)):
            out[f"{name}[{i}]"] = arr[i]
        for (r, f), arr in s.regs.items():
            # An empty body's source names no byte (the model keeps bytes only).
            out[f"{r}.{f}[{i}]"] = z3.If(s.regs[(r, "len")][i] > 0, arr[i], -2) if f == "src" else arr[i]
        for k, arr in s.priv.items():
            out[f"priv:{k}[{i}]"] = arr[i]
    for ino, size in enumerate(sizes):
        out[f"size[{ino}]"] = s.fs.size[ino]
        for b in range(size):
            out[f"data[{ino},{b}]"] = s.fs.data[ino, b]
        if s.fs.link is not None:
            out[f"link[{ino}]"] = s.fs.link[ino]
        if s.fs.lock is not None:
            out[f"lock[{ino}]"] = s.fs.lock[ino]
    return out


def mismatches(system: System, max_states: int = 200) -> tuple[int, list[Mismatch]]:
    """(moves compared, disagreements) over up to ``max_states`` explored
    states of ``system``.  A process the model has waiting (for a lock)
    must have no transition in the solver, with a fault or without."""
    base = encode(system)
    states = list(islice(explore(system, properties=(), stop_when_all_violated=False).worlds(), max_states))
    moves, bad = 0, []
    for w in states:
        sysm = SymSystem(base.kinds, kind_of_array(base, system, w.procs), base.bytes, base.fault_budget)
        s = abstract(sysm, system, w)
        for i, p in enumerate(w.procs):
            if p.status is not Status.RUNNING:
                continue
            can = enabled(system, w, i)
            for fault in [None, *faults(system, w, i)]:
                moves += 1
                # The fault's variant, as the model names it (its "bytes").
                tr = step(sysm, s, z3.IntVal(i), z3.BoolVal(fault is not None), z3.IntVal(fault[1] if fault else 0))
                if not z3.is_true(z3.simplify(tr.enabled == can, expand_select_store=True)):
                    bad.append(Mismatch(w, i, fault, "enabled", str(can), _value(tr.enabled)))
                    continue
                if not can:
                    continue
                after_model = model_step(system, w, i, fault)
                sizes = [len(file_bytes(c)) for c in after_model.fs.contents]
                want = _fields(abstract(sysm, system, after_model), len(w.procs), sizes)
                got = _fields(tr.after, len(w.procs), sizes)
                for name, expr in want.items():
                    a, b = _value(expr), _value(got[name])
                    if a != b:
                        bad.append(Mismatch(w, i, fault, name, a, b))
    return moves, bad
