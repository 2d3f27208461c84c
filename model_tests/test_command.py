"""The installed ``idemwrite`` command: what the go command starts.

The README tells people ``GOCACHEPROG="idemwrite gocacheprog --dir DIR"``;
the go command starts that once per go command and waits for its first
line.  The promises (no time is asserted: ``bench.bench_startup`` measures):

- The command pip installs (``scripts/idemwrite``, this venv's
  ``bin/idemwrite``) serves a GOCACHEPROG session, and still runs every
  other subcommand.
- In a session over an existing directory (the steady state: the first
  session creates the directory, its README and trim.txt with the
  catalogue's writer), it imports none of the modules that cost milliseconds and that
  the server does not need: not ``re``
  (which pip's entry-point wrappers imported before pip 25), not the CLI's
  dispatcher or the explorer, not json, typing, argparse or runpy.  A
  wrapper of the old kind (pip's template) is the known-bad twin.
- A session ends the process at once after its last answer and its
  stderr lines (``exit_after``): no interpreter teardown, which a go
  command whose stderr is a pipe would wait for.  Probed with an
  ``atexit`` handler (teardown's first step) put in by ``sitecustomize``;
  the other subcommands, which exit the ordinary way, are the control.
- A plain ``pip install .`` (not editable) installs every package of the
  repository: pyproject's package list names each directory with an
  ``__init__.py`` under the four top-level packages (``spec.lift`` was
  once missing, and ``idemwrite check`` failed in a fresh venv).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
COMMAND = Path(sys.executable).parent / "idemwrite"
CLOSE = b'{"ID":1,"Command":"close"}\n\n'
# Modules that cost milliseconds at start-up and that serving does not need.
NOT_AT_START = {"re", "typing", "json", "argparse", "runpy", "importlib.util", "dataclasses", "hashlib",
                "idemwrite", "idemwrite.cli", "idemwrite.commands", "reference.cli", "spec"}
TOP_LEVEL = ("spec", "reference", "proofs", "idemwrite")


def imported_by_a_session(argv: list[str], cache: Path) -> set[str]:
    """The modules a hello-close session of ``argv`` imports (Python's own
    ``-X importtime`` report); fails unless the session answers as a
    GOCACHEPROG server."""
    done = subprocess.run([sys.executable, "-X", "importtime", *argv, "--dir", str(cache)], input=CLOSE,
                          capture_output=True, timeout=120, cwd=cache.parent)
    lines = done.stdout.splitlines()
    assert done.returncode == 0 and b"KnownCommands" in lines[0] and lines[1] == b'{"ID":1}', done
    return {line.rsplit(b"|", 1)[1].strip().decode() for line in done.stderr.splitlines()
            if line.startswith(b"import time:") and not line.endswith(b"imported package")}


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    """A cache directory as a first session leaves it."""
    from reference.gocache import GoCache

    first = GoCache(str(tmp_path / "cache"))
    first.trim()  # and trim.txt: the server's daily trim after its last answer
    return Path(first.dir)


def test_the_installed_command_serves_a_session(cache: Path) -> None:
    done = subprocess.run([str(COMMAND), "gocacheprog", "--dir", str(cache)], input=CLOSE,
                          capture_output=True, timeout=120, cwd=cache.parent)
    assert done.returncode == 0, done.stderr
    assert done.stdout == b'{"ID":0,"KnownCommands":["get","put","close"]}\n{"ID":1}\n'
    assert done.stderr == b""  # the go command passes it to the person's terminal
    assert (cache / "README").is_file()


def test_the_installed_command_still_runs_the_other_subcommands() -> None:
    done = subprocess.run([str(COMMAND), "list"], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0 and "go-index-entry" in done.stdout, done.stderr
    bad = subprocess.run([str(COMMAND), "gocacheprog"], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert bad.returncode == 2 and "--dir is required" in bad.stderr


def test_the_command_imports_nothing_the_server_does_not_need(cache: Path) -> None:
    imported = imported_by_a_session([str(COMMAND), "gocacheprog"], cache)
    assert "reference.gocacheprog" in imported  # the report is read right
    assert imported & NOT_AT_START == set()


def test_the_check_catches_a_wrapper_of_the_old_kind(cache: Path, tmp_path: Path) -> None:
    """pip's entry-point template before pip 25, pointed at the same code."""
    wrapper = tmp_path / "old-wrapper"
    wrapper.write_text("import re\nimport sys\nfrom idemwrite.cli import run_main\n"
                       "if __name__ == '__main__':\n"
                       "    sys.argv[0] = re.sub(r'(-script\\.pyw|\\.exe)?$', '', sys.argv[0])\n"
                       "    sys.exit(run_main())\n")
    imported = imported_by_a_session([str(wrapper), "gocacheprog"], cache)
    assert {"re", "idemwrite.cli"} <= imported & NOT_AT_START


TEARDOWN_PROBE = "import atexit, sys\natexit.register(lambda: sys.stderr.write('teardown ran\\n'))\n"


def with_teardown_probe(argv: list[str], tmp_path: Path, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    """``argv`` run with an atexit handler that reports the interpreter's
    teardown on stderr (installed by a ``sitecustomize`` module)."""
    probe = tmp_path / "probe"
    probe.mkdir(exist_ok=True)
    (probe / "sitecustomize.py").write_text(TEARDOWN_PROBE)
    env = dict(os.environ, PYTHONPATH=str(probe))
    return subprocess.run(argv, input=stdin, capture_output=True, timeout=120, cwd=tmp_path, env=env)


def test_a_session_ends_without_the_interpreter_teardown(cache: Path, tmp_path: Path) -> None:
    done = with_teardown_probe([str(COMMAND), "gocacheprog", "--dir", str(cache), "--verbose"], tmp_path, CLOSE)
    assert done.returncode == 0 and done.stdout.endswith(b'{"ID":1}\n'), done
    assert b"teardown ran" not in done.stderr
    assert b"0 gets" in done.stderr  # the session's own lines still arrive whole
    bad = with_teardown_probe([str(COMMAND), "gocacheprog", "--dir", str(cache), "--protocol", "nonesuch"], tmp_path)
    assert bad.returncode == 2 and b"nonesuch" in bad.stderr and b"teardown ran" not in bad.stderr


def test_the_teardown_probe_sees_an_ordinary_exit(tmp_path: Path) -> None:
    """The control: a subcommand that exits the ordinary way runs the probe."""
    done = with_teardown_probe([str(COMMAND), "list"], tmp_path)
    assert done.returncode == 0 and b"teardown ran" in done.stderr, done


def packages_missing(listed: list[str], root: Path = ROOT) -> list[str]:
    """The packages (directories with an ``__init__.py``) under the
    top-level ones that ``listed`` leaves out."""
    found = [".".join(p.parent.relative_to(root).parts) for top in TOP_LEVEL
             for p in sorted((root / top).rglob("__init__.py")) if "__pycache__" not in p.parts]
    return [name for name in found if name not in listed]


def test_a_plain_install_gets_every_package() -> None:
    listed = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    assert packages_missing(listed) == []
    # The known-bad twin: the list as it once was.
    assert packages_missing([p for p in listed if p != "spec.lift"]) == ["spec.lift"]
