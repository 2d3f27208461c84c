"""``make mutate``'s report and its list of equivalent mutants (no mutation run here).

The report must carry a Total row with a percentage, and the score must
leave out exactly the equivalent and incompetent mutants; every entry of
``mutation/equivalent.json`` must have a reason and name a target module;
a test process a hung mutant leaves in a scratch copy is killed.
"""

from __future__ import annotations

import importlib.util
import json
import signal
import subprocess
import sys
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parent.parent


def _tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("mutation_run", REPO / "mutation" / "run.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["mutation_run"] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


def test_the_report_has_a_total_row_with_a_percentage() -> None:
    run = _tool()
    a = run.Tally("spec/semantics.py", generated=100, run=10, killed=8, survived=1, equivalent=1, incompetent=0)
    b = run.Tally("proofs/bmc.py", generated=50, run=5, killed=3, survived=1, equivalent=0, incompetent=1,
                  survivors=["--- a\n+++ b\n-    x = 1\n+    x = 2\n"])
    text = run.render([a, b], partial=True, sample=5)
    assert "PARTIAL RUN" in text
    assert "| **Total** | 150 | 0 | 0 | 15 | 11 | 2 | 1 | 1 | 84.6% |" in text  # 11 / (11 + 2)
    assert "+    x = 2" in text


def test_every_equivalent_mutant_has_a_reason_and_a_target() -> None:
    run = _tool()
    entries = json.loads((REPO / "mutation" / "equivalent.json").read_text())
    modules = {t.module for t in run.TARGETS}
    for e in entries:
        assert e["module"] in modules and len(e["reason"]) > 20 and len(e["changed"]) >= 2, e
        diff = "--- a\n+++ b\n" + "".join(f"{sign}    {line}\n" for sign, line in zip("-+", e["changed"]))
        assert run._is_equivalent(e["module"], diff, entries)
    assert not run._is_equivalent("proofs/bmc.py", "--- a\n+++ b\n-    a\n+    b\n", entries)


def test_every_target_is_a_module_of_the_repository_with_tests() -> None:
    for t in _tool().TARGETS:
        assert (REPO / t.module).is_file(), t.module
        paths = [p for p in t.tests if p.startswith("model_tests/")]
        assert paths and all((REPO / p.split("::")[0]).is_file() for p in paths), t


def test_the_targets_are_the_modules_that_carry_the_promises() -> None:
    """Issue 16's list: spec's semantics, explorer and properties; the
    reference's interpreters, gocache, gocacheprog and summary; proofs'
    induction and BMC."""
    assert {t.module for t in _tool().TARGETS} == {
        "spec/semantics.py", "spec/explore.py", "spec/properties.py",
        "reference/osrun.py", "reference/osworld.py", "reference/outcomes.py",
        "reference/gocache.py", "reference/gocacheprog.py", "reference/summary.py",
        "proofs/induction.py", "proofs/bmc.py"}


def test_annotations_are_found_only_under_postponed_evaluation() -> None:
    """A mutant inside an annotation is equivalent only where annotations
    are strings (``from __future__ import annotations``)."""
    run = _tool()
    src = "from __future__ import annotations\n\ndef f(a: int | None) -> str | None:\n    x: int = a or 0\n    return str(x | 1)\n"
    spans = run.annotation_spans(src)
    assert run._inside((3, 9), spans) and run._inside((3, 28), spans) and run._inside((4, 7), spans)
    assert not run._inside((5, 15), spans)  # the code's own `|`
    assert run.annotation_spans(src.split("\n", 1)[1]) == []


def test_a_hung_test_process_left_in_a_scratch_copy_is_killed(tmp_path: Path) -> None:
    """A process still working in a module's scratch copy after its run
    (a mutant's test that hangs, started outside cosmic-ray's process
    group) is killed; a process working elsewhere is not."""
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    sleeper = [sys.executable, "-c", "import time; time.sleep(60)"]
    inside = subprocess.Popen(sleeper, cwd=scratch, start_new_session=True)
    outside = subprocess.Popen(sleeper, cwd=tmp_path, start_new_session=True)
    try:  # Popen returns once the child has exec'd: its cwd is set
        assert _tool().kill_leftovers(scratch) == [inside.pid]
        assert inside.wait(timeout=10) == -signal.SIGKILL
        assert outside.poll() is None
    finally:
        for p in (inside, outside):
            p.kill()
            p.wait()
