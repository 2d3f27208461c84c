"""The properties of ``spec.properties``, as formulas over a symbolic state.

Each is stated over a :class:`Procs` range: a finite one (process ids
0..N-1, for bounded model checking and for checks on concrete states) or
all integers (the unbounded proofs, where every integer is a process).
:data:`PROPERTY_FORMULAS` is keyed by the ``Property`` values themselves.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Callable, Mapping

import z3

from spec.ops import Role
from spec.properties import HITS, NO_SIGBUS, STAYS, Property
from spec.state import Began, Status

from .symbolic import SymPayload, SymState, SymSystem, Term, file_ino, status_code


@dataclass(frozen=True)
class Procs:
    """The process ids a formula ranges over: 0..n-1, or every integer."""

    n: int | None = None

    def forall(self, body: Callable[[Term], Term]) -> Term:
        if self.n is None:
            p = z3.FreshInt("p")
            return z3.ForAll([p], body(p))
        return z3.And([body(z3.IntVal(i)) for i in range(self.n)])

    def exists(self, body: Callable[[Term], Term]) -> Term:
        if self.n is None:
            p = z3.FreshInt("p")
            return z3.Exists([p], body(p))
        return z3.Or([body(z3.IntVal(i)) for i in range(self.n)])


def holds_payload(sysm: SymSystem, s: SymState, ino: Term, pl: SymPayload) -> Term:
    """Inode ``ino`` holds exactly payload ``pl``."""
    return z3.And(ino >= 0, s.fs.size[ino] == pl.length,
                  sysm.bytes.forall_below(pl.length, lambda b: s.fs.data[ino, b] == pl.data[b]))


def writers_payloads(sysm: SymSystem, path: str) -> list[SymPayload]:
    """Every distinct payload a writer in the system means to store at ``path``."""
    out: list[SymPayload] = []
    for k in sysm.kinds:
        for pp, name in k.program.publishes:
            pl = k.payload(name)
            if pp.name == path and not any(pl.length.eq(o.length) and pl.data.eq(o.data) for o in out):
                out.append(pl)
    return out


def stays_complete(sysm: SymSystem, s: SymState, procs: Procs) -> Term:
    """published-entry-stays-complete: once a writer of a path has returned
    ok, the path holds the complete payload of some writer of it."""
    out = []
    for path in sysm.published_paths():
        ino = file_ino(sysm, s, path)
        ok = z3.Or([holds_payload(sysm, s, ino, pl) for pl in writers_payloads(sysm, path)])
        out.append(z3.Implies(s.pub_path[path], ok))
    return z3.And(out)


def reader_hits(sysm: SymSystem, s: SymState, procs: Procs) -> Term:
    """reader-after-publication-hits: a reader whose first step came after
    the first publication has not ended with a miss or SIGBUS."""
    readers = [i for i, k in enumerate(sysm.kinds) if k.program.role is Role.READER]
    bad = (status_code(Status.MISS), status_code(Status.SIGBUS))

    def ok(p: Term) -> Term:
        is_reader = z3.Or([sysm.kind_of[p] == i for i in readers])
        return z3.Implies(z3.And(is_reader, s.began[p] == Began.AFTER_PUBLICATION),
                          z3.And([s.st[p] != c for c in bad]))

    return procs.forall(ok)


def never_faults(sysm: SymSystem, s: SymState, procs: Procs) -> Term:
    """mmap-reader-never-faults: no process has died of SIGBUS."""
    return procs.forall(lambda p: s.st[p] != status_code(Status.SIGBUS))


Formula = Callable[[SymSystem, SymState, Procs], Term]

PROPERTY_FORMULAS: Mapping[Property, Formula] = MappingProxyType({
    STAYS: stays_complete,
    HITS: reader_hits,
    NO_SIGBUS: never_faults,
})


def formula(prop: Property) -> Formula:
    """The formula of ``prop``; KeyError names the properties encoded."""
    try:
        return PROPERTY_FORMULAS[prop]
    except KeyError:
        raise KeyError(f"{prop.name} has no solver formula (have: {', '.join(p.name for p in PROPERTY_FORMULAS)})") from None
