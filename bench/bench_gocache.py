"""GoCache.put/get against the same syscalls written by hand.

``GoCache.put`` hashes the output, writes it with the catalogue program
(write-then-truncate, via ``write_entry``) and then the 175-byte index entry
the same way; the baseline makes the very same syscalls by hand (for each
file: open O_WRONLY|O_CREAT, write, ftruncate, close, utime) after the same
SHA-256 and entry formatting.  ``get`` (Go's DiskCache.get: open, read 176,
fstat, close, full validation) and ``get_file`` (plus a stat of the output)
are compared with hand-written reads that make the same syscalls, check the
length and the action ID, and pick out the output ID and size.  Target: at most 15% slower.

Method (as in ``bench_entry``): every run is ``--rounds`` rounds in which
each case makes ``--batch`` calls in turn, so a shared machine's load falls
on all cases alike; the verdict is the median of per-round paired ratios;
the garbage collector is off while timing.

    .venv/bin/python -m bench.bench_gocache [--runs 5] [--rounds 60] [--batch 40] [--size 4096] [--json]

Throughput (``--throughput``, and the document's figure): puts, then gets
of what was put, with 1, 2, 4 and 8 processes at once, each on actions of
its own (fresh ones in every run, so every put writes); operations per
second over all processes, from the moment they are released together to
the last one's finish (a process makes ``--ops`` puts, and reads its
entries ``GET_PASSES`` times).  Baseline: the same hand-written put and get, with
as many processes, in the same run; the ratio is the baseline's ops/s over
GoCache's (the time an operation takes, relative to the hand-written one).

Not a test: nothing fails unless ``--strict`` is given.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from typing import Any, Callable

from bench import figure
from reference.gocache import ENTRY_SIZE, GoCache, format_entry

LIMIT = 1.15
AID = bytes(range(32))
FLAGS = os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC


def _hand_write(path: str, data: bytes) -> None:
    fd = os.open(path, FLAGS, 0o666)
    try:
        os.write(fd, data)
        os.ftruncate(fd, len(data))
    finally:
        os.close(fd)
    os.utime(path)


def _hand_put(hand_dir: str, aid: bytes, data: bytes) -> tuple[bytes, int]:
    out = hashlib.sha256(data).digest()
    o, a = out.hex(), aid.hex()
    _hand_write(f"{hand_dir}/{o[:2]}/{o}-d", data)
    _hand_write(f"{hand_dir}/{a[:2]}/{a}-a", format_entry(aid, out, len(data), time.time_ns()))
    return out, len(data)


def _hand_get(hand_dir: str, aid: bytes) -> tuple[bytes, int] | None:
    h = aid.hex()
    fd = os.open(f"{hand_dir}/{h[:2]}/{h}-a", os.O_RDONLY | os.O_CLOEXEC)
    try:
        raw = os.read(fd, ENTRY_SIZE + 1)
        os.fstat(fd)  # GoCache's markUsed needs the mtime
    finally:
        os.close(fd)
    # The least a correct reader checks: the length and that the entry
    # is this action's; then the output ID and size.
    if len(raw) != ENTRY_SIZE or raw[3:67] != h.encode():
        return None
    return bytes.fromhex(raw[68:132].decode()), int(raw[133:153])


def cases(dir: str, size: int) -> dict[str, tuple[str, Callable[[], object]]]:
    """name -> (baseline name, one call).  Baselines name themselves."""
    cache = GoCache(os.path.join(dir, "gocache"))
    hand_dir = os.path.join(dir, "hand")
    data = os.urandom(size)
    for i in range(256):
        os.makedirs(os.path.join(hand_dir, f"{i:02x}"))

    def name(id_: bytes, key: str) -> str:
        # Both sides turn the ID into a path on every call.
        h = id_.hex()
        return f"{hand_dir}/{h[:2]}/{h}-{key}"

    def hand_put() -> tuple[bytes, int]:
        return _hand_put(hand_dir, AID, data)

    def hand_get() -> tuple[bytes, int] | None:
        return _hand_get(hand_dir, AID)

    def hand_get_file() -> str | None:
        got = hand_get()
        if got is None:
            return None
        path = name(got[0], "d")
        return path if os.stat(path).st_size == got[1] else None

    hand_put()
    cache.put(AID, data)
    return {
        "hand-written put (same syscalls)": ("", hand_put),
        "GoCache.put": ("hand-written put (same syscalls)", lambda: cache.put(AID, data)),
        "hand-written get": ("", hand_get),
        "GoCache.get": ("hand-written get", lambda: cache.get(AID)),
        "hand-written get_file": ("", hand_get_file),
        "GoCache.get_file": ("hand-written get_file", lambda: cache.get_file(AID)),
    }


def measure(fns: dict[str, Callable[[], object]], runs: int, rounds: int, batch: int) -> dict[str, list[float]]:
    """µs per call of every batch, all runs' rounds in one list per case."""
    out: dict[str, list[float]] = {name: [] for name in fns}
    for fn in fns.values():  # warm up: compiled programs, the page cache
        for _ in range(200):
            fn()
    gc_was = gc.isenabled()
    gc.disable()
    try:
        for _ in range(runs * rounds):
            for name, fn in fns.items():
                t = time.perf_counter_ns()
                for _ in range(batch):
                    fn()
                out[name].append((time.perf_counter_ns() - t) / batch / 1000)
    finally:
        if gc_was:
            gc.enable()
    return out


def report(times: dict[str, list[float]], baselines: dict[str, str]) -> list[dict[str, object]]:
    rows = []
    for name, mine in times.items():
        base = baselines[name] or name
        paired = [m / b for m, b in zip(mine, times[base])]
        rows.append({"case": name, "baseline": base, "median_us": statistics.median(mine),
                     "best_us": min(mine), "ratio": statistics.median(paired)})
    return rows


# ------------------------------------------------------------ throughput

PROCESSES = (1, 2, 4, 8)
HAND = "by hand"
GET_PASSES = 10  # a get is ~100x cheaper than a put: each process reads its entries this many times


def _keys(run: int, proc: int, ops: int) -> list[bytes]:
    return [hashlib.sha256(b"%d/%d/%d" % (run, proc, i)).digest() for i in range(ops)]


def _worker(op: str, impl: str, root: str, keys: list[bytes], size: int, barrier: Any, finished: Any) -> None:
    """Runs in a forked process: prepare, wait for the others, time nothing
    (the parent does), report the finish time (perf_counter is the
    system-wide monotonic clock, comparable between processes)."""
    base = os.urandom(max(size - 32, 0))
    if impl == HAND:
        if op == "put":
            calls: list[Callable[[], object]] = [
                (lambda k=k: _hand_put(root, k, base + k)) for k in keys]  # type: ignore[misc]
        else:
            calls = [(lambda k=k: _hand_get(root, k)) for k in keys * GET_PASSES]  # type: ignore[misc]
    else:
        cache = GoCache(root)
        if op == "put":
            calls = [(lambda k=k: cache.put(k, base + k)) for k in keys]  # type: ignore[misc]
        else:
            calls = [(lambda k=k: cache.get(k)) for k in keys * GET_PASSES]  # type: ignore[misc]
    gc.disable()
    barrier.wait()
    for call in calls:
        call()
    finished.put(time.perf_counter())


def _ops_per_second(op: str, impl: str, root: str, run: int, procs: int, ops: int, size: int) -> float:
    ctx = multiprocessing.get_context("fork")  # the workers' closures need no pickling
    barrier, finished = ctx.Barrier(procs + 1), ctx.Queue()
    workers = [ctx.Process(target=_worker, args=(op, impl, root, _keys(run, p, ops), size, barrier, finished))
               for p in range(procs)]
    for w in workers:
        w.start()
    barrier.wait()
    started = time.perf_counter()
    ends = [float(finished.get(timeout=600)) for _ in workers]
    for w in workers:
        w.join()
        if w.exitcode != 0:
            raise RuntimeError(f"a {impl} {op} worker failed ({w.exitcode})")
    return procs * ops * (GET_PASSES if op == "get" else 1) / (max(ends) - started)


def throughput(runs: int, ops: int, size: int, processes: tuple[int, ...] = PROCESSES) -> dict[str, Any]:
    """Puts then gets with each number of processes, GoCache against the
    same syscalls by hand (see the module doc)."""
    samples: dict[tuple[str, str, int], list[float]] = {}
    with tempfile.TemporaryDirectory() as d:
        roots = {HAND: os.path.join(d, "hand"), "GoCache": os.path.join(d, "gocache")}
        for i in range(256):
            os.makedirs(os.path.join(roots[HAND], f"{i:02x}"))
        GoCache(roots["GoCache"])
        for run in range(runs):
            for procs in processes:
                # Alternate which goes first: the page cache and the
                # journal favour one or the other.
                for impl in (HAND, "GoCache") if run % 2 == 0 else ("GoCache", HAND):
                    for op in ("put", "get"):  # the gets read this run's puts
                        rate = _ops_per_second(op, impl, roots[impl], run * 100 + procs, procs, ops, size)
                        samples.setdefault((op, impl, procs), []).append(rate)
    rows = []
    for (op, impl, procs), rates in samples.items():
        base = samples[(op, HAND, procs)]
        rows.append({"op": op, "impl": impl, "processes": procs, "ops_per_s": figure(rates), "baseline": HAND,
                     "ratio": statistics.median(b / r for b, r in zip(base, rates))})
    rows.sort(key=lambda r: (r["op"] != "put", r["impl"] != HAND, r["processes"]))
    return {"runs": runs, "ops_per_process": ops, "size": size, "processes": list(processes), "rows": rows}


def collect(quick: bool) -> dict[str, Any]:
    """The document's throughput section (quick: 1 and 2 processes, 50
    operations each, one run)."""
    if quick:
        return throughput(1, 50, 4096, (1, 2))
    return throughput(5, 500, 4096)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=60)
    ap.add_argument("--batch", type=int, default=40)
    ap.add_argument("--size", type=int, default=4096, help="output size in bytes")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--strict", action="store_true", help=f"exit 1 when a GoCache case is over {LIMIT:.2f}x")
    ap.add_argument("--throughput", action="store_true", help="ops/s of put and get with 1, 2, 4, 8 processes")
    ap.add_argument("--ops", type=int, default=500, help="throughput: puts per process")
    args = ap.parse_args(argv or [])
    if args.throughput:
        data = throughput(args.runs, args.ops, args.size)
        if args.json:
            print(json.dumps(data, indent=2))
            return 0
        print(f"{'op':<4} {'impl':<8} {'procs':>5} {'median ops/s':>13} {'min':>9} {'max':>9} {'ratio':>6}")
        for r in data["rows"]:
            f = r["ops_per_s"]
            print(f"{r['op']:<4} {r['impl']:<8} {r['processes']:>5} {f['median']:>13,.0f} {f['min']:>9,.0f} "
                  f"{f['max']:>9,.0f} {r['ratio']:>6.2f}")
        return 0
    with tempfile.TemporaryDirectory() as d:
        named = cases(d, args.size)
        times = measure({k: fn for k, (_, fn) in named.items()}, args.runs, args.rounds, args.batch)
    rows = report(times, {k: b for k, (b, _) in named.items()})
    verdicts = {str(r["case"]): v for r in rows if r["case"] != r["baseline"] and isinstance(v := r["ratio"], float)}
    ok = all(v <= LIMIT for v in verdicts.values())
    if args.json:
        print(json.dumps({"rows": rows, "limit": LIMIT, "within_limit": ok}, indent=2))
        return 1 if args.strict and not ok else 0
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"{args.runs * args.rounds * args.batch} calls per case, {args.size}-byte output, Python "
          f"{sys.version.split()[0]}, {os.cpu_count()} CPUs, load {load}")
    head = f"{'case':<34} {'median µs':>10} {'best µs':>9} {'ratio':>7}"
    print(head + "\n" + "-" * len(head))
    for r in rows:
        print(f"{r['case']:<34} {r['median_us']:>10.2f} {r['best_us']:>9.2f} {r['ratio']:>7.3f}")
    for case, v in verdicts.items():
        print(f"{case} / hand-written: {v:.3f} (limit {LIMIT:.2f}): {'within' if v <= LIMIT else 'OVER'}")
    return 1 if args.strict and not ok else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
