"""The GOCACHEPROG server: Go's protocol, and surviving bad input.

Conversations are fed through real file descriptors to the same ``run``
that ``python -m reference.gocacheprog`` uses; a few tests run the module as
a subprocess to check its exit codes and its stderr: empty unless something
failed (one line per kind of failure) or statistics were asked for.  Every request
line must get exactly one response with its ID, whatever is wrong with it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reference.gocache import GoCache
from reference.gocacheprog import KNOWN_COMMANDS, parse_args, run

REPO = Path(__file__).resolve().parent.parent
AID = bytes(range(32))


def b64(b: bytes) -> str:
    return base64.b64encode(b).decode()


def get(id_: int, aid: bytes) -> bytes:
    """As the go command writes it (compact: the server's fast path)."""
    return json.dumps({"ID": id_, "Command": "get", "ActionID": b64(aid)}, separators=(",", ":")).encode() + b"\n\n"


def put(id_: int, aid: bytes, body: bytes) -> bytes:
    """As the go command writes it: object, newline, blank line, body line."""
    req = {"ID": id_, "Command": "put", "ActionID": b64(aid), "OutputID": b64(hashlib.sha256(body).digest())}
    if body:
        req["BodySize"] = len(body)
    line = json.dumps(req).encode() + b"\n\n"
    return line + (b'"' + base64.b64encode(body) + b'"\n' if body else b"")


def close(id_: int) -> bytes:
    return json.dumps({"ID": id_, "Command": "close"}).encode() + b"\n\n"


def converse(tmp: Path, data: bytes, protocol: str = "write-then-truncate") -> list[dict[str, Any]]:
    """Run one server session on ``data``; the responses after the first."""
    (tmp / "in").write_bytes(data)
    infd = os.open(tmp / "in", os.O_RDONLY)
    outfd = os.open(tmp / "out", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        run(str(tmp / "cache"), protocol, infd, outfd)  # closes outfd
    finally:
        os.close(infd)
    lines = (tmp / "out").read_bytes().splitlines(keepends=True)
    assert lines[0] == KNOWN_COMMANDS
    return [json.loads(line) for line in lines[1:]]


def test_announces_get_put_close_first(tmp_path: Path) -> None:
    assert converse(tmp_path, b"") == []
    assert json.loads(KNOWN_COMMANDS) == {"ID": 0, "KnownCommands": ["get", "put", "close"]}


def test_put_then_get(tmp_path: Path) -> None:
    body = b"compiled object bytes\x00\xff" * 100
    r = converse(tmp_path, get(1, AID) + put(2, AID, body) + get(3, AID) + close(4))
    assert r[0] == {"ID": 1, "Miss": True}
    assert r[1]["ID"] == 2 and Path(r[1]["DiskPath"]).read_bytes() == body
    hit = r[2]
    assert hit["ID"] == 3 and hit["Size"] == len(body) and hit["DiskPath"] == r[1]["DiskPath"]
    assert base64.b64decode(hit["OutputID"]) == hashlib.sha256(body).digest()
    assert os.path.isabs(hit["DiskPath"]) and hit["DiskPath"].startswith(str(tmp_path / "cache") + os.sep)
    assert hit["Time"].endswith("Z") and len(hit["Time"]) == len("2006-01-02T15:04:05.000000000Z")
    assert r[3] == {"ID": 4}
    # Go's own format: a plain GoCache reads what the server stored.
    assert GoCache(str(tmp_path / "cache")).get_bytes(AID) is not None


def test_fast_get_answers_as_the_json_path_does(tmp_path: Path) -> None:
    """The go command's compact form takes the fast path; the same request
    with spaces takes the json path; the answers are the same objects."""
    spaced = b'{ "ID": 3, "Command": "get", "ActionID": "%s" }\n' % b64(AID).encode()
    r = converse(tmp_path, put(1, AID, b"body") + get(2, AID) + spaced + get(4, bytes(32))
                 + b'{ "ID": 5, "Command": "get", "ActionID": "%s" }\n' % b64(bytes(32)).encode()
                 + b'{"ID":007,"Command":"get","ActionID":"%s"}\n' % b64(AID).encode())
    assert {**r[1], "ID": 3} == r[2]
    assert r[3] == {"ID": 4, "Miss": True} and r[4] == {"ID": 5, "Miss": True}
    assert "Err" in r[5]  # a leading zero is not JSON: the fast path must not take it


def test_empty_body_and_large_body(tmp_path: Path) -> None:
    big = os.urandom(3 << 20)  # spans several reads of the input
    other = bytes(32)
    r = converse(tmp_path, put(1, AID, b"") + put(2, other, big) + get(3, AID) + get(4, other))
    assert Path(r[0]["DiskPath"]).read_bytes() == b""
    assert r[2].get("Size", 0) == 0 and r[2]["DiskPath"] == r[0]["DiskPath"]  # Go omits a zero Size
    assert Path(r[3]["DiskPath"]).read_bytes() == big


def test_trims_after_answering(tmp_path: Path) -> None:
    """Go's DiskCache trims on Close; nobody else trims a GOCACHEPROG
    directory, so the server does, after its last answer."""
    converse(tmp_path, close(1))
    assert (tmp_path / "cache" / "trim.txt").read_bytes().isdigit()


def test_compact_close_is_answered_as_the_json_path_does(tmp_path: Path) -> None:
    """The go command's compact close takes the path without json; one
    that json would reject (a leading zero) gets an Err and does not close."""
    r = converse(tmp_path, b'{"ID":01,"Command":"close"}\n\n{"ID":2,"Command":"close"}\n\n' + get(3, AID))
    assert "Err" in r[0]
    assert r[1:] == [{"ID": 2}]
    assert converse(tmp_path, close(7)) == converse(tmp_path, b'{"ID":7,"Command":"close"}\n') == [{"ID": 7}]


def test_lines_after_close_are_not_read(tmp_path: Path) -> None:
    r = converse(tmp_path, close(1) + get(2, AID))
    assert r == [{"ID": 1}]


BAD_REQUESTS = [
    (b"this is not json\n", 0, "not JSON"),
    (b'{"ID": 7, "Command": "get", "ActionID": \n', 7, "not JSON"),
    (b"[1, 2]\n", 0, "not a JSON object"),
    (b'{"ID": "7", "Command": "get"}\n', 0, "ID missing or not an integer"),
    (b'{"ID": 8, "Command": "fly"}\n', 8, "unknown command 'fly'"),
    (b'{"ID": 9, "Command": "get"}\n', 9, "ActionID is missing"),
    (b'{"ID": 10, "Command": "get", "ActionID": "AAAA"}\n', 10, "ActionID must be 32 bytes, got 3"),
    (b'{"ID": 11, "Command": "get", "ActionID": "!!notbase64"}\n', 11, "ActionID is not valid base64"),
    (b'{"ID": 12, "Command": "put", "ActionID": "%s", "OutputID": "%s", "BodySize": 3}\n"AAAAAA=="\n'
     % (b64(AID).encode(), b64(hashlib.sha256(b"\0\0\0").digest()).encode()), 12, "body has 4 bytes"),
    (b'{"ID": 13, "Command": "put", "ActionID": "%s", "OutputID": "%s", "BodySize": 3}\n"AAA*"\n'
     % (b64(AID).encode(), b64(AID).encode()), 13, "body is not valid base64"),
    (b'{"ID": 14, "Command": "put", "ActionID": "%s", "OutputID": "%s", "BodySize": 3}\n"YWJj"\n'
     % (b64(AID).encode(), b64(AID).encode()), 14, "OutputID is not the SHA-256 of the body"),
    (b'{"ID": 15, "Command": "put", "ActionID": "%s", "BodySize": -1}\n' % b64(AID).encode(), 15, "BodySize must be"),
    (b'"YWJj"\n', 0, "a body line"),
]


@pytest.mark.parametrize("line, id_, message", BAD_REQUESTS)
def test_a_bad_request_gets_err_and_the_server_goes_on(tmp_path: Path, line: bytes, id_: int, message: str) -> None:
    r = converse(tmp_path, put(1, AID, b"kept") + line + get(2, AID) + close(3))
    assert r[0]["ID"] == 1 and "Err" not in r[0]
    assert r[1]["ID"] == id_ and message in r[1]["Err"], r[1]
    assert r[2]["ID"] == 2 and Path(r[2]["DiskPath"]).read_bytes() == b"kept"  # nothing lost
    assert r[3] == {"ID": 3}
    assert len(r) == 4


# ------------------------------------------------------------ the compact fast path, sent bad requests

GOOD64 = b64(AID).encode()
OTHER64 = b64(bytes(32)).encode()
# Lines in (or next to) the exact form the fast path takes,
# {"ID":<digits>,"Command":"get","ActionID":"<text>"}: each must be answered
# as the general (json) path answers the same JSON spaced out, and the
# server must go on.  The message the Err must carry, or None for an answer.
FAST_PATH_LINES = [
    (b'{"ID":5,"Command":"get","ActionID":"AAAA"}', "ActionID must be 32 bytes, got 3"),
    (b'{"ID":5,"Command":"get","ActionID":""}', "ActionID must be 32 bytes, got 0"),
    (b'{"ID":5,"Command":"get","ActionID":"!!notbase64"}', "ActionID is not valid base64"),
    (b'{"ID":5,"Command":"get","ActionID":"%s"}' % GOOD64[:-1], "ActionID is not valid base64"),  # padding cut
    (b'{"ID":5,"Command":"get","ActionID":"%s="}' % GOOD64, "ActionID is not valid base64"),  # padding added
    (b'{"ID":5,"Command":"get","ActionID":"%s"}' % GOOD64.replace(b"+", b"-").replace(b"/", b"_"), None),  # urlsafe
    (b'{"ID":5,"Command":"get","ActionID":"%s"}' % b64(b"\xfb\xff" * 16).encode().replace(b"+", b"-"),
     "ActionID is not valid base64"),
    (b'{"ID":5,"Command":"get","ActionID":"%s"}' % b64(bytes(33)).encode(), "ActionID must be 32 bytes, got 33"),
    (b'{"ID":5,"Command":"get","ActionID":"\\u0041%s"}' % GOOD64[1:], None),  # a JSON escape: the json path decodes it
    (b'{"ID":5,"Command":"get","ActionID":"%s","Extra":"x"}' % GOOD64, None),  # another field after it
    (b'{"ID":5,"Command":"get","ActionID":"%s"} "}' % GOOD64, "not JSON"),  # trailing junk that ends like one
    (b'{"ID":-5,"Command":"get","ActionID":"%s"}' % GOOD64, None),  # a negative ID: json reads an integer
    (b'{"ID":5.0,"Command":"get","ActionID":"%s"}' % GOOD64, "ID missing or not an integer"),
    (b'{"ID":05,"Command":"get","ActionID":"%s"}' % GOOD64, "not JSON"),  # a leading zero is not JSON
    (b'{"ID":,"Command":"get","ActionID":"%s"}' % GOOD64, "not JSON"),
    (b'{"ID":5 ,"Command":"get","ActionID":"%s"}' % GOOD64, None),
    (b'{"ID":%s,"Command":"get","ActionID":"%s"}' % (b"9" * 30, GOOD64), None),  # past int64: json still reads it
    (b'{"ID":5,"Command":"get","ActionID":"%s"}' % OTHER64, None),  # a plain miss, for contrast
    (b'{"ID":5,"Command":"close"}', None),  # the compact close: ends the session
    (b'{"ID":5,"Command":"close","X":1}', None),
    (b'{"ID":-5,"Command":"close"}', None),
]


def _spaced(line: bytes) -> bytes:
    """The same JSON, not in the fast path's exact form."""
    return b"{ " + line[1:]


def _session(tmp: Path, line: bytes) -> list[dict[str, Any]]:
    return converse(tmp, put(1, AID, b"kept") + line + b"\n\n" + get(2, AID) + close(3))


def _comparable(answer: dict[str, Any]) -> dict[str, Any]:
    """An answer with what two sessions on two directories may differ in
    made equal: the DiskPath's directory and the entry's time (kept: that
    there is one)."""
    out = dict(answer)
    if "DiskPath" in out:
        out["DiskPath"] = "/".join(Path(out["DiskPath"]).parts[-2:])
    if "Time" in out:
        out["Time"] = "set"
    return out


@pytest.mark.parametrize("line, message", FAST_PATH_LINES)
def test_the_fast_path_answers_bad_requests_as_the_json_path(tmp_path: Path, line: bytes, message: str | None) -> None:
    """Sent bad (and odd but valid) requests in its exact form, the fast
    path answers each as the json path answers the same request spaced
    out - the same object, or an Err with the same ID and reason - and the
    server goes on: the put before it is still served."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    fast, slow = _session(tmp_path / "a", line), _session(tmp_path / "b", _spaced(line))
    assert fast[0]["ID"] == 1 and "Err" not in fast[0]
    if message is not None:
        assert message in fast[1]["Err"], fast[1]
        assert fast[1]["ID"] == slow[1]["ID"] and message in slow[1]["Err"], (fast[1], slow[1])
    else:
        assert "Err" not in fast[1], fast[1]
        assert _comparable(fast[1]) == _comparable(slow[1])
    closed = b'"close"' in line
    assert len(fast) == len(slow) == (2 if closed else 4), fast
    if not closed:
        assert fast[2]["ID"] == 2 and Path(fast[2]["DiskPath"]).read_bytes() == b"kept"  # nothing lost
        assert fast[3] == {"ID": 3}


_ACTION_TEXT = st.text(alphabet="AQgw+/=_-\\\"u0 ", max_size=50) | st.sampled_from([GOOD64.decode(), OTHER64.decode()])


@given(id_text=st.sampled_from(["0", "7", "-1", "07", "1e2", "", "99999999999999999999", " 3"]), action=_ACTION_TEXT)
def test_the_fast_path_agrees_with_the_json_path_on_any_get(tmp_path_factory: pytest.TempPathFactory,
                                                             id_text: str, action: str) -> None:
    """Any text where the go command puts the ID and the ActionID: the
    compact line and its spaced twin get the same answer, or both an Err
    with the same ID."""
    line = b'{"ID":%s,"Command":"get","ActionID":"%s"}' % (id_text.encode(), action.encode())
    fast = _session(tmp_path_factory.mktemp("a"), line)
    slow = _session(tmp_path_factory.mktemp("b"), _spaced(line))
    assert len(fast) == len(slow)
    for f, s in zip(fast, slow):
        if "Err" in f or "Err" in s:
            assert "Err" in f and "Err" in s and f["ID"] == s["ID"], (f, s)
        else:
            assert _comparable(f) == _comparable(s)


def test_a_put_whose_body_is_missing_loses_the_next_request(tmp_path: Path) -> None:
    """No: the line that came instead of the body is served as a request."""
    header = json.dumps({"ID": 1, "Command": "put", "ActionID": b64(AID),
                         "OutputID": b64(AID), "BodySize": 5}).encode() + b"\n\n"
    r = converse(tmp_path, header + get(2, AID))
    assert r[0]["ID"] == 1 and "no body line followed" in r[0]["Err"]
    assert r[1] == {"ID": 2, "Miss": True}


def test_input_ending_inside_a_put(tmp_path: Path) -> None:
    header = json.dumps({"ID": 1, "Command": "put", "ActionID": b64(AID),
                         "OutputID": b64(AID), "BodySize": 5}).encode() + b"\n"
    r = converse(tmp_path, header)
    assert r[0]["ID"] == 1 and "input ended before the body" in r[0]["Err"]


def test_a_failed_write_is_an_err_response(tmp_path: Path) -> None:
    sub = AID.hex()[:2]
    cache = GoCache(str(tmp_path / "cache"))
    os.rmdir(os.path.join(cache.dir, sub))
    Path(cache.dir, sub).write_text("a file where a directory should be")
    r = converse(tmp_path, put(1, AID, b"x") + put(2, b"\xab" * 32, b"y") + close(3))
    assert r[0]["ID"] == 1 and "WriteError" in r[0]["Err"], r[0]
    assert "Err" not in r[1] and Path(r[1]["DiskPath"]).read_bytes() == b"y"


@given(st.lists(st.tuples(st.sampled_from(["get", "put", "junk"]), st.integers(0, 3), st.binary(max_size=64)), max_size=25))
def test_every_request_gets_one_answer_and_gets_see_puts(tmp_path_factory: pytest.TempPathFactory,
                                                         ops: list[tuple[str, int, bytes]]) -> None:
    """A model: a dict from action to body.  Every line gets exactly one
    response in order; a get hits exactly when a put of that action came
    before, and its file holds the last body put."""
    tmp = tmp_path_factory.mktemp("conv")
    model: dict[bytes, bytes] = {}
    data, expect = b"", []
    for i, (op, key, body) in enumerate(ops, start=1):
        aid = bytes([key]) * 32
        if op == "get":
            data += get(i, aid)
            expect.append(("get", i, model.get(aid)))
        elif op == "put":
            data += put(i, aid, body)
            model[aid] = body
            expect.append(("put", i, body))
        else:
            data += b'{"ID": %d, "Command": "get", "ActionID": 5}\n' % i
            expect.append(("err", i, None))
    r = converse(tmp, data + close(len(ops) + 1))
    assert len(r) == len(ops) + 1
    for (kind, i, want), resp in zip(expect, r):
        assert resp["ID"] == i
        if kind == "err":
            assert "Err" in resp
        elif kind == "put":
            assert "Err" not in resp
        elif want is None:
            assert resp == {"ID": i, "Miss": True}
        else:
            assert Path(resp["DiskPath"]).read_bytes() == want


# ------------------------------------------------------------ as a command


def serve_cmd(args: list[str], data: bytes, **env: str) -> subprocess.CompletedProcess[bytes]:
    """Run the server as the go command does, with ``env`` added to an
    environment that does not ask for statistics."""
    full = {k: v for k, v in os.environ.items() if k != "IDEMWRITE_VERBOSE"}
    full.update(env, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "reference.gocacheprog", *args], input=data,
                          capture_output=True, env=full, timeout=60)


SESSION = put(1, AID, b"abc") + get(2, AID) + get(3, bytes(32)) + close(4)
COUNTS = b"2 gets, 1 hits (1 from the summary), 1 puts, 3 bytes put, 0 errors"


def test_command_is_quiet_when_all_is_well(tmp_path: Path) -> None:
    """The go command passes our stderr to the person's terminal (and to
    tools reading go list's stderr): a session where nothing failed prints
    nothing there."""
    r = serve_cmd(["--dir", str(tmp_path)], SESSION)
    assert r.returncode == 0
    assert r.stdout.splitlines()[0] == KNOWN_COMMANDS.strip() and len(r.stdout.splitlines()) == 5
    assert r.stderr == b""


@pytest.mark.parametrize("how", ["--verbose", "-v", "IDEMWRITE_VERBOSE=1", "IDEMWRITE_VERBOSE=yes"])
def test_verbose_prints_the_counts(tmp_path: Path, how: str) -> None:
    args, env = (["--dir", str(tmp_path)], {}) if "=" in how else (["--dir", str(tmp_path), how], {})
    if "=" in how:
        env = dict([how.split("=")])
    r = serve_cmd(args, SESSION, **env)
    assert r.returncode == 0 and COUNTS in r.stderr and len(r.stderr.splitlines()) == 1, r.stderr


def test_verbose_off_in_the_environment_is_quiet(tmp_path: Path) -> None:
    assert serve_cmd(["--dir", str(tmp_path)], SESSION, IDEMWRITE_VERBOSE="0").stderr == b""
    assert serve_cmd(["--dir", str(tmp_path)], SESSION, IDEMWRITE_VERBOSE="").stderr == b""


def test_command_ends_cleanly_at_eof(tmp_path: Path) -> None:
    r = serve_cmd([f"--dir={tmp_path}"], get(1, AID))
    assert r.returncode == 0 and r.stderr == b"" and json.loads(r.stdout.splitlines()[1]) == {"ID": 1, "Miss": True}
    r = serve_cmd([f"--dir={tmp_path}", "--verbose"], get(1, AID))
    assert r.returncode == 0 and b"1 gets, 0 hits" in r.stderr


def failing_puts(cache_dir: Path, n: int) -> bytes:
    """``n`` puts whose index entries go to subdirectory ``ab``, and that
    subdirectory replaced by a file (ENOTDIR for every one of them)."""
    GoCache(str(cache_dir))
    (cache_dir / "ab").rmdir()
    (cache_dir / "ab").write_text("a file where a directory should be")
    return b"".join(put(i, b"\xab" + bytes([i]) * 31, b"body %d" % i) for i in range(1, n + 1))


@pytest.mark.parametrize("n", [1, 7])
def test_one_stderr_line_per_kind_of_failure(tmp_path: Path, n: int) -> None:
    """However many requests fail the same way, one line says so, with the
    count and the first message; a second kind of failure is a second line.
    Printed at the end of the session (the count needs all of it); each
    request has had its Err answer already."""
    data = failing_puts(tmp_path / "cache", n) + b"not json\n" * 3 + put(99, AID, b"fine") + close(100)
    r = serve_cmd(["--dir", str(tmp_path / "cache")], data)
    answers = [json.loads(line) for line in r.stdout.splitlines()[1:]]
    assert r.returncode == 0 and len(answers) == n + 3 + 2
    assert all("ENOTDIR" in a["Err"] for a in answers[:n]) and "Err" not in answers[-2]
    lines = r.stderr.decode().splitlines()
    assert len(lines) == 2, lines
    assert "writes failed with ENOTDIR" in lines[0] and f": {n} in this session" in lines[0], lines
    assert "put request 1 failed" in lines[0] and "ENOTDIR" in lines[0]
    assert "malformed" in lines[1] and ": 3 in this session" in lines[1], lines
    verbose = serve_cmd(["--dir", str(tmp_path / "cache"), "--verbose"], failing_puts(tmp_path / "c2", n))
    assert len(verbose.stderr.splitlines()) == 2 and f"{n} errors" in verbose.stderr.decode()


def test_one_stderr_line_for_puts_into_an_immutable_directory(tmp_path: Path) -> None:
    """The same with EPERM from a subdirectory made immutable (``chattr
    +i``: permission bits do not bind root; skipped where the file system
    or the machine does not support it)."""
    cache = tmp_path / "cache"
    GoCache(str(cache))
    sub = cache / "cd"
    if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(sub)], capture_output=True).returncode:
        pytest.skip("chattr +i is not supported here")
    try:
        data = b"".join(put(i, b"\xcd" + bytes([i]) * 31, b"body %d" % i) for i in range(1, 6)) + close(9)
        r = serve_cmd(["--dir", str(cache)], data)
    finally:
        subprocess.run(["chattr", "-i", str(sub)], check=True)
    answers = [json.loads(line) for line in r.stdout.splitlines()[1:]]
    assert len(answers) == 6 and all("Err" in a for a in answers[:5])
    lines = r.stderr.decode().splitlines()
    assert len(lines) == 1 and ": 5 in this session" in lines[0] and ("EPERM" in lines[0] or "EACCES" in lines[0]), lines


@pytest.mark.parametrize("args, message", [
    ([], b"--dir is required"),
    (["--dir"], b"--dir needs a value"),
    (["--dir", "x", "--fast"], b"unknown argument '--fast'"),
    (["--dir", "x", "--protocol", "no-such"], b"cannot write a cache file"),
    (["--dir", "x", "--protocol", "go-put"], b"cannot write a cache file"),
])
def test_command_refuses_bad_usage(tmp_path: Path, args: list[str], message: bytes) -> None:
    r = serve_cmd(args, b"")
    assert r.returncode == 2 and message in r.stderr and r.stdout == b""


def test_parse_args() -> None:
    assert parse_args(["--dir", "d"]) == ("d", "write-then-truncate", False)
    assert parse_args(["--protocol=write-file", "--dir=d"]) == ("d", "write-file", False)
    assert parse_args(["--", "--dir", "d", "--verbose"]) == ("d", "write-then-truncate", True)
