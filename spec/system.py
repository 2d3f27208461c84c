"""Who runs: the one value every checker takes.

A :class:`System` is a tuple of processes - each a program and the payloads
it writes or expects - plus the fault budget, whether the machine may lose
power, and how writes land (a byte a step, or whole).  The explorer, the
bounded model checker, the replays, the Promela translator and the lockstep
machine all take a System, whatever program it runs: catalogue protocols
and a user's own are the same kind of value, and nothing is looked up by
name.

:meth:`System.of` builds the usual shape (N writers of some protocols, R
readers of one reader, payloads of length L); a System can also be written
out process by process, e.g. two writers with payloads of different lengths.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol as TypingProtocol, Sequence, TypedDict, Union

from .ops import Mkdir, Path, Program, ProgramError, Role, Symlink
from .semantics import OPS, features, holders, registers
from .state import RegKind


class SetupError(ValueError):
    """The bounds or the process mix make no sense (no processes, a reader
    given as a writer, a length below 1, a payload missing, ...)."""


ENTRY_BYTES = b"abcdefghijklmnopqrstuvwxyz"
OUTPUT_BYTES = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ"
GRANULARITIES = ("byte", "write")


class HasProgram(TypingProtocol):
    """Anything that carries a program (``spec.protocols.Protocol``)."""

    @property
    def program(self) -> Program: ...


Runnable = Union[Program, HasProgram]


def program_of(x: Runnable) -> Program:
    """The program of a Program or of a protocol value."""
    return x if isinstance(x, Program) else x.program


class Description(TypedDict):
    """A system in the terms of :meth:`System.of` (the ``--json`` fields)."""

    protocols: list[str]
    writers: int
    readers: int
    reader: str | None
    faults: int
    entry_length: int
    granularity: str
    crashes: int
    variants: int


@dataclass(frozen=True)
class Kind:
    """What a process runs - a program and its payloads - with the tables
    the interpreters derive from it once: each register's index and kind,
    the registers that hold inodes, the payloads by name."""

    program: Program
    payloads: tuple[tuple[str, bytes], ...]
    reg: dict[str, int] = field(init=False, compare=False, repr=False)
    reg_kind: dict[str, RegKind] = field(init=False, compare=False, repr=False)
    inode_regs: tuple[int, ...] = field(init=False, compare=False, repr=False)
    by_name: dict[str, bytes] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        kinds = registers(self.program)
        object.__setattr__(self, "reg_kind", kinds)
        object.__setattr__(self, "reg", {n: i for i, n in enumerate(kinds)})
        object.__setattr__(self, "inode_regs", tuple(self.reg[n] for n in holders(self.program)))
        object.__setattr__(self, "by_name", dict(self.payloads))

    @property
    def name(self) -> str:
        return self.program.name

    def payload(self, name: str) -> bytes:
        """The payload called ``name``; ProgramError if it was not given."""
        try:
            return self.by_name[name]
        except KeyError:
            raise ProgramError(f"{self.name}: no payload {name!r} (has {[n for n, _ in self.payloads]})") from None


@dataclass(frozen=True)
class Process:
    """One process: its program, the payloads it writes or expects, and
    its name in traces (by default ``W1``.. for writers, ``R1``.. for
    readers, numbered in order)."""

    program: Program
    payloads: tuple[tuple[str, bytes], ...] = ()
    name: str = ""


@dataclass(frozen=True)
class System:
    """The processes and the bounds of one run.

    processes:   who runs; processes with the same program and payloads
                 are interchangeable (the explorer's symmetry reduction
                 takes adjacent ones as one class).
    faults:      F, how many injected faults the whole run may suffer.
    crashes:     0, or 1 to let the machine lose power once, anywhere.
    granularity: "byte" (a write lands a byte a step) or "write".
    """

    processes: tuple[Process, ...]
    faults: int = 0
    crashes: int = 0
    granularity: str = "byte"
    kinds: tuple[Kind, ...] = field(init=False, compare=False, repr=False)
    kind_of: tuple[int, ...] = field(init=False, compare=False, repr=False)
    names: tuple[str, ...] = field(init=False, compare=False, repr=False)
    features: frozenset[str] = field(init=False, compare=False, repr=False)
    dirs: tuple[str, ...] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.faults < 0:
            raise SetupError(f"the fault budget must be >= 0, not {self.faults}")
        if self.crashes not in (0, 1):
            raise SetupError(f"crashes must be 0 or 1, not {self.crashes}")
        if self.granularity not in GRANULARITIES:
            raise SetupError(f"granularity must be 'byte' or 'write', not {self.granularity!r}")
        kinds: list[Kind] = []
        kind_of: list[int] = []
        for p in self.processes:
            # Compared, not hashed: few kinds, and payloads may be symbolic
            # (CrossHair's contracts build systems of symbolic bytes).
            j = next((j for j, k in enumerate(kinds) if k.program is p.program and k.payloads == p.payloads), None)
            if j is None:
                j = next((j for j, k in enumerate(kinds) if k.program == p.program and k.payloads == p.payloads), len(kinds))
            if j == len(kinds):
                kinds.append(Kind(p.program, p.payloads))
                _check_payloads(kinds[-1])
            kind_of.append(j)
        object.__setattr__(self, "kinds", tuple(kinds))
        object.__setattr__(self, "kind_of", tuple(kind_of))
        object.__setattr__(self, "names", _names(self.processes))
        programs = [k.program for k in kinds]
        object.__setattr__(self, "features", features(programs))
        object.__setattr__(self, "dirs", _dirs(programs))

    @classmethod
    def of(cls, writers: Runnable | Sequence[Runnable], n: int = 3, readers: int = 1,
           reader: Runnable | None = None, *, faults: int = 0, entry_length: int = 2,
           granularity: str = "byte", crashes: int = 0, variants: int = 1) -> "System":
        """``n`` writers (writer j runs ``writers[j % len]``, grouped by
        protocol) and ``readers`` readers of ``reader`` (default
        ``go-read-entry``), writing or expecting payloads of
        ``entry_length`` bytes: ``entry`` and ``output``.

        ``variants``: how many different versions of the bytes the writers
        of one protocol write (1: all the same, as Go's content-addressed
        entries; 2: an HTTP response that changed between two downloads, or
        a build that is not reproducible).  Each version's writers are
        adjacent, so the explorer's symmetry reduction still takes them as
        one class; readers expect the first version's lengths (all versions
        have the same length)."""
        from .programs import GO_READ_ENTRY

        many: Sequence[Runnable] = [writers] if isinstance(writers, Program) or hasattr(writers, "program") else writers
        progs = [program_of(w) for w in many]
        progs = list(dict.fromkeys(progs))
        rd = GO_READ_ENTRY if reader is None else program_of(reader)
        if not progs:
            raise SetupError("name at least one writer protocol")
        for p in progs:
            if p.role is not Role.WRITER:
                raise SetupError(f"{p.name!r} is a reader; pass it as --reader, not --protocol")
        if rd.role is not Role.READER:
            raise SetupError(f"{rd.name!r} is a writer; pass it as --protocol, not --reader")
        if n < 1 or readers < 0:
            raise SetupError("need writers >= 1, readers >= 0, faults >= 0")
        if n < len(progs):
            raise SetupError(f"{len(progs)} protocols need at least as many writers, not {n}")
        if not 1 <= entry_length <= len(ENTRY_BYTES):
            raise SetupError(f"entry length must be 1..{len(ENTRY_BYTES)}, not {entry_length}")
        if faults < 0:
            raise SetupError("need writers >= 1, readers >= 0, faults >= 0")
        if variants < 1 or variants * entry_length > len(ENTRY_BYTES):
            raise SetupError(f"variants must be 1..{len(ENTRY_BYTES) // entry_length} at entry length {entry_length}, "
                             f"not {variants}")
        counts = {p: 0 for p in progs}
        for j in range(n):
            counts[progs[j % len(progs)]] += 1
        procs = [Process(p, _version(v, entry_length)) for p in progs for v, c in enumerate(_split(counts[p], variants))
                 for _ in range(c)]
        procs += [Process(rd, _version(0, entry_length)) for _ in range(readers)]
        return cls(tuple(procs), faults, crashes, granularity)

    # -- derived descriptions (the ``--json`` fields, the trace headings)

    def writer_programs(self) -> tuple[Program, ...]:
        """The distinct writer programs, in process order."""
        return tuple(dict.fromkeys(p.program for p in self.processes if p.program.role is Role.WRITER))

    def reader_programs(self) -> tuple[Program, ...]:
        """The distinct reader programs, in process order."""
        return tuple(dict.fromkeys(p.program for p in self.processes if p.program.role is Role.READER))

    def count(self, role: Role) -> int:
        return sum(1 for p in self.processes if p.program.role is role)

    def entry_length(self) -> int:
        """The length of the ``entry`` payload (0 when no process has one)."""
        return next((len(b) for p in self.processes for n, b in p.payloads if n == "entry"), 0)

    def variants(self) -> int:
        """How many different ``entry`` payloads the writers write."""
        return len({b for p in self.processes if p.program.role is Role.WRITER for n, b in p.payloads if n == "entry"}) or 1

    def describe(self) -> Description:
        """The system in the terms of :meth:`of` (protocols by name)."""
        readers = self.reader_programs()
        return {"protocols": [p.name for p in self.writer_programs()], "writers": self.count(Role.WRITER),
                "readers": self.count(Role.READER), "reader": readers[0].name if readers else None,
                "faults": self.faults, "entry_length": self.entry_length(), "granularity": self.granularity,
                "crashes": self.crashes, "variants": self.variants()}

    def bounds(self) -> str:
        """``N=3 R=1 F=0 L=2 byte`` (and `` crash``)."""
        crash = " crash" if self.crashes else ""
        versions = f" V={self.variants()}" if self.variants() > 1 else ""
        return (f"N={self.count(Role.WRITER)} R={self.count(Role.READER)} F={self.faults} "
                f"L={self.entry_length()}{versions} {self.granularity}{crash}")


def _version(v: int, length: int) -> tuple[tuple[str, bytes], ...]:
    """Version ``v`` of the payloads: the next ``length`` letters for each
    (no zero byte, so every version passes the reader's validation)."""
    lo = v * length
    return (("entry", ENTRY_BYTES[lo:lo + length]), ("output", OUTPUT_BYTES[lo:lo + length]))


def _split(n: int, variants: int) -> list[int]:
    """How many of ``n`` writers write each version: as even as can be,
    the first versions taking the rest (3 over 2 versions: 2 and 1)."""
    return [n // variants + (1 if v < n % variants else 0) for v in range(variants)]


def _check_payloads(k: Kind) -> None:
    missing = [n for n in k.program.payloads() if n not in k.by_name]
    if missing:
        raise SetupError(f"{k.name}: no payload {missing[0]!r} given (has {[n for n, _ in k.payloads]})")


def _dirs(programs: list[Program]) -> tuple[str, ...]:
    """The directories that exist at the start (each program's ``dirs``,
    with their parents), after checking that no name is used both as a
    directory and as a file, and that no directory is private: the model
    keeps the two apart (a directory is only ever made and lived in); and
    that the directories above every symlink's target exist at the start.
    (An open with O_CREAT through a dangling link makes its target, which
    Linux refuses with ENOENT while a directory above it is missing; the
    model does not walk the target's directories - the target is an
    inode's content, not a name the operation knows - so a program may
    only point links into directories that are always there.)"""
    start: set[str] = set()
    dirs: set[str] = set()
    files: set[str] = set()
    targets: list[tuple[str, Symlink]] = []
    for prog in programs:
        for d in prog.dirs:
            p = Path(d)
            start.update((*p.parents(), d))
        for ins in prog.code:
            for path in _paths_of(ins):
                dirs.update(path.parents())
                if isinstance(ins, Mkdir):
                    if path.private:
                        raise SetupError(f"{prog.name}: {ins}: a directory cannot be private")
                    dirs.add(path.name)
                else:
                    files.add(path.name)
            if isinstance(ins, Symlink):
                if ins.target.private:
                    raise SetupError(f"{prog.name}: {ins}: a symlink's target must be a shared name")
                targets.append((prog.name, ins))
    both = (dirs | start) & files
    if both:
        raise SetupError(f"{sorted(both)[0]!r} is used both as a directory and as a file")
    for name, link in targets:
        missing = [d for d in link.target.parents() if d not in start]
        if missing:
            raise SetupError(f"{name}: {link}: directory {missing[0]!r} above the target must exist from the start "
                             "(name it in Program.dirs)")
    return tuple(sorted(start))


def _paths_of(ins: object) -> tuple[Path, ...]:
    row = OPS.get(type(ins))
    return tuple(getattr(ins, a) for a in row.paths) if row is not None else ()


def _names(procs: tuple[Process, ...]) -> tuple[str, ...]:
    out: list[str] = []
    counts = {Role.WRITER: 0, Role.READER: 0}
    for p in procs:
        counts[p.program.role] += 1
        out.append(p.name or f"{'W' if p.program.role is Role.WRITER else 'R'}{counts[p.program.role]}")
    if len(set(out)) != len(out):
        raise SetupError(f"process names must differ: {out}")
    return tuple(out)
