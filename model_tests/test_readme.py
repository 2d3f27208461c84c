"""The README's "Modelling your own protocol" block runs as written.

The block defines a protocol value with a bug, explores it, prints its
shortest counterexample, replays it on real files, runs BMC on it and the
lockstep property test on real files: each must find the bug, and the test
checks what each printed.
"""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def _block(heading: str) -> str:
    text = README.read_text()
    section = text[text.index(heading):]
    m = re.search(r"```python\n(.*?)```", section, re.S)
    assert m is not None, f"no python block under {heading!r}"
    return m.group(1)


def test_modelling_your_own_protocol_runs_as_written() -> None:
    """Every checker in the block finds the bug, and nothing is registered
    by it: the catalogue is as it was."""
    from spec import CATALOGUE

    before = CATALOGUE.names()
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(_block("## Modelling your own protocol"), "README.md", "exec"), {})  # noqa: S102
    lines = out.getvalue().splitlines()
    assert lines[0] == "violated"
    assert any("ENOSPC (injected, after 0 bytes)" in ln for ln in lines), lines
    assert "(('entry', b''),)" in lines, lines
    assert "counterexample 3" in lines, lines
    assert lines[-1].startswith("published-entry-stays-complete violated"), lines
    assert CATALOGUE.names() == before and "my-writer" not in CATALOGUE
