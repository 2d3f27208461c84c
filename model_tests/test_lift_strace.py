"""``spec.lift`` on logs of real programs, recorded here with strace.

Promises checked:
- round trip: ``reference.write_entry`` with each catalogue writer it
  accepts, run under strace in a child Python, lifts back to that
  protocol's success path, operation by operation (and the lifted program
  writes a real entry through write_entry);
- Python's ``pathlib.Path.write_bytes`` lifts to the success path of
  ``write-file`` (O_TRUNC first), and the explorer finds the lifted program
  violating published-entry-stays-complete (the known-bad twin of the round
  trip's write-then-truncate, which holds);
- ``git hash-object -w`` needs mkdir and link, which the language lacks
  today: the lift is a CannotExpress naming the mkdir's line (when mkdir
  and link land, this test flips and should then check the lifted program);
- ``strace -ff -tt`` files, found by their prefix, lift as one log does.

Skipped where strace cannot trace (missing, or ptrace not permitted): one
probe per module.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from idemwrite.commands import read_logs
from reference.entry import entry_writers
from spec import System, explore
from spec.lift import CannotExpress, Lifted, lift, success_path
from spec.programs import WRITE_FILE
from spec.properties import STAYS
from spec.protocols import CATALOGUE

STRACE = shutil.which("strace") or "/usr/bin/strace"
# The trace the README recommends.
TRACE = ["-e", "trace=%file,%desc,fsync,fdatasync,flock"]


@pytest.fixture(scope="module")
def strace() -> str:
    """strace, if it can trace here (probed once)."""
    if not Path(STRACE).exists():
        pytest.skip("strace is not installed")
    r = subprocess.run([STRACE, "-f", "-o", os.devnull, "true"], capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        pytest.skip(f"strace cannot trace here: {r.stderr.strip()[:200]}")
    return STRACE


def traced(strace: str, log: Path, argv: list[str], *, cwd: Path | None = None, ff: bool = False,
           env: dict[str, str] | None = None) -> None:
    opts = ["-ff", "-tt"] if ff else ["-f"]
    r = subprocess.run([strace, *opts, "-o", str(log), *TRACE, *argv], cwd=cwd, env=env, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr


def python_writes(strace: str, tmp: Path, code: str, **kw: object) -> tuple[Path, Path]:
    """Run ``code`` (with ``ENTRY`` bound to a fresh entry's path) in a
    traced child Python; the entry's path and the log."""
    entry = tmp / "cache" / "entry-1"
    entry.parent.mkdir()
    log = tmp / "trace.log"
    traced(strace, log, [sys.executable, "-c", f"ENTRY = {str(entry)!r}\n{code}"], **kw)  # type: ignore[arg-type]
    return entry, log


def lifted(log: Path, *globs: str) -> Lifted:
    return lift(read_logs([str(log)]), globs)


@pytest.mark.parametrize("name", entry_writers())
def test_write_entry_lifts_back_to_its_protocol(strace: str, tmp_path: Path, name: str) -> None:
    data = b"v1 0123456789abcdef\n"
    entry, log = python_writes(strace, tmp_path, f"import reference\nreference.write_entry(ENTRY, {data!r}, protocol={name!r})")
    assert entry.read_bytes() == data
    got = lifted(log, str(entry))
    (lp,) = got.writers()
    assert success_path(lp.program) == success_path(CATALOGUE[name].program)
    assert lp.occurrences[0].payload == len(data)
    # The lifted program is a value write_entry runs as it is.
    from reference import write_entry

    again = tmp_path / "again"
    write_entry(again, b"other bytes", protocol=lp.program)
    assert again.read_bytes() == b"other bytes"


def test_pathlib_write_bytes_truncates_first_and_is_found_violating(strace: str, tmp_path: Path) -> None:
    entry, log = python_writes(strace, tmp_path, "import pathlib\npathlib.Path(ENTRY).write_bytes(b'hello, world')")
    got = lifted(log, str(entry))
    (lp,) = got.writers()
    assert success_path(lp.program) == success_path(WRITE_FILE)
    assert explore(System.of(lp.program, 3, 1), [STAYS]).verdict(STAYS) == "violated"
    assert {i.call for i in got.ignored} >= {"ioctl", "lseek"}  # Python's isatty and tell


def test_git_hash_object_needs_mkdir_and_link(strace: str, tmp_path: Path) -> None:
    """git writes a loose object as an exclusive temp, makes the object
    directory on ENOENT, links the temp onto the object's name and unlinks
    the temp.  The language has no mkdir or link yet: the lift names the
    mkdir.  (When they land, this flips: check the lifted program instead.)"""
    git = shutil.which("git")
    if git is None:
        pytest.skip("git is not installed")
    repo = tmp_path / "repo"
    env = {**os.environ, "HOME": str(tmp_path), "GIT_CONFIG_NOSYSTEM": "1"}
    subprocess.run([git, "init", "-q", str(repo)], check=True, env=env)
    (repo / "f.txt").write_text("hello\n")
    log = tmp_path / "git.log"
    traced(strace, log, [git, "hash-object", "-w", "f.txt"], cwd=repo, env=env)
    with pytest.raises(CannotExpress) as e:
        lifted(log)
    lines = log.read_text().splitlines()
    assert (e.value.call, e.value.missing) == ("mkdir", "mkdir")
    assert "mkdir(" in lines[e.value.line - 1] and ".git/objects/" in lines[e.value.line - 1]
    assert any("link(" in ln and "tmp_obj_" in ln for ln in lines[e.value.line:])  # and the link is next


def test_ff_files_lift_as_one_log_does(strace: str, tmp_path: Path) -> None:
    code = "import reference\nreference.write_entry(ENTRY, b'hello', protocol='rename-into-place')"
    entry, log = python_writes(strace, tmp_path, code, ff=True)
    files = sorted(tmp_path.glob("trace.log.*"))
    assert files and not log.exists()
    (lp,) = lifted(log, str(entry)).writers()
    assert success_path(lp.program) == success_path(CATALOGUE["rename-into-place"].program)
