"""The manifest of the verdict matrix: expected results and state counts.

As each TLA+ example records its expected result and state count, this
records, for every scenario ``idemwrite check`` answers with no arguments,
the verdict, the number of states and transitions explored, and the length
of the shortest counterexample: ``spec/MANIFEST.json``.  The test suite
fails when the explorer's figures leave the manifest, so a change to the
semantics or to the explorer's reductions that changes what is explored is
seen, not only one that changes a verdict.

``python -m idemwrite.manifest`` compares; ``--write`` records anew (only
after checking that the change in the figures is meant).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from spec.check import Result, default_scenarios, run

MANIFEST = Path(__file__).resolve().parent.parent / "spec" / "MANIFEST.json"


def row(r: Result) -> dict[str, Any]:
    """One scenario's entry: what identifies it, then what it must give."""
    d = r.scenario.system.describe()
    return {
        "protocols": d["protocols"], "reader": d["reader"], "property": r.scenario.property.name,
        "writers": d["writers"], "readers": d["readers"], "faults": d["faults"], "entry_length": d["entry_length"],
        "granularity": d["granularity"], "crashes": d["crashes"],
        "verdict": r.verdict, "states": r.states, "transitions": r.transitions,
        "trace_steps": None if r.trace is None else len(r.trace.steps),
    }


def current() -> list[dict[str, Any]]:
    """The manifest rows the explorer gives now."""
    return [row(r) for r in run(default_scenarios())]


def differences(recorded: list[dict[str, Any]], now: list[dict[str, Any]]) -> list[str]:
    """Every way ``now`` leaves ``recorded``, one line each."""
    out = []
    if len(recorded) != len(now):
        out.append(f"{len(now)} scenarios, the manifest has {len(recorded)}")
    for i, (a, b) in enumerate(zip(recorded, now)):
        for k in sorted(set(a) | set(b)):
            if a.get(k) != b.get(k):
                name = f"{'+'.join(b['protocols'])}/{b['reader']}/{b['property']}/F{b['faults']}"
                out.append(f"scenario {i} ({name}): {k} is {b.get(k)!r}, the manifest says {a.get(k)!r}")
    return out


def main(argv: list[str]) -> int:
    now = current()
    if "--write" in argv:
        MANIFEST.write_text(json.dumps({"scenarios": now}, indent=1) + "\n")
        return 0
    diff = differences(json.loads(MANIFEST.read_text())["scenarios"], now)
    for line in diff:
        print(line, file=sys.stderr)
    return 1 if diff else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
