"""The explorer's reductions lose nothing, and a property says what its name says.

Promises checked on small instances (each explored in well under a second):

- symmetry reduction is sound and exact: with it, the explorer reaches
  exactly the canonical forms of the worlds it reaches without it (so the
  same number of classes) and gives every property the same verdict;
- the canonical form does not depend on the order of interchangeable
  processes: a world and the same world with two identical writers swapped
  have one canonical key (also for a hand-built world whose processes hold
  inodes no shared name holds);
- the fault budget is counted on every move: no reached world has used
  more injected faults than the system allows, or fewer than none, and the
  budget is reached;
- ``reader-never-mixes-writes`` (``spec.properties``): a reader holding the
  complete parts of one write holds; one holding parts of two different
  writes (``variants=2``) violates it.
"""

from __future__ import annotations

import pytest

from spec.explore import canonical, explore
from spec.fs import FileSystem
from spec.machine import initial
from spec.properties import NO_MIX, PROPERTIES
from spec.protocols import CATALOGUE
from spec.state import Buf, Desc, World
from spec.system import System

# Small enough to explore both ways in a few hundredths of a second; the
# temp files of rename-into-place give worlds whose inodes need renumbering.
SMALL = {
    "rename-into-place": System.of(CATALOGUE["rename-into-place"], n=2, readers=1, faults=1, entry_length=1),
    "write-file": System.of(CATALOGUE["write-file"], n=2, readers=1, faults=1, entry_length=1),
}


@pytest.mark.parametrize("name", sorted(SMALL))
def test_symmetry_reaches_exactly_the_canonical_worlds_with_the_same_verdicts(name: str) -> None:
    system = SMALL[name]
    reduced = explore(system, stop_when_all_violated=False)
    full = explore(system, stop_when_all_violated=False, symmetry=False)
    classes = {canonical(system, w) for w in full.worlds()}
    assert classes == set(reduced.worlds())
    assert reduced.states == len(classes) < full.states
    for prop in PROPERTIES:
        assert reduced.verdict(prop) == full.verdict(prop), prop


@pytest.mark.parametrize("name", sorted(SMALL))
def test_swapping_identical_writers_keeps_the_canonical_key(name: str) -> None:
    """W1 and W2 run one program on one payload: every world reached
    without reduction has the key of its mirror image."""
    system = SMALL[name]
    assert system.kind_of[0] == system.kind_of[1]
    full = explore(system, stop_when_all_violated=False, symmetry=False)
    reduced = explore(system, stop_when_all_violated=False)
    for w in full.worlds():
        swapped = w._replace(procs=(w.procs[1], w.procs[0], *w.procs[2:]))
        assert reduced.key(w) == reduced.key(swapped)


def test_swapping_writers_with_unnamed_inodes_keeps_the_canonical_form() -> None:
    """Any world, not only a reached one: two identical writers at the same
    step, each with an open descriptor on an inode no shared name holds;
    W1's private temp name is that inode, W2's is the shared ``output``.
    Their order in the world must not change its canonical form (the
    unnamed inodes are numbered by the sorted processes, whatever order
    they came in)."""
    system = System.of(CATALOGUE["pip-http-cache"], n=2, readers=0, entry_length=1)
    w = initial(system)
    fs = FileSystem((("entry", 0), ("output", 1)), (b"E", b"O", b"a", b"b"), (None,) * 4)
    w1 = w.procs[0]._replace(pc=2, regs=(Desc(2, 0, 2),), private=(("entry.tmp", 2),))
    w2 = w.procs[1]._replace(pc=2, regs=(Desc(3, 0, 2),), private=(("entry.tmp", 1),))
    assert canonical(system, w._replace(fs=fs, procs=(w1, w2))) == canonical(system, w._replace(fs=fs, procs=(w2, w1)))


@pytest.mark.parametrize("name", sorted(SMALL))
@pytest.mark.parametrize("symmetry", [True, False])
def test_every_world_stays_within_the_fault_budget(name: str, symmetry: bool) -> None:
    system = SMALL[name]
    used = {w.faults for w in explore(system, stop_when_all_violated=False, symmetry=symmetry).worlds()}
    assert used == {0, system.faults}


# ------------------------------------------------------------ reader-never-mixes-writes

# go-put publishes two parts (entry and output); with variants=2 its two
# writers write different bytes: W1 "ab"/"AB", W2 "cd"/"CD".
TWO_VERSIONS = System.of(CATALOGUE["go-put"], n=2, readers=1, variants=2)


def _reader_holding(*parts: bytes) -> World:
    """The initial world, its reader (the last process) holding ``parts``."""
    w = initial(TWO_VERSIONS)
    reader = w.procs[-1]._replace(regs=tuple(Buf(b) for b in parts))
    return w._replace(procs=(*w.procs[:-1], reader))


def test_a_reader_holding_parts_of_one_write_does_not_mix() -> None:
    assert NO_MIX.check(TWO_VERSIONS, _reader_holding(b"ab", b"AB")) is None
    assert NO_MIX.check(TWO_VERSIONS, _reader_holding(b"cd", b"CD")) is None


def test_a_reader_holding_parts_of_two_writes_mixes() -> None:
    reason = NO_MIX.check(TWO_VERSIONS, _reader_holding(b"ab", b"CD"))
    assert reason is not None and "different writes" in reason
