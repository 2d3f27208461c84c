"""The atlas of real tools: each protocol cites its source, the new
properties catch their known-bad twins, and each known bug's shortest
counterexample replays on real files and shows the reported symptom."""

from __future__ import annotations

import contextlib
import io
import pathlib

import pytest

from idemwrite.commands import main, read_logs
from reference.replay import replay_snapshots
from spec import tools as T
from spec.lift import lift
from spec.explore import explore
from spec.ops import Program
from spec.properties import INDEX_SAME, NO_CORRUPT, NO_MIX, Property
from spec.protocols import ATLAS, CATALOGUE
from spec.state import Buf, Status
from spec.system import System
from spec.trace import Trace, from_exploration


def _run_cli(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(list(argv))
    return code, out.getvalue()


def _trace(protocol: str, prop: Property, faults: int = 0) -> Trace:
    """The shortest counterexample at the protocol's own default bounds."""
    p = CATALOGUE[protocol]
    system = System.of(p, p.writer_count(3), 1, p.reader_for(prop), faults=faults, variants=p.variants)
    ex = explore(system, [prop])
    assert prop.name in ex.violations, f"{protocol} keeps {prop.name}"
    return from_exploration(ex, prop)


def _bufs(regs: tuple[tuple[object, ...], ...]) -> list[bytes]:
    return [r.data for r in regs if isinstance(r, Buf)]


# ------------------------------------------------------------ sources


def test_every_atlas_protocol_cites_its_source_and_list_prints_it() -> None:
    """Each real tool's protocol carries repository, file, function and
    version, and ``idemwrite list`` prints that citation under it."""
    code, out = _run_cli("list")
    assert code == 0
    for p in ATLAS:
        s = p.source
        assert s is not None and all((s.tool, s.version, s.repository, s.file, s.function)), p.name
        block = out.split(f"\n{p.name} (writer)", 1)[1].split("\n\n", 1)[0]
        assert f"source: {s.cite()}" in block, p.name
        if not s.read:
            assert "source NOT read" in block  # an unread source is said so, not passed off as read


def test_known_bugs_are_cited() -> None:
    """The two reported bugs the atlas reproduces are in the sources."""
    bugs = {b for p in ATLAS if p.source for b in p.source.bugs}
    assert {"pypa/pip#12361", "openshift/hypershift#8624"} <= bugs


# ------------------------------------------------------------ the new properties


def test_mixing_needs_two_versions_of_the_bytes() -> None:
    """reader-never-mixes-writes is violated by pip's cache only when two
    downloads differ: with one version of the bytes it holds (so the
    property is not violated by every two-file reader)."""
    p = CATALOGUE["pip-http-cache"]
    two = explore(System.of(p, 2, 1, p.reader, variants=2), [NO_MIX])
    one = explore(System.of(p, 2, 1, p.reader, variants=1), [NO_MIX])
    assert two.verdict(NO_MIX) == "violated" and one.verdict(NO_MIX) == "holds"


def test_index_implies_same_write_separates_marker_order() -> None:
    """A marker written after its part, under a lock (cargo), keeps
    index-implies-same-write; metadata renamed before its body (pip) is
    the known-bad twin that breaks it."""
    cargo = CATALOGUE["cargo-unpack"]
    assert explore(System.of(cargo, 3, 1, cargo.reader), [INDEX_SAME]).verdict(INDEX_SAME) == "holds"
    assert _trace("pip-http-cache", INDEX_SAME).steps


def test_variants_give_writers_different_bytes_of_one_length() -> None:
    """System.of(..., variants=2): two versions, same length, no zero byte,
    the readers expecting the first; a bound too large is refused."""
    s = System.of(CATALOGUE["pip-http-cache"], 3, 1, T.PIP_READ, variants=2)
    entries = [dict(p.payloads)["entry"] for p in s.processes]
    assert entries == [b"ab", b"ab", b"cd", b"ab"] and s.variants() == 2
    from spec.system import SetupError

    with pytest.raises(SetupError, match="variants"):
        System.of(CATALOGUE["pip-http-cache"], 2, 1, variants=14)


# ------------------------------------------------------------ the known bugs, on real files


def test_pip_12361_metadata_with_no_body_replays(tmp_path: pathlib.Path) -> None:
    """pip 23.3: the shortest counterexample of reader-never-accepts-corrupt,
    replayed on real files, ends with the reader's hit holding no body
    while the metadata file is there and the body file is not."""
    trace = _trace("pip-http-cache-23.3", NO_CORRUPT)
    snaps = replay_snapshots(trace, tmp_path)
    last = snaps[-1]
    reader = last.procs[-1]
    assert reader.status is Status.HIT and _bufs(reader.regs) == []
    files = dict(last.files)
    assert files["entry"] is not None and files.get("output") is None


def test_pip_12364_still_mixes_two_downloads_on_real_files(tmp_path: pathlib.Path) -> None:
    """pip >= 23.3.1: with two versions of the bytes, the reader holds one
    download's metadata and the other's body - on real files too."""
    trace = _trace("pip-http-cache", NO_MIX)
    reader = replay_snapshots(trace, tmp_path)[-1].procs[-1]
    parts = set(_bufs(reader.regs))
    writes = [{b"ab", b"AB"}, {b"cd", b"CD"}]
    assert len(parts) == 2 and not any(parts <= w for w in writes), parts


def test_hypershift_8624_partial_file_at_diskpath_replays(tmp_path: pathlib.Path) -> None:
    """hypershift's put before the fix: the go command takes, at DiskPath,
    a file that is not the complete output - on real files too."""
    trace = _trace("hypershift-put", NO_CORRUPT)
    last = replay_snapshots(trace, tmp_path)[-1]
    reader = last.procs[-1]
    got = _bufs(reader.regs)
    assert reader.status is Status.HIT and got and got[-1] != b"AB"


@pytest.mark.parametrize("name", ["hypershift-put-fixed", "pip-http-cache"])
def test_the_fixes_keep_reader_never_accepts_corrupt(name: str) -> None:
    """After #8624 and #12364 no reader accepts a partial or missing part."""
    p = CATALOGUE[name]
    for f in (0, 1):
        s = System.of(p, p.writer_count(3), 1, p.reader, faults=f, variants=p.variants)
        assert explore(s, [NO_CORRUPT]).verdict(NO_CORRUPT) == "holds", (name, f)


@pytest.mark.parametrize("protocol", ["pip-http-cache-23.3", "hypershift-put"])
def test_trace_replay_command_shows_the_real_files_agree(protocol: str) -> None:
    """``idemwrite trace PROTOCOL --property reader-never-accepts-corrupt
    --replay`` finds the bug and the real files agree with the model."""
    code, out = _run_cli("trace", protocol, "--property", NO_CORRUPT.name, "--replay")
    assert code == 0
    assert "the real files agree with the model at every step replayed" in out


# ------------------------------------------------------------ confirmed against the real pip


def _strace() -> str:
    """strace, if it can trace here (else the test is skipped)."""
    import shutil
    import subprocess

    exe = shutil.which("strace")
    if exe is None:
        pytest.skip("strace is not installed")
    r = subprocess.run([exe, "-f", "-o", "/dev/null", "true"], capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        pytest.skip(f"strace cannot trace here: {r.stderr.strip()[:200]}")
    return exe


def _serve_index(root: pathlib.Path) -> tuple[object, int]:
    """A one-package index (PEP 503) on loopback whose responses may be
    cached (pip's CacheControl stores a response with an ETag)."""
    import functools
    import http.server
    import threading
    import zipfile

    files = root / "files"
    files.mkdir(parents=True)
    with zipfile.ZipFile(files / "atlasdemo-1.0-py3-none-any.whl", "w") as z:
        z.writestr("atlasdemo/__init__.py", "X = 1\n")
        z.writestr("atlasdemo-1.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: atlasdemo\nVersion: 1.0\n")
        z.writestr("atlasdemo-1.0.dist-info/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        z.writestr("atlasdemo-1.0.dist-info/RECORD", "")
    page = root / "simple" / "atlasdemo"
    page.mkdir(parents=True)
    (page / "index.html").write_text('<a href="../../files/atlasdemo-1.0-py3-none-any.whl">atlasdemo-1.0-py3-none-any.whl</a>')

    class Handler(http.server.SimpleHTTPRequestHandler):
        def end_headers(self) -> None:
            self.send_header("Cache-Control", "max-age=600")
            self.send_header("ETag", '"atlas-1"')
            super().end_headers()

        def log_message(self, *args: object) -> None:
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(root)))
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, srv.server_address[1]


def _split_pid(line: str) -> tuple[str, str]:
    """An ``strace -f`` line's pid and call (strace leaves the pid out
    while the traced program has no other process or thread)."""
    import re

    m = re.match(r"(\d+) +(.*)", line)
    return (m.group(1), m.group(2)) if m else ("", line)


def _joined(log: str) -> list[str]:
    """The log's lines with each call that another thread interrupted
    (``<unfinished ...>`` ... ``<... call resumed>``) joined into one."""
    import re

    pending: dict[str, str] = {}
    out: list[str] = []
    for line in log.splitlines():
        pid, call = _split_pid(line)
        if call.endswith("<unfinished ...>"):
            pending[pid] = call[: -len("<unfinished ...>")].rstrip()
        elif (m := re.match(r"<\.\.\. \w+ resumed>(.*)", call)) and pid in pending:
            out.append(f"{pid} {pending.pop(pid)}{m.group(1)}")
        else:
            out.append(line)
    return out


def _real_writes(log: str, meta: str) -> list[tuple[str, ...]]:
    """The write-side calls on one cache entry's files, in order, with the
    names abstracted as the model names them (``entry`` the metadata,
    ``output`` the body, ``.tmp`` their temp files); repeated writes to one
    descriptor are one write (the model's read loop abstraction)."""
    import re

    def name(p: str) -> str | None:
        if p == meta:
            return "entry"
        if p == meta + ".body":
            return "output"
        if p.startswith(meta + ".body") and p.endswith(".tmp"):
            return "output.tmp"
        if p.startswith(meta) and p.endswith(".tmp"):
            return "entry.tmp"
        return None

    fds: dict[tuple[str, str], str] = {}
    out: list[tuple[str, ...]] = []
    for line in _joined(log):
        pid, call = _split_pid(line)
        if m := re.match(r'openat\(AT_FDCWD, "([^"]+)", ([A-Z_|]+)(?:, \d+)?\)\s+=\s+(\d+)', call):
            n = name(m.group(1))
            if n is not None and "O_CREAT" in m.group(2):
                fds[(pid, m.group(3))] = n
                out.append(("open", n, "O_EXCL" if "O_EXCL" in m.group(2) else ""))
        elif m := re.match(r"(write|fsync|close)\((\d+)[,)].* = \d+", call):
            n = fds.get((pid, m.group(2)))
            if n is not None and out[-1] != (m.group(1), n):
                out.append((m.group(1), n))
            if m.group(1) == "close":
                fds.pop((pid, m.group(2)), None)
        elif m := re.match(r'rename\("([^"]+)", "([^"]+)"\)\s+=\s+0', call):
            a, b = name(m.group(1)), name(m.group(2))
            if a is not None and b is not None:
                out.append(("rename", a, b))
    return out


def _model_writes() -> list[tuple[str, ...]]:
    """The same abstraction of pip-http-cache's success path in the model."""
    from spec.lift import success_path
    from spec.ops import Close, Fsync, Open, OpenFlags, Rename, Write

    at: dict[str, str] = {}
    out: list[tuple[str, ...]] = []
    for ins in success_path(T.PIP_HTTP_CACHE):
        if isinstance(ins, Open):
            at[ins.fd] = ins.path.name
            out.append(("open", ins.path.name, "O_EXCL" if OpenFlags.EXCL in ins.flags else ""))
        elif isinstance(ins, (Write, Fsync, Close)):
            out.append(({Write: "write", Fsync: "fsync", Close: "close"}[type(ins)], at[ins.fd]))
        elif isinstance(ins, Rename):
            out.append(("rename", ins.src.name, ins.dst.name))
    return out


def test_real_pip_writes_its_http_cache_as_the_catalogue_says(tmp_path: pathlib.Path) -> None:
    """pip (this environment's, >= 23.3: metadata and ``.body`` files),
    downloading from an index the test serves on loopback with
    ``--cache-dir``, under strace: for every cache entry it writes, the
    calls on the entry's files are pip-http-cache's success path - the
    metadata's temp file (O_EXCL), write, fsync, close, rename, then the
    body's the same way.  (``idemwrite lift`` cannot express pip's
    ``mkdir`` of the cache directories yet, so the log is compared
    directly; where it can, the lifted writer is compared too.)"""
    import os
    import subprocess
    import sys

    from pip import __version__ as pip_version

    strace = _strace()
    if tuple(int(x) for x in pip_version.split(".")[:2]) < (23, 3):
        pytest.skip(f"pip {pip_version} predates the separate body file")
    srv, port = _serve_index(tmp_path / "index")
    cache, log = tmp_path / "cache", tmp_path / "pip.log"
    env = {**os.environ, "PIP_CONFIG_FILE": os.devnull, "PIP_FIND_LINKS": "", "PIP_NO_INPUT": "1"}
    try:
        r = subprocess.run([strace, "-f", "-o", str(log), "-e", "trace=%file,%desc,fsync,fdatasync,flock",
                            sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
                            "--index-url", f"http://127.0.0.1:{port}/simple/", "--trusted-host", "127.0.0.1",
                            "--cache-dir", str(cache), "-d", str(tmp_path / "out"), "atlasdemo==1.0"],
                           capture_output=True, text=True, timeout=300, env=env)
    finally:
        srv.shutdown()  # type: ignore[attr-defined]
    assert r.returncode == 0, r.stderr[-2000:]
    bodies = sorted(cache.rglob("*.body"))
    assert len(bodies) == 2, bodies  # the index page and the wheel
    text = log.read_text(errors="replace")
    model = _model_writes()
    assert len(model) == 10  # two files, each open O_EXCL, write, fsync, close, rename
    for body in bodies:
        real = _real_writes(text, str(body)[:-len(".body")])
        assert real == model, body
        assert real != model[5:] + model[:5]  # the comparison sees the order: body first would differ
    from spec.lift import success_path
    from spec.ops import Mkdir, Stat

    def calls(program: Program) -> list[str]:
        """The success path's calls, less pip's ensure_dir (its stats and
        mkdirs of the cache's nested directories, which the catalogue
        entry leaves out: it names the files flat)."""
        return [type(i).__name__ for i in success_path(program) if not isinstance(i, (Stat, Mkdir))]

    # The lift sees each file (metadata, body) as its own sequence; each is
    # one file's half of the catalogue entry.
    writers = lift(read_logs([str(log)]), [f"{cache}/http-v2/?/?/?/?/?/*"]).writers()
    half = calls(T.PIP_HTTP_CACHE)[:5]
    assert half == ["Open", "Write", "Fsync", "Close", "Rename"]
    assert writers and all(calls(w.program) == half for w in writers), writers


def _calls_on(log: str, final: str) -> list[tuple[str, ...]]:
    """The calls on ``final`` and on the temp file renamed onto it, in
    order, the temp named ``tmp`` (uv writes from several threads: every
    pid of the log counts)."""
    import re

    temps = re.findall(r'rename(?:at2)?\((?:AT_FDCWD, )?"([^"]+)", (?:AT_FDCWD, )?"' + re.escape(final) + r'"', log)
    assert len(temps) == 1, temps
    tmp = temps[0]
    names = {tmp: "tmp", final: "entry"}
    fds: dict[str, str] = {}
    out: list[tuple[str, ...]] = []
    for line in _joined(log):
        call = _split_pid(line)[1]
        if m := re.match(r'openat\(AT_FDCWD, "([^"]+)", ([A-Z_|]+)(?:, \d+)?\)\s+=\s+(\d+)', call):
            if m.group(1) in names:
                fds[m.group(3)] = names[m.group(1)]
                flags = [f for f in ("O_EXCL", "O_TRUNC") if f in m.group(2)]
                out.append(("open", names[m.group(1)], *flags))
        elif m := re.match(r"(write|fsync|fdatasync|close)\((\d+)[,)].* = \d+", call):
            if m.group(2) in fds and out[-1] != (m.group(1), fds[m.group(2)]):
                out.append((m.group(1), fds[m.group(2)]))
            if m.group(1) == "close":
                fds.pop(m.group(2), None)
        elif re.match(r'rename(at2)?\(.*"' + re.escape(tmp) + '"', call):
            out.append(("rename", "tmp", "entry"))
    return out


def test_real_uv_writes_its_index_cache_as_uv_write_atomic_says(tmp_path: pathlib.Path) -> None:
    """uv (the test extra's, from PyPI), installing from an index the test
    serves on loopback with ``--cache-dir``, under strace: its cached index
    page (``simple-v*/.../atlasdemo.rkyv``) appears only by a rename of a
    temp file created with O_EXCL in the same directory, written and
    closed before the rename, never fsynced - uv-write-atomic's success
    path, whose SURVIVES claim (violated: no fsync) rests on that.  The
    real uv opens the temp a second time by its name (O_TRUNC, from a
    blocking thread) to write it: the same private, empty file, so the
    model's one open stands for both."""
    import os
    import shutil
    import subprocess
    import sys

    from spec.lift import success_path
    from spec.ops import Close, Fdatasync, Fsync, Rename, Write

    strace = _strace()
    uv = shutil.which("uv", path=os.path.dirname(sys.executable)) or shutil.which("uv")
    if uv is None:
        pytest.skip("uv is not installed (it is in the test extra)")
    version = subprocess.run([uv, "--version"], capture_output=True, text=True, timeout=60).stdout.strip()
    srv, port = _serve_index(tmp_path / "index")
    cache, log = tmp_path / "cache", tmp_path / "uv.log"
    try:
        r = subprocess.run([strace, "-f", "-o", str(log), "-e", "trace=%file,%desc,fsync,fdatasync,flock", uv, "pip",
                            "install", "--no-deps", "--no-config", "--cache-dir", str(cache), "--index-url",
                            f"http://127.0.0.1:{port}/simple/", "--target", str(tmp_path / "t"), "--python",
                            sys.executable, "atlasdemo==1.0"], capture_output=True, text=True, timeout=300,
                           env={**os.environ, "UV_NO_CONFIG": "1"})
    finally:
        srv.shutdown()  # type: ignore[attr-defined]
    assert r.returncode == 0, (version, r.stderr[-2000:])
    (page,) = cache.glob("simple-v*/index/*/atlasdemo.rkyv")
    calls = _calls_on(log.read_text(errors="replace"), str(page))
    rename = calls.index(("rename", "tmp", "entry"))
    before = calls[:rename]
    assert before[0] == ("open", "tmp", "O_EXCL"), (version, calls)
    assert ("write", "tmp") in before and ("close", "tmp") in before, (version, calls)
    assert not any(c[0] in ("fsync", "fdatasync") for c in calls), (version, calls)
    assert not any(c[1] == "entry" for c in before), (version, calls)  # the name appears only by the rename
    # The catalogue's success path says the same: temp, write, close, rename, no fsync.
    path = success_path(T.UV_PERSIST)
    kinds = [type(i) for i in path]
    assert Fsync not in kinds and Fdatasync not in kinds
    assert kinds.index(Write) < kinds.index(Close) < kinds.index(Rename)
