"""Verdict tables for people: plain text for the terminal, Markdown for SPEC.md.

Pure string building over :class:`spec.check.Result` values; the data form
is ``Result.to_json``.
"""

from __future__ import annotations

from .check import Result
from .trace import markdown_table, table


def _mix(r: Result) -> str:
    return " + ".join(p.name for p in r.scenario.system.writer_programs())


def _reader(r: Result) -> str:
    readers = r.scenario.system.reader_programs()
    return " + ".join(p.name for p in readers) if readers else "-"


def _bounds(r: Result) -> str:
    return r.scenario.system.bounds()


def _mark(r: Result) -> str:
    if r.scenario.expected is None:
        return ""
    return "as declared" if r.ok else f"UNEXPECTED (declared {r.scenario.expected})"


def verdict_rows(results: list[Result]) -> list[list[str]]:
    """One row per result: protocols, reader, property, bounds, verdict,
    shortest trace length, states, seconds, agreement with the catalogue."""
    rows = []
    for r in results:
        steps = "" if r.trace is None else str(len(r.trace.steps))
        rows.append([_mix(r), _reader(r), r.scenario.property.name, _bounds(r), r.verdict, steps,
                     str(r.states), f"{r.seconds:.2f}", _mark(r)])
    return rows


HEAD = ["protocols", "reader", "property", "bounds", "verdict", "steps", "states", "seconds", "check"]


def text_table(results: list[Result]) -> str:
    """The verdict table, aligned for a terminal."""
    rows = [HEAD, *verdict_rows(results)]
    widths = [max(len(r[c]) for r in rows) for c in range(len(HEAD))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown(results: list[Result], *, timings: bool = False) -> str:
    """The verdict table as Markdown (without timings and state counts when
    ``timings`` is False, so that it is reproducible text for SPEC.md)."""
    head = HEAD if timings else ["protocols", "reader", "property", "bounds", "verdict", "steps", "check"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in verdict_rows(results):
        if not timings:
            row = row[:6] + row[8:]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def violations_text(results: list[Result], *, md: bool = False) -> str:
    """Each violation's shortest counterexample as a step table."""
    out = []
    for r in results:
        if r.trace is None:
            continue
        title = f"{_mix(r)} / {_reader(r)}: {r.scenario.property.name} violated ({_bounds(r)})"
        if md:
            out.append(f"#### {title}\n\n{markdown_table(r.trace)}\n")
        else:
            out.append(f"{title}\n{table(r.trace)}\n")
    return "\n".join(out)
