"""Killed writers: real processes SIGKILLed at random points of their writes.

The model's promise for the default protocol (``write-then-truncate``):
once a put of an entry has returned, every later lookup hits, and no lookup
ever returns bytes that are not the entry.  Here it is held against real
processes on the real file system, with a killer that SIGKILLs writers at
random points (``killload``: P writers x R readers over one directory, the
writers restarted after each kill), for

- ``write_entry`` / ``read_entry`` on plain entry files;
- ``GoCache.put`` / ``get`` / ``get_file`` (and the bytes at the path it
  returns) on one Go cache directory;
- ``GoCache`` under concurrent put, get and a forced trim (golang/go#70600:
  an index entry whose output was trimmed must be a miss, never a crash or
  a wrong hit).

The GOCACHEPROG server process is in test_kills_server.py.

Each default-protocol test asserts zero wrong answers and zero lost entries;
its known-bad twin, ``write-file`` (O_TRUNC first: the entry is empty, then
short, while it is rewritten, and stays so if the writer dies), must give
some, so the checker can tell the two apart.  Each test prints its tally
(``pytest -s``): the figures of the README's Reliability table.  Rounds
scale with ``HYPOTHESIS_PROFILE=deep`` (``make test-deep``).
"""

from __future__ import annotations

import hashlib
import os
import random
import resource
import signal
import time
from pathlib import Path
from typing import Callable

from killload import HIT, MISS, SCALE, WRONG, Board, Tally, accepted_corruptions, action_id, payloads, run_load
from reference.entry import read_entry, write_entry
from reference.gocache import TRIM_LIMIT_S, GoCache
from spec.protocols import CATALOGUE

ACTIONS = 12
WRITERS, READERS = 3, 2
KILLS = 80 * SCALE
# The delay before a kill is uniform in [0, MAX_DELAY): a few puts' time,
# so a kill lands anywhere in a writer's loop, mostly inside a put.
MAX_DELAY = 0.006
# Entries of 16 KiB - 512 KiB: a write of several pages, which SIGKILL can
# cut short between pages (a 175-byte write it cannot).
MIN_SIZE, MAX_SIZE = 16 << 10, 512 << 10
DEFAULT, WRITE_FILE = "write-then-truncate", "write-file"


def report(tally: Tally, tmp: Path) -> None:
    print(tally.row())
    wrong = tmp / "wrong.txt"
    if wrong.exists():
        print(wrong.read_text()[:600])
    assert tally.crashes == [], "\n".join(tally.crashes)
    assert tally.kills == KILLS and tally.kills_in_put > 0  # the kills did land inside writes


# ------------------------------------------------------------ entry files


class EntryStore:
    """write_entry / read_entry on one file per action (read_entry's own
    exact-length check; the bytes are then compared with the entry's)."""

    def __init__(self, dir: Path, data: list[bytes], protocol: str) -> None:
        self.paths = [str(dir / f"entry{a}") for a in range(len(data))]
        self.data = data
        self.protocol = CATALOGUE[protocol]
        self.notes: dict[str, int] = {}

    def put(self, a: int) -> None:
        write_entry(self.paths[a], self.data[a], protocol=self.protocol)

    def check(self, a: int) -> str:
        got = read_entry(self.paths[a], len(self.data[a]))
        if got is None:
            return MISS
        return HIT if got == self.data[a] else WRONG


def entry_load(tmp: Path, protocol: str) -> Tally:
    data = payloads(1, ACTIONS, MIN_SIZE, MAX_SIZE)
    (tmp / "entries").mkdir()
    return run_load(f"write_entry/read_entry, {protocol}", lambda: EntryStore(tmp / "entries", data, protocol),
                    actions=ACTIONS, writers=WRITERS, readers=READERS, kills=KILLS, max_delay=MAX_DELAY,
                    tmp=tmp, seed=1)


def test_killed_write_entry_never_loses_or_tears_an_entry(tmp_path: Path) -> None:
    tally = entry_load(tmp_path, DEFAULT)
    report(tally, tmp_path)
    assert tally.hits > 0
    assert (tally.wrong, tally.lost, tally.final_wrong, tally.final_lost) == (0, 0, 0, 0)


def test_killed_write_entry_write_file_twin_is_caught(tmp_path: Path) -> None:
    tally = entry_load(tmp_path, WRITE_FILE)
    report(tally, tmp_path)
    assert tally.wrong + tally.lost + tally.final_wrong + tally.final_lost > 0


# ------------------------------------------------------------ a Go cache


class CacheStore:
    """GoCache.put, and per check get (its entry must name the right
    output), get_file (ditto) and the bytes at the path get_file returned.

    ``trimmed``: entries may go away (a trim runs), so an output that
    vanishes between get_file and the read is a miss, noted "vanished", and
    so is one that comes back shorter than its entry says, noted
    "short_after_trim" (see test_a_hit_path_across_trim_and_a_killed_put).
    It also notes what the trim test needs to show it covered
    golang/go#70600: "dangling" (get hits, the output is gone, get_file
    misses) and "naive_wrong" - what a lookup that trusted the index entry
    without checking its output (the known-bad twin of get_file) would have
    answered wrongly."""

    def __init__(self, dir: Path, data: list[bytes], protocol: str, *, trimmed: bool = False,
                 log: Path | None = None) -> None:
        self.log = log  # where wrong answers are described, one line each
        self.cache = GoCache(str(dir), protocol=protocol, create=False)
        self.data = data
        self.ids = [action_id(a) for a in range(len(data))]
        self.outputs = [(hashlib.sha256(d).digest(), len(d)) for d in data]
        self.trimmed = trimmed
        self.notes: dict[str, int] = {"vanished": 0, "short_after_trim": 0, "dangling": 0, "naive_wrong": 0}

    def put(self, a: int) -> None:
        self.cache.put(self.ids[a], self.data[a])

    def check(self, a: int) -> str:
        entry = self.cache.get(self.ids[a])
        if entry is not None and (entry.output_id, entry.size) != self.outputs[a]:
            return self._wrong(a, f"get's entry names {entry!r}")
        if entry is not None and self.trimmed:
            self._naive(a, entry.output_id)
        hit = self.cache.get_file(self.ids[a])
        if hit is None:
            if entry is not None and not os.path.exists(self.cache.file_name(entry.output_id, "d")):
                self.notes["dangling"] += 1
            return MISS
        path, entry = hit
        if (entry.output_id, entry.size) != self.outputs[a]:
            return self._wrong(a, f"get_file's entry names {entry!r}")
        try:
            with open(path, "rb") as f:
                got = f.read()
        except FileNotFoundError:
            if not self.trimmed:
                return self._wrong(a, f"get_file's {path} is missing")
            self.notes["vanished"] += 1
            return MISS
        if self.trimmed and len(got) != entry.size:
            # The output was trimmed after get_file looked and is being put
            # again (a new file, not yet full): the bytes at a hit's path are
            # only the output if the reader checks the length it read, as
            # Go's GetMmap and GetBytes do.  With the check it is a miss.
            self.notes["short_after_trim"] += 1
            return MISS
        if got != self.data[a]:
            same = next((i for i, (x, y) in enumerate(zip(got, self.data[a])) if x != y), min(len(got), len(self.data[a])))
            return self._wrong(a, f"get_file's {path} has {len(got)} bytes, not {len(self.data[a])}; equal up to byte {same}")
        return HIT

    def _wrong(self, a: int, why: str) -> str:
        if self.log is not None:
            with open(self.log, "a") as f:
                f.write(f"pid {os.getpid()}, action {a}: {why}\n")
        return WRONG

    def _naive(self, a: int, output_id: bytes) -> None:
        try:
            with open(self.cache.file_name(output_id, "d"), "rb") as f:
                ok = f.read() == self.data[a]
        except FileNotFoundError:
            ok = False
        self.notes["naive_wrong"] += not ok


def cache_load(tmp: Path, protocol: str) -> Tally:
    data = payloads(2, ACTIONS, MIN_SIZE, MAX_SIZE)
    GoCache(str(tmp / "cache"))  # the 256 subdirectories, before the forks
    return run_load(f"GoCache put/get_file, {protocol}", lambda: CacheStore(tmp / "cache", data, protocol, log=tmp / "wrong.txt"),
                    actions=ACTIONS, writers=WRITERS, readers=READERS, kills=KILLS, max_delay=MAX_DELAY,
                    tmp=tmp, seed=2, notes=("vanished",))


def test_killed_gocache_put_never_loses_or_tears_an_entry(tmp_path: Path) -> None:
    tally = cache_load(tmp_path, DEFAULT)
    report(tally, tmp_path)
    assert tally.hits > 0
    assert (tally.wrong, tally.lost, tally.final_wrong, tally.final_lost) == (0, 0, 0, 0)
    assert accepted_corruptions(tmp_path / "cache") == []
    # What verify may still report after kills: an output cut short with no
    # entry pointing at it (a put killed before its index entry), or an index
    # entry a get rejects (created, killed before its bytes).  Never more.
    problems = GoCache(str(tmp_path / "cache"), create=False).verify().problems
    assert {p.kind for p in problems} <= {"corrupt-output", "corrupt-entry"}, problems


def test_killed_gocache_put_write_file_twin_is_caught(tmp_path: Path) -> None:
    tally = cache_load(tmp_path, WRITE_FILE)
    report(tally, tmp_path)
    assert tally.wrong + tally.lost + tally.final_wrong + tally.final_lost > 0


# ------------------------------------------------------------ trim (golang/go#70600)

TRIMMERS = 2
OLD_NS = (TRIM_LIMIT_S + 2 * 3600) * 10**9  # older than trim's cutoff (5 days + 1 hour)


def trimmer(dir: Path, data: list[bytes], seed: int) -> Callable[[Board], None]:
    """A process that, until stopped, makes a random half of the actions'
    files (index entries and outputs alike) look unused for over five days
    and runs a forced trim (Go's Trim, ignoring trim.txt's once-a-day
    rule), which removes them unless a get refreshed them in between."""
    ids = [action_id(a) for a in range(len(data))]
    outs = [hashlib.sha256(d).digest() for d in data]

    def body(board: Board) -> None:
        cache = GoCache(str(dir), create=False)
        rng = random.Random(seed)
        names = [cache.file_name(i, "a") for i in ids] + [cache.file_name(o, "d") for o in outs]
        while not board.stop[0]:
            old = time.time_ns() - OLD_NS
            for name in rng.sample(names, len(names) // 2):
                try:
                    os.utime(name, ns=(old, old))
                except FileNotFoundError:
                    pass
            cache.trim(force=True)
            time.sleep(rng.uniform(0, 0.002))
    return body


def test_trim_under_concurrent_put_and_get_is_a_miss_never_a_wrong_hit(tmp_path: Path) -> None:
    """Writers (killed as above), readers and two trimmers on one cache: an
    index entry whose output was trimmed (golang/go#70600) must be a miss;
    no reader may crash or get a wrong hit.  Entries are expected to go
    (that is what trim is for), so losses are not counted against it.  The
    known-bad twin runs in the same readers: a lookup that trusts the index
    entry without checking its output must answer wrongly."""
    data = payloads(3, ACTIONS, MIN_SIZE, MAX_SIZE)
    dir = tmp_path / "cache"
    GoCache(str(dir))
    trimmers = tuple(trimmer(dir, data, 30 + i) for i in range(TRIMMERS))
    tally = run_load("GoCache put/get_file/trim, write-then-truncate",
                     lambda: CacheStore(dir, data, DEFAULT, trimmed=True, log=tmp_path / "wrong.txt"),
                     actions=ACTIONS, writers=WRITERS, readers=READERS, kills=KILLS, max_delay=MAX_DELAY,
                     tmp=tmp_path, seed=3, others=trimmers, notes=("vanished", "short_after_trim", "dangling", "naive_wrong"))
    tally.trimmed = True
    report(tally, tmp_path)
    assert tally.wrong == 0 and tally.final_wrong == 0
    assert tally.extra["dangling"] > 0, "no index entry ever outlived its output: #70600 not covered"
    assert tally.extra["naive_wrong"] > 0, "the trusting lookup never went wrong: the checker is blind"
    assert accepted_corruptions(dir) == []


def test_a_hit_path_across_trim_and_a_killed_put(tmp_path: Path) -> None:
    """golang/go#70600 step by step, and what the trim test's readers see
    when they lose the race.  An output is trimmed while its index entry
    stays (get hits, get_file misses); a put of the same output dies half
    way (RLIMIT_FSIZE stands in for the kill: the same half-written file,
    every time); get_file still misses ("file incomplete"), never a short
    hit.  A path that get_file returned *before* the trim now holds the
    short file: a reader that checks the length it read (Go's GetMmap,
    GetBytes) misses, one that does not is handed short bytes - the same
    window as in Go's own cache, whose copyFile also writes in place.  A
    whole put afterwards makes it a hit again."""
    data = payloads(5, 1, 256 << 10, 256 << 10)[0]
    aid = action_id(0)
    cache = GoCache(str(tmp_path / "cache"))
    cache.put(aid, data)
    hit = cache.get_file(aid)
    assert hit is not None
    path, entry = hit
    old = time.time_ns() - OLD_NS
    os.utime(path, ns=(old, old))  # the output unused for 5 days, its index entry not
    assert cache.trim(force=True).removed == 1
    assert cache.get(aid) == entry and cache.get_file(aid) is None  # #70600: a miss, not a dangling hit

    pid = os.fork()
    if pid == 0:  # a put that dies half way through its output
        try:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (len(data) // 2, len(data) // 2))
            GoCache(str(tmp_path / "cache"), create=False).put(aid, data)
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    assert os.path.getsize(path) == len(data) // 2
    assert cache.get_file(aid) is None and cache.get_bytes(aid) is None
    with open(path, "rb") as f:
        got = f.read()
    assert len(got) != entry.size  # the length check makes it a miss...
    assert got == data[:len(got)]  # ...of what an unchecked reader of the old path gets

    cache.put(aid, data)
    assert cache.get_bytes(aid) == (data, cache.get(aid))
    assert accepted_corruptions(tmp_path / "cache") == []
