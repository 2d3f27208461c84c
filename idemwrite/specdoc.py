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
from spec.properties import HITS, INDEX_OUTPUT, INDEX_SAME, NO_CORRUPT, NO_MIX, PROPERTIES, STAYS, SURVIVES
from spec.protocols import ATLAS, CATALOGUE, Protocol
from spec.report import markdown
from spec.trace import markdown_table, mermaid

SPEC = Path(__file__).resolve().parent.parent / "spec" / "SPEC.md"
REGION = re.compile(r"(<!-- BEGIN ([\w-]+) -->\n)(.*?)(<!-- END \2 -->)", re.S)


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
    protocols = [CATALOGUE[n] for n in s["protocols"]]
    if s["writers"] != max(len(protocols), min(p.writer_count(3) for p in protocols)):
        flags.append(f"--writers {s['writers']}")
    if s["readers"] != 1:
        flags.append(f"--readers {s['readers']}")
    own = protocols[0].reader_for(r.scenario.property).name
    if s["reader"] is not None and s["reader"] != own:
        flags.append(f"--reader {s['reader']}")
    if s["crashes"]:
        flags.append("--crashes 1")
    return " " + " ".join(flags)


# The columns of the atlas table: each property, by a short heading.
_ATLAS_COLUMNS = (
    (STAYS, "stays complete"), (HITS, "reader hits"), (NO_CORRUPT, "no corrupt hit"),
    (INDEX_OUTPUT, "index → complete output"), (INDEX_SAME, "index → same write"), (NO_MIX, "no mixed parts"),
    (SURVIVES, "survives crash (C=1)"),
)


def _anchor(r: Result) -> str:
    s = r.scenario.system.describe()
    name = re.sub(r"[^a-z0-9-]", "-", "-".join(s["protocols"]))
    return f"cx-{name}-{r.scenario.property.name}-f{s['faults']}"


def _atlas_results(results: list[Result]) -> dict[tuple[str, str, int], Result]:
    """The results of the atlas's protocols, by (protocol, property, F)."""
    names = {p.name for p in ATLAS}
    return {(r.scenario.system.writer_programs()[0].name, r.scenario.property.name, r.scenario.system.faults): r
            for r in results if len(r.scenario.system.writer_programs()) == 1
            and r.scenario.system.writer_programs()[0].name in names}


def _shown(by: dict[tuple[str, str, int], Result], r: Result) -> Result:
    """The result whose counterexample is shown for ``r``: F=0's, when the
    shortest counterexample at F=1 is the same run (it injects no fault)."""
    key = (r.scenario.system.writer_programs()[0].name, r.scenario.property.name, 0)
    first = by.get(key)
    if first is not None and first.trace is not None and r.trace is not None and first.trace.steps == r.trace.steps:
        return first
    return r


def _cell(by: dict[tuple[str, str, int], Result], proto: str, prop: str) -> str:
    marks = []
    for f in (0, 1):
        r = by.get((proto, prop, f))
        if r is None:
            return "—"
        marks.append("✓" if r.verdict == "holds" else f"[✗](#{_anchor(_shown(by, r))})")
    return " / ".join(marks)


def _confirmed_cell(p: Protocol) -> str:
    """The "real tool" column: the version its success path was confirmed
    against under strace, or that it rests on its cited source."""
    c = p.source.confirmed if p.source is not None else None
    return f"confirmed ({c.version})" if c is not None else "source only"


def atlas_confirmed_md() -> str:
    """Every cited protocol of the catalogue (the atlas's and the go
    command's own): confirmed against the real tool (version, test), or
    resting on its cited source only."""
    done, only = [], []
    for p in CATALOGUE:
        src = p.source
        if src is None:
            continue
        if src.confirmed is not None:
            done.append(f"- `{p.name}`: {src.confirmed.version}, `{src.confirmed.test}`")
        else:
            only.append(f"`{p.name}` ({src.tool})")
    return ("Confirmed against the real tool, under strace (each test records the version it ran with):\n\n"
            + "\n".join(done) + "\n\nResting on the cited source only (the tool, or that version of it, does not "
            "run here): " + ", ".join(only) + ".\n")


def atlas_md(results: list[Result]) -> str:
    """The table "Protocols of real tools": each tool's protocol, its
    source, whether it was confirmed against the real tool, and the
    verdict of each property it is checked for, at F=0 / F=1 (✓ holds,
    ✗ violated, linked to the shortest counterexample; the crash column
    is C=1 at F=0 / F=1; — not checked)."""
    by = _atlas_results(results)
    head = ["tool", "version", "protocol (writer / reader)", "source", "real tool", *[h for _, h in _ATLAS_COLUMNS]]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for p in ATLAS:
        src = p.source
        assert src is not None, f"{p.name} is in the atlas without a source"
        bugs = f"; bugs: {', '.join(src.bugs)}" if src.bugs else ""
        read = "" if src.read else " (not read: modelled from the issue or docs)"
        versions = f", {p.variants} versions of the bytes" if p.variants > 1 else ""
        row = [src.tool, src.version, f"`{p.name}` / `{p.reader.name}`{versions}",
               f"{src.repository} `{src.file}` {src.function}{read}{bugs}", _confirmed_cell(p),
               *[_cell(by, p.name, prop.name) for prop, _ in _ATLAS_COLUMNS]]
        out.append("| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |")
    return "\n".join(out) + "\n"


def atlas_counterexamples_md(results: list[Result]) -> str:
    """Each atlas violation's shortest counterexample, under the anchor the
    table links to, with the command that prints (and replays) it."""
    out = []
    by = _atlas_results(results)
    for r in by.values():
        if r.trace is None or _shown(by, r) is not r:
            continue
        s = r.scenario.system.describe()
        crash = " --crashes 1" if s["crashes"] else ""
        out.append(f'<a id="{_anchor(r)}"></a>\n\n#### `{s["protocols"][0]}` violates `{r.scenario.property.name}` '
                   f"(N={s['writers']}, reader `{s['reader']}`, F={s['faults']}{crash and ', C=1'}"
                   f"{', ' + str(s['variants']) + ' versions' if s['variants'] > 1 else ''})\n\n"
                   f"{r.scenario.reason}.  `idemwrite trace {s['protocols'][0]} --property {r.scenario.property.name}"
                   f"{trace_flags(r)}{' --replay' if not crash else ''}`\n\n{markdown_table(r.trace)}\n")
    return "\n".join(out)


def generated() -> dict[str, str]:
    """Every generated region's text, by region name."""
    results = run(default_scenarios())
    return {
        "semantics": semantics_md(),
        "protocols": protocols_md(),
        "properties": properties_md(),
        "verdicts": markdown(results) + "\n",
        "counterexamples": counterexamples_md(results),
        "atlas": atlas_md(results),
        "atlas-confirmed": atlas_confirmed_md(),
        "atlas-counterexamples": atlas_counterexamples_md(results),
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
