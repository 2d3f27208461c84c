"""The explorer's figures against the committed manifest (spec/MANIFEST.json).

The manifest was recorded from the explorer before the one-table refactor
and checked equal to it, scenario by scenario: verdicts, states,
transitions and shortest-trace lengths.  These tests fail when the explorer
explores a different state space, even if every verdict stays the same.
"""

from __future__ import annotations

import copy
import json
import math

from idemwrite.manifest import MANIFEST, current, differences

RECORDED = json.loads(MANIFEST.read_text())["scenarios"]
NOW = current()


def test_every_scenario_has_its_recorded_verdict_and_counts() -> None:
    assert differences(RECORDED, NOW) == []


def test_the_manifest_is_the_whole_matrix() -> None:
    """218 scenarios: every claim of every writer and every mix, F = 0, 1.
    The 68 of one machine before the remote tier and the atlas of real tools
    explore exactly the states they did before them (456,563); 16 are the
    remote tier's, 134 the atlas's."""
    from spec.protocols import ATLAS

    atlas = {p.name for p in ATLAS}
    remote = [r for r in RECORDED if any(p.startswith("s3-") for p in r["protocols"])]
    before = [r for r in RECORDED if not set(r["protocols"]) & atlas and r not in remote]
    assert len(RECORDED) == 218 and len(before) == 68 and len(remote) == 16
    assert sum(r["states"] for r in before) == 456_563
    assert sum(r["states"] for r in remote) == 2_146
    assert sum(r["states"] for r in RECORDED) == 831_543


def test_a_changed_count_is_seen() -> None:
    """The known-bad twin of the comparison: one state more, one verdict
    flipped, one trace a step longer, one scenario missing: each is reported."""
    for key, change in (("states", lambda v: v + 1), ("verdict", lambda v: "holds" if v == "violated" else "violated"),
                        ("trace_steps", lambda v: None if v else 3)):
        tampered = copy.deepcopy(RECORDED)
        tampered[5][key] = change(tampered[5][key])
        diff = differences(tampered, NOW)
        assert len(diff) == 1 and key in diff[0], diff
    assert differences(RECORDED[:-1], NOW)


def test_the_symmetry_reduction_counts_writers_per_local_state() -> None:
    """The bench's instance, pinned as TLA+ pins a model's state count:
    write-then-truncate, L=4, no faults or readers, N=8: C(15, 7) states."""
    from spec import CATALOGUE, System, explore

    ex = explore(System.of(CATALOGUE["write-then-truncate"], 8, 0, entry_length=4), stop_when_all_violated=False)
    assert ex.states == math.comb(15, 7) == 6435
    assert ex.transitions == 24024
