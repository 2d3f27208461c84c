"""Edges of the GOCACHEPROG server and of the cache directory it writes.

Promises checked (each test's docstring says which):

- the server: a request line longer than any the go command sends, or a
  request with an absurdly long command name, gets one Err and the server
  goes on; a body whose base64 line is longer than a request line may be
  still round-trips; outputs up to ``STREAM_AT`` (16 MiB) are written by
  the catalogue protocol ``--protocol`` names; a large output that is
  already complete is left alone, not rewritten; no streamed write follows
  a link out of the cache directory; a get of an entry the session has
  seen is answered from the summary whatever the width of its ID, and a
  summary answer refreshes an index entry over an hour old, as Go's
  markUsed would; an unknown ``--protocol`` is refused with exit 2;
- the cache (``GoCache``): a subdirectory that is a link (at open) is never
  read or written through, for index entries and for outputs alike; a
  subdirectory that is missing is a miss that says so, and not a problem
  for ``verify``.

Sessions run in-process on ``Server`` over two files (fast); only the
command-line check spawns the module.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from goreq import b64
from goreq import close_req as close
from goreq import get_req as get
from goreq import put_req as put
from reference.errors import UnsafePathError
from reference.gocache import MTIME_INTERVAL_NS, GoCache, Miss
from reference.gocacheprog import MAX_LINE, STREAM_AT, USAGE, BadRequest, Server, Stats, _private_name, parse_options
from reference.osrun import private_name

REPO = Path(__file__).resolve().parent.parent
AID = bytes(range(32))  # its index entry lives in DIR/00
AID2 = b"\x01" * 32


class OneAnswerEach(Stats):
    """Stats that fail the test as soon as the session reports more
    failures than requests were sent: a server answering the same line
    over and over would otherwise never end."""

    def __init__(self, requests: int) -> None:
        super().__init__()
        self._requests = requests

    def failed(self, kind: str, message: str) -> None:
        super().failed(kind, message)
        if self.errors > self._requests:
            raise AssertionError(f"{self.errors} failures for {self._requests} requests: {message}")


def session(cache: GoCache, data: bytes, tmp: Path, **kw: Any) -> tuple[list[dict[str, Any]], Server]:
    """Serve ``data`` (at most 20 requests) in-process; the answers and the server."""
    (tmp / "in").write_bytes(data)
    infd = os.open(tmp / "in", os.O_RDONLY)
    outfd = os.open(tmp / "out", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        server = Server(cache, infd, outfd, **kw)
        server.stats = OneAnswerEach(20)
        server.serve()
    finally:
        os.close(infd)
        os.close(outfd)
    return [json.loads(line) for line in (tmp / "out").read_bytes().splitlines()], server


def output_path(cache: GoCache, body: bytes) -> Path:
    return Path(cache.file_name(hashlib.sha256(body).digest(), "d"))


# ------------------------------------------------------------ bad input, long lines


def test_an_overlong_request_line_gets_one_err_and_the_server_goes_on(tmp_path: Path) -> None:
    """A line longer than MAX_LINE is skipped (in pieces), answered once
    with Err under the ID found at its start, and the requests after it
    are served."""
    cache = GoCache(str(tmp_path / "c"))
    long_line = b'{"ID":7,"Command":"get","ActionID":"' + b"A" * (MAX_LINE + 100) + b'"}\n'
    r, _ = session(cache, put(1, AID, b"kept") + long_line + get(2, AID) + close(3), tmp_path)
    assert [a["ID"] for a in r] == [1, 7, 2, 3]
    assert "longer than" in r[1]["Err"]
    assert Path(r[2]["DiskPath"]).read_bytes() == b"kept"


def test_an_absurdly_long_command_is_clipped_in_its_err(tmp_path: Path) -> None:
    """An unknown command of a thousand characters: an Err of bounded
    length under its ID that still says why (the command's echo is
    clipped, marked with ..., not the reason), and the server goes on."""
    cache = GoCache(str(tmp_path / "c"))
    line = json.dumps({"ID": 5, "Command": "x" * 1000}).encode() + b"\n"
    r, _ = session(cache, line + get(6, AID) + close(7), tmp_path)
    err = r[0]["Err"]
    assert r[0]["ID"] == 5 and err.startswith("xxx") and "x" * 81 not in err, err
    assert err.endswith("; known: get, put, close") and "unknown command 'xxx" in err and "...'..." not in err
    assert len(err) < 250
    assert r[1:] == [{"ID": 6, "Miss": True}, {"ID": 7}]


# ------------------------------------------------------------ puts: which writer, large bodies


class RecordingCache(GoCache):
    """A GoCache that notes the outputs written by the catalogue protocol."""

    def __init__(self, dir: str) -> None:
        super().__init__(dir)
        self.catalogue_writes: list[int] = []

    def put_output(self, output_id: bytes, data: bytes) -> str:
        self.catalogue_writes.append(len(data))
        return super().put_output(output_id, data)


def test_outputs_up_to_stream_at_go_through_the_catalogue_protocol(tmp_path: Path) -> None:
    """--protocol names the writer of outputs up to STREAM_AT (16 MiB,
    as the usage says): a 1 MiB output, whose body line is far longer than
    a request line may be, is written by it and round-trips."""
    assert STREAM_AT == 16 << 20
    body = os.urandom(1 << 20)
    cache = RecordingCache(str(tmp_path / "c"))
    r, _ = session(cache, put(1, AID, body) + get(2, AID) + close(3), tmp_path)
    assert "Err" not in r[0], r[0]
    assert cache.catalogue_writes == [len(body)]
    assert r[1]["Size"] == len(body) and Path(r[1]["DiskPath"]).read_bytes() == body


def test_a_body_line_longer_than_a_request_line_round_trips(tmp_path: Path) -> None:
    """A 100 kB output: its base64 line is over MAX_LINE, yet it is a
    valid body for its BodySize and is stored, not refused."""
    body = os.urandom(100_000)
    assert len(base64.b64encode(body)) > MAX_LINE
    cache = GoCache(str(tmp_path / "c"))
    r, _ = session(cache, put(1, AID, body) + get(2, AID) + close(3), tmp_path)
    assert "Err" not in r[0], r[0]
    assert Path(r[1]["DiskPath"]).read_bytes() == body


def test_a_complete_streamed_output_is_left_alone(tmp_path: Path) -> None:
    """A streamed output whose complete file (right size: the same bytes,
    names being hashes) is already there is not written again: the file
    another reader may have open stays the same file.  A partial one under
    the name is replaced."""
    body = b"large output " * 100
    cache = GoCache(str(tmp_path / "c"))
    out = output_path(cache, body)
    out.write_bytes(body[:10])  # a partial output, from a writer that died
    r, _ = session(cache, put(1, AID, body), tmp_path, stream_at=16)
    assert "Err" not in r[0] and out.read_bytes() == body
    inode = out.stat().st_ino
    r, _ = session(cache, put(2, AID2, body), tmp_path, stream_at=16)
    assert "Err" not in r[0] and r[0]["DiskPath"] == str(out)
    assert out.stat().st_ino == inode and out.read_bytes() == body


def test_a_streamed_output_has_the_mode_of_any_other_output(tmp_path: Path) -> None:
    """An output streamed to an unnamed file gets 0666 less the umask, as
    the catalogue's writers and Go give every output (no execute bits)."""
    body = b"large output " * 100
    cache = GoCache(str(tmp_path / "c"))
    mask = os.umask(0o022)
    try:
        r, _ = session(cache, put(1, AID, body), tmp_path, stream_at=16)
    finally:
        os.umask(mask)
    assert "Err" not in r[0] and output_path(cache, body).read_bytes() == body
    assert stat.S_IMODE(output_path(cache, body).stat().st_mode) == 0o644


def test_a_streamed_output_never_follows_a_linked_subdirectory(tmp_path: Path) -> None:
    """The output's subdirectory replaced by a link to elsewhere: the
    streamed put is an Err and nothing is written where the link points."""
    body = b"large output " * 100
    cache = GoCache(str(tmp_path / "c"))
    out = output_path(cache, body)
    assert out.parent.name != "00"  # AID's index entry goes elsewhere
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out.parent.rmdir()
    out.parent.symlink_to(elsewhere)
    r, _ = session(cache, put(1, AID, body) + close(2), tmp_path, stream_at=16)
    assert r[0]["ID"] == 1 and "Err" in r[0]
    assert r[1] == {"ID": 2}
    assert list(elsewhere.iterdir()) == []


# ------------------------------------------------------------ gets from the summary


def test_a_seen_entry_is_answered_from_the_summary_whatever_its_id(tmp_path: Path) -> None:
    """After a put, gets of its action (the go command's IDs soon have
    several digits) are answered from the summary, as the json path would
    answer them."""
    cache = GoCache(str(tmp_path / "c"))
    spaced = b'{ "ID": 14, "Command": "get", "ActionID": "%s" }\n' % b64(AID).encode()
    r, server = session(cache, put(1, AID, b"body") + get(12, AID) + get(3, AID) + spaced + close(15), tmp_path)
    assert server.stats.summary_hits == 2 and server.stats.hits == 3
    assert {**r[1], "ID": 14} == {**r[2], "ID": 14} == r[3]
    assert r[1]["DiskPath"] == r[0]["DiskPath"] and r[4] == {"ID": 15}


def test_a_summary_answer_refreshes_an_old_index_entry(tmp_path: Path) -> None:
    """Go's markUsed: an index entry used when over an hour old gets a
    fresh mtime (so trim keeps what builds still use), also when the get
    was answered from the summary (refreshed after the last answer)."""
    clock = [time.time_ns()]
    cache = GoCache(str(tmp_path / "c"), now_ns=lambda: clock[0])
    _, server = session(cache, put(1, AID, b"body"), tmp_path)
    server.summary.finish(cache.now_ns())
    clock[0] += 2 * MTIME_INTERVAL_NS
    r, server = session(cache, get(2, AID), tmp_path, load_summary_after=0)
    assert "DiskPath" in r[0] and server.stats.summary_hits == 1
    server.summary.finish(cache.now_ns())
    assert os.stat(cache.file_name(AID, "a")).st_mtime_ns == clock[0]


# ------------------------------------------------------------ the command line


def test_an_unknown_protocol_is_refused_whatever_its_name(tmp_path: Path) -> None:
    """A --protocol that names no catalogue writer (here one sorting after
    the default) is bad usage: exit 2, the usable ones named, nothing served."""
    r = subprocess.run([sys.executable, "-m", "reference.gocacheprog", "--dir", str(tmp_path / "c"),
                        "--protocol", "zz-no-such"], input=b"", capture_output=True, timeout=60,
                       env={**os.environ, "PYTHONPATH": str(REPO)})
    assert r.returncode == 2 and b"cannot write a cache file" in r.stderr and r.stdout == b""


def test_the_command_answers_on_stdout_and_says_nothing_on_stderr(tmp_path: Path) -> None:
    """The command (``python -m reference.gocacheprog``) serves on its
    stdin and stdout; stderr, the person's terminal, stays empty."""
    r = subprocess.run([sys.executable, "-m", "reference.gocacheprog", "--dir", str(tmp_path / "c")],
                       input=b'{"ID":1,"Command":"close"}\n', capture_output=True, timeout=60,
                       env={**os.environ, "PYTHONPATH": str(REPO)})
    assert r.returncode == 0 and r.stderr == b""
    assert r.stdout == b'{"ID":0,"KnownCommands":["get","put","close"]}\n{"ID":1}\n'


def test_a_double_dash_is_skipped_and_a_lone_dash_refused() -> None:
    """``--`` (which some wrappers pass through) is no argument; ``-`` is
    an unknown one."""
    assert parse_options(["--", "--dir", "D", "--"]).dir == "D"
    with pytest.raises(BadRequest, match="unknown argument '-'"):
        parse_options(["--dir", "D", "-"])


# ------------------------------------------------------------ GoCache: linked and missing subdirectories


def test_a_linked_subdirectory_is_never_read_or_written_through(tmp_path: Path) -> None:
    """DIR/00 a link (before the cache is opened) to a directory holding
    a valid entry: lookups miss and say why, puts are refused, and nothing
    is read from or written to where the link points."""
    donor = GoCache(str(tmp_path / "donor"))
    donor.put(AID, b"from elsewhere")
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "00").symlink_to(tmp_path / "donor" / "00")
    before = sorted(os.listdir(tmp_path / "donor" / "00"))
    cache = GoCache(str(tmp_path / "c"))
    got = cache.lookup(AID)
    assert isinstance(got, Miss) and "not a directory of the cache" in got.reason
    assert cache.get(AID) is None and cache.get_file(AID) is None
    with pytest.raises(UnsafePathError):
        cache.put_index(AID, hashlib.sha256(b"x").digest(), 1)
    assert sorted(os.listdir(tmp_path / "donor" / "00")) == before


def test_an_output_in_a_linked_subdirectory_is_a_miss(tmp_path: Path) -> None:
    """An entry in a real subdirectory whose output's subdirectory is a
    link to a file of the right size: get_file and get_bytes miss (the go
    command would read the DiskPath unchecked)."""
    body = b"output behind a link"
    output_id = hashlib.sha256(body).digest()
    assert output_id[0] >= 0x10
    cache = GoCache(str(tmp_path / "c"))
    sub = Path(cache.file_name(output_id, "d")).parent
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / Path(cache.file_name(output_id, "d")).name).write_bytes(body)
    sub.rmdir()
    sub.symlink_to(elsewhere)
    cache = GoCache(str(tmp_path / "c"))
    cache.put_index(AID, output_id, len(body))
    assert cache.get(AID) is not None  # the entry itself is fine
    assert cache.get_file(AID) is None and cache.get_bytes(AID) is None


def test_a_missing_subdirectory_is_a_miss_and_no_problem_for_verify(tmp_path: Path) -> None:
    """A cache opened without creating (read-only use) where DIR/00 is
    missing: a lookup there misses saying the subdirectory is not there,
    and verify, which names files, reports nothing."""
    GoCache(str(tmp_path / "c")).put(AID2, b"in 01")
    (tmp_path / "c" / "00").rmdir()
    cache = GoCache(str(tmp_path / "c"), create=False)
    got = cache.lookup(AID)
    assert isinstance(got, Miss) and "not a directory of the cache" in got.reason
    report = cache.verify()
    assert report.ok, report.problems
    assert report.entries == 1


# ------------------------------------------------------------ commands, body lines, the report


def test_only_close_ends_a_session_even_for_commands_that_sort_before_it(tmp_path: Path) -> None:
    """An unknown command ("abort", "": both sort before "close") gets an
    Err that names it, and the requests after it are served: only close
    ends the session."""
    cache = GoCache(str(tmp_path / "c"))
    unknown = b"".join(json.dumps({"ID": i, "Command": c}).encode() + b"\n\n" for i, c in ((5, "abort"), (6, "")))
    r, _ = session(cache, unknown + get(7, AID) + close(8), tmp_path)
    assert [a["ID"] for a in r] == [5, 6, 7, 8]
    assert "unknown command 'abort'" in r[0]["Err"] and "unknown command ''" in r[1]["Err"]
    assert r[2:] == [{"ID": 7, "Miss": True}, {"ID": 8}]


def test_a_streamed_body_that_ends_the_input_without_a_newline_is_whole(tmp_path: Path) -> None:
    """Input that stops right after a streamed body's closing quote, with
    no newline (the go command's stdin closed): the body is complete, so
    the put is stored and answered.  The body line is longer than a
    request line may be, so it is read in pieces."""
    body = b"large output " * 8000
    assert len(base64.b64encode(body)) > MAX_LINE
    cache = GoCache(str(tmp_path / "c"))
    data = put(1, AID, body)
    assert data.endswith(b'"\n')
    r, _ = session(cache, data[:-1], tmp_path, stream_at=16)
    assert len(r) == 1 and "Err" not in r[0], r
    assert output_path(cache, body).read_bytes() == body


def test_a_streamed_body_with_anything_after_its_closing_quote_is_refused(tmp_path: Path) -> None:
    """A body line is a JSON string and nothing more: one stray character
    after the closing quote makes the put an Err that stores nothing, and
    the next request is served."""
    body = b"large output " * 100
    cache = GoCache(str(tmp_path / "c"))
    r, _ = session(cache, put(1, AID, body)[:-1] + b"x\n" + get(2, AID) + close(3), tmp_path, stream_at=16)
    assert r[0]["ID"] == 1 and "Err" in r[0]
    assert r[1:] == [{"ID": 2, "Miss": True}, {"ID": 3}]
    assert not output_path(cache, body).exists()


def test_the_verbose_report_counts_the_session_and_its_cpu(tmp_path: Path) -> None:
    """The line --verbose prints at the end: gets, hits, puts, bytes put,
    errors, and the server's own CPU time in whole milliseconds."""
    cache = GoCache(str(tmp_path / "c"))
    _, server = session(cache, put(1, AID, b"kept") + get(2, AID) + close(3), tmp_path)
    line = server.stats.render()
    assert re.fullmatch(r"idemwrite gocacheprog: 1 gets, 1 hits \(\d+ from the summary\), 1 puts, 4 bytes put, "
                        r"0 errors, \d+ ms CPU", line), line


def test_the_remote_waits_default_to_the_documented_seconds() -> None:
    """--remote-timeout defaults to 10 s and --remote-upload-wait to 60 s,
    as the usage text (and the README) says; an explicit value is taken as
    given."""
    assert "--remote-timeout seconds (default 10)" in " ".join(USAGE.split())
    assert "--remote-upload-wait seconds, default 60)" in " ".join(USAGE.split())
    opts = parse_options(["--dir", "d", "--remote", "s3://b/p"])
    assert opts.remote_timeout == 10.0 and opts.remote_upload_wait == 60.0
    assert parse_options(["--dir", "d", "--remote", "s3://b/p", "--remote-timeout", "2.5"]).remote_timeout == 2.5


def test_the_servers_temporary_names_are_as_random_as_the_runners() -> None:
    """A streamed output's temporary name is, as the production runner's,
    ``<base>.<pid>.<8 hex digits>``: 32 random bits, so that two threads
    of one server (the remote tier fetches from threads) never pick the
    same name."""
    pid = os.getpid()
    assert re.fullmatch(rf"/d/x\.{pid}\.[0-9a-f]{{8}}\.tmp", _private_name("/d/x"))
    assert re.fullmatch(rf"/d/x\.{pid}\.[0-9a-f]{{8}}", private_name("/d/x"))


def test_without_o_tmpfile_a_streamed_output_goes_through_a_private_temp_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On a file system without O_TMPFILE the streamed output is written to
    a private temp file beside it and renamed: the put round-trips and no
    temp file is left behind."""
    import reference.gocacheprog as gp

    monkeypatch.setattr(gp, "_TMPFILE", 0)
    body = b"large output " * 100
    cache = GoCache(str(tmp_path / "c"))
    r, _ = session(cache, put(1, AID, body) + get(2, AID) + close(3), tmp_path, stream_at=16)
    out = output_path(cache, body)
    assert "Err" not in r[0] and r[1]["DiskPath"] == str(out) and out.read_bytes() == body
    assert [p.name for p in out.parent.iterdir()] == [out.name]
