"""Model counterexamples replayed on the real kernel.

The explorer's shortest counterexample is a schedule; ``replay_trace`` forces
that schedule on real files.  The real shared files after every step must
equal the model's (``spec.trace.files``), and the failure the model predicts
must be *seen* on disk: ``write-file``'s entry empty or torn after
publication, ``go-index-entry``'s entry removed by the failing writer; and
for protocols built on the new operations, an entry emptied under flock
and one grown by O_APPEND.
"""

from __future__ import annotations

import pathlib

import pytest

from spec.explore import explore
from spec.ops import (
    ENTRY,
    O_APPEND,
    O_CREAT,
    O_RDONLY,
    O_TRUNC,
    O_WRONLY,
    Close,
    Data,
    Failed,
    Fdatasync,
    Flock,
    If,
    Invalid,
    Label,
    LockOp,
    Open,
    Outcome,
    Program,
    Read,
    Return,
    Role,
    Write,
)
from spec.protocols import CATALOGUE, Protocol
from spec.system import System
from spec.trace import Trace, TraceError, TraceStep, files, from_exploration, replay
from reference import syscalls
from reference.osworld import project
from reference.replay import replay_snapshots, replay_trace

STAYS = "published-entry-stays-complete"
HITS = "reader-after-publication-hits"


def setup(protocol: str, writers: int, readers: int, reader: str | None = None, **bounds: int) -> System:
    """The catalogue's ``protocol`` run by ``writers`` writers and
    ``readers`` readers (of ``reader``, by default go-read-entry)."""
    return System.of(CATALOGUE[protocol], writers, readers, CATALOGUE[reader] if reader else None, **bounds)


def counterexample(system: System, prop: str) -> Trace:
    result = explore(system, [prop])
    assert result.verdict(prop) == "violated", f"the explorer found no counterexample for {prop}"
    return from_exploration(result, prop)


def model_files(trace: Trace) -> list[tuple[tuple[str, bytes | None], ...]]:
    return [files(w.fs) for w in replay(trace)[1:]]


def test_write_file_real_entry_is_seen_empty_or_torn(tmp_path: pathlib.Path) -> None:
    system = setup("write-file", 2, 1)
    trace = counterexample(system, STAYS)
    real = replay_trace(trace, tmp_path)
    assert real == model_files(trace)
    payload = system.kinds[0].payload("entry")
    after = dict(real[-1])["entry"]
    assert after is not None and after != payload, "the published entry is no longer the payload"
    seen = [dict(f)["entry"] for f in real]
    assert b"" in seen or any(e is not None and len(e) == len(payload) and e != payload for e in seen)


def test_go_index_entry_real_entry_goes_missing(tmp_path: pathlib.Path) -> None:
    trace = counterexample(setup("go-index-entry", 2, 1, faults=1), STAYS)
    assert any(s.fault for s in trace.steps), "the counterexample needs the injected fault"
    real = replay_trace(trace, tmp_path)
    assert real == model_files(trace)
    assert dict(real[-1])["entry"] is None, "the failing writer's remove deleted the published entry"
    assert not (tmp_path / "entry").exists()


@pytest.mark.parametrize("system,prop", [
    (setup("write-file", 2, 1), HITS),
    (setup("create-exclusive", 2, 1), HITS),
    (setup("write-file", 2, 1, "mmap-read"), "mmap-reader-never-faults"),
    (setup("go-put", 2, 0, faults=1), "index-implies-complete-output"),
    (setup("write-file", 2, 1, "read-unvalidated"), "reader-never-accepts-corrupt"),
])
def test_every_state_of_other_counterexamples_agrees(tmp_path: pathlib.Path, system: System, prop: str) -> None:
    """Not just the files: every process's registers, pc and status too."""
    trace = counterexample(system, prop)
    worlds = replay(trace)[1:]
    snaps = replay_snapshots(trace, tmp_path)
    assert snaps == [project(system, w) for w in worlds]


def test_write_then_truncate_has_no_counterexample_and_replays_clean(tmp_path: pathlib.Path) -> None:
    """The fix: the explorer finds nothing, and a hand-made schedule that
    breaks write-file (the same steps) leaves a complete entry on disk."""
    system = setup("write-then-truncate", 2, 1)
    assert explore(system, [STAYS]).verdict(STAYS) == "holds"
    steps = tuple(TraceStep(p) for p in ["W1", "W1", "W2", "W1", "W1", "W1", "W2", "W2", "W2", "W2"])
    real = replay_trace(Trace(system, steps, STAYS), tmp_path)
    assert dict(real[-1])["entry"] == system.kinds[0].payload("entry")
    assert all(dict(f)["entry"] in (None, b"", b"a", b"ab") for f in real)


def test_replay_catches_a_broken_interpreter(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Known-bad twin: an OS interpreter that drops O_TRUNC never shows the
    empty entry, and the comparison with the model fails."""
    binder = syscalls.BINDINGS[Open]

    def no_trunc(ins: Open, o: syscalls.Operands) -> syscalls.Bound:
        return binder(Open(ins.path, ins.flags & ~O_TRUNC, ins.fd), o)

    monkeypatch.setitem(syscalls.BINDINGS, Open, no_trunc)
    trace = counterexample(setup("write-file", 2, 1), STAYS)
    assert replay_trace(trace, tmp_path) != model_files(trace)


def test_bad_traces_are_refused(tmp_path: pathlib.Path) -> None:
    system = setup("write-file", 1, 0)
    with pytest.raises(TraceError):
        replay_trace(Trace(system, (TraceStep("W9"),)), tmp_path / "a")
    (tmp_path / "b").mkdir()
    with pytest.raises(TraceError):
        replay_trace(Trace(system, (TraceStep("W1", ("ENOSPC", 0)),)), tmp_path / "b")  # budget 0
    (tmp_path / "c").mkdir()
    done = tuple(TraceStep("W1") for _ in range(5))
    with pytest.raises(TraceError):
        replay_trace(Trace(system, done), tmp_path / "c")


def test_the_sandbox_must_start_empty(tmp_path: pathlib.Path) -> None:
    (tmp_path / "stray").write_bytes(b"x")
    with pytest.raises(ValueError):
        replay_trace(Trace(setup("write-file", 1, 0), ()), tmp_path)


def test_every_catalogue_writer_has_its_claims_replayed(tmp_path: pathlib.Path) -> None:
    """Each declared violation at F<=1 replays on disk with files equal to
    the model's (a cheap sweep over the whole catalogue)."""
    n = 0
    for proto in CATALOGUE:
        for claim in proto.claims:
            if claim.property.name != STAYS or claim.holds_up_to is None or claim.holds_up_to >= 1:
                continue
            trace = counterexample(System.of(proto, 2, 0, faults=claim.holds_up_to + 1), STAYS)
            sandbox = tmp_path / proto.name
            sandbox.mkdir()
            assert replay_trace(trace, sandbox) == model_files(trace), proto.name
            n += 1
    assert n >= 4


def test_a_power_loss_is_refused_and_the_steps_before_it_replay(tmp_path: pathlib.Path) -> None:
    """A crash cannot be replayed on a live kernel: a specific TraceError
    naming the step; the steps before it agree with the model."""
    from spec.trace import CRASH
    from reference.replay import CrashNotReplayable

    prop = "published-entry-survives-crash"
    trace = counterexample(setup("rename-into-place", 1, 0, crashes=1), prop)
    n = next(j for j, s in enumerate(trace.steps, 1) if s.process == CRASH)
    with pytest.raises(CrashNotReplayable) as e:
        replay_trace(trace, tmp_path / "all")
    assert e.value.step == n and isinstance(e.value, TraceError)
    before = Trace(trace.system, trace.steps[:n - 1], prop)
    assert replay_trace(before, tmp_path / "before") == model_files(before)
    from reference.replay import replay_until_crash

    files_, stopped = replay_until_crash(trace, tmp_path / "until")
    assert files_ == model_files(before) and stopped is not None and stopped.step == n
    assert replay_until_crash(before, tmp_path / "clean")[1] is None


# ------------------------------------------------------------ the new operations

ERR = Failed()


def _locked_write_file() -> Program:
    """write-file's O_TRUNC race under an exclusive flock."""
    return Program("locked-write-file", Role.WRITER, (
        Open(ENTRY, O_WRONLY | O_CREAT), If(ERR, "fail"), Flock(LockOp.EXCLUSIVE), If(ERR, "close_fail"),
        Open(ENTRY, O_WRONLY | O_CREAT | O_TRUNC, "g"), If(ERR, "close_fail"), Write(Data("entry"), "g"),
        If(ERR, "close_fail"), Close("g"), Close(), Return(Outcome.OK),
        Label("close_fail"), Close(), Label("fail"), Return(Outcome.FAIL)), publishes=((ENTRY, "entry"),))


def _locked_reader() -> Program:
    return Program("locked-read", Role.READER, (
        Open(ENTRY, O_RDONLY), If(ERR, "miss"), Flock(LockOp.SHARED), Read(), Close(), If(Invalid("entry"), "miss"),
        Return(Outcome.HIT), Label("miss"), Return(Outcome.MISS)))


def _appender() -> Program:
    return Program("append", Role.WRITER, (
        Open(ENTRY, O_WRONLY | O_CREAT | O_APPEND), If(ERR, "fail"), Write(Data("entry")), If(ERR, "cf"), Fdatasync(),
        Close(), Return(Outcome.OK), Label("cf"), Close(), Label("fail"), Return(Outcome.FAIL)), publishes=((ENTRY, "entry"),))


def _new(writer: Program, reader: Program | None = None, faults: int = 0) -> System:
    return System.of(Protocol(writer), 2, 1 if reader else 0, reader, faults=faults)


@pytest.mark.parametrize("system,prop", [
    (_new(_locked_write_file(), _locked_reader()), STAYS),  # the lock orders readers; it does not stop O_TRUNC
    (_new(_appender(), CATALOGUE["go-read-entry"].program), HITS),  # two appends: the entry grows past its length
    (_new(_appender(), faults=1), STAYS),
])
def test_counterexamples_with_the_new_operations_replay(tmp_path: pathlib.Path, system: System, prop: str) -> None:
    """Counterexamples of protocols built on flock and O_APPEND: every
    state agrees on real files, and what the model predicts is seen."""
    trace = counterexample(system, prop)
    worlds = replay(trace)[1:]
    snaps = replay_snapshots(trace, tmp_path)
    assert snaps == [project(system, w) for w in worlds]
    entry = dict(snaps[-1].files)["entry"]
    assert entry != system.kinds[0].payload("entry"), "the published entry is not the payload any more"

