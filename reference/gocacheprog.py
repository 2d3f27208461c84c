"""A GOCACHEPROG server that stores into a Go-format cache directory.

Speaks the go command's cache-program protocol (``go doc
cmd/go/internal/cacheprog``): it first announces ``get``, ``put`` and
``close``; then reads one JSON request per line (a put's body follows on its
own line as a base64 JSON string) and answers each with one JSON line whose
``DiskPath`` is an absolute path inside the directory, so the go command
reads (or mmaps) the file itself.  Entries are written by
:class:`reference.gocache.GoCache`, i.e. in Go's own on-disk format, so the
same directory works as a plain ``GOCACHE`` too.

Promised:

- Malformed input (bad JSON, unknown command, wrong field types, an ID that
  is not 32 bytes, a body that is missing, not base64, of the wrong size or
  not matching its OutputID, a line longer than any the go command sends)
  gets an ``Err`` response naming what was wrong; the server keeps serving
  and no line that follows is lost.  Memory stays bounded whatever the
  input: request lines over ``MAX_LINE`` and bodies over ``STREAM_AT`` are
  consumed piece by piece, never held whole.
- A failed write is an ``Err`` response for that request, never a crash.
- Bodies over ``STREAM_AT`` are decoded in chunks into an unnamed file in
  the output's subdirectory, hashed on the way, and given their name only
  once complete and matching their OutputID (``_UnnamedOutput``).
- End of input and ``close`` both end cleanly; on the way out the server
  runs Go's (usually skipped) daily trim after answering, so the go command
  is not kept waiting.
- Stderr, which the go command passes to the person's terminal, stays
  empty unless something failed: then one line per kind of failure (a bad
  request, a write failing with one errno, the summary, the trim), with
  its count.  ``--verbose`` or ``IDEMWRITE_VERBOSE=1`` adds the session's
  gets, hits, puts and bytes.
- A get is answered as the index entry on disk says, or from the server's
  summary of entries it has seen (``reference.summary``) with the same
  answer or another valid output of the action, and only after checking
  that the output is still there, complete.
- Many servers (one per go command) and plain go commands may share one
  directory on a local file system: writes use the catalogue protocol given
  (``write-then-truncate`` by default), which never removes or shrinks
  another writer's complete entry or output.

- With ``--remote s3://BUCKET/PREFIX`` (``reference.remote``), a local
  miss is answered by a worker thread once the remote has answered (a
  hit is checked by size and SHA-256 and stored in the directory first),
  and each put is uploaded after it is answered; answers then come out of
  order, which the go command allows, and every write to stdout holds one
  lock.  ``close`` is answered only after the uploads, bounded in time.

Not promised: network file systems, Windows sharing semantics, or anything
for ``--protocol write-file`` (the known-bad twin, kept to show the failure).
``--protocol`` names the writer of index entries and of outputs up to
``STREAM_AT``; larger outputs are always published by ``_UnnamedOutput``
(the catalogue's rename-into-place, with an unnamed file as its temp file).

Speed (start-up is paid by every go command, a round trip by every cache
lookup, and the go command waits for both): a get of an entry the server
has seen before is answered from the summary (``reference.summary``: one
stat of the output, the answer stored ready-made); requests are read with
large ``os.readv`` calls into one buffer and answered in one ``os.write``
per batch of input (flushing only before the server would block); a get or
close in the exact form the go command sends is answered without json,
which is imported (C-accelerated) only for puts and odd requests; the
catalogue (``spec``) is imported only at the first write.  The ``reference``
package's ``__init__`` imports nothing eagerly.  The command ends with
``exit_after``: no interpreter teardown after the session.
"""

from __future__ import annotations

import _thread  # built in; threading's import is start-up time
import binascii
import errno  # built in, and loaded by gocache already
import os
import stat  # loaded by os already
import sys
import time

# Start-up time is paid by every go command, so the modules that cost
# milliseconds to import are left out: json is imported at the first request
# that is not a plain get (a put, an error), typing only by type checkers.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Iterable, Iterator, Mapping, NoReturn

    from reference.remote import RemoteTier

from reference.gocache import DEFAULT_PROTOCOL, HASH_SIZE, MTIME_INTERVAL_NS, Entry, GoCache
from reference.summary import FACTS_PER_GET, LOAD_AFTER, Summary
from reference.summary import fact as summary_fact

KNOWN_COMMANDS = (b'{"ID":0,"KnownCommands":["get","put","close"]}\n')
_READ_CHUNK = 1 << 20
# The go command's request lines are a few hundred bytes; a longer one is
# skipped piece by piece, so hostile input cannot make the server hold it.
MAX_LINE = 64 << 10
# Bodies up to this size are decoded in memory and written by the catalogue
# protocol; larger ones are streamed to an unnamed file (_UnnamedOutput), so
# memory stays bounded whatever BodySize says.
STREAM_AT = 16 << 20  # above every output of `go build std` here, so the go command's puts all go through the catalogue protocol
_BODY_SLACK = 64  # blanks a body line may carry around its quotes
_HEAD = 256  # bytes of a bad line searched for its ID
_MAX_MESSAGE = 500  # characters of an Err or stderr message
_ECHO = 80  # characters of a request's own text echoed in an Err
_BEFORE_QUOTE, _IN_STRING, _AFTER_QUOTE = 0, 1, 2  # _decode_body's states
_TMPFILE = getattr(os, "O_TMPFILE", 0)  # Linux; 0: use a private temp file instead
BAD_REQUESTS = "requests answered with Err (malformed)"  # a kind of failure (Stats.failed)


class BadRequest(ValueError):
    """A request the server cannot act on; its message goes back as Err."""


class Stats:
    """What one server session did, and what went wrong in it.

    Failures are counted by kind (a bad request, a put whose write failed
    with one errno, ...), each with the first message of its kind, so that
    a session prints one line per kind however many requests failed."""

    def __init__(self) -> None:
        self.gets = 0
        self.hits = 0
        self.summary_hits = 0  # hits answered from the summary (one stat each)
        self.puts = 0
        self.put_bytes = 0
        self.errors = 0
        self.failures: dict[str, tuple[int, str]] = {}  # kind -> (count, first message)

    def failed(self, kind: str, message: str) -> None:
        """Count one failure of ``kind``; the first message is kept."""
        self.errors += 1
        count, first = self.failures.get(kind, (0, message))
        self.failures[kind] = (count + 1, first)

    def render(self) -> str:
        # CPU time too: the go command never waits for its GOCACHEPROG, so
        # the server's CPU shows in no one's rusage but its own.
        return (f"idemwrite gocacheprog: {self.gets} gets, {self.hits} hits "
                f"({self.summary_hits} from the summary), "
                f"{self.puts} puts, {self.put_bytes} bytes put, {self.errors} errors, "
                f"{time.process_time() * 1000:.0f} ms CPU")

    def render_failures(self) -> list[str]:
        """One line per kind of failure: its count and its first message."""
        return [f"idemwrite gocacheprog: {kind}: {count} in this session; the first: {first}"
                for kind, (count, first) in self.failures.items()]


class _TooLong(Exception):
    """The next line is longer than the caller's limit; it is left unread
    (``_Lines.head`` shows its start, ``_Lines.pieces`` consumes it)."""


class _Lines:
    """Lines from a file descriptor, read in large chunks; ``on_block`` is
    called before each read that may block (the time to flush replies).
    Memory is bounded by the callers' limits: a line longer than the limit
    is never gathered whole, only consumed piece by piece."""

    def __init__(self, fd: int, on_block: Callable[[], None]) -> None:
        self._fd = fd
        self._buf = bytearray()
        self._start = 0  # first unconsumed byte
        self._scan = 0  # no newline before this offset
        self._on_block = on_block
        self._eof = False
        # Read into one buffer allocated once: a fresh 1 MiB bytes object
        # per os.read is an mmap, an mremap and a munmap per request (about
        # 40 us of system time each request on a VM).
        self._chunk = bytearray(_READ_CHUNK)
        self._chunk_view = memoryview(self._chunk)

    def next(self, limit: int) -> bytes | None:
        """The next line without its newline; None at end of input.
        Raises _TooLong, consuming nothing, if the line has more than
        ``limit`` bytes."""
        while True:
            i = self._buf.find(b"\n", self._scan)
            if i >= 0:
                if i - self._start > limit:
                    raise _TooLong()
                line = bytes(self._buf[self._start:i])
                self._start = self._scan = i + 1
                return line
            if len(self._buf) - self._start > limit:
                self._scan = len(self._buf)
                raise _TooLong()
            if self._eof:
                if self._start < len(self._buf):  # a last line with no newline
                    line = bytes(self._buf[self._start:])
                    self._start = self._scan = len(self._buf)
                    return line
                return None
            self._fill()

    def head(self) -> bytes:
        """The start of a line that ``next`` found too long (what is buffered)."""
        return bytes(self._buf[self._start:self._start + 256])

    def pieces(self) -> Iterator[bytes]:
        """The rest of the current line in pieces of at most about one
        read each, consumed as they are yielded, through its newline (or
        the end of input)."""
        while True:
            i = self._buf.find(b"\n", self._start)
            end = i if i >= 0 else len(self._buf)
            piece = bytes(self._buf[self._start:end])
            self._start = self._scan = end + 1 if i >= 0 else end
            if piece:
                yield piece
            if i >= 0 or self._eof:
                return
            self._fill()

    def _fill(self) -> None:
        """Read one more chunk (flushing replies first: the read may block)."""
        del self._buf[:self._start]
        self._start, self._scan = 0, len(self._buf)  # callers read on only when no newline is buffered
        self._on_block()
        n = os.readv(self._fd, (self._chunk,))
        if n:
            self._buf += self._chunk_view[:n]
        else:
            self._eof = True


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


_GET_PREFIX = b'{"ID":'
_ID_AT = len(_GET_PREFIX)
_GET_MIDDLE = b',"Command":"get","ActionID":"'
_MIDDLE_SIZE = len(_GET_MIDDLE)
_CLOSE_SUFFIX = b',"Command":"close"}'
_last_second: list[object] = [None, ""]  # (Unix second, its formatted date and time)


def _plain_id(digits: bytes) -> bool:
    """Whether ``digits`` is a non-negative integer as JSON spells it (no
    leading zero), so answering it verbatim is what json would do."""
    return digits.isdigit() and (digits[0] != 0x30 or len(digits) == 1)


def _answer(entry: Entry, *, cached: bool = True) -> bytes:
    """A hit's fields after its ID and before its DiskPath, as JSON."""
    return b'"OutputID":"%s","Size":%d,"Time":"%s"' % (
        binascii.b2a_base64(entry[0], newline=False), entry[1], _rfc3339(entry[2], cached=cached).encode())


def _rfc3339(ns: int, *, cached: bool = True) -> str:
    """Go's time.Time JSON form (RFC 3339 with nanoseconds, UTC).  The date
    part is remembered for the last second seen: a build's entries were
    mostly written within a few seconds of each other.  ``cached=False``
    (the remote tier's worker threads) leaves that memory alone."""
    s, frac = divmod(ns, 10**9)
    if not cached:
        return f"{time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(s))}.{frac:09d}Z"
    if _last_second[0] != s:
        _last_second[0], _last_second[1] = s, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(s))
    return f"{_last_second[1]}.{frac:09d}Z"


def _json_string_body(s: str) -> str:
    """``s`` as it appears between the quotes of a JSON string."""
    if s.isascii() and s.isprintable() and '"' not in s and "\\" not in s:
        return s
    import json

    return json.dumps(s)[1:-1]


def _decode_id(req: dict[str, Any], key: str) -> bytes:
    """A 32-byte ID sent as Go's []byte JSON (base64)."""
    v = req.get(key)
    if not isinstance(v, str):
        raise BadRequest(f"{key} is missing or not a base64 string")
    try:
        b = binascii.a2b_base64(v, strict_mode=True)
    except binascii.Error as e:
        raise BadRequest(f"{key} is not valid base64: {e}") from None
    if len(b) != HASH_SIZE:
        raise BadRequest(f"{key} must be {HASH_SIZE} bytes, got {len(b)}")
    return b


def _guess_id(line: bytes) -> int:
    """The ID of a request we could not parse, if it is findable (so the
    go command can match the error to the request), else 0.  Go's IDs are
    int64: a longer run of digits is not one."""
    import re  # only on the error path

    m = re.search(rb'"ID"\s*:\s*(-?\d{1,19})(?!\d)', line[:_HEAD])
    return int(m.group(1)) if m else 0


def _clip(text: str, limit: int = _MAX_MESSAGE) -> str:
    """A message short enough for one line of a terminal log (hostile
    requests can make their own echo arbitrarily long)."""
    return text if len(text) <= limit else text[:limit] + "..."


def _failure_kind(e: Exception) -> str:
    """The kind a request's unexpected failure is counted under: a failed
    write by its errno (one stderr line per errno, not per request)."""
    if isinstance(e, OSError):
        name = getattr(e, "errno_name", None) or errno.errorcode.get(e.errno or 0, "no errno")
        return f"writes failed with {name}"
    return f"requests failed with {type(e).__name__}"


def _encoded_limit(size: int) -> int:
    """The longest body line (stripped) that can hold ``size`` bytes:
    quotes around padded base64."""
    return 4 * ((size + 2) // 3) + 2


def _discard(data: bytes) -> None:
    """A sink for a body that is only being skipped."""


def _decode_body(pieces: Iterable[bytes], size: int, sink: Callable[[bytes], object]) -> bytes:
    """Decode a body line, ``"<standard base64>"``, arriving in ``pieces``,
    into ``sink`` a chunk at a time (never the whole body in memory), and
    return the SHA-256 of what was decoded.

    Every piece is consumed even after a problem, so that the request after
    the body is found where it starts; then the first problem is raised:
    BadRequest for a body that is not a JSON string of base64 of exactly
    ``size`` bytes (decoding stops as soon as it has more), or the OSError
    the sink raised (nothing more is written after it)."""
    import hashlib

    digest = hashlib.sha256()
    problem: Exception | None = None
    state = _BEFORE_QUOTE
    carry = b""  # base64 characters not yet decoded (fewer than 4 inside the string)
    done = 0
    padded = False
    for piece in pieces:
        if problem is not None:
            continue  # drain the line
        try:
            if state == _BEFORE_QUOTE:
                piece = piece.lstrip()
                if not piece:
                    continue
                if not piece.startswith(b'"'):
                    raise BadRequest("body is not a JSON string")
                piece, state = piece[1:], _IN_STRING
            if state == _AFTER_QUOTE:
                if piece.strip():
                    raise BadRequest("body is not a JSON string (text after its closing quote)")
                continue
            q = piece.find(b'"')
            if q >= 0:
                if piece[q + 1:].strip():
                    raise BadRequest("body is not a JSON string (text after its closing quote)")
                piece, state = piece[:q], _AFTER_QUOTE
            carry += piece
            # Inside the string decode whole quanta only; at its end, all.
            k = len(carry) if state == _AFTER_QUOTE else len(carry) - len(carry) % 4
            if not k:
                continue
            if padded:
                raise BadRequest("body is not valid base64: data after its padding")
            block, carry = carry[:k], carry[k:]
            try:
                out = binascii.a2b_base64(block, strict_mode=True)
            except binascii.Error as e:
                raise BadRequest(f"body is not valid base64: {e}") from None
            padded = block.endswith(b"=")
            done += len(out)
            if done > size:
                raise BadRequest(f"body has more than {size} bytes, BodySize says {size}")
            digest.update(out)
            sink(out)
        except (BadRequest, OSError) as e:
            problem = e
    if problem is None and state != _AFTER_QUOTE:
        problem = BadRequest("body is not a JSON string (no closing quote)")
    if problem is None and done != size:
        problem = BadRequest(f"body has {done} bytes, BodySize says {size}")
    if problem is not None:
        raise problem
    return digest.digest()


class _UnnamedOutput:
    """An output being received: an unnamed file (``O_TMPFILE``) in the
    output's subdirectory, given its name only when it is complete and its
    hash checked.  So a reader never sees a partial large output under its
    name, and a server killed mid-body leaves nothing behind.

    Publication is the catalogue's ``rename-into-place`` (readers see the
    old file or the new, never a mix): ``link`` where the name is free;
    where a complete output of the right size is already there (the same
    bytes: names are hashes), nothing is written; anything else under the
    name (a partial output, a link) is replaced by a rename.  The
    subdirectory is opened with ``O_NOFOLLOW`` and every name is resolved
    in it, so no write follows a link out of ``DIR``.  On a file system
    without ``O_TMPFILE`` a private temp file beside the output stands in
    (removed on every failure path, but not if the server is killed)."""

    def __init__(self, cache: GoCache, output_id: bytes) -> None:
        self.name = os.path.basename(cache.file_name(output_id, "d"))
        self.path = cache.file_name(output_id, "d")
        self._cache = cache
        self._temp: str | None = None  # the fallback's private name, while it exists
        self._dirfd = os.open(os.path.dirname(self.path), os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            self.fd = self._open()
        except BaseException:
            os.close(self._dirfd)
            raise

    def _open(self) -> int:
        # An unnamed file is named later through /proc's link to its fd.
        if _TMPFILE and os.path.isdir("/proc/self/fd"):
            try:
                return os.open(".", _TMPFILE | os.O_WRONLY | os.O_CLOEXEC, 0o666, dir_fd=self._dirfd)
            except OSError as e:
                if e.errno not in (errno.EOPNOTSUPP, errno.EISDIR):  # EISDIR: a kernel without O_TMPFILE
                    raise
        self._temp = _private_name(self.name)
        return os.open(self._temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666,
                       dir_fd=self._dirfd)

    def write(self, data: bytes) -> None:
        _write_all(self.fd, data)

    def publish(self, size: int) -> None:
        """Give the (complete, checked) file its name, as the class says."""
        if self._temp is None:
            try:
                os.link(f"/proc/self/fd/{self.fd}", self.name, dst_dir_fd=self._dirfd, follow_symlinks=True)
                return
            except FileExistsError:
                pass
        try:
            st = os.stat(self.name, dir_fd=self._dirfd, follow_symlinks=False)
            if stat.S_ISREG(st.st_mode) and st.st_size == size:
                self._cache.mark_used(self.path, st.st_mtime_ns)  # as the writers' chtimes would
                return
        except FileNotFoundError:
            pass
        if self._temp is None:
            temp = _private_name(self.name)
            os.link(f"/proc/self/fd/{self.fd}", temp, dst_dir_fd=self._dirfd, follow_symlinks=True)
            self._temp = temp
        os.rename(self._temp, self.name, src_dir_fd=self._dirfd, dst_dir_fd=self._dirfd)
        self._temp = None

    def close(self) -> None:
        """Release the file; an unpublished private temp file is removed."""
        try:
            if self._temp is not None:
                os.unlink(self._temp, dir_fd=self._dirfd)
        except FileNotFoundError:
            pass  # someone removed it (go clean): nothing left to do
        finally:
            os.close(self.fd)
            os.close(self._dirfd)


def _private_name(base: str) -> str:
    """A name beside ``base`` no other process or thread will pick (as
    ``reference.osrun.private_name``, without importing the runner)."""
    return f"{base}.{os.getpid()}.{os.urandom(4).hex()}.tmp"


class Server:
    """One session of the protocol over two file descriptors.

    ``stream_at``: bodies larger than this are streamed to disk
    (``_UnnamedOutput``) instead of decoded in memory."""

    def __init__(self, cache: GoCache, infd: int, outfd: int, *,
                 load_summary_after: int = LOAD_AFTER, stream_at: int = STREAM_AT,
                 remote: RemoteTier | None = None) -> None:
        self.cache = cache
        self.stats = Stats()
        self.remote = remote
        self._outfd = outfd
        self._out: list[bytes] = []
        # The remote tier's threads answer gets out of order: every write
        # to stdout holds this lock, so answers never interleave.
        self._out_lock = _thread.allocate_lock()
        self._lines = _Lines(infd, self.flush)
        self._pending: bytes | None = None  # a line read ahead, not yet handled
        self._stream_at = stream_at
        self._dir_prefix = cache.dir + "/"
        self._dir_json = _json_string_body(self._dir_prefix)
        self._dir_prefix_b = os.fsencode(self._dir_prefix)
        self._dir_json_b = self._dir_json.encode()
        self.summary = Summary(cache.dir)
        # Gets before the summary is read: a short session never pays for it.
        self._gets_to_load = max(load_summary_after, self.summary.facts_on_disk() // FACTS_PER_GET)

    # ---- output

    def flush(self) -> None:
        if not self._out:
            return
        data = b"".join(self._out)
        self._out.clear()
        with self._out_lock:
            _write_all(self._outfd, data)

    def _reply(self, resp: dict[str, Any]) -> None:
        import json

        self._out.append(json.dumps(resp, separators=(",", ":")).encode() + b"\n")

    def _error(self, id_: int, kind: str, msg: str) -> None:
        msg = _clip(msg)
        self.stats.failed(kind, msg)
        self._reply({"ID": id_, "Err": msg})

    # ---- input

    def _next_line(self) -> bytes | None:
        """The next request line (at most MAX_LINE bytes; _TooLong else)."""
        if self._pending is not None:
            line, self._pending = self._pending, None
            return line
        return self._lines.next(MAX_LINE)

    def serve(self) -> Stats:
        """Answer requests until ``close`` or end of input (the caller has
        announced the known commands)."""
        while True:
            try:
                line = self._next_line()
            except _TooLong:
                self._too_long()
                continue
            if line is None:
                break
            if not line.strip():
                continue  # the go command sends a blank line after each request
            if not self._handle(line):
                break
        self.flush()
        return self.stats

    def _too_long(self) -> None:
        """A request line longer than any the go command sends: skipped
        piece by piece (never held whole) and answered with Err."""
        id_ = _guess_id(self._lines.head())
        skipped = sum(len(p) for p in self._lines.pieces())
        self._error(id_, BAD_REQUESTS, f"request line of {skipped} bytes skipped: longer than {MAX_LINE}")

    def _handle(self, line: bytes) -> bool:
        """Handle one request line; False after ``close``."""
        if line.startswith(_GET_PREFIX):
            if self._fast_get(line):
                return True
            if line.endswith(_CLOSE_SUFFIX) and _plain_id(line[_ID_AT:-len(_CLOSE_SUFFIX)]):
                # The go command waits for this answer (and for stdout to
                # close) before it exits: no json import on that path.
                self._closing()
                self._out.append(b'{"ID":%s}\n' % line[_ID_AT:-len(_CLOSE_SUFFIX)])
                return False
        import json  # after the first time, a dictionary lookup

        try:
            req = json.loads(line)
        except (ValueError, RecursionError) as e:  # RecursionError: nesting too deep for the parser
            self._error(_guess_id(line), BAD_REQUESTS, f"malformed request (not JSON: {type(e).__name__}: {e}): {line[:80]!r}")
            return True
        if isinstance(req, str):
            self._error(0, BAD_REQUESTS, "a body line (base64 JSON string) with no put request before it")
            return True
        if not isinstance(req, dict):
            self._error(0, BAD_REQUESTS, f"malformed request (not a JSON object): {line[:80]!r}")
            return True
        id_ = req.get("ID")
        if not isinstance(id_, int) or isinstance(id_, bool):
            self._error(0, BAD_REQUESTS, f"malformed request (ID missing or not an integer): {line[:80]!r}")
            self._skip_body(req.get("BodySize"))
            return True
        cmd = req.get("Command")
        # The echoed command is clipped short, so that what follows it in
        # the message (why the request was refused) is never clipped away.
        what = _clip(repr(cmd) if not isinstance(cmd, str) else cmd, _ECHO)
        try:
            if cmd == "get":
                self._get(id_, req)
            elif cmd == "put":
                self._put(id_, req)
            elif cmd == "close":
                self._closing()
                self._reply({"ID": id_})
                return False
            else:
                self._skip_body(req.get("BodySize"))
                raise BadRequest(f"unknown command {_clip(repr(cmd), _ECHO)}; known: get, put, close")
        except BadRequest as e:
            self._error(id_, BAD_REQUESTS, f"{what} request {id_}: {e}")
        except Exception as e:  # a server never dies of one request
            self._error(id_, _failure_kind(e), f"{what} request {id_} failed: {type(e).__name__}: {e}")
        return True

    def _skip_body(self, size: object) -> None:
        """Consume the body line of a request we reject, so that it is not
        taken for the next request (streamed, never held whole)."""
        if not isinstance(size, int) or size <= 0:
            return
        try:
            line = self._body_line(size)
        except BadRequest:
            return  # no body came: nothing to skip
        if line is None:
            for _ in self._lines.pieces():
                pass

    def _body_line(self, size: int) -> bytes | None:
        """Find the body line of a put with BodySize ``size`` > 0 (skipping
        blank lines): the line itself (stripped) if a body of ``size``
        bytes is decoded in memory and the line is short enough to hold
        one; None if it is to be consumed in pieces (``self._lines.pieces``).
        BadRequest if the input ends first or the next line is not a JSON
        string (that line is left for the next request)."""
        while True:
            try:
                line = self._next_line()
            except _TooLong:
                if not self._lines.head().lstrip().startswith(b'"'):
                    raise BadRequest(f"BodySize is {size} but no body line followed") from None
                if size > self._stream_at:
                    return None
                try:
                    whole = self._lines.next(_encoded_limit(size) + _BODY_SLACK)
                except _TooLong:
                    return None  # longer than such a body can be: the decoder says so
                assert whole is not None  # a line was there
                return whole.strip()
            if line is None:
                raise BadRequest(f"BodySize is {size} but input ended before the body")
            if line.strip():
                break
        line = line.strip()
        if not line.startswith(b'"'):
            # Not a body: keep the line, it is probably the next request.
            self._pending = line
            raise BadRequest(f"BodySize is {size} but no body line followed")
        return line

    def _read_body(self, size: int) -> bytes:
        """The body of a put with 0 < BodySize <= stream_at, in memory."""
        line = self._body_line(size)
        if line is None:
            _decode_body(self._lines.pieces(), size, _discard)  # raises: too long for the size
            raise BadRequest(f"body is longer than BodySize {size} allows")
        if len(line) < 2 or not line.endswith(b'"'):
            raise BadRequest("body is not a JSON string")
        # The go command writes the base64 text raw between quotes (no JSON
        # escapes can occur in base64), so decode the slice directly.
        try:
            body = binascii.a2b_base64(memoryview(line)[1:-1], strict_mode=True)
        except binascii.Error as e:
            raise BadRequest(f"body is not valid base64: {e}") from None
        if len(body) != size:
            raise BadRequest(f"body has {len(body)} bytes, BodySize says {size}")
        return body

    def _stream_body(self, size: int, output_id: bytes) -> str:
        """Receive a large body into an unnamed file, check it, and give it
        its name (``_UnnamedOutput``); returns the output's path.  The
        body is consumed whatever fails."""
        line = self._body_line(size)
        pieces: Iterable[bytes] = (line,) if line is not None else self._lines.pieces()
        try:
            out = _UnnamedOutput(self.cache, output_id)
        except OSError:
            _decode_body(pieces, size, _discard)  # drain; a malformed body is reported first
            raise
        try:
            if _decode_body(pieces, size, out.write) != output_id:
                raise BadRequest("OutputID is not the SHA-256 of the body")
            out.publish(size)
        finally:
            out.close()
        return out.path

    # ---- commands

    def _fast_get(self, line: bytes) -> bool:
        """Answer a get exactly as the go command encodes it,
        ``{"ID":7,"Command":"get","ActionID":"<base64>"}``, without json
        (most requests of a warm build); False leaves the line to the
        general path, which then answers it the same way or with an Err."""
        i = line.find(_GET_MIDDLE, _ID_AT)
        if i < 0 or line[-2:] != b'"}':
            return False
        id_s, aid_s = line[_ID_AT:i], line[i + _MIDDLE_SIZE:-2]
        if not _plain_id(id_s) or b'"' in aid_s or b"\\" in aid_s:
            return False  # not what json would read as a plain integer ID and string
        summary = self.summary
        if not summary.loaded:
            self._gets_to_load -= 1
            if self._gets_to_load < 0:
                summary.load()
        got = summary.hit(aid_s)
        if got is not None and self._summary_get(id_s, aid_s, got):
            return True
        try:
            action_id = binascii.a2b_base64(aid_s, strict_mode=True)
        except binascii.Error:
            return False
        if len(action_id) != HASH_SIZE:
            return False
        self.stats.gets += 1
        hit = self.cache.get_file(action_id)
        if hit is None:
            self._miss(id_s, action_id)
            return True
        self.stats.hits += 1
        self._out.append(self._hit_line(id_s, *hit, key=aid_s))
        return True

    def _summary_get(self, id_s: bytes, key: bytes, got: tuple[bytes, bytes, bytes, bytes]) -> bool:
        """Answer a get from what ``Summary.hit`` has just handed out (the
        fact, split), its output checked (one lstat: a regular file, not
        a link, of the recorded size); the answer is stored ready-made.  A
        fact with a malformed mtime is forgotten, and False sends the get
        down the ordinary path."""
        _, mtime_s, output_hex, answer = got
        summary = self.summary
        now = self.cache.now_ns()
        try:
            if now - int(mtime_s) >= MTIME_INTERVAL_NS:
                summary.stale.append(key)  # refreshed after the last answer
        except ValueError:
            summary.drop(key)
            return False
        self.cache.mark_used(b"%s%s/%s-d" % (self._dir_prefix_b, output_hex[:2], output_hex), summary.output_mtime_ns)
        stats = self.stats
        stats.gets += 1
        stats.hits += 1
        stats.summary_hits += 1
        self._out.append(b'{"ID":%s,%s,"DiskPath":"%s%s/%s-d"}\n'
                         % (id_s, answer, self._dir_json_b, output_hex[:2], output_hex))
        return True

    def _hit_line(self, id_s: bytes, path: str, entry: Entry, *, key: bytes) -> bytes:
        """The get-hit response, formatted by hand (the general path's json
        produces the same object): cache file names need no JSON escapes,
        and the directory's escaped form is computed once.  The answer is
        remembered under ``key`` for later sessions."""
        answer = _answer(entry)
        self._remember(key, path, entry, answer)
        if path.startswith(self._dir_prefix):
            disk_path = self._dir_json + path[len(self._dir_prefix):]
        else:
            disk_path = _json_string_body(path)
        return b'{"ID":%s,%s,"DiskPath":"%s"}\n' % (id_s, answer, disk_path.encode())

    def _remember(self, key: bytes, path: str, entry: Entry, answer: bytes) -> None:
        """Put a hit's (or a put's) answer in the summary when its output is
        the plain file ``DIR/xx/<hex>-d`` (a cached executable's directory
        is left to the ordinary path).  The index entry was just read or
        written, and refreshed if old, so its mtime is taken as now."""
        output_hex = entry[0].hex()
        if path == f"{self._dir_prefix}{output_hex[:2]}/{output_hex}-d":
            self.summary.learn(key, summary_fact(self.cache.now_ns(), entry[1], output_hex.encode(), answer))

    def _get(self, id_: int, req: dict[str, Any]) -> None:
        self.stats.gets += 1
        action_id = _decode_id(req, "ActionID")
        hit = self.cache.get_file(action_id)
        if hit is None:
            self._miss(b"%d" % id_, action_id)
            return
        self.stats.hits += 1
        self._out.append(self._hit_line(b"%d" % id_, *hit, key=binascii.b2a_base64(action_id, newline=False)))

    def _put(self, id_: int, req: dict[str, Any]) -> None:
        size = req.get("BodySize", 0)
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise BadRequest(f"BodySize must be a non-negative integer, got {_clip(repr(size))}")
        try:
            action_id = _decode_id(req, "ActionID")
            output_id = _decode_id(req, "OutputID")
        except BadRequest:
            self._skip_body(size)
            raise
        if size > self._stream_at:
            path = self._stream_body(size, output_id)
        else:
            body = self._read_body(size) if size > 0 else b""
            import hashlib  # OpenSSL: loaded at the first put, not at start-up

            if hashlib.sha256(body).digest() != output_id:
                raise BadRequest("OutputID is not the SHA-256 of the body")
            path = self.cache.put_output(output_id, body)
        time_ns = self.cache.put_index(action_id, output_id, size)
        entry = Entry(output_id, size, time_ns)  # for later gets; the put's own answer is DiskPath
        self._remember(binascii.b2a_base64(action_id, newline=False), path, entry, _answer(entry))
        self.stats.puts += 1
        self.stats.put_bytes += size
        self._reply({"ID": id_, "DiskPath": path})
        if self.remote is not None:
            self.remote.upload(action_id, output_id, size, path)

    # ---- the remote tier (reference.remote)

    def _miss(self, id_s: bytes, action_id: bytes) -> None:
        """A local miss: answered now, or, with an active remote tier, by
        one of its threads once the remote has answered."""
        if self.remote is None or not self.remote.active:
            self._out.append(b'{"ID":%s,"Miss":true}\n' % id_s)  # digits, as json would print them
            return
        self.remote.get(action_id, self._store_remote, lambda found: self._remote_answer(id_s, found))

    def _store_remote(self, action_id: bytes, output_id: bytes, size: int, fetch: Callable[[Callable[[memoryview], object]], None]) -> tuple[str, Entry]:
        """Store a remote hit's output (``fetch`` streams it, verified)
        into DIR as a put would, then its index entry (in a worker
        thread); returns the output's path and the entry."""
        if size > self._stream_at:
            out = _UnnamedOutput(self.cache, output_id)
            try:
                fetch(lambda chunk: _write_all(out.fd, chunk))  # type: ignore[arg-type]
                out.publish(size)  # only now does the output have its name
            finally:
                out.close()
            path = out.path
        else:
            body = bytearray()
            fetch(body.extend)
            path = self.cache.put_output(output_id, bytes(body))
        return path, Entry(output_id, size, self.cache.put_index(action_id, output_id, size))

    def _remote_answer(self, id_s: bytes, found: tuple[str, Entry] | None) -> None:
        """Write a remote get's answer (from a worker thread)."""
        if found is None:
            line = b'{"ID":%s,"Miss":true}\n' % id_s
        else:
            path, entry = found
            line = b'{"ID":%s,%s,"DiskPath":"%s"}\n' % (id_s, _answer(entry, cached=False), _json_string_body(path).encode())
        with self._out_lock:
            _write_all(self._outfd, line)

    def _closing(self) -> None:
        """Before answering close: the remote gets are answered and the
        uploads finished (bounded in time), so nothing is lost when the go
        command exits."""
        if self.remote is not None:
            self.flush()
            self.remote.finish()


def run(dir: str, protocol: str, infd: int = 0, outfd: int = 1, *, load_summary_after: int = LOAD_AFTER,
        verbose: bool = False, stream_at: int = STREAM_AT, remote: RemoteTier | None = None) -> Stats:
    """Serve one session on ``infd``/``outfd``; then report, write the
    summary and trim.

    Stderr (which the go command passes to the person's terminal, and to
    tools reading ``go list``): nothing unless something went wrong, or
    ``verbose`` asks for the session's counts.  What went wrong is one
    line per kind of failure, with its count and first message, written
    at the end of the session (before stdout closes, so while the go
    command still runs): a count needs the whole session, and every
    failed request has had its Err answer already.  A failure after the
    last answer (writing the summary, trimming) is one line when it
    happens: each happens at most once a session.

    ``remote``: the remote tier (``reference.remote``), or None."""
    # The go command blocks until it has this line: announce first, then
    # make the 256 subdirectories while it gets on with loading packages.
    _write_all(outfd, KNOWN_COMMANDS)
    cache = GoCache(dir, protocol=protocol)
    server = Server(cache, infd, outfd, load_summary_after=load_summary_after, stream_at=stream_at, remote=remote)
    try:
        stats = server.serve()
        if remote is not None:
            remote.finish()  # end of input without close: the uploads still get their time
    finally:
        lines = ([server.stats.render()] if verbose else []) + server.stats.render_failures()
        _say(lines + (remote.report(verbose) if remote is not None else []))
    # Go's DiskCache trims on Close; with GOCACHEPROG nobody else trims this
    # directory.  Close stdout first: the go command waits for it to close,
    # not for the trim (which is skipped on all but one run a day).
    try:
        os.close(outfd)
    except OSError:
        pass
    try:
        server.summary.finish(cache.now_ns())
    except Exception as e:  # after the last answer: report it, still trim
        _say([f"idemwrite gocacheprog: writing the summary failed: {type(e).__name__}: {e}"])
    try:
        cache.trim()
    except OSError as e:
        _say([f"idemwrite gocacheprog: trim failed: {e}"])
    return stats


def _say(lines: list[str]) -> None:
    """Write ``lines`` to stderr, if any; a closed stderr is not an error
    worth dying of after the answers are out."""
    if not lines:
        return
    try:
        sys.stderr.write("".join(_clip(line) + "\n" for line in lines))
        sys.stderr.flush()
    except (OSError, ValueError):  # ValueError: sys.stderr already closed
        pass


def verbose_from_env(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether ``IDEMWRITE_VERBOSE`` asks for statistics (set and not
    empty or ``0``): for when the go command, not a person, starts us."""
    return environ.get("IDEMWRITE_VERBOSE", "") not in ("", "0")


def _check_protocol(name: str) -> str | None:
    """Why ``name`` cannot write cache files, or None if it can.  Imports
    the catalogue only for a non-default protocol (start-up speed)."""
    if name == DEFAULT_PROTOCOL:
        return None
    from reference.entry import entry_writers

    usable = entry_writers()
    if name not in usable:
        return f"protocol {name!r} cannot write a cache file; use one of: {', '.join(usable)}"
    return None


USAGE = """usage: idemwrite gocacheprog --dir DIR [--protocol P] [--verbose]
           [--remote s3://BUCKET/PREFIX [--endpoint URL] [--remote-read-only]
            [--remote-timeout SECONDS] [--remote-upload-wait SECONDS]]

A GOCACHEPROG server storing into DIR (created if missing) in Go's own cache
format.  --protocol names the catalogue program for every write (default
write-then-truncate; write-file is the known-bad twin); outputs over 16 MiB
are streamed to an unnamed file, named once checked.  Stderr stays
empty unless something fails (one line per kind of failure); --verbose, or
IDEMWRITE_VERBOSE=1 in the environment, adds the session's counts.  Use it as
    GOCACHEPROG="idemwrite gocacheprog --dir DIR" go build ./...

With --remote, a local miss is looked up in the bucket (the output checked
by size and SHA-256, then stored in DIR) and every put is uploaded in the
background, finished before close is answered (at most --remote-upload-wait
seconds, default 60).  The endpoint is --endpoint or AWS_ENDPOINT_URL;
credentials come from the AWS environment variables or config files.
--remote-read-only never writes to the bucket.  A remote that fails is a
miss: each request times out after --remote-timeout seconds (default 10).
"""


class Options:
    """The server's command line (a plain class: dataclasses cost import
    time that every go command would pay)."""

    def __init__(self) -> None:
        self.dir = ""
        self.protocol = DEFAULT_PROTOCOL
        self.verbose = False
        self.remote = ""
        self.endpoint = ""
        self.remote_read_only = False
        self.remote_timeout = 10.0
        self.remote_upload_wait = 60.0


_VALUED = {"--dir": "dir", "--protocol": "protocol", "--remote": "remote", "--endpoint": "endpoint",
           "--remote-timeout": "remote_timeout", "--remote-upload-wait": "remote_upload_wait"}
_FLAGS = {"-v": "verbose", "--verbose": "verbose", "--remote-read-only": "remote_read_only"}


def _seconds(name: str, value: str) -> float:
    try:
        t = float(value)
    except ValueError:
        t = -1.0
    if not 0 < t < 86400:
        raise BadRequest(f"{name} must be a number of seconds above 0, got {value!r}\n{USAGE}")
    return t


def parse_options(argv: list[str]) -> Options:
    """Options from ``--dir DIR [--protocol P] [--verbose] [--remote URL
    ...]`` (also ``--x=v``).  Hand-rolled rather than argparse:
    argparse's import is start-up time for every go command.  Raises
    BadRequest with a usage message."""
    opts = Options()
    it = iter(argv)
    for arg in it:
        if arg == "--":
            continue  # an end-of-options marker some wrappers pass through
        if arg in _FLAGS:
            setattr(opts, _FLAGS[arg], True)
            continue
        name, eq, value = arg.partition("=")
        if name in ("-h", "--help"):
            raise BadRequest(USAGE)
        if name not in _VALUED:
            raise BadRequest(f"unknown argument {arg!r}\n{USAGE}")
        if not eq:
            value = next(it, "")
        if not value:
            raise BadRequest(f"{name} needs a value\n{USAGE}")
        field = _VALUED[name]
        setattr(opts, field, _seconds(name, value) if field.startswith("remote_") else value)
    if not opts.dir:
        raise BadRequest(f"--dir is required\n{USAGE}")
    if not opts.remote and (opts.endpoint or opts.remote_read_only):
        raise BadRequest(f"--endpoint and --remote-read-only need --remote\n{USAGE}")
    return opts


def parse_args(argv: list[str]) -> tuple[str, str, bool]:
    """(dir, protocol, verbose) of ``parse_options``."""
    opts = parse_options(argv)
    return opts.dir, opts.protocol, opts.verbose


def _open_remote(opts: Options) -> RemoteTier | None:
    """The remote tier the options ask for (connecting to nothing yet);
    raises RemoteConfigError for a bad URL or a missing library."""
    if not opts.remote:
        return None
    from reference.remote import open_tier

    return open_tier(opts.remote, endpoint=opts.endpoint or None, read_only=opts.remote_read_only,
                     timeout=opts.remote_timeout, upload_wait=opts.remote_upload_wait, say=_say)


def main(argv: list[str]) -> int:
    """``gocacheprog --dir DIR [--protocol P] [--verbose]``; exit 2 on bad
    usage, 1 if the session could not run or died of its input/output."""
    try:
        opts = parse_options(argv)
    except BadRequest as e:
        print(f"idemwrite gocacheprog: {e}", file=sys.stderr)
        return 0 if str(e) == USAGE else 2
    why = _check_protocol(opts.protocol)
    if why is not None:
        print(f"idemwrite gocacheprog: {why}", file=sys.stderr)
        return 2
    try:
        remote = _open_remote(opts)
    except ValueError as e:  # reference.remote.RemoteConfigError
        print(f"idemwrite gocacheprog: {e}", file=sys.stderr)
        return 2
    try:
        run(opts.dir, opts.protocol, verbose=opts.verbose or verbose_from_env(), remote=remote)
    except OSError as e:
        print(f"idemwrite gocacheprog: {e}", file=sys.stderr)
        return 1
    return 0


def exit_after(rc: int) -> NoReturn:
    """End the process at once with status ``rc``, stdio flushed, without
    the interpreter's teardown (freeing every object and module: 3-5 ms
    here).  For the command only, after ``main`` has returned: the session
    is over by then (stdout closed, the summary written, the remote
    tier's waiting done), and a go command whose stderr is a pipe - CI, a
    script capturing its output - waits for this process to exit, as the
    pipe stays open until then.  What still runs (remote uploads past
    ``--remote-upload-wait``) ends with the process, as documented."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # closed, or its file descriptor is
            pass
    os._exit(rc)


if __name__ == "__main__":
    exit_after(main(sys.argv[1:]))
