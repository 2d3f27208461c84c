"""Exhaustive search over every interleaving, with shortest counterexamples.

Breadth-first search from the initial world, so the first state found that
violates a property is at the least depth: its path is a shortest
counterexample.  Three reductions keep it small, none of them unsound:

- visited-state hashing: a world is explored once, however reached;
- symmetry: processes that run the same program on the same data are
  interchangeable, so a world is stored in a canonical form (such processes
  sorted, inodes numbered by name, then by first holder, unreferenced inodes
  dropped), and of several identical processes only one is stepped;
- local steps (branches, return) are folded into the preceding operation.

Every bound is explicit in :class:`Setup`; nothing is explored outside it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Iterable

from .machine import RUNNING, Config, Fault, Kind, Proc, World, crash, initial, local_faults, published, step_local
from .fs import FileSystem
from .properties import PROPERTIES, Property, get_property
from .protocols import protocol
from .ops import Role


class SetupError(ValueError):
    """The bounds or the protocol mix make no sense (no writers, a reader
    named as a writer, a length below 1, ...)."""


ENTRY_BYTES = b"abcdefghijklmnopqrstuvwxyz"
OUTPUT_BYTES = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ"


@dataclass(frozen=True)
class Setup:
    """The bounds of one run.

    protocols:    writer protocols; writer j runs protocols[j % len].
    writers:      N, the number of writer processes.
    readers:      R, the number of reader processes, all running ``reader``.
    faults:       F, how many injected faults the whole run may suffer.
    entry_length: L, bytes in each payload (the entry, the output).
    granularity:  "byte" (a write lands a byte a step) or "write".
    crashes:      0, or 1 to let the machine lose power once, anywhere.
    """

    protocols: tuple[str, ...] = ("write-then-truncate",)
    writers: int = 3
    readers: int = 1
    reader: str = "go-read-entry"
    faults: int = 0
    entry_length: int = 2
    granularity: str = "byte"
    crashes: int = 0

    def __post_init__(self) -> None:
        if not self.protocols:
            raise SetupError("name at least one writer protocol")
        for name in self.protocols:
            if protocol(name).program.role is not Role.WRITER:
                raise SetupError(f"{name!r} is a reader; pass it as --reader, not --protocol")
        if protocol(self.reader).program.role is not Role.READER:
            raise SetupError(f"{self.reader!r} is a writer; pass it as --protocol, not --reader")
        if self.writers < 1 or self.readers < 0 or self.faults < 0:
            raise SetupError("need writers >= 1, readers >= 0, faults >= 0")
        if not 1 <= self.entry_length <= len(ENTRY_BYTES):
            raise SetupError(f"entry length must be 1..{len(ENTRY_BYTES)}, not {self.entry_length}")
        if self.writers < len(self.protocols):
            raise SetupError(f"{len(self.protocols)} protocols need at least as many writers, not {self.writers}")
        if self.crashes not in (0, 1):
            raise SetupError(f"crashes must be 0 or 1, not {self.crashes}")
        if self.granularity not in ("byte", "write"):
            raise SetupError(f"granularity must be 'byte' or 'write', not {self.granularity!r}")

    def payloads(self) -> tuple[tuple[str, bytes], ...]:
        """Every writer's data: all writers of an entry write the same bytes."""
        n = self.entry_length
        return (("entry", ENTRY_BYTES[:n]), ("output", OUTPUT_BYTES[:n]))

    def process_protocols(self) -> list[str]:
        """Each process's protocol in canonical order: writers grouped by
        protocol (in the order given), then the readers."""
        counts = {p: 0 for p in self.protocols}
        for j in range(self.writers):
            counts[self.protocols[j % len(self.protocols)]] += 1
        out = [p for p in self.protocols for _ in range(counts[p])]
        return out + [self.reader] * self.readers


@dataclass
class Model:
    """A Setup made runnable: the config, the initial world, names."""

    setup: Setup
    config: Config
    init: World
    names: tuple[str, ...]
    blocks: tuple[tuple[int, int], ...]
    symmetry: bool = True


def build(setup: Setup, *, symmetry: bool = True) -> Model:
    """The Config, initial world and process names for ``setup``.  With
    ``symmetry`` off every process is its own class (for cross-checking the
    reduction: the verdicts must not change, only the state counts)."""
    order = setup.process_protocols()
    kinds: list[Kind] = []
    index: dict[str, int] = {}
    for name in order:
        if name not in index:
            index[name] = len(kinds)
            kinds.append(Kind(name, protocol(name).program, setup.payloads()))
    cfg = Config(tuple(kinds), setup.granularity, setup.faults)
    procs = tuple(index[n] for n in order)
    names = tuple(f"W{i + 1}" for i in range(setup.writers)) + tuple(f"R{i + 1}" for i in range(setup.readers))
    blocks = []
    start = 0
    for i in range(1, len(procs) + 1):
        if i == len(procs) or procs[i] != procs[start] or not symmetry:
            blocks.append((start, i))
            start = i
    model = Model(setup, cfg, initial(cfg, procs), names, tuple(blocks), symmetry)
    model.init = canonical(model, model.init)
    return model


# ------------------------------------------------------------ canonical form


def _relabel(p: Proc, k: Kind, m: dict[int, int], unknown: int | None) -> Proc:
    regs = p.regs
    if k.inode_regs:
        lst = list(regs)
        for r in k.inode_regs:
            v = lst[r]
            if v:
                lst[r] = (m.get(v[0], unknown),) + v[1:]  # type: ignore[call-overload]
        regs = tuple(lst)
    priv = tuple((n, m.get(i, unknown)) for n, i in p.private) if p.private else p.private
    return p._replace(regs=regs, private=priv)  # type: ignore[arg-type]


def _refs(p: Proc, k: Kind) -> Iterable[int]:
    for r in k.inode_regs:
        v = p.regs[r]
        if v:
            yield int(v[0])  # type: ignore[call-overload]
    for _, i in p.private:
        yield i


def _sort_blocks(procs: tuple[Proc, ...], keys: list[Proc], blocks: tuple[tuple[int, int], ...]) -> list[int]:
    order: list[int] = []
    for s, e in blocks:
        if e - s == 1:
            order.append(s)
        else:
            order.extend(sorted(range(s, e), key=keys.__getitem__))
    return order


def canonical(model: Model, w: World) -> World:
    """The representative of ``w``'s symmetry class (see module doc)."""
    kinds = model.config.kinds
    remap: dict[int, int] = {}
    for _, ino in w.fs.names:
        remap.setdefault(ino, len(remap))
    n = len(w.fs.contents)
    if len(remap) == n and all(remap.get(i) == i for i in range(n)):
        # Fast path: every inode is named and already numbered in name order,
        # so the processes' own tuples are exact sort keys.
        procs = w.procs
        out: list[Proc] = []
        for s, e in model.blocks:
            out.extend(procs[s:e] if e - s == 1 else sorted(procs[s:e]))
        return World(w.fs, tuple(out), w.faults, w.crashed)
    keys = [_relabel(p, kinds[p.kind], remap, -1) for p in w.procs]
    order = _sort_blocks(w.procs, keys, model.blocks)
    for i in order:
        p = w.procs[i]
        for ino in _refs(p, kinds[p.kind]):
            remap.setdefault(ino, len(remap))
    procs2 = tuple(_relabel(w.procs[i], kinds[w.procs[i].kind], remap, None) for i in order)
    contents: list[bytes | None] = [None] * len(remap)
    durable: list[bytes | None] = [None] * len(remap)
    for old, new in remap.items():
        contents[new] = w.fs.contents[old]
        durable[new] = w.fs.durable[old]
    names = tuple((nm, remap[i]) for nm, i in w.fs.names)
    return World(FileSystem(names, tuple(contents), tuple(durable)), procs2, w.faults, w.crashed)


# ------------------------------------------------------------ search


@dataclass
class Violation:
    """The first (shallowest) state found violating a property."""

    property: str
    reason: str
    state: World
    depth: int


@dataclass
class Exploration:
    """What one exhaustive search found."""

    model: Model
    properties: tuple[str, ...]
    states: int = 0
    transitions: int = 0
    depth: int = 0
    seconds: float = 0.0
    complete: bool = True
    violations: dict[str, Violation] = field(default_factory=dict)
    parent: dict[World, World | None] = field(default_factory=dict, repr=False)

    def verdict(self, prop: str) -> str:
        """``violated`` or ``holds`` (within the bounds)."""
        return "violated" if prop in self.violations else "holds"

    def path(self, prop: str) -> list[World]:
        """The canonical worlds from the initial one to the violation."""
        v = self.violations[prop]
        out: list[World] = []
        s: World | None = v.state
        while s is not None:
            out.append(s)
            s = self.parent[s]
        return out[::-1]


class _Stepper:
    """Memoised local steps: a process's successors depend only on its own
    state, the file system, whether faults remain and whether some writer
    has published, so they are computed once per such combination."""

    def __init__(self, model: Model) -> None:
        self.cfg = model.config
        self.memo: dict[tuple[Proc, FileSystem, bool, bool], list[tuple[Fault, Proc, FileSystem]]] = {}

    def moves(self, w: World, i: int, pub: bool) -> list[tuple[Fault, Proc, FileSystem]]:
        p = w.procs[i]
        can_fault = w.faults < self.cfg.fault_budget
        first_after_pub = pub and p.began == 0  # only a reader's first step reads ``pub``
        key = (p, w.fs, can_fault, first_after_pub)
        got = self.memo.get(key)
        if got is None:
            got = []
            for f in [None, *local_faults(self.cfg, p, can_fault)]:
                q, fs = step_local(self.cfg, p, w.fs, f, first_after_pub)
                got.append((f, q, fs))
            if len(self.memo) > 2_000_000:
                self.memo.clear()  # bound memory; a miss only costs a recomputation
            self.memo[key] = got
        return got


def explore(setup: Setup, properties: Iterable[str] | None = None, *, stop_when_all_violated: bool = True, symmetry: bool = True) -> Exploration:
    """Every reachable world of ``setup``, breadth first, checking
    ``properties`` (all by default) in each; shortest violations recorded.
    The search stops early once every property asked about is violated
    (then ``complete`` is False and ``states`` counts what was seen)."""
    model = build(setup, symmetry=symmetry)
    props: list[Property] = [get_property(p) for p in (properties if properties is not None else PROPERTIES)]
    result = Exploration(model, tuple(p.name for p in props))
    started = time.perf_counter()
    stepper = _Stepper(model)
    parent = result.parent
    parent[model.init] = None
    frontier = [model.init]
    depth = 0
    while frontier:
        nxt: list[World] = []
        for w in frontier:
            _check(model, props, result, w, depth)
            if w.crashed:
                continue  # nothing runs after a power loss
            if setup.crashes:
                succ = canonical(model, crash(w))
                result.transitions += 1
                if succ not in parent:
                    parent[succ] = w
                    nxt.append(succ)
            pub = published(w)
            procs = w.procs
            for i, p in enumerate(procs):
                if p.status != RUNNING or (model.symmetry and i > 0 and procs[i - 1] == p):
                    continue  # identical processes: stepping one is enough
                for f, q, fs in stepper.moves(w, i, pub):
                    succ = canonical(model, World(fs, procs[:i] + (q,) + procs[i + 1:], w.faults + (1 if f else 0), 0))
                    result.transitions += 1
                    if succ not in parent:
                        parent[succ] = w
                        nxt.append(succ)
        if stop_when_all_violated and len(result.violations) == len(props):
            result.complete = not nxt
            break
        frontier = nxt
        depth += 1
    result.states = len(parent)
    result.depth = depth
    result.seconds = time.perf_counter() - started
    return result


def _check(model: Model, props: list[Property], result: Exploration, w: World, depth: int) -> None:
    for prop in props:
        if prop.name in result.violations:
            continue
        if bool(w.crashed) != prop.after_crash:
            continue  # crash properties speak of post-crash states only
        why = prop.check(model.config, w)
        if why is not None:
            result.violations[prop.name] = Violation(prop.name, why, w, depth)
