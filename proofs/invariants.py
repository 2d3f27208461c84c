"""The hand-written inductive invariants, one per (protocol, property).

Everything else is generated from the programs; these are the only
protocol-specific proof text.  Each invariant is a list of named conjuncts
over a :class:`View` (a symbolic state seen through one writer protocol and
one reader), so a failed check says which conjunct broke.  Program
positions are found in the program value by instruction (the Write, the
first Close, ...), never typed in as numbers.

Notation in the docstrings: E is the inode the name ``entry`` points at (-1
when absent), L the entry's length, pay its bytes; W(p) and R(p) say that
process p runs the writer or the reader protocol; "p at X" means p is
running and its next operation is X.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import z3

from spec.ops import (
    ACTION_KEY,
    ENTRY,
    OUTPUT,
    OUTPUT_KEY,
    TEMP,
    Close,
    Ftruncate,
    GetObject,
    Instr,
    Open,
    PutObject,
    Read,
    Rename,
    Write,
    WriteBuf,
)

from spec.state import READ_BIT, WRITE_BIT, Began, Status

from .props import Procs, holds_payload
from .symbolic import RUN_CODE, SymPayload, SymState, SymSystem, Term, status_code

Conjuncts = list[tuple[str, Term]]


def find(code: tuple[Instr, ...], cls: type, nth: int = 0) -> int:
    """The index of the ``nth`` instruction of type ``cls`` (-1: none)."""
    hits = [i for i, ins in enumerate(code) if isinstance(ins, cls)]
    return hits[nth] if nth < len(hits) else -1


@dataclass(frozen=True)
class View:
    """A state seen through one writer kind and one reader kind."""

    sysm: SymSystem
    s: SymState
    procs: Procs
    writer: int
    reader: int | None

    @property
    def pay(self) -> SymPayload:
        return self.sysm.kinds[self.writer].payload("entry")

    @property
    def E(self) -> Term:
        return self.s.fs.names[ENTRY.name]

    def code(self, ki: int) -> tuple[Instr, ...]:
        return self.sysm.kinds[ki].program.code

    def at(self, p: Term, ki: int | None, *pcs: int) -> Term:
        """p runs kind ``ki`` and waits at one of ``pcs`` (none: -1s dropped)."""
        if ki is None:
            return z3.BoolVal(False)
        real = [j for j in pcs if j >= 0]
        return z3.And(self.sysm.kind_of[p] == ki, self.s.st[p] == RUN_CODE, z3.Or([self.s.pc[p] == j for j in real]))

    def reg(self, name: str, fname: str, p: Term) -> Term:
        return self.s.regs[(name, fname)][p]

    def prefix(self, ino: Term, n: Term) -> Term:
        """Bytes [0, n) of ``ino`` are the entry's."""
        return self.sysm.bytes.forall_below(n, lambda b: self.s.fs.data[ino, b] == self.pay.data[b])

    def complete(self, ino: Term) -> Term:
        return holds_payload(self.sysm, self.s, ino, self.pay)

    def forall(self, body: Callable[[Term], Term]) -> Term:
        return self.procs.forall(body)


def _fd_is(v: View, p: Term, ino: Term, mode: int) -> Term:
    return z3.And(v.reg("f", "set", p), v.reg("f", "ino", p) == ino, v.reg("f", "mode", p) == mode)


# ------------------------------------------------------------ write in place


def in_place_writer(v: View) -> Conjuncts:
    """Writers that write the entry in place (write-then-truncate; the same
    text is tried on write-file, where it must fail).

    - entry-prefix:   E >= 0 implies 0 <= size(E) <= L and every byte below the
                      size is the entry's byte at that index;
    - fresh-inode:    -1 <= E < the next inode number;
    - writer-holds-E: a writer at its write, truncate or closes holds a
                      write-only descriptor on E (and E exists);
    - writer-offset:  a writer at its write has offset = progress < L and
                      progress <= size(E) (so it never leaves a hole);
    - progress-idle:  a writer not at its write has progress 0;
    - written:        a writer past its write (at truncate or first close)
                      sees size(E) = L;
    - published:      once a writer returned ok, E exists and size(E) = L.
    """
    code = v.code(v.writer)
    wr, tr, cl = find(code, Write), find(code, Ftruncate), find(code, Close)
    holders = [j for j in (wr, tr, cl, find(code, Close, 1)) if j >= 0]
    size = v.s.fs.size
    E, L = v.E, v.pay.length
    return [
        ("entry-prefix", z3.Implies(E >= 0, z3.And(size[E] >= 0, size[E] <= L, v.prefix(E, size[E])))),
        ("fresh-inode", z3.And(E >= -1, E < v.s.fs.nino)),
        ("writer-holds-E", v.forall(lambda p: z3.Implies(v.at(p, v.writer, *holders), z3.And(E >= 0, _fd_is(v, p, E, WRITE_BIT))))),
        ("writer-offset", v.forall(lambda p: z3.Implies(v.at(p, v.writer, wr), z3.And(
            v.reg("f", "off", p) == v.s.prog[p], v.s.prog[p] >= 0, v.s.prog[p] < L, v.s.prog[p] <= size[E])))),
        ("progress-idle", v.forall(lambda p: z3.Implies(z3.And(v.sysm.kind_of[p] == v.writer, z3.Not(v.at(p, v.writer, wr))), v.s.prog[p] == 0))),
        ("written", v.forall(lambda p: z3.Implies(v.at(p, v.writer, tr, cl), size[E] == L))),
        ("published", z3.Implies(v.s.pub_path[ENTRY.name], z3.And(E >= 0, size[E] == L))),
    ]


# ------------------------------------------------------------ rename into place


def rename_writer(v: View) -> Conjuncts:
    """rename-into-place: the name only ever points at a complete inode.

    Let T(p) be writer p's private temp inode (-1: unbound).
    - fresh-inodes:   E, every T(p) and every held descriptor's inode are
                      below the next inode number;
    - temps-private:  T(p) >= 0 is nobody else's temp and is not E;
    - temp-writing:   a writer at its write holds a write-only descriptor
                      on T(p), offset = progress < L, size(T(p)) = progress,
                      and the bytes below it are the entry's;
    - temp-complete:  a writer at its close or its rename has T(p) complete;
    - progress-idle:  a writer not at its write has progress 0;
    - entry-complete: E >= 0 implies E is complete;
    - published:      once a writer returned ok, E exists.
    """
    code = v.code(v.writer)
    wr, cl, rn = find(code, Write), find(code, Close), find(code, Rename)
    size, nino, E, L = v.s.fs.size, v.s.fs.nino, v.E, v.pay.length
    T = v.s.priv[TEMP.name]
    return [
        ("fresh-inodes", z3.And(E >= -1, E < nino, v.forall(lambda p: z3.And(
            T[p] < nino, z3.Implies(v.reg("f", "set", p), z3.And(v.reg("f", "ino", p) >= 0, v.reg("f", "ino", p) < nino)))))),
        ("temps-private", v.forall(lambda p: z3.Implies(T[p] >= 0, z3.And(T[p] != E, v.forall(
            lambda q: z3.Implies(p != q, T[p] != T[q])))))),
        ("temp-writing", v.forall(lambda p: z3.Implies(v.at(p, v.writer, wr), z3.And(
            T[p] >= 0, _fd_is(v, p, T[p], WRITE_BIT), v.reg("f", "off", p) == v.s.prog[p], v.s.prog[p] >= 0,
            v.s.prog[p] < L, size[T[p]] == v.s.prog[p], v.prefix(T[p], v.s.prog[p]))))),
        ("temp-complete", v.forall(lambda p: z3.Implies(v.at(p, v.writer, cl, rn), v.complete(T[p])))),
        ("progress-idle", v.forall(lambda p: z3.Implies(z3.And(v.sysm.kind_of[p] == v.writer, z3.Not(v.at(p, v.writer, wr))), v.s.prog[p] == 0))),
        ("entry-complete", z3.Implies(E >= 0, v.complete(E))),
        ("published", z3.Implies(v.s.pub_path[ENTRY.name], E >= 0)),
    ]


# ------------------------------------------------------------ readers


def _reader_positions(v: View) -> tuple[int, int, int]:
    assert v.reader is not None
    code = v.code(v.reader)
    return find(code, Open), find(code, Read), find(code, Close)


def reader_after_publication(v: View, inode_stable: Callable[[Term, Term], Term]) -> Conjuncts:
    """go-read-entry begun after publication (began after publication).

    - publication-ghost: "some writer returned ok" (what a reader's first
                      step records) is "a writer of the entry returned ok";
    - reader-unbegun: a reader that has not stepped waits at its open;
    - reader-late:    a reader begun after publication either waits at its
                      read holding a read-only descriptor at offset 0 on a
                      complete inode that no writer will write again
                      (``inode_stable``), or waits at its close with a buffer
                      of exactly L bytes and no zero byte, or has ended hit.
    """
    op, rd, cl = _reader_positions(v)
    L, hit = v.pay.length, status_code(Status.HIT)

    def late(p: Term) -> Term:
        ino = v.reg("f", "ino", p)
        reading = z3.And(v.at(p, v.reader, rd), _fd_is(v, p, ino, READ_BIT), v.reg("f", "off", p) == 0, v.complete(ino),
                         inode_stable(p, ino))
        closing = z3.And(v.at(p, v.reader, cl), v.reg("buf", "set", p), v.reg("buf", "len", p) == L, v.reg("buf", "nz", p))
        return z3.Or(reading, closing, z3.And(v.sysm.kind_of[p] == v.reader, v.s.st[p] == hit))

    def is_reader(p: Term) -> Term:
        return v.sysm.kind_of[p] == v.reader

    return [
        ("publication-ghost", v.s.pub == v.s.pub_path[ENTRY.name]),
        ("reader-unbegun", v.forall(lambda p: z3.Implies(z3.And(is_reader(p), v.s.began[p] == Began.NOT_YET), v.at(p, v.reader, op)))),
        ("reader-late", v.forall(lambda p: z3.Implies(z3.And(is_reader(p), v.s.began[p] == Began.AFTER_PUBLICATION), late(p)))),
    ]


def in_place_reader(v: View) -> Conjuncts:
    """With in-place writers there is one entry inode: a late reader holds E."""
    return in_place_writer(v) + reader_after_publication(v, lambda p, ino: ino == v.E)


def rename_reader(v: View) -> Conjuncts:
    """With rename-into-place a late reader may hold an inode the name no
    longer points at; it stays complete because it is nobody's temp."""
    T = v.s.priv[TEMP.name]

    def stable(p: Term, ino: Term) -> Term:
        return z3.And(ino >= 0, v.forall(lambda q: z3.Implies(T[q] >= 0, T[q] != ino)))

    return rename_writer(v) + reader_after_publication(v, stable)


def in_place_mapper(v: View) -> Conjuncts:
    """mmap-read against in-place writers: the entry never shrinks, so a
    mapping never outlives its bytes.

    - reader-holds-E:  a reader's descriptor, when set, is on E (E exists);
    - size-seen:       a size a reader has seen (fstat) is at most size(E),
                       and a reader that has seen one (>= 0) saw an existing E;
    - mapped-within:   a reader's mapping, when set, is of E and no longer
                       than size(E);
    - no-sigbus:       no process has died of SIGBUS.
    """
    assert v.reader is not None
    E, size, sigbus = v.E, v.s.fs.size, status_code(Status.SIGBUS)

    def is_reader(p: Term) -> Term:
        return v.sysm.kind_of[p] == v.reader

    return in_place_writer(v) + [
        ("reader-holds-E", v.forall(lambda p: z3.Implies(z3.And(is_reader(p), v.reg("f", "set", p)),
                                                         z3.And(E >= 0, v.reg("f", "ino", p) == E)))),
        ("size-seen", v.forall(lambda p: z3.Implies(z3.And(is_reader(p), v.reg("st", "n", p) >= 0),
                                                    z3.And(E >= 0, v.reg("st", "n", p) <= size[E])))),
        ("mapped-within", v.forall(lambda p: z3.Implies(z3.And(is_reader(p), v.reg("map", "set", p)),
                                                        z3.And(E >= 0, v.reg("map", "ino", p) == E, v.reg("map", "n", p) <= size[E])))),
        ("no-sigbus", v.forall(lambda p: v.s.st[p] != sigbus)),
    ]


def rename_mapper(v: View) -> Conjuncts:
    """mmap-read against rename-into-place: every inode a reader holds or
    maps was complete when the name pointed at it, and nobody writes it
    again (it is no writer's temp), so it never shrinks.

    - reader-holds-complete: a reader's descriptor, when set, is on a
                       complete inode that is no writer's temp;
    - size-seen:       a size a reader has seen (fstat) is at most L;
    - mapped-within:   a reader's mapping, when set, is of a complete inode
                       that is no writer's temp, below the next inode number,
                       and no longer than L;
    - no-sigbus:       no process has died of SIGBUS.
    """
    assert v.reader is not None
    T, L, sigbus = v.s.priv[TEMP.name], v.pay.length, status_code(Status.SIGBUS)

    def is_reader(p: Term) -> Term:
        return v.sysm.kind_of[p] == v.reader

    def settled(ino: Term) -> Term:
        return z3.And(v.complete(ino), v.forall(lambda q: z3.Implies(T[q] >= 0, T[q] != ino)))

    return rename_writer(v) + [
        ("reader-holds-complete", v.forall(lambda p: z3.Implies(z3.And(is_reader(p), v.reg("f", "set", p)), settled(v.reg("f", "ino", p))))),
        ("size-seen", v.forall(lambda p: z3.Implies(is_reader(p), v.reg("st", "n", p) <= L))),
        ("mapped-within", v.forall(lambda p: z3.Implies(z3.And(is_reader(p), v.reg("map", "set", p)),
                                                        z3.And(settled(v.reg("map", "ino", p)), v.reg("map", "ino", p) < v.s.fs.nino,
                                                               v.reg("map", "n", p) <= L)))),
        ("no-sigbus", v.forall(lambda p: v.s.st[p] != sigbus)),
    ]


# ------------------------------------------------------------ the remote tier


def remote_record(v: View) -> Conjuncts:
    """s3-put (with s3-get on another machine): the record never names a
    missing or partial output.  O and A are the inodes holding the output
    object and the action record (-1: none), M and opay the output's
    length and bytes.

    - objects-fresh:   -1 <= O, A < the next inode number, and A != O;
    - output-complete: O >= 0 implies O holds exactly the output (an
                       object's inode is never written again);
    - record-names-output: A >= 0 implies O >= 0;
    - putter-has-output: a putter at its record PUT has seen O >= 0 (its
                       own PUT stored it, or a 412 said it was there);
    - local-not-objects: no descriptor any process holds, and no local
                       name, is on O or A, and all are below the next inode.
    """
    code = v.code(v.writer)
    rec = find(code, PutObject, 1)
    O, A, nino = v.s.fs.objects[OUTPUT_KEY.name], v.s.fs.objects[ACTION_KEY.name], v.s.fs.nino
    out = v.sysm.kinds[v.writer].payload("output")
    local = [v.s.fs.names[n] for n in v.sysm.shared_paths]

    def apart(ino: Term) -> Term:
        return z3.And(ino >= 0, ino < nino, ino != O, ino != A)

    return [
        ("objects-fresh", z3.And(O >= -1, O < nino, A >= -1, A < nino, z3.Implies(O >= 0, A != O))),
        ("output-complete", z3.Implies(O >= 0, holds_payload(v.sysm, v.s, O, out))),
        ("record-names-output", z3.Implies(A >= 0, O >= 0)),
        ("putter-has-output", v.forall(lambda p: z3.Implies(v.at(p, v.writer, rec), O >= 0))),
        ("local-not-objects", z3.And(
            *[z3.Implies(n >= 0, apart(n)) for n in local],
            v.forall(lambda p: z3.Implies(v.reg("f", "set", p), apart(v.reg("f", "ino", p)))))),
    ]


def remote_served(v: View) -> Conjuncts:
    """s3-get against s3-put: a hit's local file is the whole output, and
    stays so (write-then-truncate of one checked body).  F is the inode
    the local name ``output`` points at; the record invariant above, and:

    - local-prefix:   F >= 0 implies 0 <= size(F) <= M and every byte
                      below the size is the output's;
    - getter-body:    a getter past its check holds a body of M bytes whose
                      source is the output object O (O >= 0);
    - getter-holds-F: a getter at its write, truncate or closes holds a
                      write-only descriptor on F (F exists);
    - getter-offset:  a getter at its write has offset = progress < M and
                      progress <= size(F) (no hole);
    - progress-idle:  a getter not at its write has progress 0;
    - written:        a getter at its truncate or first close sees size(F) = M;
    - served:         a getter that ended hit sees F >= 0 and size(F) = M.
    """
    assert v.reader is not None
    code = v.code(v.reader)
    op, wb, tr = find(code, Open), find(code, WriteBuf), find(code, Ftruncate)
    cl, cl2 = find(code, Close), find(code, Close, 1)
    O, F, size, nino = v.s.fs.objects[OUTPUT_KEY.name], v.s.fs.names[OUTPUT.name], v.s.fs.size, v.s.fs.nino
    out = v.sysm.kinds[v.reader].payload("output")
    M, hit = out.length, status_code(Status.HIT)

    def prefix(ino: Term, n: Term) -> Term:
        return v.sysm.bytes.forall_below(n, lambda b: v.s.fs.data[ino, b] == out.data[b])

    def is_getter(p: Term) -> Term:
        return v.sysm.kind_of[p] == v.reader

    return remote_record(v) + [
        ("local-prefix", z3.Implies(F >= 0, z3.And(size[F] >= 0, size[F] <= M, prefix(F, size[F])))),
        ("getter-body", v.forall(lambda p: z3.Implies(v.at(p, v.reader, op, wb, tr, cl, cl2), z3.And(
            O >= 0, v.reg("out", "set", p), v.reg("out", "len", p) == M, v.reg("out", "src", p) == O)))),
        ("getter-holds-F", v.forall(lambda p: z3.Implies(v.at(p, v.reader, wb, tr, cl, cl2), z3.And(
            F >= 0, _fd_is(v, p, F, WRITE_BIT))))),
        ("getter-offset", v.forall(lambda p: z3.Implies(v.at(p, v.reader, wb), z3.And(
            v.reg("f", "off", p) == v.s.prog[p], v.s.prog[p] >= 0, v.s.prog[p] < M, v.s.prog[p] <= size[F])))),
        ("progress-idle", v.forall(lambda p: z3.Implies(z3.And(is_getter(p), z3.Not(v.at(p, v.reader, wb))),
                                                        v.s.prog[p] == 0))),
        ("written", v.forall(lambda p: z3.Implies(v.at(p, v.reader, tr, cl), size[F] == M))),
        ("served", v.forall(lambda p: z3.Implies(z3.And(is_getter(p), v.s.st[p] == hit), z3.And(F >= 0, size[F] == M)))),
    ]


Invariant = Callable[[View], Conjuncts]
