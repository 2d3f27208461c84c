"""Long runs show their progress on a terminal, and only there.

The promise: on a terminal, ``idemwrite check`` shows states, depth and
states per second, and ``idemwrite prove`` the theorems done out of the
total, on stderr; redirected, with ``--json``, or with ``CI`` set, stderr
stays empty and stdout is what it was.  The one-second delay is set to 0
through ``IDEMWRITE_PROGRESS_AFTER`` so that short runs show it too.
"""

from __future__ import annotations

import os
import pty
import subprocess
import sys

import pytest

CHECK = ["check", "-p", "write-then-truncate", "-N", "3", "-F", "0"]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    return {**env, "IDEMWRITE_PROGRESS_AFTER": "0", **extra}


def _run_on_a_terminal(args: list[str], **extra: str) -> tuple[str, str]:
    """Run ``idemwrite ARGS`` with stderr on a pseudo-terminal: (stdout, what the terminal showed)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "idemwrite.cli", *args], stdout=subprocess.PIPE, stderr=slave,
                            env=_env(**extra), text=True)
    os.close(slave)
    shown = b""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        shown += chunk
    out, _ = proc.communicate(timeout=600)
    os.close(master)
    assert proc.returncode == 0, (out, shown)
    return out, shown.decode()


def _run_redirected(args: list[str], **extra: str) -> tuple[str, str]:
    done = subprocess.run([sys.executable, "-m", "idemwrite.cli", *args], capture_output=True, text=True,
                          env=_env(**extra), timeout=600)
    assert done.returncode == 0, done
    return done.stdout, done.stderr


def test_check_shows_states_depth_and_rate_on_a_terminal() -> None:
    out, shown = _run_on_a_terminal(CHECK)
    assert "exploring:" in shown and "states, depth" in shown and "states/s" in shown, shown
    assert shown.endswith("\r\x1b[K"), repr(shown[-40:])  # the line is erased before the table
    assert "as the catalogue declares" in out


@pytest.mark.parametrize("how", ["redirected", "json", "ci"])
def test_check_shows_nothing_when_redirected_in_json_or_in_ci(how: str) -> None:
    if how == "redirected":
        out, err = _run_redirected(CHECK)
    elif how == "json":
        out, err = _run_redirected([*CHECK, "--json"])
        _, shown = _run_on_a_terminal([*CHECK, "--json"])
        assert shown == "", repr(shown)
    else:
        out, err = _run_redirected(CHECK, CI="true")
        _, shown = _run_on_a_terminal(CHECK, CI="true")
        assert shown == "", repr(shown)
    assert err == ""
    assert out.strip()


def test_prove_shows_theorems_done_on_a_terminal() -> None:
    theorems = ["--theorem", "write-file/published-entry-stays-complete/bmc",
                "--theorem", "write-file/reader-after-publication-hits/bmc"]
    _, shown = _run_on_a_terminal(["prove", *theorems])
    assert "proving: 2 of 2 theorems done" in shown, shown
    _, err = _run_redirected(["prove", *theorems])
    assert err == ""
