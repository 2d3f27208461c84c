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
- ``git hash-object -w`` lifts to an exclusive temp, mkdir on ENOENT, link
  and unlink of the temp; ``lift --check`` finds published-entry-stays-
  complete holding; the lifted program goes through the explorer, BMC and
  replay on real files (and SPIN, where installed) as a value, and its
  known-bad twin (the same log with the object written in place, O_TRUNC)
  is caught by each;
- ``strace -ff -tt`` files, found by their prefix, lift as one log does.

Skipped where strace cannot trace (missing, or ptrace not permitted): one
probe per module.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from idemwrite.commands import main, read_logs
from reference.entry import entry_writers
from spec import System, explore, from_exploration
from spec.lift import Lifted, lift, success_path
from spec.ops import ENTRY, Data, Failed, If, Link, Mkdir, Open, OpenFlags, Path as MPath, Program, Unlink, Write
from spec.programs import WRITE_FILE, go_read_entry_at
from spec.properties import STAYS
from spec.protocols import CATALOGUE
from spec.system import ENTRY_BYTES
from spec.trace import trace_to

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


# ------------------------------------------------------------ git

# Recorded with git 2.39.5 (Debian 12); every run records the version it
# traced (``record_property("git_version")``).  The calls are those of
# object-file.c's write_loose_object: create_tmpfile (git_mkstemp_mode of
# tmp_obj_XXXXXX in the object's directory, mkdir of that directory on
# ENOENT, a second try), write, close_loose_object, finalize_object_file
# (link, then unlink the temp).


@dataclass(frozen=True)
class GitRun:
    version: str
    log: Path
    lifted: Lifted


@pytest.fixture(scope="module")
def git_run(strace: str, tmp_path_factory: pytest.TempPathFactory) -> GitRun:
    """``git hash-object -w`` of a new file in a fresh repository, traced and lifted."""
    git = shutil.which("git")
    if git is None:
        pytest.skip("git is not installed")
    tmp = tmp_path_factory.mktemp("git")
    repo = tmp / "repo"
    env = {**os.environ, "HOME": str(tmp), "GIT_CONFIG_NOSYSTEM": "1"}
    subprocess.run([git, "init", "-q", str(repo)], check=True, env=env)
    (repo / "f.txt").write_text("hello\n")
    log = tmp / "git.log"
    traced(strace, log, [git, "hash-object", "-w", "f.txt"], cwd=repo, env=env)
    version = subprocess.run([git, "--version"], capture_output=True, text=True, check=True).stdout.split()[-1]
    return GitRun(version, log, lifted(log))


def _the_object(run: GitRun) -> tuple[Program, MPath, MPath]:
    """The one lifted writer, its temp (the name it links) and the object's name."""
    (lp,) = run.lifted.writers()
    prog = lp.program
    (link,) = [i for i in prog.code if isinstance(i, Link)]
    return prog, link.old, link.new


def test_git_hash_object_lifts_to_exclusive_temp_mkdir_link_unlink(git_run: GitRun, record_property: Any) -> None:
    """git's loose object: an exclusive temp (O_CREAT|O_EXCL of a private
    tmp_obj_XXXXXX), whose ENOENT leads to the mkdir of the object's
    directory, a link onto the object's name, and the temp's unlink; and
    ``lift --check`` finds published-entry-stays-complete holding, the
    content being in the temp before the link publishes it."""
    record_property("git_version", git_run.version)
    prog, tmp, obj = _the_object(git_run)
    assert tmp.private and tmp.name.startswith("dir/") and obj == MPath("dir/entry")
    assert prog.publishes == ((obj, "entry"),)
    path = success_path(prog)  # alone on an empty file system: no directory yet
    opens = [i for i in path if isinstance(i, Open)]
    assert all(o.path.private and OpenFlags.CREAT | OpenFlags.EXCL in o.flags for o in opens) and len(opens) == 2
    first, mkdir = path.index(opens[0]), path.index(Mkdir(MPath("dir")))
    assert first < mkdir < path.index(opens[1]), "mkdir between the try and the temp"
    code = prog.code
    on_enoent = code[code.index(opens[0]) + 1]
    assert isinstance(on_enoent, If) and on_enoent.cond == Failed(frozenset({"ENOENT"}))
    assert code[prog.targets[code.index(on_enoent)]] == Mkdir(MPath("dir")), "mkdir on the try's ENOENT"
    assert opens[1].path == tmp and Link(tmp, obj) in path and path.index(Link(tmp, obj)) < path.index(Unlink(tmp))
    assert path.index(Write(Data("entry"))) < path.index(Link(tmp, obj))
    # `idemwrite lift --check`, as a user runs it.
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code_ = main(["lift", str(git_run.log), "--check", "--json"])
    verdicts = {(r["property"], r["faults"]): r["verdict"] for r in json.loads(out.getvalue())["results"]}
    assert code_ == 0
    assert verdicts[(STAYS.name, 0)] == verdicts[(STAYS.name, 1)] == "holds"


def _in_place(run: GitRun) -> Lifted:
    """The known-bad twin of git's write, made from its own log: the object
    opened in place with O_TRUNC (no try, no mkdir, no temp, no link)."""
    lines = run.log.read_text().splitlines()
    link = next(ln for ln in lines if " link(" in ln and "tmp_obj_" in ln)
    tmp, obj = re.findall(r'"([^"]+)"', link)
    keep = []
    for ln in lines:
        if "tmp_obj_" in ln and ("ENOENT" in ln or " link(" in ln or " unlink(" in ln) or " mkdir(" in ln:
            continue
        if f'"{tmp}"' in ln:
            ln = ln.replace(tmp, obj).replace("O_EXCL", "O_TRUNC")
        keep.append(ln)
    return lift([("twin.log", "\n".join(keep) + "\n")])


def test_git_written_in_place_is_found_violating(git_run: GitRun) -> None:
    (lp,) = _in_place(git_run).writers()
    assert lp.program.publishes == ((ENTRY, "entry"),)
    assert explore(System.of(lp.program, 3, 1), [STAYS]).verdict(STAYS) == "violated"


def test_the_lifted_git_program_goes_through_every_checker(git_run: GitRun, tmp_path: Path) -> None:
    """The lifted program, a value nobody registered, goes through the
    explorer, bounded model checking with Z3 and replay on real files as
    it is; the in-place twin is caught by each."""
    from proofs.bmc import search
    from reference.replay import replay_snapshots

    prog, _, obj = _the_object(git_run)
    reader = go_read_entry_at(obj)
    (twin,) = _in_place(git_run).writers()
    # The explorer.
    good = explore(System.of(prog, 3, 1, reader, faults=1), [STAYS])
    assert good.verdict(STAYS) == "holds" and good.complete
    bad = explore(System.of(twin.program, 2, readers=0), [STAYS])
    assert bad.verdict(STAYS) == "violated"
    # Bounded model checking (a one-byte entry: a writer publishes in 8
    # steps, and the other takes 2 more).
    assert search(System.of(prog, 2, readers=0, entry_length=1), STAYS, depth=10).outcome == "none"
    found = search(System.of(twin.program, 2, readers=0), STAYS, depth=12)
    assert found.outcome == "counterexample"
    # Replay on real files: the entry after publication, in every state the
    # explorer reaches (two writers), is the payload; the twin's is not.
    ex = explore(System.of(prog, 2, readers=0), [STAYS], stop_when_all_violated=False)
    worlds = list(ex.worlds())
    assert len(worlds) > 20
    payload = ENTRY_BYTES[:2]
    for n, w in enumerate(worlds):
        snaps = replay_snapshots(trace_to(ex, w), tmp_path / f"good{n}")
        assert all(dict(s.files).get(obj.name) == payload for s in snaps if any(p.status == "ok" for p in s.procs)), n
        assert not snaps or snaps[-1].dirs == w.fs.dirs, "the real mkdir as the model's"
    snaps = replay_snapshots(from_exploration(bad, STAYS), tmp_path / "bad")
    after = [dict(s.files).get("entry") for s in snaps if any(p.status == "ok" for p in s.procs)]
    assert after and after[-1] != payload


def test_spin_agrees_on_the_lifted_git_program(git_run: GitRun, tmp_path: Path) -> None:
    """SPIN, on the Promela the translator writes for the lifted value:
    git's write holds, the in-place twin is violated."""
    from proofs.promela import translate
    from proofs.spin import run_spin, spin_missing

    why = spin_missing()
    if why is not None:
        pytest.skip(why)
    prog, _, obj = _the_object(git_run)
    (twin,) = _in_place(git_run).writers()
    (tmp_path / "good").mkdir()
    (tmp_path / "bad").mkdir()
    good = run_spin(translate(System.of(prog, 2, 1, go_read_entry_at(obj), faults=1), [STAYS]), tmp_path / "good",
                    opt="-O0")
    assert good.verdict == "holds"
    bad = run_spin(translate(System.of(twin.program, 2, readers=0), [STAYS]), tmp_path / "bad", opt="-O0")
    assert bad.verdict == "violated"


def test_ff_files_lift_as_one_log_does(strace: str, tmp_path: Path) -> None:
    code = "import reference\nreference.write_entry(ENTRY, b'hello', protocol='rename-into-place')"
    entry, log = python_writes(strace, tmp_path, code, ff=True)
    files = sorted(tmp_path.glob("trace.log.*"))
    assert files and not log.exists()
    (lp,) = lifted(log, str(entry)).writers()
    assert success_path(lp.program) == success_path(CATALOGUE["rename-into-place"].program)
