"""Benchmarks: several runs, medians, ratios against a baseline measured in
the same process.  Not tests: nothing here asserts a time.  Run one with
``python -m bench.bench_<name>``; ``python -m bench`` (``make bench``) runs
them all and writes ``docs/BENCHMARKS.md`` with its plots (see
:mod:`bench.__main__`)."""

from __future__ import annotations

import statistics
import time
from typing import Callable, Sequence, TypedDict


class Figure(TypedDict):
    """One measured figure: ``runs`` samples, their median, min and max."""

    runs: int
    median: float
    min: float
    max: float


def figure(samples: Sequence[float]) -> Figure:
    """The summary the document gives for every figure."""
    if not samples:
        raise ValueError("a figure needs at least one sample")
    return Figure(runs=len(samples), median=statistics.median(samples), min=min(samples), max=max(samples))


def median_seconds(fn: Callable[[], object], runs: int) -> tuple[float, object]:
    """The median wall time of ``runs`` calls of ``fn``, and its last result."""
    times, result = timed_runs(fn, runs)
    return statistics.median(times), result


def timed_runs(fn: Callable[[], object], runs: int) -> tuple[list[float], object]:
    """The wall times of ``runs`` calls of ``fn``, and its last result."""
    times: list[float] = []
    result: object = None
    for _ in range(runs):
        t = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t)
    return times, result
