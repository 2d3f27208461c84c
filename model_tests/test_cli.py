"""The idemwrite command line: tables, JSON, exit statuses, errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from idemwrite.cli import main

ROOT = Path(__file__).resolve().parent.parent


def test_check_json_has_the_documented_fields(capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["check", "--protocol", "write-file", "--faults", "0", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0
    fields = {"protocols", "property", "writers", "readers", "reader", "faults", "entry_length", "granularity",
              "verdict", "states", "transitions", "seconds", "trace"}
    for r in out["results"]:
        assert fields <= set(r)
    stays = next(r for r in out["results"] if r["property"] == "published-entry-stays-complete")
    assert stays["verdict"] == "violated" and stays["trace"]["steps"]


def test_check_exits_1_when_a_verdict_differs_from_the_declaration(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    assert main(["check", "--protocol", "go-index-entry", "--faults", "1"]) == 0
    # The known-bad twin: a catalogue that declared write-file safe.
    import idemwrite.commands as cli

    monkeypatch.setattr(cli, "declared", lambda setup, prop: ("holds", "tampered declaration"))
    assert main(["check", "--protocol", "write-file", "--faults", "0"]) == 1
    assert "differ from the catalogue" in capsys.readouterr().out


def test_trace_prints_a_step_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["trace", "write-file", "--property", "published-entry-stays-complete", "--writers", "2", "--readers", "0"]) == 0
    out = capsys.readouterr().out
    assert "W2" in out and "O_TRUNC" in out and "returns ok" in out


def test_trace_of_a_property_that_holds_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["trace", "write-then-truncate", "--property", "published-entry-stays-complete", "--writers", "2"]) == 1
    assert "no counterexample" in capsys.readouterr().err


def test_trace_mermaid(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["trace", "go-index-entry", "--property", "published-entry-stays-complete", "--mermaid"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("sequenceDiagram") and "unlink(entry)" in out


def test_unknown_protocol_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main(["check", "--protocol", "no-such-protocol"])
    assert e.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_bad_bounds_are_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--protocol", "write-file", "--entry-length", "0"]) == 2
    assert "entry length" in capsys.readouterr().err


def test_list_prints_every_protocol(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "go-index-entry" in out and "unlink(entry)" in out


def test_console_script_runs_the_whole_catalogue() -> None:
    exe = Path(sys.executable).parent / "idemwrite"
    done = subprocess.run([str(exe), "check", "--json"], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout)["results"]
    assert len(results) >= 50 and all(r["verdict"] == r["expected"] for r in results)
