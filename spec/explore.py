"""Exhaustive search over every interleaving, with shortest counterexamples.

Breadth-first search from the initial world, so the first state found that
violates a property is at the least depth: its path is a shortest
counterexample.  Three reductions keep it small, none of them unsound:

- visited-state hashing: a world is explored once, however reached;
- symmetry: processes that run the same program on the same data are
  interchangeable, so a world is stored in a canonical form (such processes
  sorted, inodes numbered by name, then by object key, then by first
  holder, unreferenced inodes dropped), and of several identical processes only one is stepped;
- local steps (branches, return) are folded into the preceding operation.

How it is fast (as SPIN compiles its model once): every distinct process
state and file system is interned once, as a small integer, so a world is a
short tuple of integers that hashes and compares in a few machine steps; a
process's successors are computed once per (process state, file system,
faults left, publication seen) and then only looked up.

Every bound is explicit in the :class:`~spec.system.System`; nothing is
explored outside it.  Nothing here reads a clock: callers time runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable

from .fs import Content, FileSystem
from .machine import Blocked, Fault, crash, initial, local_faults, step_local
from .properties import PROPERTIES, Property, get_property
from .state import Began, Crash, Desc, Mapped, Proc, Status, World
from .ops import Role
from .system import Kind, System

# A world as the search stores it: (file system id, faults, crashed,
# process state ids...).
Key = tuple[int, ...]
_HEAD = 3


class _Interned:
    """Each distinct process state and file system, numbered once."""

    def __init__(self, kinds: tuple[Kind, ...]) -> None:
        self.kinds = kinds
        self.procs: list[Proc] = []
        self.proc_ids: dict[Proc, int] = {}
        self.fss: list[FileSystem] = []
        self.fs_ids: dict[FileSystem, int] = {}
        # Per process id: still running; (the set of those) ended OK; a
        # reader's first step still to come (its step reads ``published``).
        self.running: list[bool] = []
        self.published: set[int] = set()
        self.fresh: list[bool] = []
        # Per file system id: every inode named, numbered in name order
        # (then the canonical form needs no renumbering).
        self.tidy: list[bool] = []

    def proc(self, p: Proc) -> int:
        i = self.proc_ids.get(p)
        if i is None:
            i = self.proc_ids[p] = len(self.procs)
            self.procs.append(p)
            self.running.append(p.status is Status.RUNNING)
            if p.status is Status.OK:
                self.published.add(i)
            # Only a reader's first step reads ``published``: a writer's
            # moves are the same either way, so they are memoised once.
            self.fresh.append(p.began is Began.NOT_YET and self.kinds[p.kind].program.role is Role.READER)
        return i

    def fs(self, fs: FileSystem) -> int:
        i = self.fs_ids.get(fs)
        if i is None:
            i = self.fs_ids[fs] = len(self.fss)
            self.fss.append(fs)
            remap: dict[int, int] = {}
            for _, ino in fs.names:
                remap.setdefault(ino, len(remap))
            for _, ino, _ in fs.objects:
                remap.setdefault(ino, len(remap))
            n = len(fs.contents)
            self.tidy.append(len(remap) == n and all(remap.get(j) == j for j in range(n)))
        return i


@dataclass
class Violation:
    """The first (shallowest) state found violating a property."""

    property: str
    reason: str
    state: World
    depth: int


@dataclass
class Exploration:
    """What one exhaustive search found.  ``complete`` is False when the
    search stopped early, every property asked about being violated."""

    system: System
    properties: tuple[str, ...]
    symmetry: bool = True
    states: int = 0
    transitions: int = 0
    depth: int = 0
    complete: bool = True
    violations: dict[str, Violation] = field(default_factory=dict)
    parent: dict[Key, Key | None] = field(default_factory=dict, repr=False)
    keys: dict[str, Key] = field(default_factory=dict, repr=False)
    canon: "_Canon | None" = field(default=None, repr=False)

    def verdict(self, prop: str | Property) -> str:
        """``violated`` or ``holds`` (within the bounds)."""
        return "violated" if get_property(prop).name in self.violations else "holds"

    def path(self, prop: str | Property) -> list[World]:
        """The canonical worlds from the initial one to the violation."""
        return self._path(self.keys[get_property(prop).name])

    def path_to(self, world: World) -> list[World]:
        """The canonical worlds from the initial one to ``world`` (which
        the exploration must have reached: KeyError otherwise)."""
        key = self.key(world)
        if key not in self.parent:
            raise KeyError("the exploration did not reach that world")
        return self._path(key)

    def _path(self, k: Key | None) -> list[World]:
        assert self.canon is not None
        out: list[World] = []
        while k is not None:
            out.append(self.canon.world(k))
            k = self.parent[k]
        return out[::-1]

    def worlds(self) -> Iterable[World]:
        """Every reached world, in canonical form, in the order found."""
        assert self.canon is not None
        return (self.canon.world(k) for k in self.parent)

    def key(self, world: World) -> Key:
        """The search's key for a concrete world (its canonical form)."""
        assert self.canon is not None
        return self.canon.key(world)


def blocks(system: System, symmetry: bool = True) -> tuple[tuple[int, int], ...]:
    """The symmetry classes: runs of adjacent processes of the same kind
    (every process its own class with ``symmetry`` off)."""
    out = []
    kinds = system.kind_of
    start = 0
    for i in range(1, len(kinds) + 1):
        if i == len(kinds) or kinds[i] != kinds[start] or not symmetry:
            out.append((start, i))
            start = i
    return tuple(out)


class _Canon:
    """The canonical form of worlds, as keys (see the module doc)."""

    def __init__(self, system: System, symmetry: bool) -> None:
        self.system = system
        self.kinds = system.kinds
        self.blocks = blocks(system, symmetry)
        self.single = len(self.blocks) == 1
        self.t = _Interned(system.kinds)
        self.orders: dict[tuple[int, ...], tuple[int, ...]] = {}

    def world(self, k: Key, ordered: bool = True) -> World:
        """The world of key ``k``; ``ordered``: each class's processes
        sorted by state (the canonical world), else in key order."""
        t = self.t
        pids = k[_HEAD:]
        if ordered:
            pids = tuple(j for s, e in self.blocks for j in sorted(pids[s:e], key=t.procs.__getitem__))
        return World(t.fss[k[0]], tuple(t.procs[i] for i in pids), k[1], Crash(k[2]))

    def value_order(self, distinct: tuple[int, ...]) -> tuple[int, ...]:
        """The distinct process ids of one class, sorted by process state:
        the order the processes of a canonical world are stepped in, so
        that the search visits states in one fixed order (and finds the
        same shortest counterexamples) whatever the ids."""
        got = self.orders.get(distinct)
        if got is None:
            got = self.orders[distinct] = tuple(sorted(distinct, key=self.t.procs.__getitem__))
        return got

    def sort(self, pids: list[int]) -> list[int]:
        if self.single:
            pids.sort()
            return pids
        out: list[int] = []
        for s, e in self.blocks:
            out.extend(pids[s:e] if e - s == 1 else sorted(pids[s:e]))
        return out

    def key(self, w: World) -> Key:
        """Intern ``w`` in canonical form."""
        t = self.t
        fsid = t.fs(w.fs)
        if not t.tidy[fsid]:
            w = _renumbered(self.kinds, self.blocks, w)
            fsid = t.fs(w.fs)
        pids = self.sort([t.proc(p) for p in w.procs])
        return (fsid, w.faults, int(w.crashed), *pids)


def _relabel(p: Proc, k: Kind, m: dict[int, int]) -> Proc:
    """``p`` with every inode it holds renumbered by ``m`` (-1 if unmapped)."""
    regs = p.regs
    if k.inode_regs:
        lst = list(regs)
        for r in k.inode_regs:
            v = lst[r]
            if isinstance(v, (Desc, Mapped)):
                lst[r] = v._replace(ino=m.get(v.ino, -1))
        regs = tuple(lst)
    priv = tuple((n, m.get(i, -1)) for n, i in p.private) if p.private else p.private
    return p._replace(regs=regs, private=priv)


def _refs(p: Proc, k: Kind) -> Iterable[int]:
    for r in k.inode_regs:
        v = p.regs[r]
        if isinstance(v, (Desc, Mapped)):
            yield v.ino
    for _, i in p.private:
        yield i


def _renumbered(kinds: tuple[Kind, ...], blocks: tuple[tuple[int, int], ...], w: World) -> World:
    """``w`` with its inodes renumbered: named ones in name order, then the
    others by first holder, with the processes of each class sorted by
    their state as seen before numbering the unnamed inodes; inodes nobody
    names or holds are dropped (they can never be seen again)."""
    remap: dict[int, int] = {}
    for _, ino in w.fs.names:
        remap.setdefault(ino, len(remap))
    for _, ino, _ in w.fs.objects:  # then the object store's, in key order
        remap.setdefault(ino, len(remap))
    keys = [_relabel(p, kinds[p.kind], remap) for p in w.procs]
    order: list[int] = []
    for s, e in blocks:
        order.extend(range(s, e) if e - s == 1 else sorted(range(s, e), key=keys.__getitem__))
    for i in order:
        p = w.procs[i]
        for ino in _refs(p, kinds[p.kind]):
            remap.setdefault(ino, len(remap))
    procs = tuple(_relabel(w.procs[i], kinds[w.procs[i].kind], remap) for i in order)
    contents: list[Content] = [None] * len(remap)
    durable: list[Content] = [None] * len(remap)
    for old, new in remap.items():
        contents[new] = w.fs.contents[old]
        durable[new] = w.fs.durable[old]
    names = tuple((nm, remap[i]) for nm, i in w.fs.names)
    locks = tuple(sorted((remap[i], st) for i, st in w.fs.locks))
    objects = tuple((k, remap[i], e) for k, i, e in w.fs.objects)
    return World(FileSystem(names, tuple(contents), tuple(durable), w.fs.dirs, locks, objects, w.fs.etags), procs,
                 w.faults, w.crashed)


def canonical(system: System, w: World, *, symmetry: bool = True) -> World:
    """The representative of ``w``'s symmetry class, as a world."""
    c = _Canon(system, symmetry)
    return c.world(c.key(w))


# ------------------------------------------------------------ search


class _Stepper:
    """Memoised local steps: a process's successors depend only on its own
    state, the file system, whether faults remain and - for a reader's
    first step - whether some writer has published."""

    def __init__(self, system: System, canon: _Canon) -> None:
        self.system = system
        self.t = canon.t
        self.memo: dict[tuple[int, int, bool, bool], list[tuple[int, int, int]]] = {}

    def moves(self, pid: int, fsid: int, can_fault: bool, first_after_pub: bool) -> list[tuple[int, int, int]]:
        """(faults used, next process id, next file system id) per move."""
        key = (pid, fsid, can_fault, first_after_pub)
        got = self.memo.get(key)
        if got is None:
            t = self.t
            p, fs = t.procs[pid], t.fss[fsid]
            got = []
            f: Fault
            try:
                for f in [None, *local_faults(self.system, p, can_fault)]:
                    q, fs2 = step_local(self.system, p, fs, f, first_after_pub)
                    got.append((1 if f else 0, t.proc(q), t.fs(fs2)))
            except Blocked:
                got = []  # it waits (for a lock): no move at all, faulty or not
            self.memo[key] = got
        return got


class _Successors:
    """Every move of a world, as canonical keys (the search's inner loop)."""

    def __init__(self, system: System, canon: _Canon, symmetry: bool) -> None:
        self.system, self.canon, self.symmetry = system, canon, symmetry
        self.stepper = _Stepper(system, canon)

    def __call__(self, key: Key, distinct: tuple[int, ...]) -> list[Key]:
        """``distinct``: the key's distinct process ids, in key order."""
        out: list[Key] = []
        if key[2]:
            return out  # nothing runs after a power loss
        canon, t = self.canon, self.canon.t
        if self.system.crashes:
            out.append(canon.key(crash(canon.world(key))))
        pids = key[_HEAD:]
        fsid, used = key[0], key[1]
        pub = not t.published.isdisjoint(distinct)
        can_fault = used < self.system.faults
        moves, single, tidy = self.stepper.moves, canon.single, t.tidy
        for s, e in canon.blocks:
            seg = pids[s:e]
            # Of several identical processes only one is stepped.
            order = seg if not self.symmetry else canon.value_order(distinct if single else tuple(dict.fromkeys(seg)))
            for pid in order:
                if not t.running[pid]:
                    continue
                i = s + seg.index(pid)
                for df, qid, fsid2 in moves(pid, fsid, can_fault, pub and t.fresh[pid]):
                    new = list(pids)
                    new[i] = qid
                    if not tidy[fsid2]:
                        out.append(canon.key(World(t.fss[fsid2], tuple(t.procs[j] for j in new), used + df)))
                        continue
                    if single:
                        new.sort()
                    else:
                        new = canon.sort(new)
                    out.append((fsid2, used + df, 0, *new))
        return out


# How often the search reports its progress (states expanded).
PROGRESS_EVERY = 4096


def explore(system: System, properties: Iterable[str | Property] | None = None, *,
            stop_when_all_violated: bool = True, symmetry: bool = True,
            progress: Callable[[int, int], None] | None = None) -> Exploration:
    """Every reachable world of ``system``, breadth first, checking
    ``properties`` (all by default) in each; shortest violations recorded.
    The search stops early once every property asked about is violated
    (then ``complete`` is False and ``states`` counts what was seen).
    ``progress(states, depth)`` is called every few thousand states and at
    each new depth (the caller may time it; this module reads no clock)."""
    props = [get_property(p) for p in (properties if properties is not None else PROPERTIES.values())]
    canon = _Canon(system, symmetry)
    result = Exploration(system, tuple(p.name for p in props), symmetry, canon=canon)
    successors, check = _Successors(system, canon, symmetry), _Checker(canon, props, result)
    parent = result.parent
    frontier = [canon.key(initial(system))]
    parent[frontier[0]] = None
    depth = 0
    while frontier:
        nxt: list[Key] = []
        if progress is not None:
            progress(len(parent), depth)
        for n, key in enumerate(frontier):
            if progress is not None and n % PROGRESS_EVERY == PROGRESS_EVERY - 1:
                progress(len(parent), depth)
            distinct = tuple(dict.fromkeys(key[_HEAD:]))
            check(key, distinct, depth)
            succs = successors(key, distinct)
            result.transitions += len(succs)
            for succ in succs:
                if succ not in parent:
                    parent[succ] = key
                    nxt.append(succ)
        if stop_when_all_violated and len(result.violations) == len(props):
            result.complete = not nxt
            break
        frontier = nxt
        depth += 1
    result.states = len(parent)
    result.depth = depth
    return result


class _Checker:
    """The properties, checked in each new state.  A property whose
    verdict depends only on which process states occur is checked once
    per (file system, faults, crash, set of process states): with many
    identical processes, far fewer checks than states."""

    def __init__(self, canon: _Canon, props: list[Property], result: Exploration) -> None:
        self.canon, self.result = canon, result
        self.by_crash = {c: [p for p in props if p.after_crash == c] for c in (False, True)}
        self.by_set = all(p.distinct_states_suffice for p in props)
        self.memo: dict[Key, tuple[Property, ...]] = {}

    def __call__(self, key: Key, distinct: tuple[int, ...], depth: int) -> None:
        """``distinct``: the key's distinct process ids, in key order."""
        props = self.by_crash[bool(key[2])]
        if not props:
            return
        if self.by_set:
            short = (key[0], key[1], key[2], *distinct)
            bad = self.memo.get(short)
            if bad is None:
                bad = self.memo[short] = self._violated(props, short)
        else:
            bad = self._violated(props, key)
        for prop in bad:
            if prop.name not in self.result.violations:
                # The reason names processes: give it for the canonical world.
                w = self.canon.world(key)
                self.result.violations[prop.name] = Violation(prop.name, prop.check(self.canon.system, w) or "", w, depth)
                self.result.keys[prop.name] = key

    def _violated(self, props: list[Property], key: Key) -> tuple[Property, ...]:
        w = self.canon.world(key, ordered=False)
        return tuple(p for p in props if p.check(self.canon.system, w) is not None)
