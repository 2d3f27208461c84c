"""Start-up alone: how long the go command waits for a GOCACHEPROG server
that it starts and closes without asking anything.

The go command starts its GOCACHEPROG once per go command, after loading
packages and just before its first lookup, and blocks until the server's
first line (``KnownCommands``); at the end it sends ``close`` and waits
until the server closes its stdout (``cmd/go/internal/cache/prog.go``,
``startCacheProg`` and ``Close``, Go 1.27).  A session here does exactly
that over pipes: spawn, read the first line (**hello**), send the go
command's ``close`` request, read to end of output (**close**); then the
process's own CPU (user + system, from ``wait4``), which a loaded machine
disturbs less than wall time.  The commands take turns (A, B, C, A, B, C,
...) so that load falls on all alike; figures are medians, and each
command's ratio to ``go-null`` is the median of the per-round ratios of
the close times.

A less noisy second figure beside the whole ``go build`` (``bench_gobuild``,
where start-up is one part among 1135 round trips).

    .venv/bin/python -m bench.bench_startup [--runs 41] [--json]

measures ``go-null`` (the compiled floor server, empty table), the fast
path ``python -S -m reference.gocacheprog``, this venv's ``idemwrite``
script, and the documented command from a fresh ``pip install .``
(``bench.installed``; ``--no-install`` skips it).  Not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Mapping

from bench import figure

CLOSE = b'{"ID":1,"Command":"close"}\n\n'  # as the go command's json.Encoder and bufio send it


class NotAServer(RuntimeError):
    """The command did not answer as a GOCACHEPROG server (its output says how)."""


def session(argv: list[str], env: Mapping[str, str] | None = None, cwd: str | None = None) -> tuple[float, float, float]:
    """(seconds to the first line, seconds to the end of output after
    ``close``, CPU seconds of the process) of one hello-close session."""
    r0, w0 = os.pipe()
    r1, w1 = os.pipe()
    actions = [(os.POSIX_SPAWN_DUP2, r0, 0), (os.POSIX_SPAWN_DUP2, w1, 1),
               (os.POSIX_SPAWN_CLOSE, r0), (os.POSIX_SPAWN_CLOSE, w1),
               (os.POSIX_SPAWN_CLOSE, w0), (os.POSIX_SPAWN_CLOSE, r1)]
    old = os.getcwd()
    if cwd is not None:
        os.chdir(cwd)  # posix_spawn has no cwd argument before Python 3.13's file actions
    try:
        t = time.perf_counter()
        pid = os.posix_spawnp(argv[0], argv, dict(env if env is not None else os.environ), file_actions=actions)
    finally:
        os.chdir(old)
    os.close(r0)
    os.close(w1)
    out = b""
    try:
        while b"\n" not in out and (chunk := os.read(r1, 4096)):
            out += chunk
        hello = time.perf_counter() - t
        try:
            os.write(w0, CLOSE)
        except BrokenPipeError:
            pass
        while chunk := os.read(r1, 4096):
            out += chunk
        closed = time.perf_counter() - t
    finally:
        os.close(w0)
        os.close(r1)
        _, status, usage = os.wait4(pid, 0)
    if b"KnownCommands" not in out.split(b"\n", 1)[0] or b'{"ID":1}' not in out:
        raise NotAServer(f"{shlex.join(argv)} (status {status}) answered {out[:200]!r}")
    return hello, closed, usage.ru_utime + usage.ru_stime


def measure(commands: Mapping[str, tuple[list[str], Mapping[str, str] | None]], runs: int,
            cwd: str | None = None, baseline: str = "go-null") -> list[dict[str, Any]]:
    """Interleaved sessions of every command (after one warm-up each);
    per command: hello, close and CPU figures (seconds) and, if
    ``baseline`` is among them, the median per-round ratio of close times."""
    for argv, env in commands.values():
        session(argv, env, cwd)
    got: dict[str, list[tuple[float, float, float]]] = {name: [] for name in commands}
    for _ in range(runs):
        for name, (argv, env) in commands.items():
            got[name].append(session(argv, env, cwd))
    rows = []
    for name, samples in got.items():
        row: dict[str, Any] = {"variant": name, "hello": figure([s[0] for s in samples]),
                               "close": figure([s[1] for s in samples]), "cpu": figure([s[2] for s in samples])}
        if baseline in got:
            row["ratio_null"] = statistics.median(s[1] / b[1] for s, b in zip(samples, got[baseline]))
        rows.append(row)
    return rows


def from_gocacheprog(env: Mapping[str, str]) -> tuple[list[str], Mapping[str, str]]:
    """The command and environment the go command would start from ``env``
    (GOCACHEPROG split as the go command's quoted.Split does, for the
    unquoted commands the benchmarks use)."""
    return shlex.split(env["GOCACHEPROG"]), env


def render(rows: list[dict[str, Any]]) -> str:
    head = f"{'command':<10} {'hello ms':>9} {'close ms':>9} {'min ms':>7} {'CPU ms':>7} {'/go-null':>8}"
    lines = [head, "-" * len(head)]
    for r in rows:
        null = f" {r['ratio_null']:>8.2f}" if "ratio_null" in r else ""
        lines.append(f"{r['variant']:<10} {r['hello']['median'] * 1e3:>9.1f} {r['close']['median'] * 1e3:>9.1f} "
                     f"{r['close']['min'] * 1e3:>7.1f} {r['cpu']['median'] * 1e3:>7.1f}{null}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from bench import bench_gobuild, installed

    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--runs", type=int, default=41)
    ap.add_argument("--no-install", action="store_true", help="skip the fresh `pip install .` venv")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    go = bench_gobuild.go_binary()
    bench_gobuild.compile_sources()
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        dir = tmp / "cache"
        base = bench_gobuild.base_env(tmp)
        commands: dict[str, tuple[list[str], Mapping[str, str] | None]] = {}
        floor = bench_gobuild.build_floor_server(go, tmp)
        if floor is not None:
            (tmp / "empty-table").write_text("")
            commands["go-null"] = ([str(floor), "-table", str(tmp / "empty-table")], base)
        commands["server"] = (bench_gobuild.server_command(dir).split(), base)
        script = Path(sys.executable).parent / "idemwrite"
        if script.exists():
            commands["idemwrite"] = ([str(script), "gocacheprog", "--dir", str(dir)], base)
        if not args.no_install:
            print("pip install . into a fresh venv ...", file=sys.stderr, flush=True)
            command = installed.install(tmp / "venv")
            commands["installed"] = ([str(command), "gocacheprog", "--dir", str(dir)],
                                     bench_gobuild.installed_env(base))
        rows = measure(commands, args.runs, cwd=str(tmp))
    if args.json:
        print(json.dumps({"runs": args.runs, "rows": rows}, indent=2))
        return 0
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"start-up alone (hello, close), {args.runs} interleaved rounds, load {load}")
    print(render(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
