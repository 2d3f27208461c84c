"""Translate catalogue programs into Promela, for cross-checking with SPIN.

The explorer (``spec.explore``) is our own code; a verdict it gives is only as
good as its interpreter and its reductions.  This module writes the same
bounded system as a Promela model, *generically* from each program's
``code``/``targets`` (no protocol is translated by hand), so that SPIN, an
independent model checker with no symmetry reduction and no inode garbage
collection, can confirm or refute each verdict.

What is translated, following ``spec.machine`` step for step:

- one ``proctype`` per program; each operation becomes one ``d_step`` (one
  indivisible transition), guarded by the process's ``pc``; the local control
  flow after it (``If``/``Goto``/``Return``, and ``Chtimes``, which
  ``spec.machine.settle`` folds into the previous step) is compiled into the
  same ``d_step`` as a decision tree, so it takes no step of its own;
- a write at byte granularity lands one byte per transition, counted by the
  process's ``progress`` exactly as in ``spec.machine._write_common``; at
  ``write`` granularity the whole write (or its first k bytes, on a fault) is
  one transition;
- injected faults: each faultable operation (``spec.machine.FAULT_ERRNO``;
  never a reader's plain ``O_RDONLY`` open) has a second ``d_step``,
  enabled while the global ``faults`` counter is below the budget F;
- the file system: shared names (``entry``, ``output``) as global inode
  numbers, private names (a temp file) as process-local ones, and a global
  pool of inodes (size + bytes), one slot per (process, creating ``open``), so
  an unlinked or renamed-over inode lives on for its holders;
- descriptors (inode, offset, mode), size registers, buffers and mappings as
  process-local variables; exit clears them (a hit keeps its buffer);
- one power loss (``Setup.crashes == 1``), as ``spec.machine.crash`` and
  ``spec.fs.crash``: each inode also keeps its durable bytes (what its last
  fsync saw), and a ``Crash`` process may, once, at any point, stop every
  running process (status ``crashed``) and revert every named inode to its
  durable bytes; nothing runs afterwards;
- the properties ``published-entry-stays-complete``,
  ``reader-after-publication-hits``, ``reader-never-accepts-corrupt``,
  ``mmap-reader-never-faults`` and ``index-implies-complete-output`` as an
  ``assert`` at the end of every process transition (every reachable state
  before a crash but the initial one, where none of them can fail: nothing
  has run yet), and ``published-entry-survives-crash`` at the end of the
  crash transition (the explorer, too, checks it only after a crash, and
  the others only before).

Not translated: programs with a backward jump (each creating ``open`` must
run at most once for its fixed inode slot; the catalogue has no loops), and
the explorer's reductions (symmetry, inode renumbering and collection): SPIN
sees every inode slot and every process order, so its state counts are
larger; the verdicts, the shortest counterexamples' lengths and, where the
encodings can be matched, the state counts must agree (``test_spin``).

Pure: this module builds strings and runs nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

from spec.explore import Setup
from spec.fs import FileSystem, PAGE_SIZE
from spec.machine import CRASHED, FAULT_ERRNO, RUNNING, SIGBUS, Kind, Proc, settle
from spec.ops import (
    Chtimes,
    Close,
    Cond,
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
from spec.protocols import HITS, INDEX_OUTPUT, NO_CORRUPT, NO_SIGBUS, STAYS, SURVIVES, protocol

# Every property of spec.properties; SURVIVES speaks of post-crash states.
SUPPORTED = (STAYS, HITS, NO_CORRUPT, NO_SIGBUS, INDEX_OUTPUT, SURVIVES)

ERRNOS = ("", "ENOENT", "EEXIST", "EBADF", "EINVAL", "ENOSPC", "EIO", "EACCES")
STATUSES = (RUNNING, Outcome.OK.value, Outcome.FAIL.value, Outcome.HIT.value, Outcome.MISS.value, SIGBUS, CRASHED)
NOINO = 255  # "no inode": an unbound name, an unset descriptor or mapping
NOLEN = 255  # "no buffer": an unset buffer register


class TranslationError(ProgramError):
    """The program or bounds use something this translator does not model
    (a loop, a file too long for a byte offset, an unknown property); the
    message says which."""


def _ident(name: str) -> str:
    """A Promela identifier for a protocol, path or register name."""
    return "".join(c if c.isalnum() else "_" for c in name)


def _errno(name: str) -> str:
    return "E_OK" if name == "" else f"E_{name}"


def _status(name: str) -> str:
    return f"S_{_ident(name).upper()}"


def _indent(lines: list[str], n: int = 1) -> list[str]:
    return ["  " * n + ln for ln in lines]


def _branch(cond: str, then: list[str], other: list[str]) -> list[str]:
    """A deterministic two-way ``if`` (``else`` keeps d_step deterministic)."""
    return ["if", f":: ({cond}) ->", *_indent(then or ["skip"]), ":: else ->", *_indent(other or ["skip"]), "fi"]


# ------------------------------------------------------------ registers


@dataclass
class _Registers:
    """Each register's role, found from how the program uses it, so that it
    gets the right Promela variables: a descriptor ``r_f_ino/_off/_mode``, a
    size ``r_st`` (-1: no file, as for unset), a buffer ``r_buf_len`` plus
    ``r_buf[]``, a mapping ``r_map_ino/_len``."""

    kind: dict[str, str] = field(default_factory=dict)

    def note(self, name: str, role: str, program: str) -> None:
        old = self.kind.setdefault(name, role)
        if old != role:
            raise TranslationError(f"{program}: register {name!r} is used both as {old} and as {role}")

    @classmethod
    def of(cls, prog: Program) -> "_Registers":
        regs = cls()
        for ins in prog.code:
            if isinstance(ins, (Open, Write, PWrite, Read, Ftruncate, Fsync, Close, Fstat, Mmap)):
                regs.note(ins.fd, "fd", prog.name)
            if isinstance(ins, (Read, MapRead)):
                regs.note(ins.into, "buf", prog.name)
            if isinstance(ins, (Stat, Fstat)):
                regs.note(ins.into, "size", prog.name)
            if isinstance(ins, Mmap):
                regs.note(ins.into, "map", prog.name)
                regs.note(ins.size, "size", prog.name)
            if isinstance(ins, MapRead):
                regs.note(ins.map, "map", prog.name)
            if isinstance(ins, If) and isinstance(ins.cond, SizeIs):
                regs.note(ins.cond.reg, "size", prog.name)
            if isinstance(ins, If) and isinstance(ins.cond, Invalid):
                regs.note(ins.cond.reg, "buf", prog.name)
            if isinstance(ins, Return) and ins.outcome is Outcome.HIT:
                regs.note(ins.value, "buf", prog.name)
        return regs

    def declarations(self) -> list[str]:
        out: list[str] = []
        for name, role in self.kind.items():
            r = f"r_{_ident(name)}"
            if role == "fd":
                out += [f"byte {r}_ino = NOINO;", f"byte {r}_off;", f"byte {r}_mode;"]
            elif role == "size":
                out.append(f"short {r} = -1;")
            elif role == "buf":
                out += [f"byte {r}_len = NOLEN;", f"byte {r}[BUFMAX];"]
            else:
                out += [f"byte {r}_ino = NOINO;", f"byte {r}_len;"]
        return out

    def clear(self, keep: str | None = None) -> list[str]:
        """Reset every register but ``keep`` to unset (exit; a hit keeps its value)."""
        out: list[str] = []
        for name, role in self.kind.items():
            if name == keep:
                continue
            r = f"r_{_ident(name)}"
            if role == "fd":
                out.append(f"{r}_ino = NOINO; {r}_off = 0; {r}_mode = 0;")
            elif role == "size":
                out.append(f"{r} = -1;")
            elif role == "buf":
                out += _clear_buffer(r)
            else:
                out.append(f"{r}_ino = NOINO; {r}_len = 0;")
        return out


def _clear_buffer(r: str) -> list[str]:
    # Bytes past the length are kept zero so that equal buffers are equal states.
    return [f"{r}_len = NOLEN;", "j = 0;", f"do :: j < BUFMAX -> {r}[j] = 0; j++ :: else -> break od;"]


# ------------------------------------------------------------ bounds


@dataclass(frozen=True)
class Instance:
    """The translated system: which program each process runs, the payloads,
    the fault budget and the granularity (the same meaning as in
    ``spec.explore.Setup``)."""

    programs: tuple[Program, ...]
    payloads: tuple[tuple[str, bytes], ...]
    faults: int = 0
    granularity: str = "byte"
    crashes: int = 0

    @classmethod
    def from_setup(cls, setup: Setup) -> "Instance":
        """The processes of ``setup`` in the explorer's own order."""
        progs = tuple(protocol(name).program for name in setup.process_protocols())
        return cls(progs, setup.payloads(), setup.faults, setup.granularity, setup.crashes)

    @property
    def runs(self) -> int:
        """How many processes init starts (pan counts each ``run`` as a step)."""
        return len(self.programs) + self.crashes

    def payload(self, name: str) -> bytes:
        for n, b in self.payloads:
            if n == name:
                return b
        raise TranslationError(f"no payload {name!r}")

    def length(self, n: Length) -> int:
        return n.delta if n.payload is None else len(self.payload(n.payload)) + n.delta

    def data(self, d: Data) -> bytes:
        return self.payload(d.payload)[d.start:d.stop]

    def max_file(self) -> int:
        """A bound on any file's size: each extension is made by one
        process's write, pwrite or ftruncate, each of which runs at most
        once (no loops), at an offset no larger than what came before."""
        total = 0
        for prog in self.programs:
            for ins in prog.code:
                if isinstance(ins, Write):
                    total += len(self.data(ins.data))
                elif isinstance(ins, PWrite):
                    total += ins.offset + len(self.data(ins.data))
                elif isinstance(ins, Ftruncate):
                    total += max(0, self.length(ins.n))
        return max(total, 1)

    def max_buffer(self) -> int:
        reads = [self.length(i.n) for p in self.programs for i in p.code if isinstance(i, Read)]
        return max([self.max_file(), *reads])


# ------------------------------------------------------------ one program


class _Proctype:
    """The proctype of one program; ``sites`` numbers its creating opens
    (each gets a fixed inode slot ``ibase + site``)."""

    def __init__(self, prog: Program, inst: Instance, checked: Sequence[str]) -> None:
        self.prog, self.inst, self.checked = prog, inst, tuple(checked)
        self.name = f"P_{_ident(prog.name)}"
        self.regs = _Registers.of(prog)
        self.sites = {i: n for n, i in enumerate(i for i, ins in enumerate(prog.code) if isinstance(ins, Open) and OpenFlags.CREAT in ins.flags)}
        self.privates = sorted({p.name for ins in prog.code for p in _paths(ins) if p.private})
        for i, t in enumerate(prog.targets):
            if t != -1 and t <= i:
                raise TranslationError(f"{prog.name}: backward jump at {i}; loops are not translated (an open could reuse its inode slot)")

    # -- names and expressions

    def resolve(self, path: Path) -> str:
        return f"pv_{_ident(path.name)}" if path.private else f"nm_{_ident(path.name)}"

    def fd(self, reg: str) -> str:
        return f"r_{_ident(reg)}"

    def cond(self, c: Cond) -> str:
        """A branch condition, as ``spec.machine.holds`` evaluates it."""
        if isinstance(c, Failed):
            if not c.errnos:
                return "last != E_OK"
            return "(" + " || ".join(f"last == {_errno(e)}" for e in sorted(c.errnos)) + ")"
        if isinstance(c, SizeIs):
            op = {"==": "==", "!=": "!=", ">": ">"}.get(c.op)
            if op is None:
                raise TranslationError(f"{self.prog.name}: unknown comparison {c.op!r}")
            return f"r_{_ident(c.reg)} {op} {self.inst.length(c.n)}"
        if isinstance(c, Invalid):
            return f"!({_valid(f'r_{_ident(c.reg)}', len(self.inst.payload(c.payload)))})"
        raise TranslationError(f"{self.prog.name}: unknown condition {c!r}")

    # -- local control flow

    def settle(self, j: int, seen: frozenset[int] = frozenset()) -> list[str]:
        """``spec.machine.settle`` from ``j``, unrolled: branches, jumps,
        chtimes and return, up to the next operation (where ``pc`` stops)."""
        code, targets = self.prog.code, self.prog.targets
        if j in seen:
            raise TranslationError(f"{self.prog.name}: a loop with no operation in it at pc {j}")
        seen = seen | {j}
        ins = code[j]
        if isinstance(ins, If):
            return _branch(self.cond(ins.cond), self.settle(targets[j], seen), self.settle(j + 1, seen))
        if isinstance(ins, Goto):
            return self.settle(targets[j], seen)
        if isinstance(ins, Chtimes):
            # Times are not modelled: only chtimes's ENOENT is visible, to later branches.
            return [f"last = ({self.resolve(ins.path)} != NOINO -> E_OK : E_ENOENT);", *self.settle(j + 1, seen)]
        if isinstance(ins, Return):
            return self.finish(ins.outcome.value, ins.value if ins.outcome is Outcome.HIT else None)
        return [f"pc = {j};"]

    def finish(self, status: str, keep: str | None) -> list[str]:
        """Return (or SIGBUS): exit releases every register but a hit's value."""
        out = [f"status[me] = {_status(status)};", "pc = DONE; last = E_OK; progress = 0;", *self.regs.clear(keep)]
        if status == Outcome.HIT.value and NO_CORRUPT in self.checked and keep is not None:
            out.append(f"assert({_corrupt_ok(self.inst, self.prog, f'r_{_ident(keep)}')});")
        return out

    # -- operations: each returns the transition's code; ``then`` is the
    # settle that runs when the operation completes.

    def op(self, i: int, fault: tuple[str, int] | None) -> list[str]:
        ins = self.prog.code[i]
        then = self.settle(i + 1)

        def fail(errno: str) -> list[str]:
            return [f"last = {_errno(errno)};", *then]

        if isinstance(ins, Open):
            return fail(fault[0]) if fault else self.open(i, ins, then)
        if isinstance(ins, (Write, PWrite)):
            return self.write(ins, fault, then)
        if isinstance(ins, Read):
            return self.read(ins, then)
        if isinstance(ins, Ftruncate):
            d = self.fd(ins.fd)
            ok = fail(fault[0]) if fault else ["x = " + f"{d}_ino;", *_truncate(self.inst.length(ins.n)), "last = E_OK;", *then]
            return _branch(f"{d}_ino == NOINO", fail("EBADF"), _branch(f"({d}_mode & WBIT) == 0", fail("EINVAL"), ok))
        if isinstance(ins, Fsync):
            d = self.fd(ins.fd)
            # The inode's current bytes become its durable bytes (only crashes read them).
            sync = [] if fault or not self.inst.crashes else [f"x = {d}_ino;", *_sync()]
            return _branch(f"{d}_ino == NOINO", fail("EBADF"), [*sync, *fail(fault[0] if fault else "")])
        if isinstance(ins, Close):
            d = self.fd(ins.fd)
            # Linux releases the descriptor even when close reports an error.
            return _branch(f"{d}_ino == NOINO", fail("EBADF"), [f"{d}_ino = NOINO; {d}_off = 0; {d}_mode = 0;", *fail(fault[0] if fault else "")])
        if isinstance(ins, Stat):
            r = f"r_{_ident(ins.into)}"
            return [f"x = {self.resolve(ins.path)};", *_branch("x == NOINO", [f"{r} = -1;", *fail("ENOENT")], [f"{r} = node[x].size;", *fail("")])]
        if isinstance(ins, Fstat):
            d, r = self.fd(ins.fd), f"r_{_ident(ins.into)}"
            return _branch(f"{d}_ino == NOINO", [f"{r} = -1;", *fail("EBADF")], [f"{r} = node[{d}_ino].size;", *fail("")])
        if isinstance(ins, Unlink):
            n = self.resolve(ins.path)
            return _branch(f"{n} == NOINO", fail("ENOENT"), [f"{n} = NOINO;", *fail("")])
        if isinstance(ins, Rename):
            if fault:
                return fail(fault[0])
            s, t = self.resolve(ins.src), self.resolve(ins.dst)
            return _branch(f"{s} == NOINO", fail("ENOENT"), [f"x = {s}; {s} = NOINO; {t} = x;", *fail("")])
        if isinstance(ins, Mmap):
            d, sz, m = self.fd(ins.fd), f"r_{_ident(ins.size)}", f"r_{_ident(ins.into)}"
            return _branch(f"{d}_ino == NOINO", fail("EBADF"), _branch(f"{sz} < 0", fail("EINVAL"), [f"{m}_ino = {d}_ino; {m}_len = {sz};", *fail("")]))
        if isinstance(ins, MapRead):
            return self.map_read(ins, then)
        raise TranslationError(f"{self.prog.name}: no translation for {type(ins).__name__}")

    def open(self, i: int, ins: Open, then: list[str]) -> list[str]:
        """open(2) as ``spec.machine._open``: EEXIST, ENOENT, create+bind, O_TRUNC."""
        flags, d = ins.flags, self.fd(ins.fd)
        mode = " | ".join(b for f, b in ((OpenFlags.READ, "RBIT"), (OpenFlags.WRITE, "WBIT")) if f in flags) or "0"
        # Linux truncates even with O_RDONLY|O_TRUNC.
        trunc = _truncate(0) if OpenFlags.TRUNC in flags else []
        opened = [*trunc, f"{d}_ino = x; {d}_off = 0; {d}_mode = {mode};", "last = E_OK;", *then]
        if OpenFlags.CREAT in flags:
            # A fresh inode in this process's slot for this open (it runs once).
            missing = [f"x = ibase + {self.sites[i]};", "node[x].size = 0;", f"{self.resolve(ins.path)} = x;", *opened]
        else:
            missing = ["last = E_ENOENT;", *then]
        exists = ["last = E_EEXIST;", *then] if OpenFlags.CREAT in flags and OpenFlags.EXCL in flags else opened
        return [f"x = {self.resolve(ins.path)};", *_branch("x == NOINO", missing, exists)]

    def write(self, ins: Write | PWrite, fault: tuple[str, int] | None, then: list[str]) -> list[str]:
        """write/pwrite as ``spec.machine._write_common``: one byte per
        transition at byte granularity, all (or k bytes, on a fault) at once
        at write granularity."""
        d = self.fd(ins.fd)
        data = self.inst.data(ins.data)
        at = None if isinstance(ins, Write) else ins.offset
        base = f"{d}_off" if at is None else str(at)
        bad = ["last = E_EBADF;", *then]
        if self.inst.granularity == "write":
            chunk = data[: fault[1]] if fault else data
            body = [f"x = {d}_ino;", *_put_bytes(base, chunk)]
            if at is None and chunk:
                body.append(f"{d}_off = {d}_off + {len(chunk)};")
            body += [f"last = {_errno(fault[0] if fault else '')};", *then]
        elif fault or not data:
            body = ["progress = 0;", f"last = {_errno(fault[0] if fault else '')};", *then]
        else:
            # The byte at ``progress``: a write's offset has already moved past
            # the bytes before it, a pwrite's fixed offset has not.
            where = base if at is None else f"{at} + progress"
            body = [f"x = {d}_ino;", f"j = {where};", f"node[x].data[j] = {_byte_at(data, 'progress')};",
                    "if :: j >= node[x].size -> node[x].size = j + 1 :: else -> skip fi;"]
            if at is None:
                body.append(f"{d}_off = {d}_off + 1;")
            body += ["last = E_OK;", *_branch(f"progress + 1 == {len(data)}", ["progress = 0;", *then], ["progress = progress + 1;"])]
        return _branch(f"{d}_ino == NOINO || ({d}_mode & WBIT) == 0", bad, body)

    def read(self, ins: Read, then: list[str]) -> list[str]:
        """read(fd, n) into a buffer: at most n bytes from the offset."""
        d, b, n = self.fd(ins.fd), f"r_{_ident(ins.into)}", self.inst.length(ins.n)
        bad = [*_clear_buffer(b), "last = E_EBADF;", *then]
        copy = [
            f"x = {d}_ino;", *_clear_buffer(b), "j = 0;",
            f"do :: j < {n} && {d}_off + j < node[x].size -> {b}[j] = node[x].data[{d}_off + j]; j++ :: else -> break od;",
            f"{b}_len = j; {d}_off = {d}_off + j;", "last = E_OK;", *then,
        ]
        return _branch(f"{d}_ino == NOINO || ({d}_mode & RBIT) == 0", bad, copy)

    def map_read(self, ins: MapRead, then: list[str]) -> list[str]:
        """Touch every mapped byte: SIGBUS past the last backed page."""
        m, b = f"r_{_ident(ins.map)}", f"r_{_ident(ins.into)}"
        backed = f"((node[x].size + {PAGE_SIZE - 1}) / {PAGE_SIZE}) * {PAGE_SIZE}"
        copy = [*_clear_buffer(b), "j = 0;",
                f"do :: j < {m}_len -> {b}[j] = node[x].data[j]; j++ :: else -> break od;",
                f"{b}_len = {m}_len;", "last = E_OK;", *then]
        touched = [f"x = {m}_ino;", *_branch(f"{m}_len > {backed}", self.finish(SIGBUS, None), copy)]
        return _branch(f"{m}_ino == NOINO", ["last = E_EINVAL;", *then], touched)

    # -- the proctype

    def faults(self, i: int) -> list[tuple[str, int]]:
        """The faults of the operation at ``i``, as ``spec.machine.local_faults``
        offers them (a byte write offers one, at its current byte)."""
        ins = self.prog.code[i]
        if type(ins) not in FAULT_ERRNO or self.inst.faults == 0:
            return []
        errno = FAULT_ERRNO[type(ins)]
        if isinstance(ins, (Write, PWrite)):
            n = len(self.inst.data(ins.data))
            if self.inst.granularity == "write":
                return [(errno, k) for k in range(n)]
            return [(errno, 0)] if n else []  # the byte index lives in ``progress``
        if isinstance(ins, Open) and ins.flags == OpenFlags.READ:
            return []  # readers' opens do not fail: a failed lookup is a plain miss
        return [(errno, 0)]

    def transition(self, i: int, fault: tuple[str, int] | None, asserts: list[str]) -> list[str]:
        # Nothing runs after a power loss.
        guard = ("crashed == 0 && " if self.inst.crashes else "") + f"pc == {i}" + (" && faults < MAXFAULTS" if fault else "")
        body = ["faults++;"] if fault else []
        if self.prog.role is Role.READER:
            # A reader's first step records whether some writer had published.
            body += ["if :: began[me] == 0 -> began[me] = (PUBLISHED -> 2 : 1) :: else -> skip fi;"]
        body += self.op(i, fault) + ["x = 0; j = 0;"] + asserts
        what = str(self.prog.code[i]) + (f"  [fault {fault[0]}]" if fault else "")
        return [f":: d_step {{ /* {i}: {what} */", f"     {guard} ->", *_indent(body, 3), "   }"]

    def render(self, asserts: list[str]) -> list[str]:
        ops = [i for i, ins in enumerate(self.prog.code) if not isinstance(ins, (If, Goto, Return, Chtimes))]
        start = self._start()
        locals_ = [f"byte pc = {start.pc if start.status == RUNNING else 'DONE'};", f"byte last = {_errno(start.last)};", "byte progress;",
                   *self.regs.declarations(), *(f"byte pv_{_ident(n)} = NOINO;" for n in self.privates)]
        body: list[str] = []
        for i in ops:
            for f in [None, *self.faults(i)]:
                body += self.transition(i, f, asserts)
        header = f"/* {self.prog.name} ({self.prog.role.value}): {self.prog.summary} */"
        return [header, f"proctype {self.name}(byte me; byte ibase) {{", *_indent(locals_),
                # Blocking here, with every option disabled, is the process's normal end.
                "  end: do", *_indent(body), "  od", "}"]

    def _start(self) -> Proc:
        """The process's initial local state, settled by the spec itself (its
        control flow before the first operation runs on the empty file system)."""
        kind = Kind(self.prog.name, self.prog, self.inst.payloads)
        return settle(Proc(0, 0, RUNNING, "", 0, ((),) * len(kind.reg), (), 0), kind, FileSystem())


def _paths(ins: Instr) -> list[Path]:
    return [v for v in (getattr(ins, a, None) for a in ("path", "src", "dst")) if isinstance(v, Path)]


def _byte_at(data: bytes, index: str) -> str:
    """``data[index]`` as a nested conditional expression (data is constant)."""
    expr = str(data[-1])
    for k in range(len(data) - 2, -1, -1):
        expr = f"({index} == {k} -> {data[k]} : {expr})"
    return expr


def _put_bytes(base: str, chunk: bytes) -> list[str]:
    """Write ``chunk`` into inode x at ``base`` (holes are already zero)."""
    out = [f"node[x].data[{base} + {k}] = {b};" for k, b in enumerate(chunk)]
    if chunk:
        out.append(f"if :: {base} + {len(chunk)} > node[x].size -> node[x].size = {base} + {len(chunk)} :: else -> skip fi;")
    return out


def _sync() -> list[str]:
    """fsync inode x: its durable bytes become its current bytes."""
    return ["node[x].dsize = node[x].size;", "j = 0;", "do :: j < MAXLEN -> node[x].ddata[j] = node[x].data[j]; j++ :: else -> break od;"]


def _revert(name: str) -> list[str]:
    """After a power loss, the inode that ``name`` points at holds its durable bytes."""
    n = f"nm_{_ident(name)}"
    return _branch(f"{n} != NOINO", [f"x = {n};", "node[x].size = node[x].dsize;", "j = 0;",
                                     "do :: j < MAXLEN -> node[x].data[j] = node[x].ddata[j]; j++ :: else -> break od;"], [])


def _truncate(n: int) -> list[str]:
    """ftruncate inode x to n: zero the cut bytes (so the bytes past the size
    are always zero: a later extension or a hole reads zero, as in ``spec.fs``)."""
    return ["j = %d;" % n, "do :: j < node[x].size -> node[x].data[j] = 0; j++ :: else -> break od;", f"node[x].size = {n};"]


def _valid(buf: str, length: int) -> str:
    """``spec.machine.valid``: exactly ``length`` bytes, no zero byte."""
    return " && ".join([f"{buf}_len == {length}", *(f"{buf}[{k}] != 0" for k in range(length))])


def _payloads_of(inst: Instance, path: str) -> list[bytes]:
    """Every payload any writer in the run means to store at ``path``."""
    out: list[bytes] = []
    for prog in inst.programs:
        for p, payload in prog.publishes:
            b = inst.payload(payload)
            if p.name == path and b not in out:
                out.append(b)
    return out


def _holds(expr_len: str, expr_byte: str, payloads: list[bytes]) -> str:
    """The content (length ``expr_len``, byte k ``expr_byte % k``) equals one of ``payloads``."""
    if not payloads:
        return "false"
    alts = [" && ".join([f"{expr_len} == {len(p)}", *(f"{expr_byte % k} == {b}" for k, b in enumerate(p))]) for p in payloads]
    return "(" + " || ".join(f"({a})" for a in alts) + ")"


def _file_is(path: str, payloads: list[bytes]) -> str:
    n = f"nm_{_ident(path)}"
    return f"({n} != NOINO && {_holds(f'node[{n}].size', f'node[{n}].data[%d]', payloads)})"


def _corrupt_ok(inst: Instance, prog: Program, buf: str) -> str:
    return _holds(f"{buf}_len", f"{buf}[%d]", _payloads_of(inst, prog.reads.name))


# ------------------------------------------------------------ properties


def _property(inst: Instance, prop: str) -> str | None:
    """A global invariant for ``prop`` (None: it is checked locally, at the
    reader's hit, as ``reader-never-accepts-corrupt`` is)."""
    n = len(inst.programs)
    if prop == SURVIVES:
        stays = _property(inst, STAYS)
        return f"(crashed != 2 || ({stays}))"
    if prop == STAYS:
        # Per program, as in spec.properties: once one of its processes
        # returned ok, each path it publishes holds some writer's payload.
        parts = []
        for prog in dict.fromkeys(inst.programs):
            ok = " || ".join(f"status[{i}] == S_OK" for i in range(n) if inst.programs[i] == prog)
            for path, _ in prog.publishes:
                parts.append(f"(!({ok}) || {_file_is(path.name, _payloads_of(inst, path.name))})")
        return " && ".join(parts) or "true"
    if prop == HITS:
        return " && ".join(f"!(began[{i}] == 2 && (status[{i}] == S_MISS || status[{i}] == S_SIGBUS))" for i in range(n))
    if prop == NO_SIGBUS:
        return " && ".join(f"status[{i}] != S_SIGBUS" for i in range(n))
    if prop == INDEX_OUTPUT:
        entries, outputs = _payloads_of(inst, "entry"), _payloads_of(inst, "output")
        if not entries or not outputs:
            return "true"
        e = "nm_entry"
        valid_index = " || ".join(
            "(" + " && ".join([f"node[{e}].size == {len(p)}", *(f"node[{e}].data[{k}] != 0" for k in range(len(p)))]) + ")" for p in entries)
        return f"({e} == NOINO || !({valid_index}) || {_file_is('output', outputs)})"
    if prop == NO_CORRUPT:
        return None
    raise TranslationError(f"property {prop!r} is not translated (supported: {', '.join(SUPPORTED)})")


# ------------------------------------------------------------ the model


def translate(inst: Instance, properties: Sequence[str] = (STAYS,)) -> str:
    """The Promela model of ``inst`` checking ``properties`` (as asserts)."""
    for prop in properties:
        if prop not in SUPPORTED:
            raise TranslationError(f"property {prop!r} is not translated (supported: {', '.join(SUPPORTED)})")
    if inst.granularity not in ("byte", "write"):
        raise TranslationError(f"granularity must be 'byte' or 'write', not {inst.granularity!r}")
    types: dict[Program, _Proctype] = {}
    for prog in inst.programs:
        if prog not in types:
            types[prog] = _Proctype(prog, inst, properties)
    if inst.max_buffer() >= min(NOINO, NOLEN):
        raise TranslationError(f"files up to {inst.max_buffer()} bytes do not fit the model's byte offsets; use a smaller L or N")
    if inst.crashes not in (0, 1):
        raise TranslationError(f"crashes must be 0 or 1, not {inst.crashes}")
    invariants = [(p, e) for p in properties if (e := _property(inst, p)) is not None]
    # As in spec.explore._check: the crash property is checked after the crash, the others before.
    asserts = [f"assert({e}); /* {p} */" for p, e in invariants if p != SURVIVES]
    after_crash = [f"assert({e}); /* {p} */" for p, e in invariants if p == SURVIVES]
    ibase, bases = 0, []
    for prog in inst.programs:
        bases.append(ibase)
        ibase += len(types[prog].sites)
    shared = sorted({p.name for prog in inst.programs for ins in prog.code for p in _paths(ins) if not p.private} | {"entry"})
    return "\n".join([
        *_header(inst, properties),
        *_globals(inst, max(ibase, 1), shared),
        *(ln for t in types.values() for ln in ["", *t.render(asserts)]),
        *(["", *_crash(inst, shared, after_crash)] if inst.crashes else []),
        "",
        *_init(inst, types, bases),
        "",
    ])


def from_setup(setup: Setup, properties: Sequence[str] = (STAYS,)) -> str:
    """The Promela model of an explorer ``Setup`` (same processes, payloads,
    fault budget, granularity and crashes)."""
    return translate(Instance.from_setup(setup), properties)


def _header(inst: Instance, properties: Sequence[str]) -> list[str]:
    procs = ", ".join(p.name for p in inst.programs)
    return [
        "/* Generated by model_tests/promela.py from the spec's programs; do not edit.",
        f" * processes: {procs}",
        f" * payloads: {', '.join(f'{n}={b!r}' for n, b in inst.payloads)}; fault budget {inst.faults}; granularity {inst.granularity}; crashes {inst.crashes}",
        f" * properties (asserted after every transition): {', '.join(properties)}",
        " */",
    ]


def _globals(inst: Instance, ninodes: int, shared: list[str]) -> list[str]:
    defs = [f"#define {_errno(e)} {k}" for k, e in enumerate(ERRNOS)]
    defs += [f"#define {_status(s)} {k}" for k, s in enumerate(STATUSES)]
    n = len(inst.programs)
    published = " || ".join(f"status[{i}] == S_OK" for i in range(n))
    return [
        *defs,
        f"#define NOINO {NOINO}", f"#define NOLEN {NOLEN}", "#define RBIT 1", "#define WBIT 2", "#define DONE 255",
        f"#define NPROC {n}", f"#define NINO {ninodes}", f"#define MAXLEN {inst.max_file()}",
        f"#define BUFMAX {inst.max_buffer()}", f"#define MAXFAULTS {inst.faults}",
        # Only writers end ok, so this is spec.machine.published.
        f"#define PUBLISHED ({published})",
        "",
        # Durable bytes only where a crash can read them: they would only grow the state vector.
        ("typedef Inode { byte size; byte data[MAXLEN]; byte dsize; byte ddata[MAXLEN] }  /* bytes past (d)size are always 0 */"
         if inst.crashes else "typedef Inode { byte size; byte data[MAXLEN] }  /* bytes past size are always 0 */"),
        "Inode node[NINO];          /* inode slot ibase+site: created by that process's open at that site */",
        *(f"byte nm_{_ident(s)} = NOINO;  /* the inode the shared name {s!r} points at */" for s in shared),
        "byte status[NPROC];        /* S_RUN, or how the process ended */",
        "byte began[NPROC];         /* readers: 0 not yet stepped, 1 first step before publication, 2 after */",
        "byte faults;               /* injected faults so far (the budget is MAXFAULTS) */",
        *(["byte crashed;              /* 0 no power loss, 1 one before any publication, 2 after */"] if inst.crashes else []),
        # Not ``hidden`` (pan's breadth-first mode refuses hidden variables):
        # every transition zeroes them at its end, so they never tell states apart.
        "byte x;                    /* scratch inside one d_step: an inode */",
        "byte j;                    /* scratch inside one d_step: a byte index */",
    ]


def _crash(inst: Instance, shared: list[str], asserts: list[str]) -> list[str]:
    """The power loss: once, at any point, as ``spec.machine.crash``.  Unnamed
    inodes are left as they are: nothing can reach them any more."""
    stop = [f"if :: status[{i}] == S_RUN -> status[{i}] = S_CRASHED :: else -> skip fi;" for i in range(len(inst.programs))]
    body = ["crashed = (PUBLISHED -> 2 : 1);", *stop, *(ln for s in shared for ln in _revert(s)), "x = 0; j = 0;", *asserts]
    return ["proctype Crash() {", "  end: d_step {", "    crashed == 0 ->", *_indent(body, 3), "  }", "}"]


def _init(inst: Instance, types: dict[Program, _Proctype], bases: list[int]) -> list[str]:
    runs = []
    for me, prog in enumerate(inst.programs):
        start = types[prog]._start()
        if start.status != RUNNING:
            runs.append(f"status[{me}] = {_status(start.status)};")
        runs.append(f"run {types[prog].name}({me}, {bases[me]});")
    if inst.crashes:
        runs.append("run Crash();")
    return ["init {", "  atomic {", *_indent(runs, 2), "  }", "}"]
