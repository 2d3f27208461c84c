"""A load of writer and reader processes with a killer: the harness of test_kills.

P writer processes put the same small set of actions (entries of known
bytes) into one store over and over, in random order; R reader processes
look every action up and check each answer against the bytes that were put;
the parent is the killer: it SIGKILLs a random writer after a random short
delay, reaps it and starts it again, ``kills`` times.  Writers say what they
are doing through shared memory (an anonymous ``MAP_SHARED`` mapping that
every forked process inherits), so the tally can say how many kills landed
inside a put, and readers know which puts had returned before their lookup.

What is counted (see :class:`Tally`):

- a *wrong answer*: a hit whose bytes are not the bytes put for that action
  (short, long, a hole, another action's bytes);
- a *lost entry*: a miss for an action some put of which had returned before
  the lookup began.  A reader reads the action's ``done`` flag, then looks
  up: the writer set the flag after its put returned, so the put happened
  before the lookup.  ``final_lost`` counts the same after every process has
  stopped (what a kill destroyed for good, not just for a moment).

Processes are forked from the test process (as test_entry's concurrent test
does), not spawned: a restart costs a fork (milliseconds), not an
interpreter start-up and the catalogue import (150 ms), so a test can kill
hundreds of times in seconds.  A child never returns into pytest: it ends
with ``os._exit``, writing any exception's traceback to a file the parent
reads (a reader that crashes fails the test).

Not modelled: machine crashes and power loss (a SIGKILL leaves the page
cache intact, so this tests process death, not durability).
"""

from __future__ import annotations

import functools
import hashlib
import mmap
import os
import random
import signal
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Literal, Protocol

from reference.gocache import GoCache

PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")
DEEP = PROFILE == "deep"
# How much longer a `make test-deep` run is than a `make test` one.
SCALE = 10 if DEEP else 1

# What a reader's check of one action found.
HIT, MISS, WRONG = "hit", "miss", "wrong"

# Writer phases, in shared memory.
IDLE, IN_PUT = 0, 1


class Store(Protocol):
    """One process's handle on the store under test (made after the fork)."""

    def put(self, a: int) -> None:
        """Put action ``a``'s bytes; return only when the put returned."""

    def check(self, a: int) -> str:
        """Look action ``a`` up: HIT (right bytes), MISS, or WRONG."""

    # Counts of whatever else a store's checks notice (its own names, given
    # to run_load as ``notes``), copied to the shared board after each check.
    notes: dict[str, int]


# A store factory runs in each child after the fork (and in the parent for
# the final check): nothing opened before a fork is shared by accident.
StoreFactory = Callable[[], Store]


def payloads(seed: int, n: int, min_size: int, max_size: int) -> list[bytes]:
    """``n`` entries of random bytes and random sizes, the same for every
    process (made once in the parent, inherited by the forks)."""
    rng = random.Random(seed)
    return [rng.randbytes(rng.randint(min_size, max_size)) for _ in range(n)]


def action_id(a: int) -> bytes:
    """A 32-byte action ID for action number ``a``."""
    return hashlib.sha256(b"killload action %d" % a).digest()


class Board:
    """The shared memory: one ``done`` byte per action, a phase and a put
    count per writer slot, and counters per reader.  Aligned 8-byte stores
    and loads are atomic on the machines this runs on; each counter has one
    writing process."""

    READER_FIELDS = ("gets", "hits", "misses", "wrong", "lost")

    def __init__(self, actions: int, writers: int, readers: int, notes: tuple[str, ...] = ()) -> None:
        self._maps: list[mmap.mmap] = []
        self.done = self._array("B", actions)
        self.stop = self._array("B", 1)
        self.phase = self._array("B", writers)
        self.puts = self._array("Q", writers)
        self.fields = self.READER_FIELDS + notes
        self.readers = [self._array("Q", len(self.fields)) for _ in range(readers)]

    def _array(self, fmt: Literal["B", "Q"], n: int) -> memoryview[int]:
        m = mmap.mmap(-1, max(8, 8 * n))  # anonymous and MAP_SHARED: forks share it
        self._maps.append(m)
        return memoryview(m).cast(fmt)[:n]

    def reader_total(self, name: str) -> int:
        i = self.fields.index(name)
        return sum(r[i] for r in self.readers)


@dataclass
class Tally:
    """What one load did; ``row`` renders it for the README's table."""

    label: str
    writers: int
    readers: int
    puts: int = 0
    gets: int = 0
    hits: int = 0
    kills: int = 0
    kills_in_put: int = 0  # the writer's phase said "in a put" just before the kill
    wrong: int = 0
    lost: int = 0
    final_lost: int = 0
    final_wrong: int = 0
    crashes: list[str] = field(default_factory=list)
    extra: dict[str, int] = field(default_factory=dict)
    trimmed: bool = False  # entries are meant to go: a miss after a put is no loss

    def row(self) -> str:
        extra = "".join(f", {k} {v}" for k, v in sorted(self.extra.items()))
        lost = "misses after a put (trimmed: not losses)" if self.trimmed else "lost entries"
        return (f"{self.label}: {self.writers} writers x {self.readers} readers, {self.puts} puts, "
                f"{self.gets} gets ({self.hits} hits), {self.kills} kills ({self.kills_in_put} inside a put), "
                f"wrong answers {self.wrong} (+{self.final_wrong} at the end), "
                f"{lost} {self.lost} (+{self.final_lost} at the end){extra}")


def _child(body: Callable[[], None], errors: Path) -> int:
    """Fork a process that runs ``body`` and exits; its pid."""
    pid = os.fork()
    if pid:
        return pid
    code = 0
    try:
        signal.signal(signal.SIGINT, signal.SIG_DFL)  # not pytest's handler
        body()
    except BaseException:
        code = 70
        try:
            (errors / f"{os.getpid()}.txt").write_text(traceback.format_exc())
        except BaseException:
            pass
    finally:
        os._exit(code)
    raise AssertionError("unreachable")


def _writer(board: Board, slot: int, make: StoreFactory, actions: int, seed: str) -> Callable[[], None]:
    def body() -> None:
        store = make()
        rng = random.Random(seed)
        while not board.stop[0]:
            a = rng.randrange(actions)
            board.phase[slot] = IN_PUT
            store.put(a)
            board.phase[slot] = IDLE
            board.done[a] = 1
            board.puts[slot] += 1
    return body


def _reader(board: Board, slot: int, make: StoreFactory, actions: int, seed: str) -> Callable[[], None]:
    def body() -> None:
        store = make()
        rng = random.Random(seed)
        gets, hits, misses, wrong, lost = range(5)
        counts = board.readers[slot]
        notes = [(board.fields.index(k), k) for k in board.fields[5:]]
        while not board.stop[0]:
            a = rng.randrange(actions)
            was_done = board.done[a]  # read before the lookup starts
            got = store.check(a)
            counts[gets] += 1
            if got == HIT:
                counts[hits] += 1
            elif got == WRONG:
                counts[wrong] += 1
            else:
                counts[misses] += 1
                if was_done:
                    counts[lost] += 1
            for i, k in notes:
                counts[i] = store.notes.get(k, 0)
    return body


def _reap(pid: int) -> int:
    """Wait for ``pid``; its raw wait status."""
    while True:
        try:
            return os.waitpid(pid, 0)[1]
        except InterruptedError:
            continue


def run_load(label: str, make: StoreFactory, *, actions: int, writers: int, readers: int, kills: int,
             max_delay: float, tmp: Path, seed: int = 0,
             others: tuple[Callable[[Board], None], ...] = (), notes: tuple[str, ...] = (),
             final: bool = True) -> Tally:
    """Run the load: start ``writers`` writers and ``readers`` readers (and
    a process for each of ``others``, called with the board: it must return
    once ``board.stop[0]`` is set), kill a random writer after a random
    delay in [0, ``max_delay``) seconds ``kills`` times, then stop everyone
    and check every action once more.  ``notes`` names the counts a
    store's checks keep beside hit/miss/wrong; their totals land in
    ``Tally.extra``.

    Child crashes (a traceback, an exit by anything but our SIGKILL) are
    returned in ``Tally.crashes``, not raised: the caller asserts."""
    board = Board(actions, writers, readers, notes)
    errors = tmp / "errors"
    errors.mkdir(parents=True, exist_ok=True)
    tally = Tally(label, writers, readers)
    rng = random.Random(f"{seed}-killer")
    generation = [0] * writers

    def start_writer(w: int) -> int:
        generation[w] += 1
        return _child(_writer(board, w, make, actions, f"{seed}-w{w}-{generation[w]}"), errors)

    wpids = [start_writer(w) for w in range(writers)]
    rpids = [_child(_reader(board, r, make, actions, f"{seed}-r{r}"), errors) for r in range(readers)]
    opids = [_child(functools.partial(body, board), errors) for body in others]
    try:
        for _ in range(kills):
            w = rng.randrange(writers)
            time.sleep(rng.uniform(0, max_delay))
            in_put = board.phase[w] == IN_PUT
            os.kill(wpids[w], signal.SIGKILL)
            status = _reap(wpids[w])
            if os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL:
                tally.kills += 1
                tally.kills_in_put += in_put
            else:  # it had died by itself before the kill: a crash
                tally.crashes.append(f"writer {w} exited with status {status:#x} before it was killed")
            board.phase[w] = IDLE
            wpids[w] = start_writer(w)
        time.sleep(max_delay)  # the last writer started gets to put too
    finally:
        board.stop[0] = 1
        for pid in wpids + rpids + opids:
            status = _reap(pid)
            if status != 0:
                tally.crashes.append(f"process {pid} ended with wait status {status:#x}")
    tally.crashes.extend(p.read_text() for p in sorted(errors.glob("*.txt")))
    tally.puts = sum(board.puts)
    tally.gets = board.reader_total("gets")
    tally.hits = board.reader_total("hits")
    tally.wrong = board.reader_total("wrong")
    tally.lost = board.reader_total("lost")
    tally.extra = {k: board.reader_total(k) for k in notes}
    if final:
        store = make()
        for a in range(actions):
            got = store.check(a)
            tally.final_wrong += got == WRONG
            tally.final_lost += got == MISS and bool(board.done[a])
    return tally


def accepted_corruptions(dir: Path) -> list[str]:
    """Every index entry in ``dir`` that get_file accepts but whose output's
    bytes are not the ones its entry names (their SHA-256 differs: short,
    torn): what a go command would be handed as a wrong hit.  Empty when
    the directory is consistent."""
    cache = GoCache(str(dir), create=False)
    bad = []
    for sub, name in cache.iter_files():
        if not name.endswith("-a"):
            continue
        aid = bytes.fromhex(name[:-2])
        hit = cache.get_file(aid)
        if hit is None:
            continue
        path, entry = hit
        with open(path, "rb") as f:
            got = f.read()
        if hashlib.sha256(got).digest() != entry.output_id:
            bad.append(f"{sub}/{name}: get_file accepts {path}, whose {len(got)} bytes are not the output")
    return bad
