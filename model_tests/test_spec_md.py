"""spec/SPEC.md's generated regions equal what the code computes now."""

from __future__ import annotations

from idemwrite.specdoc import SPEC, generated, refresh, stale_regions


def test_spec_md_is_current() -> None:
    stale = stale_regions(SPEC.read_text(), generated())
    assert not stale, f"spec/SPEC.md is stale in {stale}: run python -m idemwrite.specdoc --write"


def test_a_changed_verdict_is_caught() -> None:
    """The known-bad twin: a SPEC whose table says write-file holds is stale."""
    regions = generated()
    text = refresh(SPEC.read_text(), regions)
    tampered = text.replace("| write-file | go-read-entry | published-entry-stays-complete | N=3 R=1 F=0 L=2 byte | violated",
                            "| write-file | go-read-entry | published-entry-stays-complete | N=3 R=1 F=0 L=2 byte | holds", 1)
    assert tampered != text
    assert stale_regions(tampered, regions) == ["verdicts"]
