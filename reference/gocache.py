"""A Go build cache directory, byte for byte as Go 1.27 writes and reads it.

The format (Go's ``cmd/go/internal/cache/cache.go``):

- ``DIR/xx/<action hex>-a``: the *index entry* for an action, exactly
  ``v1 <action hex> <output hex> <size %20d> <unix nanos %20d>\\n``
  (175 bytes; ``xx`` is the first byte of the ID in hex);
- ``DIR/xx/<output hex>-d``: the *output* whose SHA-256 is the output ID (or,
  for a cached executable, a directory holding exactly one file);
- ``DIR/README`` (a courtesy note) and ``DIR/trim.txt`` (the Unix time in
  seconds of the last trim, read and written under an ``flock``).

Promised:

- ``get`` applies Go's own validation, reason for reason: an empty, short,
  too-long, badly framed, mismatched or unparsable entry is a miss, never an
  exception and never a wrong answer.  ``get_file`` adds GetFile's check that
  the output exists with the recorded size.
- Every write of an index entry or an output goes through a catalogue
  program (``spec.protocols``) run on the real OS by
  ``reference.entry.write_entry``; by default ``write-then-truncate``, which
  the model proves never removes another writer's entry and never shrinks a
  complete file (so a reader that has mmapped an output never faults).  The
  output is written before the index entry that points at it, as Go does.
- Many processes (Go's own ``go`` commands among them) may share one
  directory on one machine's local file system; they duplicate work but do
  not corrupt entries.  ``trim`` follows Go's intervals and its lock on
  ``trim.txt``.

- A directory shared with other users (who may plant anything in it) is
  handled as untrusted input.  Reads never follow a symbolic link (an index
  entry or output that is a link, a subdirectory that is one: a miss), never
  open a FIFO in a way that blocks, and never read a special file; an
  answer's output path is a regular file in a real subdirectory of ``dir``
  (the go command does not re-hash what it reads there).  Writes refuse a
  target that is a link or special file, or sits in a linked subdirectory
  (UnsafePathError), and ``trim`` never descends into one.  ``verify`` names
  every such file.  What is checked is the state at the call: a co-user who
  can write ``dir/xx`` and swaps a link in between the check and the
  write's own ``open`` (microseconds), or after an answer and before the go
  command reads it, is not stopped; that needs O_NOFOLLOW in the protocol's
  ``open`` (not yet in the instruction language) and, for the go command,
  a directory other users cannot write.  The bytes of a regular file inside
  ``dir`` are trusted as Go trusts them: whoever can write ``dir`` can
  change what a build reads.

Not promised: durability across a power cut (nothing is fsynced, as in Go),
network file systems (flock and same-bytes overwrites are not reliable
there), Windows sharing semantics, or protection against a writer that
stores *different* bytes under the same action ID with a different protocol.
"""

from __future__ import annotations

import binascii
import errno
import os
import stat as stat_mod
import time

# Kept out of the import path on purpose: hashlib (OpenSSL), shutil,
# dataclasses and typing each cost milliseconds, and a GOCACHEPROG server's
# start-up time is paid by every go command.  They are imported where they
# are used, the small value classes below are written out by hand, and
# typing's names, needed only in annotations (strings here, PEP 563), are
# imported only by type checkers.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable, Iterator

    from spec.protocols import Protocol

HASH_SIZE = 32
HEX_SIZE = HASH_SIZE * 2
# "v1 <hex id> <hex out> <size %20d> <unixnano %20d>\n": Go's entrySize.
ENTRY_SIZE = 2 + 1 + HEX_SIZE + 1 + HEX_SIZE + 1 + 20 + 1 + 20 + 1
# Offsets of the fields inside an entry, derived once from the format above.
_ID_AT = 3
_OUT_AT = _ID_AT + HEX_SIZE + 1
_SIZE_AT = _OUT_AT + HEX_SIZE + 1
_TIME_AT = _SIZE_AT + 20 + 1

# Go's cache expiry intervals (cache.go): mtimes are refreshed at most once an
# hour; a trim scan runs at most once a day and removes what has gone unused
# for five days (plus the hour of mtime imprecision).
MTIME_INTERVAL_NS = 3600 * 10**9
TRIM_INTERVAL_S = 24 * 3600
TRIM_LIMIT_S = 5 * 24 * 3600

DEFAULT_PROTOCOL = "write-then-truncate"

# Go's cacheREADME (default.go), written as a courtesy like Go does.
README_TEXT = b"""This directory holds cached build artifacts from the Go build system.
Run "go clean -cache" if the directory is getting too large.
Run "go clean -fuzzcache" to delete the fuzz cache.
See go.dev to learn more about Go.
"""

_INT64_MAX = 2**63 - 1

# Bound once: get() runs once per go command cache lookup, and with a
# GOCACHEPROG server every global lookup shows in the build's wall time.
_hexlify = binascii.hexlify
_unhexlify = binascii.unhexlify
_open, _fstat, _read, _close, _lstat = os.open, os.fstat, os.read, os.close, os.lstat
# O_NOFOLLOW: an index entry that is a symbolic link is a miss (ELOOP), not
# a file read from wherever it points.  O_NONBLOCK: a FIFO put in a shared
# directory opens at once instead of waiting for a writer (the fstat after
# the open then refuses it); on a regular file it changes nothing.
_O_READ = os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK
_READ_SIZE = ENTRY_SIZE + 1  # +1 to see a too-long file, as Go does
_S_IFMT, _S_IFREG, _S_IFDIR = stat_mod.S_IFMT(0o177777), stat_mod.S_IFREG, stat_mod.S_IFDIR

# Names Go (and the server) keep at the top of a cache directory, beside the
# 256 subdirectories: files, and the fuzz cache's directory.
SUMMARY_NAME = "idemwrite-summary"  # reference.summary's file
_TOP_FILES = frozenset(("README", "trim.txt", "testexpire.txt", SUMMARY_NAME))
_TOP_DIRS = frozenset(("fuzz",))
_SUBDIRS = frozenset(f"{i:02x}" for i in range(256))
# verify hashes outputs up to this size; a larger "output" is reported, not
# read (no Go build output comes near it: a sparse file of a terabyte would
# otherwise keep verify busy for an hour).
VERIFY_HASH_LIMIT = 4 << 30
# get_bytes returns the output in memory: a larger one is a miss (use
# get_file and read the file), so a forged entry cannot exhaust memory.
GET_BYTES_LIMIT = 1 << 30


class BadID(ValueError):
    """An action or output ID that is not 32 bytes (a SHA-256)."""

    def __init__(self, what: str, value: bytes) -> None:
        super().__init__(f"{what} must be {HASH_SIZE} bytes (a SHA-256), got {len(value)} bytes")


class NotACacheDir(OSError):
    """The cache directory does not exist or is not a directory."""


class Entry(tuple[bytes, int, int]):
    """A valid index entry: Go's ``cache.Entry``, as an immutable
    (output_id, size, time_ns) tuple; a tuple because ``get`` makes one per
    hit and a tuple is the cheapest immutable value to build."""

    __slots__ = ()

    def __new__(cls, output_id: bytes, size: int, time_ns: int) -> Entry:
        return tuple.__new__(cls, (output_id, size, time_ns))

    @property
    def output_id(self) -> bytes:
        """The SHA-256 of the output (Go's OutputID)."""
        return self[0]

    @property
    def size(self) -> int:
        """The output's size in bytes."""
        return self[1]

    @property
    def time_ns(self) -> int:
        """When the entry was written, Unix nanoseconds (Go's Entry.Time)."""
        return self[2]

    def __repr__(self) -> str:
        return f"Entry(output_id={self[0].hex()}, size={self[1]}, time_ns={self[2]})"


class Miss:
    """Why a lookup missed, in Go's own words ("file is empty", ...)."""

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Miss) and self.reason == other.reason

    def __hash__(self) -> int:
        return hash(self.reason)

    def __repr__(self) -> str:
        return f"Miss({self.reason!r})"


# ------------------------------------------------------------ the format


def format_entry(action_id: bytes, output_id: bytes, size: int, time_ns: int) -> bytes:
    """The 175 bytes Go's putIndexEntry writes: ``v1 %x %x %20d %20d\\n``."""
    return b"v1 %s %s %20d %20d\n" % (action_id.hex().encode(), output_id.hex().encode(), size, time_ns)


def _go_parse_int(field_: bytes) -> int | None:
    """strconv.ParseInt(s, 10, 64) after Go strips leading spaces: an
    optional sign and ASCII digits only, within int64.  (Python's int() is
    laxer - ``1_0``, tabs, trailing spaces - so it only ever sees digits.)"""
    s = field_.lstrip(b" ")
    if s.isdigit():  # ASCII digits, non-empty: the %20d Go writes
        n = int(s)
        return n if n <= _INT64_MAX else None
    if s[:1] in (b"+", b"-") and s[1:].isdigit():
        n = int(s)
        return n if -_INT64_MAX - 1 <= n <= _INT64_MAX else None
    return None


def _go_hex(field_: bytes) -> bytes | None:
    """hex.Decode of a 64-character field: exactly 32 bytes or None
    (binascii, unlike bytes.fromhex, skips no spaces: as strict as Go)."""
    try:
        return binascii.unhexlify(field_)
    except binascii.Error:
        return None


def parse_entry(action_id: bytes, raw: bytes) -> Entry | Miss:
    """Go's DiskCache.get validation of what was read (up to ENTRY_SIZE+1
    bytes): the entry, or a Miss with Go's reason.

    The fast path accepts only the exact form Go writes (lower-case IDs,
    unsigned numbers) and returns what the reason-by-reason path would; the
    tests check that the two agree on arbitrary bytes."""
    return _parse_entry(_hexlify(action_id), action_id, raw)


def _parse_entry(hex_id: bytes, action_id: bytes, raw: bytes) -> Entry | Miss:
    """parse_entry, given the action ID in hex too (``get`` has it)."""
    if (len(raw) == ENTRY_SIZE and raw[_ID_AT:_OUT_AT - 1] == hex_id and raw[:_ID_AT] == b"v1 "
            and raw[_OUT_AT - 1] == 0x20 and raw[_SIZE_AT - 1] == 0x20 and raw[_TIME_AT - 1] == 0x20
            and raw[ENTRY_SIZE - 1] == 0x0A):
        size_s = raw[_SIZE_AT:_SIZE_AT + 20].lstrip(b" ")
        tm_s = raw[_TIME_AT:_TIME_AT + 20].lstrip(b" ")
        if size_s.isdigit() and tm_s.isdigit():  # ASCII digits only, non-empty
            try:
                out = _unhexlify(raw[_OUT_AT:_OUT_AT + HEX_SIZE])
            except binascii.Error:
                return parse_entry_slowly(action_id, raw)
            size, tm = int(size_s), int(tm_s)
            if size <= _INT64_MAX and tm <= _INT64_MAX:
                return tuple.__new__(Entry, (out, size, tm))  # Entry(out, size, tm), minus a call
    return parse_entry_slowly(action_id, raw)


def parse_entry_slowly(action_id: bytes, raw: bytes) -> Entry | Miss:
    """parse_entry, check by check in Go's order, each with Go's reason."""
    n = len(raw)
    if n > ENTRY_SIZE:
        return Miss("too long")
    if n == 0:
        return Miss("file is empty")
    if n < ENTRY_SIZE:
        return Miss("entry file incomplete")
    if (raw[:3] != b"v1 " or raw[_OUT_AT - 1] != 0x20 or raw[_SIZE_AT - 1] != 0x20
            or raw[_TIME_AT - 1] != 0x20 or raw[ENTRY_SIZE - 1] != 0x0A):
        return Miss("invalid header")
    eid = _go_hex(raw[_ID_AT:_ID_AT + HEX_SIZE])
    if eid is None:
        return Miss("decoding ID")
    if eid != action_id:
        return Miss("mismatched ID")
    out = _go_hex(raw[_OUT_AT:_OUT_AT + HEX_SIZE])
    if out is None:
        return Miss("decoding output ID")
    size = _go_parse_int(raw[_SIZE_AT:_SIZE_AT + 20])
    if size is None:
        return Miss("parsing size")
    if size < 0:
        return Miss("negative size")
    tm = _go_parse_int(raw[_TIME_AT:_TIME_AT + 20])
    if tm is None:
        return Miss("parsing timestamp")
    if tm < 0:
        return Miss("negative timestamp")
    return Entry(out, size, tm)


def _check_id(what: str, value: bytes) -> None:
    if len(value) != HASH_SIZE:
        raise BadID(what, value)


# ------------------------------------------------------------ reports


class Problem:
    """One file that is not what Go would accept, or that a shared
    directory should not hold."""

    def __init__(self, path: str, kind: str, detail: str) -> None:
        self.path = path
        # "corrupt-entry", "dangling-entry", "corrupt-output", "unexpected"
        # (a name Go does not use), "link" (a symbolic link), "special" (a
        # FIFO, device or socket), "unreadable", "huge" (not hashed)
        self.kind = kind
        self.detail = detail

    def __repr__(self) -> str:
        return f"Problem({self.kind}: {self.path}: {self.detail})"


class VerifyReport:
    """What ``verify`` found: counts, sizes and every problem file by name."""

    def __init__(self) -> None:
        self.entries = 0
        self.outputs = 0
        self.executables = 0
        self.entry_bytes = 0
        self.output_bytes = 0
        self.unreferenced_outputs = 0
        self.problems: list[Problem] = []

    @property
    def ok(self) -> bool:
        return not self.problems

    def add(self, path: str, kind: str, detail: str) -> None:
        self.problems.append(Problem(path, kind, detail))


class TrimReport:
    """What ``trim`` did: skipped (trimmed recently), or what it removed."""

    def __init__(self, skipped: bool) -> None:
        self.skipped = skipped
        self.removed = 0
        self.removed_bytes = 0


# ------------------------------------------------------------ the cache


def _write_entry() -> Callable[..., None]:
    """``reference.entry.write_entry``, imported on first write: it pulls in
    the catalogue (``spec``), which a read-only or all-hits server never
    needs, and import time is start-up latency for every go command."""
    from reference.entry import write_entry

    return write_entry


class GoCache:
    """A Go build cache directory (Go's ``DiskCache``).

    ``GoCache(dir)`` creates ``dir``, its 256 subdirectories and README, as
    Go's ``Open`` and ``initDefaultCache`` do.  ``create=False`` touches
    nothing (for looking at a person's real GOCACHE).  ``protocol`` names the
    catalogue program that writes both index entries and outputs.

    ``dir`` itself is the caller's choice and may be a link; below it, a
    subdirectory is used only if it is a directory and not a link, checked
    when this object is made (``create``) or at its first use, and
    remembered (when all 256 are real, a get checks nothing more).
    """

    def __init__(self, dir: str, *, protocol: str = DEFAULT_PROTOCOL, create: bool = True,
                 now_ns: Callable[[], int] = time.time_ns) -> None:
        self.dir = os.path.abspath(dir)
        self.protocol = protocol
        self._now_ns = now_ns
        self._write: Callable[..., None] | None = None
        self._proto: Protocol | None = None  # the value ``protocol`` names, looked up at the first put
        # Per subdirectory (by its byte, the IDs' first), 1 once it was found
        # to be a directory and not a link: get's check is one index.
        self._subdir_seen = bytearray(256)
        self._all_real = False  # every subdirectory found real (at creation): get checks none
        self._ids = process_ids()  # who reads: get_file answers only outputs this process may read
        self._dir_b = os.fsencode(self.dir)
        if create:
            self._create()
        elif not os.path.isdir(self.dir):
            if os.path.exists(self.dir):
                raise NotACacheDir(errno.ENOTDIR, "not a directory, so not a Go build cache", self.dir)
            raise NotACacheDir(errno.ENOENT, "no such directory (see `go env GOCACHE` for the cache's place)", self.dir)

    def _create(self) -> None:
        try:
            os.makedirs(self.dir, exist_ok=True)
        except FileExistsError:  # a file (or a dangling link) where the directory should be
            raise NotACacheDir(errno.ENOTDIR, "not a directory, so not a Go build cache", self.dir) from None
        readme = os.path.join(self.dir, "README")
        if not os.path.lexists(readme):  # a link is left alone, never written through
            # Best effort, as in Go; every writer writes the same bytes.
            try:
                self._check_target(readme)
                self._writer()(readme, README_TEXT, protocol=DEFAULT_PROTOCOL)
            except OSError:
                pass
        for i in range(256):
            # An lstat first (as many calls as Go's mkdir of an existing
            # directory, and no exception to raise): the subdirectories
            # found real now need no check on each get.
            sub = f"{i:02x}"
            try:
                real = stat_mod.S_ISDIR(os.lstat(f"{self.dir}/{sub}").st_mode)
            except FileNotFoundError:
                try:
                    os.mkdir(f"{self.dir}/{sub}", 0o777)
                except FileExistsError:  # made meanwhile, by another process
                    pass
                real = self._subdir_ok(sub)
            except OSError:
                real = False
            self._subdir_seen[i] = real
        self._all_real = all(self._subdir_seen)

    def _writer(self) -> Callable[..., None]:
        if self._write is None:
            self._write = _write_entry()
        return self._write

    def _protocol(self) -> Protocol:
        """The catalogue protocol ``self.protocol`` names, looked up once:
        write_entry then runs the value (UnknownProtocolError, a
        ValueError, before anything is written)."""
        from reference.entry import protocol_named

        self._proto = protocol_named(self.protocol)
        return self._proto

    # ---- names

    def file_name(self, id_: bytes, key: str) -> str:
        """Go's fileName: ``DIR/xx/<hex>-<key>``."""
        h = id_.hex()
        return f"{self.dir}/{h[:2]}/{h}-{key}"

    def output_file(self, output_id: bytes) -> str:
        """Where the output is stored (for an executable, the one regular
        file inside its ``-d`` directory; Go's OutputFile, without
        markUsed).  Links are not followed."""
        name = self.file_name(output_id, "d")
        inner = _executable(name)
        return inner[0] if inner is not None else name

    def _subdir_ok(self, sub: str) -> bool:
        """Whether ``DIR/sub`` is a directory and not a link (to anything):
        looked at once, then remembered."""
        i = int(sub, 16)
        if self._subdir_seen[i]:
            return True
        try:
            st = os.lstat(f"{self.dir}/{sub}")
        except OSError:
            return False
        if not stat_mod.S_ISDIR(st.st_mode):
            return False
        self._subdir_seen[i] = 1
        return True

    # ---- reads

    def lookup(self, action_id: bytes, *, mark_used: bool = True) -> Entry | Miss:
        """Go's DiskCache.get: the entry, or why it missed.  With
        ``mark_used``, a hit refreshes the entry's mtime as Go's markUsed
        does (at most once an hour)."""
        if len(action_id) != HASH_SIZE:
            raise BadID("action ID", action_id)
        h = action_id.hex()
        if not self._subdir_ok(h[:2]):
            return Miss(f"{h[:2]} is not a directory of the cache (missing, a file, or a link)")
        path = f"{self.dir}/{h[:2]}/{h}-a"
        got = _read_index(path)
        if isinstance(got, str):
            return Miss(got)
        raw, mtime_ns = got
        entry = parse_entry(action_id, raw)
        if mark_used and type(entry) is Entry and self._now_ns() - mtime_ns >= MTIME_INTERVAL_NS:
            self._touch(path)
        return entry

    def get(self, action_id: bytes) -> Entry | None:
        """The valid entry for ``action_id``, or None (any kind of miss).

        ``lookup`` inlined: this is the call a GOCACHEPROG server makes once
        per go command cache lookup, and the one the speed target is on
        (hence a bytes path: no encoding at the open)."""
        if len(action_id) != HASH_SIZE:
            raise BadID("action ID", action_id)
        hex_id = _hexlify(action_id)
        if not (self._all_real or self._subdir_seen[action_id[0]] or self._subdir_ok(hex_id[:2].decode())):
            return None
        path = b"%s/%s/%s-a" % (self._dir_b, hex_id[:2], hex_id)
        try:
            fd = _open(path, _O_READ)
        except OSError:
            return None
        try:
            st = _fstat(fd)
            if st.st_mode & _S_IFMT != _S_IFREG:  # a FIFO, a device, a directory: never read
                return None
            raw = _read(fd, _READ_SIZE)
        except OSError:
            return None
        finally:
            _close(fd)
        got = _parse_entry(hex_id, action_id, raw)
        if type(got) is not Entry:
            return None
        if self._now_ns() - st.st_mtime_ns >= MTIME_INTERVAL_NS:
            self._touch(path)
        return got

    def get_file(self, action_id: bytes) -> tuple[str, Entry] | None:
        """Go's GetFile: a valid entry whose output exists with the recorded
        size; returns the output's path (absolute) and the entry.  The path
        is a regular file, not a link, in a real subdirectory of ``dir``:
        a GOCACHEPROG server hands it to the go command, which reads it
        without checking its hash."""
        got = self.get(action_id)
        if got is None:
            return None
        h = got[0].hex()
        if not (self._all_real or self._subdir_seen[got[0][0]] or self._subdir_ok(h[:2])):
            return None
        path = f"{self.dir}/{h[:2]}/{h}-d"
        try:
            st = _lstat(path)
        except OSError:
            return None
        kind = st.st_mode & _S_IFMT
        if kind == _S_IFREG:  # the common case
            # A short (or long) output is Go's "file incomplete"; one we may
            # not read (another user's, 0600) would fail the go command.
            # World-readable settles it at once (a mode that denies its
            # owner what it grants everyone is not worth a branch here).
            if st.st_size != got[1] or not (st.st_mode & 0o004 or may_read(st, self._ids)):
                return None
            hit = path
        elif kind == _S_IFDIR:  # a cached executable: the one file inside
            inner = _executable(path)
            if inner is None or inner[1].st_size != got[1] or not may_read(inner[1], self._ids):
                return None
            hit = inner[0]
        else:  # a link, a FIFO, a device
            return None
        if self._now_ns() - st.st_mtime_ns >= MTIME_INTERVAL_NS:
            self._touch(path)
        return hit, got

    def get_bytes(self, action_id: bytes) -> tuple[bytes, Entry] | None:
        """Go's GetBytes: the output's bytes, only if their SHA-256 matches
        (and, unlike Go, only up to GET_BYTES_LIMIT bytes)."""
        hit = self.get_file(action_id)
        if hit is None:
            return None
        path, entry = hit
        if entry.size > GET_BYTES_LIMIT:
            return None
        try:
            fd = os.open(path, _O_READ)
        except OSError:
            return None
        try:
            if os.fstat(fd).st_mode & _S_IFMT != _S_IFREG:  # swapped since get_file looked
                return None
            data = _read_up_to(fd, entry.size + 1)
        except OSError:
            return None
        finally:
            os.close(fd)
        import hashlib

        if hashlib.sha256(data).digest() != entry.output_id:
            return None
        return data, entry

    def now_ns(self) -> int:
        """The cache's clock (injectable, for tests of the mtime rules)."""
        return self._now_ns()

    def mark_used(self, path: str | bytes, mtime_ns: int) -> None:
        """Go's markUsed for a file last seen with ``mtime_ns``: refresh it
        if that is over an hour old, so trim sees roughly the last use
        without an inode update per use."""
        if self._now_ns() - mtime_ns >= MTIME_INTERVAL_NS:
            self._touch(path)

    def _touch(self, path: str | bytes) -> None:
        now = self._now_ns()
        try:
            # A link's own times, if one was swapped in: never its target's.
            os.utime(path, ns=(now, now), follow_symlinks=False)
        except OSError:
            pass  # best effort, as in Go

    # ---- writes

    def put(self, action_id: bytes, data: bytes) -> tuple[bytes, int]:
        """Store ``data`` as the output of ``action_id``; returns
        (output ID, size).  Raises what ``write_entry`` raises, and
        UnsafePathError for a target that is a link or a special file."""
        import hashlib  # a no-op after the first put

        _check_id("action ID", action_id)
        output_id = hashlib.sha256(data).digest()
        self.put_output(output_id, data)
        self.put_index(action_id, output_id, len(data))
        return output_id, len(data)

    def put_output(self, output_id: bytes, data: bytes) -> str:
        """Write the output file for ``output_id`` (its SHA-256) and return
        its path.

        Protocol choice: the same catalogue program as index entries
        (write-then-truncate by default), not rename-into-place: every writer
        of an output writes the same bytes (its name is their hash), so an
        in-place rewrite never changes a byte a concurrent reader (or mmap)
        sees and never shrinks a complete file; and unlike rename-into-place
        it leaves no temp files behind after a crash, which Go's trim (it
        removes only ``-a``/``-d`` names) would never clean up.  Go's own
        copyFile truncates to 0 on error paths; this never does.
        """
        _check_id("output ID", output_id)
        path = self.file_name(output_id, "d")
        self._check_target(path, output_id.hex()[:2])
        self._writer()(path, data, protocol=self._proto or self._protocol())
        return path

    def put_index(self, action_id: bytes, output_id: bytes, size: int) -> int:
        """Write the index entry; the output must already be complete (an
        entry must never point at an incomplete output).  Returns the
        entry's time (Unix ns), as recorded in it."""
        time_ns = self._now_ns()
        entry = format_entry(action_id, output_id, size, time_ns)
        path = self.file_name(action_id, "a")
        self._check_target(path, action_id.hex()[:2])
        self._writer()(path, entry, protocol=self._proto or self._protocol())
        return time_ns

    def _check_target(self, path: str, sub: str | None = None) -> None:
        """Refuse (UnsafePathError) to write ``path`` if it is a link or a
        special file, or if its subdirectory ``sub`` is not a real one.

        Why checks here and not O_NOFOLLOW: the write itself is a catalogue
        program, whose ``open`` comes from the instruction language, which
        has no O_NOFOLLOW (the model would need its ELOOP).  An lstat of the
        target costs one system call per file written; the subdirectory's
        is remembered.  A file that is missing, regular or a directory is
        left to the kernel (which creates it, or fails with EISDIR,
        ENOTDIR, ...: a WriteError naming the call)."""
        if sub is not None and not self._subdir_ok(sub):
            _refuse_odd(f"{self.dir}/{sub}")
        _refuse_odd(path)

    # ---- trim

    def trim(self, *, force: bool = False) -> TrimReport:
        """Go's Trim: at most once per 24 h (recorded in trim.txt under an
        exclusive flock), remove ``-a``/``-d`` files unused for 5 days + 1 h.
        ``force`` trims even if trim.txt says it was done recently."""
        now_ns = self._now_ns()
        now_s = now_ns // 10**9
        trim_txt = os.path.join(self.dir, "trim.txt")
        if not force and _skip_trim(_read_locked(trim_txt), now_s):
            return TrimReport(skipped=True)
        import fcntl  # a shared library: loaded by the trim, after the server's last answer

        fd = _open_regular(trim_txt, os.O_RDWR | os.O_CREAT)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            # Another process may have trimmed while we waited for the lock.
            if not force and _skip_trim(_read_up_to(fd, 4096), now_s):
                return TrimReport(skipped=True)
            # Record the trim before doing it (Go #76314: fewer concurrent
            # trims).  The flock excludes Go's lockedfile readers and writers.
            self._check_target(trim_txt)
            self._writer()(trim_txt, b"%d" % now_s, protocol=DEFAULT_PROTOCOL)
        finally:
            os.close(fd)  # releases the flock
        cutoff_ns = now_ns - (TRIM_LIMIT_S * 10**9 + MTIME_INTERVAL_NS)
        report = TrimReport(skipped=False)
        for i in range(256):
            sub = f"{i:02x}"
            if self._subdir_ok(sub):  # never into a linked one: its files are not the cache's
                self._trim_subdir(os.path.join(self.dir, sub), cutoff_ns, report)
        return report

    def _trim_subdir(self, subdir: str, cutoff_ns: int, report: TrimReport) -> None:
        try:
            names = os.listdir(subdir)  # all names first, as Go does
        except OSError:
            return
        for name in names:
            if not (name.endswith("-a") or name.endswith("-d")):
                continue
            path = os.path.join(subdir, name)
            try:
                st = os.lstat(path)  # a link is removed as a link, never followed
                if st.st_mtime_ns >= cutoff_ns:
                    continue
                if stat_mod.S_ISDIR(st.st_mode):
                    import shutil  # executables only

                    shutil.rmtree(path)
                else:
                    os.unlink(path)
            except OSError:
                continue
            report.removed += 1
            report.removed_bytes += st.st_size

    # ---- whole-directory checks

    def iter_files(self) -> Iterator[tuple[str, str]]:
        """Every (subdir name, file name) in the 256 subdirectories that
        are real directories (not links)."""
        for i in range(256):
            sub = f"{i:02x}"
            if not self._subdir_ok(sub):
                continue
            try:
                names = sorted(os.listdir(os.path.join(self.dir, sub)))
            except OSError:
                continue
            for name in names:
                yield sub, name

    def verify(self) -> VerifyReport:
        """Check every index entry (Go's validation, and that its output
        exists with the right size) and every output's SHA-256, and name
        every file Go would not have put there: links, FIFOs, devices,
        sockets, unreadable files, stray names.  Reads only: no mtime is
        refreshed, nothing is repaired, no link is followed, no FIFO or
        device is opened."""
        report = VerifyReport()
        self._verify_top(report)
        referenced: set[bytes] = set()
        outputs: set[bytes] = set()
        for sub, name in self._iter_subdir_files(report):
            path = f"{self.dir}/{sub}/{name}"
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                continue  # removed since it was listed (a trim, a go clean)
            except OSError as e:
                report.add(path, "unreadable", e.strerror or str(e))
                continue
            if _report_odd(report, path, st.st_mode):
                continue
            id_ = _id_from_name(sub, name)
            if id_ is None:
                report.add(path, "unexpected", "not a Go cache file name (xx/<64 hex>-a or -d)")
            elif name.endswith("-a"):
                self._verify_entry(path, id_, st, report, referenced)
            else:
                self._verify_output(path, id_, st, report)
                outputs.add(id_)
        report.unreferenced_outputs = len(outputs - referenced)
        return report

    def _verify_top(self, report: VerifyReport) -> None:
        """The names beside the 256 subdirectories."""
        try:
            names = sorted(os.listdir(self.dir))
        except OSError as e:
            report.add(self.dir, "unreadable", e.strerror or str(e))
            return
        for name in names:
            path = os.path.join(self.dir, name)
            try:
                st = os.lstat(path)
            except OSError:
                continue
            if _report_odd(report, path, st.st_mode):
                continue
            is_dir = stat_mod.S_ISDIR(st.st_mode)
            if name in _SUBDIRS or name in _TOP_DIRS:
                if not is_dir:
                    report.add(path, "unexpected", "a file where a directory of the cache should be")
            elif name in _TOP_FILES:
                if is_dir:
                    report.add(path, "unexpected", "a directory where a file of the cache should be")
            else:
                report.add(path, "unexpected", "not a name Go's cache (or this server) uses")

    def _iter_subdir_files(self, report: VerifyReport) -> Iterator[tuple[str, str]]:
        """iter_files, reporting a subdirectory it cannot list."""
        for i in range(256):
            sub = f"{i:02x}"
            if not self._subdir_ok(sub):
                continue  # missing, or reported by _verify_top
            try:
                names = sorted(os.listdir(os.path.join(self.dir, sub)))
            except OSError as e:
                report.add(os.path.join(self.dir, sub), "unreadable", e.strerror or str(e))
                continue
            for name in names:
                yield sub, name

    def _verify_entry(self, path: str, action_id: bytes, st: os.stat_result, report: VerifyReport,
                      referenced: set[bytes]) -> None:
        report.entries += 1
        report.entry_bytes += st.st_size
        got = _read_index(path)
        if isinstance(got, str):
            report.add(path, "unreadable" if got == _EACCES_TEXT else "corrupt-entry", got)
            return
        entry = parse_entry(action_id, got[0])
        if isinstance(entry, Miss):
            report.add(path, "corrupt-entry", entry.reason)
            return
        referenced.add(entry.output_id)
        out = entry.output_id.hex()
        name = self.file_name(entry.output_id, "d")
        size = _output_size(name) if self._subdir_ok(out[:2]) else None  # never through a linked subdirectory
        if size is None:
            why = "is not a regular file" if os.path.lexists(name) else "is missing"
            report.add(path, "dangling-entry", f"output {out} {why}")
        elif size != entry.size:
            report.add(path, "dangling-entry", f"output {out} has {size} bytes, entry says {entry.size}")

    def _verify_output(self, path: str, output_id: bytes, st: os.stat_result, report: VerifyReport) -> None:
        report.outputs += 1
        if stat_mod.S_ISDIR(st.st_mode):
            report.executables += 1
            try:
                inner = sorted(os.listdir(path))
            except OSError as e:
                report.add(path, "unreadable", e.strerror or str(e))
                return
            if len(inner) != 1:
                report.add(path, "corrupt-output", f"executable directory holds {len(inner)} files, not 1")
                return
            path = os.path.join(path, inner[0])
            try:
                st = os.lstat(path)
            except OSError as e:
                report.add(path, "unreadable", e.strerror or str(e))
                return
            if _report_odd(report, path, st.st_mode):
                return
        if st.st_size > VERIFY_HASH_LIMIT:
            report.add(path, "huge",
                       f"{st.st_size} bytes: not hashed (over {VERIFY_HASH_LIMIT}; no Go build output is this large)")
            return
        digest = _sha256_of(path)
        if isinstance(digest, str):
            report.add(path, "unreadable", digest)
            return
        report.output_bytes += st.st_size
        if digest != output_id:
            report.add(path, "corrupt-output", f"SHA-256 is {digest.hex()}")

    def stat(self) -> dict[str, object]:
        """Counts and sizes without reading contents (fast on a big cache)."""
        counts = {"entries": 0, "outputs": 0, "executables": 0, "other": 0}
        sizes = {"entry_bytes": 0, "output_bytes": 0}
        for sub, name in self.iter_files():
            path = os.path.join(self.dir, sub, name)
            kind = "other" if _id_from_name(sub, name) is None else ("entries" if name.endswith("-a") else "outputs")
            counts[kind] += 1
            try:
                st = os.lstat(path)
            except OSError:
                continue
            if kind == "outputs" and stat_mod.S_ISDIR(st.st_mode):
                counts["executables"] += 1
                inner = _executable(path)
                if inner is None:
                    continue
                sizes["output_bytes"] += inner[1].st_size
            elif kind != "other":
                sizes["entry_bytes" if kind == "entries" else "output_bytes"] += st.st_size
        last = _read_trim_txt(os.path.join(self.dir, "trim.txt"))
        return {"dir": self.dir, **counts, **sizes, "last_trim_unix": last}


# ------------------------------------------------------------ helpers


def _id_from_name(sub: str, name: str) -> bytes | None:
    """The ID a cache file name carries, if it is a Go cache file name."""
    if len(name) != HEX_SIZE + 2 or name[HEX_SIZE:] not in ("-a", "-d") or name[:2] != sub:
        return None
    h = name[:HEX_SIZE]
    if h != h.lower():
        return None
    try:
        return bytes.fromhex(h)
    except ValueError:
        return None


_EACCES_TEXT = os.strerror(errno.EACCES)


def describe_odd(path: str, mode: int) -> str | None:
    """What a file that is neither a regular file nor a directory is, in
    words ("a symbolic link to '/x'", "a FIFO", ...); None for those two."""
    if stat_mod.S_ISREG(mode) or stat_mod.S_ISDIR(mode):
        return None
    if stat_mod.S_ISLNK(mode):
        try:
            return f"a symbolic link to {os.readlink(path)!r}"
        except OSError:
            return "a symbolic link"
    for test, what in ((stat_mod.S_ISFIFO, "a FIFO"), (stat_mod.S_ISCHR, "a character device"),
                       (stat_mod.S_ISBLK, "a block device"), (stat_mod.S_ISSOCK, "a socket")):
        if test(mode):
            return what
    return "a special file"


def _report_odd(report: VerifyReport, path: str, mode: int) -> bool:
    """Report a link or special file (never followed or opened); True if it was one."""
    what = describe_odd(path, mode)
    if what is None:
        return False
    link = stat_mod.S_ISLNK(mode)
    report.add(path, "link" if link else "special",
               f"{what}: Go's cache would {'follow it' if link else 'open it'}, this one never does")
    return True


def _refuse_odd(path: str) -> None:
    """UnsafePathError if ``path`` is a link or a special file; nothing if
    it is missing, regular or a directory (the kernel has its say then)."""
    try:
        st = os.lstat(path)
    except OSError:
        return
    what = describe_odd(path, st.st_mode)
    if what is not None:
        from reference.errors import UnsafePathError

        raise UnsafePathError(path, what)


def _open_regular(path: str, flags: int = os.O_RDONLY) -> int:
    """A descriptor on ``path`` if it is a regular file (created if
    ``flags`` has O_CREAT); UnsafePathError for a link or special file,
    the kernel's OSError otherwise.  Never blocks on a FIFO."""
    try:
        fd = os.open(path, flags | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK, 0o666)
    except OSError as e:
        if e.errno == errno.ELOOP:
            _refuse_odd(path)
        raise
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        os.close(fd)
        raise
    if not stat_mod.S_ISREG(mode):
        os.close(fd)
        _refuse_odd(path)
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), path)
    return fd


def _read_index(path: str) -> tuple[bytes, int] | str:
    """(up to ENTRY_SIZE+1 bytes, mtime ns) of an index entry that is a
    regular file, or why not (the kernel's words, or what the file is)."""
    try:
        fd = os.open(path, _O_READ)
    except OSError as e:
        return e.strerror or str(e)
    try:
        st = os.fstat(fd)
        what = describe_odd(path, st.st_mode)
        if what is not None or stat_mod.S_ISDIR(st.st_mode):
            return f"not a regular file but {what or 'a directory'}"
        # One read of ENTRY_SIZE+1 to see a too-long file (Go's ReadFull;
        # a regular file's read is short only at end of file).
        return os.read(fd, _READ_SIZE), st.st_mtime_ns
    except OSError as e:
        return e.strerror or str(e)
    finally:
        os.close(fd)


def _executable(name: str) -> tuple[str, os.stat_result] | None:
    """(path, lstat) of the one regular file in the directory ``name`` (a
    cached executable), or None: not a real directory, not exactly one
    file in it, or that file a link or special file."""
    try:
        if not stat_mod.S_ISDIR(os.lstat(name).st_mode):
            return None
        inner = os.listdir(name)
        if len(inner) != 1:
            return None
        path = os.path.join(name, inner[0])
        st = os.lstat(path)
    except OSError:
        return None
    return (path, st) if stat_mod.S_ISREG(st.st_mode) else None


def process_ids() -> tuple[int, frozenset[int]]:
    """This process's effective uid and its groups (for ``_readable``)."""
    return os.geteuid(), frozenset((os.getegid(), *os.getgroups()))


def may_read(st: os.stat_result, ids: tuple[int, frozenset[int]]) -> bool:
    """Whether the permission bits let the reader ``ids`` (process_ids)
    read the file: the owner's bits for its owner, else the group's for a
    member, else the others'; root reads anything.  (ACLs are not looked at:
    a file an ACL opens to us but its bits do not is a miss, which only
    costs a rebuild.)"""
    euid, gids = ids
    mode = st.st_mode
    if euid == 0:
        return True
    if st.st_uid == euid:
        return bool(mode & 0o400)
    if st.st_gid in gids:
        return bool(mode & 0o040)
    return bool(mode & 0o004)


def _output_size(name: str) -> int | None:
    """The size of output ``name`` (a regular file, or an executable's
    directory), or None; links are not followed."""
    try:
        st = os.lstat(name)
    except OSError:
        return None
    if stat_mod.S_ISREG(st.st_mode):
        return st.st_size
    inner = _executable(name)
    return inner[1].st_size if inner is not None else None


def _read_up_to(fd: int, n: int) -> bytes:
    """At most ``n`` bytes from ``fd`` (to its end)."""
    chunks = []
    while n > 0 and (chunk := os.read(fd, min(n, 1 << 20))):
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def _sha256_of(path: str) -> bytes | str:
    """The SHA-256 of the regular file ``path``, or why it could not be read."""
    import hashlib

    try:
        fd = os.open(path, _O_READ)
    except OSError as e:
        return e.strerror or str(e)
    with os.fdopen(fd, "rb") as f:
        try:
            if not stat_mod.S_ISREG(os.fstat(fd).st_mode):
                return "not a regular file"
            return hashlib.file_digest(f, "sha256").digest()
        except OSError as e:
            return e.strerror or str(e)


def _read_small(path: str) -> bytes | None:
    """The bytes of a small regular file (trim.txt), or None: a link, a
    FIFO, a device or a huge file is never read."""
    try:
        fd = _open_regular(path)
    except OSError:
        return None
    try:
        return _read_up_to(fd, 4096)
    except OSError:
        return None
    finally:
        os.close(fd)


def _read_locked(path: str) -> bytes | None:
    """lockedfile.Read: the file's bytes under a shared flock, or None
    (also for a link, a FIFO or a device, which are never read)."""
    import fcntl  # not at start-up: see trim

    try:
        fd = _open_regular(path)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        return _read_up_to(fd, 4096)
    except OSError:
        return None
    finally:
        os.close(fd)


def _read_trim_txt(path: str) -> int | None:
    data = _read_small(path)
    try:
        return int(data.strip()) if data is not None else None
    except ValueError:
        return None


def _skip_trim(data: bytes | None, now_s: int) -> bool:
    """Go's skipTrim: trimmed less than a day ago (and not more than an
    hour in the future, which would mean a bad clock or a corrupt file)."""
    if data is None:
        return False
    last = _go_parse_int(data.strip())  # strings.TrimSpace + ParseInt
    if last is None:
        return False
    d = now_s - last
    return d < TRIM_INTERVAL_S and d > -(MTIME_INTERVAL_NS // 10**9)
