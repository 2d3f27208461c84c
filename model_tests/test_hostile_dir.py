"""Hostile cache directories: a DIR shared with other users, holding what they put there.

The promises (``reference.gocache``'s module doc, README "Go build cache"):

- every lookup of a planted file misses - ``get``, ``get_file``,
  ``get_bytes``, ``lookup`` and the server (its summary's fast path
  included) - and nothing raises, crashes or blocks (a FIFO included);
- the server never answers with a DiskPath that is a link or resolves
  outside DIR, and every hit it gives is the output whose hash it names;
- no write follows a link out of DIR (``put`` raises UnsafePathError, the
  server answers Err), and trim never descends into a linked
  subdirectory: no file outside DIR is created or changed;
- ``verify`` names every planted file, and reports every link as a link.

Garbage, by kind: wrong-size and bad-header index entries, non-hex and
misplaced names, stray files, unreadable files (as an unprivileged child),
huge (sparse) files, FIFOs, device nodes, links (an index entry, an
output, an executable's file, a subdirectory, dangling ones, README,
trim.txt and the summary), and a forged summary with a valid checksum.

Known-bad twins: a cache that follows links as Go's does, a writer that
writes without the checks, and a server whose summary hands out facts
unchecked each break a promise above, and the same checks say so.

``python model_tests/test_hostile_dir.py`` prints how many hostile inputs of
each kind were tried, with the wrong answers and outside changes found.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
import os
import pickle
import select
import shutil
import signal
import stat
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from twins import TrustingSummary

from reference.entry import write_entry
from reference.errors import UnsafePathError
from reference.gocache import Entry, GoCache, Miss, format_entry
from reference.gocacheprog import _answer
from reference.gocacheprog import run as serve
from reference.summary import SUMMARY_NAME, Summary, encode, fact

NOBODY = 65534
HUGE = (1 << 40) + 1  # a sparse terabyte: reading it whole would take an hour, holding it all memory
TEN_DAYS_NS = 10 * 24 * 3600 * 10**9
CHILD_TIMEOUT_S = 300  # a hang guard only (a FIFO opened without O_NONBLOCK): never reached when all is well


def aid(n: int, salt: int = 0) -> bytes:
    """An action ID whose subdirectory is ``n`` (its first byte)."""
    return bytes([n, salt]) + bytes(30)


def key(action_id: bytes) -> bytes:
    return base64.b64encode(action_id)


def data_in(sub: int, tag: bytes) -> bytes:
    """Bytes whose SHA-256 (their output ID) starts with byte ``sub``."""
    for i in range(1 << 16):
        d = tag + b" %d" % i
        if hashlib.sha256(d).digest()[0] == sub:
            return d
    raise AssertionError("no such bytes")


# ------------------------------------------------------------ a scene


@dataclass
class Scene:
    """A cache directory with legitimate entries and planted garbage, and
    a directory outside it (the other user's files, the link targets)."""

    root: Path
    dir: Path = field(init=False)
    out: Path = field(init=False)
    legit: dict[bytes, bytes] = field(default_factory=dict)  # action -> bytes: must hit
    misses: dict[bytes, str] = field(default_factory=dict)  # action -> kind: must miss
    index_valid: set[bytes] = field(default_factory=set)  # of those, the ones whose index entry is valid (get hits)
    planted: dict[Path, str] = field(default_factory=dict)  # path in DIR -> kind: verify must name it
    refused: dict[bytes, bytes] = field(default_factory=dict)  # action -> bytes: a put must be refused
    must_not_exist: list[Path] = field(default_factory=list)  # outside: never created

    def __post_init__(self) -> None:
        self.dir = self.root / "cache"
        self.out = self.root / "outside"
        self.out.mkdir()

    def cache(self) -> GoCache:
        return GoCache(str(self.dir))

    def name(self, id_: bytes, key_: str) -> Path:
        h = id_.hex()
        return self.dir / h[:2] / f"{h}-{key_}"

    def plant(self, path: Path, kind: str, make: Callable[[Path], object], action: bytes | None = None) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        make(path)
        self.planted[path] = kind
        if action is not None:
            self.misses[action] = kind

    def entry_for(self, action: bytes, data: bytes) -> bytes:
        return format_entry(action, hashlib.sha256(data).digest(), len(data), time.time_ns())


def _write(content: bytes) -> Callable[[Path], object]:
    return lambda p: p.write_bytes(content)


def _link(target: Path) -> Callable[[Path], object]:
    return lambda p: p.symlink_to(target)


def _sparse(size: int) -> Callable[[Path], object]:
    def make(p: Path) -> None:
        with open(p, "wb") as f:
            f.truncate(size)
    return make


def _fifo(p: Path) -> None:
    os.mkfifo(p)


def _device(major: int, minor: int) -> Callable[[Path], object]:
    return lambda p: os.mknod(p, 0o666 | stat.S_IFCHR, os.makedev(major, minor))


def can_mknod(where: Path) -> bool:
    probe = where / "probe-device"
    try:
        os.mknod(probe, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    except OSError:
        return False
    probe.unlink()
    return True


def main_scene(root: Path) -> Scene:
    """Garbage in the 256 subdirectories, links among it, a forged summary."""
    s = Scene(root)
    c = s.cache()
    for n in (1, 2, 3):
        body = b"legit output %d " % n * 50
        c.put(aid(n), body)
        s.legit[aid(n)] = body
    l1 = s.legit[aid(1)]
    good = s.entry_for  # a valid entry for an action, pointing at some bytes' output

    # An old legitimate entry: trim must remove it (so trim did run).
    old = aid(5)
    c.put(old, b"old output")
    for p in (s.name(old, "a"), s.name(hashlib.sha256(b"old output").digest(), "d")):
        os.utime(p, ns=(time.time_ns() - TEN_DAYS_NS,) * 2)

    # wrong-size and bad-header index entries (their output is L1's, complete)
    for i, size in enumerate((0, 1, 174, 176, 4096)):
        a = aid(0x10 + i)
        raw = (good(a, l1) * 30)[:size]
        s.plant(s.name(a, "a"), "wrong-size entry", _write(raw), a)
    bad_headers = [
        lambda a: b"v2" + good(a, l1)[2:],
        lambda a: good(aid(1), l1),  # another action's entry: mismatched ID
        lambda a: good(a, l1)[:68] + b"zz" + good(a, l1)[70:],  # output ID not hex
        lambda a: good(a, l1)[:133] + b"-" * 20 + good(a, l1)[153:],  # size not a number
        lambda a: good(a, l1)[:132] + b"\t" + good(a, l1)[133:],  # a tab for a space
    ]
    for i, make in enumerate(bad_headers):
        a = aid(0x15 + i)
        s.plant(s.name(a, "a"), "bad-header entry", _write(make(a)), a)

    # names Go never uses, stray files
    s.plant(s.dir / "20" / ("zz" * 32 + "-a"), "non-hex name", _write(good(aid(0x20), l1)))
    s.plant(s.dir / "21" / ("21" + "AB" * 31 + "-a"), "non-hex name", _write(good(aid(0x21), l1)))
    s.plant(s.dir / "23" / ("23" + "0" * 62 + "-x"), "non-hex name", _write(b"x"))
    s.plant(s.dir / "24" / ("25" + "0" * 62 + "-a"), "non-hex name", _write(good(aid(0x25), l1)))
    s.plant(s.dir / "26" / "stray.tmp", "stray file", _write(b"stray"))
    s.plant(s.dir / "27" / "somedir", "stray file", lambda p: p.mkdir())
    s.plant(s.dir / "junk.txt", "stray file", _write(b"junk"))
    s.plant(s.dir / f"{SUMMARY_NAME}.tmp.1234.abcd", "stray file", _write(b"a summary's temp file"))

    # huge (sparse) files
    s.plant(s.name(aid(0x40), "a"), "huge file", _sparse(HUGE), aid(0x40))
    huge_out = hashlib.sha256(b"huge").digest()
    s.plant(s.name(aid(0x41), "a"), "huge file", _write(format_entry(aid(0x41), huge_out, 10, time.time_ns())), aid(0x41))
    s.plant(s.name(huge_out, "d"), "huge file", _sparse(HUGE))
    s.plant(s.dir / "huge.bin", "huge file", _sparse(HUGE))

    # FIFOs
    s.plant(s.name(aid(0x50), "a"), "FIFO", _fifo, aid(0x50))
    fifo_out = hashlib.sha256(b"").digest()
    s.plant(s.name(aid(0x51), "a"), "FIFO", _write(format_entry(aid(0x51), fifo_out, 0, time.time_ns())), aid(0x51))
    s.plant(s.name(fifo_out, "d"), "FIFO", _fifo)

    # device nodes (root only)
    if can_mknod(s.out):
        s.plant(s.name(aid(0x60), "a"), "device node", _device(1, 5), aid(0x60))  # /dev/zero
        dev_out = hashlib.sha256(b"device").digest()
        s.plant(s.name(aid(0x61), "a"), "device node", _write(format_entry(aid(0x61), dev_out, 0, time.time_ns())),
                aid(0x61))
        s.plant(s.name(dev_out, "d"), "device node", _device(1, 3))  # /dev/null, 0 bytes as the entry says

    # links: an index entry, an output, an executable's file, dangling ones
    (s.out / "entry-70").write_bytes(good(aid(0x70), l1))
    s.plant(s.name(aid(0x70), "a"), "symlink", _link(s.out / "entry-70"), aid(0x70))
    secret = b"another user's secret, as long as the output"
    d71 = secret.replace(b"secret", b"output")
    (s.out / "secret").write_bytes(secret)
    s.plant(s.name(aid(0x71), "a"), "symlink", _write(good(aid(0x71), d71)), aid(0x71))
    s.plant(s.name(hashlib.sha256(d71).digest(), "d"), "symlink", _link(s.out / "secret"))
    d76 = secret.replace(b"secret", b"binary")
    exe = s.name(hashlib.sha256(d76).digest(), "d")
    s.plant(s.name(aid(0x76), "a"), "symlink", _write(good(aid(0x76), d76)), aid(0x76))
    exe.mkdir()
    s.plant(exe / "a.out", "symlink", _link(s.out / "secret"))
    s.plant(s.name(aid(0x73), "a"), "symlink", _link(s.out / "nonexistent-73"), aid(0x73))
    s.must_not_exist.append(s.out / "nonexistent-73")

    # a subdirectory that is a link, with a valid entry and output inside,
    # and old files that trim must not remove
    sub = s.out / "sub80"
    sub.mkdir()
    d80 = data_in(0x80, b"output in a linked subdirectory")
    o80 = hashlib.sha256(d80).hexdigest()
    (sub / f"{o80}-d").write_bytes(d80)
    (sub / f"{aid(0x80).hex()}-a").write_bytes(good(aid(0x80), l1))
    for p in sub.iterdir():
        os.utime(p, ns=(time.time_ns() - TEN_DAYS_NS,) * 2)
    shutil.rmtree(s.dir / "80")
    s.plant(s.dir / "80", "symlink", _link(sub), aid(0x80))
    s.plant(s.name(aid(0x72), "a"), "symlink", _write(good(aid(0x72), d80)), aid(0x72))  # its output: through the link

    # write targets that are links: puts must be refused
    (s.out / "victim-74").write_bytes(b"victim 74")
    s.plant(s.name(aid(0x74), "a"), "symlink", _link(s.out / "victim-74"), aid(0x74))
    s.refused[aid(0x74)] = b"put over a linked index entry"
    dw = b"put over a linked output"
    (s.out / "victim-dw").write_bytes(b"victim dw")
    s.plant(s.name(hashlib.sha256(dw).digest(), "d"), "symlink", _link(s.out / "victim-dw"))
    s.refused[aid(0x75)] = dw
    s.refused[aid(0x80, 1)] = b"put into a linked subdirectory"

    # a forged summary, its checksum valid: facts about the link above,
    # a ../ output name, an answer that adds its own DiskPath, an output
    # through the linked subdirectory, a FIFO output
    now = time.time_ns()
    forged = [
        (key(aid(0x71)), fact(now, len(d71), hashlib.sha256(d71).hexdigest().encode(), _answer_of(d71))),
        (key(aid(1)), fact(now, len(l1), b"../../../../outside/" + b"0" * 44, _answer_of(l1))),
        (key(aid(2)), fact(now, len(s.legit[aid(2)]), hashlib.sha256(s.legit[aid(2)]).hexdigest().encode(),
                           _answer_of(s.legit[aid(2)]) + b',"DiskPath":"/etc/passwd"')),
        (key(aid(0x72)), fact(now, len(d80), o80.encode(), _answer_of(d80))),
        (key(aid(0x51)), fact(now, 0, fifo_out.hex().encode(), _answer_of(b""))),
    ]
    (s.dir / SUMMARY_NAME).write_bytes(encode(sorted(forged)))
    s.index_valid = OUTPUT_SIDE & set(s.misses)
    return s


OUTPUT_SIDE = {aid(n) for n in (0x41, 0x51, 0x61, 0x71, 0x72, 0x76)}  # a valid index entry, a planted output


def _answer_of(data: bytes) -> bytes:
    return _answer(Entry(hashlib.sha256(data).digest(), len(data), time.time_ns()))


# ------------------------------------------------------------ the checks


def snapshot(root: Path) -> dict[str, tuple[int, int, int, str]]:
    """Every name under ``root`` (links not followed): mode, size, mtime
    and, for a small regular file, its SHA-256."""
    seen = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath, name)
            st_ = p.lstat()
            digest = hashlib.sha256(p.read_bytes()).hexdigest() if stat.S_ISREG(st_.st_mode) and st_.st_size < 1 << 20 else ""
            seen[str(p.relative_to(root))] = (st_.st_mode, st_.st_size, st_.st_mtime_ns, digest)
    return seen


def bad_answer(dir: Path, disk_path: str, output_id: bytes | None) -> str | None:
    """What is wrong with a hit's DiskPath, or None: it must be a regular
    file (not a link), resolve inside DIR, and hash to its output ID."""
    p = Path(disk_path)
    try:
        st_ = p.lstat()
    except OSError as e:
        return f"{disk_path}: {e}"
    if not stat.S_ISREG(st_.st_mode):
        return f"{disk_path} is not a regular file (mode {st_.st_mode:o})"
    real = os.path.realpath(disk_path)
    if not real.startswith(os.path.realpath(dir) + os.sep):
        return f"{disk_path} resolves outside DIR, to {real}"
    if output_id is not None and hashlib.sha256(p.read_bytes()).digest() != output_id:
        return f"{disk_path} does not hash to its output ID"
    return None


def library_violations(s: Scene, cache: GoCache) -> list[str]:
    """Every lookup by the library: planted actions miss, legit ones hit
    with their bytes, every answer path is sound."""
    found = []
    for a, kind in s.misses.items():
        index = (cache.get(a), cache.lookup(a, mark_used=False))
        if a in s.index_valid:  # Go's get reads only the index entry: a hit; the output is what is planted
            index_ok = isinstance(index[0], Entry) and isinstance(index[1], Entry)
        else:
            index_ok = index[0] is None and isinstance(index[1], Miss)
        got = (cache.get_file(a), cache.get_bytes(a))
        if not index_ok or got != (None, None):
            found.append(f"{kind} {a.hex()[:4]}: a hit {index} {got}")
    for a, body in s.legit.items():
        hit = cache.get_file(a)
        if hit is None:
            found.append(f"legit {a.hex()[:4]}: a miss")
            continue
        why = bad_answer(s.dir, hit[0], hit[1].output_id)
        if why:
            found.append(why)
    return found


def refused_writes(s: Scene, cache: GoCache) -> list[str]:
    """Each put into a link must raise UnsafePathError; the others found."""
    found = []
    for a, body in s.refused.items():
        try:
            cache.put(a, body)
            found.append(f"put {a.hex()[:4]} was not refused")
        except UnsafePathError:
            pass
    return found


# ------------------------------------------------------------ the server, in a child


def in_child(fn: Callable[[], object], *, uid: int | None = None) -> tuple[str, object]:
    """Run ``fn`` in a forked child (as ``uid`` if given); ("returned",
    value) or ("raised", exception).  A child stuck past CHILD_TIMEOUT_S
    (a blocking FIFO) is killed and reported."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            if uid is not None:
                os.setgroups([])
                os.setgid(uid)
                os.setuid(uid)
            try:
                out: tuple[str, object] = ("returned", fn())
            except BaseException as e:
                out = ("raised", e)
            try:
                data = pickle.dumps(out)
            except Exception as e:
                data = pickle.dumps(("raised", RuntimeError(f"unpicklable: {out!r}: {e}")))
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


def request(req: dict[str, Any], body: bytes | None = None) -> bytes:
    line = json.dumps(req).encode() + b"\n\n"
    return line + (b'"' + base64.b64encode(body) + b'"\n' if body else b"")


def get_req(id_: int, a: bytes) -> bytes:
    # As the go command sends it: compact, the server's fast path (and its summary).
    return json.dumps({"ID": id_, "Command": "get", "ActionID": key(a).decode()}, separators=(",", ":")).encode() + b"\n"


def put_req(id_: int, a: bytes, body: bytes) -> bytes:
    return request({"ID": id_, "Command": "put", "ActionID": key(a).decode(),
                    "OutputID": base64.b64encode(hashlib.sha256(body).digest()).decode(), "BodySize": len(body)}, body)


def session(dir: Path, data: bytes, **kwargs: Any) -> tuple[list[dict[str, Any]], str]:
    """One server session on ``data`` in a child (hang-guarded), reading
    the summary at once; the responses after the announcement, stderr."""
    io = Path(tempfile.mkdtemp(prefix="idemwrite-hostile-io-"))
    try:
        (io / "in").write_bytes(data)
        infd = os.open(io / "in", os.O_RDONLY)
        outfd = os.open(io / "out", os.O_WRONLY | os.O_CREAT)
        errfd = os.open(io / "err", os.O_WRONLY | os.O_CREAT)

        def run() -> None:
            os.dup2(errfd, 2)
            sys.stderr = open(2, "w", buffering=1, closefd=False)  # line-buffered: the child ends with os._exit
            serve(str(dir), "write-then-truncate", infd, outfd, **kwargs)

        try:
            how, value = in_child(run)
        finally:
            for fd in (infd, outfd, errfd):
                os.close(fd)
        err = (io / "err").read_text()
        assert how == "returned", f"the server raised {value!r}; stderr: {err}"
        lines = (io / "out").read_bytes().splitlines()
        return [json.loads(line) for line in lines[1:]], err
    finally:
        shutil.rmtree(io)


def server_violations(s: Scene, **kwargs: Any) -> list[str]:
    """A session with a get of every planted and legit action (twice: the
    second from the summary learnt in the first), the refused puts and a
    legit one: every answer as promised."""
    actions = list(s.misses) + list(s.legit)
    data = b"".join(get_req(i, a) for i, a in enumerate(actions * 2, start=1))
    puts = list(s.refused.items()) + [(aid(6), b"a legit put")]
    first_put = len(actions) * 2 + 1
    data += b"".join(put_req(first_put + i, a, body) for i, (a, body) in enumerate(puts))
    data += b'{"ID":99999,"Command":"close"}\n'
    r, _ = session(s.dir, data, **kwargs)
    found = []
    by_id = {resp["ID"]: resp for resp in r}
    for i, a in enumerate(actions * 2, start=1):
        resp = by_id.get(i, {})
        if a in s.misses:
            if not resp.get("Miss"):
                found.append(f"server: {s.misses[a]} {a.hex()[:4]}: {resp}")
            continue
        if "DiskPath" not in resp:
            found.append(f"server: legit {a.hex()[:4]}: {resp}")
            continue
        why = bad_answer(s.dir, resp["DiskPath"], base64.b64decode(resp["OutputID"]))
        if why:
            found.append(f"server: {why}")
    for i, (a, _) in enumerate(puts):
        resp = by_id.get(first_put + i, {})
        if a in s.refused and "refusing to write" not in resp.get("Err", ""):
            found.append(f"server: put {a.hex()[:4]} not refused: {resp}")
        if a not in s.refused and (bad := bad_answer(s.dir, resp.get("DiskPath", "?"), None)):
            found.append(f"server: legit put: {bad}")
    if by_id.get(99999) != {"ID": 99999}:
        found.append("server: close was not answered")
    return found


def verify_misses(s: Scene, cache: GoCache) -> list[str]:
    """Planted files ``verify`` does not name (and links it names as
    something else)."""
    report = cache.verify()
    named = {Path(p.path): p.kind for p in report.problems}
    found = [f"verify: {kind} {p} not named" for p, kind in s.planted.items() if p not in named]
    found += [f"verify: the link {p} named as {named[p]}" for p, kind in s.planted.items()
              if p in named and kind == "symlink" and p.is_symlink() and named[p] != "link"]
    return found


def cli_verify_misses(s: Scene) -> list[str]:
    """``idemwrite cache verify DIR --json``: exit 1, every planted file listed."""
    import io
    from contextlib import redirect_stdout

    from reference.cli import cache_main

    buf = io.StringIO()
    with redirect_stdout(buf):
        code = cache_main(["verify", str(s.dir), "--json"])
    listed = {Path(p["path"]) for p in json.loads(buf.getvalue())["problem_files"]}
    return [f"cli: exit {code}"] * (code != 1) + [f"cli: {p} not listed" for p in s.planted if p not in listed]


# ------------------------------------------------------------ the tests


def test_a_hostile_directory_misses_refuses_and_names_every_file(tmp_path: Path) -> None:
    s = main_scene(tmp_path)
    before = snapshot(s.out)
    cache = GoCache(str(s.dir))  # a fresh one, as a new session would make
    assert library_violations(s, cache) == []
    assert refused_writes(s, cache) == []
    assert verify_misses(s, GoCache(str(s.dir), create=False)) == []
    GoCache(str(s.dir), create=False).stat()  # does not crash either
    assert cli_verify_misses(s) == []
    assert server_violations(s, load_summary_after=0) == []
    cache.trim(force=True)  # the server's own (daily) trim ran at its exit already
    assert not s.name(aid(5), "a").exists()  # trim did run: the old legitimate entry went
    assert snapshot(s.out) == before  # nothing outside was created, changed or removed
    assert not any(p.exists() for p in s.must_not_exist)
    for a, body in s.legit.items():  # and the legitimate entries still hit
        got = GoCache(str(s.dir)).get_bytes(a)
        assert got is not None and got[0] == body


def test_hostile_top_level_files_are_never_followed_nor_block(tmp_path: Path) -> None:
    """README, trim.txt and the summary as links out of DIR, and as FIFOs:
    GoCache, trim, the summary and the server neither follow nor block."""
    out = tmp_path / "outside"
    out.mkdir()
    (out / "victim-trim").write_bytes(b"victim")
    (out / "victim-summary").write_bytes(b"victim")
    links = tmp_path / "links"
    links.mkdir()
    (links / "README").symlink_to(out / "readme-created")
    (links / "trim.txt").symlink_to(out / "victim-trim")
    (links / SUMMARY_NAME).symlink_to(out / "victim-summary")
    fifos = tmp_path / "fifos"
    fifos.mkdir()
    for name in ("README", "trim.txt", SUMMARY_NAME):
        os.mkfifo(fifos / name)
    before = snapshot(out)
    for d in (links, fifos):
        report = GoCache(str(d)).verify()
        kinds = {Path(p.path).name: p.kind for p in report.problems}
        want = "link" if d is links else "special"
        assert kinds == {"README": want, "trim.txt": want, SUMMARY_NAME: want}, report.problems
        how, e = in_child(lambda d=d: GoCache(str(d)).trim(force=True))  # type: ignore[misc]
        assert how == "raised" and isinstance(e, UnsafePathError), e
        body = b"an output"
        r, err = session(d, put_req(1, aid(7), body) + get_req(2, aid(7)) + b'{"ID":3,"Command":"close"}\n',
                         load_summary_after=0)
        assert "DiskPath" in r[0] and "Miss" not in r[1] and bad_answer(d, r[1]["DiskPath"], None) is None, r
        assert "trim failed" in err and "refusing to write" in err
        assert stat.S_ISREG((d / SUMMARY_NAME).lstat().st_mode)  # the link (or FIFO) replaced, not followed
    assert snapshot(out) == before and not (out / "readme-created").exists()


@pytest.mark.skipif(not hasattr(os, "setuid"), reason="needs POSIX users")
def test_unreadable_files_are_misses_and_named() -> None:
    """As a user who may not read them (an unprivileged child when we are
    root): an unreadable index entry, output and subdirectory."""
    base = Path(tempfile.mkdtemp(prefix="idemwrite-hostile-", dir="/tmp"))
    try:
        base.chmod(0o755)
        c = GoCache(str(base / "cache"))
        ok, u_entry, u_output, u_sub = aid(1), aid(0x30), aid(0x31), aid(0x32)
        for a in (ok, u_entry, u_output, u_sub):
            c.put(a, b"output of %s" % a.hex().encode())
        Path(c.file_name(u_entry, "a")).chmod(0)
        Path(c.output_file(hashlib.sha256(b"output of %s" % u_output.hex().encode()).digest())).chmod(0)
        (base / "cache" / "32").chmod(0)
        uid = NOBODY if os.geteuid() == 0 else None

        def look() -> tuple[list[bool], list[tuple[str, str]]]:
            cache = GoCache(str(base / "cache"), create=False)
            hits = [cache.get_file(a) is not None for a in (ok, u_entry, u_output, u_sub)]
            return hits, [(Path(p.path).name, p.kind) for p in cache.verify().problems]

        how, value = in_child(look, uid=uid)
        assert how == "returned", value
        hits, problems = value  # type: ignore[misc]
        assert hits == [True, False, False, False]
        assert sorted(problems) == sorted([(f"{u_entry.hex()}-a", "unreadable"), ("32", "unreadable"),
                                           (f"{hashlib.sha256(b'output of %s' % u_output.hex().encode()).hexdigest()}-d",
                                            "unreadable")])
    finally:
        for p in base.rglob("*"):
            if not p.is_symlink():
                p.chmod(0o755)
        shutil.rmtree(base)


def test_a_huge_summary_file_is_not_read(tmp_path: Path) -> None:
    (tmp_path / SUMMARY_NAME).write_bytes(b"")
    os.truncate(tmp_path / SUMMARY_NAME, HUGE)
    summary = Summary(str(tmp_path))
    summary.load()
    assert summary.table == {} and summary.changed  # ignored, and replaced at the end


# ------------------------------------------------------------ the known-bad twins


class FollowingCache(GoCache):
    """Known-bad twin: GetFile as Go does it, following links (os.stat)."""

    def get_file(self, action_id: bytes) -> tuple[str, Entry] | None:
        got = self.get(action_id)
        if got is None:
            return None
        path = self.file_name(got.output_id, "d")
        try:
            return (path, got) if os.stat(path).st_size == got.size else None
        except OSError:
            return None


def test_the_checks_catch_a_cache_that_follows_links(tmp_path: Path) -> None:
    s = main_scene(tmp_path)
    s.legit[aid(0x71)] = b""  # judge 0x71 (an index in DIR, its output a link) as an answer
    del s.misses[aid(0x71)]
    found = library_violations(s, FollowingCache(str(s.dir)))
    assert any("not a regular file" in f or "resolves outside" in f for f in found), found


def test_the_checks_catch_a_writer_without_checks(tmp_path: Path) -> None:
    """Writing as put did before (write_entry straight to the names)
    changes the other user's files, and the snapshot says so."""
    s = main_scene(tmp_path)
    before = snapshot(s.out)
    for a, body in s.refused.items():
        with contextlib.suppress(OSError):
            c = s.cache()
            out = hashlib.sha256(body).digest()
            write_entry(c.file_name(out, "d"), body)
            write_entry(c.file_name(a, "a"), format_entry(a, out, len(body), 1))
    assert snapshot(s.out) != before


def test_the_checks_catch_a_server_whose_summary_is_trusted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A summary that hands out its facts unchecked: the forged fact about
    the linked output is answered, and server_violations says so."""
    import reference.gocacheprog as server

    s = main_scene(tmp_path)
    monkeypatch.setattr(server, "Summary", TrustingSummary)
    found = server_violations(s, load_summary_after=0)
    assert any(f"symlink {aid(0x71).hex()[:4]}" in f and "DiskPath" in f for f in found), found


# ------------------------------------------------------------ random plants


KINDS_AT = ["legit", "garbage", "link out", "dangling link", "FIFO", "directory", "missing"]
ACTIONS = [aid(0x90 + i) for i in range(4)]
BODIES = [data_in(0xA0 + i, b"body") for i in range(4)]  # outputs in their own subdirectories


@pytest.fixture(scope="module")
def random_dir() -> Iterator[tuple[Path, Path]]:
    with tempfile.TemporaryDirectory() as d:
        GoCache(os.path.join(d, "cache"))
        os.mkdir(os.path.join(d, "outside"))
        yield Path(d, "cache"), Path(d, "outside")


PLANTS = st.lists(st.tuples(st.sampled_from(KINDS_AT), st.sampled_from(KINDS_AT), st.binary(max_size=300)),
                  min_size=len(ACTIONS), max_size=len(ACTIONS))


@settings(max_examples=settings().max_examples * 2 // 3, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(plants=PLANTS)
def test_random_plants_never_give_a_bad_answer(random_dir: tuple[Path, Path], plants: list[tuple[str, str, bytes]]) -> None:
    """Each action's index entry and output are, at random, legitimate,
    garbage, a link out of DIR, a dangling link, a FIFO, a directory or
    missing: a hit only when both are legitimate, every answer sound,
    nothing outside changed, every non-legitimate file named by verify."""
    dir, out = random_dir
    for p in [*(dir / f"{0x90 + i:02x}" for i in range(4)), *(dir / f"{0xA0 + i:02x}" for i in range(4))]:
        shutil.rmtree(p)
        p.mkdir()
    for p in out.iterdir():
        p.unlink()
    (out / "copy").write_bytes(b"outside")
    cache = GoCache(str(dir))
    planted: dict[Path, str] = {}
    for a, body, (at_index, at_output, junk) in zip(ACTIONS, BODIES, plants):
        output = hashlib.sha256(body).digest()
        for path, kind, good in ((Path(cache.file_name(output, "d")), at_output, body),
                                 (Path(cache.file_name(a, "a")), at_index, format_entry(a, output, len(body), 1))):
            (out / path.name).write_bytes(good)  # a copy outside, the target of "link out"
            if kind == "legit":
                path.write_bytes(good)
            elif kind == "garbage":
                path.write_bytes(junk)
            elif kind == "link out":
                path.symlink_to(out / path.name)
            elif kind == "dangling link":
                path.symlink_to(out / "nothing")
            elif kind == "FIFO":
                os.mkfifo(path)
            elif kind == "directory":
                path.mkdir()
            if kind not in ("legit", "missing") and not (kind == "garbage" and junk == good):
                planted[path] = kind
    before = snapshot(out)
    for a, body, (at_index, at_output, junk) in zip(ACTIONS, BODIES, plants):
        index_ok = at_index == "legit" or (at_index == "garbage" and junk == format_entry(a, hashlib.sha256(body).digest(), len(body), 1))
        output_ok = at_output == "legit" or (at_output == "garbage" and len(junk) == len(body))
        hit = cache.get_file(a)
        assert (hit is not None) == (index_ok and output_ok), (at_index, at_output)
        if hit is not None:
            assert bad_answer(dir, hit[0], None) is None
    named = {Path(p.path) for p in cache.verify().problems}
    assert set(planted) <= named, set(planted) - named
    assert snapshot(out) == before


# ------------------------------------------------------------ figures


def hostile_inputs() -> dict[str, int]:
    """How many hostile inputs of each kind the tests above plant."""
    counts: dict[str, int] = {}
    with tempfile.TemporaryDirectory() as d:
        s = main_scene(Path(d))
        for kind in s.planted.values():
            counts[kind] = counts.get(kind, 0) + 1
        counts["forged summary fact"] = 5
        counts["put into a link"] = len(s.refused)
        counts["top-level link (README, trim.txt, summary)"] = 3
        counts["top-level FIFO (README, trim.txt, summary)"] = 3
        counts["unreadable file (as another user)"] = 3
    return counts


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as d:
        s = main_scene(Path(d))
        before = snapshot(s.out)
        cache = GoCache(str(s.dir))
        wrong = library_violations(s, cache) + refused_writes(s, cache) + server_violations(s, load_summary_after=0)
        unnamed = verify_misses(s, GoCache(str(s.dir), create=False))
        cache.trim(force=True)
        changed = snapshot(s.out) != before
        lookups = 4 * (len(s.misses) + len(s.legit)) + 2 * (len(s.misses) + len(s.legit))
    print("| hostile input | planted |")
    print("|---|---|")
    for kind, n in hostile_inputs().items():
        print(f"| {kind} | {n} |")
    print(f"\n{lookups} lookups of the main scene (library 4 ways, server twice); "
          f"{len(wrong)} wrong answers or unrefused writes; {len(unnamed)} files verify did not name; "
          f"outside DIR changed: {changed}")
