"""The GOCACHEPROG server's summary of a cache directory's index entries.

A warm ``go build`` asks its cache program about every action, one pipe
round trip each, and the go command waits for each answer.  Reading the
index entry (open, read, fstat, close) and checking the output (stat) is
five system calls per answer; with this summary it is one.  The summary is
one file, ``DIR/idemwrite-summary``, read once when the server starts and
written (if anything changed) after the server has closed its output, so
the go command never waits for the write.

What an answer from the summary rests on:

- An index entry is a fact, "action A produced output O of size S at time
  T": action IDs hash every input, and outputs are named by their SHA-256.
  A fact once read from a valid entry stays true, so an entry learnt in an
  earlier session may answer a get in a later one.
- Only while the output still exists: every answer from the summary first
  stats ``DIR/xx/<O>-d`` and requires a regular file of exactly S bytes (the
  check Go's GetFile makes).  Outputs are never shrunk once complete (the
  catalogue's writers), so a file of S bytes named by its hash holds the
  output.  A failed check drops the fact and the get takes the ordinary
  path: the index entry on disk.
- Anything not in the summary takes the ordinary path, so entries written
  since (by other servers, by plain go commands) are found as before.

What differs from reading the index entry every time, and why it is safe:

- If another writer replaced A's index entry with a different output O2 (a
  non-reproducible build), the summary may answer O; both are valid outputs
  of A.
- Go refreshes an index entry's mtime when it is used and over an hour old
  (trim removes entries unused for five days).  The summary records that
  mtime as last seen, and the refresh is done after the session's output is
  closed.  An entry whose index file has gone (trimmed, ``go clean``) is
  then dropped.  Facts unused for longer than Go's trim limit are dropped.

The file: a header ``idemwrite-summary v1 <crc32 of the rest, 8 hex>`` and
one line per fact, ``<action ID, base64 as the go command sends it>
<output hex> <size> <entry time ns> <index mtime ns>``.  It is written with
the catalogue's ``rename-into-place`` (readers see an old or a new summary,
never a mix); a summary that fails its checksum (a torn write after a power
cut, an edit) is ignored and rewritten.  Concurrent servers may overwrite
each other's summaries; a lost fact only means the ordinary path.

Not promised: anything on network file systems; a summary edited by hand
so that its checksum still matches is trusted.
"""

from __future__ import annotations

import binascii
import os

from reference.gocache import MTIME_INTERVAL_NS, TRIM_LIMIT_S

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Iterable

SUMMARY_NAME = "idemwrite-summary"
_MAGIC = b"idemwrite-summary v1 "
_HEADER_SIZE = len(_MAGIC) + 8 + 1
SUMMARY_PROTOCOL = "rename-into-place"


def encode(facts: Iterable[tuple[bytes, bytes]]) -> bytes:
    """The file's bytes for (key, fact) pairs (fact: the line after the key)."""
    body = b"".join(k + b" " + v + b"\n" for k, v in facts)
    return _MAGIC + b"%08x\n" % binascii.crc32(body) + body


def decode(data: bytes) -> dict[bytes, bytes] | None:
    """key -> fact, or None if ``data`` is not an intact summary."""
    if not data.startswith(_MAGIC) or data[_HEADER_SIZE - 1:_HEADER_SIZE] != b"\n":
        return None
    body = data[_HEADER_SIZE:]
    try:
        crc = int(data[len(_MAGIC):_HEADER_SIZE - 1], 16)
    except ValueError:
        return None
    if binascii.crc32(body) != crc or (body and not body.endswith(b"\n")):
        return None
    table: dict[bytes, bytes] = {}
    for line in body.split(b"\n")[:-1]:
        key, sep, fact = line.partition(b" ")
        # A key is a 32-byte ID in base64 (44 characters, one "="), as the
        # go command sends it; anything else would answer requests that
        # should get an Err.
        if (not sep or len(key) != 44 or not key.endswith(b"=") or key.endswith(b"==")
                or b'"' in key or b"\\" in key or fact.count(b" ") != 3):
            return None  # written by something else: trust none of it
        table[key] = fact
    return table


def fact(output_hex: str, size: int, time_ns: int, mtime_ns: int) -> bytes:
    return b"%s %d %d %d" % (output_hex.encode(), size, time_ns, mtime_ns)


def parse_fact(fact_: bytes) -> tuple[str, int, int, int] | None:
    """(output hex, size, entry time ns, index mtime ns), or None."""
    parts = fact_.split(b" ")
    if len(parts) != 4 or len(parts[0]) != 64:
        return None
    try:
        return parts[0].decode("ascii"), int(parts[1]), int(parts[2]), int(parts[3])
    except ValueError:
        return None


class Summary:
    """One session's view of ``DIR/idemwrite-summary``.

    ``table`` maps a base64 action ID to its fact; the server reads it
    directly on its fast path and reports what it did through ``used``,
    ``learn`` and ``drop``.  ``finish`` does the deferred work."""

    def __init__(self, dir: str) -> None:
        self.dir = dir
        self.path = os.path.join(dir, SUMMARY_NAME)
        self.table: dict[bytes, bytes] = {}
        self.changed = False
        self.stale: list[bytes] = []  # used keys whose index mtime is over an hour old

    def load(self) -> None:
        """Read the file; a missing or damaged one is an empty summary
        (a damaged one is rewritten by ``finish``)."""
        try:
            with open(self.path, "rb") as f:
                data = f.read()
        except OSError:
            return
        table = decode(data)
        if table is None:
            self.changed = True
        else:
            self.table = table

    def learn(self, key: bytes, output_hex: str, size: int, time_ns: int, mtime_ns: int) -> None:
        new = fact(output_hex, size, time_ns, mtime_ns)
        if self.table.get(key) != new:
            self.table[key] = new
            self.changed = True

    def drop(self, key: bytes) -> None:
        if self.table.pop(key, None) is not None:
            self.changed = True

    def finish(self, now_ns: int) -> None:
        """Refresh the used index entries' mtimes as Go would have, forget
        facts unused beyond Go's trim limit, and write the file if it
        changed.  Called after the go command has its last answer."""
        for key in self.stale:
            self._refresh_index(key, now_ns)
        cutoff = now_ns - TRIM_LIMIT_S * 10**9
        for key, fact_ in list(self.table.items()):
            parsed = parse_fact(fact_)
            if parsed is None or parsed[3] < cutoff:
                self.drop(key)
        if self.changed:
            from reference.entry import write_entry  # the catalogue: only when writing

            write_entry(self.path, encode(sorted(self.table.items())), protocol=SUMMARY_PROTOCOL)
            self.changed = False

    def _refresh_index(self, key: bytes, now_ns: int) -> None:
        fact_ = self.table.get(key)
        parsed = parse_fact(fact_) if fact_ is not None else None
        if parsed is None:
            return
        output_hex, size, time_ns, mtime_ns = parsed
        if now_ns - mtime_ns < MTIME_INTERVAL_NS:
            return
        try:
            h = binascii.a2b_base64(key).hex()
        except binascii.Error:
            self.drop(key)
            return
        try:
            os.utime(f"{self.dir}/{h[:2]}/{h}-a", ns=(now_ns, now_ns))
        except OSError:
            self.drop(key)  # the index entry is gone: go by what is on disk
            return
        self.learn(key, output_hex, size, time_ns, now_ns)
