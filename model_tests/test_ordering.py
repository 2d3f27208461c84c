"""Ordering promises of the reference, pinned on the real system calls.

Two promises whose whole value is an order:

- ``GoCache.put`` writes the output before the index entry that names it
  (``reference/gocache.py``: "The output is written before the index entry
  that points at it, as Go does"), so an entry never points at an output
  that is missing or incomplete;
- the server's summary (``reference.summary``) is written with
  rename-into-place: its bytes go to a private file, which is renamed over
  the summary only once complete, so a reader sees an old or a new summary,
  never a mix.

Each is checked twice, independently: on the system calls the process
really makes (recorded by strace with ``-y``, which names each
descriptor's file), and by stopping the process between the steps (a
fault that ends the write early, then a look at what a reader would find).
Both checks fail when the order is swapped (measured: ``put_index`` before
``put_output`` in ``GoCache.put``, and ``SUMMARY_PROTOCOL =
"write-then-truncate"``).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from reference.errors import WriteError
from reference.gocache import GoCache
from reference.summary import Summary, fact

REPO = Path(__file__).resolve().parent.parent
AID = bytes(range(32))
DATA = b"compiled object " * 100
STRACE = shutil.which("strace") or "/usr/bin/strace"
TRACE = ["-f", "-y", "-qq", "-e", "trace=openat,write,pwrite64,ftruncate,rename,renameat,renameat2,unlink,close"]


@pytest.fixture(scope="module")
def strace() -> str:
    """strace, if it can trace here (probed once); else the test skips."""
    if not Path(STRACE).exists():
        pytest.skip("strace is not installed (.ci/run installs it)")
    r = subprocess.run([STRACE, "-f", "-o", os.devnull, "true"], capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        pytest.skip(f"strace cannot trace here: {r.stderr.strip()[:200]}")
    return STRACE


def calls(strace: str, tmp: Path, code: str) -> list[tuple[str, str]]:
    """Run ``code`` in a traced child Python; the calls that touch files
    under ``tmp``, in order, as (call name, the one path under ``tmp`` it
    names: the descriptor's file for write/ftruncate/close, the path for
    openat/unlink, the destination for a rename, ``src -> dst``)."""
    log = tmp / "trace.log"
    r = subprocess.run([strace, *TRACE, "-o", str(log), sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=120, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert r.returncode == 0, r.stderr[-2000:]
    out = []
    where = re.escape(str(tmp))
    for line in log.read_text().splitlines():
        m = re.match(r"(?:\d+\s+)?(\w+)\((.*)", line)
        if not m or m.group(1) not in {"openat", "write", "pwrite64", "ftruncate", "rename", "renameat", "renameat2",
                                       "unlink", "close"}:
            continue
        name, args = m.groups()
        paths = re.findall(rf'"({where}[^"]*)"|<({where}[^>]*)>', args)
        named = [a or b for a, b in paths]
        if not named or "ENOENT" in line and name == "openat" and "O_CREAT" not in line:
            continue
        if name.startswith("rename"):
            out.append((name, " -> ".join(named[-2:]) if len(named) >= 2 else named[0]))
        else:
            out.append((name, named[0]))
    return out


# ------------------------------------------------------------ GoCache.put: output, then index entry


def test_put_writes_the_output_before_the_index_entry_on_the_system_calls(strace: str, tmp_path: Path) -> None:
    """Every call that writes the output (``-d``) - its open, its writes,
    its truncate, its close - comes before the first open of the index
    entry (``-a``)."""
    cache = tmp_path / "cache"
    GoCache(str(cache))
    seen = calls(strace, tmp_path, f"from reference.gocache import GoCache\n"
                                   f"GoCache({str(cache)!r}).put({AID!r}, {DATA!r})")
    output = [i for i, (_, p) in enumerate(seen) if p.endswith("-d")]
    index = [i for i, (_, p) in enumerate(seen) if p.endswith("-a")]
    assert output and index, seen
    assert any(seen[i][0] in ("write", "pwrite64") for i in output), "the output's bytes were not seen written"
    assert max(output) < min(index), f"the index entry was touched before the output was done: {seen}"


def test_an_entry_never_names_an_output_that_failed(tmp_path: Path) -> None:
    """Stopped between the steps: when the output cannot be written (a
    directory stands at its name: EISDIR), put fails and no index entry
    exists - a reader misses, never follows an entry to nothing."""
    cache = GoCache(str(tmp_path / "cache"))
    import hashlib

    out_path = cache.file_name(hashlib.sha256(DATA).digest(), "d")
    os.mkdir(out_path)
    os.mkdir(os.path.join(out_path, "x"))  # not an executable's directory: two levels, so not taken as one
    with pytest.raises((WriteError, OSError)):
        cache.put(AID, DATA)
    assert not os.path.lexists(cache.file_name(AID, "a")), "the index entry was written before the output failed"
    assert cache.get(AID) is None


# ------------------------------------------------------------ the summary: rename-into-place


def _summary_code(cache: Path, n: int) -> str:
    """A child's code: a summary of ``n`` facts written by Summary.finish."""
    return (f"import time\nfrom reference.summary import Summary, fact\n"
            f"s = Summary({str(cache)!r})\ns.load()\n"
            f"for i in range({n}):\n"
            f"    s.learn(b'%044d' % i, fact(time.time_ns(), 3, b'%064x' % i, b'\"Size\":3'))\n"
            f"s.finish(time.time_ns())\n")


def test_the_summary_is_written_to_a_private_file_then_renamed(strace: str, tmp_path: Path) -> None:
    """On the calls: no write, truncate or open for writing names the
    summary itself; its bytes go to another file, which is renamed onto the
    summary after its last write."""
    cache = tmp_path / "cache"
    GoCache(str(cache))
    summary = str(cache / "idemwrite-summary")
    seen = calls(strace, tmp_path, _summary_code(cache, 3))
    assert not [c for c in seen if c[1] == summary and c[0] in ("write", "pwrite64", "ftruncate")], seen
    renames = [i for i, (name, p) in enumerate(seen) if name.startswith("rename") and p.endswith(" -> " + summary)]
    assert len(renames) == 1, seen
    temp = seen[renames[0]][1].split(" -> ")[0]
    writes = [i for i, (name, p) in enumerate(seen) if p == temp and name in ("write", "pwrite64")]
    assert writes and max(writes) < renames[0], seen


def test_a_summary_write_stopped_midway_leaves_the_old_summary_whole(tmp_path: Path) -> None:
    """Stopped between the steps: a new summary whose write fails midway
    (EFBIG: RLIMIT_FSIZE in a forked child) leaves the old summary's bytes
    exactly as they were - never the new bytes over the old ones."""
    from test_faults import in_child  # the forked-child runner of the real-fault tests

    cache = tmp_path / "cache"
    GoCache(str(cache))
    first = Summary(str(cache))
    first.load()
    for i in range(4):
        first.learn(b"%044d" % i, fact(time.time_ns(), 3, b"%064x" % i, b'"Size":3'))
    first.finish(time.time_ns())
    old = (cache / "idemwrite-summary").read_bytes()

    def rewrite() -> None:
        s = Summary(str(cache))
        s.load()
        for i in range(4, 40):
            s.learn(b"%044d" % i, fact(time.time_ns(), 3, b"%064x" % i, b'"Size":3'))
        s.finish(time.time_ns())

    how, value = in_child(rewrite, fsize=len(old) // 2)
    assert how == "raised" and getattr(value, "errno_name", None) == "EFBIG", (how, value)
    assert (cache / "idemwrite-summary").read_bytes() == old
