"""Protocols: a program with what it claims, and the catalogue of them.

A :class:`Protocol` is a program (``spec.programs``), the properties it is
expected to keep and at which fault budget it stops keeping them (each
with a one-line reason), and the reader that looks up what it writes.
``idemwrite check`` compares the claims with what the explorer computes.

The :data:`CATALOGUE` is an immutable collection of protocol values; names
are only how the command line picks from it.  A user's own protocol is a
value of the same type and goes to every checker as it is: nothing is
registered anywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

from .ops import Program, Role
from .programs import (
    CREATE_EXCLUSIVE,
    GO_GET,
    GO_INDEX_ENTRY,
    GO_OUTPUT_FILE,
    GO_PUT,
    GO_READ_ENTRY,
    MMAP_READ,
    READ_UNVALIDATED,
    RENAME_INTO_PLACE,
    RENAME_INTO_PLACE_FSYNC,
    S3_GET,
    S3_GET_OVERWRITE,
    S3_GET_UNCHECKED,
    S3_PUT,
    S3_PUT_RECORD_FIRST,
    WRITE_FILE,
    WRITE_THEN_TRUNCATE,
)
from .properties import (
    HITS,
    INDEX_OUTPUT,
    NO_CORRUPT,
    NO_SIGBUS,
    REMOTE_HIT,
    REMOTE_RECORD,
    STAYS,
    SURVIVES,
    Property,
    get_property,
)


class UnknownProtocol(KeyError):
    """No protocol of that name is in the catalogue."""

    def __init__(self, name: str, known: tuple[str, ...] = ()) -> None:
        super().__init__(name)
        self.name = name
        self.known = known

    def __str__(self) -> str:
        return f"unknown protocol {self.name!r}; known: {', '.join(sorted(self.known))}"


@dataclass(frozen=True)
class Claim:
    """What a protocol promises about one property.

    ``holds_up_to`` is the largest fault budget F at which the property
    holds: None means at every F, -1 means not even without faults.
    """

    property: Property
    holds_up_to: int | None
    reason: str

    def expected(self, faults: int) -> str:
        """``holds`` or ``violated`` at fault budget ``faults``."""
        if self.holds_up_to is None or faults <= self.holds_up_to:
            return "holds"
        return "violated"


@dataclass(frozen=True)
class Protocol:
    """A program, its claims, and the reader that looks up what it writes
    (for the reader properties; a property may name its own observer,
    ``Property.observed_by``)."""

    program: Program
    claims: tuple[Claim, ...] = ()
    reader: Program = GO_READ_ENTRY

    @property
    def name(self) -> str:
        return self.program.name

    def claim(self, prop: Property | str) -> Claim | None:
        """This protocol's claim about ``prop``, if it makes one."""
        p = get_property(prop)
        return next((c for c in self.claims if c.property == p), None)

    def reader_for(self, prop: Property | str) -> Program:
        """The reader that observes ``prop`` for this protocol."""
        return get_property(prop).observed_by or self.reader


class Catalogue:
    """An immutable collection of protocols, looked up by name."""

    def __init__(self, protocols: tuple[Protocol, ...]) -> None:
        names = [p.name for p in protocols]
        if len(set(names)) != len(names):
            raise ValueError(f"protocol names must differ: {names}")
        self._protocols = protocols
        self._by_name = {p.name: p for p in protocols}

    def __getitem__(self, name: str) -> Protocol:
        try:
            return self._by_name[name]
        except KeyError:
            raise UnknownProtocol(name, tuple(self._by_name)) from None

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def __iter__(self) -> Iterator[Protocol]:
        return iter(self._protocols)

    def __len__(self) -> int:
        return len(self._protocols)

    def names(self) -> tuple[str, ...]:
        return tuple(self._by_name)

    def writers(self) -> tuple[Protocol, ...]:
        return tuple(p for p in self._protocols if p.program.role is Role.WRITER)

    def readers(self) -> tuple[Protocol, ...]:
        return tuple(p for p in self._protocols if p.program.role is Role.READER)

    def with_(self, *more: Protocol) -> "Catalogue":
        """A new catalogue with ``more`` added (this one is unchanged)."""
        return Catalogue(self._protocols + more)


# ------------------------------------------------------------ the catalogue

_VALIDATES = Claim(NO_CORRUPT, None, "go-read-entry accepts only an exact, valid entry")
_NOT_DURABLE = Claim(SURVIVES, -1, "nothing is fsynced: after a power loss the published entry may be empty")

CATALOGUE = Catalogue((
    Protocol(WRITE_FILE, (
        Claim(STAYS, -1, "a second writer's O_TRUNC empties a published entry"),
        Claim(HITS, -1, "a reader between O_TRUNC and write finds it empty"),
        Claim(NO_SIGBUS, -1, "O_TRUNC shrinks a file a reader has mapped"),
        _VALIDATES,
        _NOT_DURABLE,
    )),
    Protocol(GO_INDEX_ENTRY, (
        Claim(STAYS, 0, "the remove on an error path deletes another writer's published entry"),
        Claim(HITS, 0, "after that remove a reader misses"),
        Claim(NO_SIGBUS, None, "nothing ever shrinks the file below the entry's size while it is mapped"),
        _VALIDATES,
        _NOT_DURABLE,
    )),
    Protocol(WRITE_THEN_TRUNCATE, (
        Claim(STAYS, None, "every write stores the same bytes and nothing shortens the file"),
        Claim(HITS, None, "the published entry stays complete"),
        Claim(NO_SIGBUS, None, "the file never shrinks below the entry's size"),
        _VALIDATES,
        _NOT_DURABLE,
    )),
    Protocol(RENAME_INTO_PLACE, (
        Claim(STAYS, None, "the name only ever points at a complete file"),
        Claim(HITS, None, "the name only ever points at a complete file"),
        Claim(NO_SIGBUS, None, "a mapped inode is never written again"),
        _VALIDATES,
        Claim(SURVIVES, -1, "the name can be durable before the data: after a power loss the entry may be empty"),
    )),
    Protocol(RENAME_INTO_PLACE_FSYNC, (
        Claim(STAYS, None, "the name only ever points at a complete file"),
        Claim(HITS, None, "the name only ever points at a complete file"),
        _VALIDATES,
        Claim(SURVIVES, None, "the data is durable before the name points at it"),
    )),
    Protocol(CREATE_EXCLUSIVE, (
        Claim(STAYS, -1, "EEXIST is returned as soon as the file exists, before it is written"),
        Claim(HITS, -1, "a writer publishes an empty file"),
        _VALIDATES,
    )),
    Protocol(GO_OUTPUT_FILE, (
        Claim(STAYS, 0, "the truncate-to-0 on an error path empties another writer's completed output"),
    )),
    Protocol(GO_PUT, (
        Claim(STAYS, 0, "both error paths undo another writer's published files"),
        Claim(HITS, 0, "an emptied output or removed index makes a later get miss"),
        Claim(INDEX_OUTPUT, 0, "copyFile's truncate-on-error empties an output a valid index points at"),
    ), reader=GO_GET),
    # The remote tier: N machines put, one more gets (its local directory
    # is the model's file system).
    Protocol(S3_PUT, (
        Claim(REMOTE_RECORD, None, "the output object is whole before the record that names it is put, and nothing "
                                   "deletes it"),
        Claim(HITS, 0, "a GET that fails, times out or is cut short is a miss (never a failed build)"),
        Claim(REMOTE_HIT, None, "the getter checks length and hash before it writes, and writes with "
                                "write-then-truncate"),
        Claim(NO_CORRUPT, None, "a hit delivers only a body of the output's length and hash"),
    ), reader=S3_GET),
    Protocol(S3_PUT_RECORD_FIRST, (
        Claim(REMOTE_RECORD, -1, "between its two PUTs the record names an output object that is not there"),
    ), reader=S3_GET),
    Protocol(GO_READ_ENTRY),
    Protocol(MMAP_READ),
    Protocol(READ_UNVALIDATED),
    Protocol(GO_GET),
    Protocol(S3_GET),
    Protocol(S3_GET_UNCHECKED),
    Protocol(S3_GET_OVERWRITE),
))
