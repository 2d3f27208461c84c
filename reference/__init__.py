"""idemwrite's reference implementation: the catalogue's programs on the real OS.

``write_entry`` and ``read_entry`` run the very protocol programs that the
explorer and the proofs check (``spec.protocols``), through the OS
interpreter in ``reference.osfs``; ``GoCache`` is a Go-compatible build cache
directory written with those protocols.  Linux semantics are assumed; network
file systems and Windows sharing semantics are outside what is promised.
"""

from .entry import entry_writers, no_hole_bytes, read_entry, write_entry
from .errors import (
    BadSizeError,
    IdemwriteError,
    NotAWriterError,
    UnknownProtocolError,
    UnsupportedProtocolError,
    WriteError,
)
from .osfs import OpError, OSWorld, ProcView, RunResult, Snapshot, project, run
from .replay import CrashNotReplayable, replay_trace, replay_until_crash

__all__ = [
    "BadSizeError", "CrashNotReplayable", "IdemwriteError", "NotAWriterError", "OSWorld", "OpError", "ProcView",
    "RunResult", "Snapshot", "UnknownProtocolError", "UnsupportedProtocolError", "WriteError",
    "entry_writers", "no_hole_bytes", "project", "read_entry", "replay_trace", "replay_until_crash", "run",
    "write_entry",
]
