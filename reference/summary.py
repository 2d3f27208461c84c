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
one line per fact, ``<action ID, base64 as the go command sends it> <index
mtime ns> <size> <output hex> <answer>``, where the answer is the JSON the
server sends for the entry, ``"OutputID":...,"Size":...,"Time":...`` (so a
get from the summary formats nothing).  It is written with the catalogue's
``rename-into-place`` (readers see an old or a new summary, never a mix);
a summary that fails its checksum (a torn write after a power cut, an
edit) is ignored and rewritten.  Concurrent servers may overwrite each
other's summaries; a lost fact only means the ordinary path.

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
    """key -> fact, or None if ``data`` is not an intact summary.  Facts
    are checked when used (``parse_fact``); this is start-up time."""
    if not data.startswith(_MAGIC) or data[_HEADER_SIZE - 1:_HEADER_SIZE] != b"\n":
        return None
    body = data[_HEADER_SIZE:]
    try:
        crc = int(data[len(_MAGIC):_HEADER_SIZE - 1], 16)
    except ValueError:
        return None
    if binascii.crc32(body) != crc or (body and not body.endswith(b"\n")):
        return None
    try:
        table = dict(line.split(b" ", 1) for line in body.split(b"\n")[:-1])
    except ValueError:  # a line without a space
        return None
    # A key is a 32-byte ID in base64 (44 characters ending in one "="), as
    # the go command sends it; the fast path looks requests up by that text,
    # so no other key may ever match one.
    for key in table:
        if len(key) != 44 or key[43] != 0x3D or key[42] == 0x3D or b'"' in key or b"\\" in key:
            return None
    return table


def fact(mtime_ns: int, size: int, output_hex: bytes, answer: bytes) -> bytes:
    """The line after the key: index mtime, output size and name, answer."""
    return b"%d %d %s %s" % (mtime_ns, size, output_hex, answer)


def parse_fact(fact_: bytes) -> tuple[int, int, bytes, bytes] | None:
    """(index mtime ns, size, output hex, answer), or None."""
    parts = fact_.split(b" ", 3)
    if len(parts) != 4 or len(parts[2]) != 64:
        return None
    try:
        return int(parts[0]), int(parts[1]), parts[2], parts[3]
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

    def learn(self, key: bytes, fact_: bytes) -> None:
        if self.table.get(key) != fact_:
            self.table[key] = fact_
            self.changed = True

    def drop(self, key: bytes) -> None:
        if self.table.pop(key, None) is not None:
            self.changed = True

    def finish(self, now_ns: int) -> None:
        """Refresh the used index entries' mtimes as Go would have and, if
        anything changed, forget facts unused beyond Go's trim limit and
        write the file.  Called after the go command has its last answer."""
        for key in self.stale:
            self._refresh_index(key, now_ns)
        if not self.changed:
            return
        cutoff = now_ns - TRIM_LIMIT_S * 10**9
        for key, fact_ in list(self.table.items()):
            parsed = parse_fact(fact_)
            if parsed is None or parsed[0] < cutoff:
                del self.table[key]
        from reference.entry import write_entry  # the catalogue: only when writing

        write_entry(self.path, encode(sorted(self.table.items())), protocol=SUMMARY_PROTOCOL)
        self.changed = False

    def _refresh_index(self, key: bytes, now_ns: int) -> None:
        fact_ = self.table.get(key)
        parsed = parse_fact(fact_) if fact_ is not None else None
        if parsed is None or now_ns - parsed[0] < MTIME_INTERVAL_NS:
            return
        h = binascii.a2b_base64(key).hex()  # a valid key (decode, learn)
        try:
            os.utime(f"{self.dir}/{h[:2]}/{h}-a", ns=(now_ns, now_ns))
        except OSError:
            self.drop(key)  # the index entry is gone: go by what is on disk
            return
        self.learn(key, fact(now_ns, *parsed[1:]))
