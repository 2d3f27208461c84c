"""Run every benchmark module in bench/ in turn."""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path


def main() -> int:
    here = Path(__file__).resolve().parent
    for mod in sorted(m.name for m in pkgutil.iter_modules([str(here)]) if m.name.startswith("bench_")):
        print(f"== bench.{mod}", flush=True)
        rc = importlib.import_module(f"bench.{mod}").main([])
        if rc:
            return int(rc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
