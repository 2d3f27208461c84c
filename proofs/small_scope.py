"""Every run of a small System, by explicit-state search on ``spec.machine``.

A plain breadth-first search over ``spec.machine.successors``, without the
explorer's symmetry reduction and canonical forms (the systems are tiny,
and every state counted is a state of the model as it is).  It settles "no
counterexample in any run" for an assumption that turns out not to be
needed, and gives the depth of the shortest counterexample where one
exists, which the solver then reaches on its own (:func:`proofs.bmc.search`
from that depth).
"""

from __future__ import annotations

from dataclasses import dataclass

from spec.machine import initial, successors
from spec.properties import Property
from spec.state import World
from spec.system import System


@dataclass(frozen=True)
class Exhaustive:
    """What the search saw: states, and the depth of the shallowest
    violation (None: no reachable state violates the property)."""

    states: int
    violation_depth: int | None


def search_all(system: System, prop: Property, limit: int = 500_000) -> Exhaustive:
    """Breadth-first over every interleaving and fault of ``system``."""
    start = initial(system)
    seen: set[World] = {start}
    frontier, depth = [start], 0
    while frontier:
        if any(prop.check(system, w) is not None for w in frontier):
            return Exhaustive(len(seen), depth)
        nxt: list[World] = []
        for w in frontier:
            for i in range(len(w.procs)):
                for _, succ in successors(system, w, i):
                    if succ not in seen:
                        seen.add(succ)
                        nxt.append(succ)
        if len(seen) > limit:
            raise RuntimeError(f"more than {limit} states: the system is not small")
        frontier, depth = nxt, depth + 1
    return Exhaustive(len(seen), None)
