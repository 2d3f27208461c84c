"""The generated parts of spec/SPEC.md, and a check that they are current.

SPEC.md is prose written by people with regions generated from the code:
the protocols' pseudo-code, the properties' statements, the verdict table
and one counterexample per property.  Each region sits between
``<!-- BEGIN name -->`` and ``<!-- END name -->``.  ``python -m
idemwrite.specdoc --write`` refreshes them; the test suite fails when SPEC.md
differs from what the explorer computes.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from spec.check import Result, default_scenarios, run
from spec.properties import PROPERTIES
from spec.protocols import CATALOGUE
from spec.report import markdown
from spec.trace import markdown_table, mermaid

SPEC = Path(__file__).resolve().parent.parent / "spec" / "SPEC.md"
REGION = re.compile(r"(<!-- BEGIN (\w+) -->\n)(.*?)(<!-- END \2 -->)", re.S)


def protocols_md() -> str:
    out = []
    for p in CATALOGUE:
        out.append(f"#### `{p.name}` ({p.program.role.value})\n\n{p.program.summary}.\n\n```\n{p.program.listing()}\n```\n")
        for c in p.claims:
            when = "at every fault budget" if c.holds_up_to is None else ("never" if c.holds_up_to < 0 else f"up to F={c.holds_up_to}")
            out.append(f"- claims `{c.property.name}` holds {when}: {c.reason}.")
        if p.claims:
            out.append("")
    return "\n".join(out)


def semantics_md() -> str:
    """Each operation's row of ``spec.semantics.OPS`` and the source of its
    function: the statement itself, not a paraphrase of it."""
    import inspect

    from spec import semantics as S

    by_fn: dict[object, list[type]] = {}
    for op, row in S.OPS.items():
        by_fn.setdefault(row.run, []).append(op)
    out = []
    for fn, ops in by_fn.items():
        row = S.OPS[ops[0]]
        names = ", ".join(f"`{op.__name__}`" for op in ops)
        regs = ", ".join(f"`{a}` ({k.value})" for a, k in row.regs) or "none"
        paths = ", ".join(f"`{a}`" for a in row.paths) or "none"
        fault = f"`{row.fault}`" if row.fault else "none"
        local = "; local (folded into the step before it)" if row.local else ""
        out.append(f"#### {names}\n\nregisters: {regs}; paths: {paths}; injected fault: {fault}{local}\n\n"
                   f"```python\n{inspect.getsource(fn).rstrip()}\n```\n")  # type: ignore[arg-type]
    return "\n".join(out)


def properties_md() -> str:
    return "\n".join(f"- **`{name}`**: {p.doc}" for name, p in PROPERTIES.items()) + "\n"


def counterexamples_md(results: list[Result]) -> str:
    out = []
    for prop in PROPERTIES:
        r = next((r for r in results if r.scenario.property.name == prop and r.trace is not None), None)
        if r is None or r.trace is None:
            continue
        s = r.scenario.system.describe()
        out.append(f"#### `{prop}`, violated by {' + '.join(f'`{p}`' for p in s['protocols'])} "
                   f"(N={s['writers']}, reader `{s['reader']}`, F={s['faults']}, L={s['entry_length']}, {s['granularity']})\n\n"
                   f"{markdown_table(r.trace)}\n\n"
                   f"The same run as a sequence diagram (`idemwrite trace {' '.join(s['protocols'])} --property {prop}"
                   f"{trace_flags(r)} --mermaid`):\n\n```mermaid\n{mermaid(r.trace)}\n```\n")
    return "\n".join(out)


def trace_flags(r: Result) -> str:
    """The ``idemwrite trace`` flags that give ``r``'s counterexample
    (those that differ from the command's defaults)."""
    s = r.scenario.system.describe()
    flags = [f"--faults {s['faults']}"]
    if s["writers"] != 3:
        flags.append(f"--writers {s['writers']}")
    if s["readers"] != 1:
        flags.append(f"--readers {s['readers']}")
    own = CATALOGUE[s["protocols"][0]].reader_for(r.scenario.property).name
    if s["reader"] is not None and s["reader"] != own:
        flags.append(f"--reader {s['reader']}")
    if s["crashes"]:
        flags.append("--crashes 1")
    return " " + " ".join(flags)


def generated() -> dict[str, str]:
    """Every generated region's text, by region name."""
    results = run(default_scenarios())
    return {
        "semantics": semantics_md(),
        "protocols": protocols_md(),
        "properties": properties_md(),
        "verdicts": markdown(results) + "\n",
        "counterexamples": counterexamples_md(results),
    }


def refresh(text: str, regions: dict[str, str]) -> str:
    """``text`` with each region's body replaced by its generated text."""
    return REGION.sub(lambda m: m.group(1) + regions.get(m.group(2), m.group(3)) + m.group(4), text)


def stale_regions(text: str, regions: dict[str, str]) -> list[str]:
    """Names of regions whose body differs from the generated text, and of
    generated regions missing from ``text``."""
    found = {m.group(2): m.group(3) for m in REGION.finditer(text)}
    return [name for name, body in regions.items() if found.get(name) != body]


def main(argv: list[str]) -> int:
    regions = generated()
    text = SPEC.read_text()
    if "--write" in argv:
        SPEC.write_text(refresh(text, regions))
        return 0
    stale = stale_regions(text, regions)
    if stale:
        print(f"spec/SPEC.md is stale in: {', '.join(stale)}; run python -m idemwrite.specdoc --write", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
