"""The remote tier's speed: ``go build`` with ``gocacheprog --remote`` on a
real SeaweedFS (``model_tests/seaweed.py``), all on this machine.

    python -m bench.bench_remote [--quick] [--runs N] [--json]

Measured, each build from its own empty local directory and GOCACHE:

- ``cold``: the server without ``--remote`` (no cache at all);
- ``cold-A``: machine A with ``--remote`` on an empty bucket (compiles
  everything and uploads it; close waits for the uploads);
- ``cold-B``: machine B with ``--remote`` after A (target: at most
  0.3x ``cold``);
- ``warm`` and ``warm-remote``: B's now full directory, without and with
  ``--remote``, alternated (target: at most 1.02x: a local hit never
  touches the network).

Ratios are medians of per-run paired ratios.  ``--quick`` builds a tiny
module once per variant (seconds, labelled as such: the ratios of a
build this small say little).  Not run by ``make bench``: a full run is
several cold ``go build std`` builds, tens of minutes on two cores.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.bench_gobuild import Target, base_env, go_binary, std_target, timed_build, tiny_target

REPO = Path(__file__).resolve().parent.parent
COLD_B_LIMIT = 0.3
WARM_LIMIT = 1.02


def _seaweed(root: Path) -> Any:
    sys.path.insert(0, str(REPO / "model_tests"))  # the test helper that starts SeaweedFS
    import importlib

    return importlib.import_module("seaweed").Seaweed(root)  # model_tests is not a package


def _env(tmp: Path, name: str, store: Any, remote: str | None) -> dict[str, str]:
    """Machine ``name``: its own directory and GOCACHE; ``remote`` the
    bucket URL, or None for no remote."""
    home = tmp / name
    home.mkdir(exist_ok=True)
    env = {k: v for k, v in base_env(home).items() if not k.startswith("AWS_")}
    env.update(store.env(), GOCACHE=str(home / "gocache"))
    server = f'"{sys.executable}" -m reference.gocacheprog --dir "{home / "dir"}"'
    env["GOCACHEPROG"] = server + (f" --remote {remote}" if remote else "")
    return env


def _paired(a: list[float], b: list[float]) -> float:
    return statistics.median(x / y for x, y in zip(a, b))


def fmt_target(tmp: Path) -> Target:
    """A program that prints with fmt: a cold build compiles the runtime
    and fmt's dependencies (about 40 packages) and links, in tens of
    seconds: a figure between ``--quick`` and ``std``."""
    mod = tmp / "fmtmod"
    mod.mkdir()
    (mod / "go.mod").write_text("module hellofmt\n\ngo 1.24\n")
    (mod / "main.go").write_text('package main\n\nimport "fmt"\n\nfunc main() { fmt.Println("hello") }\n')
    return Target("go build of a fmt program", ("build", "-o", str(tmp / "hellofmt.bin"), "."), mod)


def collect(quick: bool, runs: int, medium: bool = False) -> dict[str, Any]:
    go = go_binary()
    times: dict[str, list[float]] = {k: [] for k in ("cold", "cold-A", "cold-B", "warm", "warm-remote")}
    with tempfile.TemporaryDirectory(prefix="bench-remote-") as t:
        tmp = Path(t)
        store = _seaweed(tmp / "seaweed")
        try:
            for run in range(runs):
                r = tmp / f"run{run}"
                r.mkdir()
                target: Target = tiny_target(r) if quick else fmt_target(r) if medium else std_target(r)
                url = f"s3://gocache/run{run}"
                times["cold"].append(timed_build(go, _env(r, "plain", store, None), target))
                times["cold-A"].append(timed_build(go, _env(r, "A", store, url), target))
                times["cold-B"].append(timed_build(go, _env(r, "B", store, url), target))
                for _ in range(1 if quick else 3):
                    times["warm"].append(timed_build(go, _env(r, "B", store, None), target))
                    times["warm-remote"].append(timed_build(go, _env(r, "B", store, url), target))
        finally:
            store.stop()
    return {
        "quick": quick, "target": target.name, "seconds": times,
        "cold_B_vs_cold": _paired(times["cold-B"], times["cold"]), "cold_B_limit": COLD_B_LIMIT,
        "cold_A_vs_cold": _paired(times["cold-A"], times["cold"]),
        "warm_remote_vs_warm": _paired(times["warm-remote"], times["warm"]), "warm_limit": WARM_LIMIT,
    }


def render(d: dict[str, Any]) -> str:
    lines = [f"{d['target']}{' (--quick: a tiny module)' if d['quick'] else ''}"]
    for k, v in d["seconds"].items():
        lines.append(f"  {k:<12} median {statistics.median(v):7.2f} s  ({len(v)} runs)")
    lines.append(f"  cold on B with A's outputs in the remote / cold with no cache: {d['cold_B_vs_cold']:.2f}x "
                 f"(target <= {d['cold_B_limit']}x)")
    lines.append(f"  cold on A, uploading / cold with no remote: {d['cold_A_vs_cold']:.2f}x")
    lines.append(f"  warm with --remote / warm without: {d['warm_remote_vs_warm']:.3f}x (target <= {d['warm_limit']}x)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="a tiny module, one run (seconds)")
    ap.add_argument("--medium", action="store_true", help="a fmt program instead of std (about a minute a round)")
    ap.add_argument("--runs", type=int, default=None, help="cold rounds (default 2; 1 with --quick)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    d = collect(args.quick, args.runs or (1 if args.quick else 2), args.medium)
    print(json.dumps(d, indent=1) if args.json else render(d))
    return 0


if __name__ == "__main__":
    sys.exit(main())
