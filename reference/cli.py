"""Command-line entry points for the Go cache tools.

``idemwrite cache verify|stat|trim DIR`` looks at a Go build cache (a
person's real GOCACHE included): ``verify`` and ``stat`` only read (no mtime
is refreshed, no link followed, no FIFO or device opened), and ``verify``
names every file Go would not have put there; ``trim`` removes what Go's
own trim would.  ``idemwrite gocacheprog --dir DIR [--protocol P]
[--verbose]`` runs the GOCACHEPROG server (quiet on stderr unless something
fails; ``--verbose`` or ``IDEMWRITE_VERBOSE=1`` for its counts).

Exit codes: 0 all well, 1 problems found (verify) or the server failed,
2 bad usage.  ``--json`` prints data for machines; the default is a table
for people.  The lead's ``idemwrite`` console script delegates here.
"""

from __future__ import annotations

import sys

# Importing this module must stay cheap: ``idemwrite gocacheprog`` goes
# through it at the start of every go command.  The cache subcommands import
# what they need (argparse, json, the cache) when they run.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from typing import Any

    from reference.gocache import VerifyReport


# ------------------------------------------------------------ cache


def _cache_parser() -> argparse.ArgumentParser:
    import argparse

    p = argparse.ArgumentParser(prog="idemwrite cache", description="Look at or trim a Go build cache directory (GOCACHE).")
    p.add_argument("action", choices=("verify", "stat", "trim"),
                   help="verify: check every entry and every output's SHA-256, and name every link, FIFO, device, "
                        "unreadable or stray file (none is followed or opened); stat: counts and sizes; trim: Go's trim")
    p.add_argument("dir", help="the cache directory (see `go env GOCACHE`)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--force", action="store_true", help="trim: even if trim.txt says it was trimmed in the last 24 h")
    return p


def cache_main(argv: list[str]) -> int:
    """``idemwrite cache verify|stat|trim DIR [--json] [--force]``."""
    from reference.gocache import GoCache, NotACacheDir

    args = _cache_parser().parse_args(argv)
    try:
        cache = GoCache(args.dir, create=False)
    except NotACacheDir as e:
        print(f"idemwrite cache: {e.filename}: {e.strerror}", file=sys.stderr)
        return 2
    if args.action == "verify":
        report = cache.verify()
        _print_verify(report, args.json)
        return 0 if report.ok else 1
    if args.action == "stat":
        _print_data(cache.stat(), args.json)
        return 0
    trimmed = cache.trim(force=args.force)
    _print_data({"dir": cache.dir, "skipped": trimmed.skipped, "removed": trimmed.removed,
                 "removed_bytes": trimmed.removed_bytes}, args.json)
    return 0


def _print_data(data: dict[str, Any], as_json: bool) -> None:
    import json

    if as_json:
        print(json.dumps(data, indent=2))
        return
    width = max(len(k) for k in data)
    for k, v in data.items():
        print(f"{k:<{width}}  {v}")


def _print_verify(report: VerifyReport, as_json: bool) -> None:
    summary = {
        "entries": report.entries, "outputs": report.outputs, "executables": report.executables,
        "entry_bytes": report.entry_bytes, "output_bytes": report.output_bytes,
        "unreferenced_outputs": report.unreferenced_outputs, "problems": len(report.problems),
    }
    if as_json:
        import json

        problems = [{"path": p.path, "kind": p.kind, "detail": p.detail} for p in report.problems]
        print(json.dumps({**summary, "ok": report.ok, "problem_files": problems}, indent=2))
        return
    _print_data(summary, False)
    for p in report.problems:
        print(f"{p.kind:<15} {p.path}: {p.detail}")
    print("ok" if report.ok else f"{len(report.problems)} problem file(s)")


# ------------------------------------------------------------ gocacheprog


def gocacheprog_main(argv: list[str]) -> int:
    """``idemwrite gocacheprog --dir DIR [--protocol P] [--verbose]``:
    serve on stdin/stdout until ``close`` or end of input."""
    from reference.gocacheprog import main  # the server module, only when serving

    return main(argv)
