"""docs/BENCHMARKS.md: its numbers come from the bench code, and it shows
only plots that exist.

Benchmarks are not tests: nothing here looks at a time.  The promises:

- ``python -m bench --quick`` (what ``make bench`` runs, on tiny
  instances, into a temporary directory) writes a document that is exactly
  what its data renders to, drawn plots for every figure, and numbers the
  code computes: the explorer's state counts are the closed forms of the
  write-then-truncate yardstick (C(N+7, 7) with symmetry reduction, as the
  hand-written probe in the same subprocess also counts, and 8^N without),
  SPIN's are what ``proofs.promela.lifted_states`` predicts, every theorem
  has its declared outcome, every baseline is its own ratio 1.
- The committed docs/BENCHMARKS.md is exactly what the committed
  docs/img/benchmarks.json renders to, names only plots that exist and
  shows every plot of its data.
- The checker (``bench.report.problems``) catches a document edited by
  hand, a plot that is gone and a plot the document does not show.

The plots need matplotlib (the ``bench`` extra); without it the quick run
writes the document and data only, and the test of the drawn plots skips.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from math import comb
from pathlib import Path
from typing import Any

import pytest

from bench.report import DATA, DOC, IMG, plot_files, problems, render

REPO = Path(__file__).resolve().parent.parent
HAVE_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bench-quick")
    proc = subprocess.run([sys.executable, "-m", "bench", "--quick", "--plots-optional", "--out", str(out)],
                          cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


def _data(directory: Path) -> dict[str, Any]:
    return dict(json.loads((directory / IMG / DATA).read_text()))


def _without_missing_plots(found: list[str]) -> list[str]:
    return found if HAVE_MATPLOTLIB else [p for p in found if "does not exist" not in p]


def test_quick_run_document_is_what_its_data_renders_to(quick: Path) -> None:
    data = _data(quick)
    assert data["quick"] is True
    assert _without_missing_plots(problems(quick)) == []
    text = (quick / DOC).read_text()
    assert "QUICK RUN - NOT THE BENCHMARK FIGURES" in text
    for field in ("CPU", "cores", "memory", "kernel", "Python", "Go", "Z3", "SPIN"):
        assert f"| {field} |" in text, field


@pytest.mark.skipif(not HAVE_MATPLOTLIB, reason="matplotlib (pip install '.[bench]') is not installed")
def test_quick_run_draws_every_plot(quick: Path) -> None:
    for name, _ in plot_files(_data(quick)):
        assert (quick / IMG / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name


def _points(data: dict[str, Any], key: str) -> list[dict[str, Any]]:
    curve = next(c for c in data["explorer"]["curves"] if c["key"] == key)
    return [p for p in curve.get("points", []) if "stopped" not in p]


def test_quick_run_numbers_are_the_codes(quick: Path) -> None:
    data = _data(quick)
    reduced = _points(data, "write-then-truncate/symmetry")
    assert reduced, "the yardstick curve measured nothing"
    for p in reduced:
        # A writer's 8 local states, counted: multisets of N of them.
        assert p["states"] == comb(p["n"] + 7, 7) == p["baseline_states"], p
    for p in _points(data, "write-then-truncate/no-symmetry"):
        assert p["states"] == 8 ** p["n"], p
    spin = next(c for c in data["explorer"]["curves"] if c["key"] == "write-then-truncate/spin")
    if "skipped" not in spin:
        from proofs.promela import lifted_states
        from spec import CATALOGUE, System, explore

        for p in _points(data, "write-then-truncate/spin"):
            system = System.of(CATALOGUE["write-then-truncate"], p["n"], 0, entry_length=4)
            assert p["states"] == lifted_states(explore(system, [], stop_when_all_violated=False,
                                                        symmetry=False)), p
    assert data["proofs"]["bad_runs"] == 0
    assert {r["outcome"] for r in data["proofs"]["theorems"]} <= {"proved", "counterexample"}
    cases = {r["case"] for r in data["writes"]["rows"]}
    for protocol in ("write-file", "write-then-truncate", "rename-into-place", "rename-into-place-fsync"):
        assert {f"write_entry: {protocol}", f"by hand: {protocol}"} <= cases
    for rows in (data["writes"]["rows"], data["throughput"]["rows"]):
        for r in rows:
            if r.get("case", r.get("impl")) == r["baseline"]:
                assert r["ratio"] == 1.0, r
    if "skipped" not in data["gobuild"]:
        for kind in ("cold", "warm"):
            builtin = next(r for r in data["gobuild"][kind]["rows"] if r["variant"] == "builtin")
            assert builtin["ratio"] == 1.0


def test_committed_document_is_its_data_and_its_plots_exist() -> None:
    docs = REPO / "docs"
    assert problems(docs) == []
    data = _data(docs)
    if data["quick"]:
        assert "QUICK RUN - NOT THE BENCHMARK FIGURES" in (docs / DOC).read_text()


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    for name, _ in plot_files(_data(dst)):  # without matplotlib: stand-ins, so only the twin's fault shows
        if not (dst / IMG / name).exists():
            (dst / IMG / name).write_bytes(b"\x89PNG\r\n\x1a\n")
    assert problems(dst) == []
    return dst


def test_checker_catches_a_number_edited_by_hand(quick: Path, tmp_path: Path) -> None:
    twin = _copy(quick, tmp_path / "edited")
    doc = twin / DOC
    text = doc.read_text()
    data = _data(twin)
    states = _points(data, "write-then-truncate/symmetry")[-1]["states"]
    assert f"| {states:,} |" in text
    doc.write_text(text.replace(f"| {states:,} |", f"| {states + 1:,} |", 1))
    assert any("not what" in p for p in problems(twin))


def test_checker_catches_a_missing_plot_and_an_unshown_one(quick: Path, tmp_path: Path) -> None:
    twin = _copy(quick, tmp_path / "gone")
    first = plot_files(_data(twin))[0][0]
    (twin / IMG / first).unlink()
    assert any(first in p and "does not exist" in p for p in problems(twin))

    twin = _copy(quick, tmp_path / "unshown")
    text = (twin / DOC).read_text()
    (twin / DOC).write_text("\n".join(ln for ln in text.splitlines() if f"({IMG}/{first})" not in ln) + "\n")
    assert any(first in p and "does not show" in p for p in problems(twin))


def test_renderer_refuses_data_of_another_format(quick: Path) -> None:
    data = _data(quick)
    data["format"] = -1
    with pytest.raises(ValueError, match="format"):
        render(data)


def test_python_floor_server_answers_from_its_table(tmp_path: Path) -> None:
    """``bench/py_null_server.py`` (the ``py-null`` row) speaks the
    protocol: its table's answer for a known action, a miss otherwise,
    blank lines skipped, ``close`` ends it.  Without this, its row would time a server that answers nothing."""
    table = tmp_path / "table"
    table.write_text('AAAA= ,"OutputID":"x","Size":1,"DiskPath":"/d"}\n')
    requests = (b'{"ID":1,"Command":"get","ActionID":"AAAA="}\n\n'
                b'{"ID":22,"Command":"get","ActionID":"BBBB="}\n\n{"ID":3,"Command":"close"}\n')
    done = subprocess.run([sys.executable, "-S", "-I", str(REPO / "bench" / "py_null_server.py"), str(table)],
                          input=requests, capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [b'{"ID":0,"KnownCommands":["get","close"]}',
                                        b'{"ID":1,"OutputID":"x","Size":1,"DiskPath":"/d"}',
                                        b'{"ID":22,"Miss":true}', b'{"ID":3}']
