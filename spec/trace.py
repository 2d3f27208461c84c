"""Counterexamples: the common trace format and its renderings.

A :class:`Trace` is a Setup plus a list of steps, each naming a process
(``W1``..``Wn`` writers in Setup order, then ``R1``..) and the fault it
suffers, if any.  That is all a trace needs: the model is deterministic
given those choices.  The explorer, the solver (``proofs``) and the OS
replay (``reference``) all produce or consume this one format.

Renderings: a step table for people (step, process, op, result, files
after the step), JSON for machines, a Mermaid sequence diagram for Markdown.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .explore import Exploration, Model, Setup, build, canonical
from .fs import FileSystem
from .machine import SIGBUS, Config, Fault, World, crash, current, faults, step

CRASH = "crash"
from .ops import Read, Stat, Fstat, MapRead, Write, PWrite


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
    """A replayable run: setup, steps, and the property it is meant to break."""

    setup: Setup
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
    model = build(trace.setup)
    w = _concrete_initial(model)
    worlds = [w]
    for n, s in enumerate(trace.steps, 1):
        if w.crashed:
            raise TraceError(f"step {n}: nothing runs after the crash")
        if s.process == CRASH:
            w = crash(w)
            worlds.append(w)
            continue
        i = _index(model, s.process, n)
        if current(model.config, w.procs[i]) is None:
            raise TraceError(f"step {n}: {s.process} has already ended")
        if s.fault is not None and s.fault not in faults(model.config, w, i):
            raise TraceError(f"step {n}: {s.process} cannot suffer {s.fault} here (allowed: {faults(model.config, w, i)})")
        w = step(model.config, w, i, s.fault)
        worlds.append(w)
    return worlds


def _concrete_initial(model: Model) -> World:
    from .machine import initial

    procs = tuple(p.kind for p in model.init.procs)
    return initial(model.config, procs)


def _index(model: Model, name: str, n: int) -> int:
    try:
        return model.names.index(name)
    except ValueError:
        raise TraceError(f"step {n}: no process {name!r} (have {', '.join(model.names)})") from None


def from_exploration(result: Exploration, prop: str) -> Trace:
    """The shortest counterexample the explorer found for ``prop``, as a
    trace over named processes (undoing the symmetry reduction)."""
    model = result.model
    path = result.path(prop)
    w = _concrete_initial(model)
    steps: list[TraceStep] = []
    for target in path[1:]:
        found = _step_to(model, w, target)
        if found is None:
            raise TraceError("internal: no step reaches the next state of the path")
        steps.append(found[0])
        w = found[1]
    return Trace(model.setup, tuple(steps), prop)


def _step_to(model: Model, w: World, target: World) -> tuple[TraceStep, World] | None:
    if target.crashed:
        return TraceStep(CRASH), crash(w)
    for i, p in enumerate(w.procs):
        if current(model.config, p) is None:
            continue
        for f in [None, *faults(model.config, w, i)]:
            nxt = step(model.config, w, i, f)
            if canonical(model, nxt) == target:
                return TraceStep(model.names[i], f), nxt
    return None


# ------------------------------------------------------------ rendering


def rows(trace: Trace) -> list[Row]:
    """The trace as table rows, computed by replaying it in the model."""
    model = build(trace.setup)
    worlds = replay(trace)
    out = []
    for n, (s, before, after) in enumerate(zip(trace.steps, worlds, worlds[1:]), 1):
        if s.process == CRASH:
            out.append(Row(n, CRASH, "power loss", "running processes die; unsynced data is lost", files(after.fs)))
            continue
        i = model.names.index(s.process)
        out.append(Row(n, s.process, describe_op(model.config, before, i), describe_result(model.config, before, after, i, s.fault), files(after.fs)))
    return out


def files(fs: FileSystem) -> tuple[tuple[str, bytes | None], ...]:
    """The shared files after a step (entry first, then the rest by name)."""
    names = sorted({n for n, _ in fs.names} | {"entry"}, key=lambda n: (n != "entry", n))
    return tuple((n, fs.file(n)) for n in names)


def describe_op(cfg: Config, w: World, i: int) -> str:
    """The operation process ``i`` is about to run, as source text."""
    p = w.procs[i]
    ins = current(cfg, p)
    k = cfg.kinds[p.kind]
    text = str(ins)
    if isinstance(ins, (Write, PWrite)) and cfg.granularity == "byte" and len(k.data(ins.data)) > 1:
        text += f" [byte {p.progress + 1}/{len(k.data(ins.data))}]"
    return text


def describe_result(cfg: Config, before: World, after: World, i: int, fault: Fault) -> str:
    """What the step returned, in the OS's words."""
    p, q = before.procs[i], after.procs[i]
    ins = current(cfg, p)
    k = cfg.kinds[p.kind]
    if fault is not None:
        return f"{fault[0]} (injected" + (f", after {fault[1]} bytes)" if isinstance(ins, (Write, PWrite)) else ")")
    if q.status == SIGBUS:
        return "SIGBUS"
    res = q.last or "ok"
    if not q.last and isinstance(ins, (Read, MapRead)) and q.status == "run":
        buf = q.regs[k.reg[ins.into]]
        res = f"{buf[0]!r}" if buf else res
    if not q.last and isinstance(ins, (Stat, Fstat)):
        res = f"size {q.regs[k.reg[ins.into]][0]}" if q.status == "run" else res
    if q.status != "run" and p.status == "run":
        res += f"; returns {q.status}"
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
    s = trace.setup
    return {
        "setup": setup_json(s),
        "property": trace.property,
        "steps": [st.to_json() for st in trace.steps],
        "rows": [
            {"step": r.step, "process": r.process, "op": r.op, "result": r.result,
             "files": {n: None if d is None else {"size": len(d), "bytes": d.decode("latin-1")} for n, d in r.files}}
            for r in rows(trace)
        ],
    }


def setup_json(s: Setup) -> dict[str, Any]:
    """A Setup as data (the fields of the ``--json`` result rows)."""
    return {"protocols": list(s.protocols), "writers": s.writers, "readers": s.readers, "reader": s.reader,
            "faults": s.faults, "entry_length": s.entry_length, "granularity": s.granularity, "crashes": s.crashes}


def from_json(d: dict[str, Any]) -> Trace:
    """Inverse of :func:`to_json` (the rows are recomputed, not trusted)."""
    s = d["setup"]
    setup = Setup(tuple(s["protocols"]), s["writers"], s["readers"], s["reader"], s["faults"], s["entry_length"], s["granularity"], s.get("crashes", 0))
    return Trace(setup, tuple(TraceStep.from_json(x) for x in d["steps"]), d.get("property", ""))


def _align(table_rows: list[list[str]]) -> str:
    widths = [max(len(r[c]) for r in table_rows) for c in range(len(table_rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in table_rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
