"""CrossHair over the PEP 316 contracts, and the entry reader diffed with
the reference.

``crosshair check`` runs as subprocesses (two at a time, one per core),
each condition bounded by ``--per_condition_timeout``: a clean run is a
bounded search that found nothing, not a proof - and would be as clean
for a contract whose precondition can never hold, so
``test_contract_witnesses.py`` meets every precondition of these contracts
and reaches each postcondition's interesting branch.  Every check has a
known-bad twin that it must catch:

- the contracts of ``spec.fs``, ``spec.goentry`` and the op wrappers of
  ``spec.contracts`` hold; twins with one bug each (an ftruncate that
  forgets to zero-extend, a cache path with ``%x`` for Go's ``%02x``)
  under the clause of the same contract that their bug breaks are refuted;
- the inductive step of ``write-then-truncate`` holds; that of
  ``write-file`` is refuted with the counterexample of golang/go#29667 (a
  published entry, a second writer's O_TRUNC);
- the model's entry reader (``spec.goentry``) agrees with the reference's
  (``reference.gocache``) on mangled entries - a Hypothesis differential
  test, because ``crosshair diffbehavior`` cannot see into these bytes
  parsers (it calls a lower-case-only hex decoder "likely the same" as
  Go's) - and the same test catches two plausible reader bugs.

The same facts are also checked concretely (exhaustively over the states the
explorer reaches, and by Hypothesis over 32-byte ids, where CrossHair's
symbolic search is too slow), so a CrossHair that silently explored nothing
would not leave them untested.  In the ``deep`` profile the property tests
also run on the ``hypothesis-crosshair`` backend.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Callable, Iterator

import pytest
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

from reference import gocache
from spec import CATALOGUE, System, explore, fs, goentry
from spec import contracts as C
from spec.goentry import ENTRY_SIZE, HASH_SIZE, INT64_MAX

ROOT = Path(__file__).resolve().parent.parent
DEEP = os.environ.get("HYPOTHESIS_PROFILE") == "deep"
# Seconds per condition: enough for the searches below to find their bugs
# with a wide margin on this 2-core machine; deep gives CrossHair more rope.
QUICK = "4" if DEEP else "1"
STEP = "60" if DEEP else "5"
REFUTE = "300" if DEEP else "240"  # stops at the counterexample (15-30 s alone)

# Every contract of these modules, each clause bounded (CrossHair costs
# about a second a clause whatever the clause); deep gives each more time.
CORRECT_PURE = ["spec/fs.py", "spec/goentry.py"]
CORRECT_OPS = [f"spec.contracts.{f}" for f in ("open_op", "write_op", "pwrite_op", "ftruncate_op", "initial_state")]

# Twins with one bug each.  Each carries one clause of the contract of the
# function it copies - the clause its bug breaks, checked below to be that
# function's own - because CrossHair spends its full time on every clause
# that holds, and the other clauses are checked on the real function.
TWINS = '''
from spec import goentry as G


def truncate_without_extend(old: bytes, n: int) -> bytes:
    """
    {truncate_pre}
    {truncate_post}
    """
    return old[:n]


def file_name_without_padding(cache_dir: str, id_: bytes, key: str) -> str:
    """
    pre: len(id_) == G.HASH_SIZE
    pre: key in ("a", "d")
    {file_name_post}
    """
    # The bug: %x instead of Go's %02x, so ids below 0x10 land in "0".."f".
    return f"{{cache_dir}}/{{id_[0]:x}}/{{id_.hex()}}-{{key}}"
'''
TWIN_CLAUSES = {
    "truncate_pre": (fs.truncate, "pre: n >= 0"),
    "truncate_post": (fs.truncate, "post: len(__return__) == n"),
    "file_name_post": (goentry.file_name, "post: __return__[len(cache_dir) + 1:len(cache_dir) + 3] == id_[:1].hex()"),
}


def _crosshair(*args: str) -> list[str]:
    return [sys.executable, "-m", "crosshair", *args]


class Runs:
    """The CrossHair runs of this module, two at a time (one per core), in
    the order given; :meth:`result` waits for one, starting the next ones
    as cores free up."""

    def __init__(self, jobs: list[tuple[str, list[str]]], env: dict[str, str]) -> None:
        self.queue = list(jobs)
        self.env = env
        self.running: dict[str, subprocess.Popen[str]] = {}
        self.done: dict[str, tuple[int, str]] = {}
        self._fill()

    def _fill(self) -> None:
        while self.queue and len(self.running) < 2:
            name, args = self.queue.pop(0)
            self.running[name] = subprocess.Popen(_crosshair(*args), cwd=ROOT, env=self.env, text=True,
                                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    def result(self, name: str) -> tuple[int, str]:
        """(exit code, output) of run ``name``."""
        while name not in self.done:
            first = next(iter(self.running))
            out, _ = self.running[first].communicate(timeout=900)
            self.done[first] = (self.running.pop(first).returncode, out)
            self._fill()
        return self.done[name]

    def stop(self) -> None:
        for p in self.running.values():
            p.kill()
            p.wait()


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runs]:
    """Every CrossHair run of this module.  The twins live in a temporary
    module, not in spec/."""
    twins_dir = tmp_path_factory.mktemp("twins")
    clauses = {}
    for key, (fn, clause) in TWIN_CLAUSES.items():
        assert clause in (fn.__doc__ or ""), f"{fn.__name__} no longer has the clause {clause!r}"
        clauses[key] = clause
    (twins_dir / "crosshair_twins.py").write_text(TWINS.format(**clauses))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(twins_dir)])}
    quick = ["--per_condition_timeout", QUICK, "--max_uninteresting_iterations", "10"]
    jobs = [
        ("refute", ["check", "--per_condition_timeout", REFUTE, "spec.contracts.write_file_step"]),
        ("pure", ["check", *quick, *CORRECT_PURE]),
        ("step", ["check", "--per_condition_timeout", STEP, "spec.contracts.write_then_truncate_step"]),
        ("ops", ["check", *quick, *CORRECT_OPS]),
        ("twins", ["check", "--per_condition_timeout", "10", "crosshair_twins.truncate_without_extend",
                   "crosshair_twins.file_name_without_padding"]),
    ]
    r = Runs(jobs, env)
    yield r
    r.stop()


# ------------------------------------------------------------ correct contracts


def test_fs_and_goentry_contracts_hold(runs: Runs) -> None:
    rc, out = runs.result("pure")
    assert rc == 0 and out.strip() == "", out


def test_op_semantics_contracts_hold(runs: Runs) -> None:
    rc, out = runs.result("ops")
    assert rc == 0 and out.strip() == "", out


def test_write_then_truncate_inductive_step_holds(runs: Runs) -> None:
    rc, out = runs.result("step")
    assert rc == 0 and out.strip() == "", out


# ------------------------------------------------------------ known-bad twins


def test_write_file_inductive_step_is_refuted(runs: Runs) -> None:
    """CrossHair reports the O_TRUNC counterexample: one writer has
    published the whole entry, the other's next step empties it."""
    rc, out = runs.result("refute")
    assert rc != 0, out
    found = [ln for ln in out.splitlines() if "write_file_step(" in ln and "error: false when calling" in ln]
    assert found, out
    # The reported state: a published entry, a running writer, whose step
    # leaves an entry that is not the whole payload.
    assert "'ok'" in found[0] and "'run'" in found[0], found[0]
    assert re.search(r"content=b'a?'", found[0]), found[0]


def test_twin_truncate_without_extend_is_refuted(runs: Runs) -> None:
    rc, out = runs.result("twins")
    assert re.search(r"error: false when calling truncate_without_extend\(b'', [1-9]", out), out


def test_twin_file_name_without_padding_is_refuted(runs: Runs) -> None:
    rc, out = runs.result("twins")
    assert re.search(r"error: false when calling file_name_without_padding\(", out), out


# ------------------------------------------------------------ the same facts, concretely


def _reachable_entry_states(name: str, writers: int, faults: int) -> list[C.EntryState]:
    """Every state the explorer reaches for ``name`` at length
    STEP_LENGTH, as EntryStates (canonical worlds keep inode 0 for the
    entry, which these programs never unlink)."""
    result = explore(System.of(CATALOGUE[name], writers, readers=0, faults=faults, entry_length=C.STEP_LENGTH), [],
                     stop_when_all_violated=False)
    return [C.from_world(w, C.STEP_LENGTH) for w in result.worlds()]


def test_write_then_truncate_invariant_is_inductive_on_every_reachable_pair() -> None:
    """Base case and vacuity: the invariant holds in every reachable state
    (so it is satisfiable and not too strong), and the step contract holds
    concretely from each of them, for both writers, with and without a
    fault: the exhaustive twin of CrossHair's symbolic search."""
    states = _reachable_entry_states("write-then-truncate", 2, 1)
    assert len(states) > 20
    checked = 0
    for s in states:
        assert C.well_formed(s, "write-then-truncate") and C.entry_invariant(s, "write-then-truncate"), s
        for i in (0, 1):
            if s.writers[i].status != "run":
                continue
            for fault in (False, True):
                after = C.write_then_truncate_step(s.content, s.writers[0], s.writers[1], i, fault)
                assert C.entry_invariant(after, "write-then-truncate"), (s, i, fault, after)
                checked += 1
    assert checked > 50


def test_write_file_invariant_breaks_on_a_reachable_state() -> None:
    """The refutation is not an artefact of an unreachable symbolic state:
    the explorer reaches a state where write-file's step breaks it."""
    broken = []
    for s in _reachable_entry_states("write-file", 2, 0):
        if not C.entry_invariant(s, "write-file"):
            continue
        for i in (0, 1):
            if s.writers[i].status == "run":
                after = C.write_file_step(s.content, s.writers[0], s.writers[1], i, False)
                if not C.entry_invariant(after, "write-file"):
                    broken.append((s, i))
    assert broken
    assert any(s.writers[1 - i].status == "ok" and s.content == C.PAYLOAD[:C.STEP_LENGTH] for s, i in broken)


ids = st.binary(min_size=HASH_SIZE, max_size=HASH_SIZE)
int64 = st.integers(0, INT64_MAX)
# Bytes a mutation may plant: each is in some field's grammar or just out of it.
NASTY = st.sampled_from(b" +-0189aAfFgG\n\x00_v")
# Where the grammar changes: the first and last byte of every field and
# separator, where a planted byte most often tells two parsers apart.
EDGES = sorted({0, 1, 2, 3, 66, 67, 68, 131, 132, 133, 152, 153, 154, 173, 174, 175})


def _maybe_crosshair(test: Callable[..., None]) -> Callable[..., None]:
    """Run on the hypothesis-crosshair backend in the deep profile: it
    reaches the narrow branches (a sign, a leading zero) by solving, not
    by luck."""
    # Each solved example costs about a second: far fewer than random ones.
    return settings(backend="crosshair", max_examples=100)(test) if DEEP else test


@_maybe_crosshair
@given(ids, ids, int64, int64)
def test_encoding_matches_the_reference_and_round_trips(action_id: bytes, output_id: bytes, size: int, time_ns: int) -> None:
    data = goentry.encode_entry(action_id, output_id, size, time_ns)
    assert data == gocache.format_entry(action_id, output_id, size, time_ns)
    assert len(data) == ENTRY_SIZE
    assert goentry.parse_entry(data, action_id) == goentry.Entry(output_id, size, time_ns)


entries = st.tuples(
    ids, ids, int64, int64,
    st.lists(st.tuples(st.sampled_from(EDGES) | st.integers(0, ENTRY_SIZE + 1), NASTY), max_size=3),  # bytes planted
    st.just(ENTRY_SIZE) | st.integers(0, ENTRY_SIZE + 2),  # where the file ends
    st.booleans(),  # ask for another action ID
    st.booleans(),  # hex digits in upper case (Go's hex.Decode takes both)
)


def _model_agrees_with_reference(case: tuple[bytes, bytes, int, int, list[tuple[int, int]], int, bool, bool]) -> None:
    """Model and reference agree on one mutated entry: hit or miss, the
    entry, and Go's reason for the miss."""
    action_id, output_id, size, time_ns, edits, cut, other_id, upper = case
    data = bytearray(goentry.encode_entry(action_id, output_id, size, time_ns) + b"\n\n")
    if upper:
        data[3:3 + 2 * goentry.HEX_SIZE + 1] = data[3:3 + 2 * goentry.HEX_SIZE + 1].upper()
    for at, byte in edits:
        data[at] = byte
    raw = bytes(data[:cut])
    asked = bytes(reversed(action_id)) if other_id else action_id
    ref = gocache.parse_entry(asked, raw[:ENTRY_SIZE + 1])  # what io.ReadFull hands Go
    mine = goentry.parse_entry(raw, asked)
    if isinstance(ref, gocache.Miss):
        assert mine is None and goentry.miss_reason(raw, asked) == ref.reason, (raw, ref, mine)
    else:
        assert mine == goentry.Entry(ref.output_id, ref.size, ref.time_ns), (raw, ref, mine)


@_maybe_crosshair
@given(entries)
def test_validation_matches_the_reference(case: tuple[bytes, bytes, int, int, list[tuple[int, int]], int, bool, bool]) -> None:
    """The model's reader (spec.goentry) and the reference's (gocache)
    agree on every entry, however mangled: the diff of the two readers."""
    _model_agrees_with_reference(case)


def _lowercase_hex(s: bytes) -> bytes | None:
    """Known-bad: refuses upper-case hex digits, which Go accepts."""
    try:
        return None if s != s.lower() else bytes.fromhex(s.decode("ascii"))
    except ValueError:  # UnicodeDecodeError included
        return None


def _python_int(field: bytes) -> int | None:
    """Known-bad: int() takes trailing spaces, underscores, any size."""
    try:
        return int(field)
    except ValueError:
        return None


@pytest.mark.parametrize("name, twin", [("_hex_decode", _lowercase_hex), ("decimal_field", _python_int)])
def test_the_reader_diff_catches_a_known_bad_model(monkeypatch: pytest.MonkeyPatch, name: str, twin: object) -> None:
    """The differential test above must fail when the model's reader has a
    plausible bug (``crosshair diffbehavior`` does not catch these: on
    these bytes parsers it reports "functions are likely the same")."""
    monkeypatch.setattr(goentry, name, twin)

    # No shrinking: the point is that it is found; the shrunk case is not read.
    @settings(max_examples=2000, derandomize=True, database=None, report_multiple_bugs=False,
              phases=(Phase.explicit, Phase.generate))
    @given(entries)
    def probe(case: tuple[bytes, bytes, int, int, list[tuple[int, int]], int, bool, bool]) -> None:
        _model_agrees_with_reference(case)

    with pytest.raises(AssertionError):
        probe()


@given(ids, st.sampled_from(["a", "d"]))
def test_file_name_matches_the_reference(id_: bytes, key: str) -> None:
    assert goentry.file_name("/cache", id_, key) == gocache.GoCache.file_name(_Dir("/cache"), id_, key)  # type: ignore[arg-type]


class _Dir:
    """Just enough of a GoCache for its file_name (which reads only .dir)."""

    def __init__(self, d: str) -> None:
        self.dir = d


def test_models_validation_is_coarser_than_gos() -> None:
    """The model's validation (``spec.fs.valid``: exact length, no
    zero byte) is coarser than Go's, in the safe direction: whatever Go
    accepts, the model's reader accepts too; the converse fails (a
    known-bad direction, shown by one counterexample)."""
    from spec.fs import valid

    good = goentry.encode_entry(bytes(32), bytes(32), 5, 7)
    assert valid(good, ENTRY_SIZE) and goentry.parse_entry(good, bytes(32)) is not None
    junk = b"x" * ENTRY_SIZE
    assert valid(junk, ENTRY_SIZE) and goentry.parse_entry(junk, bytes(32)) is None
