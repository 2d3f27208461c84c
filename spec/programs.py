"""The programs of the catalogue: how real tools write and read cache files.

Each writer is the sequence of calls a real program makes (Go's
``ioutil.WriteFile``, ``putIndexEntry`` before and after commit 2fc7574,
``copyFile``, and the usual alternatives), with its error paths; each
reader is how Go looks an entry up.  They are plain values: a
``spec.ops.Program`` each, named in upper case below.  What each is
expected to keep is in ``spec.protocols`` (the claims).

The remote tier (``s3-put``, ``s3-get`` and their twins) runs against an
object store shared by every machine (``spec.ops.PutObject`` ...).  The
model's file system is the getting machine's local cache directory; a
putting machine's own local writes are the local protocols' business,
checked above.

Abstracted: Go's hash of the output is the reader's validity check (exact
length, no zero-filled hole); ``chtimes`` has no effect on the model beyond
its ENOENT; a short ``io.ReadFull`` loop is one read.  For a GET's body the
check of length and SHA-256 is the same validity check: a body is always a
prefix of the one object its content-addressed key names, so the length
decides; a store that returns other bytes of the right length is not
modelled.
"""

from __future__ import annotations

from .ops import (
    ACTION_KEY,
    ENTRY,
    OUTPUT_KEY,
    GetObject,
    Precondition,
    PutObject,
    WriteBuf,
    O_CREAT,
    O_EXCL,
    O_RDONLY,
    O_RDWR,
    O_TRUNC,
    O_WRONLY,
    OUTPUT,
    TEMP,
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
    Label,
    Length,
    MapRead,
    Mmap,
    Open,
    Outcome,
    Path,
    Program,
    Read,
    Rename,
    Return,
    Role,
    SizeIs,
    Stat,
    Unlink,
    Write,
    Chtimes,
)

ERR = Failed()
OK = Return(Outcome.OK)
FAIL = Return(Outcome.FAIL)
MISS = Return(Outcome.MISS)


# ------------------------------------------------------------ writer pieces


def _index_entry(remove_on_error: bool, prefix: str = "") -> tuple[Instr, ...]:
    """Go 1.13+ putIndexEntry: write first, truncate after, close; on any
    error close and (Go, to this day) remove the file."""
    p = prefix
    on_err = f"{p}close_remove" if remove_on_error else f"{p}close_fail"
    tail: tuple[Instr, ...]
    if remove_on_error:
        tail = (
            Label(f"{p}close_remove"),
            Close(),
            Label(f"{p}remove"),
            # Go's own TODO: this Remove races with another writer's success.
            Unlink(ENTRY),
            FAIL,
        )
    else:
        tail = (Label(f"{p}close_fail"), Close(), FAIL)
    return (
        Open(ENTRY, O_WRONLY | O_CREAT),
        If(ERR, f"{p}fail"),
        Write(Data("entry")),
        If(ERR, on_err),
        # Truncate only *after* writing: a second writer of the same bytes
        # never, even for a moment, undoes the first.
        Ftruncate(Length("entry")),
        If(ERR, on_err),
        Close(),
        If(ERR, f"{p}remove" if remove_on_error else f"{p}fail"),
        Chtimes(ENTRY),
        OK,
        *tail,
        Label(f"{p}fail"),
        FAIL,
    )


def _output_file(done: Instr, prefix: str = "") -> tuple[Instr, ...]:
    """Go's copyFile for an output (``-d``) file; ``done`` is what runs on
    success (return ok, or go on to write the index entry)."""
    p, out, n = prefix, OUTPUT, Length("output")
    return (
        Stat(out),
        If(SizeIs("!=", n), f"{p}write"),
        # Complete size: check the content (Go hashes it) and keep it.
        Open(out, O_RDONLY),
        If(ERR, f"{p}write"),
        Read(Length("output", 1)),
        Close(),
        If(Invalid("output"), f"{p}write"),
        Goto(f"{p}done"),
        Label(f"{p}write"),
        If(SizeIs(">", n), f"{p}open_trunc"),
        Open(out, O_RDWR | O_CREAT),
        If(ERR, f"{p}fail"),
        Goto(f"{p}copy"),
        Label(f"{p}open_trunc"),
        # "shouldn't happen but fix in case": a too-long file is truncated.
        Open(out, O_RDWR | O_CREAT | O_TRUNC),
        If(ERR, f"{p}fail"),
        Label(f"{p}copy"),
        Write(Data("output", stop=-1)),
        If(ERR, f"{p}trunc"),
        # The last byte makes the size right: only now may others use it.
        Write(Data("output", start=-1)),
        If(ERR, f"{p}trunc"),
        Close(),
        If(ERR, f"{p}remove"),
        Chtimes(out),
        Label(f"{p}done"),
        done,
        Label(f"{p}trunc"),
        # Best effort "to avoid leaving bad bytes": also empties a file that
        # another writer has meanwhile completed.
        Ftruncate(Length(None, 0)),
        Close(),
        FAIL,
        Label(f"{p}remove"),
        Unlink(out),
        Label(f"{p}fail"),
        FAIL,
    )


def _write_file() -> tuple[Instr, ...]:
    """ioutil.WriteFile: O_TRUNC empties the entry before refilling it."""
    return (
        Open(ENTRY, O_WRONLY | O_CREAT | O_TRUNC),
        If(ERR, "fail"),
        Write(Data("entry")),
        If(ERR, "close_fail"),
        Close(),
        If(ERR, "fail"),
        OK,
        Label("close_fail"),
        Close(),
        Label("fail"),
        FAIL,
    )


def _rename_into_place(fsync: bool) -> tuple[Instr, ...]:
    """Write a private temp file, (fsync,) close, rename over the entry."""
    sync: tuple[Instr, ...] = (Fsync(), If(ERR, "close_unlink")) if fsync else ()
    return (
        Open(TEMP, O_WRONLY | O_CREAT | O_EXCL),
        If(ERR, "fail"),
        Write(Data("entry")),
        If(ERR, "close_unlink"),
        *sync,
        Close(),
        If(ERR, "unlink"),
        # rename(2) replaces the name atomically: readers see old or new.
        Rename(TEMP, ENTRY),
        If(ERR, "unlink"),
        OK,
        Label("close_unlink"),
        Close(),
        Label("unlink"),
        Unlink(TEMP),
        Label("fail"),
        FAIL,
    )


def _create_exclusive() -> tuple[Instr, ...]:
    """O_EXCL: the first creator writes; the others take EEXIST as done."""
    return (
        Open(ENTRY, O_WRONLY | O_CREAT | O_EXCL),
        # The bug: the file exists as soon as it is created, before it is
        # written, so EEXIST does not mean "complete".
        If(Failed(frozenset({"EEXIST"})), "done"),
        If(ERR, "fail"),
        Write(Data("entry")),
        If(ERR, "close_fail"),
        Close(),
        If(ERR, "fail"),
        Label("done"),
        OK,
        Label("close_fail"),
        Close(),
        Label("fail"),
        FAIL,
    )


# ------------------------------------------------------------ reader pieces


def _read_entry(validate: bool, path: Path = ENTRY) -> tuple[Instr, ...]:
    """Go's DiskCache.get: open, read len+1 (to see a too-long file),
    close, and accept only what validates."""
    check: tuple[Instr, ...] = (If(Invalid("entry"), "miss"),) if validate else ()
    return (
        Open(path, O_RDONLY),
        If(ERR, "miss"),
        Read(Length("entry", 1)),
        Close(),
        *check,
        Return(Outcome.HIT),
        Label("miss"),
        MISS,
    )


def _mmap_read() -> tuple[Instr, ...]:
    """Go's mmap.Mmap + GetMmap: fstat, map that many bytes, close, check
    the mapped length, then use the bytes (where SIGBUS strikes)."""
    return (
        Open(ENTRY, O_RDONLY),
        If(ERR, "miss"),
        Fstat(),
        Mmap(),
        Close(),
        If(SizeIs("!=", Length("entry")), "miss"),
        MapRead(),
        If(Invalid("entry"), "miss"),
        Return(Outcome.HIT),
        Label("miss"),
        MISS,
    )


def _go_get() -> tuple[Instr, ...]:
    """Go's GetFile: a valid index entry, then the output's size."""
    return (
        Open(ENTRY, O_RDONLY),
        If(ERR, "miss"),
        Read(Length("entry", 1)),
        Close(),
        If(Invalid("entry"), "miss"),
        Stat(OUTPUT),
        If(SizeIs("!=", Length("output")), "miss"),
        Return(Outcome.HIT),
        Label("miss"),
        MISS,
    )


# ------------------------------------------------------------ the remote tier


def _s3_put(record_first: bool) -> tuple[Instr, ...]:
    """Upload one cache entry: the output object, content-addressed, with
    If-None-Match: * (412: a complete object is already there - a PUT is
    atomic, so an object that exists is whole), then the action record that
    names it.  ``record_first`` is the known-bad order."""
    output: tuple[Instr, ...] = (
        PutObject(OUTPUT_KEY, Data("output"), Precondition.IF_NONE_MATCH),
        If(Failed(frozenset({"EPRECONDITION"})), "output_there"),
        If(ERR, "fail"),
        Label("output_there"),
    )
    # The record last: only then may a get find it, and it names an output
    # that is already whole.
    record: tuple[Instr, ...] = (PutObject(ACTION_KEY, Data("entry")), If(ERR, "fail"))
    return (*(record + output if record_first else output + record), OK, Label("fail"), FAIL)


def _s3_get(check: bool, truncate_first: bool) -> tuple[Instr, ...]:
    """Look an entry up remotely: GET the action record (a valid entry),
    GET the output it names, check its length and hash, and write it into
    the local directory - by default with write-then-truncate, so a second
    getter of the same output never empties the file a first one serves."""
    checked: tuple[Instr, ...] = (If(Invalid("output", "out"), "miss"),) if check else ()
    open_flags = O_WRONLY | O_CREAT | O_TRUNC if truncate_first else O_WRONLY | O_CREAT
    size: tuple[Instr, ...] = () if truncate_first else (Ftruncate(Length("output")), If(ERR, "close_miss"))
    return (
        GetObject(ACTION_KEY, "rec", "entry"),
        If(ERR, "miss"),
        If(Invalid("entry", "rec"), "miss"),
        GetObject(OUTPUT_KEY, "out", "output"),
        If(ERR, "miss"),
        *checked,
        Open(OUTPUT, open_flags),
        If(ERR, "miss"),
        WriteBuf("out"),
        If(ERR, "close_miss"),
        *size,
        Close(),
        If(ERR, "miss"),
        Return(Outcome.HIT, "out"),
        Label("close_miss"),
        Close(),
        Label("miss"),
        MISS,
    )


# ------------------------------------------------------------ the programs


def _writer(name: str, summary: str, source: tuple[Instr, ...],
            publishes: tuple[tuple[Path, str], ...] = ((ENTRY, "entry"),)) -> Program:
    return Program(name, Role.WRITER, source, publishes=publishes, summary=summary)


def _reader(name: str, summary: str, source: tuple[Instr, ...]) -> Program:
    return Program(name, Role.READER, source, summary=summary)


WRITE_FILE = _writer("write-file", "O_TRUNC first, then write (ioutil.WriteFile; Go <= 1.12)", _write_file())
GO_INDEX_ENTRY = _writer("go-index-entry", "write, truncate after, close; remove on error (Go 1.13+ putIndexEntry)",
                         _index_entry(True))
WRITE_THEN_TRUNCATE = _writer("write-then-truncate", "write, truncate after, close; never remove", _index_entry(False))
RENAME_INTO_PLACE = _writer("rename-into-place", "private temp file, close, rename over the entry",
                            _rename_into_place(False))
RENAME_INTO_PLACE_FSYNC = _writer("rename-into-place-fsync", "private temp file, fsync, close, rename over the entry",
                                  _rename_into_place(True))
CREATE_EXCLUSIVE = _writer("create-exclusive", "O_EXCL create; EEXIST counts as done", _create_exclusive())
GO_OUTPUT_FILE = _writer("go-output-file", "stat, keep if complete, else write all but the last byte, then it (Go's copyFile)",
                         _output_file(OK), publishes=((OUTPUT, "output"),))
GO_PUT = _writer("go-put", "go-output-file, then go-index-entry (Go's DiskCache.put)",
                 _output_file(Goto("index"), "out_") + (Label("index"),) + _index_entry(True),
                 publishes=((OUTPUT, "output"), (ENTRY, "entry")))

GO_READ_ENTRY = _reader("go-read-entry", "open, read len+1, close, accept only an exact valid entry (Go's DiskCache.get)",
                        _read_entry(True))
MMAP_READ = _reader("mmap-read", "open, fstat, mmap, close, use the bytes (Go's GetMmap)", _mmap_read())
READ_UNVALIDATED = _reader("read-unvalidated", "open, read, close, accept whatever was read (known-bad twin of validation)",
                           _read_entry(False))
GO_GET = _reader("go-get", "a valid index entry, then the output's size (Go's GetFile)", _go_get())


def go_read_entry_at(path: Path) -> Program:
    """``go-read-entry`` reading ``path`` instead of ``entry`` (a writer
    whose entry lives in a directory it makes, as a lifted git writer's
    ``dir/entry``): the same calls and validation."""
    if path == ENTRY:
        return GO_READ_ENTRY
    return Program(GO_READ_ENTRY.name, Role.READER, _read_entry(True, path), reads=path, summary=GO_READ_ENTRY.summary)


S3_PUT = _writer("s3-put", "PUT the output object (content-addressed, If-None-Match: *, 412 = done), then the action record",
                 _s3_put(False), publishes=())
S3_PUT_RECORD_FIRST = _writer("s3-put-record-first", "PUT the action record, then the output object (known-bad order)",
                              _s3_put(True), publishes=())
S3_GET = Program("s3-get", Role.READER, _s3_get(True, False), publishes=((OUTPUT, "output"),), reads=OUTPUT,
                 summary="GET the action record, GET the output, check length and hash, write-then-truncate it locally")
S3_GET_UNCHECKED = Program("s3-get-unchecked", Role.READER, _s3_get(False, False), publishes=((OUTPUT, "output"),),
                           reads=OUTPUT, summary="s3-get without the length and hash check (known-bad twin)")
S3_GET_OVERWRITE = Program("s3-get-overwrite", Role.READER, _s3_get(True, True), publishes=((OUTPUT, "output"),),
                           reads=OUTPUT, summary="s3-get that writes the local file with O_TRUNC first, an unconditional "
                                                 "overwrite (known-bad twin)")
