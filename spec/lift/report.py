"""A lift's result for people (text, each program as ``idemwrite list``
prints one) and for machines (JSON); and a program's success path.

Pure string and value building; ``idemwrite lift`` prints them.
"""

from __future__ import annotations

from typing import Any

from .. import semantics as S
from ..fs import FileSystem
from ..machine import PyDom
from ..ops import Instr, Program, ProgramError
from ..state import UNSET, Began, Proc, Status
from ..system import ENTRY_BYTES, OUTPUT_BYTES, Process, System
from .generalise import Lifted, LiftedProgram


def program_text(lp: LiftedProgram) -> str:
    """One program as ``idemwrite list`` prints it, with its notes."""
    p = lp.program
    lines = [f"{p.name} ({p.role.value}): {p.summary}"]
    lines += [f"  note: {n}" for n in lp.notes]
    lines.append("  " + p.listing().replace("\n", "\n  "))
    return "\n".join(lines)


def render(lifted: Lifted) -> str:
    """The whole result as text: notes, programs, the calls left out."""
    w, r = len(lifted.writers()), len(lifted.readers())
    n = sum(len(p.occurrences) for p in lifted.programs)
    head = (f"lifted from {', '.join(lifted.files) or 'the log'}: {len(lifted.programs)} program"
            f"{'s' if len(lifted.programs) != 1 else ''} ({w} writer{'s' if w != 1 else ''}, "
            f"{r} reader{'s' if r != 1 else ''}) from {n} sequence{'s' if n != 1 else ''}")
    out = [head] + [f"note: {note}" for note in lifted.notes]
    for lp in lifted.programs:
        out += ["", program_text(lp)]
    if lifted.ignored:
        out += ["", "ignored (calls on the selected files that change neither contents nor names):"]
        out += [f"  {line}" for line in ignored_summary(lifted)]
    return "\n".join(out)


def ignored_summary(lifted: Lifted) -> list[str]:
    """The calls left out, one line per call and reason, with a count and
    where the first is."""
    groups: dict[tuple[str, str], list[str]] = {}
    for i in lifted.ignored:
        groups.setdefault((i.call, i.why), []).append(f"{i.file}:{i.line}")
    return [f"{call} x{len(where)}: {why} (first at {where[0]})" for (call, why), where in groups.items()]


def to_json(lifted: Lifted) -> dict[str, Any]:
    """The whole result as data."""
    return {
        "files": list(lifted.files),
        "notes": list(lifted.notes),
        "programs": [{
            "name": lp.program.name,
            "role": lp.program.role.value,
            "summary": lp.program.summary,
            "listing": lp.program.listing(),
            "notes": list(lp.notes),
            "sequences": [{"pid": o.pid, "path": o.path, "file": o.file, "first": o.first, "last": o.last,
                           "payload": o.payload} for o in lp.occurrences],
        } for lp in lifted.programs],
        "ignored": [{"call": i.call, "file": i.file, "line": i.line, "text": i.text, "why": i.why} for i in lifted.ignored],
    }


def success_path(program: Program, entry_length: int = 4, limit: int = 1000) -> tuple[Instr, ...]:
    """The operations ``program`` executes alone on an empty file system
    when nothing fails (local ones such as chtimes included), in the
    model: the path a trace of a run that went well shows."""
    payloads = tuple((n, (OUTPUT_BYTES if n == "output" else ENTRY_BYTES)[:entry_length]) for n in program.payloads())
    system = System((Process(program, payloads),), granularity="write")
    kind = system.kinds[0]
    ops: list[Instr] = []

    class Recording(PyDom):
        __slots__ = ()

        def run_op(self, ins: Instr) -> None:
            ops.append(ins)
            super().run_op(ins)

    p = Proc(0, 0, Status.RUNNING, "", 0, (UNSET,) * len(kind.reg), (), Began.NOT_YET)
    d = Recording(kind, p, FileSystem(), None, "write", False)
    S.settle(program, 0, d)
    p, fs = d.proc(0), d.fs
    for _ in range(limit):
        if p.status is not Status.RUNNING:
            return tuple(ops)
        d = Recording(kind, p, fs, None, "write", False)
        S.step(program, p.pc, d)
        p, fs = d.proc(0), d.fs
    raise ProgramError(f"{program.name}: still running after {limit} operations")
