"""The OS interpreter: the catalogue's very Program values, run on real files.

``spec.machine`` runs a :class:`spec.ops.Program` on a pure model; this module
runs the *same value* with real ``os.*`` calls.  Nothing here restates a
protocol: every write, truncate and branch comes from ``program.code`` and
``program.targets``.  Two ways to run:

- :func:`run` (production): the whole program, as fast as the syscalls allow.
  A program is compiled once into a list of small closures (cached per
  program); branches on an operation's error are folded into that operation
  at compile time, using ``spec.machine.holds`` itself to decide them.
- :class:`OSWorld` (checking): several processes, each with its own
  descriptor table, registers, pc and status exactly like
  ``spec.machine.Proc``, stepped one operation at a time, deterministically,
  in this one Python process: ``OSWorld.step(i, fault)`` means what
  ``spec.machine.step(cfg, world, i, fault)`` means, down to one byte per
  step at byte granularity.  :meth:`OSWorld.snapshot` and :func:`project`
  put the real sandbox and a model ``World`` in one comparable shape.

Path mapping.  A shared ``Path`` (``entry``, ``output``) is a real file the
caller names (or ``root/<name>``).  A private ``Path`` (``entry.tmp``) gets a
name no other process uses, in the same directory as the shared file it
extends: ``<real entry>.tmp.<pid>.<random hex>`` (step-wise:
``<root>/entry.tmp.<process name>.<random hex>``).

Faults, as ``spec.machine.FAULT_ERRNO``/``local_faults`` define them: a
failing write really writes the k bytes the fault lets land, then reports the
errno without calling the kernel for the rest; a failing close really closes
and reports EIO; a failing open, ftruncate, fsync or rename reports its errno
without making the call.  Every other errno comes from the real kernel.

Mapped reads.  ``Mmap`` calls the C library's ``mmap`` through ctypes with the
size the program's size register holds (Python's ``mmap`` module refuses to
map past end of file, which the model - and C, and Go - allow).  ``MapRead``
touches the mapping in a forked child, which copies the bytes back through a
pipe: if the kernel kills the child with SIGBUS (a page wholly past the
file's *current* end), the process's status becomes ``sigbus``, as in the
model, and this Python process lives on.  So SIGBUS is observed from the
real kernel, not predicted by re-implementing the model's rule.  A mapping
also keeps a duplicate descriptor: the model's mapping holds its inode, and
the duplicate is how a snapshot reads that inode's bytes.

Where the two interpreters knowingly differ (each is an edge no catalogue
program reaches; the tests pin the ones that matter):

- ``Mmap`` of size 0 makes an empty mapping without calling mmap (Linux
  answers EINVAL; Go's ``mmap.Mmap`` special-cases 0 the same way, and so
  does the model).  A negative size is EINVAL without a call.
- A whole-program run follows loops through operations forever, as a real
  program would; a loop made only of branches is rejected at compile time
  (the model rejects it when it first runs into it).
- The step-wise interpreter keeps ``Proc.private`` empty: the private files
  are on disk, and :meth:`OSWorld.snapshot` reports them per process.
- Registers hold OS values: a descriptor is ``(fd,)``, a mapping
  ``(address, length, duplicate fd)``; sizes ``(n,)`` and buffers
  ``(bytes,)`` are as in the model, so ``spec.machine.holds`` works as is.
"""

from __future__ import annotations

import errno as errno_mod
import faulthandler
import fcntl
import functools
import mmap as mmap_mod
import os
import signal
from typing import TYPE_CHECKING, Any, Callable, Mapping, NamedTuple, Sequence, Union

from spec.fs import FileSystem
from spec.machine import (
    READ_BIT,
    RUNNING,
    SIGBUS,
    WRITE_BIT,
    Config,
    Fault,
    Kind,
    Proc,
    World,
    current,
    holds,
    local_faults,
    published,
    valid,
)
from spec.ops import (
    Chtimes,
    Close,
    Data,
    Failed,
    Fstat,
    Fsync,
    Ftruncate,
    Goto,
    If,
    Instr,
    Invalid,
    Length,
    MapRead,
    Mmap,
    Open,
    OpenFlags,
    Outcome,
    Path,
    Program,
    ProgramError,
    PWrite,
    Read,
    Rename,
    Return,
    Role,
    SizeIs,
    Stat,
    Unlink,
    Write,
)

if TYPE_CHECKING:
    from spec.explore import Setup

# Operations whose failure makes a writer fail (the ones the model can fault):
# their first error is what a WriteError reports.  A stat's ENOENT or a
# read-only probe's miss is a question asked, not a failure.
_FAILURE_OPS = (Open, Write, PWrite, Ftruncate, Fsync, Close, Rename, Unlink)


def errno_name(e: OSError) -> str:
    """The errno of ``e`` by name (``"ENOENT"``), as the model spells it."""
    return errno_mod.errorcode.get(e.errno or 0, f"E{e.errno}")


def os_flags(flags: OpenFlags) -> int:
    """The open(2) flags for a model ``OpenFlags`` (plus O_CLOEXEC, as Go
    always adds: a descriptor never leaks into a child)."""
    rw = flags & (OpenFlags.READ | OpenFlags.WRITE)
    n = {OpenFlags.READ: os.O_RDONLY, OpenFlags.WRITE: os.O_WRONLY}.get(rw, os.O_RDWR)
    if OpenFlags.CREAT in flags:
        n |= os.O_CREAT
    if OpenFlags.TRUNC in flags:
        n |= os.O_TRUNC
    if OpenFlags.EXCL in flags:
        n |= os.O_EXCL
    return n | os.O_CLOEXEC


def _read_full(fd: int, n: int) -> bytes:
    """read until ``n`` bytes or end of file (Go's io.ReadFull; the model's
    one Read)."""
    if n <= 0:
        os.read(fd, 0)  # the kernel still checks the descriptor: EBADF, as in the model
        return b""
    parts: list[bytes] = []
    left = n
    while left > 0:
        got = os.read(fd, left)
        if not got:
            break
        parts.append(got)
        left -= len(got)
    return b"".join(parts)


def _write_all(fd: int, data: bytes, at: int | None) -> None:
    """write (at None) or pwrite all of ``data``, looping on a short write
    as Go's File.Write does."""
    done = 0
    while True:
        chunk = data[done:] if done else data
        n = os.write(fd, chunk) if at is None else os.pwrite(fd, chunk, at + done)
        done += n
        if done >= len(data):
            return


def _close_quietly(fd: int) -> None:
    try:
        os.close(fd)
    except OSError:
        pass


def fsync(fd: int) -> None:
    """os.fsync, except that an unset descriptor (-1) is the kernel's EBADF
    rather than Python's ValueError (os.fsync checks before the call)."""
    if fd < 0:
        raise OSError(errno_mod.EBADF, os.strerror(errno_mod.EBADF))
    os.fsync(fd)


# ------------------------------------------------------------ mapped reads

@functools.cache
def _libc() -> tuple[Any, Any, Any]:
    """The C library's mmap and munmap, typed, and MAP_FAILED; loaded on
    first use, so that writers never pay for it at import."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    c_mmap, c_munmap = libc.mmap, libc.munmap
    c_mmap.restype = ctypes.c_void_p
    c_mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
    c_munmap.restype = ctypes.c_int
    c_munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    return c_mmap, c_munmap, ctypes.c_void_p(-1).value


def map_file(fd: int, size: int) -> tuple[int, int, int]:
    """mmap(fd, 0, size) read-only and shared: ``(address, length, dup)``.

    ``dup`` is a duplicate of ``fd`` held as long as the mapping (see the
    module doc).  Size 0 maps nothing (address 0), as Go does; a negative
    size is EINVAL.  Raises OSError with the kernel's errno."""
    dup = os.dup(fd)  # EBADF here is the kernel's answer for a bad fd
    if size < 0:
        os.close(dup)
        raise OSError(errno_mod.EINVAL, os.strerror(errno_mod.EINVAL))
    if size == 0:
        return 0, 0, dup
    c_mmap, _, map_failed = _libc()
    addr = c_mmap(None, size, mmap_mod.PROT_READ, mmap_mod.MAP_SHARED, fd, 0)
    if addr is None or addr == map_failed:
        import ctypes

        err = ctypes.get_errno()
        os.close(dup)
        raise OSError(err, os.strerror(err))
    return int(addr), size, dup


def unmap(mapping: tuple[object, ...]) -> None:
    """Release a mapping made by :func:`map_file` (unset: nothing)."""
    if not mapping:
        return
    addr, length, dup = (int(x) for x in mapping)  # type: ignore[call-overload]
    if length:
        _libc()[1](addr, length)
    try:
        os.close(dup)
    except OSError:
        pass


def touch_mapping(addr: int, length: int) -> bytes | None:
    """Touch every mapped byte and return them; None when the kernel
    delivers SIGBUS.  The touch runs in a forked child so that SIGBUS kills
    the child, not this process: the answer is the real kernel's."""
    if length == 0:
        return b""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: touch, send, and leave without cleanup
        try:
            os.close(r)
            faulthandler.disable()  # pytest's handler would print a traceback
            signal.signal(signal.SIGBUS, signal.SIG_DFL)
            import ctypes

            _write_all(w, ctypes.string_at(addr, length), None)
            os._exit(0)
        except BaseException:
            os._exit(70)
    os.close(w)
    try:
        data = _read_full(r, length)
    finally:
        os.close(r)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGBUS:
        return None
    if not (os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0) or len(data) != length:
        raise RuntimeError(f"mapped-read child ended with status {status:#x} after {len(data)} of {length} bytes")
    return data


# ------------------------------------------------------------ path mapping


def private_name(base: str) -> str:
    """A file name no other process or thread will pick: ``base.<pid>.<hex>``."""
    return f"{base}.{os.getpid()}.{os.urandom(4).hex()}"


Root = Union[str, os.PathLike[str], Mapping[Union[str, Path], Union[str, os.PathLike[str]]]]


def resolve_paths(program: Program, root: Root) -> dict[Path, str]:
    """The real path of every Path the program names.

    ``root`` is a directory (a shared name ``n`` is ``root/n``) or a mapping
    from Path names (or Paths) to real paths.  A private Path ``p.x`` whose
    prefix ``p`` is mapped lives beside it: ``<real p>.x.<pid>.<hex>``."""
    shared: dict[str, str] = {}
    directory: str | None = None
    if isinstance(root, Mapping):
        for key, real in root.items():
            shared[key.name if isinstance(key, Path) else str(key)] = os.fspath(real)
    else:
        directory = os.fspath(root)
    out: dict[Path, str] = {}
    for path in program_paths(program):
        if not path.private:
            if path.name in shared:
                out[path] = shared[path.name]
            elif directory is not None:
                out[path] = os.path.join(directory, path.name)
            else:
                raise ProgramError(f"{program.name}: no real path given for {path.name!r} (given: {sorted(shared)})")
            continue
        head, dot, rest = path.name.partition(".")
        if head in shared:
            out[path] = private_name(shared[head] + dot + rest)
        elif directory is not None:
            out[path] = private_name(os.path.join(directory, path.name))
        elif shared:
            out[path] = private_name(os.path.join(os.path.dirname(next(iter(shared.values()))), path.name))
        else:
            raise ProgramError(f"{program.name}: no directory for private path {path.name!r}")
    return out


def program_paths(program: Program) -> tuple[Path, ...]:
    """Every Path the program names, in order of first appearance."""
    out: list[Path] = []
    for ins in program.code:
        for attr in ("path", "src", "dst"):
            v = getattr(ins, attr, None)
            if isinstance(v, Path) and v not in out:
                out.append(v)
    return tuple(out)


# ------------------------------------------------------------ whole program


class OpError(NamedTuple):
    """The failure that made a writer fail: errno name, the operation as
    source text, the real path involved (or None for a descriptor op)."""

    errno: str
    op: str
    path: str | None


class RunResult(NamedTuple):
    """How a whole-program run ended.

    status: as ``spec.machine.Proc.status``: an Outcome value (``"ok"``,
            ``"fail"``, ``"hit"``, ``"miss"``) or ``"sigbus"``.
    value:  the buffer a HIT returns (None otherwise).
    error:  the first failing operation that makes a writer fail, if any
            (set even when the program recovers and returns ok)."""

    status: str
    value: bytes | None
    error: OpError | None

    @property
    def outcome(self) -> Outcome | None:
        """The Outcome, or None when the process died of SIGBUS."""
        return None if self.status == SIGBUS else Outcome(self.status)


Step = Callable[[list[object]], int]
STOP = -1  # what a Return's closure hands the loop

# Fixed env slots: the last errno, the first failure (errno, pc), the end.
_LAST, _FIRST, _END, _FIXED = 0, 1, 2, 3


def _register_kinds(program: Program) -> dict[str, str]:
    """Each register's kind: ``fd``, ``size``, ``buf`` or ``map``, from the
    instruction that sets it."""
    kinds: dict[str, str] = {}
    for ins in program.code:
        if isinstance(ins, Open):
            kinds.setdefault(ins.fd, "fd")
        elif isinstance(ins, (Stat, Fstat)):
            kinds.setdefault(ins.into, "size")
        elif isinstance(ins, (Read, MapRead)):
            kinds.setdefault(ins.into, "buf")
        elif isinstance(ins, Mmap):
            kinds.setdefault(ins.into, "map")
            kinds.setdefault(ins.size, "size")
    for name in program.registers():
        kinds.setdefault(name, "fd")  # used but never set: a descriptor op on nothing
    return kinds


_UNSET: dict[str, object] = {"fd": -1, "size": -1, "buf": None, "map": None}


class Compiled:
    """A Program compiled for :func:`run`: one closure per instruction over
    an environment list ``env`` (errno, first failure, end, registers,
    real paths, payloads).  Thread-safe: all state is in ``env``."""

    def __init__(self, program: Program) -> None:
        self.program = program
        self.kinds = _register_kinds(program)
        regs = tuple(self.kinds)
        self.paths = program_paths(program)
        self.payload_names = program.payloads()
        self.slot: dict[str, int] = {r: _FIXED + i for i, r in enumerate(regs)}
        self.path_slot = {p: _FIXED + len(regs) + i for i, p in enumerate(self.paths)}
        base = _FIXED + len(regs) + len(self.paths)
        self.payload_slot = {n: base + i for i, n in enumerate(self.payload_names)}
        self.init: list[object] = ["", None, None, *(_UNSET[self.kinds[r]] for r in regs)]
        self.fd_slots = tuple(self.slot[r] for r in regs if self.kinds[r] == "fd")
        self.map_slots = tuple(self.slot[r] for r in regs if self.kinds[r] == "map")
        # spec.machine.holds decides the error branches; it needs a Kind.
        self._kind = Kind(program.name, program, ())
        _reject_control_loops(program)
        self.code: tuple[Step, ...] = tuple(self._compile(i, ins) for i, ins in enumerate(program.code))

    # -- running

    def execute(self, paths: Sequence[str], payloads: Sequence[bytes]) -> tuple[str, bytes | None, tuple[str, int] | None]:
        """Run with real ``paths`` and ``payloads`` in slot order (see
        ``self.paths``/``self.payload_names``): (status, hit value, first
        failure as (errno, pc)).  The lean entry point for ``write_entry``."""
        env = [*self.init, *paths, *payloads]
        code = self.code
        pc = 0
        try:
            while pc >= 0:
                pc = code[pc](env)
        finally:
            if pc >= 0:  # interrupted: still release what it holds, as exit would
                self._release(env)
        return env[_END]  # type: ignore[return-value]

    def error(self, first: tuple[str, int] | None, paths: Mapping[Path, str]) -> OpError | None:
        """The OpError for a first failure ``(errno, pc)``."""
        if first is None:
            return None
        errno, pc = first
        ins = self.program.code[pc]
        path = getattr(ins, "path", None) or getattr(ins, "dst", None)
        return OpError(errno, str(ins), paths.get(path) if isinstance(path, Path) else None)

    def _release(self, env: list[object]) -> None:
        for s in self.fd_slots:
            fd = env[s]
            if fd != -1:
                env[s] = -1
                try:
                    os.close(fd)  # type: ignore[arg-type]
                except OSError:
                    pass
        for s in self.map_slots:
            m = env[s]
            if m is not None:
                env[s] = None
                unmap(m)  # type: ignore[arg-type]

    # -- compiling

    def _after(self, j: int, last: str) -> int:
        """Where control goes from ``j`` when the last result is ``last``,
        through error branches and gotos (decided by spec.machine.holds)."""
        code, targets = self.program.code, self.program.targets
        probe = Proc(0, 0, RUNNING, last, 0, (), (), 0)
        for _ in range(len(code) + 1):
            ins = code[j]
            if isinstance(ins, Goto):
                j = targets[j]
            elif isinstance(ins, If) and isinstance(ins.cond, Failed):
                j = targets[j] if holds(ins.cond, probe, self._kind) else j + 1
            else:
                return j
        raise ProgramError(f"{self.program.name}: a loop with no operation in it at pc {j}")

    def _exits(self, i: int) -> tuple[int, Callable[[list[object], OSError | str], int]]:
        """The next pc after op ``i`` succeeds, and a failure handler that
        records the errno and returns the next pc for it."""
        ok = self._after(i + 1, "")
        ins = self.program.code[i]
        counts = isinstance(ins, _FAILURE_OPS) and not (isinstance(ins, Open) and ins.flags == OpenFlags.READ)
        memo: dict[str, int] = {}

        def fail(env: list[object], e: OSError | str) -> int:
            name = e if isinstance(e, str) else errno_name(e)
            env[_LAST] = name
            if counts and env[_FIRST] is None:
                env[_FIRST] = (name, i)
            nxt = memo.get(name)
            if nxt is None:
                nxt = memo[name] = self._after(i + 1, name)
            return nxt

        return ok, fail

    def _payload(self, name: str) -> int:
        if name not in self.payload_slot:
            raise ProgramError(f"{self.program.name}: no payload {name!r}")
        return self.payload_slot[name]

    def _data(self, d: Data) -> Callable[[list[object]], bytes]:
        s = self._payload(d.payload)
        if d.start is None and d.stop is None:
            return lambda env: env[s]  # type: ignore[return-value]
        a, b = d.start, d.stop
        return lambda env: env[s][a:b]  # type: ignore[index]

    def _len(self, n: Length) -> Callable[[list[object]], int]:
        if n.payload is None:
            c = n.delta
            return lambda env: c
        s, delta = self._payload(n.payload), n.delta
        return lambda env: len(env[s]) + delta  # type: ignore[arg-type]

    def _compile(self, i: int, ins: Instr) -> Step:
        if isinstance(ins, (If, Goto, Return)):
            return self._control(i, ins)
        maker = getattr(self, "_c_" + type(ins).__name__.lower())
        return maker(i, ins)  # type: ignore[no-any-return]

    def _control(self, i: int, ins: If | Goto | Return) -> Step:
        if isinstance(ins, Goto):
            t = self.program.targets[i]
            return lambda env: t
        if isinstance(ins, Return):
            return self._c_return(ins)
        yes, no = self.program.targets[i], i + 1
        test = self._cond(ins.cond)
        return lambda env: yes if test(env) else no

    def _cond(self, cond: object) -> Callable[[list[object]], bool]:
        """A branch condition over ``env``.  Failed defers to
        spec.machine.holds; SizeIs and Invalid restate its two lines (and
        reuse ``valid``); model_tests pin the agreement."""
        if isinstance(cond, Failed):
            kind = self._kind

            def failed(env: list[object]) -> bool:
                return holds(cond, Proc(0, 0, RUNNING, env[_LAST], 0, (), (), 0), kind)  # type: ignore[arg-type]

            return failed
        if isinstance(cond, SizeIs):
            s, n = self.slot[cond.reg], self._len(cond.n)
            compare: dict[str, Callable[[int, int], bool]] = {
                "==": lambda a, b: a == b, "!=": lambda a, b: a != b, ">": lambda a, b: a > b}
            if cond.op not in compare:
                raise ProgramError(f"unknown comparison {cond.op!r}")
            op = compare[cond.op]
            return lambda env: op(env[s], n(env))  # type: ignore[arg-type]
        if isinstance(cond, Invalid):
            s, n = self.slot[cond.reg], self._len(Length(cond.payload))
            return lambda env: not valid(env[s], n(env))  # type: ignore[arg-type]
        raise ProgramError(f"unknown condition {cond!r}")

    def _c_return(self, ins: Return) -> Step:
        keep = self.slot[ins.value] if ins.outcome is Outcome.HIT else None
        status, release, held = ins.outcome.value, self._release, self.fd_slots + self.map_slots

        def ret(env: list[object]) -> int:
            value = env[keep] if keep is not None else None
            for s in held:  # exit releases descriptors and mappings still held
                v = env[s]
                if v is not None and v != -1:
                    release(env)
                    break
            env[_END] = (status, value, env[_FIRST])
            return STOP

        return ret

    def _c_open(self, i: int, ins: Open) -> Step:
        ok, fail = self._exits(i)
        r, p, flags, _open = self.slot[ins.fd], self.path_slot[ins.path], os_flags(ins.flags), os.open

        def op(env: list[object]) -> int:
            try:
                fd = _open(env[p], flags, 0o666)  # type: ignore[arg-type]
            except OSError as e:
                return fail(env, e)
            old, env[r] = env[r], fd
            if old != -1:  # re-opened into a register still holding one: release it
                _close_quietly(old)  # type: ignore[arg-type]
            env[_LAST] = ""
            return ok

        return op

    def _c_write(self, i: int, ins: Write | PWrite) -> Step:
        ok, fail = self._exits(i)
        r, data = self.slot[ins.fd], self._data(ins.data)
        at = ins.offset if isinstance(ins, PWrite) else None
        _write = os.write
        if at is None and ins.data.start is None and ins.data.stop is None:
            return self._c_write_whole(ok, fail, r, self._payload(ins.data.payload))

        def op(env: list[object]) -> int:
            b = data(env)
            try:
                if at is not None:
                    _write_all(env[r], b, at)  # type: ignore[arg-type]
                else:
                    n = _write(env[r], b)  # type: ignore[arg-type]
                    if n < len(b):  # a short write: go on from where it stopped
                        _write_all(env[r], b[n:], None)  # type: ignore[arg-type]
            except OSError as e:
                return fail(env, e)
            env[_LAST] = ""
            return ok

        return op

    _c_pwrite = _c_write

    @staticmethod
    def _c_write_whole(ok: int, fail: Callable[[list[object], OSError], int], r: int, s: int) -> Step:
        """write(fd, payload): the hot path of every writer, with no getter."""
        _write = os.write

        def op(env: list[object]) -> int:
            b: bytes = env[s]  # type: ignore[assignment]
            try:
                n = _write(env[r], b)  # type: ignore[arg-type]
                if n < len(b):  # a short write: go on from where it stopped
                    _write_all(env[r], b[n:], None)  # type: ignore[arg-type]
            except OSError as e:
                return fail(env, e)
            env[_LAST] = ""
            return ok

        return op

    def _c_read(self, i: int, ins: Read) -> Step:
        ok, fail = self._exits(i)
        r, into, n = self.slot[ins.fd], self.slot[ins.into], self._len(ins.n)

        def op(env: list[object]) -> int:
            try:
                env[into] = _read_full(env[r], n(env))  # type: ignore[arg-type]
            except OSError as e:
                env[into] = None
                return fail(env, e)
            env[_LAST] = ""
            return ok

        return op

    def _c_ftruncate(self, i: int, ins: Ftruncate) -> Step:
        ok, fail = self._exits(i)
        r, n, _ftruncate = self.slot[ins.fd], self._len(ins.n), os.ftruncate
        if ins.n.payload is not None:
            return self._c_ftruncate_len(ok, fail, r, self._payload(ins.n.payload), ins.n.delta)

        def op(env: list[object]) -> int:
            try:
                _ftruncate(env[r], n(env))  # type: ignore[arg-type]
            except OSError as e:
                return fail(env, e)
            env[_LAST] = ""
            return ok

        return op

    @staticmethod
    def _c_ftruncate_len(ok: int, fail: Callable[[list[object], OSError], int], r: int, s: int, delta: int) -> Step:
        """ftruncate(fd, len(payload)+delta): the truncate-after of the fix."""
        _ftruncate = os.ftruncate

        def op(env: list[object]) -> int:
            try:
                _ftruncate(env[r], len(env[s]) + delta)  # type: ignore[arg-type]
            except OSError as e:
                return fail(env, e)
            env[_LAST] = ""
            return ok

        return op

    def _c_fsync(self, i: int, ins: Fsync) -> Step:
        return self._fd_call(i, ins.fd, fsync)

    def _c_close(self, i: int, ins: Close) -> Step:
        ok, fail = self._exits(i)
        r, _close = self.slot[ins.fd], os.close

        def op(env: list[object]) -> int:
            fd, env[r] = env[r], -1  # released even when close fails, as on Linux
            try:
                _close(fd)  # type: ignore[arg-type]
            except OSError as e:
                return fail(env, e)
            env[_LAST] = ""
            return ok

        return op

    def _fd_call(self, i: int, fd: str, call: Callable[[int], object]) -> Step:
        ok, fail = self._exits(i)
        r = self.slot[fd]

        def op(env: list[object]) -> int:
            try:
                call(env[r])  # type: ignore[arg-type]
            except OSError as e:
                return fail(env, e)
            env[_LAST] = ""
            return ok

        return op

    def _path_call(self, i: int, path: Path, call: Callable[[str], object]) -> Step:
        ok, fail = self._exits(i)
        p = self.path_slot[path]

        def op(env: list[object]) -> int:
            try:
                call(env[p])  # type: ignore[arg-type]
            except OSError as e:
                return fail(env, e)
            env[_LAST] = ""
            return ok

        return op

    def _c_unlink(self, i: int, ins: Unlink) -> Step:
        return self._path_call(i, ins.path, os.unlink)

    def _c_chtimes(self, i: int, ins: Chtimes) -> Step:
        return self._path_call(i, ins.path, os.utime)

    def _c_rename(self, i: int, ins: Rename) -> Step:
        ok, fail = self._exits(i)
        src, dst, _rename = self.path_slot[ins.src], self.path_slot[ins.dst], os.rename

        def op(env: list[object]) -> int:
            try:
                _rename(env[src], env[dst])  # type: ignore[arg-type]
            except OSError as e:
                return fail(env, e)
            env[_LAST] = ""
            return ok

        return op

    def _c_stat(self, i: int, ins: Stat) -> Step:
        ok, fail = self._exits(i)
        p, into = self.path_slot[ins.path], self.slot[ins.into]

        def op(env: list[object]) -> int:
            try:
                env[into] = os.stat(env[p]).st_size  # type: ignore[arg-type]
            except OSError as e:
                env[into] = -1
                return fail(env, e)
            env[_LAST] = ""
            return ok

        return op

    def _c_fstat(self, i: int, ins: Fstat) -> Step:
        ok, fail = self._exits(i)
        r, into = self.slot[ins.fd], self.slot[ins.into]

        def op(env: list[object]) -> int:
            try:
                env[into] = os.fstat(env[r]).st_size  # type: ignore[arg-type]
            except OSError as e:
                env[into] = -1
                return fail(env, e)
            env[_LAST] = ""
            return ok

        return op

    def _c_mmap(self, i: int, ins: Mmap) -> Step:
        ok, fail = self._exits(i)
        r, size, into = self.slot[ins.fd], self.slot[ins.size], self.slot[ins.into]

        def op(env: list[object]) -> int:
            try:
                m = map_file(env[r], env[size])  # type: ignore[arg-type]
            except OSError as e:
                return fail(env, e)  # a failed mmap leaves the register as it was
            unmap(env[into] or ())  # type: ignore[arg-type]
            env[into] = m
            env[_LAST] = ""
            return ok

        return op

    def _c_mapread(self, i: int, ins: MapRead) -> Step:
        ok, fail = self._exits(i)
        m, into, release = self.slot[ins.map], self.slot[ins.into], self._release

        def op(env: list[object]) -> int:
            mapping = env[m]
            if mapping is None:
                return fail(env, "EINVAL")
            got = touch_mapping(mapping[0], mapping[1])  # type: ignore[index]
            if got is None:  # SIGBUS: the process dies, releasing everything
                release(env)
                env[_END] = (SIGBUS, None, env[_FIRST])
                return STOP
            env[into] = got
            env[_LAST] = ""
            return ok

        return op



def _reject_control_loops(program: Program) -> None:
    """A cycle made only of branches and gotos would spin without doing an
    operation: refuse it when compiling (the model refuses it on reaching it)."""
    code, targets = program.code, program.targets

    def nexts(j: int) -> tuple[int, ...]:
        ins = code[j]
        if isinstance(ins, Goto):
            return (targets[j],)
        if isinstance(ins, If):
            return (targets[j], j + 1)
        return ()

    state: dict[int, int] = {}  # 1: on the current path, 2: done

    def visit(j: int) -> None:
        state[j] = 1
        for n in nexts(j):
            if state.get(n) == 1:
                raise ProgramError(f"{program.name}: a loop with no operation in it at pc {n}")
            if n not in state:
                visit(n)
        state[j] = 2

    for j in range(len(code)):
        if j not in state and nexts(j):
            visit(j)


_COMPILED: dict[int, tuple[Program, Compiled]] = {}


def compiled(program: Program) -> Compiled:
    """The compiled form of ``program``, made once and cached.  Keyed by
    identity (hashing a Program walks its whole source); the cache holds
    the program, so an id is never reused while cached."""
    hit = _COMPILED.get(id(program))
    if hit is not None and hit[0] is program:
        return hit[1]
    c = Compiled(program)
    _COMPILED[id(program)] = (program, c)
    return c


def run(program: Program, payloads: Mapping[str, bytes], root: Root) -> RunResult:
    """Run ``program`` to its end on real files, as one process.

    ``payloads`` gives the bytes of each payload the program names;
    ``root`` says where its paths are (see :func:`resolve_paths`).
    Descriptors and mappings still open at the end are released, as exit
    would.  Raises ProgramError for a missing payload or unmapped path;
    every OS error is data in the result, never an exception."""
    c = compiled(program)
    missing = [n for n in c.payload_names if n not in payloads]
    if missing:
        raise ProgramError(f"{program.name}: no payload {missing[0]!r} (given: {sorted(payloads)})")
    real = resolve_paths(program, root)
    status, value, first = c.execute([real[p] for p in c.paths], [payloads[n] for n in c.payload_names])
    return RunResult(status, value, c.error(first, real))


# ------------------------------------------------------------ step-wise


class ProcView(NamedTuple):
    """One process as a snapshot shows it, for the model and the OS alike.

    regs: per register (program order): a descriptor as
    ``("fd", mode bits, offset, bytes of its file)``, a mapping as
    ``("map", length, bytes of its file)``, a size ``(n,)``, a buffer
    ``(bytes,)``, unset ``()``."""

    pc: int
    status: str
    last: str
    progress: int
    began: int
    regs: tuple[tuple[object, ...], ...]


class Snapshot(NamedTuple):
    """The whole sandbox at one instant, in a shape both interpreters share.

    files:   the shared files exactly as ``spec.trace.files`` shows them
             (entry first, then the rest by name; missing: None).  A stray
             file in the sandbox shows up here under its own name.
    private: per process, its private files as sorted (model name, bytes).
    procs:   per process, a :class:`ProcView`."""

    files: tuple[tuple[str, bytes | None], ...]
    private: tuple[tuple[tuple[str, bytes], ...], ...]
    procs: tuple[ProcView, ...]


def shared_files(present: Mapping[str, bytes | None]) -> tuple[tuple[str, bytes | None], ...]:
    """``spec.trace.files`` order: entry first (None when missing), then
    the other names sorted."""
    names = sorted(set(present) | {"entry"}, key=lambda n: (n != "entry", n))
    return tuple((n, present.get(n)) for n in names)


def project(cfg: Config, world: World) -> Snapshot:
    """A model World in the shape of :meth:`OSWorld.snapshot`."""
    fs = world.fs
    procs: list[ProcView] = []
    private: list[tuple[tuple[str, bytes], ...]] = []
    for p in world.procs:
        k = cfg.kinds[p.kind]
        kinds = _register_kinds(k.program)
        regs: list[tuple[object, ...]] = []
        for name in k.reg:
            v = p.regs[k.reg[name]]
            if v and kinds[name] == "fd":
                regs.append(("fd", v[2], v[1], fs.contents[int(v[0])]))  # type: ignore[call-overload]
            elif v and kinds[name] == "map":
                regs.append(("map", v[1], fs.contents[int(v[0])]))  # type: ignore[call-overload]
            else:
                regs.append(v)
        procs.append(ProcView(p.pc, p.status, p.last, p.progress, p.began, tuple(regs)))
        private.append(tuple(sorted((n, fs.contents[i] or b"") for n, i in p.private)))
    present = {n: fs.contents[i] for n, i in fs.names}
    return Snapshot(shared_files(present), tuple(private), tuple(procs))


_MODE_BITS = {os.O_RDONLY: READ_BIT, os.O_WRONLY: WRITE_BIT, os.O_RDWR: READ_BIT | WRITE_BIT}


def _file_bytes(path: str) -> bytes:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return _read_full(fd, os.fstat(fd).st_size + 1)
    finally:
        os.close(fd)


def _fd_bytes(fd: int) -> bytes:
    """The bytes of the file ``fd`` holds, even unlinked, without moving
    its offset: reopen it through /proc (Linux-specific)."""
    return _file_bytes(f"/proc/self/fd/{fd}")


class OSWorld:
    """Several processes running programs on real files, one step at a time.

    Built like ``spec.explore.build`` builds a model (:meth:`from_setup`),
    it holds per process a ``spec.machine.Proc`` whose registers hold real
    descriptors (see the module doc), in a sandbox directory ``root`` that
    must start empty, as the model's file system does.  :meth:`step` is
    ``spec.machine.step``; :meth:`faults` is ``spec.machine.faults``.
    Deterministic: one Python process, one call per step, no threads.

    Use as a context manager (or call :meth:`close`) to release every
    descriptor and mapping the processes still hold.  In lockstep with the
    model::

        model = spec.explore.build(setup)
        kinds = tuple(p.kind for p in model.init.procs)
        world = spec.machine.initial(model.config, kinds)
        with OSWorld(model.config, kinds, empty_dir, model.names) as real:
            for i, fault in schedule:           # fault in real.faults(i) or None
                world = spec.machine.step(model.config, world, i, fault)
                real.step(i, fault)
                assert real.snapshot() == project(model.config, world)
    """

    def __init__(self, config: Config, kinds: Sequence[int], root: str | os.PathLike[str], names: Sequence[str] | None = None) -> None:
        self.config = config
        self.root = os.fspath(root)
        if not os.path.isdir(self.root) or os.listdir(self.root):
            raise ValueError(f"{self.root}: the sandbox must be an existing, empty directory (the model starts empty)")
        self.names = tuple(names) if names is not None else tuple(f"P{i + 1}" for i in range(len(kinds)))
        self.faults_used = 0
        self._private: list[dict[str, str]] = [{} for _ in kinds]
        self.procs: list[Proc] = []
        for i, ki in enumerate(kinds):
            k = config.kinds[ki]
            p = Proc(ki, 0, RUNNING, "", 0, ((),) * len(k.reg), (), 0)
            self.procs.append(p)
            self.procs[i] = self._settle(p, k, i)

    @classmethod
    def from_setup(cls, setup: Setup, root: str | os.PathLike[str]) -> "OSWorld":
        """The processes of ``setup`` (``W1``.., ``R1``..), as
        ``spec.explore.build`` and ``spec.trace.replay`` order them."""
        from spec.explore import build  # the explorer is needed only here, not by writers

        model = build(setup)
        return cls(model.config, tuple(p.kind for p in model.init.procs), root, model.names)

    # -- the interface of spec.machine

    def faults(self, i: int) -> list[tuple[str, int]]:
        """The injected faults process ``i``'s next step may suffer
        (``spec.machine.faults``: budget included)."""
        return local_faults(self.config, self.procs[i], self.faults_used < self.config.fault_budget)

    def current(self, i: int) -> Instr | None:
        """The operation process ``i`` runs next, or None when it ended."""
        return current(self.config, self.procs[i])

    def published(self) -> bool:
        """Has some writer returned success?"""
        return published(World(FileSystem(), tuple(self.procs), self.faults_used))

    def step(self, i: int, fault: Fault = None) -> None:
        """Process ``i`` takes one step, failing with ``fault`` if given, as
        ``spec.machine.step(cfg, world, i, fault)``.  Raises ValueError for
        an ended process or a fault its operation cannot suffer."""
        p = self.procs[i]
        k = self.config.kinds[p.kind]
        ins = current(self.config, p)
        if ins is None:
            raise ValueError(f"{self.names[i]} has ended ({p.status})")
        if fault is not None and fault not in local_faults(self.config, p, True):
            raise ValueError(f"{self.names[i]}: {ins} cannot suffer {fault}")
        pub = self.published()
        handler: Callable[..., tuple[Proc, bool]] = getattr(self, "_" + type(ins).__name__.lower())
        q, done = handler(ins, p, k, fault, i)
        if p.began == 0 and k.program.role is Role.READER:
            q = q._replace(began=2 if pub else 1)
        if done and q.status == RUNNING:
            q = self._settle(q._replace(pc=q.pc + 1), k, i)
        self.procs[i] = q
        self.faults_used += 1 if fault else 0

    # -- observation

    def files(self) -> tuple[tuple[str, bytes | None], ...]:
        """The real shared files, in ``spec.trace.files`` shape."""
        return self.snapshot().files

    def snapshot(self) -> Snapshot:
        """Every file in the sandbox and every process's state; compare
        with :func:`project` of the model's World."""
        owner = {real: (i, name) for i, d in enumerate(self._private) for name, real in d.items()}
        present: dict[str, bytes | None] = {}
        private: list[dict[str, bytes]] = [{} for _ in self.procs]
        for entry in os.listdir(self.root):
            full = os.path.join(self.root, entry)
            if full in owner:
                i, name = owner[full]
                private[i][name] = _file_bytes(full)
            else:
                present[entry] = _file_bytes(full)
        procs = tuple(self._view(p) for p in self.procs)
        return Snapshot(shared_files(present), tuple(tuple(sorted(d.items())) for d in private), procs)

    def _view(self, p: Proc) -> ProcView:
        k = self.config.kinds[p.kind]
        kinds = _register_kinds(k.program)
        regs: list[tuple[object, ...]] = []
        for name in k.reg:
            v = p.regs[k.reg[name]]
            if v and kinds[name] == "fd":
                fd = int(v[0])  # type: ignore[call-overload]
                mode = _MODE_BITS[fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE]
                regs.append(("fd", mode, os.lseek(fd, 0, os.SEEK_CUR), _fd_bytes(fd)))
            elif v and kinds[name] == "map":
                regs.append(("map", v[1], _fd_bytes(int(v[2]))))  # type: ignore[call-overload]
            else:
                regs.append(v)
        return ProcView(p.pc, p.status, p.last, p.progress, p.began, tuple(regs))

    def close(self) -> None:
        """Release every descriptor and mapping still held (statuses stay)."""
        for i, p in enumerate(self.procs):
            self.procs[i] = p._replace(regs=self._release(p, self.config.kinds[p.kind], None))

    def __enter__(self) -> "OSWorld":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- paths and registers

    def real(self, i: int, path: Path) -> str:
        """The real path of ``path`` for process ``i`` (private names are
        made on first use and stay the process's own)."""
        if not path.private:
            return os.path.join(self.root, path.name)
        mine = self._private[i]
        if path.name not in mine:
            mine[path.name] = os.path.join(self.root, f"{path.name}.{self.names[i]}.{os.urandom(4).hex()}")
        return mine[path.name]

    @staticmethod
    def _set(p: Proc, k: Kind, name: str, value: tuple[object, ...]) -> Proc:
        regs = list(p.regs)
        regs[k.reg[name]] = value
        return p._replace(regs=tuple(regs))

    @staticmethod
    def _fd(p: Proc, k: Kind, name: str) -> int:
        """The real descriptor in register ``name``; -1 when unset, so the
        kernel itself answers EBADF."""
        v = p.regs[k.reg[name]]
        return int(v[0]) if v else -1  # type: ignore[call-overload]

    def _release(self, p: Proc, k: Kind, keep: str | None) -> tuple[tuple[object, ...], ...]:
        """Close the descriptors and unmap the mappings ``p`` holds (except
        register ``keep``): the registers exit leaves."""
        kinds = _register_kinds(k.program)
        regs: list[tuple[object, ...]] = [()] * len(p.regs)
        for name, r in k.reg.items():
            v = p.regs[r]
            if name == keep:
                regs[r] = v
            elif v and kinds[name] == "fd":
                try:
                    os.close(int(v[0]))  # type: ignore[call-overload]
                except OSError:
                    pass
            elif v and kinds[name] == "map":
                unmap(v)
        return tuple(regs)

    def _finish(self, p: Proc, k: Kind, status: str, value: str | None) -> Proc:
        """spec.machine._finish, with the real release exit does."""
        regs = self._release(p, k, value)
        return p._replace(pc=len(k.program.code), status=status, last="", progress=0, regs=regs)

    def _settle(self, p: Proc, k: Kind, i: int) -> Proc:
        """spec.machine.settle on the real sandbox: branches (decided by
        spec.machine.holds), gotos, returns, and chtimes folded into the
        step before it, exactly where the model folds it."""
        code, targets = k.program.code, k.program.targets
        for _ in range(len(code) + 1):
            if p.status != RUNNING:
                return p
            ins = code[p.pc]
            if isinstance(ins, If):
                p = p._replace(pc=targets[p.pc] if holds(ins.cond, p, k) else p.pc + 1)
            elif isinstance(ins, Goto):
                p = p._replace(pc=targets[p.pc])
            elif isinstance(ins, Chtimes):
                p = p._replace(last=self._call(os.utime, self.real(i, ins.path)), pc=p.pc + 1)
            elif isinstance(ins, Return):
                hit = ins.outcome is Outcome.HIT
                p = self._finish(p, k, ins.outcome.value, ins.value if hit else None)
            else:
                return p
        raise ProgramError(f"{k.protocol}: a loop with no operation in it at pc {p.pc}")

    @staticmethod
    def _call(fn: Callable[..., object], *args: object) -> str:
        """Call ``fn``: "" on success, else the errno's name."""
        try:
            fn(*args)
        except OSError as e:
            return errno_name(e)
        return ""

    # -- one handler per operation: (process after, operation complete)

    def _open(self, ins: Open, p: Proc, k: Kind, fault: Fault, i: int) -> tuple[Proc, bool]:
        if fault:
            return p._replace(last=fault[0]), True
        try:
            fd = os.open(self.real(i, ins.path), os_flags(ins.flags), 0o666)
        except OSError as e:
            return p._replace(last=errno_name(e)), True
        old = p.regs[k.reg[ins.fd]]
        if old:  # the model overwrites the register: the old description is gone
            self._call(os.close, int(old[0]))  # type: ignore[call-overload]
        return self._set(p, k, ins.fd, (fd,))._replace(last=""), True

    def _write(self, ins: Write | PWrite, p: Proc, k: Kind, fault: Fault, i: int) -> tuple[Proc, bool]:
        fd, data = self._fd(p, k, ins.fd), k.data(ins.data)
        at = ins.offset if isinstance(ins, PWrite) else None
        if self.config.granularity == "write":
            chunk, done = (data[:fault[1]] if fault else data), True
        elif fault or not data:
            chunk, done = b"", True
        else:
            chunk, done = data[p.progress:p.progress + 1], p.progress + 1 == len(data)
        if at is not None and self.config.granularity == "byte":
            at += p.progress
        try:
            # An empty chunk still asks the kernel (a zero-length write), so
            # a descriptor that is not open for writing reports EBADF even
            # when a fault replaces the rest of the call, as in the model.
            _write_all(fd, chunk, at)
        except OSError as e:
            return p._replace(last=errno_name(e), progress=0), True
        return p._replace(progress=0 if done else p.progress + 1, last=fault[0] if fault else ""), done

    _pwrite = _write

    def _read(self, ins: Read, p: Proc, k: Kind, fault: Fault, i: int) -> tuple[Proc, bool]:
        try:
            got = _read_full(self._fd(p, k, ins.fd), k.length(ins.n))
        except OSError as e:
            return self._set(p, k, ins.into, ())._replace(last=errno_name(e)), True
        return self._set(p, k, ins.into, (got,))._replace(last=""), True

    def _ftruncate(self, ins: Ftruncate, p: Proc, k: Kind, fault: Fault, i: int) -> tuple[Proc, bool]:
        fd = self._fd(p, k, ins.fd)
        if fault and fd != -1 and fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE != os.O_RDONLY:
            return p._replace(last=fault[0]), True
        # No descriptor, or one not open for writing: the kernel refuses
        # (EBADF, EINVAL) before any fault could strike, as in the model.
        return p._replace(last=self._call(os.ftruncate, fd, k.length(ins.n))), True

    def _fsync(self, ins: Fsync, p: Proc, k: Kind, fault: Fault, i: int) -> tuple[Proc, bool]:
        fd = self._fd(p, k, ins.fd)
        if fault and fd != -1:
            return p._replace(last=fault[0]), True
        return p._replace(last=self._call(fsync, fd)), True

    def _close(self, ins: Close, p: Proc, k: Kind, fault: Fault, i: int) -> tuple[Proc, bool]:
        fd = self._fd(p, k, ins.fd)
        err = self._call(os.close, fd)  # really closed, even when a fault is reported
        p = self._set(p, k, ins.fd, ())
        return p._replace(last=fault[0] if fault and not err else err), True

    def _stat(self, ins: Stat, p: Proc, k: Kind, fault: Fault, i: int) -> tuple[Proc, bool]:
        try:
            size = os.stat(self.real(i, ins.path)).st_size
        except OSError as e:
            return self._set(p, k, ins.into, (-1,))._replace(last=errno_name(e)), True
        return self._set(p, k, ins.into, (size,))._replace(last=""), True

    def _fstat(self, ins: Fstat, p: Proc, k: Kind, fault: Fault, i: int) -> tuple[Proc, bool]:
        try:
            size = os.fstat(self._fd(p, k, ins.fd)).st_size
        except OSError as e:
            return self._set(p, k, ins.into, (-1,))._replace(last=errno_name(e)), True
        return self._set(p, k, ins.into, (size,))._replace(last=""), True

    def _unlink(self, ins: Unlink, p: Proc, k: Kind, fault: Fault, i: int) -> tuple[Proc, bool]:
        return p._replace(last=self._call(os.unlink, self.real(i, ins.path))), True

    def _rename(self, ins: Rename, p: Proc, k: Kind, fault: Fault, i: int) -> tuple[Proc, bool]:
        if fault:
            return p._replace(last=fault[0]), True
        return p._replace(last=self._call(os.rename, self.real(i, ins.src), self.real(i, ins.dst))), True

    def _mmap(self, ins: Mmap, p: Proc, k: Kind, fault: Fault, i: int) -> tuple[Proc, bool]:
        size = p.regs[k.reg[ins.size]]
        try:
            m = map_file(self._fd(p, k, ins.fd), int(size[0]) if size else -1)  # type: ignore[call-overload]
        except OSError as e:
            return p._replace(last=errno_name(e)), True  # the register keeps what it had
        unmap(p.regs[k.reg[ins.into]])  # the model overwrites the register
        return self._set(p, k, ins.into, m)._replace(last=""), True

    def _mapread(self, ins: MapRead, p: Proc, k: Kind, fault: Fault, i: int) -> tuple[Proc, bool]:
        m = p.regs[k.reg[ins.map]]
        if not m:
            return p._replace(last="EINVAL"), True
        got = touch_mapping(int(m[0]), int(m[1]))  # type: ignore[call-overload]
        if got is None:  # SIGBUS: the process dies
            return self._finish(p, k, SIGBUS, None), True
        return self._set(p, k, ins.into, (got,))._replace(last=""), True
