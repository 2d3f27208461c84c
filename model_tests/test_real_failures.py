"""Real kernel failures against the model: the OS runner's error paths, not simulated.

The lockstep and fidelity machines inject a fault into both sides with the
model's errno, so a bug in the shared fault path cannot show as a
difference.  Here the kernel fails for real, in a forked child:

- ``RLIMIT_FSIZE``: a write that crosses the limit lands the bytes below it
  and then fails (EFBIG); an ``ftruncate`` that extends past it fails;
- ``RLIMIT_NOFILE`` at the lowest free descriptor: ``open`` fails (EMFILE);
- a directory in the way of ``rename``: EISDIR (a file over a directory)
  and ENOTEMPTY (a directory over a non-empty one);
- a read-only bind mount: ``open(O_CREAT)`` fails (EROFS; needs root and
  mount(2), skipped with the reason otherwise);
- a missing parent directory: ``open(O_CREAT)`` fails (ENOENT) - the model
  predicts this one itself, no fault is told to it.

and the whole-program runner (``reference.osrun.run``, the one
``write_entry`` uses) runs the program to its end.  The model runs the
same program with a fault of that errno placed where *the test's own
statement of the limit* says the kernel fails (for EFBIG: the first write
whose end passes the limit, with the bytes below it landed - computed
from the model's state, not from the real run).  Compared: the status, the
error result (errno, the failing operation, the path) and the whole
directory listing with every byte - a leftover temp file shows.

Faults that remain simulated (no local kernel makes them on demand) are
listed in spec/SPEC.md, "Faults: real and simulated".
"""

from __future__ import annotations

import os
import re
import resource
import shutil
import signal
import subprocess
from pathlib import Path as FsPath
from typing import Any, Callable

import pytest

from reference.osrun import RunResult, run
from spec import semantics as S
from spec.machine import Fault, PyDom, initial, step
from spec.state import published
from spec.ops import ENTRY, Close, Data, Ftruncate, If, Instr, Length, Mkdir, Open, OpenFlags, Outcome, Path, Program
from spec.ops import PWrite, Rename, Return, Role, Write
from spec.protocols import CATALOGUE
from spec.state import Desc, Status, World
from spec.system import Process, System

PAYLOAD = b"0123456789abcdef"  # 16 bytes, no zero byte
WRITERS = ("write-then-truncate", "go-index-entry", "write-file", "rename-into-place", "rename-into-place-fsync")
FAIL = Return(Outcome.FAIL)


def _err_branch(label: str) -> Instr:
    from spec.ops import Failed

    return If(Failed(frozenset()), label)


def _extend() -> Program:
    """Create the entry and extend it to its full length with ftruncate,
    then write it: the extending ftruncate is what fails."""
    from spec.ops import Label

    return Program("extend-then-write", Role.WRITER, (
        Open(ENTRY, OpenFlags.WRITE | OpenFlags.CREAT), _err_branch("fail"),
        Ftruncate(Length("entry")), _err_branch("close_fail"),
        PWrite(Data("entry"), 0), _err_branch("close_fail"),
        Close(), _err_branch("fail"),
        Return(Outcome.OK),
        Label("close_fail"), Close(), Label("fail"), FAIL,
    ))


# ------------------------------------------------------------ the model's side


Oracle = Callable[[Program, World, Instr], Fault]


def efbig_at(limit: int) -> Oracle:
    """RLIMIT_FSIZE as the test states it, on the model's state: a write
    whose end passes ``limit`` lands the bytes below it, then EFBIG; an
    ftruncate past ``limit`` is EFBIG with no effect."""

    def oracle(program: Program, world: World, ins: Instr) -> Fault:
        p = world.procs[0]
        if isinstance(ins, (Write, PWrite)):
            assert ins.data == Data("entry"), ins  # the whole payload: the programs here write nothing else
            if isinstance(ins, PWrite):
                off = ins.offset
            else:
                desc = p.regs[list(S.registers(program)).index(ins.fd)]
                assert isinstance(desc, Desc)
                off = desc.off
            if off + len(PAYLOAD) > limit:
                return ("EFBIG", max(0, limit - off))
        if isinstance(ins, Ftruncate):
            n = len(PAYLOAD) + ins.n.delta if ins.n.payload == "entry" else ins.n.delta
            if n > limit:
                return ("EFBIG", 0)
        return None

    return oracle


def first(errno: str, kind: type, nth: int = 0) -> Oracle:
    """The ``nth`` operation of type ``kind`` fails with ``errno`` (before
    any effect)."""
    seen = {"n": 0}

    def oracle(program: Program, world: World, ins: Instr) -> Fault:
        if isinstance(ins, kind):
            seen["n"] += 1
            if seen["n"] == nth + 1:
                return (errno, 0)
        return None

    return oracle


def model_run(program: Program, oracle: Oracle | None, dirs: tuple[str, ...] = ()) -> tuple[Status, tuple[str, str] | None,
                                                                                             dict[str, bytes]]:
    """The program in the model, one process, whole writes, with the
    oracle's fault where it says: the status, the first error (errno, the
    operation) and every file by name (private ones by their model name)."""
    system = System((Process(program, (("entry", PAYLOAD),)),), faults=1, granularity="write", )
    world = initial(system)
    err: tuple[str, str] | None = None
    while world.procs[0].status is Status.RUNNING:
        ins = program.code[world.procs[0].pc]
        fault = oracle(program, world, ins) if oracle is not None and world.faults == 0 else None
        if err is None:
            errno = _op_errno(system, world, ins, fault)
            err = (errno, str(ins)) if errno else None
        world = step(system, world, 0, fault)
    fs = world.fs
    files = {name: fs.contents[ino] for name, ino in fs.names if isinstance(fs.contents[ino], bytes)}
    files.update({f"{name}<private>": fs.contents[ino] for name, ino in world.procs[0].private})
    return world.procs[0].status, err, files  # type: ignore[return-value]


def _op_errno(system: System, world: World, ins: Instr, fault: Fault) -> str:
    """The errno the model's operation ends with, before the program's
    control flow moves on (a return clears it in the process state)."""
    p = world.procs[0]
    d = PyDom(system.kinds[p.kind], p, world.fs, fault, system.granularity, published(world), system.features)
    d.run_op(ins)
    return d.last


# ------------------------------------------------------------ the kernel's side


_PRIVATE = re.compile(r"\.\d+\.[0-9a-f]{8}$")


def listing(root: str) -> dict[str, bytes]:
    """Every regular file under ``root`` by relative name (a private name's
    pid and random part replaced, as the model names it)."""
    out = {}
    for d, _, names in os.walk(root):
        for n in names:
            full = os.path.join(d, n)
            rel = os.path.relpath(full, root)
            key = _PRIVATE.sub("", rel) + "<private>" if _PRIVATE.search(rel) else rel
            out[key] = FsPath(full).read_bytes()
    return out


def in_child(fn: Callable[[], Any], setup: Callable[[], None]) -> Any:
    """``fn()`` in a forked child after ``setup()`` (limits), its result
    pickled back; an exception in the child is re-raised here."""
    import pickle

    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            try:
                setup()
                out: tuple[str, Any] = ("ok", fn())
            except BaseException as e:
                out = ("raised", repr(e))
            data = pickle.dumps(out)
            while data:
                data = data[os.write(w, data):]
        finally:
            os._exit(0)
    os.close(w)
    chunks = []
    while chunk := os.read(r, 1 << 16):
        chunks.append(chunk)
    os.close(r)
    os.waitpid(pid, 0)
    how, value = pickle.loads(b"".join(chunks))
    assert how == "ok", value
    return value


def fsize(limit: int) -> Callable[[], None]:
    def setup() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write returns EFBIG instead of killing
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return setup


def nofile() -> None:
    """The next open fails: the soft limit at the lowest free descriptor."""
    lowest = os.open("/dev/null", os.O_RDONLY)
    os.close(lowest)
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (lowest, hard))


def real_run(program: Program, root: str, setup: Callable[[], None] = lambda: None) -> tuple[RunResult, dict[str, bytes]]:
    def go() -> tuple[RunResult, dict[str, bytes]]:
        return run(program, {"entry": PAYLOAD}, root), listing(root)
    return in_child(go, setup)  # type: ignore[no-any-return]


def compare(program: Program, root: str, setup: Callable[[], None], oracle: Oracle | None,
            errno: str | None) -> None:
    """Run both sides; they must agree on everything; and the kernel must
    really have failed with ``errno`` (else the test tested nothing)."""
    before = listing(root)
    real, files = real_run(program, root, setup)
    status, err, model_files = model_run(program, oracle)
    assert real.status is status, (real, status)
    if errno is not None:
        assert real.error is not None and real.error.errno == errno, real
    got_err = None if real.error is None else (real.error.errno, real.error.op)
    assert got_err == err, (got_err, err)
    assert files == {**before, **model_files} or files == model_files, (files, model_files)


# ------------------------------------------------------------ the failures


@pytest.mark.parametrize("limit", [0, 1, len(PAYLOAD) - 1])
@pytest.mark.parametrize("name", WRITERS)
def test_efbig_on_write(tmp_path: FsPath, name: str, limit: int) -> None:
    """RLIMIT_FSIZE below the entry's length: the write lands what fits
    and fails with EFBIG; the protocol's error path (close, remove, unlink
    the temp file - or none) leaves on disk exactly what the model says."""
    compare(CATALOGUE[name].program, str(tmp_path), fsize(limit), efbig_at(limit), "EFBIG")


@pytest.mark.parametrize("limit", [0, len(PAYLOAD) - 1])
def test_efbig_on_an_extending_ftruncate(tmp_path: FsPath, limit: int) -> None:
    """ftruncate past RLIMIT_FSIZE is EFBIG and leaves the file as it was."""
    compare(_extend(), str(tmp_path), fsize(limit), efbig_at(limit), "EFBIG")


def test_no_limit_reached_is_no_fault(tmp_path: FsPath) -> None:
    """Control: with the limit above the entry, neither side fails."""
    compare(_extend(), str(tmp_path), fsize(len(PAYLOAD)), efbig_at(len(PAYLOAD)), None)


@pytest.mark.parametrize("name", WRITERS)
def test_emfile_on_open(tmp_path: FsPath, name: str) -> None:
    """RLIMIT_NOFILE at the lowest free descriptor: the protocol's open
    fails with EMFILE and nothing is created."""
    compare(CATALOGUE[name].program, str(tmp_path), nofile, first("EMFILE", Open), "EMFILE")


@pytest.mark.parametrize("name", ("rename-into-place", "rename-into-place-fsync"))
def test_eisdir_when_a_directory_is_in_the_way_of_rename(tmp_path: FsPath, name: str) -> None:
    """The entry's name is an (empty) directory: rename(temp, entry) is
    EISDIR; the protocol unlinks its temp file, as the model says, and the
    directory is left alone."""
    (tmp_path / "entry").mkdir()
    compare(CATALOGUE[name].program, str(tmp_path), lambda: None, first("EISDIR", Rename), "EISDIR")
    assert (tmp_path / "entry").is_dir() and not any((tmp_path / "entry").iterdir())


def test_enotempty_when_renaming_a_directory_over_a_full_one(tmp_path: FsPath) -> None:
    """rename(d, e) with ``e`` a directory holding a file: ENOTEMPTY from
    the kernel, reported by the runner as the error of that rename, and
    both directories as they were.  The model has no directory rename
    (``spec.system`` refuses a path used as a directory and a file), so
    here only the runner's error result is checked against the kernel."""
    prog = Program("dir-over-dir", Role.WRITER, (
        Mkdir(Path("d")), Mkdir(Path("e")),
        Open(Path("e/f"), OpenFlags.WRITE | OpenFlags.CREAT), Write(Data("entry")), Close(),
        Rename(Path("d"), Path("e")), _err_branch("fail"), Return(Outcome.OK), *_fail_tail()))
    real, files = real_run(prog, str(tmp_path))
    assert real.status is Status.FAIL and real.error is not None, real
    assert (real.error.errno, real.error.op) == ("ENOTEMPTY", "rename(d, e)"), real
    assert real.error.path == str(tmp_path / "e")
    assert files == {"e/f": PAYLOAD} and (tmp_path / "d").is_dir()


def _fail_tail() -> tuple[Instr, ...]:
    from spec.ops import Label

    return (Label("fail"), FAIL)


def test_enoent_for_a_missing_parent_is_the_models_own(tmp_path: FsPath) -> None:
    """open("d/entry", O_CREAT) with no ``d``: ENOENT on Linux, and the
    model says so with no fault told to it."""
    prog = Program("missing-parent", Role.WRITER, (
        Open(Path("d/entry"), OpenFlags.WRITE | OpenFlags.CREAT), _err_branch("fail"),
        Write(Data("entry")), Close(), Return(Outcome.OK), *_fail_tail()))
    compare(prog, str(tmp_path), lambda: None, None, "ENOENT")


@pytest.fixture()
def read_only(tmp_path: FsPath) -> Any:
    """``tmp_path/ro``: a read-only bind mount of itself (root and mount(2)
    needed: skipped with the reason where refused)."""
    d = tmp_path / "ro"
    d.mkdir()
    if shutil.which("mount") is None:
        pytest.skip("no mount command: a read-only bind mount cannot be made here")
    bind = subprocess.run(["mount", "--bind", str(d), str(d)], capture_output=True, text=True)
    if bind.returncode != 0:
        pytest.skip(f"a read-only bind mount needs root and mount(2), refused here: {bind.stderr.strip()}")
    try:
        ro = subprocess.run(["mount", "-o", "remount,ro,bind", str(d)], capture_output=True, text=True)
        if ro.returncode != 0:
            pytest.skip(f"remounting read-only was refused: {ro.stderr.strip()}")
        yield d
    finally:
        subprocess.run(["umount", "-l", str(d)], capture_output=True)


@pytest.mark.parametrize("name", WRITERS)
def test_erofs_on_a_read_only_mount(read_only: FsPath, name: str) -> None:
    """On a read-only mount the protocol's first open fails with EROFS."""
    compare(CATALOGUE[name].program, str(read_only), lambda: None, first("EROFS", Open), "EROFS")


# ------------------------------------------------------------ the comparison catches a broken runner


def test_a_runner_that_ignores_write_errors_is_caught(tmp_path: FsPath, monkeypatch: pytest.MonkeyPatch) -> None:
    """The known-bad twin: an OS runner whose write reports success
    whatever the kernel says (a bug in its error handling) differs from
    the model under the real EFBIG."""
    from reference import osrun

    def careless(fd: int, data: int, ok: int, fail: Any) -> Any:
        def write(env: Any) -> int:
            try:
                os.write(env[fd], env[data])
            except OSError:
                pass  # the bug
            return ok
        return write

    monkeypatch.setattr(osrun, "_write_whole", careless)
    osrun._COMPILED.clear()
    try:
        with pytest.raises(AssertionError):
            compare(CATALOGUE["write-then-truncate"].program, str(tmp_path), fsize(1), efbig_at(1), "EFBIG")
    finally:
        osrun._COMPILED.clear()


def test_a_leftover_temp_file_shows_in_the_listing(tmp_path: FsPath) -> None:
    """rename-into-place without its unlink on the error path: under the
    real EFBIG its torn temp file stays, and both sides list it (the
    comparison sees every file, not only the names the model publishes)."""
    from spec.ops import Unlink

    rip = CATALOGUE["rename-into-place"].program
    leaky = Program("rename-into-place-leaky", Role.WRITER, tuple(i for i in rip.source if not isinstance(i, Unlink)))
    compare(leaky, str(tmp_path), fsize(3), efbig_at(3), "EFBIG")
    left = [n for n in os.listdir(tmp_path) if n.startswith("entry.tmp")]
    assert len(left) == 1 and (tmp_path / left[0]).read_bytes() == PAYLOAD[:3]
    status, _, model_files = model_run(leaky, efbig_at(3))
    assert model_files == {"entry.tmp.<pid><private>": PAYLOAD[:3]} or list(model_files.values()) == [PAYLOAD[:3]]
