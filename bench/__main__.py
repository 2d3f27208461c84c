"""``make bench``: run every benchmark, then write ``docs/BENCHMARKS.md``,
its plots under ``docs/img/`` and the data they come from
(``docs/img/benchmarks.json``).

    python -m bench                  the full run (tens of minutes; see the document)
    python -m bench --quick          tiny instances, one run each (seconds), labelled as such
    python -m bench --out DIR        write DIR/BENCHMARKS.md and DIR/img/ instead of docs/
    python -m bench --render         render the document and plots again from DIR/img/benchmarks.json

The measuring is in the ``bench_*`` modules (each still runs alone with
``python -m bench.bench_<name>``); the Markdown comes from one renderer
(:mod:`bench.report`) and the plots from :mod:`bench.plots` (matplotlib,
the ``bench`` extra), both from the same data.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from bench import machine
from bench.report import DATA, DOC, FORMAT, IMG, render

REPO = Path(__file__).resolve().parent.parent


def _say(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _sections(quick: bool) -> list[tuple[str, str, Callable[[], Any]]]:
    """(data key, name in the document, measure) in the order they run."""
    from bench import bench_entry, bench_gobuild, bench_gocache, bench_prove, bench_scaling

    limits = bench_scaling.Limits.quick() if quick else bench_scaling.Limits.full()
    return [
        ("explorer", "explorer", lambda: bench_scaling.collect(limits, _say)),
        ("proofs", "proofs", lambda: bench_prove.collect(quick)),
        ("writes", "writes", lambda: bench_entry.collect(quick)),
        ("throughput", "throughput", lambda: bench_gocache.collect(quick)),
        ("gobuild", "go command", lambda: bench_gobuild.collect(quick, _say)),
    ]


def measure(quick: bool) -> dict[str, Any]:
    """Run every benchmark; the data the document is rendered from."""
    started = time.perf_counter()
    data: dict[str, Any] = {
        "format": FORMAT,
        "quick": quick,
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine.describe(),
        "load": {"start": machine.load()},
        "section_seconds": {},
    }
    for key, name, run in _sections(quick):
        _say(f"{name} ...")
        t = time.perf_counter()
        data[key] = run()
        data["section_seconds"][name] = time.perf_counter() - t
        _say(f"{name}: {data['section_seconds'][name]:.0f} s")
    data["load"]["end"] = machine.load()
    data["seconds"] = time.perf_counter() - started
    return data


def write(data: dict[str, Any], out: Path, plots: bool) -> None:
    """The data, the document and (with ``plots``) the plots, under ``out``."""
    img = out / IMG
    img.mkdir(parents=True, exist_ok=True)
    text = json.dumps(data, indent=1) + "\n"
    data = json.loads(text)  # render what a reader of the file gets (tuples are lists, and so on)
    (img / DATA).write_text(text)
    (out / DOC).write_text(render(data))
    if plots:
        from bench.plots import draw

        for path in draw(data, img):
            _say(f"wrote {path}")
    _say(f"wrote {out / DOC}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench", description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny instances, one run each: seconds, not figures")
    ap.add_argument("--out", type=Path, default=REPO / "docs", help=f"where {DOC} and {IMG}/ go (default: docs/)")
    ap.add_argument("--render", action="store_true", help=f"no measuring: render again from OUT/{IMG}/{DATA}")
    ap.add_argument("--plots-optional", action="store_true",
                    help="without matplotlib, write the document and data but no plots (the test's mode)")
    args = ap.parse_args(argv)
    plots = importlib.util.find_spec("matplotlib") is not None
    if not plots and not args.plots_optional:
        print("matplotlib is missing: pip install '.[bench]' (make bench installs it)", file=sys.stderr)
        return 2
    if not plots:
        _say("matplotlib is missing: no plots drawn")
    if args.render:
        data = json.loads((args.out / IMG / DATA).read_text())
    else:
        data = measure(args.quick)
    write(data, args.out, plots)
    return 0


if __name__ == "__main__":
    sys.exit(main())
