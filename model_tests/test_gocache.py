"""GoCache: Go's on-disk format and validation, put/get, trim, verify.

The format cases are Go's own (``cmd/go/internal/cache/cache.go``): every
reason Go's ``DiskCache.get`` gives for a miss has a crafted entry here.
The comparison machine runs several writers (each with its own protocol)
on one directory and puts under the real kernel's EFBIG.  The write-failure
tests run the real kernel's EFBIG (RLIMIT_FSIZE in a child
process) through the catalogue protocols: write-then-truncate keeps another
writer's complete files, and Go's go-index-entry (remove on error) is the
known-bad twin that loses them.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reference.errors import WriteError
from reference.gocache import ENTRY_SIZE, Entry, GoCache, Miss, format_entry, parse_entry, parse_entry_slowly

AID = bytes(range(32))
OUT = hashlib.sha256(b"out").digest()
REPO = Path(__file__).resolve().parent.parent


def good() -> bytes:
    return format_entry(AID, OUT, 3, 1_700_000_000_000_000_000)


def with_field(at: int, text: bytes) -> bytes:
    raw = bytearray(good())
    raw[at:at + len(text)] = text
    return bytes(raw)


# ------------------------------------------------------------ the format


def test_format_is_gos_printf() -> None:
    raw = format_entry(AID, OUT, 3, 42)
    assert len(raw) == ENTRY_SIZE == 175
    assert raw == b"v1 %s %s %20d %20d\n" % (AID.hex().encode(), OUT.hex().encode(), 3, 42)


@pytest.mark.parametrize(
    "raw, reason",
    [
        (b"", "file is empty"),
        (good()[:100], "entry file incomplete"),
        (good()[:-1], "entry file incomplete"),
        (good() + b"x", "too long"),
        (good() + good(), "too long"),
        (with_field(0, b"v2"), "invalid header"),
        (with_field(2, b"x"), "invalid header"),
        (with_field(67, b"x"), "invalid header"),
        (with_field(132, b"0"), "invalid header"),
        (with_field(153, b"0"), "invalid header"),
        (good()[:-1] + b" ", "invalid header"),
        (with_field(3, b"zz"), "decoding ID"),
        (format_entry(bytes(32), OUT, 3, 1), "mismatched ID"),
        (with_field(68, b"g"), "decoding output ID"),
        (with_field(68, b"0 0"), "decoding output ID"),  # bytes.fromhex would skip the space
        (with_field(133, b" " * 18 + b"1_"), "parsing size"),  # Python's int() accepts 1_0
        (with_field(133, b" " * 17 + b"1 2"), "parsing size"),
        (with_field(133, b" " * 20), "parsing size"),
        (with_field(133, b" " * 18 + b"-1"), "negative size"),
        (with_field(133, b"99999999999999999999"), "parsing size"),  # beyond int64
        (with_field(154, b" " * 19 + b"x"), "parsing timestamp"),
        (with_field(154, b" " * 18 + b"-5"), "negative timestamp"),
    ],
)
def test_parse_misses_for_gos_reasons(raw: bytes, reason: str) -> None:
    assert parse_entry(AID, raw) == Miss(reason)


def test_parse_accepts_what_go_accepts() -> None:
    assert parse_entry(AID, good()) == Entry(OUT, 3, 1_700_000_000_000_000_000)
    # hex.Decode takes upper case; strconv.ParseInt takes a leading '+'.
    upper = with_field(3, AID.hex().upper().encode())
    assert parse_entry(AID, upper) == Entry(OUT, 3, 1_700_000_000_000_000_000)
    assert parse_entry(AID, with_field(133, b" " * 18 + b"+7")) == Entry(OUT, 7, 1_700_000_000_000_000_000)


@given(st.binary(min_size=32, max_size=32), st.binary(min_size=32, max_size=32),
       st.integers(0, 2**63 - 1), st.integers(0, 2**63 - 1))
def test_format_parse_round_trip(aid: bytes, out: bytes, size: int, tm: int) -> None:
    assert parse_entry(aid, format_entry(aid, out, size, tm)) == Entry(out, size, tm)


@given(st.binary(max_size=ENTRY_SIZE + 2))
def test_parse_never_raises(raw: bytes) -> None:
    assert isinstance(parse_entry(AID, raw), (Entry, Miss))


def _near_entries() -> st.SearchStrategy[bytes]:
    """Go-written entries with a few bytes replaced by ones that matter."""
    alphabet = st.sampled_from(b" +-_0123456789abcdefABCDEFgv\n\t")
    return st.builds(
        lambda size, tm, edits: _apply(format_entry(AID, OUT, size, tm), edits),
        st.integers(0, 2**63 - 1), st.integers(0, 2**63 - 1),
        st.lists(st.tuples(st.integers(0, ENTRY_SIZE - 1), alphabet), max_size=3),
    )


def _apply(raw: bytes, edits: list[tuple[int, int]]) -> bytes:
    b = bytearray(raw)
    for at, byte in edits:
        b[at] = byte
    return bytes(b)


@given(st.one_of(_near_entries(), st.binary(min_size=ENTRY_SIZE, max_size=ENTRY_SIZE)))
def test_fast_path_agrees_with_gos_check_by_check_path(raw: bytes) -> None:
    assert parse_entry(AID, raw) == parse_entry_slowly(AID, raw)


def _what_the_bytes_say(raw: bytes) -> Entry | None:
    """An oracle written from the format alone (not from gocache's parser):
    the entry ``raw`` states for AID, if its framing is Go's, its action ID
    is AID (hex digits in either case, as Go's hex.Decode accepts) and its
    fields are a 64-digit hex output ID and two non-negative decimal
    numbers padded with leading spaces; None otherwise."""
    framing = raw[:3] == b"v1 " and raw[67:68] == raw[132:133] == raw[153:154] == b" " and raw[174:] == b"\n"
    hexdigits = set(b"0123456789abcdefABCDEF")

    def number(field_: bytes) -> int | None:
        s = field_.lstrip(b" ")
        if s[:1] == b"+":
            s = s[1:]
        return int(s) if s and all(0x30 <= c <= 0x39 for c in s) and int(s) < 2**63 else None

    if not framing or raw[3:67].lower() != AID.hex().encode() or not set(raw[68:132]) <= hexdigits:
        return None
    size, tm = number(raw[133:153]), number(raw[154:174])
    if size is None or tm is None:
        return None
    return Entry(bytes.fromhex(raw[68:132].decode()), size, tm)


def test_one_changed_byte_never_yields_a_different_id() -> None:
    """Every one-byte change of a good entry, at every position to every
    byte value: corruption in the framing or the action ID is a miss, never
    another entry, and a change in a field yields exactly the entry the
    bytes state or a miss - never some other entry.  (Exhaustive: 175 x 256
    parses.)"""
    hits = {"framing or ID": 0, "fields": 0}
    for at in range(ENTRY_SIZE):
        for byte in range(256):
            raw = bytearray(good())
            raw[at] = byte
            got = parse_entry(AID, bytes(raw))
            want = _what_the_bytes_say(bytes(raw))
            assert got == (want if want is not None else got) and isinstance(got, Entry) == (want is not None), (at, byte, got)
            if at < 68 or at in (132, 153, 174):  # "v1 ", the action ID, the separators, the newline
                assert isinstance(got, Miss) or bytes(raw).lower() == good(), (at, byte, got)
                hits["framing or ID"] += isinstance(got, Entry)
            else:
                hits["fields"] += isinstance(got, Entry)
    # Not vacuous: the unchanged bytes (and upper-case hex in the ID) parse,
    # and so do the many changes that still state an entry.
    letters = sum(c in b"abcdef" for c in AID.hex().encode())
    assert hits["framing or ID"] == 68 + 3 + letters and hits["fields"] > 1000, hits


# ------------------------------------------------------------ put and get


@given(st.one_of(_near_entries(), st.binary(max_size=ENTRY_SIZE + 2)))
def test_get_agrees_with_lookup(tmp_path_factory: pytest.TempPathFactory, raw: bytes) -> None:
    """get (inlined for speed) and lookup (with reasons) read the same file alike."""
    d = tmp_path_factory.mktemp("c")
    (d / AID.hex()[:2]).mkdir()  # the one subdirectory needed (256 per example would be slow)
    c = GoCache(str(d), create=False)
    Path(c.file_name(AID, "a")).write_bytes(raw)
    got = c.lookup(AID, mark_used=False)
    assert c.get(AID) == (got if isinstance(got, Entry) else None)


def test_put_get_round_trip(tmp_path: Path) -> None:
    c = GoCache(str(tmp_path / "c"))
    assert c.get(AID) is None
    out, size = c.put(AID, b"hello")
    assert (out, size) == (hashlib.sha256(b"hello").digest(), 5)
    entry = c.get(AID)
    assert entry is not None and (entry.output_id, entry.size) == (out, 5)
    hit = c.get_file(AID)
    assert hit is not None
    path, _ = hit
    assert os.path.isabs(path) and path.startswith(c.dir + os.sep) and Path(path).read_bytes() == b"hello"
    assert c.get_bytes(AID) == (b"hello", entry)
    # Go's layout: xx/<hex>-a and xx/<hex>-d, 256 subdirectories, a README.
    assert (tmp_path / "c" / AID.hex()[:2] / f"{AID.hex()}-a").stat().st_size == ENTRY_SIZE
    assert len([p for p in (tmp_path / "c").iterdir() if p.is_dir()]) == 256
    assert (tmp_path / "c" / "README").read_text().startswith("This directory holds cached build artifacts")


def test_put_empty_output_and_overwrite(tmp_path: Path) -> None:
    c = GoCache(str(tmp_path))
    c.put(AID, b"")
    assert c.get_bytes(AID) == (b"", c.get(AID))
    c.put(AID, b"second")  # an action's entry may be overwritten (Go leaves them writable)
    assert c.get_bytes(AID) is not None and c.get_bytes(AID)[0] == b"second"  # type: ignore[index]


def test_put_repairs_too_long_and_corrupt_files(tmp_path: Path) -> None:
    c = GoCache(str(tmp_path))
    entry_path = Path(c.file_name(AID, "a"))
    entry_path.write_bytes(b"x" * 400)
    assert c.lookup(AID) == Miss("too long")
    out = hashlib.sha256(b"data").digest()
    Path(c.file_name(out, "d")).write_bytes(b"DATA")  # right size, wrong bytes
    c.put(AID, b"data")
    assert c.get_bytes(AID) is not None
    assert entry_path.stat().st_size == ENTRY_SIZE  # truncated only after writing


def test_get_file_misses_on_dangling_entry(tmp_path: Path) -> None:
    c = GoCache(str(tmp_path))
    out, _ = c.put(AID, b"payload")
    out_path = Path(c.file_name(out, "d"))
    out_path.write_bytes(b"pay")  # wrong size: Go's GetFile says "file incomplete"
    assert c.get(AID) is not None and c.get_file(AID) is None
    out_path.unlink()
    assert c.get_file(AID) is None


def test_get_bytes_checks_the_hash(tmp_path: Path) -> None:
    c = GoCache(str(tmp_path))
    out, _ = c.put(AID, b"payload")
    Path(c.file_name(out, "d")).write_bytes(b"PAYLOAD")
    assert c.get_file(AID) is not None and c.get_bytes(AID) is None


def test_executable_output_directory(tmp_path: Path) -> None:
    """Go 1.24+ caches executables as ``<out>-d/<name>``."""
    c = GoCache(str(tmp_path))
    body = b"\x7fELF..."
    out = hashlib.sha256(body).digest()
    d = Path(c.file_name(out, "d"))
    d.mkdir()
    (d / "tool").write_bytes(body)
    c.put_index(AID, out, len(body))
    hit = c.get_file(AID)
    assert hit is not None and hit[0] == str(d / "tool")
    report = c.verify()
    assert report.ok and report.executables == 1
    st = c.stat()
    assert st["executables"] == 1 and st["outputs"] == 1 and st["output_bytes"] == len(body)
    (d / "tool").write_bytes(body[:-1])  # the one file, short
    assert c.get_file(AID) is None
    (d / "tool").write_bytes(body)
    (d / "other").write_bytes(body)  # Go: "invalid binary cache entry"
    assert c.get_file(AID) is None
    assert sorted(p.kind for p in c.verify().problems) == ["corrupt-output", "dangling-entry"]


def test_get_refreshes_mtime_at_most_hourly(tmp_path: Path) -> None:
    c = GoCache(str(tmp_path))
    out, _ = c.put(AID, b"x")
    a, d = c.file_name(AID, "a"), c.file_name(out, "d")
    old = time.time_ns() - 2 * 3600 * 10**9
    recent = time.time_ns() - 60 * 10**9
    os.utime(a, ns=(old, old))
    os.utime(d, ns=(recent, recent))
    assert c.get_file(AID) is not None
    assert os.stat(a).st_mtime_ns > old  # older than an hour: refreshed
    assert os.stat(d).st_mtime_ns == recent  # used a minute ago: left alone
    os.utime(a, ns=(old, old))
    c.verify()
    assert os.stat(a).st_mtime_ns == old  # verify only reads


def test_bad_ids_are_refused(tmp_path: Path) -> None:
    c = GoCache(str(tmp_path))
    with pytest.raises(ValueError, match="32 bytes"):
        c.put(b"short", b"x")
    with pytest.raises(ValueError, match="32 bytes"):
        c.get(b"")


def test_unknown_protocol_is_refused_before_any_write(tmp_path: Path) -> None:
    c = GoCache(str(tmp_path), protocol="no-such-protocol")
    with pytest.raises(ValueError, match="no-such-protocol"):
        c.put(AID, b"x")
    assert c.get(AID) is None


def test_read_only_open_touches_nothing(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        GoCache(str(tmp_path / "missing"), create=False)
    assert not (tmp_path / "missing").exists()


# ------------------------------------------------------------ write errors


FAILING_PUT = """
import resource, signal, sys
from reference.gocache import GoCache
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)   # EFBIG instead of a kill
resource.setrlimit(resource.RLIMIT_FSIZE, (64, resource.RLIM_INFINITY))
c = GoCache(sys.argv[1], protocol=sys.argv[2])
try:
    c.put(bytes(range(32)), b"y" * 1000)
except Exception as e:
    print(type(e).__name__)
"""


@pytest.mark.parametrize("protocol, survives", [("write-then-truncate", True), ("go-index-entry", False)])
def test_failed_put_never_undoes_another_writers_entry(tmp_path: Path, protocol: str, survives: bool) -> None:
    """Writer A puts; writer B's put of the same bytes fails (EFBIG from the
    real kernel).  write-then-truncate leaves A's entry and output whole;
    Go's remove-on-error (go-index-entry) deletes A's output: the twin."""
    c = GoCache(str(tmp_path))
    c.put(AID, b"y" * 1000)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    r = subprocess.run([sys.executable, "-c", FAILING_PUT, str(tmp_path), protocol],
                       capture_output=True, text=True, env=env, timeout=60)
    assert r.stdout.strip() == "WriteError", r.stderr
    assert (c.get_bytes(AID) is not None) is survives


# ------------------------------------------------------------ trim


def _age(path: str, seconds: int) -> None:
    t = time.time_ns() - seconds * 10**9
    os.utime(path, ns=(t, t))


def test_trim_removes_only_entries_unused_for_five_days(tmp_path: Path) -> None:
    c = GoCache(str(tmp_path))
    old_out, _ = c.put(AID, b"old")
    new_aid = bytes(31) + b"\x01"
    new_out, _ = c.put(new_aid, b"new")
    day = 24 * 3600
    _age(c.file_name(AID, "a"), 5 * day + 2 * 3600)
    _age(c.file_name(old_out, "d"), 5 * day + 2 * 3600)
    _age(c.file_name(new_aid, "a"), 5 * day)  # within the extra hour of slack: kept
    stray = tmp_path / "00" / "notes.txt"
    stray.write_text("not a cache file")
    _age(str(stray), 30 * day)
    report = c.trim()
    assert (report.skipped, report.removed) == (False, 2)
    assert c.get(AID) is None and c.get_file(new_aid) is not None and stray.exists()
    last = int((tmp_path / "trim.txt").read_text())
    assert abs(last - time.time()) < 600
    assert c.trim().skipped  # once a day


@pytest.mark.parametrize("content, skipped", [
    (b"%d", True), (b"%d\n", True), (b"garbage", False), (b"", False), (b"1_0", False),
])
def test_trim_txt_is_read_like_go(tmp_path: Path, content: bytes, skipped: bool) -> None:
    c = GoCache(str(tmp_path))
    (tmp_path / "trim.txt").write_bytes(content.replace(b"%d", b"%d" % int(time.time())))
    assert c.trim().skipped is skipped


def test_trim_txt_far_in_the_future_or_past_trims(tmp_path: Path) -> None:
    c = GoCache(str(tmp_path))
    (tmp_path / "trim.txt").write_text(str(int(time.time()) + 2 * 3600))
    assert not c.trim().skipped
    (tmp_path / "trim.txt").write_text(str(int(time.time()) - 25 * 3600))
    assert not c.trim().skipped
    (tmp_path / "trim.txt").write_text(str(int(time.time()) - 25 * 3600))
    assert not c.trim(force=False).skipped
    assert c.trim(force=True).skipped is False


def test_trim_waits_for_gos_lock_on_trim_txt(tmp_path: Path) -> None:
    """Go's lockedfile takes an flock on trim.txt; trim must wait for it."""
    c = GoCache(str(tmp_path))
    fd = os.open(tmp_path / "trim.txt", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    t = threading.Thread(target=c.trim)
    t.start()
    t.join(timeout=0.5)
    try:
        assert t.is_alive()  # blocked on the lock (never a false failure: slow only helps)
        assert (tmp_path / "trim.txt").read_bytes() == b""
    finally:
        os.close(fd)
    t.join(timeout=60)
    assert not t.is_alive() and (tmp_path / "trim.txt").read_bytes().isdigit()


# ------------------------------------------------------------ verify


def test_verify_names_every_bad_file(tmp_path: Path) -> None:
    c = GoCache(str(tmp_path))
    ids = [bytes([i]) * 32 for i in range(1, 6)]
    outs = [c.put(a, b"body %d" % i)[0] for i, a in enumerate(ids)]
    assert c.verify().ok
    Path(c.file_name(ids[0], "a")).write_bytes(b"")  # corrupt entry
    Path(c.file_name(outs[1], "d")).unlink()  # dangling entry
    Path(c.file_name(outs[2], "d")).write_bytes(b"BODY 2")  # corrupt output (same size)
    Path(c.file_name(ids[3], "a")).write_bytes(format_entry(ids[4], outs[3], 6, 1))  # mismatched ID
    (tmp_path / "07" / "stray.tmp").write_text("x")
    report = c.verify()
    got = sorted((p.kind, Path(p.path).name, p.detail) for p in report.problems)
    assert got == sorted([
        ("corrupt-entry", f"{ids[0].hex()}-a", "file is empty"),
        ("dangling-entry", f"{ids[1].hex()}-a", f"output {outs[1].hex()} is missing"),
        ("corrupt-output", f"{outs[2].hex()}-d", f"SHA-256 is {hashlib.sha256(b'BODY 2').hexdigest()}"),
        ("corrupt-entry", f"{ids[3].hex()}-a", "mismatched ID"),
        ("unexpected", "stray.tmp", "not a Go cache file name (xx/<64 hex>-a or -d)"),
    ])
    assert report.entries == 5 and not report.ok
    assert report.unreferenced_outputs == 2  # outs[0] and outs[3] lost their entries


def test_cli_verify_stat_trim(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from reference.cli import cache_main

    c = GoCache(str(tmp_path))
    c.put(AID, b"hello")
    assert cache_main(["verify", str(tmp_path)]) == 0
    assert cache_main(["stat", str(tmp_path), "--json"]) == 0
    assert '"entries": 1' in capsys.readouterr().out
    Path(c.file_name(AID, "a")).write_bytes(b"v1 junk")
    assert cache_main(["verify", str(tmp_path)]) == 1
    assert f"corrupt-entry   {c.file_name(AID, 'a')}: entry file incomplete" in capsys.readouterr().out
    assert cache_main(["trim", str(tmp_path), "--json"]) == 0
    assert '"skipped": false' in capsys.readouterr().out
    assert cache_main(["verify", str(tmp_path / "nope")]) == 2


# ------------------------------------------------------------ stateful: GoCache against a model

from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule  # noqa: E402  # beside its one use

ACTIONS = [bytes([i]) * 32 for i in (1, 2, 3)]
# Several writers on one directory, each its own GoCache with its own
# protocol: the two the model proves safe, and Go's go-index-entry, whose
# remove on a write error deletes what another writer published.
WRITERS = ("write-then-truncate", "rename-into-place", "go-index-entry")
DATAS = [b"", b"a", b"bb", b"object code" * 30]  # the last is longer than an index entry (175 bytes)
# RLIMIT_FSIZE for a faulted put: before the first byte, mid-output, mid-entry.
LIMITS = [0, 1, 100, 174]


def _faulted_put(cache: GoCache, aid: bytes, data: bytes, limit: int) -> tuple[str, object]:
    """``cache.put`` in a forked child whose files may not grow past
    ``limit`` bytes: the kernel's own EFBIG, mid-write."""
    from test_faults import in_child  # the forked-child runner of the real-fault tests

    return in_child(lambda: cache.put(aid, data), fsize=limit)


class GoCacheComparison(RuleBasedStateMachine):
    """The real directory and a model side by side, with several writers
    and real write faults.

    The model: per action, the set of outputs its entry may name and
    whether a miss is allowed (``must_hit``: the last thing that touched
    the entry was a successful put, and its output has not been damaged
    since); per output, the bytes on disk (None: absent).  Writers of one
    action may store different outputs (a rebuild), so a put that fails
    midway may leave the entry torn - a miss, never another answer.  Rules
    damage entries and outputs the way crashes and other programs do.  The
    invariants: every hit is an output put for that action, whose bytes
    hash to its ID; an entry that must hit does; verify counts the damaged
    outputs.  A failed put by a protocol in SAFE never destroys a complete
    output, and leaves an entry naming that same output a hit."""

    SAFE = frozenset(("write-then-truncate", "rename-into-place"))

    @initialize(protocols=st.lists(st.sampled_from(WRITERS), min_size=2, max_size=3))
    def setup(self, protocols: list[str]) -> None:
        import tempfile

        self._tmp = tempfile.TemporaryDirectory()
        self.writers = [GoCache(self._tmp.name, protocol=p) for p in protocols]
        self.cache = GoCache(self._tmp.name)  # the reader
        self.allowed: dict[bytes, set[bytes]] = {}  # action -> outputs its entry may name
        self.must_hit: dict[bytes, bytes] = {}  # action -> the output a get must find
        self.outputs: dict[bytes, bytes | None] = {}  # output ID -> bytes on disk
        self.faults = 0

    def teardown(self) -> None:
        if hasattr(self, "_tmp"):
            self._tmp.cleanup()

    def _damaged(self, out: bytes) -> None:
        for aid, o in list(self.must_hit.items()):
            if o == out:
                del self.must_hit[aid]

    @rule(w=st.integers(0, 2), aid=st.sampled_from(ACTIONS), data=st.sampled_from(DATAS))
    def put(self, w: int, aid: bytes, data: bytes) -> None:
        out, size = self.writers[w % len(self.writers)].put(aid, data)
        assert (out, size) == (hashlib.sha256(data).digest(), len(data))
        self.outputs[out] = data
        self.allowed.setdefault(aid, set()).add(out)
        self.must_hit[aid] = out

    @rule(w=st.integers(0, 2), aid=st.sampled_from(ACTIONS), data=st.sampled_from(DATAS), limit=st.sampled_from(LIMITS))
    def put_under_efbig(self, w: int, aid: bytes, data: bytes, limit: int) -> None:
        """A put whose writer hits the file-size limit: it fails with a
        WriteError naming EFBIG, or succeeds when nothing it writes grows a
        file past the limit."""
        writer = self.writers[w % len(self.writers)]
        how, value = _faulted_put(writer, aid, data, limit)
        out = hashlib.sha256(data).digest()
        self.allowed.setdefault(aid, set()).add(out)
        if how == "returned":
            assert value == (out, len(data))
            self.outputs[out] = data
            self.must_hit[aid] = out
            return
        self.faults += 1
        assert isinstance(value, WriteError) and value.errno_name == "EFBIG", value
        # What is on disk now is what the kernel left: a torn output of
        # write-then-truncate, none of go-index-entry's, the old one of
        # rename-into-place.  Read; but a safe protocol never destroys an
        # output that was complete (another writer's publication).
        before, after = self.outputs.get(out), _read_or_none(writer.file_name(out, "d"))
        if before == data and writer.protocol in self.SAFE:
            assert after == data, f"a failed put by {writer.protocol} destroyed a complete output: {after!r}"
        self.outputs[out] = after
        if after != data:
            self._damaged(out)
        if self.must_hit.get(aid) != out or writer.protocol not in self.SAFE:
            self.must_hit.pop(aid, None)  # the entry may be torn (an entry of another output, or removed)

    @precondition(lambda self: bool(self.allowed))
    @rule(aid=st.sampled_from(ACTIONS), junk=st.sampled_from([b"", b"v1 junk", b"x" * 400]))
    def corrupt_entry(self, aid: bytes, junk: bytes) -> None:
        Path(self.cache.file_name(aid, "a")).write_bytes(junk)
        self.must_hit.pop(aid, None)

    @precondition(lambda self: any(self.outputs.values()))
    @rule(data=st.data())
    def cut_output(self, data: st.DataObject) -> None:
        out = data.draw(st.sampled_from(sorted(o for o, b in self.outputs.items() if b)))
        cut = self.outputs[out][:-1]  # type: ignore[index]
        Path(self.cache.file_name(out, "d")).write_bytes(cut)
        self.outputs[out] = cut
        self._damaged(out)

    @precondition(lambda self: any(b is not None for b in self.outputs.values()))
    @rule(data=st.data())
    def remove_output(self, data: st.DataObject) -> None:
        out = data.draw(st.sampled_from(sorted(o for o, b in self.outputs.items() if b is not None)))
        os.unlink(self.cache.file_name(out, "d"))
        self.outputs[out] = None
        self._damaged(out)

    @invariant()
    def lookups_agree_with_the_model(self) -> None:
        if not hasattr(self, "cache"):
            return
        for aid in ACTIONS:
            hit = self.cache.get_file(aid)
            got = self.cache.get_bytes(aid)
            if aid in self.must_hit:
                want = self.must_hit[aid]
                assert hit is not None and hit[1].output_id == want, f"action {aid.hex()[:4]} must hit {want.hex()[:8]}: got {hit}"
                assert got is not None and got[0] == self.outputs[want]
            for answer in (hit, got):
                if answer is not None:  # never another answer: an output put for this action, whole
                    assert answer[1].output_id in self.allowed.get(aid, set()), answer
            if got is not None:
                assert hashlib.sha256(got[0]).digest() == got[1].output_id
            if hit is not None:
                assert Path(hit[0]).stat().st_size == hit[1].size

    @invariant()
    def verify_counts_the_damage(self) -> None:
        if not hasattr(self, "cache"):
            return
        report = self.cache.verify()
        corrupt_outputs = sum(b is not None and hashlib.sha256(b).digest() != o for o, b in self.outputs.items())
        assert sum(p.kind == "corrupt-output" for p in report.problems) == corrupt_outputs


def _read_or_none(path: str) -> bytes | None:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        return None


TestGoCacheComparison = GoCacheComparison.TestCase
# Each step lists 256 subdirectories (verify) and a faulted put forks: fewer
# examples than the profile's default keep this test to seconds, but
# runs long enough for several writers to meet on one action (the deep
# profile still scales).
_profile = settings()  # the loaded profile (conftest: ci or deep)
TestGoCacheComparison.settings = settings(
    _profile,
    max_examples=max(15, _profile.max_examples // 4),
    stateful_step_count=min(30, _profile.stateful_step_count),
)


def test_the_comparison_machine_meets_faults_and_several_writers() -> None:
    """Not vacuous: the machine's runs include puts that failed under the
    fault and several writers on one directory."""
    from hypothesis.stateful import run_state_machine_as_test

    seen = {"faults": 0, "writers": 0}

    class Counting(GoCacheComparison):
        def teardown(self) -> None:
            seen["faults"] += getattr(self, "faults", 0)
            seen["writers"] = max(seen["writers"], len(getattr(self, "writers", ())))
            super().teardown()

    run_state_machine_as_test(Counting, settings=settings(max_examples=5, stateful_step_count=30, derandomize=True,
                                                          database=None, deadline=None))
    assert seen["faults"] > 0 and seen["writers"] >= 2, seen


def test_the_comparison_machine_catches_go_index_entry() -> None:
    """The known-bad twin: counted as safe, go-index-entry (remove on a
    write error) is caught destroying another writer's complete output."""
    from hypothesis import Phase
    from hypothesis.stateful import run_state_machine_as_test

    class Trusting(GoCacheComparison):
        SAFE = frozenset(WRITERS)

    with pytest.raises(AssertionError, match="destroyed a complete output|must hit"):
        run_state_machine_as_test(Trusting, settings=settings(max_examples=50, stateful_step_count=30, derandomize=True,
                                                              database=None, deadline=None,
                                                              phases=(Phase.explicit, Phase.generate)))


# ------------------------------------------------------------ edges the mutation run found


def test_a_fresh_cache_object_finds_an_output_another_put(tmp_path: Path) -> None:
    """The output's subdirectory is looked at on first use by each GoCache
    (it need not be the action's)."""
    for i in range(4):
        GoCache(str(tmp_path)).put(bytes([i]) * 32, b"out%d" % i)
    for i in range(4):
        hit = GoCache(str(tmp_path)).get_file(bytes([i]) * 32)
        assert hit is not None and Path(hit[0]).read_bytes() == b"out%d" % i


def test_verify_counts_the_outputs_no_entry_names(tmp_path: Path) -> None:
    c = GoCache(str(tmp_path))
    for i in range(3):
        c.put(bytes([i]) * 32, b"body %d" % i)
    for i in range(2):
        os.unlink(c.file_name(bytes([i]) * 32, "a"))
    assert c.verify().unreferenced_outputs == 2


@pytest.mark.parametrize("ahead, skipped", [(0, True), (86399, False), (-86399, True), (-86400, False),
                                            (3599, True), (3600, False)])
def test_skip_trim_as_go_does(ahead: int, skipped: bool) -> None:
    """Go's skipTrim: trim.txt says a trim ran less than a day ago, and
    not an hour or more in the future (a bad clock: trim anyway).  ``ahead``
    is how far trim.txt's time is ahead of now, in seconds."""
    from reference.gocache import _skip_trim

    now = 1_800_000_000
    assert _skip_trim(b"%d\n" % (now + ahead), now) is skipped


@pytest.mark.parametrize("mode, readable", [(0o644, True), (0o640, False), (0o604, True), (0o600, False)])
def test_may_read_uses_the_others_bits_for_a_stranger(mode: int, readable: bool) -> None:
    from types import SimpleNamespace

    from reference.gocache import may_read

    st = SimpleNamespace(st_mode=0o100000 | mode, st_uid=4321, st_gid=4321)
    assert may_read(st, (1000, frozenset({1000}))) is readable  # type: ignore[arg-type]
