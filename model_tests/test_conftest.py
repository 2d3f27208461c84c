"""The test run itself: nothing it makes lands in the working directory.

conftest.py promises that a test run writes no ``.hypothesis/`` into the
repository (Hypothesis's storage directory defaults to one in the working
directory, which for ``make test`` is the repository).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from hypothesis.configuration import storage_directory

HERE = Path(__file__).resolve().parent
REPO = HERE.parent


def test_hypothesis_storage_is_outside_the_repository() -> None:
    """In this process (conftest has run): the storage directory is not
    under the repository."""
    got = storage_directory(intent_to_write=False)
    where: object = getattr(got, "path", got)  # a Path in older Hypothesis, a StorageDirectory now
    home = Path(str(where)).resolve()
    assert REPO not in home.parents and home != REPO, home


def test_a_run_leaves_no_hypothesis_directory(tmp_path: Path) -> None:
    """A real pytest run of one Hypothesis test, from a scratch working
    directory, leaves no ``.hypothesis/`` there, and its files land in the
    cache directory conftest names.  (Without conftest's setting, Hypothesis
    writes ``.hypothesis/constants/`` into the working directory.)"""
    env = {k: v for k, v in os.environ.items() if k != "HYPOTHESIS_STORAGE_DIRECTORY"}
    env["XDG_CACHE_HOME"] = str(tmp_path / "xdg")
    work = tmp_path / "work"
    work.mkdir()
    test = HERE / "test_gocache.py"
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
                        f"{test}::test_parse_never_raises"], cwd=work, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert not (work / ".hypothesis").exists(), sorted(os.listdir(work / ".hypothesis"))
    assert (tmp_path / "xdg" / "idemwrite" / "hypothesis").is_dir()
