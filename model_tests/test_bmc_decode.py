"""proofs.bmc.decode: the solver's choices become a model trace, or a clear refusal.

A BMC counterexample is a list of (process, fault?) choices; ``decode``
names each fault as the model does and runs the steps on ``spec.machine``.
The solver encodes faults at byte granularity, where a step has at most one
fault; a choice the model cannot take (an ended process, a fault where the
model allows none or several) must be refused with DecodeError, never
turned silently into some other trace.
"""

from __future__ import annotations

import pytest

from proofs.bmc import DecodeError, decode, max_inodes
from spec import CATALOGUE, Process, Program, Role, System
from spec.ops import ENTRY, O_CREAT, O_WRONLY, Close, GetObject, Goto, Key, Label, Open, Outcome, PutObject, Return, Stat
from spec.state import Buf


def _system(granularity: str) -> System:
    return System.of(CATALOGUE["write-then-truncate"], 1, readers=0, faults=1, entry_length=2, granularity=granularity)


def test_a_fault_at_byte_granularity_is_named_as_the_model_names_it() -> None:
    """open, then a faulted write: one fault option, the model's own."""
    steps, worlds = decode(_system("byte"), [(0, False, 0), (0, True, 0)])
    assert steps[1].fault == ("ENOSPC", 0) and len(worlds) == 3
    assert worlds[-1].procs[0].last in ("ENOSPC", "")  # the error path may have moved on


def test_a_fault_the_model_allows_in_several_ways_is_refused() -> None:
    """At write granularity a write may fail after any prefix: several
    options, so a bare "fault" from the solver is ambiguous - refused."""
    with pytest.raises(DecodeError, match="the model allows"):
        decode(_system("write"), [(0, False, 0), (0, True, 0)])


def test_a_fault_where_the_model_allows_none_is_refused() -> None:
    """A reader's plain open never faults."""
    system = System.of(CATALOGUE["write-then-truncate"], 1, readers=1, faults=1, entry_length=2)
    reader = system.names.index("R1")
    with pytest.raises(DecodeError, match="the model allows \\[\\]"):
        decode(system, [(reader, True, 0)])


def test_an_ended_process_is_refused() -> None:
    """write-then-truncate takes four steps (open, write, ftruncate, close)."""
    steps, worlds = decode(_system("write"), [(0, False, 0)] * 4)
    assert worlds[-1].procs[0].status.value == "ok"
    with pytest.raises(DecodeError, match="which has ended"):
        decode(_system("write"), [(0, False, 0)] * 5)


# ------------------------------------------------------------ search agrees with the explorer

from proofs.bmc import search  # noqa: E402  # beside its use
from proofs.small_scope import search_all  # noqa: E402
from spec.properties import HITS, STAYS, get_property  # noqa: E402


@pytest.mark.parametrize("name, prop, readers, faults", [
    ("write-file", STAYS, 0, 0),
    ("write-file", HITS, 1, 0),
    ("go-index-entry", STAYS, 0, 1),
    ("create-exclusive", HITS, 1, 0),
])
def test_bmc_finds_the_shortest_violation_and_it_replays(name: str, prop: str, readers: int, faults: int) -> None:
    """BMC's counterexample has exactly the depth of the shortest violation
    an exhaustive search finds (symmetry breaking must not hide it, the
    step encoding must not invent a shorter one), and it replays in the
    model (``decode`` ran every step)."""
    p = get_property(prop)
    system = System.of(CATALOGUE[name], 2, readers, faults=faults, entry_length=1)
    shortest = search_all(system, p).violation_depth
    assert shortest is not None
    res = search(system, p, shortest + 1)
    assert res.outcome == "counterexample" and res.depth == shortest, (res.outcome, res.depth, shortest)
    assert res.steps is not None and len(res.worlds) == len(res.steps) + 1
    assert p.check(system, res.worlds[-1]) is not None  # the last world violates it


def test_symmetry_breaking_orders_only_identical_processes() -> None:
    """A write-file writer (W1) and a rename-into-place writer (W2) are not
    alike: the shortest violation needs W2 to publish before W1 takes any
    step (W1's O_TRUNC then empties W2's entry).  Symmetry breaking, which
    orders the first steps of identical processes only, must leave that
    run to BMC, at the depth the exhaustive search finds."""
    p = get_property(STAYS)
    system = System.of([CATALOGUE["write-file"], CATALOGUE["rename-into-place"]], 2, 0, entry_length=1)
    shortest = search_all(system, p).violation_depth
    assert shortest is not None
    res = search(system, p, shortest + 1)
    assert res.outcome == "counterexample" and res.depth == shortest, (res.outcome, res.depth, shortest)
    assert res.steps is not None and res.steps[0].process == "W2"


def test_symmetry_breaking_orders_only_neighbouring_twins() -> None:
    """Processes W1 and W3 run write-file, W2 between them runs
    rename-into-place: W1 and W3 are alike but not neighbours, and the
    shortest violation (two write-files) has W3 move before W2 ever does.
    BMC must find it at the exhaustive search's depth."""
    p = get_property(STAYS)
    base = System.of([CATALOGUE["write-file"], CATALOGUE["rename-into-place"]], 3, 0, entry_length=1)
    wf = [q for q in base.processes if q.program.name == "write-file"]
    rip = [q for q in base.processes if q.program.name == "rename-into-place"]
    system = System((wf[0], rip[0], wf[1]))
    assert system.kind_of == (0, 1, 0)
    shortest = search_all(system, p).violation_depth
    res = search(system, p, (shortest or 0) + 1)
    assert shortest is not None and res.outcome == "counterexample" and res.depth == shortest, (res.depth, shortest)


def test_max_inodes_counts_the_creating_operations_of_forward_only_programs() -> None:
    """Each rename-into-place writer creates one inode (its temp), each
    write-then-truncate writer one (the entry); a reader none.  A program
    that jumps back may run an operation many times: one per step then."""
    assert max_inodes(System.of(CATALOGUE["rename-into-place"], 2, 0, entry_length=1), 50) == 2
    assert max_inodes(System.of(CATALOGUE["write-then-truncate"], 3, 1, entry_length=1), 50) == 3
    loop = Program("loop", Role.WRITER, (Label("top"), Open(ENTRY, O_WRONLY | O_CREAT), Close(), Goto("top")))
    assert max_inodes(System((Process(loop, (("entry", b"a"),)),)), 7) == 7


@pytest.mark.parametrize("cut, body", [(-1, None), (0, b""), (1, b"X"), (2, b"XY")])
def test_a_get_fault_is_decoded_as_the_cut_the_solver_chose(cut: int, body: bytes | None) -> None:
    """For a GET the solver picks the fault's variant (no body, or a body
    cut after k bytes): decode must name exactly that one."""
    key = Key("o/k")
    prog = Program("g", Role.WRITER, (PutObject(key), GetObject(key, "buf", "output"), Stat(ENTRY), Return(Outcome.OK)))
    system = System((Process(prog, (("entry", b"ab"), ("output", b"XYZ"))),), faults=1)
    steps, worlds = decode(system, [(0, False, 0), (0, True, cut)])
    assert steps[1].fault == ("EIO", cut)
    buf = worlds[-1].procs[0].regs[0]
    assert (buf.data if isinstance(buf, Buf) else None) == body


def test_bmc_finds_nothing_where_the_protocol_is_safe() -> None:
    """write-then-truncate keeps its entry complete: no counterexample."""
    p = get_property(STAYS)
    res = search(System.of(CATALOGUE["write-then-truncate"], 2, 0, faults=1, entry_length=1), p, 8)
    assert res.outcome == "none", res
