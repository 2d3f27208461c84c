"""idemwrite's reference implementation: the catalogue's programs on the real OS.

``write_entry`` and ``read_entry`` run the very protocol programs that the
explorer and the proofs check (``spec.protocols``), through the OS
interpreter in ``reference.osfs``; ``GoCache`` is a Go-compatible build cache
directory written with those protocols, and ``reference.gocacheprog`` serves
it to the go command.  Linux semantics are assumed; network file systems and
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
    # reference.osfs and reference.replay: the OS interpreter, step-wise replay
    "run": "osfs", "RunResult": "osfs", "OpError": "osfs", "OSWorld": "osfs", "Snapshot": "osfs",
    "ProcView": "osfs", "project": "osfs",
    "replay_trace": "replay", "replay_until_crash": "replay", "CrashNotReplayable": "replay",
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
    from .osfs import OpError, OSWorld, ProcView, RunResult, Snapshot, project, run
    from .replay import CrashNotReplayable, replay_trace, replay_until_crash
