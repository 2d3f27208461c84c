"""Real faults from the kernel: every write path fails cleanly and destroys nothing published.

The faults are the kernel's own, made the way they happen to people:

- EFBIG: ``RLIMIT_FSIZE`` in a forked child that ignores SIGXFSZ (so the
  write returns EFBIG instead of killing the process);
- EACCES: a forked child that drops to an unprivileged uid (we run as root,
  where permission bits do not bind; without root, the bits themselves);
- EROFS: a read-only bind mount (``mount --bind`` + ``remount,ro,bind``);
- EPERM: ``chattr -R +i`` (immutable files and directories);
- ENOSPC: a small tmpfs, full of data (a write fails) or out of inodes (a
  create fails);
- ENOTDIR, EISDIR: a file where a directory should be, a directory where a
  file should be.

Each kind is applied to one directory holding *published* state: a Go cache
with action A put (index entry and output), a file P written by
``write_entry``, and the server's summary holding A's fact.  Then each write
path runs under the fault - ``write_entry`` (rewriting P, writing a new
file), ``GoCache.put`` (rewriting A, putting a new action; its output is
written first), ``GoCache.put_index`` (the index entry alone), ``GoCache.trim``
(trim.txt), ``Summary.finish`` (the summary, rename-into-place) and the
server (a put of A and of a new action, then a get of A) - and must either
succeed (the fault does not reach it: rewriting the same bytes in place
needs no new block) or fail with the expected errno as a clear exception (a
``WriteError`` naming the failing call, an ``OSError`` with the path) or, for
the server, an ``Err`` response.  Afterwards every published item still
reads back whole.

Known-bad twins: ``write-file`` (O_TRUNC first) and ``go-index-entry`` (remove
on error) under EFBIG, and ``write-file`` under ENOSPC with another file
taking the blocks its O_TRUNC freed (stepped on real files by
``reference.osworld``), do destroy the published entry, and the same check
says so.

``python model_tests/test_faults.py`` prints the table of faults injected
(for the README's Reliability section); it needs root for the mounts.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import hashlib
import json
import os
import pickle
import re
import resource
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from reference.entry import read_entry, write_entry
from reference.errors import WriteError
from reference.gocache import GoCache
from reference.gocacheprog import run as serve
from reference.summary import Summary, fact

A = bytes(range(32))  # the published action
NEW = bytes([0xAB]) * 32  # an action put under the fault
DATA_A = b"object code of A " * 64  # 1088 bytes: more than RLIMIT_FSIZE below, less than a page
DATA_NEW = b"object code of NEW " * 64
ENTRY_BYTES = b"an entry written by write_entry\n" * 4
KEY_A = base64.b64encode(A)
NOBODY = 65534
CHILD_TIMEOUT_S = 300  # a hang guard only (a child stuck on a FIFO, say): never reached when all is well


# ------------------------------------------------------------ a published world


@dataclass
class World:
    """The published state in ``root`` and where the faulted calls write."""

    root: Path
    cache: Path = field(init=False)
    entry: Path = field(init=False)  # published by write_entry
    new_entry: Path = field(init=False)  # written under the fault
    summary_dir: Path = field(init=False)  # where Summary.finish writes under the fault
    trim_dir: Path = field(init=False)  # where GoCache.trim writes under the fault

    def __post_init__(self) -> None:
        self.cache = self.root / "cache"
        self.entry = self.root / "entries" / "published"
        self.new_entry = self.root / "entries" / "new"
        self.summary_dir = self.trim_dir = self.cache

    def publish(self) -> None:
        cache = GoCache(str(self.cache))
        cache.put(A, DATA_A)
        self.entry.parent.mkdir()
        write_entry(self.entry, ENTRY_BYTES)
        summary = Summary(str(self.cache))
        summary.load()
        out = hashlib.sha256(DATA_A).hexdigest().encode()
        summary.learn(KEY_A, fact(time.time_ns(), len(DATA_A), out, answer_of(DATA_A)))
        summary.finish(time.time_ns())
        cache.trim(force=True)

    def destroyed(self) -> list[str]:
        """The published items that no longer read back whole."""
        lost = []
        got = GoCache(str(self.cache), create=False).get_bytes(A)
        if got is None or got[0] != DATA_A:
            lost.append("cache entry A")
        if read_entry(self.entry, len(ENTRY_BYTES)) != ENTRY_BYTES:
            lost.append("write_entry file")
        summary = Summary(str(self.cache))
        summary.load()
        if summary.get(KEY_A) is None:
            lost.append("summary fact of A")
        return lost


def answer_of(data: bytes) -> bytes:
    """The server's answer for a hit on ``data`` (the summary stores it)."""
    from reference.gocache import Entry
    from reference.gocacheprog import _answer

    return _answer(Entry(hashlib.sha256(data).digest(), len(data), time.time_ns()))


# ------------------------------------------------------------ running a call in a child


def in_child(fn: Callable[[], object], *, fsize: int | None = None, uid: int | None = None) -> tuple[str, object]:
    """Run ``fn`` in a forked child, with a file-size limit (SIGXFSZ
    ignored, so the write returns EFBIG) or as another user; ("returned",
    value) or ("raised", exception)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        try:
            os.close(r)
            if fsize is not None:
                signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
                resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
            if uid is not None:
                os.setgroups([])
                os.setgid(uid)
                os.setuid(uid)
            try:
                out: tuple[str, object] = ("returned", fn())
            except BaseException as e:  # sent back whole, for the test to judge
                out = ("raised", e)
            try:
                data = pickle.dumps(out)
            except Exception as e:
                data = pickle.dumps(("raised", RuntimeError(f"unpicklable result: {out!r}: {e}")))
            view = memoryview(data)
            while view:
                view = view[os.write(w, view):]
        finally:
            os._exit(0)
    os.close(w)
    chunks = []
    try:
        while True:
            ready, _, _ = select.select([r], [], [], CHILD_TIMEOUT_S)
            if not ready:
                os.kill(pid, signal.SIGKILL)
                raise AssertionError(f"the child hung for {CHILD_TIMEOUT_S} s (a blocking open?)")
            chunk = os.read(r, 1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(r)
        os.waitpid(pid, 0)
    result: tuple[str, object] = pickle.loads(b"".join(chunks))
    return result


def direct(fn: Callable[[], object]) -> tuple[str, object]:
    try:
        return "returned", fn()
    except Exception as e:
        return "raised", e


Runner = Callable[[Callable[[], object]], tuple[str, object]]


# ------------------------------------------------------------ the faults


def _root() -> bool:
    return os.geteuid() == 0


def _sh(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True)


def _shared_dir(base: Path) -> Path:
    """A directory an unprivileged child can reach (pytest's tmp_path is
    0700 root's): a fresh one under /tmp, made reachable."""
    d = Path(tempfile.mkdtemp(prefix="idemwrite-faults-", dir="/tmp"))
    d.chmod(0o755)
    return d


@contextlib.contextmanager
def efbig(base: Path) -> Iterator[tuple[World, Runner]]:
    world = World(base)
    world.publish()
    yield world, lambda fn: in_child(fn, fsize=4)  # smaller than any file written (trim.txt's 10 bytes too)


@contextlib.contextmanager
def eacces(base: Path) -> Iterator[tuple[World, Runner]]:
    if _root():
        d = _shared_dir(base)
        try:
            world = World(d / "w")
            world.root.mkdir()
            world.publish()
            yield world, lambda fn: in_child(fn, uid=NOBODY)
        finally:
            shutil.rmtree(d)
        return
    world = World(base)  # not root: the permission bits bind
    world.publish()
    _sh("chmod", "-R", "a-w", str(world.root))
    try:
        yield world, direct
    finally:
        _sh("chmod", "-R", "u+w", str(world.root))


@contextlib.contextmanager
def erofs(base: Path) -> Iterator[tuple[World, Runner]]:
    world = World(base)
    world.publish()
    d = str(world.root)
    bind = _sh("mount", "--bind", d, d)
    if bind.returncode != 0:
        pytest.skip(f"a read-only bind mount needs mount(2), refused here: {bind.stderr.strip()}")
    try:
        ro = _sh("mount", "-o", "remount,ro,bind", d)
        if ro.returncode != 0:
            pytest.skip(f"remounting read-only was refused: {ro.stderr.strip()}")
        yield world, direct
    finally:
        _sh("umount", "-l", d)


@contextlib.contextmanager
def eperm(base: Path) -> Iterator[tuple[World, Runner]]:
    world = World(base)
    world.publish()
    d = str(world.root)
    imm = _sh("chattr", "-R", "+i", d)
    if imm.returncode != 0:
        _sh("chattr", "-R", "-i", d)
        pytest.skip(f"chattr +i is not supported here (root and a file system with attributes, not tmpfs): "
                    f"{imm.stderr.strip()[:200]}")
    try:
        yield world, direct
    finally:
        _sh("chattr", "-R", "-i", d)


@contextlib.contextmanager
def tmpfs(base: Path, options: str) -> Iterator[Path]:
    mnt = base / "tmpfs"
    mnt.mkdir()
    m = _sh("mount", "-t", "tmpfs", "-o", options, "tmpfs", str(mnt))
    if m.returncode != 0:
        pytest.skip(f"mounting a small tmpfs was refused (not root, or no mount(2) here): {m.stderr.strip()}")
    try:
        yield mnt
    finally:
        _sh("umount", "-l", str(mnt))


def fill(mnt: Path) -> int:
    """Write into ``mnt`` until the file system refuses a byte (ENOSPC):
    every block taken.  Returns the bytes written."""
    n = 0
    with open(mnt / "filler", "ab", buffering=0) as f:
        for size in (1 << 16, 4096, 1):
            with contextlib.suppress(OSError):
                while True:
                    n += f.write(b"\0" * size)
    return n


def exhaust_inodes(mnt: Path) -> int:
    """Create empty files until the file system has no inode left."""
    n = 0
    with contextlib.suppress(OSError):
        while True:
            (mnt / f"inode-{n}").touch()
            n += 1
    return n


@contextlib.contextmanager
def enospc_blocks(base: Path) -> Iterator[tuple[World, Runner]]:
    with tmpfs(base, "size=2m") as mnt:
        world = World(mnt)
        world.publish()
        fill(mnt)
        yield world, direct


@contextlib.contextmanager
def enospc_inodes(base: Path) -> Iterator[tuple[World, Runner]]:
    with tmpfs(base, "size=8m,nr_inodes=400") as mnt:  # the cache's 256 subdirectories fit
        world = World(mnt)
        world.publish()
        exhaust_inodes(mnt)
        yield world, direct


def _output_subdir(cache: Path, data: bytes) -> Path:
    return cache / hashlib.sha256(data).hexdigest()[:2]


@contextlib.contextmanager
def enotdir(base: Path) -> Iterator[tuple[World, Runner]]:
    """A file where a directory should be: the subdirectory of the new
    output, the directory of the new entry, the summary's directory."""
    world = World(base)
    world.publish()
    sub = _output_subdir(world.cache, DATA_NEW)
    shutil.rmtree(sub)
    sub.write_bytes(b"a file where a directory should be")
    world.new_entry = world.entry.parent / "not-a-directory" / "new"
    world.new_entry.parent.write_bytes(b"a file")
    world.summary_dir = world.root / "entries" / "not-a-directory"
    yield world, direct


@contextlib.contextmanager
def eisdir(base: Path) -> Iterator[tuple[World, Runner]]:
    """A directory where a file should be: the new action's index entry,
    the new file, trim.txt and the summary (of a second cache)."""
    world = World(base)
    world.publish()
    Path(GoCache(str(world.cache)).file_name(NEW, "a")).mkdir()
    world.new_entry.mkdir()
    world.trim_dir = world.summary_dir = world.root / "cache2"
    GoCache(str(world.trim_dir))
    (world.trim_dir / "trim.txt").mkdir()
    (world.trim_dir / "idemwrite-summary").mkdir()
    yield world, direct


# ------------------------------------------------------------ the calls


def call_write_entry_rewrite(w: World) -> object:
    return write_entry(w.entry, ENTRY_BYTES)


def call_write_entry_new(w: World) -> object:
    return write_entry(w.new_entry, ENTRY_BYTES)


def call_put_rewrite(w: World) -> object:
    return GoCache(str(w.cache)).put(A, DATA_A)


def call_put_new(w: World) -> object:
    return GoCache(str(w.cache)).put(NEW, DATA_NEW)


def call_put_index(w: World) -> object:
    """The index-entry write on its own (put fails at the output first)."""
    return GoCache(str(w.cache)).put_index(NEW, hashlib.sha256(DATA_NEW).digest(), len(DATA_NEW))


def call_trim(w: World) -> object:
    return GoCache(str(w.trim_dir)).trim(force=True).removed


def call_summary_finish(w: World) -> object:
    summary = Summary(str(w.summary_dir))
    summary.load()
    out = hashlib.sha256(DATA_NEW).hexdigest().encode()
    summary.learn(base64.b64encode(NEW), fact(time.time_ns(), len(DATA_NEW), out, answer_of(DATA_NEW)))
    summary.finish(time.time_ns())
    return None


CALLS: dict[str, Callable[[World], object]] = {
    "write_entry (rewrite)": call_write_entry_rewrite,
    "write_entry (new file)": call_write_entry_new,
    "GoCache.put (rewrite)": call_put_rewrite,
    "GoCache.put (new action)": call_put_new,
    "GoCache.put_index (new entry)": call_put_index,
    "GoCache.trim": call_trim,
    "Summary.finish": call_summary_finish,
}

# kind -> (environment, the errno each call sees, None where the fault does
# not reach it, and the errnos of the server's two puts: A again, then NEW)
Env = Callable[[Path], contextlib.AbstractContextManager[tuple[World, Runner]]]
ALL = dict.fromkeys(CALLS)
KINDS: dict[str, tuple[Env, dict[str, str | None], tuple[str | None, str | None]]] = {
    "EFBIG (RLIMIT_FSIZE)": (efbig, {c: "EFBIG" for c in CALLS}, ("EFBIG", "EFBIG")),
    "EACCES (unprivileged uid)": (eacces, {c: "EACCES" for c in CALLS}, ("EACCES", "EACCES")),
    "EROFS (read-only bind mount)": (erofs, {c: "EROFS" for c in CALLS}, ("EROFS", "EROFS")),
    "EPERM (chattr +i)": (eperm, {c: "EPERM" for c in CALLS}, ("EPERM", "EPERM")),
    "ENOSPC (tmpfs full)": (enospc_blocks, {**ALL, "write_entry (new file)": "ENOSPC", "GoCache.put (new action)": "ENOSPC",
                                            "GoCache.put_index (new entry)": "ENOSPC", "Summary.finish": "ENOSPC"},
                            (None, "ENOSPC")),
    "ENOSPC (tmpfs out of inodes)": (enospc_inodes, {**ALL, "write_entry (new file)": "ENOSPC",
                                                     "GoCache.put (new action)": "ENOSPC",
                                                     "GoCache.put_index (new entry)": "ENOSPC", "Summary.finish": "ENOSPC"},
                                     (None, "ENOSPC")),
    "ENOTDIR (file for a directory)": (enotdir, {**ALL, "write_entry (new file)": "ENOTDIR",
                                                 "GoCache.put (new action)": "ENOTDIR", "Summary.finish": "ENOTDIR"},
                                       (None, "ENOTDIR")),
    "EISDIR (directory for a file)": (eisdir, {**ALL, "write_entry (new file)": "EISDIR", "GoCache.put (new action)": "EISDIR",
                                               "GoCache.put_index (new entry)": "EISDIR", "GoCache.trim": "EISDIR",
                                               "Summary.finish": "EISDIR"}, (None, "EISDIR")),
}


@dataclass
class Record:
    """One call under one fault: what the caller saw, what was lost."""

    kind: str
    call: str
    errno: str | None  # None: the call succeeded
    failed_op: str  # the failing operation, as the caller was told
    message: str
    clear: bool  # the message names the errno (or its text) and the call or file
    destroyed: list[str]


def judge(kind: str, call: str, outcome: tuple[str, object], world: World) -> Record:
    how, value = outcome
    if how == "returned":
        return Record(kind, call, None, "", "", True, world.destroyed())
    assert isinstance(value, OSError), value  # anything else is not a fault reported, it is a bug
    msg = str(value)
    if isinstance(value, WriteError):
        return Record(kind, call, value.errno_name, value.op, msg,
                      value.errno_name in msg and value.op in msg and value.path in msg, world.destroyed())
    name = errno.errorcode.get(value.errno or 0)
    clear = bool(value.strerror) and str(value.strerror) in msg and str(value.filename) in msg
    return Record(kind, call, name, f"open({os.path.basename(str(value.filename))})", msg, clear, world.destroyed())


# ------------------------------------------------------------ the server under a fault


def put_request(id_: int, aid: bytes, body: bytes) -> bytes:
    req = {"ID": id_, "Command": "put", "ActionID": base64.b64encode(aid).decode(),
           "OutputID": base64.b64encode(hashlib.sha256(body).digest()).decode(), "BodySize": len(body)}
    return json.dumps(req).encode() + b"\n\n" + b'"' + base64.b64encode(body) + b'"\n'


def get_request(id_: int, aid: bytes) -> bytes:
    return json.dumps({"ID": id_, "Command": "get", "ActionID": base64.b64encode(aid).decode()}).encode() + b"\n\n"


def server_session(world: World, run: Runner, protocol: str = "write-then-truncate") -> list[dict[str, Any]]:
    """A session of the real server under the fault: put A again, put NEW,
    get A, close.  The responses after the announcement.  Its output and
    stderr are pipes (a file-size limit does not apply to them; the few
    kilobytes fit in a pipe's buffer, read once the session is over)."""
    io = Path(tempfile.mkdtemp(prefix="idemwrite-io-"))
    (io / "in").write_bytes(put_request(1, A, DATA_A) + put_request(2, NEW, DATA_NEW) + get_request(3, A)
                            + b'{"ID":4,"Command":"close"}\n')
    infd = os.open(io / "in", os.O_RDONLY)
    shutil.rmtree(io)
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()

    def session() -> None:
        # The server's stderr lines go to a pipe (pytest's capture is a
        # file, which a file-size limit would fail).
        os.dup2(err_w, 2)
        sys.stderr = open(2, "w", buffering=1, closefd=False)  # line-buffered: the child ends with os._exit
        serve(str(world.cache), protocol, infd, out_w)

    try:
        # Always in a child: the session redirects fd 2, which pytest's own
        # process must keep.
        how, value = (in_child if run is direct else run)(session)
    finally:
        for fd in (infd, out_w, err_w):
            os.close(fd)
    out, err = _drain(out_r), _drain(err_r)
    assert how == "returned", f"the server raised {value!r}; stderr: {err!r}"
    return [json.loads(line) for line in out.splitlines()[1:]]


def _drain(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 1 << 16):
        chunks.append(chunk)
    os.close(fd)
    return b"".join(chunks)


def served(data_path: str) -> bytes:
    return Path(data_path).read_bytes()


# ------------------------------------------------------------ the tests


RECORDS: list[Record] = []


@pytest.mark.parametrize("kind", KINDS)
def test_each_write_path_fails_cleanly_and_destroys_nothing(tmp_path: Path, kind: str) -> None:
    """Every call under the fault: the expected errno as a clear exception
    (or success where the fault does not reach it), and every published
    item still whole afterwards."""
    env, expected, _ = KINDS[kind]
    with env(tmp_path) as (world, run):
        for call, fn in CALLS.items():  # one after another, as on a real machine
            rec = judge(kind, call, run(lambda: fn(world)), world)
            RECORDS.append(rec)
            assert rec.errno == expected[call], rec
            assert rec.clear and rec.destroyed == [], rec


@pytest.mark.parametrize("kind", KINDS)
def test_the_server_answers_err_and_still_serves_what_was_published(tmp_path: Path, kind: str) -> None:
    """The server under the fault: each failed put is an Err naming the
    errno and the call; the get of A still hits, with A's bytes; nothing
    published is lost."""
    env, _, (put_a, put_new) = KINDS[kind]
    with env(tmp_path) as (world, run):
        r = server_session(world, run)
        for resp, want in zip(r[:2], (put_a, put_new)):
            if want is None:
                assert "Err" not in resp and served(resp["DiskPath"]) in (DATA_A, DATA_NEW), resp
            else:
                assert want in resp["Err"] and "returned" in resp["Err"], resp
            op = re.search(r"\) failed: (.*?) returned", resp.get("Err", ""))
            RECORDS.append(Record(kind, "server put", want, f"Err: {op.group(1)}" if op else "", resp.get("Err", ""),
                                  True, []))
        assert r[2]["ID"] == 3 and "Miss" not in r[2] and served(r[2]["DiskPath"]) == DATA_A, r[2]
        assert r[3] == {"ID": 4}
        assert world.destroyed() == []


# ------------------------------------------------------------ the known-bad twins


@pytest.mark.parametrize("protocol", ["write-file", "go-index-entry"])
def test_the_check_sees_a_protocol_that_destroys_under_efbig(tmp_path: Path, protocol: str) -> None:
    """write-file truncates before it writes, go-index-entry removes the
    file when a write fails: under EFBIG each loses the published entry,
    and ``destroyed`` says so (as it says nothing for the default)."""
    with efbig(tmp_path) as (world, run):
        how, e = run(lambda: write_entry(world.entry, ENTRY_BYTES, protocol=protocol))
        assert how == "raised" and isinstance(e, WriteError) and e.errno_name == "EFBIG"
        assert world.destroyed() == ["write_entry file"]


def test_the_check_sees_a_server_that_destroys_under_efbig(tmp_path: Path) -> None:
    with efbig(tmp_path) as (world, run):
        r = server_session(world, run, protocol="write-file")
        assert "EFBIG" in r[0]["Err"] and "Miss" in r[2]  # A's output truncated by the failed rewrite
        assert "cache entry A" in world.destroyed()


@pytest.mark.parametrize("protocol,lost", [("write-file", True), ("write-then-truncate", False)])
def test_enospc_with_another_writer_taking_the_freed_blocks(tmp_path: Path, protocol: str, lost: bool) -> None:
    """On real files, stepped: W1 publishes; W2 opens (write-file's O_TRUNC
    frees the entry's block); another file takes every free block; W2's
    write fails with the kernel's ENOSPC.  write-file has then lost the
    published entry; write-then-truncate overwrote it in place, no block
    needed."""
    from reference.osworld import OSWorld
    from spec.ops import Open, Write
    from spec.protocols import CATALOGUE
    from spec.system import System

    system = System.of(CATALOGUE[protocol], n=2, readers=0, granularity="write", entry_length=2)
    with tmpfs(tmp_path, "size=64k") as mnt:
        root = mnt / "sandbox"
        root.mkdir()
        with OSWorld(system, root) as real:
            while real.current(0) is not None:
                real.step(0)
            assert real.published() and (root / "entry").read_bytes() == system.kinds[0].payload("entry")
            assert isinstance(real.current(1), Open)
            real.step(1)
            fill(mnt)
            assert isinstance(real.current(1), Write)
            real.step(1)
            failed = real.proc(1).last
            entry = (root / "entry").read_bytes()
        assert failed == ("ENOSPC" if lost else "")
        assert (entry != system.kinds[0].payload("entry")) == lost


# ------------------------------------------------------------ figures


def figures() -> list[Record]:
    """Run every kind and call (as the tests do) and return the records."""
    RECORDS.clear()
    with tempfile.TemporaryDirectory() as d:
        for i, kind in enumerate(KINDS):
            for fn in (test_each_write_path_fails_cleanly_and_destroys_nothing,
                       test_the_server_answers_err_and_still_serves_what_was_published):
                base = Path(d) / f"{i}-{fn.__name__}"
                base.mkdir()
                try:
                    fn(base, kind)
                except pytest.skip.Exception as e:
                    print(f"skipped {kind}: {e}", file=sys.stderr)
    return list(RECORDS)


if __name__ == "__main__":
    records = figures()
    print("| fault | calls | failed, as expected | failing operations (errno) | published entries destroyed |")
    print("|---|---|---|---|---|")
    for kind in KINDS:
        rows = [r for r in records if r.kind == kind]
        failed = [r for r in rows if r.errno is not None]
        ops = "; ".join(sorted({f"{r.failed_op.split(' = ')[-1].removeprefix('Err: ')} {r.errno}" for r in failed}))
        print(f"| {kind} | {len(rows)} | {len(failed)} | {ops} | {sum(len(r.destroyed) for r in rows)} |")
    print(f"\n{len(records)} calls under {len(KINDS)} kinds of fault; {sum(r.errno is not None for r in records)} "
          f"failed with the expected errno, each a clear exception or Err; "
          f"{sum(len(r.destroyed) for r in records)} published entries destroyed")
