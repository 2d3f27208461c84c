"""The GOCACHEPROG server's summary of a cache directory's index entries.

A warm ``go build`` asks its cache program about every action, one pipe
round trip each, and the go command waits for each answer.  Reading the
index entry (open, read, fstat, close) and checking the output (stat) is
five system calls per answer; with this summary it is one.  The summary is
one file, ``DIR/idemwrite-summary``, read once a session has made enough
gets to gain from it, and written (if anything changed) after the server
has closed its output, so the go command never waits for the write.

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
- The directory may be shared with other users, so the file is untrusted
  input (its CRC is no secret).  ``Summary.hit`` (``get``), the server's fast path,
  hands out a fact only if it has exactly the form ``fact`` makes from a
  hit (the output named by 64 lower-case hex digits, the answer in the
  server's own JSON form), and only while its output is a regular file of
  the recorded size - not a link - in a subdirectory that is not a link:
  the go command reads the answer's DiskPath without re-hashing it.  The
  file is read only if it is a regular file (not a link, FIFO or device) of
  at most the size MAX_FACTS records take.

What differs from reading the index entry every time, and why it is safe:

- If another writer replaced A's index entry with a different output O2 (a
  non-reproducible build), the summary may answer O; both are valid outputs
  of A.
- Facts unused for longest are forgotten first (``MAX_FACTS``); a
  session reads the file only after ``LOAD_AFTER`` gets, so short go
  commands do not pay for it.
- Go refreshes an index entry's mtime when it is used and over an hour old
  (trim removes entries unused for five days).  The summary records that
  mtime as last seen, and the refresh is done after the session's output is
  closed.  An entry whose index file has gone (trimmed, ``go clean``) is
  then dropped.  Facts unused for longer than Go's trim limit are dropped.

The file: a header ``idemwrite-summary v1 <crc32 of the rest, 8 hex>`` and
one fixed-width line per fact, ``<action ID, base64 as the go command sends
it> <index mtime ns> <size> <output hex> <answer>``, padded with spaces to
RECORD bytes, where the answer is the JSON the server sends for the entry, ``"OutputID":...,"Size":...,"Time":...`` (so a
get from the summary formats nothing).  It is written with the catalogue's
``rename-into-place`` (readers see an old or a new summary, never a mix);
a summary that fails its checksum (a torn write after a power cut, an
edit) is ignored and rewritten.  Concurrent servers may overwrite each
other's summaries; a lost fact only means the ordinary path.

Not promised: anything on network file systems; a summary edited so that
its checksum still matches, with well-formed facts about outputs that
exist, is trusted as the index entries are (whoever can write the
directory can change what a build reads); its keys are not checked to be
base64 (a request must still be a plain JSON string to be looked up).
"""

from __future__ import annotations

import binascii
import errno
import os
import stat

from reference.gocache import HEX_SIZE, MTIME_INTERVAL_NS, SUMMARY_NAME, TRIM_LIMIT_S, may_read, process_ids

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Iterable

_MAGIC = b"idemwrite-summary v1 "
_HEADER_SIZE = len(_MAGIC) + 8 + 1
SUMMARY_PROTOCOL = "rename-into-place"
# Fixed-width records, so that loading slices the keys out at a stride and
# never parses a fact it does not use: about 0.2 us a fact here.  Keys are
# 44 bytes (a 32-byte ID in base64); a fact is at most FACT_WIDTH bytes
# (19 + 19 + 64 + an answer of about 125, with spaces), padded with spaces.
_KEY = 44
FACT_WIDTH = 240
RECORD = _KEY + 1 + FACT_WIDTH + 1
MAX_FACTS = 16384  # about 4.7 MB on disk, loaded in a few milliseconds
LOAD_AFTER = 32  # gets a session makes before it reads the summary, at least
FACTS_PER_GET = 32  # and at least one get per this many facts in it
# Reading the file: never a link, never blocking on a FIFO.
_O_READ = os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK


def encode(facts: Iterable[tuple[bytes, bytes]]) -> bytes:
    """The file's bytes for (key, fact) pairs; a pair that does not fit the
    record (never one the server makes) is left out."""
    body = b"".join(k + b" " + v.ljust(FACT_WIDTH) + b"\n" for k, v in facts
                    if len(k) == _KEY and len(v) <= FACT_WIDTH)
    return _MAGIC + b"%08x\n" % binascii.crc32(body) + body


def decode(data: bytes) -> tuple[bytes, dict[bytes, bytes | int]] | None:
    """(the records, key -> offset of its fact in them), or None if ``data``
    is not an intact summary.  Facts are checked when used (``parse_fact``);
    this is start-up time."""
    if not data.startswith(_MAGIC) or data[_HEADER_SIZE - 1:_HEADER_SIZE] != b"\n":
        return None
    body = data[_HEADER_SIZE:]
    try:
        crc = int(data[len(_MAGIC):_HEADER_SIZE - 1], 16)
    except ValueError:
        return None
    n = len(body)
    if binascii.crc32(body) != crc or n % RECORD:
        return None
    keys = [body[i:i + _KEY] for i in range(0, n, RECORD)]
    offsets: dict[bytes, bytes | int] = dict(zip(keys, range(_KEY + 1, n, RECORD)))  # a fact replaces its offset
    return body, offsets


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


_LOWER_HEX = b"0123456789abcdef"
_S_IFMT, _S_IFREG, _S_IFDIR = 0o170000, stat.S_IFREG, stat.S_IFDIR  # the file-type mask (stat.S_IFMT), regular, directory
_DIGITS_TO_0 = bytes.maketrans(b"123456789", b"000000000")
_TIME_FORM = b'0000-00-00T00:00:00.000000000Z"'  # the server's RFC 3339 time, digits as 0, its closing quote
_b2a, _unhex = binascii.b2a_base64, binascii.unhexlify


def well_formed(mtime: bytes, size: bytes, out: bytes, answer: bytes) -> bool:
    """Whether a fact, split in its four fields, has exactly the form the
    server's facts have: ``<mtime> <size> <output hex> "OutputID":"<the
    same ID, base64>","Size":<the same size>,"Time":"<RFC 3339 UTC,
    nanoseconds>"`` (numbers in decimal, no leading zeros).  So an edited
    summary can neither name an output outside the directory (``../``) nor
    send the go command an answer it cannot parse or one that contradicts
    the output checked.  Once per fact used in a session, on the server's
    fast path: built-in calls only."""
    if not (mtime.isdigit() and size.isdigit() and (size[0] != 0x30 or len(size) == 1)  # JSON: no leading zero
            and len(out) == HEX_SIZE and not out.translate(None, _LOWER_HEX)):
        return False
    head = b'"OutputID":"%s","Size":%s,"Time":"' % (_b2a(_unhex(out), newline=False), size)
    return answer.startswith(head) and answer[len(head):].translate(_DIGITS_TO_0) == _TIME_FORM


def _same_within_the_hour(old: bytes, new: bytes) -> bool:
    old_mtime, _, old_rest = old.partition(b" ")
    new_mtime, _, new_rest = new.partition(b" ")
    try:
        return old_rest == new_rest and 0 <= int(new_mtime) - int(old_mtime) < MTIME_INTERVAL_NS
    except ValueError:
        return False


class Summary:
    """One session's view of ``DIR/idemwrite-summary``.

    ``table`` maps a base64 action ID to its fact; the server reads it
    directly on its fast path and reports what it did through ``stale``,
    ``learn`` and ``drop``.  ``finish`` does the deferred work.

    Loading costs a fraction of a microsecond per fact, so the server loads
    only once a session has made enough gets to gain from it (at least
    LOAD_AFTER, and one per FACTS_PER_GET facts on disk; ``load`` merges
    what was learnt before), and at most ``max_facts`` facts are kept,
    the most recently used: a go command that makes three lookups never
    pays for a large summary, and none pays more than a few milliseconds."""

    def __init__(self, dir: str, *, max_facts: int = MAX_FACTS) -> None:
        self.dir = dir
        self.path = os.path.join(dir, SUMMARY_NAME)
        self.max_facts = max_facts
        # key -> its fact, or the offset of the fact in _records (loaded)
        self.table: dict[bytes, bytes | int] = {}
        self._records = b""
        self._pending: dict[bytes, bytes] = {}  # learnt before loading
        self.loaded = False
        self.changed = False
        self.stale: list[bytes] = []  # used keys whose index mtime is over an hour old
        self._dir_b = os.fsencode(dir)
        self._subdirs_ok: set[bytes] = set()  # subdirectory names (2 hex digits) found a directory, not a link
        self._ids = process_ids()
        # The mtime of the output that the last fact handed out by ``hit``
        # was checked against (its lstat): what the server's markUsed needs,
        # so a get from the summary is one system call, not two.
        self.output_mtime_ns = 0

    def facts_on_disk(self) -> int:
        """How many facts the file holds (from its size; 0 if none, or if
        it is not a regular file)."""
        try:
            st = os.lstat(self.path)
        except OSError:
            return 0
        return st.st_size // RECORD if stat.S_ISREG(st.st_mode) else 0

    def load(self) -> None:
        """Read the file, then learn what this session learnt before; a
        missing or damaged file is an empty summary (a damaged one is
        rewritten by ``finish``; so is a link, a FIFO, a device or a file
        too large to be one, none of which is read)."""
        self.loaded = True
        data = self._read()
        got = decode(data) if data else None
        if got is not None:
            self._records, offsets = got
            self.table = offsets
        elif data is not None:
            self.changed = True
        for key, fact_ in self._pending.items():
            self.learn(key, fact_)
        self._pending.clear()

    def _read(self) -> bytes | None:
        """The file's bytes; None if there is none; b"" if what is there
        cannot be a summary (it is then replaced)."""
        try:
            fd = os.open(self.path, _O_READ)
        except OSError as e:
            return b"" if e.errno == errno.ELOOP else None
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode) or st.st_size > _HEADER_SIZE + max(self.max_facts, MAX_FACTS) * RECORD:
                return b""
            chunks = []
            while chunk := os.read(fd, 1 << 20):
                chunks.append(chunk)
            return b"".join(chunks)
        except OSError:
            return b""
        finally:
            os.close(fd)

    def peek(self, key: bytes) -> bytes | None:
        """The fact stored for ``key``, unchecked, or None."""
        if not self.loaded:
            return self._pending.get(key)
        v = self.table.get(key)
        if v is None or isinstance(v, bytes):
            return v
        return self._records[v:v + FACT_WIDTH].rstrip(b" ")

    def get(self, key: bytes) -> bytes | None:
        """The fact for ``key`` if it may answer a get now, else None (and
        the fact is forgotten): well formed (checked once for a fact read
        from the file; the server's own are), and its output
        ``DIR/xx/<hex>-d`` is a regular file - not a link - of the recorded
        size that this process may read, in a subdirectory that is not a
        link.  One lstat."""
        got = self.hit(key)
        return None if got is None else got[0]

    def hit(self, key: bytes) -> tuple[bytes, bytes, bytes, bytes] | None:
        """``get`` for the server's fast path, the fact split once: (the
        fact, its index mtime, its output hex, its answer)."""
        if self.loaded:
            f = self.table.get(key)
            if f is None:
                return None
            if isinstance(f, int):  # an offset into the file: the fact's first use
                f = self._records[f:f + FACT_WIDTH].rstrip(b" ")
                parts = f.split(b" ", 3)
                if len(parts) != 4 or not well_formed(*parts):
                    self.drop(key)
                    return None
                self.table[key] = f  # checked: a later get skips the check
            else:
                parts = f.split(b" ", 3)
        else:
            f = self._pending.get(key)
            if f is None:
                return None
            parts = f.split(b" ", 3)
        if len(parts) == 4 and self._output_ok(parts[2], parts[1]):
            return f, parts[0], parts[2], parts[3]
        self.drop(key)
        return None

    def _output_ok(self, output_hex: bytes, size: bytes) -> bool:
        sub = output_hex[:2]
        try:
            if sub not in self._subdirs_ok:
                if (len(sub) != 2 or sub.translate(None, _LOWER_HEX)
                        or os.lstat(b"%s/%s" % (self._dir_b, sub)).st_mode & _S_IFMT != _S_IFDIR):
                    return False
                self._subdirs_ok.add(sub)
            st = os.lstat(b"%s/%s/%s-d" % (self._dir_b, sub, output_hex))
            self.output_mtime_ns = st.st_mtime_ns
            mode = st.st_mode
            return (mode & _S_IFMT == _S_IFREG and st.st_size == int(size)
                    and bool(mode & 0o004 or may_read(st, self._ids)))
        except (OSError, ValueError):
            return False

    def learn(self, key: bytes, fact_: bytes) -> None:
        """Remember ``fact_`` for ``key``.  The same fact with an index mtime
        under an hour newer is not a change (Go refreshes mtimes hourly
        too), so a warm build does not rewrite the file."""
        if not self.loaded:
            self._pending[key] = fact_
            return
        old = self.peek(key)
        if old == fact_ or (old is not None and _same_within_the_hour(old, fact_)):
            return
        self.table[key] = fact_
        self.changed = True

    def drop(self, key: bytes) -> None:
        if not self.loaded:
            self._pending.pop(key, None)
        elif self.table.pop(key, None) is not None:
            self.changed = True

    def finish(self, now_ns: int) -> None:
        """Refresh the used index entries' mtimes as Go would have and, if
        anything changed, forget facts unused beyond Go's trim limit and
        write the file.  Called after the go command has its last answer."""
        for key in self.stale:
            self._refresh_index(key, now_ns)
        if self._pending:
            self.load()  # to compare with (and keep) the facts of earlier sessions
        if not self.changed:
            return
        cutoff = now_ns - TRIM_LIMIT_S * 10**9
        by_use = []
        facts: dict[bytes, bytes] = {}
        for key in self.table:
            fact_ = self.peek(key)
            parsed = parse_fact(fact_) if fact_ is not None else None
            if fact_ is not None and parsed is not None and parsed[0] >= cutoff:
                by_use.append((parsed[0], key))
                facts[key] = fact_
        by_use.sort(reverse=True)
        kept: dict[bytes, bytes] = {key: facts[key] for _, key in by_use[:self.max_facts]}
        self.table, self._records = dict(kept), b""
        from reference.entry import write_entry  # the catalogue: only when writing

        write_entry(self.path, encode(sorted(kept.items())), protocol=SUMMARY_PROTOCOL)
        self.changed = False

    def _refresh_index(self, key: bytes, now_ns: int) -> None:
        fact_ = self.peek(key)
        parsed = parse_fact(fact_) if fact_ is not None else None
        if parsed is None or now_ns - parsed[0] < MTIME_INTERVAL_NS:
            return
        try:
            h = binascii.a2b_base64(key).hex()  # a key the server looked up (one from the file may be junk)
            # The entry's own times, never those of a file a link points at.
            os.utime(f"{self.dir}/{h[:2]}/{h}-a", ns=(now_ns, now_ns), follow_symlinks=False)
        except (OSError, binascii.Error):
            self.drop(key)  # the index entry is gone: go by what is on disk
            return
        self.learn(key, fact(now_ns, *parsed[1:]))
