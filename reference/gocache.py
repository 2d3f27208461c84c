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

Not promised: durability across a power cut (nothing is fsynced, as in Go),
network file systems (flock and same-bytes overwrites are not reliable
there), Windows sharing semantics, or protection against a writer that
stores *different* bytes under the same action ID with a different protocol.
"""

from __future__ import annotations

import binascii
import errno
import fcntl
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
_O_READ = os.O_RDONLY | os.O_CLOEXEC
_READ_SIZE = ENTRY_SIZE + 1  # +1 to see a too-long file, as Go does
_S_IFMT, _S_IFREG = stat_mod.S_IFMT(0o177777), stat_mod.S_IFREG


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
    if (len(raw) == ENTRY_SIZE and raw[:_OUT_AT] == b"v1 %s " % _hexlify(action_id)
            and raw[_SIZE_AT - 1] == 0x20 and raw[_TIME_AT - 1] == 0x20 and raw[ENTRY_SIZE - 1] == 0x0A):
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
    """One file that is not what Go would accept."""

    def __init__(self, path: str, kind: str, detail: str) -> None:
        self.path = path
        self.kind = kind  # "corrupt-entry", "dangling-entry", "corrupt-output", "unexpected"
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
    """

    def __init__(self, dir: str, *, protocol: str = DEFAULT_PROTOCOL, create: bool = True,
                 now_ns: Callable[[], int] = time.time_ns) -> None:
        self.dir = os.path.abspath(dir)
        self.protocol = protocol
        self._now_ns = now_ns
        self._write: Callable[..., None] | None = None
        self._proto: Protocol | None = None  # the value ``protocol`` names, looked up at the first put
        if create:
            self._create()
        elif not os.path.isdir(self.dir):
            if os.path.exists(self.dir):
                raise NotACacheDir(errno.ENOTDIR, "not a directory, so not a Go build cache", self.dir)
            raise NotACacheDir(errno.ENOENT, "no such directory (see `go env GOCACHE` for the cache's place)", self.dir)

    def _create(self) -> None:
        os.makedirs(self.dir, exist_ok=True)
        readme = os.path.join(self.dir, "README")
        if not os.path.exists(readme):
            # Best effort, as in Go; every writer writes the same bytes.
            try:
                self._writer()(readme, README_TEXT, protocol=DEFAULT_PROTOCOL)
            except OSError:
                pass
        for i in range(256):
            try:
                os.mkdir(os.path.join(self.dir, f"{i:02x}"), 0o777)
            except FileExistsError:
                pass

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
        """Where the output is stored (for an executable, the one file
        inside its ``-d`` directory; Go's OutputFile, without markUsed)."""
        name = self.file_name(output_id, "d")
        if os.path.isdir(name):
            inner = os.listdir(name)
            if len(inner) == 1:
                return os.path.join(name, inner[0])
        return name

    # ---- reads

    def lookup(self, action_id: bytes, *, mark_used: bool = True) -> Entry | Miss:
        """Go's DiskCache.get: the entry, or why it missed.  With
        ``mark_used``, a hit refreshes the entry's mtime as Go's markUsed
        does (at most once an hour)."""
        if len(action_id) != HASH_SIZE:
            raise BadID("action ID", action_id)
        h = action_id.hex()
        path = f"{self.dir}/{h[:2]}/{h}-a"
        try:
            fd = os.open(path, _O_READ)
        except OSError as e:
            return Miss(e.strerror or str(e))
        try:
            # One read of ENTRY_SIZE+1 to see a too-long file (Go's ReadFull;
            # a regular file's read is short only at end of file).
            raw = os.read(fd, _READ_SIZE)
            mtime_ns = os.fstat(fd).st_mtime_ns
        except OSError as e:
            return Miss(e.strerror or str(e))
        finally:
            os.close(fd)
        got = parse_entry(action_id, raw)
        if mark_used and type(got) is Entry and self._now_ns() - mtime_ns >= MTIME_INTERVAL_NS:
            self._touch(path)
        return got

    def get(self, action_id: bytes) -> Entry | None:
        """The valid entry for ``action_id``, or None (any kind of miss).

        ``lookup`` inlined: this is the call a GOCACHEPROG server makes once
        per go command cache lookup, and the one the speed target is on."""
        if len(action_id) != HASH_SIZE:
            raise BadID("action ID", action_id)
        h = action_id.hex()
        path = f"{self.dir}/{h[:2]}/{h}-a"
        try:
            fd = os.open(path, _O_READ)
        except OSError:
            return None
        try:
            raw = os.read(fd, _READ_SIZE)
            mtime_ns = os.fstat(fd).st_mtime_ns
        except OSError:
            return None
        finally:
            os.close(fd)
        got = parse_entry(action_id, raw)
        if type(got) is not Entry:
            return None
        if self._now_ns() - mtime_ns >= MTIME_INTERVAL_NS:
            self._touch(path)
        return got

    def get_file(self, action_id: bytes) -> tuple[str, Entry] | None:
        """Go's GetFile: a valid entry whose output exists with the recorded
        size; returns the output's path (absolute) and the entry."""
        got = self.get(action_id)
        if got is None:
            return None
        h = got[0].hex()
        path = f"{self.dir}/{h[:2]}/{h}-d"
        try:
            st = os.stat(path)
        except OSError:
            return None
        if self._now_ns() - st.st_mtime_ns >= MTIME_INTERVAL_NS:
            self._touch(path)
        if st.st_size == got[1] and st.st_mode & _S_IFMT == _S_IFREG:  # the common case
            return path, got
        if not stat_mod.S_ISDIR(st.st_mode):  # a short (or long) output: Go's "file incomplete"
            return None
        path = self.output_file(got.output_id)  # a cached executable: the one file inside
        try:
            size = os.stat(path).st_size
        except OSError:
            return None
        return (path, got) if size == got[1] else None

    def get_bytes(self, action_id: bytes) -> tuple[bytes, Entry] | None:
        """Go's GetBytes: the output's bytes, only if their SHA-256 matches."""
        hit = self.get_file(action_id)
        if hit is None:
            return None
        path, entry = hit
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError:
            return None
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
            os.utime(path, ns=(now, now))
        except OSError:
            pass  # best effort, as in Go

    # ---- writes

    def put(self, action_id: bytes, data: bytes) -> tuple[bytes, int]:
        """Store ``data`` as the output of ``action_id``; returns
        (output ID, size).  Raises what ``write_entry`` raises."""
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
        self._writer()(path, data, protocol=self._proto or self._protocol())
        return path

    def put_index(self, action_id: bytes, output_id: bytes, size: int) -> int:
        """Write the index entry; the output must already be complete (an
        entry must never point at an incomplete output).  Returns the
        entry's time (Unix ns), as recorded in it."""
        time_ns = self._now_ns()
        entry = format_entry(action_id, output_id, size, time_ns)
        self._writer()(self.file_name(action_id, "a"), entry, protocol=self._proto or self._protocol())
        return time_ns

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
        fd = os.open(trim_txt, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            # Another process may have trimmed while we waited for the lock.
            if not force and _skip_trim(_read_all(fd), now_s):
                return TrimReport(skipped=True)
            # Record the trim before doing it (Go #76314: fewer concurrent
            # trims).  The flock excludes Go's lockedfile readers and writers.
            self._writer()(trim_txt, b"%d" % now_s, protocol=DEFAULT_PROTOCOL)
        finally:
            os.close(fd)  # releases the flock
        cutoff_ns = now_ns - (TRIM_LIMIT_S * 10**9 + MTIME_INTERVAL_NS)
        report = TrimReport(skipped=False)
        for i in range(256):
            self._trim_subdir(os.path.join(self.dir, f"{i:02x}"), cutoff_ns, report)
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
                st = os.stat(path)
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
        """Every (subdir name, file name) in the 256 subdirectories."""
        for i in range(256):
            sub = f"{i:02x}"
            try:
                names = sorted(os.listdir(os.path.join(self.dir, sub)))
            except FileNotFoundError:
                continue
            for name in names:
                yield sub, name

    def verify(self) -> VerifyReport:
        """Check every index entry (Go's validation, and that its output
        exists with the right size) and every output's SHA-256.  Reads only:
        no mtime is refreshed, nothing is repaired."""
        report = VerifyReport()
        referenced: set[bytes] = set()
        outputs: set[bytes] = set()
        for sub, name in self.iter_files():
            path = os.path.join(self.dir, sub, name)
            id_ = _id_from_name(sub, name)
            if id_ is None:
                report.problems.append(Problem(path, "unexpected", "not a Go cache file name (xx/<64 hex>-a or -d)"))
            elif name.endswith("-a"):
                self._verify_entry(path, id_, report, referenced)
            else:
                self._verify_output(path, id_, report)
                outputs.add(id_)
        report.unreferenced_outputs = len(outputs - referenced)
        return report

    def _verify_entry(self, path: str, action_id: bytes, report: VerifyReport, referenced: set[bytes]) -> None:
        report.entries += 1
        got = self.lookup(action_id, mark_used=False)
        try:
            report.entry_bytes += os.stat(path).st_size
        except OSError:
            pass
        if isinstance(got, Miss):
            report.problems.append(Problem(path, "corrupt-entry", got.reason))
            return
        referenced.add(got.output_id)
        out = self.output_file(got.output_id)
        try:
            size = os.stat(out).st_size
        except OSError:
            report.problems.append(Problem(path, "dangling-entry", f"output {got.output_id.hex()} is missing"))
            return
        if size != got.size:
            report.problems.append(Problem(path, "dangling-entry", f"output {got.output_id.hex()} has {size} bytes, entry says {got.size}"))

    def _verify_output(self, path: str, output_id: bytes, report: VerifyReport) -> None:
        import hashlib

        report.outputs += 1
        if os.path.isdir(path):
            report.executables += 1
            inner = sorted(os.listdir(path))
            if len(inner) != 1:
                report.problems.append(Problem(path, "corrupt-output", f"executable directory holds {len(inner)} files, not 1"))
                return
            path = os.path.join(path, inner[0])
        try:
            with open(path, "rb") as f:
                digest = hashlib.file_digest(f, "sha256").digest()
                size = os.fstat(f.fileno()).st_size
        except OSError as e:
            report.problems.append(Problem(path, "corrupt-output", f"unreadable: {e.strerror}"))
            return
        report.output_bytes += size
        if digest != output_id:
            report.problems.append(Problem(path, "corrupt-output", f"SHA-256 is {digest.hex()}"))

    def stat(self) -> dict[str, object]:
        """Counts and sizes without reading contents (fast on a big cache)."""
        counts = {"entries": 0, "outputs": 0, "executables": 0, "other": 0}
        sizes = {"entry_bytes": 0, "output_bytes": 0}
        for sub, name in self.iter_files():
            path = os.path.join(self.dir, sub, name)
            kind = "other" if _id_from_name(sub, name) is None else ("entries" if name.endswith("-a") else "outputs")
            counts[kind] += 1
            try:
                st = os.stat(path)
            except OSError:
                continue
            if kind == "outputs" and stat_mod.S_ISDIR(st.st_mode):
                counts["executables"] += 1
                st = os.stat(self.output_file(bytes.fromhex(name[:HEX_SIZE])))
            if kind != "other":
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


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 4096):
        chunks.append(chunk)
    return b"".join(chunks)


def _read_locked(path: str) -> bytes | None:
    """lockedfile.Read: the file's bytes under a shared flock, or None."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        return _read_all(fd)
    except OSError:
        return None
    finally:
        os.close(fd)


def _read_trim_txt(path: str) -> int | None:
    try:
        with open(path, "rb") as f:
            return int(f.read().strip())
    except (OSError, ValueError):
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
