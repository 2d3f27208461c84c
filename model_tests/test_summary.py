"""The GOCACHEPROG server's summary (``reference.summary``): answers across
sessions stay those of the index entries on disk, or equally valid ones.

Every answer is checked for soundness (a hit's DiskPath holds exactly Size
bytes whose SHA-256 is OutputID); a twin of the server that trusts the
summary without checking the output is shown to fail that check.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from twins import TrustingSummary

from reference.gocache import MTIME_INTERVAL_NS, TRIM_LIMIT_S, GoCache
from reference.gocacheprog import KNOWN_COMMANDS, Server, run
from reference.summary import LOAD_AFTER, SUMMARY_NAME, Summary, decode, encode, fact, parse_fact

AID = bytes(range(32))
KEY = base64.b64encode(AID)


def get(id_: int, aid: bytes) -> bytes:
    """As the go command sends it (the server's fast path)."""
    return b'{"ID":%d,"Command":"get","ActionID":"%s"}\n\n' % (id_, base64.b64encode(aid))


def put(id_: int, aid: bytes, body: bytes) -> bytes:
    req = {"ID": id_, "Command": "put", "ActionID": base64.b64encode(aid).decode(),
           "OutputID": base64.b64encode(hashlib.sha256(body).digest()).decode(), "BodySize": len(body)}
    line = json.dumps(req, separators=(",", ":")).encode() + b"\n\n"
    return line + (b'"' + base64.b64encode(body) + b'"\n' if body else b"")


def session(tmp: Path, data: bytes, server: type[Server] = Server, load_after: int = 0) -> tuple[list[dict[str, Any]], Any]:
    """One server session over files (``run`` for the real server, the same
    steps by hand for a twin); the responses after the announcement and
    the stats.  The summary is loaded before the first get unless
    ``load_after`` says otherwise."""
    (tmp / "in").write_bytes(data)
    infd = os.open(tmp / "in", os.O_RDONLY)
    outfd = os.open(tmp / "out", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        if server is Server:
            stats = run(str(tmp / "cache"), "write-then-truncate", infd, outfd, load_summary_after=load_after)
        else:
            os.write(outfd, KNOWN_COMMANDS)
            cache = GoCache(str(tmp / "cache"))
            srv = server(cache, infd, outfd, load_summary_after=load_after)
            stats = srv.serve()
            os.close(outfd)
            srv.summary.finish(cache.now_ns())
    finally:
        os.close(infd)
    lines = (tmp / "out").read_bytes().splitlines()
    assert lines[0] + b"\n" == KNOWN_COMMANDS
    return [json.loads(line) for line in lines[1:]], stats


def sound(resp: dict[str, Any]) -> bool:
    """A miss, or a hit whose file is exactly the output it names."""
    if resp.get("Miss"):
        return True
    try:
        data = Path(resp["DiskPath"]).read_bytes()
    except OSError:
        return False
    return len(data) == resp.get("Size", 0) and hashlib.sha256(data).digest() == base64.b64decode(resp["OutputID"])


def keys_on_disk(cache: Path) -> set[bytes]:
    got = decode((cache / SUMMARY_NAME).read_bytes())
    assert got is not None
    return set(got[1])


def output_path(tmp: Path, body: bytes) -> Path:
    h = hashlib.sha256(body).hexdigest()
    return tmp / "cache" / h[:2] / f"{h}-d"


# ------------------------------------------------------------ the file


def test_encode_decode_round_trip(tmp_path: Path) -> None:
    facts = {KEY: fact(7, 3, b"ab" * 32, b'"Size":3'), base64.b64encode(bytes(32)): fact(2, 0, b"cd" * 32, b"{}")}
    path = tmp_path / SUMMARY_NAME
    path.write_bytes(encode(sorted(facts.items())))
    summary = Summary(str(tmp_path))
    assert summary.facts_on_disk() == 2
    summary.load()
    assert {k: summary.peek(k) for k in summary.table} == facts
    assert decode(encode([])) == (b"", {})


def test_every_damaged_summary_is_refused() -> None:
    """A torn write (any proper prefix), a flipped byte, a foreign file:
    none is trusted."""
    good = encode([(KEY, fact(7, 3, b"ab" * 32, b'"Size":3')), (base64.b64encode(bytes(32)), fact(2, 0, b"cd" * 32, b"{}"))])
    for n in range(len(good)):
        assert decode(good[:n]) is None, n
    for i in range(len(good)):
        bad = bytearray(good)
        bad[i] ^= 0x01
        assert decode(bytes(bad)) is None, i
    assert decode(b"v1 " + b"0" * 172) is None


@pytest.mark.parametrize("key, value", [(b"AAAA", fact(7, 3, b"ab" * 32, b"{}")), (KEY + b"A", fact(7, 3, b"ab" * 32, b"{}")),
                                        (KEY, fact(7, 3, b"ab" * 32, b"x" * 300))])
def test_what_does_not_fit_a_record_is_left_out(key: bytes, value: bytes) -> None:
    assert decode(encode([(key, value)])) == (b"", {})


# ------------------------------------------------------------ across sessions


def test_a_later_session_answers_from_the_summary(tmp_path: Path) -> None:
    body = b"compiled" * 100
    first, _ = session(tmp_path, put(1, AID, body) + get(2, AID))
    assert (tmp_path / "cache" / SUMMARY_NAME).exists()
    second, stats = session(tmp_path, get(1, AID) + get(2, bytes(32)))
    assert stats.summary_hits == 1 and stats.hits == 1
    assert {**second[0], "ID": 2} == first[1]  # the same answer as from the index entry
    assert second[1] == {"ID": 2, "Miss": True}
    assert all(sound(r) for r in second)


@pytest.mark.parametrize("damage", ["remove", "shorten", "directory"])
def test_an_output_gone_or_changed_is_not_answered_from_the_summary(tmp_path: Path, damage: str) -> None:
    body = b"compiled" * 100
    session(tmp_path, put(1, AID, body))
    out = output_path(tmp_path, body)
    out.unlink()
    if damage == "shorten":
        out.write_bytes(body[:-1])
    elif damage == "directory":
        out.mkdir()
    r, stats = session(tmp_path, get(1, AID))
    assert r == [{"ID": 1, "Miss": True}] and stats.summary_hits == 0
    assert KEY not in keys_on_disk(tmp_path / "cache")


def test_an_entry_put_elsewhere_since_is_found(tmp_path: Path) -> None:
    """Not in the summary: the ordinary path reads the index entry that a
    plain go command (here GoCache) wrote after the summary."""
    session(tmp_path, put(1, bytes(32), b"other"))
    GoCache(str(tmp_path / "cache")).put(AID, b"elsewhere")
    r, _ = session(tmp_path, get(1, AID))
    assert sound(r[0]) and Path(r[0]["DiskPath"]).read_bytes() == b"elsewhere"


def test_a_replaced_entry_is_answered_with_an_output_of_the_action(tmp_path: Path) -> None:
    """Another writer stored a different output for the action (a
    non-reproducible build): either output is a valid answer."""
    session(tmp_path, put(1, AID, b"first build"))
    GoCache(str(tmp_path / "cache")).put(AID, b"second build")
    r, _ = session(tmp_path, get(1, AID))
    assert sound(r[0]) and Path(r[0]["DiskPath"]).read_bytes() in (b"first build", b"second build")


@pytest.mark.parametrize("junk", [b"", b"garbage", b"idemwrite-summary v1 00000000\nx y\n"])
def test_a_damaged_summary_is_ignored_and_rewritten(tmp_path: Path, junk: bytes) -> None:
    session(tmp_path, put(1, AID, b"abc"))
    (tmp_path / "cache" / SUMMARY_NAME).write_bytes(junk)
    r, stats = session(tmp_path, get(1, AID))
    assert sound(r[0]) and "Miss" not in r[0] and stats.summary_hits == 0
    assert decode((tmp_path / "cache" / SUMMARY_NAME).read_bytes()) is not None


def test_used_index_entries_are_refreshed_after_the_session(tmp_path: Path) -> None:
    """Go's markUsed for an entry over an hour old, deferred to after the
    last answer; the output's mtime is refreshed at once."""
    session(tmp_path, put(1, AID, b"abc"))
    cache = tmp_path / "cache"
    old = time.time_ns() - 2 * MTIME_INTERVAL_NS
    index = cache / AID.hex()[:2] / f"{AID.hex()}-a"
    out = output_path(tmp_path, b"abc")
    for p in (index, out):
        os.utime(p, ns=(old, old))
    table = decode((cache / SUMMARY_NAME).read_bytes())
    assert table is not None
    records, offsets = table
    parsed = parse_fact(records[offsets[KEY]:].split(b"\n", 1)[0].rstrip())
    assert parsed is not None
    (cache / SUMMARY_NAME).write_bytes(encode([(KEY, fact(old, *parsed[1:]))]))
    r, stats = session(tmp_path, get(1, AID))
    assert stats.summary_hits == 1
    assert index.stat().st_mtime_ns > old + MTIME_INTERVAL_NS and out.stat().st_mtime_ns > old + MTIME_INTERVAL_NS
    table = decode((cache / SUMMARY_NAME).read_bytes())
    assert table is not None and int(table[0][table[1][KEY]:].split()[0]) > old + MTIME_INTERVAL_NS


def test_facts_unused_beyond_the_trim_limit_are_forgotten(tmp_path: Path) -> None:
    session(tmp_path, put(1, AID, b"abc"))
    summary = Summary(str(tmp_path / "cache"))
    summary.load()
    parsed = parse_fact(summary.peek(KEY) or b"")
    assert parsed is not None
    long_ago = time.time_ns() - (TRIM_LIMIT_S + 60) * 10**9
    summary.learn(KEY, fact(long_ago, *parsed[1:]))
    summary.finish(time.time_ns())
    reread = Summary(str(tmp_path / "cache"))
    reread.load()
    assert KEY not in reread.table


def test_facts_used_within_the_trim_limit_are_kept(tmp_path: Path) -> None:
    """Go trims what is unused for TRIM_LIMIT_S: a fact last used a day
    short of that is kept."""
    session(tmp_path, put(1, AID, b"abc"))
    summary = Summary(str(tmp_path / "cache"))
    summary.load()
    parsed = parse_fact(summary.peek(KEY) or b"")
    assert parsed is not None
    recently = time.time_ns() - (TRIM_LIMIT_S - 86400) * 10**9
    summary.learn(KEY, fact(recently, *parsed[1:]))
    summary.finish(time.time_ns())
    reread = Summary(str(tmp_path / "cache"))
    reread.load()
    assert KEY in reread.table


def test_no_summary_and_nothing_learned_writes_none(tmp_path: Path) -> None:
    (tmp_path / "cache").mkdir()
    summary = Summary(str(tmp_path / "cache"))
    summary.load()
    summary.finish(time.time_ns())
    assert not (tmp_path / "cache" / SUMMARY_NAME).exists()


def test_a_summary_that_is_a_symlink_is_replaced_and_its_target_left_alone(tmp_path: Path) -> None:
    """A link at the summary's name is not followed (O_NOFOLLOW): the next
    session writes a regular file there, even with nothing new to say,
    and the file the link pointed at keeps its bytes."""
    session(tmp_path, put(1, AID, b"abc"))
    cache = tmp_path / "cache"
    elsewhere = tmp_path / "elsewhere"
    (cache / SUMMARY_NAME).rename(elsewhere)
    before = elsewhere.read_bytes()
    (cache / SUMMARY_NAME).symlink_to(elsewhere)
    summary = Summary(str(cache))
    summary.load()
    summary.finish(time.time_ns())
    assert not (cache / SUMMARY_NAME).is_symlink() and (cache / SUMMARY_NAME).is_file()
    assert elsewhere.read_bytes() == before


@pytest.mark.parametrize("load_after", [0, LOAD_AFTER])
def test_an_unchanged_summary_is_not_rewritten(tmp_path: Path, load_after: int) -> None:
    """Answered from the summary, or (before it is read) from the index
    entry, which relearns the same fact: no write either way."""
    session(tmp_path, put(1, AID, b"abc"))
    path = tmp_path / "cache" / SUMMARY_NAME
    inode = path.stat().st_ino
    _, stats = session(tmp_path, get(1, AID), load_after=load_after)
    assert stats.hits == 1 and stats.summary_hits == (1 if load_after == 0 else 0)
    assert path.stat().st_ino == inode  # rename-into-place would make a new inode


def test_a_short_session_does_not_read_the_summary_nor_lose_it(tmp_path: Path) -> None:
    session(tmp_path, put(1, AID, b"abc"))
    other = bytes(32)
    r, stats = session(tmp_path, get(1, AID) + put(2, other, b"def"), load_after=LOAD_AFTER)
    assert stats.summary_hits == 0 and sound(r[0]) and "Miss" not in r[0]  # the ordinary path
    assert keys_on_disk(tmp_path / "cache") == {KEY, base64.b64encode(other)}  # merged, not replaced


def test_a_long_session_reads_it_after_enough_gets(tmp_path: Path) -> None:
    aids = [i.to_bytes(32, "big") for i in range(LOAD_AFTER + 3)]
    session(tmp_path, b"".join(put(i, aid, b"%d" % i) for i, aid in enumerate(aids, 1)))
    _, stats = session(tmp_path, b"".join(get(i, aid) for i, aid in enumerate(aids, 1)), load_after=LOAD_AFTER)
    assert stats.hits == LOAD_AFTER + 3 and stats.summary_hits == 3  # the first LOAD_AFTER read the index


def test_at_most_max_facts_are_kept_the_most_recently_used(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    summary = Summary(str(cache), max_facts=2)
    now = time.time_ns()
    keys = [base64.b64encode(bytes([i]) * 32) for i in range(4)]
    for age, key in enumerate(keys):
        summary.learn(key, fact(now - age * 10**9, 1, b"ab" * 32, b"{}"))
    summary.finish(now)
    assert keys_on_disk(cache) == set(keys[:2])


# ------------------------------------------------------------ the check can fail


class TrustingServer(Server):
    """Known-bad twin: answers from the summary without checking that the
    output is still there (neither the summary nor the server checks)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.summary = TrustingSummary(self.cache.dir)

    def _summary_get(self, id_s: bytes, key: bytes, got: tuple[bytes, bytes, bytes, bytes]) -> bool:
        _, _, output_hex, answer = got
        path = b"%s/%s/%s-d" % (self.cache.dir.encode(), output_hex[:2], output_hex)
        self._out.append(b'{"ID":%s,%s,"DiskPath":"%s"}\n' % (id_s, answer, path))
        return True


def _form_damage(mtime: bytes, size: bytes, out: bytes, answer: bytes) -> dict[str, tuple[bytes, ...]]:
    """A fact's four fields damaged one way each (the output stays the one
    on disk, so only the form can refuse them)."""
    other = base64.b64encode(hashlib.sha256(b"other").digest())
    return {
        "mtime not a number": (b"1e9", size, out, answer),
        "size with a leading zero": (mtime, b"0" + size, out, answer.replace(b'"Size":' + size, b'"Size":0' + size)),
        "size not the answer's": (mtime, size, out, answer.replace(b'"Size":' + size, b'"Size":' + size + b"0")),
        "output name in upper case": (mtime, size, out.upper(), answer),
        "output name short": (mtime, size, out[:-2], answer),
        "answer of another output": (mtime, size, out, answer.replace(base64.b64encode(bytes.fromhex(out.decode())),
                                                                      other)),
        "answer with a field after the time": (mtime, size, out, answer + b',"DiskPath":"/etc/passwd"'),
        "time not RFC 3339": (mtime, size, out, answer.replace(b"T", b" ", 1)),
        "no answer": (mtime, size, out, b""),
    }


@pytest.mark.parametrize("body", [b"abc", b"0123456789", b""])
def test_a_fact_from_the_file_is_used_only_in_the_servers_own_form(tmp_path: Path, body: bytes) -> None:
    """The summary file is untrusted input: a fact read from it answers a
    get only in exactly the form the server writes (``well_formed``),
    checked once per session, even when its output is there whole.  Sizes
    of one and more digits, 0 included (a single zero is no leading one)."""
    session(tmp_path, put(1, AID, body))
    cache = tmp_path / "cache"
    summary = Summary(str(cache))
    summary.load()
    good = summary.peek(KEY)
    assert good is not None and summary.get(KEY) == good  # the server's own fact is used
    damaged = _form_damage(*good.split(b" ", 3))
    keys = {name: base64.b64encode(hashlib.sha256(name.encode()).digest()) for name in damaged}
    (cache / SUMMARY_NAME).write_bytes(encode(sorted([(KEY, good)] + [(keys[n], b" ".join(f)) for n, f in damaged.items()])))
    fresh = Summary(str(cache))
    fresh.load()
    assert fresh.get(KEY) == good and fresh.get(KEY) == good  # checked once, then as stored
    refused = [name for name in damaged if fresh.get(keys[name]) is None]
    assert refused == list(damaged)
    assert all(keys[name] not in fresh.table for name in damaged)  # forgotten, so rewritten without them


def test_a_fact_whose_subdirectory_is_a_link_is_not_used(tmp_path: Path) -> None:
    """The output's subdirectory replaced by a link to a directory holding
    the same output: the fact is not handed out (an lstat of the output
    alone would follow the link)."""
    session(tmp_path, put(1, AID, b"abc"))
    sub = output_path(tmp_path, b"abc").parent
    moved = tmp_path / "elsewhere"
    sub.rename(moved)
    sub.symlink_to(moved)
    summary = Summary(str(tmp_path / "cache"))
    summary.load()
    assert summary.peek(KEY) is not None and output_path(tmp_path, b"abc").is_file()
    assert summary.get(KEY) is None


def test_a_stored_fact_with_a_junk_mtime_is_replaced_and_left_out(tmp_path: Path) -> None:
    """Facts come unchecked from the file until used: learning over one
    whose mtime is not a number (its other fields the same) replaces it,
    and one never replaced is left out when the file is written again;
    neither is an error."""
    now = time.time_ns()
    new, other = fact(now, 1, b"0" * 64, b"A"), fact(now, 2, b"1" * 64, b"B")
    key2, key3 = base64.b64encode(b"2" * 32), base64.b64encode(b"3" * 32)
    (tmp_path / SUMMARY_NAME).write_bytes(encode([(KEY, b"x" + new), (key2, b"x" + other)]))
    summary = Summary(str(tmp_path))
    summary.load()
    summary.learn(KEY, new)
    assert summary.peek(KEY) == new and summary.changed
    summary.learn(key3, other)
    summary.finish(now)
    assert keys_on_disk(tmp_path) == {KEY, key3}


def test_a_different_fact_learnt_within_the_hour_replaces_the_old(tmp_path: Path) -> None:
    """Within the hour only the same fact (a refreshed mtime) is no change;
    another output or answer for the key replaces it, whichever sorts first."""
    summary = Summary(str(tmp_path))
    summary.load()
    now = time.time_ns()
    first, second = fact(now, 1, b"f" * 64, b"A"), fact(now + 1, 1, b"0" * 64, b"B")
    summary.learn(KEY, first)
    summary.learn(KEY, second)
    assert summary.peek(KEY) == second
    summary.learn(KEY, fact(now + 2, 1, b"0" * 64, b"B"))  # the same fact, a moment later
    assert summary.peek(KEY) == second
    earlier = fact(now, 1, b"0" * 64, b"B")  # the same fact seen earlier than the stored one: replaces it
    summary.learn(KEY, earlier)
    assert summary.peek(KEY) == earlier


def test_a_stale_fact_whose_index_entry_is_gone_is_dropped(tmp_path: Path) -> None:
    """A used fact over an hour old has its index entry's mtime refreshed
    after the session; if that entry has gone (trimmed, go clean), the fact
    is dropped from the file instead, and that is no error."""
    session(tmp_path, put(1, AID, b"abc"))
    cache = tmp_path / "cache"
    summary = Summary(str(cache))
    summary.load()
    old = summary.peek(KEY)
    assert old is not None
    Path(GoCache(str(cache)).file_name(AID, "a")).unlink()
    summary.stale.append(KEY)
    summary.finish(time.time_ns() + 2 * MTIME_INTERVAL_NS)
    assert KEY not in keys_on_disk(cache)


def test_the_file_format_is_fixed_width_records_of_286_bytes() -> None:
    """The on-disk format stays readable by every session of this version:
    a header, then one record per fact, 44-byte key, a space, the fact
    padded with spaces to 240 bytes, a newline (written here by hand)."""
    fact_ = fact(1, 2, b"ab" * 32, b"{}")
    body = KEY + b" " + fact_ + b" " * (240 - len(fact_)) + b"\n"
    data = b"idemwrite-summary v1 %08x\n" % binascii.crc32(body) + body
    got = decode(data)
    assert got is not None and len(body) == 286
    records, offsets = got
    assert records[offsets[KEY]:][:len(fact_)] == fact_ and encode([(KEY, fact_)]) == data


def test_the_soundness_check_catches_a_server_that_trusts_its_summary(tmp_path: Path) -> None:
    session(tmp_path, put(1, AID, b"abc"))
    output_path(tmp_path, b"abc").unlink()
    r, _ = session(tmp_path, get(1, AID), server=TrustingServer)
    assert not sound(r[0])


# ------------------------------------------------------------ many sessions


OPS = st.lists(st.tuples(st.sampled_from(["get", "put", "restart", "lose"]), st.integers(0, 2),
                         st.sampled_from([b"", b"a", b"bb", b"ccc"])), max_size=30)


@pytest.mark.parametrize("load_after", [0, 2])
@settings(deadline=None)
@given(ops=OPS)
def test_sessions_answer_as_the_files_on_disk_say(tmp_path_factory: pytest.TempPathFactory, load_after: int,
                                                  ops: list[tuple[str, int, bytes]]) -> None:
    """A model over several sessions: action -> last body put; a body whose
    output file was deleted (between sessions) is lost until put again.  A
    get hits exactly when the model says so, and every answer is sound.
    The summary is read at once, or after two gets (facts learnt before)."""
    tmp = tmp_path_factory.mktemp("sessions")
    model: dict[bytes, bytes] = {}
    lost: set[bytes] = set()
    data = b""  # requests of the session
    expect: list[tuple[str, bytes | None]] = []  # for each, (kind, body or None)

    def flush() -> None:
        nonlocal data, expect
        if data:
            r, _ = session(tmp, data, load_after=load_after)
            assert len(r) == len(expect)
            for (kind, want), resp in zip(expect, r):
                if kind == "put":
                    assert Path(resp["DiskPath"]).read_bytes() == want
                    continue
                assert sound(resp), resp
                if want is None:
                    assert resp.get("Miss"), resp
                else:
                    assert Path(resp["DiskPath"]).read_bytes() == want
        data, expect = b"", []

    for i, (op, k, body) in enumerate(ops, start=1):
        aid = bytes([k]) * 32
        if op == "get":
            data += get(i, aid)
            have = model.get(aid)
            expect.append(("get", None if have is None or have in lost else have))
        elif op == "put":
            data += put(i, aid, body)
            model[aid] = body
            lost.discard(body)
            expect.append(("put", body))
        elif op == "restart":
            flush()
        elif aid in model:  # lose: delete the output of the action's body
            flush()
            output_path(tmp, model[aid]).unlink(missing_ok=True)
            lost.add(model[aid])
    flush()
