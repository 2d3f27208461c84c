"""The public entry API: write_entry / read_entry and their errors.

Round trips for every writer write_entry accepts; every kind of miss;
every error class with a message that says what to do; and a concurrency
smoke test on the real kernel: processes write the same entry over and over
while a reader reads, and under ``write-then-truncate`` the reader never
misses after the first publication and never gets a partial entry - while
the known-bad ``write-file`` makes the same reader miss.
"""

from __future__ import annotations

import errno
import multiprocessing
import os
import pathlib
import time
from multiprocessing.synchronize import Event

import pytest

from reference.entry import entry_writers, no_hole_bytes, read_entry, write_entry
from spec.ops import ENTRY, O_CREAT, O_RDONLY, O_WRONLY, Close, Data, Failed, Ftruncate, If, Label, Length, Open, Outcome, Program, Read, Return, Role, Write
from spec.protocols import CATALOGUE
from reference.errors import (
    BadSizeError,
    IdemwriteError,
    NotAWriterError,
    UnknownProtocolError,
    UnsupportedProtocolError,
    WriteError,
)

# Go's index entry format: "v1 <action> <output> <size %20d> <time %20d>\n".
DATA = b"v1 " + b"a" * 64 + b" " + b"b" * 64 + b" " + b"%20d" % 175 + b" " + b"%20d" % 1_700_000_000 + b"\n"
assert len(DATA) == 175


@pytest.mark.parametrize("protocol", entry_writers())
def test_round_trip(tmp_path: pathlib.Path, protocol: str) -> None:
    path = tmp_path / "entry"
    write_entry(path, DATA, protocol=protocol)
    assert read_entry(path, len(DATA)) == DATA
    assert os.listdir(tmp_path) == ["entry"], "no temp file is left behind"


@pytest.mark.parametrize("value", [CATALOGUE["rename-into-place"], CATALOGUE["rename-into-place"].program])
def test_a_protocol_or_program_value(tmp_path: pathlib.Path, value: object) -> None:
    write_entry(tmp_path / "entry", DATA, protocol=value)  # type: ignore[arg-type]
    assert read_entry(tmp_path / "entry", len(DATA)) == DATA
    assert os.listdir(tmp_path) == ["entry"]


def _my_writer(name: str, keep: int | None) -> Program:
    """A user's writer, in no catalogue: write, then truncate to ``keep``
    bytes (None: to the entry's length)."""
    n = Length("entry") if keep is None else Length(None, keep)
    return Program(name, Role.WRITER, (Open(ENTRY, O_WRONLY | O_CREAT), If(Failed(), "fail"), Write(Data()),
                                       Ftruncate(n), Close(), Return(Outcome.OK), Label("fail"), Return(Outcome.FAIL)))


def test_a_users_own_program_and_no_cache_by_name(tmp_path: pathlib.Path) -> None:
    """A program value goes to write_entry as it is; two different programs
    of one name are two writers (nothing is cached by name)."""
    path = tmp_path / "entry"
    write_entry(path, DATA, protocol=_my_writer("mine", None))
    assert path.read_bytes() == DATA
    write_entry(path, DATA, protocol=_my_writer("mine", 3))
    assert path.read_bytes() == DATA[:3], "the second program of the same name ran, not the first"
    with pytest.raises(WriteError) as e:
        write_entry(tmp_path / "missing-dir" / "entry", DATA, protocol=_my_writer("mine", None))
    assert e.value.protocol == "mine" and e.value.errno_name == "ENOENT"


def test_a_reader_program_value_is_refused(tmp_path: pathlib.Path) -> None:
    reader = Program("my-reader", Role.READER, (Open(ENTRY, O_RDONLY), Read(), Close(), Return(Outcome.HIT)))
    with pytest.raises(NotAWriterError, match="my-reader"):
        write_entry(tmp_path / "e", DATA, protocol=reader)


def test_overwrite_with_the_same_bytes_and_a_shorter_file(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "entry"
    path.write_bytes(DATA + b"stale tail")
    write_entry(path, DATA)
    assert path.read_bytes() == DATA, "truncate-after cuts a too-long file"


def test_str_paths_and_bytes_like_data(tmp_path: pathlib.Path) -> None:
    write_entry(str(tmp_path / "e"), bytearray(DATA))
    assert read_entry(str(tmp_path / "e"), len(DATA)) == DATA


def test_str_data_is_refused_before_any_file_is_touched(tmp_path: pathlib.Path) -> None:
    with pytest.raises(TypeError):
        write_entry(tmp_path / "e", "text")  # type: ignore[arg-type]
    assert not (tmp_path / "e").exists()


# ------------------------------------------------------------ misses


def test_miss_on_absent(tmp_path: pathlib.Path) -> None:
    assert read_entry(tmp_path / "nothing", 175) is None


@pytest.mark.parametrize("content", [b"", DATA[:-1], DATA + b"x", DATA * 2])
def test_miss_on_wrong_length(tmp_path: pathlib.Path, content: bytes) -> None:
    (tmp_path / "entry").write_bytes(content)
    assert read_entry(tmp_path / "entry", len(DATA)) is None


def test_miss_on_invalid(tmp_path: pathlib.Path) -> None:
    write_entry(tmp_path / "entry", DATA)
    assert read_entry(tmp_path / "entry", len(DATA), validate=lambda b: b.startswith(b"v2 ")) is None
    assert read_entry(tmp_path / "entry", len(DATA), validate=lambda b: b.startswith(b"v1 ")) == DATA


def test_a_torn_entry_of_the_right_length_needs_validation(tmp_path: pathlib.Path) -> None:
    """write-file's torn entry (a zero-filled hole, right length) passes the
    length check alone: that is why the model's reader rejects zero bytes."""
    torn = bytes(100) + DATA[100:]
    (tmp_path / "entry").write_bytes(torn)
    assert read_entry(tmp_path / "entry", len(DATA)) == torn
    assert read_entry(tmp_path / "entry", len(DATA), validate=no_hole_bytes) is None


def test_miss_on_a_directory_and_on_zero_size(tmp_path: pathlib.Path) -> None:
    assert read_entry(tmp_path, 175) is None, "EISDIR is a miss"
    (tmp_path / "empty").write_bytes(b"")
    assert read_entry(tmp_path / "empty", 0) == b""


def test_a_validator_that_raises_is_not_a_miss(tmp_path: pathlib.Path) -> None:
    write_entry(tmp_path / "entry", DATA)

    def boom(b: bytes) -> bool:
        raise RuntimeError("validator bug")

    with pytest.raises(RuntimeError):
        read_entry(tmp_path / "entry", len(DATA), validate=boom)


# ------------------------------------------------------------ errors


def test_unknown_protocol(tmp_path: pathlib.Path) -> None:
    with pytest.raises(UnknownProtocolError) as e:
        write_entry(tmp_path / "e", DATA, protocol="write-then-truncat")
    assert "write-then-truncate" in str(e.value) and isinstance(e.value, ValueError)


@pytest.mark.parametrize("reader", ["go-read-entry", "mmap-read", "read-unvalidated", "go-get"])
def test_reader_protocol_is_refused(tmp_path: pathlib.Path, reader: str) -> None:
    with pytest.raises(NotAWriterError, match="read_entry"):
        write_entry(tmp_path / "e", DATA, protocol=reader)
    assert not (tmp_path / "e").exists()


@pytest.mark.parametrize("protocol", ["go-output-file", "go-put"])
def test_multi_file_protocols_are_refused(tmp_path: pathlib.Path, protocol: str) -> None:
    with pytest.raises(UnsupportedProtocolError, match="output"):
        write_entry(tmp_path / "e", DATA, protocol=protocol)


def test_write_error_names_the_call_and_errno(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "missing-dir" / "entry"
    with pytest.raises(WriteError) as e:
        write_entry(path, DATA)
    err = e.value
    assert (err.errno, err.errno_name, err.path, err.filename) == (errno.ENOENT, "ENOENT", str(path), str(path))
    assert err.op.startswith("f = open(entry") and "create the directory" in str(err)
    assert isinstance(err, IdemwriteError) and isinstance(err, OSError), "except OSError catches it"


def test_write_error_for_the_temp_file_names_it(tmp_path: pathlib.Path) -> None:
    with pytest.raises(WriteError) as e:
        write_entry(tmp_path / "missing-dir" / "entry", DATA, protocol="rename-into-place")
    assert e.value.file is not None and ".tmp." in e.value.file


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores permission bits")
def test_write_error_on_a_read_only_directory(tmp_path: pathlib.Path) -> None:
    tmp_path.chmod(0o500)
    try:
        with pytest.raises(WriteError) as e:
            write_entry(tmp_path / "entry", DATA)
        assert e.value.errno_name == "EACCES" and "permissions" in str(e.value)
    finally:
        tmp_path.chmod(0o700)


def test_write_error_when_the_path_is_a_directory(tmp_path: pathlib.Path) -> None:
    with pytest.raises(WriteError) as e:
        write_entry(tmp_path, DATA)
    assert e.value.errno == errno.EISDIR


def test_negative_size() -> None:
    with pytest.raises(BadSizeError, match=">= 0"):
        read_entry("/nonexistent", -1)


# ------------------------------------------------------------ concurrency


def _writer(path: str, protocol: str, until: float, done: Event) -> None:
    while time.time() < until and not done.is_set():
        write_entry(path, DATA, protocol=protocol)


def _reader(path: str, until: float, stop_on_miss: bool, out: "multiprocessing.Queue[tuple[int, int, int]]", done: Event) -> None:
    hits = misses = partial = 0
    while time.time() < until:
        got = read_entry(path, len(DATA))
        if got is None:
            misses += 1
            if stop_on_miss:
                break
        elif got != DATA:
            partial += 1
        else:
            hits += 1
    done.set()
    out.put((hits, misses, partial))


def hammer(tmp_path: pathlib.Path, protocol: str, seconds: float, stop_on_miss: bool = False) -> tuple[int, int, int]:
    """Publish once, then 2 writer processes rewrite the entry while a
    reader process reads it: (hits, misses, partial entries returned)."""
    ctx = multiprocessing.get_context("fork")
    path = str(tmp_path / "entry")
    write_entry(path, DATA, protocol=protocol)  # the first publication
    until = time.time() + seconds
    out: multiprocessing.Queue[tuple[int, int, int]] = ctx.Queue()
    done = ctx.Event()
    procs = [ctx.Process(target=_writer, args=(path, protocol, until, done)) for _ in range(2)]
    procs.append(ctx.Process(target=_reader, args=(path, until, stop_on_miss, out, done)))
    for p in procs:
        p.start()
    got = out.get(timeout=seconds + 30)
    for p in procs:
        p.join(timeout=seconds + 30)
        assert p.exitcode == 0
    return got


@pytest.mark.parametrize("protocol", ["write-then-truncate", "go-index-entry", "rename-into-place"])
def test_concurrent_writers_never_expose_a_partial_entry(tmp_path: pathlib.Path, protocol: str) -> None:
    hits, misses, partial = hammer(tmp_path, protocol, 0.5)
    assert hits > 0
    assert partial == 0, "a reader got a partial entry"
    assert misses == 0, "a reader missed after publication (reader-after-publication-hits)"


def test_known_bad_write_file_makes_readers_miss(tmp_path: pathlib.Path) -> None:
    """The twin the smoke test must catch: O_TRUNC-first writers empty the
    published entry, and the reader sees it (golang/go#29667)."""
    _, misses, _ = hammer(tmp_path, "write-file", 5.0, stop_on_miss=True)
    assert misses > 0, "write-file's truncate-first window went unseen"


@pytest.mark.parametrize("err", [
    UnknownProtocolError("x", ("a", "b")),
    NotAWriterError("go-read-entry", ("a",)),
    UnsupportedProtocolError("go-put", "also writes output", ("a",)),
    BadSizeError(-1),
    WriteError("/p", "write-then-truncate", "ENOSPC", "write(f, entry)", "/p"),
])
def test_errors_survive_pickling(err: IdemwriteError) -> None:
    """Errors cross process boundaries (multiprocessing, servers) intact."""
    import pickle

    back = pickle.loads(pickle.dumps(err))
    assert type(back) is type(err) and str(back) == str(err)
