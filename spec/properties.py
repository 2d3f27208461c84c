"""The named properties: what a protocol may promise, checked on states.

Every property is a state predicate of the explored system (its observations
- how readers ended and what they accepted - are part of the state), so a
violation is a reachable state and its shortest trace is the path to it.
"Publication" is the moment some writer's program returns success.

A property names what it promises, in positive form.  Each is violated by
at least one catalogue protocol (``idemwrite check`` shows which): a property
that nothing violates would be untested.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Callable, Mapping

from .fs import valid
from .ops import ACTION_KEY, ENTRY, OUTPUT, OUTPUT_KEY, Program, PutObject, Role
from .programs import MMAP_READ
from .state import Began, Buf, Crash, Status, World
from .system import System


class UnknownProperty(KeyError):
    """No property of that name exists."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name

    def __str__(self) -> str:
        return f"unknown property {self.name!r}; known: {', '.join(PROPERTIES)}"


def _payloads_of(system: System, path: str) -> set[bytes]:
    """Every payload any writer in the run means to store at ``path``."""
    out = set()
    for k in system.kinds:
        for p, payload in k.program.publishes:
            if p.name == path:
                out.add(k.payload(payload))
    return out


def published_entry_stays_complete(system: System, w: World) -> str | None:
    """After the first writer returns success, every path it publishes holds,
    in every later state, exactly the complete payload of some writer of that
    path (not empty, not short, not torn, not missing)."""
    for q in w.procs:
        if q.status != Status.OK:
            continue
        for path, _ in system.kinds[q.kind].program.publishes:
            data = w.fs.file(path.name)
            if data not in _payloads_of(system, path.name):
                what = "missing" if data is None else f"{len(data)} bytes {data!r}"
                return f"{path.name} is {what} after publication"
    return None


def reader_after_publication_hits(system: System, w: World) -> str | None:
    """A reader whose first step comes after the first publication ends with
    a hit (not a miss, not SIGBUS)."""
    for i, q in enumerate(w.procs):
        if q.began == Began.AFTER_PUBLICATION and q.status in (Status.MISS, Status.SIGBUS):
            return f"process {i} began after publication and ended {q.status.value}"
    return None


def reader_never_accepts_corrupt(system: System, w: World) -> str | None:
    """Whatever a reader returns as a hit is exactly the complete payload of
    some writer of the path it reads."""
    for i, q in enumerate(w.procs):
        if q.status != Status.HIT:
            continue
        k = system.kinds[q.kind]
        buf = next((v.data for v in q.regs if isinstance(v, Buf)), None)
        if buf not in _payloads_of(system, k.program.reads.name):
            return f"process {i} accepted {buf!r}"
    return None


def mmap_reader_never_faults(system: System, w: World) -> str | None:
    """No reader that maps the entry dies of SIGBUS (the file shrinking
    under its mapping)."""
    for i, q in enumerate(w.procs):
        if q.status == Status.SIGBUS:
            return f"process {i} died of SIGBUS"
    return None


def index_implies_complete_output(system: System, w: World) -> str | None:
    """Whenever the index entry is valid, the output file it points at is
    complete: a get that trusts the index finds the output whole."""
    entries, outputs = _payloads_of(system, ENTRY.name), _payloads_of(system, OUTPUT.name)
    index = w.fs.file(ENTRY.name)
    if not entries or not outputs or index is None:
        return None
    if not any(valid(index, len(e)) for e in entries):
        return None
    out = w.fs.file(OUTPUT.name)
    if out not in outputs:
        return f"index valid but output is {'missing' if out is None else repr(out)}"
    return None


def objects_put(system: System, key: str) -> set[bytes]:
    """Every object any process in the run means to PUT at ``key``."""
    out = set()
    for k in system.kinds:
        for ins in k.program.code:
            if isinstance(ins, PutObject) and ins.key.name == key:
                out.add(k.payload(ins.data.payload)[ins.data.start:ins.data.stop])
    return out


def remote_hit_serves_complete_output(system: System, w: World) -> str | None:
    """A remote hit is served only as the complete output: while a process
    that wrote a fetched output into the local directory has ended with a
    hit, the local file holds exactly its payload (what the output's
    SHA-256, its OutputID, names), in every later state."""
    for i, q in enumerate(w.procs):
        if q.status != Status.HIT:
            continue
        k = system.kinds[q.kind]
        for path, payload in k.program.publishes:
            data = w.fs.file(path.name)
            if data != k.payload(payload):
                what = "missing" if data is None else f"{len(data)} bytes {data!r}"
                return f"process {i} served a remote hit but {path.name} is {what}"
    return None


def remote_record_names_complete_output(system: System, w: World) -> str | None:
    """Whenever the remote action record exists, the output object it
    names exists and is complete: a get that trusts the record finds the
    whole output."""
    outputs = objects_put(system, OUTPUT_KEY.name)
    if w.fs.object(ACTION_KEY.name) is None or not outputs:
        return None
    out = w.fs.object_bytes(OUTPUT_KEY.name)
    if out not in outputs:
        return f"the action record exists but the output object is {'missing' if out is None else repr(out)}"
    return None


def _writes(system: System) -> list[dict[str, bytes]]:
    """Each writer kind's write: the bytes it means to store, by path."""
    return [{p.name: k.payload(pl) for p, pl in k.program.publishes} for k in system.kinds if k.program.publishes]


def reader_never_mixes_writes(system: System, w: World) -> str | None:
    """No reader ever holds, at once, complete parts of two different
    writes (the metadata of one write and the body of another): whatever
    complete parts a reader has read are all the bytes of one single write.
    (A part that is not complete is ``reader-never-accepts-corrupt``'s
    concern; with one version of the bytes this cannot fail.)"""
    writes: list[set[bytes]] | None = None  # computed only when a reader holds two buffers
    for i, q in enumerate(w.procs):
        held = {v.data for v in q.regs if isinstance(v, Buf)}
        if len(held) < 2 or system.kinds[q.kind].program.role is not Role.READER:
            continue
        writes = writes if writes is not None else [set(x.values()) for x in _writes(system)]
        parts = {b for b in held if any(b in x for x in writes)}
        if len(parts) > 1 and not any(parts <= x for x in writes):
            return f"process {i} holds {sorted(parts)!r}, parts of different writes"
    return None


def index_implies_same_write(system: System, w: World) -> str | None:
    """Whenever the index (the marker, the metadata) holds exactly the
    index of one write, every other path that write publishes holds exactly
    the bytes of that same write: a marker implies complete parts, and
    parts of the write it describes."""
    index = w.fs.file(ENTRY.name)
    if index is None:
        return None
    mine = [x for x in _writes(system) if x.get(ENTRY.name) == index and len(x) > 1]
    if not mine:
        return None
    if any(all(w.fs.file(p) == b for p, b in x.items()) for x in mine):
        return None
    path = next(p for p in mine[0] if w.fs.file(p) != mine[0][p])
    data = w.fs.file(path)
    return f"index is {index!r} but {path} is {'missing' if data is None else repr(data)}"


def published_entry_survives_crash(system: System, w: World) -> str | None:
    """If the machine loses power after the first publication, every path a
    writer had published holds, after the crash, exactly the complete payload
    of some writer of that path."""
    if w.crashed != Crash.AFTER_PUBLICATION:
        return None
    return published_entry_stays_complete(system, w)


@dataclass(frozen=True)
class Property:
    """A named state predicate; ``check`` returns why a state violates it,
    or None.

    needs_reader: the run must include a reader.
    after_crash:  it speaks of post-crash states (the others of states
                  before any crash).
    observed_by:  the reader that observes it (None: the reader of the
                  writer's protocol, ``spec.protocols.Protocol.reader``).
    needs_paths:  paths some writer must publish for it to say anything.
    needs_objects: it speaks of the object store (a remote tier): a
                  system with no object operation cannot break it.
    distinct_states_suffice: its verdict on a world depends only on the
                  file system, the faults and crash so far, and *which*
                  process states occur - not how many processes are in
                  each, nor their order ("some process ...", "every
                  process ..."), so the explorer may check it once per
                  such set.  Leave it False for a property that counts.
    """

    name: str
    check: Callable[[System, World], str | None]
    needs_reader: bool = False
    after_crash: bool = False
    observed_by: Program | None = None
    needs_paths: tuple[str, ...] = ()
    distinct_states_suffice: bool = False
    needs_objects: bool = False  # it speaks of the object store: says nothing without it

    @property
    def doc(self) -> str:
        return " ".join((self.check.__doc__ or "").split())

    def __str__(self) -> str:
        return self.name


# Each of these asks whether some process is in some state: none counts.
STAYS = Property("published-entry-stays-complete", published_entry_stays_complete, distinct_states_suffice=True)
HITS = Property("reader-after-publication-hits", reader_after_publication_hits, needs_reader=True, distinct_states_suffice=True)
NO_CORRUPT = Property("reader-never-accepts-corrupt", reader_never_accepts_corrupt, needs_reader=True, distinct_states_suffice=True)
NO_SIGBUS = Property("mmap-reader-never-faults", mmap_reader_never_faults, needs_reader=True, observed_by=MMAP_READ,
                     distinct_states_suffice=True)
INDEX_OUTPUT = Property("index-implies-complete-output", index_implies_complete_output,
                        needs_paths=(ENTRY.name, OUTPUT.name), distinct_states_suffice=True)
SURVIVES = Property("published-entry-survives-crash", published_entry_survives_crash, after_crash=True, distinct_states_suffice=True)
REMOTE_HIT = Property("remote-hit-serves-complete-output", remote_hit_serves_complete_output, needs_reader=True,
                      distinct_states_suffice=True, needs_objects=True)
REMOTE_RECORD = Property("remote-record-names-complete-output", remote_record_names_complete_output,
                         distinct_states_suffice=True, needs_objects=True)
NO_MIX = Property("reader-never-mixes-writes", reader_never_mixes_writes, needs_reader=True, distinct_states_suffice=True)
INDEX_SAME = Property("index-implies-same-write", index_implies_same_write,
                      needs_paths=(ENTRY.name, OUTPUT.name), distinct_states_suffice=True)

# Read-only: names are only how the command line picks a property.
PROPERTIES: Mapping[str, Property] = MappingProxyType(
    {p.name: p for p in (STAYS, HITS, NO_CORRUPT, NO_SIGBUS, INDEX_OUTPUT, SURVIVES, NO_MIX, INDEX_SAME,
                         REMOTE_HIT, REMOTE_RECORD)})


def get_property(name: str | Property) -> Property:
    """The property called ``name`` (a Property is returned as is);
    UnknownProperty otherwise."""
    if isinstance(name, Property):
        return name
    try:
        return PROPERTIES[name]
    except KeyError:
        raise UnknownProperty(name) from None
