"""write_entry / read_entry: the public, safe API for one cache entry.

``write_entry`` runs a writer protocol - by default
``write-then-truncate``, which the explorer and the proofs show keeps
``published-entry-stays-complete`` and ``reader-after-publication-hits`` at
every fault budget - through the production runner (:mod:`reference.osrun`).  It
is the very Program the model checks, not a copy of it.

Concurrency promise (the one the model checks, under its assumptions):
any number of threads or processes may write the *same* bytes to the same
path at once, with no lock, while others read; once one write_entry has
returned, every later read_entry of that path hits, and no read_entry ever
returns a partial entry.  Writers of *different* bytes are outside the
promise: the model's writers all write identical bytes, and two different
entries of one length may interleave byte by byte (harmless only where the
bytes that differ are don't-care, like Go's timestamp).  Crashes and power
loss are outside it too (fsync is not modelled as durability).

``read_entry`` runs the catalogue's ``read-unvalidated`` program (open, read
size+1, close: Go's DiskCache.get without its parser) and then does what
``go-read-entry``'s validity check stands for: the exact-length check,
then the caller's ``validate``.  The exact length alone rejects every
partial entry that write-then-truncate can leave (a short prefix); the
model's reader also rejects a zero byte, because a torn ``write-file``
entry can have the right length with a zero-filled hole: pass
``validate=no_hole_bytes`` (or a real parser) if other writers may use
O_TRUNC.
"""

from __future__ import annotations

import os
from typing import Callable, Union

from spec import semantics as S
from spec.ops import ENTRY, Program, Role
from spec.programs import READ_UNVALIDATED
from spec.protocols import CATALOGUE, Protocol
from spec.state import Status

from .errors import BadSizeError, NotAWriterError, UnknownProtocolError, UnsupportedProtocolError, WriteError
from .osrun import Compiled, compiled, private_name

DEFAULT_PROTOCOL: Protocol = CATALOGUE["write-then-truncate"]
# Its validation is done here, after the run.
READER_PROGRAM: Program = READ_UNVALIDATED

# A writer: a protocol value, a program value, or (for the command line and
# older callers) the name of a catalogue protocol, looked up at each call.
Writer = Union[Protocol, Program, str]

_OK, _HIT = Status.OK, Status.HIT


def _usable(prog: Program) -> str | None:
    """Why writer ``prog`` cannot serve write_entry, or None if it can:
    it may name only the entry (and private temp files beside it) and only
    the ``entry`` payload."""
    if S.OBJECTS in S.features([prog]):
        return "makes object-store requests (a remote tier's protocol)"
    shared = {p.name for p in S.paths(prog) if not p.private}
    if shared - {ENTRY.name}:
        return f"also writes {', '.join(sorted(shared - {ENTRY.name}))}"
    if set(prog.payloads()) - {"entry"}:
        return f"needs payloads {', '.join(prog.payloads())}"
    return None


def entry_writers() -> tuple[str, ...]:
    """The names of the catalogue writers write_entry accepts."""
    return tuple(p.name for p in CATALOGUE.writers() if _usable(p.program) is None)


# A writer ready for write_entry: the writer value, its compiled program,
# per path slot None for the entry itself or the suffix of a private file
# beside it (``entry.tmp`` -> ``.tmp``), whether the entry is its only
# path, and its name.  A tuple: unpacked on every write.
_Plan = tuple[Union[Protocol, Program], Compiled, tuple[Union[str, None], ...], bool, str]

# Plans by the identity of the writer value (a Protocol or a Program); each
# plan holds its value, so an id is never reused while cached.  The last
# plan used is checked first (one tuple, replaced whole: thread-safe).
_PLANS: dict[int, _Plan] = {}
_LAST: _Plan | None = None


def protocol_named(name: str) -> Protocol:
    """The catalogue protocol called ``name`` (how the command line picks
    one); UnknownProtocolError otherwise.  Callers that write often pass
    the value on: a name is looked up at every call."""
    if name not in CATALOGUE:
        raise UnknownProtocolError(name, entry_writers())
    return CATALOGUE[name]


def _plan(writer: Writer) -> _Plan:
    global _LAST
    if isinstance(writer, str):
        writer = protocol_named(writer)
    plan = _PLANS.get(id(writer))
    if plan is not None and plan[0] is writer:
        _LAST = plan
        return plan
    prog = writer if isinstance(writer, Program) else writer.program
    if prog.role is not Role.WRITER:
        raise NotAWriterError(prog.name, entry_writers())
    why = _usable(prog)
    if why is not None:
        raise UnsupportedProtocolError(prog.name, why, entry_writers())
    c = compiled(prog)
    suffixes = tuple(None if not p.private else p.name[len(ENTRY.name):] for p in c.paths)
    plan = _PLANS[id(writer)] = (writer, c, suffixes, suffixes == (None,), prog.name)
    _LAST = plan
    return plan


def write_entry(path: str | os.PathLike[str], data: bytes, *, protocol: Writer = DEFAULT_PROTOCOL) -> None:
    """Publish ``data`` as the entry at ``path`` with a writer protocol: a
    ``spec.protocols.Protocol`` or ``spec.ops.Program`` value (a user's own
    as well as the catalogue's), or a catalogue protocol's name.

    Safe to call concurrently from many threads and processes with the same
    bytes (see the module doc).  Raises UnknownProtocolError,
    NotAWriterError or UnsupportedProtocolError for a protocol it cannot
    run, WriteError when the protocol failed (the errno, the failing call)."""
    plan = _LAST  # the writer of the last call, mostly
    if plan is None or plan[0] is not protocol:
        plan = _plan(protocol)
    _, c, suffixes, entry_only, name = plan
    p = os.fspath(path)
    if type(data) is not bytes:
        data = bytes(data)  # a str raises TypeError here, before any file is touched
    if entry_only:
        paths = [p]  # the common case: the entry is the only path
    else:
        paths = [p if s is None else private_name(p + s) for s in suffixes]
    status, _, first = c.execute(paths, [data])
    if status is not _OK:
        raise _write_error(c, name, p, paths, first)


def _write_error(c: Compiled, protocol: str, path: str, paths: list[str], first: tuple[str, int] | None) -> WriteError:
    if first is None:
        return WriteError(path, protocol, "unknown", "the protocol's failure path (no call failed)")
    err = c.error(first, dict(zip(c.paths, paths)))
    assert err is not None
    return WriteError(path, protocol, err.errno, err.op, err.path)


def no_hole_bytes(buf: bytes) -> bool:
    """The model's stand-in for a parser: no zero byte (Go's entry format
    has none; a zero-filled hole from a torn write does)."""
    return 0 not in buf


def read_entry(path: str | os.PathLike[str], size: int, *, validate: Callable[[bytes], bool] | None = None) -> bytes | None:
    """The entry at ``path`` if it is exactly ``size`` bytes and
    ``validate`` (if given) accepts it; otherwise None - a miss, never a
    partial entry.  Every OS error is a miss.  Raises BadSizeError for a
    negative size; an exception from ``validate`` propagates (a bug in the
    validator should not pass for a miss)."""
    if size < 0:
        raise BadSizeError(size)
    c = compiled(READER_PROGRAM)
    # The reader's payload is the entry it expects; the program only uses
    # its length (read size+1), so a range of that length stands in for it.
    status, got, _ = c.execute([os.fspath(path)], [range(size)])
    buf: bytes | None = got
    if status is not _HIT or buf is None or len(buf) != size:
        return None
    if validate is not None and not validate(buf):
        return None
    return buf
