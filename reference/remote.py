"""A remote cache tier on an S3 object store, behind the GOCACHEPROG server.

``idemwrite gocacheprog --dir DIR --remote s3://BUCKET/PREFIX`` keeps DIR as
the first tier and shares build outputs between machines through a bucket:

- ``PREFIX/o/<OutputID hex>``: an output, content-addressed (its name is
  the SHA-256 of its bytes), written once with ``If-None-Match: *``; a
  412 means another machine already put the same bytes, so it is done.
- ``PREFIX/a/<ActionID hex>``: the action record, Go's own 175-byte index
  entry (``v1 <action> <output> <size> <time>``), written after its output
  (so a record never names an output that is not there yet), plainly: the
  last writer wins, and every writer names a complete output.

What is checked: an output fetched from the remote is accepted only if it
has exactly the recorded size and its SHA-256 is its OutputID; a short body
(a cut connection, a buggy proxy) or wrong bytes are a miss and never reach
a name in DIR.  What is trusted: the action record.  Whether an output
really is the result of an action cannot be checked without doing the
action, so whoever may write the bucket decides what builds use.

Failures: every request has a timeout; any failure is a miss (a get) or an
upload not done (a put), never a failed build.  After
``FAILURES_BEFORE_GIVING_UP`` failures in a row, or at once when the store
refuses the credentials, the tier stops asking for the rest of the session
and says so once on stderr.  Nothing else is said unless asked
(``--verbose``), except the uploads still unfinished when the session ends.

Speed: this module imports nothing costly; the S3 client (obstore, chosen
by measurement: see the README) and the thread pools are made at the first
remote request, so a session of local hits never pays for them.

Not modelled here: the object store's own consistency (S3 has strong
read-after-write consistency since 2020; a store without it may answer a
get with an older object or none, which is at worst a miss), eviction
(bucket lifecycle rules), and who may write the bucket.
"""

from __future__ import annotations

import os
import sys
import threading

TYPE_CHECKING = False
if TYPE_CHECKING:
    from concurrent.futures import ThreadPoolExecutor
    from typing import Any, Callable, Protocol

    class ObjectStore(Protocol):
        """The requests the tier makes (``S3Store`` on obstore; tests may
        put a fake in its place).  Each raises ``RemoteFault`` on a
        failure; a missing object is ``None``, not a failure."""

        def get(self, key: str, sink: Callable[[memoryview], object], max_size: int) -> int | None:
            """Stream the object's bytes into ``sink``; its size, or None if absent."""

        def put_if_absent(self, key: str, data: bytes) -> bool:
            """PUT with ``If-None-Match: *``; False if the object was already there."""

        def put(self, key: str, data: bytes) -> None:
            """PUT, replacing what was there."""

ACTION_PREFIX = "a/"
OUTPUT_PREFIX = "o/"
DEFAULT_TIMEOUT = 10.0  # seconds, each request
FAILURES_BEFORE_GIVING_UP = 5  # in a row
DEFAULT_UPLOAD_WAIT = 60.0  # seconds, uploads still running at close
GET_WORKERS = 16  # the go command asks for many actions at once; latency overlaps
PUT_WORKERS = 8
RECORD_SIZE = 175  # Go's index entry (reference.gocache.format_entry)
_INSTALL_HINT = "pip install 'idemwrite[remote]'"
_PREFIX = "idemwrite gocacheprog: remote"


class RemoteConfigError(ValueError):
    """The remote's URL or options are wrong, or its library is missing;
    the message says what to do."""


class RemoteFault(Exception):
    """A remote request that failed: a timeout, an error status, a body
    cut short or with the wrong hash.  ``refused``: the store refused the
    credentials, which no retry will change."""

    def __init__(self, message: str, *, refused: bool = False) -> None:
        super().__init__(message)
        self.refused = refused


def parse_url(url: str) -> tuple[str, str]:
    """(bucket, prefix) from ``s3://BUCKET[/PREFIX]``; the prefix is empty
    or ends with ``/``."""
    if not url.startswith("s3://"):
        raise RemoteConfigError(f"--remote must be s3://BUCKET/PREFIX, got {url!r}")
    bucket, _, prefix = url[len("s3://"):].partition("/")
    if not bucket:
        raise RemoteConfigError(f"--remote {url!r} names no bucket")
    prefix = prefix.strip("/")
    return bucket, prefix + "/" if prefix else ""


def check_library() -> None:
    """Raise RemoteConfigError if the S3 client library is not installed
    (found without importing it: start-up stays cheap)."""
    import importlib.util

    try:
        spec = importlib.util.find_spec("obstore")
    except (ImportError, ValueError):  # ValueError: a module without a spec in its place
        spec = None
    if spec is None:
        raise RemoteConfigError(f"--remote needs the obstore library, which is not installed: {_INSTALL_HINT}")


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}"[:300]


class S3Store:
    """Objects under ``PREFIX`` in one bucket, through obstore (its Rust
    core signs with SigV4 and releases the GIL, so threads overlap).

    Configuration is the standard one: ``endpoint`` (``--endpoint``) or
    ``AWS_ENDPOINT_URL``; region from ``AWS_REGION``/``AWS_DEFAULT_REGION``;
    credentials from ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``/
    ``AWS_SESSION_TOKEN``, else from the AWS config files and profiles
    (``AWS_PROFILE``, ``~/.aws/credentials``, SSO, ...) as boto3 resolves
    them.  Each request has ``timeout`` seconds in all and one retry
    within that time."""

    def __init__(self, bucket: str, prefix: str, *, endpoint: str | None, timeout: float) -> None:
        self.bucket = bucket
        self.prefix = prefix
        self.endpoint = endpoint or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        self.timeout = timeout
        self._store: Any = None
        self._lock = threading.Lock()

    def _client(self) -> Any:
        with self._lock:  # the first requests arrive together from several threads
            if self._store is None:
                self._store = self._make()
            return self._store

    def _make(self) -> Any:
        from datetime import timedelta

        from obstore.store import S3Store as ObStore

        config: Any = {}  # obstore's S3Config, a TypedDict
        if self.endpoint:
            config["endpoint"] = self.endpoint
        provider = None
        if not os.environ.get("AWS_ACCESS_KEY_ID") and _aws_config_files():
            provider = _boto3_credentials()
            config.update(provider.config)
        t = timedelta(seconds=self.timeout)
        return ObStore(
            self.bucket, prefix=self.prefix or None, config=config or None, credential_provider=provider,
            client_options={"timeout": t, "connect_timeout": t,
                            "allow_http": bool(self.endpoint and self.endpoint.startswith("http://"))},
            retry_config={"max_retries": 1, "retry_timeout": t,
                          "backoff": {"init_backoff": timedelta(milliseconds=50),
                                      "max_backoff": timedelta(milliseconds=500), "base": 2}})

    def get(self, key: str, sink: Callable[[memoryview], object], max_size: int) -> int | None:
        import obstore
        from obstore.exceptions import NotFoundError

        try:
            got = obstore.get(self._client(), key)
            size = int(got.meta["size"])
            if size > max_size:
                raise RemoteFault(f"{key} has {size} bytes, more than the {max_size} expected")
            for chunk in got.stream(min_chunk_size=1 << 20):
                sink(memoryview(chunk))
            return size
        except (NotFoundError, FileNotFoundError):  # obstore raises the latter for a 404
            return None
        except RemoteFault:
            raise
        except Exception as e:
            raise _fault(e) from None

    def put_if_absent(self, key: str, data: bytes) -> bool:
        import obstore
        from obstore.exceptions import AlreadyExistsError, PreconditionError

        try:
            obstore.put(self._client(), key, data, mode="create")
            return True
        except (AlreadyExistsError, PreconditionError, FileExistsError):  # 412: the same bytes are there
            return False
        except RemoteFault:  # no credentials: already said why
            raise
        except Exception as e:
            raise _fault(e) from None

    def put(self, key: str, data: bytes) -> None:
        import obstore

        try:
            obstore.put(self._client(), key, data, mode="overwrite")
        except RemoteFault:
            raise
        except Exception as e:
            raise _fault(e) from None


# Error names by which S3 and its look-alikes refuse credentials.
_REFUSALS = ("SignatureDoesNotMatch", "InvalidAccessKeyId", "AccessDenied", "ExpiredToken",
             "403 Forbidden", "status: 403", "InvalidToken")


def _fault(e: Exception) -> RemoteFault:
    from obstore.exceptions import PermissionDeniedError, UnauthenticatedError

    text = str(e)
    refused = isinstance(e, (PermissionDeniedError, UnauthenticatedError)) or any(r in text for r in _REFUSALS)
    return RemoteFault(_first_line(e), refused=refused)


def _aws_config_files() -> bool:
    """Whether credentials may be in the AWS config files (so boto3's
    resolver, which reads them, is worth importing)."""
    if os.environ.get("AWS_PROFILE"):
        return True
    home = os.path.expanduser("~/.aws")
    files = (os.environ.get("AWS_SHARED_CREDENTIALS_FILE", f"{home}/credentials"),
             os.environ.get("AWS_CONFIG_FILE", f"{home}/config"))
    return any(os.path.isfile(f) for f in files)


def _boto3_credentials() -> Any:
    try:
        from obstore.auth.boto3 import Boto3CredentialProvider
    except ImportError:
        raise RemoteFault(f"credentials in the AWS config files need boto3: {_INSTALL_HINT}", refused=True) from None
    try:
        return Boto3CredentialProvider()
    except Exception as e:
        raise RemoteFault(f"no credentials from the AWS config files: {_first_line(e)}", refused=True) from None


class _Verifier:
    """A sink that counts and hashes an output on its way to ``out``;
    ``check`` says whether it was exactly the expected output."""

    def __init__(self, out: Callable[[memoryview], object], size: int) -> None:
        import hashlib

        self._out = out
        self._hash = hashlib.sha256()
        self.size = size
        self.done = 0

    def __call__(self, chunk: memoryview) -> None:
        self.done += len(chunk)
        if self.done > self.size:  # never write past the size: the local file is sized by it
            raise RemoteFault(f"body longer than the recorded {self.size} bytes")
        self._hash.update(chunk)
        self._out(chunk)

    def check(self, output_id: bytes) -> None:
        if self.done != self.size:
            raise RemoteFault(f"body cut short: {self.done} of {self.size} bytes")
        if self._hash.digest() != output_id:
            raise RemoteFault("body's SHA-256 is not its OutputID")


class RemoteStats:
    """What the tier did in one session (updated from its worker threads
    under ``lock``)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.gets = 0
        self.hits = 0
        self.uploads = 0  # outputs and records written (a 412 counts: the output is there)
        self.upload_bytes = 0
        self.failures = 0
        self.first_failure = ""
        self.not_uploaded = 0  # puts whose upload did not finish
        self.skipped = 0  # requests not made after giving up


class RemoteTier:
    """The remote tier of one server session: remote gets on local
    misses and uploads after local puts, each in a thread pool, with the
    give-up rule of the module docstring.

    ``store`` makes the requests; ``say`` writes a line to stderr."""

    def __init__(self, url: str, store: ObjectStore, *, read_only: bool = False,
                 say: Callable[[list[str]], None] | None = None,
                 upload_wait: float = DEFAULT_UPLOAD_WAIT) -> None:
        self.url = url
        self.store = store
        self.read_only = read_only
        self.upload_wait = upload_wait
        self.stats = RemoteStats()
        self.active = True  # False once the tier has given up
        self._say = say or _stderr
        self._in_a_row = 0
        self._pools: tuple[ThreadPoolExecutor, ThreadPoolExecutor] | None = None
        self._pending_uploads = 0
        self._pending_gets = 0
        self._finished = False  # finish() has returned: late uploads are no longer waited for
        self._idle = threading.Condition(self.stats.lock)

    # ---- health

    def _ok(self) -> None:
        with self.stats.lock:
            self._in_a_row = 0

    def _failed(self, e: RemoteFault) -> None:
        """Count a failure; give up after too many in a row, or at once
        when the credentials are refused (saying so once)."""
        with self.stats.lock:
            self.stats.failures += 1
            self._in_a_row += 1
            if not self.stats.first_failure:
                self.stats.first_failure = str(e)
            give_up = self.active and (e.refused or self._in_a_row >= FAILURES_BEFORE_GIVING_UP)
            if give_up:
                self.active = False
        if give_up:
            why = ("refused the credentials" if e.refused
                   else f"failed {FAILURES_BEFORE_GIVING_UP} requests in a row")
            self._say([f"{_PREFIX} {self.url} {why} ({e}); not asking it again this session: "
                       "builds go on with the local cache"])

    def _pool(self, which: int) -> ThreadPoolExecutor:
        if self._pools is None:
            from concurrent.futures import ThreadPoolExecutor

            self._pools = (ThreadPoolExecutor(GET_WORKERS, thread_name_prefix="remote-get"),
                           ThreadPoolExecutor(PUT_WORKERS, thread_name_prefix="remote-put"))
        return self._pools[which]

    # ---- gets

    def get(self, action_id: bytes, store_output: Callable[[bytes, bytes, int, Callable[[Callable[[memoryview], object]], None]], Any],
            answer: Callable[[Any], None]) -> None:
        """Look ``action_id`` up in the remote, in a worker thread; then
        ``answer(store_output(...))`` on a hit or ``answer(None)``.

        ``store_output(action_id, output_id, size, fetch)`` writes the output locally:
        it calls ``fetch(sink)``, which streams the verified output into
        ``sink`` (raising RemoteFault, before anything is published, if the
        body is short or wrong), and returns what ``answer`` is given."""
        with self.stats.lock:
            self._pending_gets += 1
        self._pool(0).submit(self._get_job, action_id, store_output, answer)

    def _get_job(self, action_id: bytes, store_output: Callable[..., Any], answer: Callable[[Any], None]) -> None:
        result = None
        try:
            result = self._lookup(action_id, store_output)
        except Exception as e:  # a local write failing, a bug: still an answer, a miss
            self._note_local(e)
        finally:
            try:
                answer(result)
            finally:
                with self.stats.lock:
                    self._pending_gets -= 1
                    self._idle.notify_all()

    def _lookup(self, action_id: bytes, store_output: Callable[..., Any]) -> Any:
        if not self.active:
            return None
        from reference.gocache import Entry, parse_entry

        with self.stats.lock:
            self.stats.gets += 1
        record = bytearray()
        try:
            size = self.store.get(ACTION_PREFIX + action_id.hex(), record.extend, RECORD_SIZE)
            if size is None:
                self._ok()
                return None
            entry = parse_entry(action_id, bytes(record))
            if type(entry) is not Entry:
                raise RemoteFault(f"action record {action_id.hex()} is not a valid entry: {entry}")
            output_id, out_size = entry[0], entry[1]

            def fetch(sink: Callable[[memoryview], object]) -> None:
                verify = _Verifier(sink, out_size)
                if self.store.get(OUTPUT_PREFIX + output_id.hex(), verify, out_size) is None:
                    raise RemoteFault(f"action record {action_id.hex()} names output {output_id.hex()}, which is missing")
                verify.check(output_id)

            result = store_output(action_id, output_id, out_size, fetch)
        except RemoteFault as e:
            self._failed(e)
            return None
        self._ok()
        with self.stats.lock:
            self.stats.hits += 1
        return result

    def _note_local(self, e: Exception) -> None:
        with self.stats.lock:
            self.stats.failures += 1
            if not self.stats.first_failure:
                self.stats.first_failure = f"storing a remote hit locally: {_first_line(e)}"

    # ---- uploads

    def upload(self, action_id: bytes, output_id: bytes, size: int, path: str) -> None:
        """Upload a put (already answered from DIR) in the background:
        the output from ``path``, if its bytes still match, then the
        record."""
        if self.read_only:
            return
        with self.stats.lock:
            self._pending_uploads += 1
        self._pool(1).submit(self._upload_job, action_id, output_id, size, path)

    def _upload_job(self, action_id: bytes, output_id: bytes, size: int, path: str) -> None:
        done = False
        try:
            done = self._upload(action_id, output_id, size, path)
        except Exception as e:
            self._note_local(e)
        finally:
            with self.stats.lock:
                if not self._finished:  # else finish() has counted it already
                    self._pending_uploads -= 1
                    if not done:
                        self.stats.not_uploaded += 1
                self._idle.notify_all()

    def _upload(self, action_id: bytes, output_id: bytes, size: int, path: str) -> bool:
        if not self.active:
            with self.stats.lock:
                self.stats.skipped += 1
            return False
        import hashlib

        from reference.gocache import format_entry

        data = _read_file(path, size)
        if data is None or hashlib.sha256(data).digest() != output_id:
            return False  # the local file changed under us (trimmed, replaced): upload nothing wrong
        try:
            self.store.put_if_absent(OUTPUT_PREFIX + output_id.hex(), data)
            # The record only after its output is complete in the store.
            self.store.put(ACTION_PREFIX + action_id.hex(), format_entry(action_id, output_id, size, _now_ns()))
        except RemoteFault as e:
            self._failed(e)
            return False
        self._ok()
        with self.stats.lock:
            self.stats.uploads += 1
            self.stats.upload_bytes += size
        return True

    # ---- end of session

    def finish_gets(self) -> None:
        """Wait until every remote get has been answered (each is bounded
        by the request timeouts)."""
        with self._idle:
            self._idle.wait_for(lambda: self._pending_gets == 0)

    def finish(self) -> None:
        """Wait for the gets, then for the uploads up to ``upload_wait``
        seconds; what is still running then is counted as not uploaded
        (and left to the threads, which end with the process)."""
        if self._finished:
            return
        self.finish_gets()
        with self._idle:
            self._idle.wait_for(lambda: self._pending_uploads == 0, timeout=self.upload_wait)
            self.stats.not_uploaded += self._pending_uploads
            self._pending_uploads = 0
            self._finished = True
        if self._pools is not None:
            for pool in self._pools:
                pool.shutdown(wait=False, cancel_futures=True)

    def report(self, verbose: bool) -> list[str]:
        """The session's stderr lines: the counts if ``verbose``; always
        what was not uploaded."""
        s = self.stats
        lines = []
        if verbose:
            lines.append(f"{_PREFIX} {self.url}: {s.gets} gets, {s.hits} hits, {s.uploads} uploads, "
                         f"{s.upload_bytes} bytes up, {s.failures} failures"
                         + (f" (the first: {s.first_failure})" if s.failures else ""))
        if s.not_uploaded:
            lines.append(f"{_PREFIX} {self.url}: {s.not_uploaded} puts not uploaded "
                         f"({'the remote was given up' if not self.active else f'unfinished after {self.upload_wait:g} s'}); "
                         "other machines will build them again")
        return lines


def _read_file(path: str, size: int) -> bytes | None:
    """The file's bytes if it has exactly ``size`` of them."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        with os.fdopen(fd, "rb", closefd=False) as f:
            data = f.read(size + 1)
    finally:
        os.close(fd)
    return data if len(data) == size else None


def _now_ns() -> int:
    import time

    return time.time_ns()


def _stderr(lines: list[str]) -> None:
    try:
        sys.stderr.write("".join(line + "\n" for line in lines))
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


def open_tier(url: str, *, endpoint: str | None = None, read_only: bool = False,
              timeout: float = DEFAULT_TIMEOUT, upload_wait: float = DEFAULT_UPLOAD_WAIT,
              say: Callable[[list[str]], None] | None = None) -> RemoteTier:
    """The tier for ``--remote URL``: raises RemoteConfigError for a bad
    URL or a missing library; connects to nothing yet."""
    bucket, prefix = parse_url(url)
    check_library()
    return RemoteTier(url, S3Store(bucket, prefix, endpoint=endpoint, timeout=timeout),
                      read_only=read_only, say=say, upload_wait=upload_wait)
