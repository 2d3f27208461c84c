"""The programs of real tools: how the ecosystem writes shared cache files.

Each writer here is the sequence of calls one tool makes to store a cache
entry, with its error paths, and each reader how that tool (or the go
command it serves) looks the entry up.  What each is expected to keep, and
where each was read (repository, file, function, version), is in
``spec.protocols`` (the claims and the :class:`~spec.protocols.Source`).

Names.  A one-file entry lives at ``entry`` (git's at ``objects/ab/obj``,
below a fan-out directory that may not exist yet).  An entry of two files
uses the model's two payloads: ``entry`` is the part readers look at first
- the index, the marker, the metadata - and ``output`` the part it
describes - the content, the extracted file, the body.  The properties
``index-implies-complete-output`` and ``index-implies-same-write`` speak
of exactly these two names.

Abstracted, for every tool: the directories a tool makes with
``mkdir -p`` before it writes (they exist from the start here; only git's
fan-out directory is modelled, because git's own code depends on its
ENOENT); permissions and ``chmod``; a hash over the bytes, which is the
reader's validation (it cannot tell two writes of the same length apart,
just as a parser cannot); and a read loop, which is one read.  A tool's
temp file is a private name (``<name>.<pid>``), as ``mkstemp`` and
``O_EXCL`` with a random suffix make it.
"""

from __future__ import annotations

from .ops import (
    ENTRY,
    O_APPEND,
    O_CREAT,
    O_EXCL,
    O_RDONLY,
    O_RDWR,
    O_TRUNC,
    O_WRONLY,
    OUTPUT,
    Close,
    Data,
    Failed,
    Fsync,
    Ftruncate,
    Goto,
    If,
    Instr,
    Invalid,
    Label,
    Length,
    Link,
    LockOp,
    Flock,
    Mkdir,
    Open,
    Outcome,
    Path,
    Program,
    Read,
    Readlink,
    Rename,
    Return,
    Role,
    SizeIs,
    Stat,
    Symlink,
    Unlink,
    Write,
)

ERR = Failed()
EEXIST = Failed(frozenset({"EEXIST"}))
ENOENT = Failed(frozenset({"ENOENT"}))
OK = Return(Outcome.OK)
FAIL = Return(Outcome.FAIL)
MISS = Return(Outcome.MISS)
HIT = Return(Outcome.HIT)

ENTRY_TMP = Path("entry.tmp", private=True)
OUTPUT_TMP = Path("output.tmp", private=True)
LOCK = Path("cache.lock")

# git: objects/<2 hex>/<38 hex>, the fan-out directory made on first use.
GIT_DIR = Path("objects/ab")
GIT_OBJECT = Path("objects/ab/obj")
GIT_TMP = Path("objects/ab/tmp_obj", private=True)


# ------------------------------------------------------------ shared pieces


def _via_temp(dst: Path, tmp: Path, payload: str, on_error: str, p: str, *, fsync: bool = False,
              cleanup: bool = True, fd: str = "f") -> tuple[Instr, ...]:
    """Write ``payload`` to the private ``tmp``, (fsync,) close, rename
    over ``dst``; on an error close, unlink the temp (unless the tool
    leaves it behind) and go to ``on_error``.  Goes on after it on success."""
    sync: tuple[Instr, ...] = (Fsync(fd), If(ERR, f"{p}close_err")) if fsync else ()
    drop: tuple[Instr, ...] = (Unlink(tmp),) if cleanup else ()
    return (
        Open(tmp, O_WRONLY | O_CREAT | O_EXCL, fd), If(ERR, on_error),
        Write(Data(payload), fd), If(ERR, f"{p}close_err"),
        *sync,
        Close(fd), If(ERR, f"{p}drop"),
        # rename(2) replaces the name atomically: readers see old or new.
        Rename(tmp, dst), If(ERR, f"{p}drop"),
        Goto(f"{p}done"),
        Label(f"{p}close_err"), Close(fd),
        Label(f"{p}drop"), *drop, Goto(on_error),
        Label(f"{p}done"),
    )


def _overwrite(path: Path, payload: str, on_error: str, p: str, fd: str = "f") -> tuple[Instr, ...]:
    """Go's os.WriteFile: open with O_TRUNC, write, close."""
    return (
        Open(path, O_WRONLY | O_CREAT | O_TRUNC, fd), If(ERR, on_error),
        Write(Data(payload), fd), If(ERR, f"{p}close_err"),
        Close(fd), If(ERR, on_error),
        Goto(f"{p}done"),
        Label(f"{p}close_err"), Close(fd), Goto(on_error),
        Label(f"{p}done"),
    )


def _read_validated(path: Path, payload: str, into: str = "buf", fd: str = "f") -> tuple[Instr, ...]:
    """Open, read len+1, close; a missing file or one that does not
    validate (the tool's hash or parser) goes to ``miss``."""
    return (
        Open(path, O_RDONLY, fd), If(ERR, "miss"),
        Read(Length(payload, 1), fd, into),
        Close(fd),
        If(Invalid(payload, into), "miss"),
    )


def _reader(name: str, summary: str, code: tuple[Instr, ...], reads: Path = ENTRY) -> Program:
    return Program(name, Role.READER, code, reads=reads, summary=summary)


def _writer(name: str, summary: str, code: tuple[Instr, ...], publishes: tuple[tuple[Path, str], ...],
            dirs: tuple[str, ...] = ()) -> Program:
    return Program(name, Role.WRITER, code, publishes=publishes, summary=summary, dirs=dirs)


# ------------------------------------------------------------ git


def _git_loose_object() -> tuple[Instr, ...]:
    """write_object_file -> write_loose_object -> finalize_object_file."""
    return (
        # freshen_loose_object: an object that exists is not written again.
        Stat(GIT_OBJECT), If(SizeIs(">", Length(None, -1)), "done"),
        # create_tmpfile: mkstemp in the fan-out directory; on ENOENT make
        # the directory (EEXIST is fine: another writer made it) and retry.
        Open(GIT_TMP, O_RDWR | O_CREAT | O_EXCL), If(ENOENT, "mkdir"), If(ERR, "fail"), Goto("write"),
        Label("mkdir"), Mkdir(GIT_DIR), If(EEXIST, "retry"), If(ERR, "fail"),
        Label("retry"), Open(GIT_TMP, O_RDWR | O_CREAT | O_EXCL), If(ERR, "fail"),
        # A failed write or close dies: the temp file is left behind.
        Label("write"), Write(Data("entry")), If(ERR, "fail"),
        Close(), If(ERR, "fail"),
        # finalize_object_file: link, and EEXIST means another writer's
        # complete object is there already (git compares the bytes).
        Link(GIT_TMP, GIT_OBJECT), If(EEXIST, "cleanup"), If(ERR, "rename"),
        Label("cleanup"), Unlink(GIT_TMP), OK,
        # Where links fail (some file systems), rename is the fallback.
        Label("rename"), Rename(GIT_TMP, GIT_OBJECT), If(ERR, "unlink_fail"), OK,
        Label("unlink_fail"), Unlink(GIT_TMP),
        Label("fail"), FAIL,
        Label("done"), OK,
    )


# ------------------------------------------------------------ pip


def _pip_http_cache() -> tuple[Instr, ...]:
    """CacheControl's _cache_set on pip's SafeFileCache: set(metadata) then
    set_body(body), each through adjacent_tmp_file (fsync) and os.replace.
    suppressed_cache_errors swallows an OSError and leaves the temp file.

    Abstracted: after a failed metadata write pip still writes the body;
    here the writer stops.  That body would only pair an older metadata
    with a newer body, a mix the model already shows without faults, and
    modelling it doubles the states at F=1."""
    return (
        *_via_temp(ENTRY, ENTRY_TMP, "entry", "fail", "m_", fsync=True, cleanup=False),
        *_via_temp(OUTPUT, OUTPUT_TMP, "output", "fail", "b_", fsync=True, cleanup=False),
        OK,
        Label("fail"), FAIL,
    )


def _pip_read(fixed: bool) -> tuple[Instr, ...]:
    """SafeFileCache.get then get_body.  Before #12364 a missing body
    is not a miss: CacheControl serves the metadata's embedded, empty body.
    After it, get and get_body each check that both files exist."""
    meta = (
        Open(ENTRY, O_RDONLY), If(ERR, "miss"),
        Read(Length("entry", 1), "f", "meta"), Close(),
        If(Invalid("entry", "meta"), "miss"),
    )
    if not fixed:
        return (
            *meta,
            Open(OUTPUT, O_RDONLY, "g"), If(ERR, "no_body"),
            Read(Length("output", 1), "g", "buf"), Close("g"),
            HIT,
            # The bug: metadata with no body is served as a hit.
            Label("no_body"), HIT,
            Label("miss"), MISS,
        )
    return (
        *meta,
        # get: the body must exist too (#12364).
        Open(OUTPUT, O_RDONLY, "g"), If(ERR, "miss"), Close("g"),
        # get_body: the metadata must still exist, then the body is opened.
        Open(ENTRY, O_RDONLY), If(ERR, "miss"), Close(),
        Open(OUTPUT, O_RDONLY, "g"), If(ERR, "miss"),
        Read(Length("output", 1), "g", "buf"), Close("g"),
        HIT,
        Label("miss"), MISS,
    )


# ------------------------------------------------------------ npm cacache


def _cacache_put() -> tuple[Instr, ...]:
    """cacache 20's put.stream: content/write.js handleContent, then
    entry-index.js insert.  The content is streamed to a temp file opened
    ``wx`` (O_EXCL) under ``tmp/``, closed, and moved into place by its
    hash with @npmcli/fs moveFile(tmp, dest, {overwrite: false}): an
    access(2) of the destination - content already there (another
    writer's: the same bytes, by its hash) throws "The destination file
    exists", which moveToDestination swallows, and handleContent's finally
    removes the temp - else rename(2) over it.  Then one index line is
    appended (appendFile: O_APPEND) with the hash of the line before it.

    The access-then-rename leaves a window: two writers may both find no
    content and both rename; the second replaces a complete file with a
    complete file of the same bytes.  Abstracted: the ``mkdir -p`` of the
    temp and content directories; rm's lstat of the temp (after a rename
    it finds nothing; on the "there" path it finds the temp, then unlinks
    it); and moveFile's EXDEV/EPERM copy fallback (the temp directory is
    inside the cache)."""
    return (
        # Node's "wx": O_TRUNC comes with it (a no-op on a new file).
        Open(OUTPUT_TMP, O_WRONLY | O_CREAT | O_EXCL | O_TRUNC), If(ERR, "fail"),
        Write(Data("output")), If(ERR, "close_unlink"),
        Close(), If(ERR, "unlink"),
        # pathExists: only ENOENT is "not there" (any other error: there).
        Stat(OUTPUT), If(SizeIs(">", Length(None, -1)), "there"),
        Rename(OUTPUT_TMP, OUTPUT), If(ERR, "unlink"),
        Goto("index"),
        Label("there"), Unlink(OUTPUT_TMP),
        # appendFile: one write of the whole line at the end of the bucket.
        Label("index"),
        Open(ENTRY, O_WRONLY | O_CREAT | O_APPEND, "g"), If(ERR, "fail"),
        Write(Data("entry"), "g"), If(ERR, "close_g"),
        Close("g"), If(ERR, "fail"),
        OK,
        Label("close_g"), Close("g"), FAIL,
        Label("close_unlink"), Close(),
        Label("unlink"), Unlink(OUTPUT_TMP),
        Label("fail"), FAIL,
    )


def _cacache_get() -> tuple[Instr, ...]:
    """get: the bucket's lines whose own hash checks, then the content by
    its integrity (read.js verifies it).  The first ``len(entry)`` bytes
    stand for one line: appends land whole, so a line is never torn."""
    return (
        Open(ENTRY, O_RDONLY), If(ERR, "miss"),
        Read(Length("entry"), "f", "idx"), Close(),
        If(Invalid("entry", "idx"), "miss"),
        *_read_validated(OUTPUT, "output", "buf", "g"),
        HIT,
        Label("miss"), MISS,
    )


# ------------------------------------------------------------ Gradle, cargo


def _gradle_store() -> tuple[Instr, ...]:
    """DirectoryBuildCacheService.store under the cache's cross-process
    lock: the entry is written to a ``<hash>-<random>.part`` file
    (DefaultBuildCacheTempFileStore) and moved into place."""
    return (
        Open(LOCK, O_RDWR | O_CREAT, "l"), If(ERR, "fail"),
        Flock(LockOp.EXCLUSIVE, "l"), If(ERR, "unlock_fail"),
        *_via_temp(ENTRY, ENTRY_TMP, "entry", "unlock_fail", "p_"),
        Close("l"),  # drops the lock
        OK,
        Label("unlock_fail"), Close("l"),
        Label("fail"), FAIL,
    )


def _cargo_unpack() -> tuple[Instr, ...]:
    """RegistrySource::unpack_package under the package cache lock: a
    crate whose ``.cargo-ok`` marker is complete is kept; otherwise its
    directory is removed and the crate extracted again, and the marker is
    written only after extraction."""
    return (
        Open(LOCK, O_RDWR | O_CREAT, "l"), If(ERR, "fail"),
        Flock(LockOp.EXCLUSIVE, "l"), If(ERR, "unlock_fail"),
        Stat(ENTRY), If(SizeIs("==", Length("entry")), "unlock_ok"),
        # remove_dir_all of a half-extracted crate (ENOENT is fine)
        Unlink(OUTPUT),
        *_overwrite(OUTPUT, "output", "unlock_fail", "x_"),
        *_overwrite(ENTRY, "entry", "unlock_fail", "ok_"),
        Label("unlock_ok"), Close("l"),
        OK,
        Label("unlock_fail"), Close("l"),
        Label("fail"), FAIL,
    )


def _marker_then_part() -> tuple[Instr, ...]:
    """A reader that trusts the marker, then reads the part it covers."""
    return (
        *_read_validated(ENTRY, "entry", "idx"),
        *_read_validated(OUTPUT, "output", "buf", "g"),
        HIT,
        Label("miss"), MISS,
    )


# ------------------------------------------------------------ GOCACHEPROG servers


def _gtc_unix() -> tuple[Instr, ...]:
    """SimpleDiskCache.Put on Unix: writeAtomic (os.CreateTemp, io.Copy,
    Close, os.Rename; os.Remove of the temp on error) of the output, then
    of the action (index) file."""
    return (
        *_via_temp(OUTPUT, OUTPUT_TMP, "output", "fail", "o_"),
        *_via_temp(ENTRY, ENTRY_TMP, "entry", "fail", "a_"),
        OK,
        Label("fail"), FAIL,
    )


def _gtc_windows() -> tuple[Instr, ...]:
    """SimpleDiskCache.Put on Windows: writeOutputFile (stat; keep a file
    of the right size whose hash matches; else open without O_TRUNC,
    unless too long, write, and remove on any error), then
    writeActionFile (Go's write-then-truncate, remove on any error).
    Modelled with Linux's semantics: Windows' sharing modes are not."""
    n = Length("output")
    return (
        Stat(OUTPUT), If(SizeIs("!=", n), "o_write"),
        Open(OUTPUT, O_RDONLY), If(ERR, "o_write"),
        Read(Length("output", 1)), Close(),
        If(Invalid("output"), "o_write"), Goto("index"),
        Label("o_write"), If(SizeIs(">", n), "o_trunc"),
        Open(OUTPUT, O_WRONLY | O_CREAT), If(ERR, "fail"), Goto("o_copy"),
        Label("o_trunc"), Open(OUTPUT, O_WRONLY | O_CREAT | O_TRUNC), If(ERR, "fail"),
        Label("o_copy"), Write(Data("output")), If(ERR, "o_close_remove"),
        Close(), If(ERR, "o_remove"),
        Label("index"),
        Open(ENTRY, O_WRONLY | O_CREAT), If(ERR, "fail"),
        Write(Data("entry")), If(ERR, "a_close_remove"),
        # "Truncate the file only *after* writing it."
        Ftruncate(Length("entry")), If(ERR, "a_close_remove"),
        Close(), If(ERR, "a_remove"),
        OK,
        Label("o_close_remove"), Close(),
        Label("o_remove"), Unlink(OUTPUT), FAIL,
        Label("a_close_remove"), Close(),
        Label("a_remove"), Unlink(ENTRY),
        Label("fail"), FAIL,
    )


def _gobuildcache_put() -> tuple[Instr, ...]:
    """Disk.PutOutput then Disk.LinkActionToOutput: an output that exists is
    kept; else os.CreateTemp, io.Copy, Close, os.Rename (the deferred
    RemoveAll of the temp finds nothing after a rename); then
    os.Symlink(output, action), where EEXIST means another writer's link
    is there: the first writer wins."""
    return (
        Stat(OUTPUT), If(SizeIs(">", Length(None, -1)), "link"),
        *_via_temp(OUTPUT, OUTPUT_TMP, "output", "fail", "o_"),
        Label("link"),
        Symlink(OUTPUT, ENTRY), If(EEXIST, "done"), If(ERR, "fail"),
        Label("done"), OK,
        Label("fail"), FAIL,
    )


def _gobuildcache_get() -> tuple[Instr, ...]:
    """Disk.OutputIDFromAction (os.Readlink of the action; ENOENT is a
    miss), then the go command reads the output at the path it is given."""
    return (
        Readlink(ENTRY, "link"), If(ERR, "miss"),
        *_read_validated(OUTPUT, "output"),
        HIT,
        Label("miss"), MISS,
    )


def _hypershift_put(fixed: bool) -> tuple[Instr, ...]:
    """handlePut: the output (``-d``) file, then the action (``-a``) file.
    Before #8624 each with os.WriteFile (O_TRUNC, then write); after it,
    each through a temp file and a rename."""
    if fixed:
        parts = (*_via_temp(OUTPUT, OUTPUT_TMP, "output", "fail", "d_"),
                 *_via_temp(ENTRY, ENTRY_TMP, "entry", "fail", "a_"))
    else:
        parts = (*_overwrite(OUTPUT, "output", "fail", "d_"), *_overwrite(ENTRY, "entry", "fail", "a_"))
    return (*parts, OK, Label("fail"), FAIL)


def _hypershift_get() -> tuple[Instr, ...]:
    """lookup: a valid action file and an output that exists (os.Stat); the
    size it answers is the size it saw, so the go command's own size check
    passes whatever the file holds, and it reads the file at DiskPath."""
    return (
        *_read_validated(ENTRY, "entry", "idx"),
        Stat(OUTPUT), If(ERR, "miss"),
        Open(OUTPUT, O_RDONLY, "g"), If(ERR, "miss"),
        Read(Length("output", 1), "g", "buf"), Close("g"),
        HIT,
        Label("miss"), MISS,
    )


def _rename_writer() -> tuple[Instr, ...]:
    """A temp file beside the entry, written, closed and renamed over it;
    unlinked on error (uv's persist, ccache's AtomicFile::commit)."""
    return (*_via_temp(ENTRY, ENTRY_TMP, "entry", "fail", ""), OK, Label("fail"), FAIL)


def _validated_entry() -> tuple[Instr, ...]:
    return (*_read_validated(ENTRY, "entry"), HIT, Label("miss"), MISS)


# ------------------------------------------------------------ the programs

_TWO = ((ENTRY, "entry"), (OUTPUT, "output"))

GIT_LOOSE_OBJECT = _writer(
    "git-loose-object", "tmp_obj_XXXXXX (mkdir the fan-out directory on ENOENT), write, close, link; "
    "EEXIST is done; unlink the temp; rename where link fails (git's finalize_object_file)",
    _git_loose_object(), ((GIT_OBJECT, "entry"),), dirs=("objects",))
GIT_READ_OBJECT = _reader("git-read-object", "open the loose object, read, inflate and check its hash",
                          (*_read_validated(GIT_OBJECT, "entry"), HIT, Label("miss"), MISS), reads=GIT_OBJECT)

PIP_HTTP_CACHE = _writer("pip-http-cache", "metadata (entry) then body (output), each to an adjacent temp file, "
                         "fsync, os.replace; errors suppressed (pip's SafeFileCache)", _pip_http_cache(), _TWO)
# The writer did not change in #12364: the same program, named for the
# reader it is verdicted with.
PIP_HTTP_CACHE_23_3 = _writer("pip-http-cache-23.3", "pip-http-cache as of pip 23.3, read by the reader "
                              "before #12364", _pip_http_cache(), _TWO)
PIP_READ = _reader("pip-http-read", "metadata, then the body only if both files exist (pip >= 23.3.1, #12364)",
                   _pip_read(True), reads=OUTPUT)
PIP_READ_23_3 = _reader("pip-http-read-23.3", "metadata, then the body; a missing body is served as an empty one "
                        "(pip 23.3, pip#12361)", _pip_read(False), reads=OUTPUT)

CACACHE_PUT = _writer("cacache-put", "content to a temp file (O_EXCL), renamed into place by hash unless access finds "
                      "it there already, then one index line appended with O_APPEND (npm's cacache 20)", _cacache_put(), ((OUTPUT, "output"),))
CACACHE_GET = _reader("cacache-get", "the first index line whose hash checks, then the content, verified",
                      _cacache_get(), reads=OUTPUT)

UV_PERSIST = _writer("uv-write-atomic", "a temp file beside the entry, write, persist (rename), no fsync (uv)",
                     _rename_writer(), ((ENTRY, "entry"),))
UV_READ = _reader("uv-read", "read the entry and deserialize it; an error is a miss (uv)", _validated_entry())
CCACHE_ATOMIC_FILE = _writer("ccache-atomic-file", "a temp file, fwrite, fclose, rename, no fsync "
                             "(ccache's AtomicFile)", _rename_writer(), ((ENTRY, "entry"),))
CCACHE_READ = _reader("ccache-read", "read the result file and check it; an error is a miss (ccache)", _validated_entry())

GRADLE_STORE = _writer("gradle-build-cache", "under the cache lock (flock): a .part file, written and moved "
                       "into place (Gradle's local build cache)", _gradle_store(), ((ENTRY, "entry"),))
GRADLE_LOAD = _reader("gradle-load", "read the entry and unpack it; an error is a miss", _validated_entry())

CARGO_UNPACK = _writer("cargo-unpack", "under the package cache lock (flock): keep a crate whose .cargo-ok "
                       "(entry) is complete, else remove, extract (output), then write .cargo-ok",
                       _cargo_unpack(), _TWO)
CARGO_READ = _reader("cargo-read", "a complete .cargo-ok, then the extracted file", _marker_then_part(), reads=OUTPUT)

GTC_UNIX = _writer("go-tool-cache-unix", "output then action file, each by temp file and rename "
                   "(bradfitz/go-tool-cache SimpleDiskCache on Unix)", _gtc_unix(), ((OUTPUT, "output"), (ENTRY, "entry")))
GTC_WINDOWS = _writer("go-tool-cache-windows", "output written in place, removed on error; action file written, "
                      "truncated after, removed on error (SimpleDiskCache on Windows)", _gtc_windows(),
                      ((OUTPUT, "output"), (ENTRY, "entry")))

GOBUILDCACHE_PUT = _writer("gobuildcache-put", "output by temp file and rename unless it exists, then symlink "
                           "action -> output; EEXIST is done (saracen/gobuildcache)", _gobuildcache_put(),
                           ((OUTPUT, "output"), (ENTRY, "output")))
GOBUILDCACHE_GET = _reader("gobuildcache-get", "readlink the action, then read the output it names",
                           _gobuildcache_get(), reads=OUTPUT)

HYPERSHIFT_PUT = _writer("hypershift-put", "output then action file, each with os.WriteFile (O_TRUNC, then "
                         "write) (openshift/hypershift gocacheprog before #8624)", _hypershift_put(False),
                         ((OUTPUT, "output"), (ENTRY, "entry")))
HYPERSHIFT_PUT_FIXED = _writer("hypershift-put-fixed", "output then action file, each by temp file and rename "
                               "(after #8624)", _hypershift_put(True), ((OUTPUT, "output"), (ENTRY, "entry")))
HYPERSHIFT_GET = _reader("hypershift-get", "a valid action file and an existing output, whose DiskPath the go "
                         "command reads; the size answered is the size seen", _hypershift_get(), reads=OUTPUT)
