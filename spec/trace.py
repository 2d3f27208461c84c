"""Counterexamples: the common trace format and its renderings.

A :class:`Trace` is a System plus a list of steps, each naming a process
(``W1``..``Wn`` writers in the system's order, then ``R1``..) and the fault
it suffers, if any.  That is all a trace needs: the model is deterministic
given those choices.  The explorer, the solver (``proofs``) and the OS
replay (``reference``) all produce or consume this one format.

Renderings: a step table for people (step, process, op, result, files
after the step), JSON for machines, a Mermaid sequence diagram for Markdown.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .explore import Exploration
from .fs import FileSystem
from .machine import Fault, crash, current, faults, initial, step, write_length
from .ops import DeleteObject, Fstat, GetObject, MapRead, PutObject, PWrite, Read, Stat, Write, WriteBuf
from .properties import Property, get_property
from .state import Buf, Size, Status, World
from .system import System

CRASH = "crash"


class TraceError(ValueError):
    """A trace does not fit its setup: an unknown or finished process, or a
    fault the step cannot suffer."""


@dataclass(frozen=True)
class TraceStep:
    """One step: ``process`` runs; ``fault`` is None or (errno, bytes that
    land before it).  The process name ``crash`` is a power loss."""

    process: str
    fault: tuple[str, int] | None = None

    def to_json(self) -> dict[str, Any]:
        return {"process": self.process, "fault": None if self.fault is None else {"errno": self.fault[0], "after": self.fault[1]}}

    @staticmethod
    def from_json(d: dict[str, Any]) -> "TraceStep":
        f = d.get("fault")
        return TraceStep(str(d["process"]), None if f is None else (str(f["errno"]), int(f["after"])))


@dataclass(frozen=True)
class Trace:
    """A replayable run: system, steps, and the property it is meant to break."""

    system: System
    steps: tuple[TraceStep, ...]
    property: str = ""


@dataclass(frozen=True)
class Row:
    """One rendered step: what ran, what it returned, the files after it."""

    step: int
    process: str
    op: str
    result: str
    files: tuple[tuple[str, bytes | None], ...]


def replay(trace: Trace) -> list[World]:
    """The concrete worlds the trace passes through (initial world first).
    Raises TraceError when a step is not possible in the model."""
    system = trace.system
    w = initial(system)
    worlds = [w]
    for n, s in enumerate(trace.steps, 1):
        if w.crashed:
            raise TraceError(f"step {n}: nothing runs after the crash")
        if s.process == CRASH:
            w = crash(w)
            worlds.append(w)
            continue
        i = _index(system, s.process, n)
        if current(system, w.procs[i]) is None:
            raise TraceError(f"step {n}: {s.process} has already ended")
        if s.fault is not None and s.fault not in faults(system, w, i):
            raise TraceError(f"step {n}: {s.process} cannot suffer {s.fault} here (allowed: {faults(system, w, i)})")
        w = step(system, w, i, s.fault)
        worlds.append(w)
    return worlds


def _index(system: System, name: str, n: int) -> int:
    try:
        return system.names.index(name)
    except ValueError:
        raise TraceError(f"step {n}: no process {name!r} (have {', '.join(system.names)})") from None


def from_exploration(result: Exploration, prop: str | Property) -> Trace:
    """The shortest counterexample the explorer found for ``prop``, as a
    trace over named processes (undoing the symmetry reduction)."""
    name = get_property(prop).name
    return _along(result, result.path(name), name)


def trace_to(result: Exploration, world: World) -> Trace:
    """A shortest trace from the initial world to ``world`` (any world the
    exploration reached, e.g. one of ``result.worlds()``)."""
    return _along(result, result.path_to(world), "")


def _along(result: Exploration, path: list[World], prop: str) -> Trace:
    w = initial(result.system)
    steps: list[TraceStep] = []
    for target in path[1:]:
        found = _step_to(result, w, result.key(target))
        if found is None:
            raise TraceError("internal: no step reaches the next state of the path")
        steps.append(found[0])
        w = found[1]
    return Trace(result.system, tuple(steps), prop)


def _step_to(result: Exploration, w: World, target: tuple[int, ...]) -> tuple[TraceStep, World] | None:
    system = result.system
    if target[2]:
        return TraceStep(CRASH), crash(w)
    for i, p in enumerate(w.procs):
        if current(system, p) is None:
            continue
        for f in [None, *faults(system, w, i)]:
            nxt = step(system, w, i, f)
            if result.key(nxt) == target:
                return TraceStep(system.names[i], f), nxt
    return None


# ------------------------------------------------------------ rendering


def rows(trace: Trace) -> list[Row]:
    """The trace as table rows, computed by replaying it in the model."""
    system = trace.system
    worlds = replay(trace)
    out = []
    for n, (s, before, after) in enumerate(zip(trace.steps, worlds, worlds[1:]), 1):
        if s.process == CRASH:
            out.append(Row(n, CRASH, "power loss", "running processes die; unsynced data is lost", files(after.fs)))
            continue
        i = system.names.index(s.process)
        out.append(Row(n, s.process, describe_op(system, before, i), describe_result(system, before, after, i, s.fault), files(after.fs)))
    return out


def files(fs: FileSystem) -> tuple[tuple[str, bytes | None], ...]:
    """The shared files after a step (entry first, then the rest by name),
    then the object store's objects (``s3:<key>``)."""
    names = sorted({n for n, _ in fs.names} | {"entry"}, key=lambda n: (n != "entry", n))
    return tuple((n, fs.file(n)) for n in names) + tuple((f"s3:{k}", fs.object_bytes(k)) for k, _, _ in fs.objects)


def describe_fault(ins: object, fault: tuple[str, int]) -> str:
    """An injected fault, in the words of the call it strikes."""
    errno, landed = fault
    if isinstance(ins, (PutObject, DeleteObject)):
        return f"{errno} (injected: " + ("lost before the store acted)" if landed == 0 else "timeout after the store acted)")
    if isinstance(ins, GetObject):
        return f"{errno} (injected)" if landed < 0 else f"ok (injected: body cut after {landed} bytes)"
    return f"{errno} (injected" + (f", after {landed} bytes)" if isinstance(ins, (Write, PWrite, WriteBuf)) else ")")


def describe_op(system: System, w: World, i: int) -> str:
    """The operation process ``i`` is about to run, as source text."""
    p = w.procs[i]
    ins = current(system, p)
    n = write_length(system.kinds[p.kind], ins) if ins is not None else 0
    text = str(ins)
    if isinstance(ins, (Write, PWrite)) and system.granularity == "byte" and n > 1:
        text += f" [byte {p.progress + 1}/{n}]"
    return text


def describe_result(system: System, before: World, after: World, i: int, fault: Fault) -> str:
    """What the step returned, in the OS's words."""
    p, q = before.procs[i], after.procs[i]
    ins = current(system, p)
    k = system.kinds[p.kind]
    if fault is not None:
        res = describe_fault(ins, fault)
        return res + (f"; returns {q.status.value}" if q.status is not Status.RUNNING and p.status is Status.RUNNING else "")
    if q.status is Status.SIGBUS:
        return "SIGBUS"
    res = q.last or "ok"
    running = q.status is Status.RUNNING
    if not q.last and isinstance(ins, (Read, MapRead, GetObject)) and running:
        buf = q.regs[k.reg[ins.into]]
        res = f"{buf.data!r}" if isinstance(buf, Buf) else res
    if not q.last and isinstance(ins, (Stat, Fstat)) and running:
        size = q.regs[k.reg[ins.into]]
        res = f"size {size.n}" if isinstance(size, Size) else res
    if not running and p.status is Status.RUNNING:
        res += f"; returns {q.status.value}"
    return res


def show(data: bytes | None) -> str:
    """A file's state in a cell: missing, or size and bytes."""
    return "-" if data is None else f"{len(data)} {data!r}"


def table(trace: Trace) -> str:
    """The step table, as aligned plain text."""
    rs = rows(trace)
    paths = [n for n, _ in rs[-1].files] if rs else ["entry"]
    head = ["step", "proc", "op", "result", *paths]
    body = [[str(r.step), r.process, r.op, r.result, *[show(dict(r.files).get(n)) for n in paths]] for r in rs]
    return _align([head, *body])


def markdown_table(trace: Trace) -> str:
    """The step table as a Markdown table."""
    rs = rows(trace)
    paths = [n for n, _ in rs[-1].files] if rs else ["entry"]
    head = ["step", "process", "op", "result", *paths]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rs:
        cells = [str(r.step), r.process, f"`{r.op}`", r.result, *[f"`{show(dict(r.files).get(n))}`" for n in paths]]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines)


def mermaid(trace: Trace) -> str:
    """A Mermaid sequence diagram: each process talks to the file system."""
    rs = rows(trace)
    procs = sorted({r.process for r in rs})
    out = ["sequenceDiagram", *[f"    participant {p}" for p in procs], "    participant FS as file system"]
    for r in rs:
        out.append(f"    {r.process}->>FS: {r.op.replace(';', ',')}")
        out.append(f"    FS-->>{r.process}: {r.result.replace(';', ',')} (entry {show(dict(r.files).get('entry'))})")
    return "\n".join(out)


def to_json(trace: Trace) -> dict[str, Any]:
    """The trace as data: its setup, steps and the rendered rows."""
    return {
        "setup": system_json(trace.system),
        "property": trace.property,
        "steps": [st.to_json() for st in trace.steps],
        "rows": [
            {"step": r.step, "process": r.process, "op": r.op, "result": r.result,
             "files": {n: None if d is None else {"size": len(d), "bytes": d.decode("latin-1")} for n, d in r.files}}
            for r in rows(trace)
        ],
    }


def system_json(s: System) -> dict[str, Any]:
    """A system as data (the fields of the ``--json`` result rows)."""
    return dict(s.describe())


def from_json(d: dict[str, Any], catalogue: Any = None) -> Trace:
    """Inverse of :func:`to_json` for a system of catalogue protocols
    (looked up by name in ``catalogue``, by default the catalogue); the
    rows are recomputed, not trusted."""
    if catalogue is None:
        from .protocols import CATALOGUE as catalogue
    s = d["setup"]
    reader = catalogue[s["reader"]] if s.get("reader") else None
    system = System.of([catalogue[n] for n in s["protocols"]], s["writers"], s["readers"], reader, faults=s["faults"],
                       entry_length=s["entry_length"], granularity=s["granularity"], crashes=s.get("crashes", 0),
                       variants=s.get("variants", 1))
    return Trace(system, tuple(TraceStep.from_json(x) for x in d["steps"]), d.get("property", ""))


def _align(table_rows: list[list[str]]) -> str:
    widths = [max(len(r[c]) for r in table_rows) for c in range(len(table_rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in table_rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
