"""Every run of a small scenario, by explicit-state search on ``spec.machine``.

The explorer (``spec.explore``) takes an explorer ``Setup``, in which all
writers share one payload; the dropped-assumption theorems need writers of
different lengths or bytes.  This is the same breadth-first search over
``spec.machine.successors`` for any :class:`~proofs.bmc.Scenario`, without
symmetry reduction (the scenarios are tiny).  It settles "no counterexample
in any run" for an assumption that turns out not to be needed, and gives
the depth of the shortest counterexample where one exists, which the
solver then reaches on its own (:func:`proofs.bmc.search` from that depth).
"""

from __future__ import annotations

from dataclasses import dataclass

from spec.machine import World, initial, successors
from spec.properties import get_property

from .bmc import Scenario


@dataclass(frozen=True)
class Exhaustive:
    """What the search saw: states, and the depth of the shallowest
    violation (None: no reachable state violates the property)."""

    states: int
    violation_depth: int | None


def search_all(scn: Scenario, prop: str, limit: int = 500_000) -> Exhaustive:
    """Breadth-first over every interleaving and fault of ``scn``."""
    cfg = scn.config()
    check = get_property(prop).check
    start = initial(cfg, scn.kind_index())
    seen: set[World] = {start}
    frontier, depth = [start], 0
    while frontier:
        for w in frontier:
            if check(cfg, w) is not None:
                return Exhaustive(len(seen), depth)
        nxt: list[World] = []
        for w in frontier:
            for i in range(len(w.procs)):
                for _, succ in successors(cfg, w, i):
                    if succ not in seen:
                        seen.add(succ)
                        nxt.append(succ)
        if len(seen) > limit:
            raise RuntimeError(f"more than {limit} states: the scenario is not small")
        frontier, depth = nxt, depth + 1
    return Exhaustive(len(seen), None)
