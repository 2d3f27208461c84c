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
    INDEX_SAME,
    NO_CORRUPT,
    NO_MIX,
    NO_SIGBUS,
    REMOTE_HIT,
    REMOTE_RECORD,
    STAYS,
    SURVIVES,
    Property,
    get_property,
)
from . import tools as T


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
class Confirmed:
    """Where a protocol's success path was checked against the real tool
    running here: the test (``module.py::function``, under strace) and
    the version it last ran with (each run records its own with
    ``record_property``).  What is compared - calls on the entry's files,
    names abstracted - is the test's docstring."""

    test: str
    version: str

    def cite(self) -> str:
        return f"confirmed against the real tool ({self.version}) by {self.test}"


@dataclass(frozen=True)
class Source:
    """Where a real tool's protocol was read: the tool and its version, the
    repository, file and function, and the issues that report its known
    bugs.  ``read`` is False where the source could not be read and the
    protocol is modelled from the issue text or the tool's documentation
    (``note`` then says from what).  ``confirmed`` says where the real
    tool's system calls were checked against the protocol; None where the
    tool does not run here and the protocol rests on its cited source."""

    tool: str
    version: str
    repository: str
    file: str
    function: str
    bugs: tuple[str, ...] = ()
    read: bool = True
    note: str = ""
    confirmed: Confirmed | None = None

    def cite(self) -> str:
        """One line: tool version, repository file function, bugs, note,
        and where it was confirmed against the real tool (or that it was not)."""
        bugs = f"; known bugs: {', '.join(self.bugs)}" if self.bugs else ""
        how = "" if self.read else " (source NOT read: modelled from the issue or documentation)"
        note = f"; {self.note}" if self.note else ""
        real = f"; {self.confirmed.cite()}" if self.confirmed else "; not confirmed against the real tool: rests on the cited source"
        return f"{self.tool} {self.version}: {self.repository} {self.file} {self.function}{how}{bugs}{note}{real}"


@dataclass(frozen=True)
class Protocol:
    """A program, its claims, and the reader that looks up what it writes
    (for the reader properties; a property may name its own observer,
    ``Property.observed_by``).

    source:   where a real tool's protocol was read (None for the
              textbook protocols).
    variants: how many different versions of the bytes its writers may
              write for one entry (1: always the same bytes, as for
              content-addressed entries; 2: an HTTP response that changed,
              a build that is not reproducible) - see ``System.of``.
    writers:  the number of writers the default check runs, where lower
              than the check's own (see :meth:`writer_count`).
    """

    program: Program
    claims: tuple[Claim, ...] = ()
    reader: Program = GO_READ_ENTRY
    source: Source | None = None
    variants: int = 1
    writers: int | None = None

    def writer_count(self, default: int) -> int:
        """How many writers the default check runs: ``writers`` where the
        protocol lowers it (a writer of many steps, whose property needs
        no third writer to fail), else ``default``."""
        return default if self.writers is None else min(self.writers, default)

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


# ------------------------------------------------------------ the atlas: real tools

_RENAMED = Claim(STAYS, None, "the name only ever points at a complete file")
_RENAMED_HITS = Claim(HITS, None, "the name only ever points at a complete file")
_RENAMED_VALID = Claim(NO_CORRUPT, None, "a reader only ever opens a complete file")
_NO_FSYNC = Claim(SURVIVES, -1, "no fsync before the name is published: after a power loss the entry may be empty")
_TWO_DURABLE = Claim(SURVIVES, None, "each file is fsynced before it is renamed into place")


def _single_file(name: str) -> tuple[Claim, ...]:
    return (_RENAMED, _RENAMED_HITS, _RENAMED_VALID,
            Claim(SURVIVES, -1, f"{name} does not fsync before the rename: after a power loss the entry may be empty"))


_ATLAS_TEST = "model_tests/test_atlas.py::"
_TOOLS_TEST = "model_tests/test_atlas_tools.py::"

PIP_SOURCE = Source("pip", "23.3.1+ (reader fixed by #12364)", "pypa/pip", "src/pip/_internal/network/cache.py",
                    "SafeFileCache.get, get_body, set, set_body (with CacheControl's _cache_set: set, then set_body)",
                    ("pypa/pip#12361", "psf/cachecontrol#324"),
                    note="the fixed reader checks both files exist; the write side still assumes one URL always "
                         "gives the same bytes (its docstring), which #324 says need not hold",
                    confirmed=Confirmed(_ATLAS_TEST + "test_real_pip_writes_its_http_cache_as_the_catalogue_says",
                                        "pip 26.3"))

ATLAS: tuple[Protocol, ...] = (
    Protocol(T.GIT_LOOSE_OBJECT, (
        Claim(STAYS, None, "link never replaces a name, and EEXIST finds another writer's complete object"),
        Claim(HITS, None, "the object's name appears only by link or rename of a complete temp file"),
        Claim(NO_CORRUPT, None, "a reader only ever opens a complete object"),
        Claim(SURVIVES, -1, "core.fsync's default leaves loose objects out: after a power loss the object may be empty"),
    ), reader=T.GIT_READ_OBJECT,
        source=Source("git", "2.4x (stored commit 30bb547)", "git/git", "object-file.c",
                      "write_loose_object, create_tmpfile, finalize_object_file",
                      note="fsync only with core.fsync=loose-object (not the default); the collision check on "
                           "EEXIST is a FIXME in finalize_object_file",
                      confirmed=Confirmed("model_tests/test_lift_strace.py::"
                                          "test_git_hash_object_lifts_to_exclusive_temp_mkdir_link_unlink",
                                          "git 2.39.5"))),
    Protocol(T.PIP_HTTP_CACHE, (
        _RENAMED, _RENAMED_HITS,
        Claim(NO_CORRUPT, None, "both files only ever hold a complete write, and the reader needs both"),
        Claim(INDEX_OUTPUT, -1, "the metadata is replaced before the body is written: metadata with no body"),
        Claim(INDEX_SAME, -1, "two downloads of different bytes leave one's metadata beside the other's body"),
        Claim(NO_MIX, -1, "the reader reads metadata, then the body, which another write may have replaced "
                          "(the write side of the race, left open by #12364)"),
        _TWO_DURABLE,
    ), reader=T.PIP_READ, source=PIP_SOURCE, variants=2, writers=2),
    Protocol(T.PIP_HTTP_CACHE_23_3, (
        _RENAMED, _RENAMED_HITS,
        Claim(NO_CORRUPT, -1, "a reader between the metadata's and the body's rename gets metadata with no body, "
                              "served as an empty body (pip#12361)"),
        Claim(INDEX_OUTPUT, -1, "the metadata is replaced before the body is written: metadata with no body"),
        Claim(INDEX_SAME, -1, "two downloads of different bytes leave one's metadata beside the other's body"),
        Claim(NO_MIX, -1, "the reader reads metadata, then the body, which another write may have replaced"),
        # No crash claim: the writer is pip-http-cache's, whose crash verdict
        # is the same, and a crash exploration costs more than all the rest.
    ), reader=T.PIP_READ_23_3, variants=2, writers=2,
        source=Source("pip", "23.3", "pypa/pip", "src/pip/_internal/network/cache.py", "SafeFileCache.get, get_body",
                      ("pypa/pip#12361",), note="get_body returned None for a missing body; fixed in #12364")),
    Protocol(T.CACACHE_PUT, (
        Claim(STAYS, None, "content appears only by rename of a complete temp file, and a second writer's rename "
                           "(access found nothing yet) replaces it with the same bytes: its name is its hash"),
        Claim(HITS, None, "the index line is appended only after the content is in place"),
        Claim(NO_CORRUPT, None, "appends land whole and content is verified"),
        Claim(SURVIVES, -1, "nothing is fsynced: after a power loss the content may be empty"),
    ), reader=T.CACACHE_GET,
        source=Source("npm cacache", "20.0.4 (npm 11.19.1)", "npm/cacache",
                      "lib/content/write.js, lib/entry-index.js (stored 2f06143, 5e9e825; as installed with npm "
                      "11.19.1); @npmcli/fs 5.0.0 lib/move-file.js",
                      "write.stream (handleContent, moveToDestination), insert; moveFile(overwrite: false)",
                      note="README: 'Fault tolerance (immune to corruption, partial writes, process races, etc)', "
                           "'Lockless, high-concurrency cache access'; the index is modelled by its first line; "
                           "content is moved by access(2) then rename(2) - cacache up to its own "
                           "lib/util/move-file.js (stored 59cd403) linked instead, EEXIST meaning there already",
                      confirmed=Confirmed(_TOOLS_TEST + "test_real_npm_cache_add_writes_as_cacache_put_says",
                                          "npm 11.19.1, cacache 20.0.4"))),
    Protocol(T.UV_PERSIST, _single_file("uv"), reader=T.UV_READ,
             source=Source("uv", "0.x", "astral-sh/uv", "crates/uv-fs/src/lib.rs", "write_atomic (tempfile persist)",
                           read=False, note="source not read; under strace: a temp file made with O_EXCL, opened "
                                            "again by name with O_TRUNC and written, closed, renamed; no fsync",
                           confirmed=Confirmed(_ATLAS_TEST + "test_real_uv_writes_its_index_cache_as_uv_write_atomic_says",
                                               "uv 0.13.9"))),
    Protocol(T.CCACHE_ATOMIC_FILE, _single_file("ccache"), reader=T.CCACHE_READ,
             source=Source("ccache", "4.7.5 (Debian 4.8+really4.7.5)", "ccache/ccache",
                           "src/AtomicFile.cpp, src/storage/local/LocalStorage.cpp",
                           "AtomicFile::commit, LocalStorage::put",
                           note="result (R) and manifest (M) files: a mkstemp temp beside it "
                                "(<name>.tmp.XXXXXX.tmp, O_RDWR|O_CREAT|O_EXCL), fwrite, fclose, rename; no fsync; "
                                "the destructor unlinks an uncommitted temp; look_up_cache_file's stats before and "
                                "put's stat after are abstracted",
                           confirmed=Confirmed(_TOOLS_TEST + "test_real_ccache_writes_result_and_manifest_as_atomic_file_says",
                                               "ccache 4.7.5"))),
    Protocol(T.GRADLE_STORE, _single_file("Gradle"), reader=T.GRADLE_LOAD,
             source=Source("Gradle", "8.x", "gradle/gradle",
                           "subprojects/build-cache/.../DirectoryBuildCacheService.java, DefaultBuildCacheTempFileStore.java",
                           "store, withTempFile", read=False,
                           note="only DefaultBuildCacheTempFileStore (<hash>-<random>.part, deleted in finally) was "
                                "read; the move under the cache's lock is from the brief; Gradle locks with "
                                "FileChannel.lock (fcntl on Linux), modelled as flock")),
    Protocol(T.CARGO_UNPACK, (
        Claim(STAYS, None, "under the lock a complete .cargo-ok is never rewritten, nor its crate"),
        Claim(HITS, None, ".cargo-ok is written only after the extraction is complete"),
        Claim(NO_CORRUPT, None, "a reader trusts only a complete .cargo-ok, written after the extraction"),
        Claim(INDEX_OUTPUT, None, ".cargo-ok is written only after the extraction is complete"),
        Claim(INDEX_SAME, None, "the lock serialises extractions: the marker and the files are of one"),
        Claim(SURVIVES, -1, "nothing is fsynced: after a power loss .cargo-ok may stand beside an empty file"),
    ), reader=T.CARGO_READ,
        source=Source("cargo", "1.7x", "rust-lang/cargo", "src/cargo/sources/registry/mod.rs",
                      "RegistrySource::unpack_package", read=False,
                      note="modelled from the brief: package cache flock, extraction, then .cargo-ok")),
    Protocol(T.GTC_UNIX, (
        _RENAMED, Claim(HITS, None, "each name only ever points at a complete file, the output first"),
        Claim(NO_CORRUPT, None, "a reader only ever opens a complete index"),
        Claim(INDEX_OUTPUT, None, "the output is renamed into place before the action file"),
        Claim(INDEX_SAME, None, "each file is renamed whole, the output before the action file"),
        Claim(SURVIVES, -1, "no fsync before the renames: after a power loss the output may be empty"),
    ), reader=GO_GET,
        source=Source("bradfitz/go-tool-cache", "stored commit 0bc8aa9", "bradfitz/go-tool-cache",
                      "cachers/disk.go, cachers/disk_notwindows.go", "SimpleDiskCache.Put, writeAtomic")),
    Protocol(T.GTC_WINDOWS, (
        Claim(STAYS, 0, "the remove on an error path deletes another writer's published output"),
        Claim(HITS, 0, "after that remove a reader misses"),
        Claim(NO_CORRUPT, None, "the index is written and truncated after, never shortened below the entry"),
        Claim(INDEX_OUTPUT, 0, "the remove on an error path deletes an output a valid index points at"),
        Claim(INDEX_SAME, 0, "the same remove leaves a valid index with no output"),
        Claim(SURVIVES, -1, "nothing is fsynced: after a power loss the output may be empty"),
    ), reader=GO_GET, writers=2,
        source=Source("bradfitz/go-tool-cache", "stored commit 471441c", "bradfitz/go-tool-cache",
                      "cachers/disk_windows.go", "writeOutputFile, writeActionFile",
                      note="Windows' sharing modes are not modelled: Linux semantics")),
    Protocol(T.GOBUILDCACHE_PUT, (
        Claim(STAYS, None, "the output is renamed whole and the first symlink stays"),
        Claim(HITS, None, "the symlink is made only after the output is complete"),
        Claim(NO_CORRUPT, None, "the output a symlink names is always complete"),
        Claim(SURVIVES, -1, "no fsync before the rename: after a power loss the output may be empty"),
    ), reader=T.GOBUILDCACHE_GET,
        source=Source("saracen/gobuildcache", "stored commit 0b3c9fb", "saracen/gobuildcache", "storage.go",
                      "Disk.PutOutput, Disk.LinkActionToOutput, Disk.OutputIDFromAction",
                      note="outputs are named by their hash: different builds give different names, so one "
                           "version of the bytes is modelled")),
    Protocol(T.HYPERSHIFT_PUT, (
        Claim(STAYS, -1, "a second put's O_TRUNC empties the output another put has published"),
        Claim(HITS, -1, "a reader between O_TRUNC and write misses"),
        Claim(NO_CORRUPT, -1, "lookup answers the size it saw, so the go command takes a partial file at DiskPath"),
        Claim(INDEX_OUTPUT, -1, "O_TRUNC of the output leaves a valid action file pointing at a partial one"),
        Claim(INDEX_SAME, -1, "the same O_TRUNC"),
        Claim(SURVIVES, -1, "nothing is fsynced: after a power loss the output may be empty"),
    ), reader=T.HYPERSHIFT_GET,
        source=Source("openshift/hypershift", "stored commit ef0746a (before the fix)", "openshift/hypershift",
                      "contrib/ci/gocacheprog/main.go", "handlePut, lookup", ("openshift/hypershift#8624",))),
    Protocol(T.HYPERSHIFT_PUT_FIXED, (
        _RENAMED, Claim(HITS, None, "each name only ever points at a complete file, the output first"),
        Claim(NO_CORRUPT, None, "the output at DiskPath is always complete"),
        Claim(INDEX_OUTPUT, None, "the output is renamed into place before the action file"),
        Claim(INDEX_SAME, None, "each file is renamed whole, the output before the action file"),
        Claim(SURVIVES, -1, "no fsync before the renames: after a power loss the output may be empty"),
    ), reader=T.HYPERSHIFT_GET,
        source=Source("openshift/hypershift", "after #8624", "openshift/hypershift", "contrib/ci/gocacheprog/main.go",
                      "handlePut", ("openshift/hypershift#8624",), read=False,
                      note="the fixed handlePut is not in the stored index: modelled as temp file and rename for "
                           "both files, as the fix is described")),
)
"""The protocols of real tools, each with its source (``idemwrite list``
prints it; SPEC.md's "Protocols of real tools" table verdicts them)."""

# The readers of the atlas, as protocols of their own (``--reader``).
ATLAS_READERS: tuple[Protocol, ...] = tuple(
    Protocol(r) for r in dict.fromkeys(p.reader for p in ATLAS) if r is not GO_GET)

# ------------------------------------------------------------ the catalogue

# The go command's own writers of GOCACHE, lifted from the real go build.
GO_INDEX_SOURCE = Source(
    "go", "1.13+ (after commit 2fc7574)", "golang/go", "src/cmd/go/internal/cache/cache.go", "Cache.putIndexEntry",
    ("golang/go#29667",), note="the remove on error is Go's own TODO",
    confirmed=Confirmed("model_tests/test_lift_go.py::test_index_entries_lift_to_go_index_entry", "go 1.27.3"))
GO_OUTPUT_SOURCE = Source(
    "go", "1.13+", "golang/go", "src/cmd/go/internal/cache/cache.go", "Cache.copyFile",
    confirmed=Confirmed("model_tests/test_lift_go.py::test_outputs_lift_to_go_output_file", "go 1.27.3"))

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
    ), source=GO_INDEX_SOURCE),
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
    ), source=GO_OUTPUT_SOURCE),
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
    *ATLAS,
    *ATLAS_READERS,
))
