"""The package installed as a user installs it: ``python -m venv DIR`` and
``DIR/bin/pip install REPO``, without the test extra and without upgrading
the pip that ``venv`` brings (so the command measured is what that pip
writes: on Python 3.11 here, pip 23.2, whose entry-point wrappers import
``re``).  The benchmarks then run the documented command from that venv,
``DIR/bin/idemwrite gocacheprog --dir D``, with no PYTHONPATH: whatever
``site`` and the installed packages' ``.pth`` files cost is in the figure.

Installing needs the package registry (or pip's cache) for the build
backend and z3-solver; it takes some seconds.  Not a test.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


class InstallFailed(RuntimeError):
    """``python -m venv`` or ``pip install`` failed; the message says which and why."""


def base_python() -> str:
    """The interpreter a user would make the venv with: this one's base
    (``venv`` from inside a venv would do the same)."""
    return getattr(sys, "_base_executable", sys.executable)


def install(into: Path, python: str | None = None, timeout: float = 900) -> Path:
    """Make a venv at ``into``, ``pip install`` this repository into it and
    return the path of its ``idemwrite`` command."""
    python = python or base_python()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PIP_REQUIRE_VIRTUALENV")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"  # no registry look-up for pip itself
    steps = [[python, "-m", "venv", str(into)],
             [str(into / "bin" / "pip"), "install", "--quiet", str(REPO)]]
    for argv in steps:
        r = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout, cwd=into.parent)
        if r.returncode != 0:
            raise InstallFailed(f"{' '.join(argv[:3])} failed ({r.returncode}): {r.stderr.strip()[-1500:]}")
    command = into / "bin" / "idemwrite"
    if not command.is_file():
        raise InstallFailed(f"pip installed no {command}")
    return command


def pip_version(venv: Path) -> str:
    """``pip --version`` of the venv's pip (its first two words)."""
    r = subprocess.run([str(venv / "bin" / "pip"), "--version"], capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1"))
    return " ".join(r.stdout.split()[:2])
