"""Benchmarks: several runs, medians, ratios against a baseline measured in
the same process.  Not tests: nothing here asserts a time.  Run one with
``python -m bench.bench_<name>``, or all with ``python -m bench``."""

from __future__ import annotations

import statistics
import time
from typing import Callable


def median_seconds(fn: Callable[[], object], runs: int) -> tuple[float, object]:
    """The median wall time of ``runs`` calls of ``fn``, and its last result."""
    times, result = [], None
    for _ in range(runs):
        t = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), result
