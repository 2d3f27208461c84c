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

from spec.ops import ACTION_KEY, OUTPUT_KEY, ProgramError, PutObject, Role
from spec.properties import HITS, NO_SIGBUS, REMOTE_HIT, REMOTE_RECORD, STAYS, Property
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


def objects_put(sysm: SymSystem, key: str) -> list[SymPayload]:
    """Every distinct payload a process means to PUT at ``key`` (whole)."""
    out: list[SymPayload] = []
    for k in sysm.kinds:
        for ins in k.program.code:
            if isinstance(ins, PutObject) and ins.key.name == key:
                if ins.data.start is not None or ins.data.stop is not None:
                    raise ProgramError(f"{k.name}: {ins}: the solver's formula speaks of whole payloads only")
                pl = k.payload(ins.data.payload)
                if not any(pl.length.eq(o.length) and pl.data.eq(o.data) for o in out):
                    out.append(pl)
    return out


def record_names_complete_output(sysm: SymSystem, s: SymState, procs: Procs) -> Term:
    """remote-record-names-complete-output: while the action record
    exists, the output object holds the complete payload of some putter."""
    if ACTION_KEY.name not in s.fs.objects or OUTPUT_KEY.name not in s.fs.objects:
        return z3.BoolVal(True)
    outputs = objects_put(sysm, OUTPUT_KEY.name)
    if not outputs:
        return z3.BoolVal(True)
    out = s.fs.objects[OUTPUT_KEY.name]
    return z3.Implies(s.fs.objects[ACTION_KEY.name] >= 0, z3.Or([holds_payload(sysm, s, out, pl) for pl in outputs]))


def hit_serves_complete_output(sysm: SymSystem, s: SymState, procs: Procs) -> Term:
    """remote-hit-serves-complete-output: a process of a program that
    publishes a local path and has ended with a hit finds that path
    holding exactly its payload."""
    servers = [(i, k) for i, k in enumerate(sysm.kinds) if k.program.role is Role.READER and k.program.publishes]
    if not servers:
        return z3.BoolVal(True)

    def ok(p: Term) -> Term:
        parts = []
        for i, k in servers:
            whole = z3.And([holds_payload(sysm, s, file_ino(sysm, s, path.name), k.payload(name))
                            for path, name in k.program.publishes])
            parts.append(z3.Implies(z3.And(sysm.kind_of[p] == i, s.st[p] == status_code(Status.HIT)), whole))
        return z3.And(parts)

    return procs.forall(ok)


Formula = Callable[[SymSystem, SymState, Procs], Term]

PROPERTY_FORMULAS: Mapping[Property, Formula] = MappingProxyType({
    STAYS: stays_complete,
    HITS: reader_hits,
    NO_SIGBUS: never_faults,
    REMOTE_RECORD: record_names_complete_output,
    REMOTE_HIT: hit_serves_complete_output,
})


def formula(prop: Property) -> Formula:
    """The formula of ``prop``; KeyError names the properties encoded."""
    try:
        return PROPERTY_FORMULAS[prop]
    except KeyError:
        raise KeyError(f"{prop.name} has no solver formula (have: {', '.join(p.name for p in PROPERTY_FORMULAS)})") from None
