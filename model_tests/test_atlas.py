"""The atlas of real tools: each protocol cites its source, the new
properties catch their known-bad twins, and each known bug's shortest
counterexample replays on real files and shows the reported symptom."""

from __future__ import annotations

import contextlib
import io
import pathlib

import pytest

from idemwrite.commands import main
from reference.replay import replay_snapshots
from spec import tools as T
from spec.explore import explore
from spec.properties import INDEX_SAME, NO_CORRUPT, NO_MIX, Property
from spec.protocols import ATLAS, CATALOGUE
from spec.state import Buf, Status
from spec.system import System
from spec.trace import Trace, from_exploration


def _run_cli(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(list(argv))
    return code, out.getvalue()


def _trace(protocol: str, prop: Property, faults: int = 0) -> Trace:
    """The shortest counterexample at the protocol's own default bounds."""
    p = CATALOGUE[protocol]
    system = System.of(p, p.writer_count(3), 1, p.reader_for(prop), faults=faults, variants=p.variants)
    ex = explore(system, [prop])
    assert prop.name in ex.violations, f"{protocol} keeps {prop.name}"
    return from_exploration(ex, prop)


def _bufs(regs: tuple[tuple[object, ...], ...]) -> list[bytes]:
    return [r.data for r in regs if isinstance(r, Buf)]


# ------------------------------------------------------------ sources


def test_every_atlas_protocol_cites_its_source_and_list_prints_it() -> None:
    """Each real tool's protocol carries repository, file, function and
    version, and ``idemwrite list`` prints that citation under it."""
    code, out = _run_cli("list")
    assert code == 0
    for p in ATLAS:
        s = p.source
        assert s is not None and all((s.tool, s.version, s.repository, s.file, s.function)), p.name
        block = out.split(f"\n{p.name} (writer)", 1)[1].split("\n\n", 1)[0]
        assert f"source: {s.cite()}" in block, p.name
        if not s.read:
            assert "source NOT read" in block  # an unread source is said so, not passed off as read


def test_known_bugs_are_cited() -> None:
    """The two reported bugs the atlas reproduces are in the sources."""
    bugs = {b for p in ATLAS if p.source for b in p.source.bugs}
    assert {"pypa/pip#12361", "openshift/hypershift#8624"} <= bugs


# ------------------------------------------------------------ the new properties


def test_mixing_needs_two_versions_of_the_bytes() -> None:
    """reader-never-mixes-writes is violated by pip's cache only when two
    downloads differ: with one version of the bytes it holds (so the
    property is not violated by every two-file reader)."""
    p = CATALOGUE["pip-http-cache"]
    two = explore(System.of(p, 2, 1, p.reader, variants=2), [NO_MIX])
    one = explore(System.of(p, 2, 1, p.reader, variants=1), [NO_MIX])
    assert two.verdict(NO_MIX) == "violated" and one.verdict(NO_MIX) == "holds"


def test_index_implies_same_write_separates_marker_order() -> None:
    """A marker written after its part, under a lock (cargo), keeps
    index-implies-same-write; metadata renamed before its body (pip) is
    the known-bad twin that breaks it."""
    cargo = CATALOGUE["cargo-unpack"]
    assert explore(System.of(cargo, 3, 1, cargo.reader), [INDEX_SAME]).verdict(INDEX_SAME) == "holds"
    assert _trace("pip-http-cache", INDEX_SAME).steps


def test_variants_give_writers_different_bytes_of_one_length() -> None:
    """System.of(..., variants=2): two versions, same length, no zero byte,
    the readers expecting the first; a bound too large is refused."""
    s = System.of(CATALOGUE["pip-http-cache"], 3, 1, T.PIP_READ, variants=2)
    entries = [dict(p.payloads)["entry"] for p in s.processes]
    assert entries == [b"ab", b"ab", b"cd", b"ab"] and s.variants() == 2
    from spec.system import SetupError

    with pytest.raises(SetupError, match="variants"):
        System.of(CATALOGUE["pip-http-cache"], 2, 1, variants=14)


# ------------------------------------------------------------ the known bugs, on real files


def test_pip_12361_metadata_with_no_body_replays(tmp_path: pathlib.Path) -> None:
    """pip 23.3: the shortest counterexample of reader-never-accepts-corrupt,
    replayed on real files, ends with the reader's hit holding no body
    while the metadata file is there and the body file is not."""
    trace = _trace("pip-http-cache-23.3", NO_CORRUPT)
    snaps = replay_snapshots(trace, tmp_path)
    last = snaps[-1]
    reader = last.procs[-1]
    assert reader.status is Status.HIT and _bufs(reader.regs) == []
    files = dict(last.files)
    assert files["entry"] is not None and files.get("output") is None


def test_pip_12364_still_mixes_two_downloads_on_real_files(tmp_path: pathlib.Path) -> None:
    """pip >= 23.3.1: with two versions of the bytes, the reader holds one
    download's metadata and the other's body - on real files too."""
    trace = _trace("pip-http-cache", NO_MIX)
    reader = replay_snapshots(trace, tmp_path)[-1].procs[-1]
    parts = set(_bufs(reader.regs))
    writes = [{b"ab", b"AB"}, {b"cd", b"CD"}]
    assert len(parts) == 2 and not any(parts <= w for w in writes), parts


def test_hypershift_8624_partial_file_at_diskpath_replays(tmp_path: pathlib.Path) -> None:
    """hypershift's put before the fix: the go command takes, at DiskPath,
    a file that is not the complete output - on real files too."""
    trace = _trace("hypershift-put", NO_CORRUPT)
    last = replay_snapshots(trace, tmp_path)[-1]
    reader = last.procs[-1]
    got = _bufs(reader.regs)
    assert reader.status is Status.HIT and got and got[-1] != b"AB"


@pytest.mark.parametrize("name", ["hypershift-put-fixed", "pip-http-cache"])
def test_the_fixes_keep_reader_never_accepts_corrupt(name: str) -> None:
    """After #8624 and #12364 no reader accepts a partial or missing part."""
    p = CATALOGUE[name]
    for f in (0, 1):
        s = System.of(p, p.writer_count(3), 1, p.reader, faults=f, variants=p.variants)
        assert explore(s, [NO_CORRUPT]).verdict(NO_CORRUPT) == "holds", (name, f)


@pytest.mark.parametrize("protocol", ["pip-http-cache-23.3", "hypershift-put"])
def test_trace_replay_command_shows_the_real_files_agree(protocol: str) -> None:
    """``idemwrite trace PROTOCOL --property reader-never-accepts-corrupt
    --replay`` finds the bug and the real files agree with the model."""
    code, out = _run_cli("trace", protocol, "--property", NO_CORRUPT.name, "--replay")
    assert code == 0
    assert "the real files agree with the model at every step replayed" in out
