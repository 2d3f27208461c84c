"""spec/SPEC.md's generated regions equal what the code computes now."""

from __future__ import annotations

import pytest

from idemwrite.specdoc import SPEC, generated, refresh, stale_regions


@pytest.fixture(scope="module")
def regions() -> dict[str, str]:
    return generated()  # one run of the whole verdict matrix for both tests


def test_spec_md_is_current(regions: dict[str, str]) -> None:
    stale = stale_regions(SPEC.read_text(), regions)
    assert not stale, f"spec/SPEC.md is stale in {stale}: run python -m idemwrite.specdoc --write"


def test_a_changed_verdict_is_caught(regions: dict[str, str]) -> None:
    """The known-bad twin: a SPEC whose table says write-file holds is stale."""
    text = refresh(SPEC.read_text(), regions)
    tampered = text.replace("| write-file | go-read-entry | published-entry-stays-complete | N=3 R=1 F=0 L=2 byte | violated",
                            "| write-file | go-read-entry | published-entry-stays-complete | N=3 R=1 F=0 L=2 byte | holds", 1)
    assert tampered != text
    assert stale_regions(tampered, regions) == ["verdicts"]


def test_each_diagram_is_what_its_command_prints() -> None:
    """Each counterexample's Mermaid diagram in SPEC.md is exactly the
    output of the ``idemwrite trace ... --mermaid`` command printed above
    it: run every such command and find its output in the document."""
    import contextlib
    import io
    import re
    import shlex

    from idemwrite.cli import main

    text = SPEC.read_text()
    found = re.findall(r"\(`(idemwrite trace [^`]*--mermaid)`\):\n\n```mermaid\n(.*?)\n```", text, re.S)
    assert len(found) == 8, found  # one per property
    for command, diagram in found:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            assert main(shlex.split(command)[1:]) == 0
        assert out.getvalue().strip() == diagram.strip(), command
