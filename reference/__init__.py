"""idemwrite's reference implementation: the catalogue's programs on the real OS.

``write_entry`` and ``read_entry`` run the very protocol programs that the
explorer and the proofs check (``spec.protocols``), through the OS
interpreter (``reference.osrun``); ``GoCache`` is a Go-compatible build
cache directory written with those protocols, and ``reference.gocacheprog``
serves it to the go command.  ``OSWorld`` (``reference.osworld``) runs
processes step by step on real files, ``replay_trace`` replays a model
counterexample there, and ``lockstep`` builds a Hypothesis property test
of any protocol value against the model.  Linux semantics are assumed; network file systems and
Windows sharing semantics are outside what is promised.

Names are loaded on first use (PEP 562): the go command waits for a
GOCACHEPROG server to start, so importing this package must cost nothing
until a name is needed.
"""

from __future__ import annotations

# Not even typing or importlib at start-up (together about 7 ms, paid by
# every go command that starts the server): annotations are strings, and
# TYPE_CHECKING is the constant type checkers recognise.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_WHERE = {
    # reference.entry: the safe public API
    "write_entry": "entry", "read_entry": "entry", "entry_writers": "entry", "no_hole_bytes": "entry",
    # reference.errors: one class per failure
    "IdemwriteError": "errors", "WriteError": "errors", "UnknownProtocolError": "errors",
    "NotAWriterError": "errors", "UnsupportedProtocolError": "errors", "BadSizeError": "errors",
    # reference.gocache: Go's build cache format
    "GoCache": "gocache", "Entry": "gocache", "Miss": "gocache", "VerifyReport": "gocache", "Problem": "gocache",
    "TrimReport": "gocache", "BadID": "gocache", "NotACacheDir": "gocache",
    # reference.osrun: the production runner
    "run": "osrun", "RunResult": "osrun", "OpError": "osrun",
    # reference.osworld and reference.replay: the step-wise world, replay
    "OSWorld": "osworld", "Snapshot": "osworld", "ProcView": "osworld", "project": "osworld",
    "replay_trace": "replay", "replay_until_crash": "replay", "replay_snapshots": "replay",
    "CrashNotReplayable": "replay",
    # reference.lockstep: Hypothesis property tests of any protocol on real files
    "lockstep": "lockstep",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'reference' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:
    from .entry import entry_writers, no_hole_bytes, read_entry, write_entry
    from .errors import BadSizeError, IdemwriteError, NotAWriterError, UnknownProtocolError, UnsupportedProtocolError, WriteError
    from .gocache import BadID, Entry, GoCache, Miss, NotACacheDir, Problem, TrimReport, VerifyReport
    from .lockstep import lockstep
    from .osrun import OpError, RunResult, run
    from .osworld import OSWorld, ProcView, Snapshot, project
    from .replay import CrashNotReplayable, replay_snapshots, replay_trace, replay_until_crash
