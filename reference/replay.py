"""Replay a model counterexample on the real kernel.

A :class:`spec.trace.Trace` names, step by step, which process runs and
which fault it suffers.  :func:`replay_trace` runs exactly those steps with
:class:`reference.osworld.OSWorld` - the same programs, real files, one byte
per step at byte granularity - and reports the real shared files after each
step in the shape ``spec.trace.files`` gives the model's, so the two lists
can be compared with ``==``.  What the model says a reader could see (an
empty or torn entry under ``write-file``, a removed one under
``go-index-entry`` with a fault) is then seen on disk, not just predicted.

Not covered: timing (the replay forces the interleaving; it says nothing
about how likely that interleaving is on a loaded machine), and power loss:
a ``crash`` step raises :class:`CrashNotReplayable` (a TraceError), since a
live kernel cannot be made to drop its page cache.
"""

from __future__ import annotations

import os
import pathlib

from spec.trace import CRASH, Trace, TraceError

from .osworld import OSWorld, Snapshot

Files = tuple[tuple[str, bytes | None], ...]


class CrashNotReplayable(TraceError):
    """A trace step is a power loss, which real files cannot replay: the
    kernel would have to lose its page cache, and a simulation of that
    would only restate the model's crash rule, not check it."""

    def __init__(self, step: int) -> None:
        super().__init__(step)
        self.step = step

    def __reduce__(self) -> tuple[type, tuple[object, ...]]:  # picklable across processes
        return type(self), (self.step,)

    def __str__(self) -> str:
        return (f"step {self.step} is a power loss, which cannot be replayed on real files; "
                f"replay the {self.step - 1} steps before it (Trace(system, steps[:{self.step - 1}])) "
                "and read the crash itself from the model's trace")


def replay_snapshots(trace: Trace, root: str | os.PathLike[str]) -> list[Snapshot]:
    """The full real snapshot after each step of ``trace`` (see
    :func:`replay_trace`; this is the same run with the processes too)."""
    out: list[Snapshot] = []
    pathlib.Path(root).mkdir(parents=True, exist_ok=True)  # a fresh directory is fine; a used one is refused
    with OSWorld(trace.system, root) as world:
        for n, s in enumerate(trace.steps, 1):
            if s.process == CRASH:
                raise CrashNotReplayable(n)
            i = _index(world, s.process, n)
            if world.current(i) is None:
                raise TraceError(f"step {n}: {s.process} has already ended")
            if s.fault is not None and s.fault not in world.faults(i):
                raise TraceError(f"step {n}: {s.process} cannot suffer {s.fault} here (allowed: {world.faults(i)})")
            world.step(i, s.fault)
            out.append(world.snapshot())
    return out


def replay_trace(trace: Trace, root: pathlib.Path) -> list[Files]:
    """Replay ``trace`` (faults included) on real files in the directory
    ``root`` (made if missing, refused unless empty); the real shared files after each step, entry first
    then the rest by name, a missing file as None - exactly
    ``spec.trace.files(world.fs)`` for the model's worlds after each step.

    Raises TraceError, as ``spec.trace.replay`` does, when a step names an
    unknown or ended process or a fault the step cannot suffer, and its
    subclass CrashNotReplayable at a power-loss step."""
    return [snap.files for snap in replay_snapshots(trace, root)]


def replay_until_crash(trace: Trace, root: pathlib.Path) -> tuple[list[Files], CrashNotReplayable | None]:
    """:func:`replay_trace` of the steps before the first power loss, and
    the CrashNotReplayable naming it (None when the trace has no crash).
    For renderers that show the real files beside the model's as far as
    the real kernel can go."""
    n = next((j for j, s in enumerate(trace.steps, 1) if s.process == CRASH), None)
    if n is None:
        return replay_trace(trace, root), None
    return replay_trace(Trace(trace.system, trace.steps[:n - 1], trace.property), root), CrashNotReplayable(n)


def _index(world: OSWorld, name: str, n: int) -> int:
    try:
        return world.names.index(name)
    except ValueError:
        raise TraceError(f"step {n}: no process {name!r} (have {', '.join(world.names)})") from None
