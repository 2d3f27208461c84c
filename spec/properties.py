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
from typing import Callable

from .machine import SIGBUS, Config, World, valid
from .ops import ENTRY, OUTPUT, Outcome


class UnknownProperty(KeyError):
    """No property of that name exists."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name

    def __str__(self) -> str:
        return f"unknown property {self.name!r}; known: {', '.join(PROPERTIES)}"


def _payloads_of(cfg: Config, path: str) -> set[bytes]:
    """Every payload any writer in the run means to store at ``path``."""
    out = set()
    for k in cfg.kinds:
        for p, payload in k.program.publishes:
            if p.name == path:
                out.add(k.payload(payload))
    return out


def published_entry_stays_complete(cfg: Config, w: World) -> str | None:
    """After the first writer returns success, every path it publishes holds,
    in every later state, exactly the complete payload of some writer of that
    path (not empty, not short, not torn, not missing)."""
    for q in w.procs:
        if q.status != Outcome.OK.value:
            continue
        for path, _ in cfg.kinds[q.kind].program.publishes:
            data = w.fs.file(path.name)
            if data not in _payloads_of(cfg, path.name):
                what = "missing" if data is None else f"{len(data)} bytes {data!r}"
                return f"{path.name} is {what} after publication"
    return None


def reader_after_publication_hits(cfg: Config, w: World) -> str | None:
    """A reader whose first step comes after the first publication ends with
    a hit (not a miss, not SIGBUS)."""
    for i, q in enumerate(w.procs):
        if q.began == 2 and q.status in (Outcome.MISS.value, SIGBUS):
            return f"process {i} began after publication and ended {q.status}"
    return None


def reader_never_accepts_corrupt(cfg: Config, w: World) -> str | None:
    """Whatever a reader returns as a hit is exactly the complete payload of
    some writer of the path it reads."""
    for i, q in enumerate(w.procs):
        if q.status != Outcome.HIT.value:
            continue
        k = cfg.kinds[q.kind]
        buf = next((v[0] for v in q.regs if v and isinstance(v[0], bytes)), None)
        if buf not in _payloads_of(cfg, k.program.reads.name):
            return f"process {i} accepted {buf!r}"
    return None


def mmap_reader_never_faults(cfg: Config, w: World) -> str | None:
    """No reader that maps the entry dies of SIGBUS (the file shrinking
    under its mapping)."""
    for i, q in enumerate(w.procs):
        if q.status == SIGBUS:
            return f"process {i} died of SIGBUS"
    return None


def index_implies_complete_output(cfg: Config, w: World) -> str | None:
    """Whenever the index entry is valid, the output file it points at is
    complete: a get that trusts the index finds the output whole."""
    entries, outputs = _payloads_of(cfg, ENTRY.name), _payloads_of(cfg, OUTPUT.name)
    index = w.fs.file(ENTRY.name)
    if not entries or not outputs or index is None:
        return None
    if not any(valid(index, len(e)) for e in entries):
        return None
    out = w.fs.file(OUTPUT.name)
    if out not in outputs:
        return f"index valid but output is {'missing' if out is None else repr(out)}"
    return None


def published_entry_survives_crash(cfg: Config, w: World) -> str | None:
    """If the machine loses power after the first publication, every path a
    writer had published holds, after the crash, exactly the complete payload
    of some writer of that path."""
    if w.crashed != 2:
        return None
    return published_entry_stays_complete(cfg, w)


@dataclass(frozen=True)
class Property:
    """A named state predicate; ``check`` returns why a state violates it,
    or None.  ``needs_reader`` says the run must include a reader;
    ``after_crash`` that it speaks of post-crash states (and the others of
    states before any crash)."""

    name: str
    check: Callable[[Config, World], str | None]
    needs_reader: bool = False
    after_crash: bool = False

    @property
    def doc(self) -> str:
        return " ".join((self.check.__doc__ or "").split())


PROPERTIES: dict[str, Property] = {
    p.name: p
    for p in (
        Property("published-entry-stays-complete", published_entry_stays_complete),
        Property("reader-after-publication-hits", reader_after_publication_hits, True),
        Property("reader-never-accepts-corrupt", reader_never_accepts_corrupt, True),
        Property("mmap-reader-never-faults", mmap_reader_never_faults, True),
        Property("index-implies-complete-output", index_implies_complete_output),
        Property("published-entry-survives-crash", published_entry_survives_crash, after_crash=True),
    )
}


def get_property(name: str) -> Property:
    """The property called ``name``; UnknownProperty otherwise."""
    try:
        return PROPERTIES[name]
    except KeyError:
        raise UnknownProperty(name) from None

