"""``spec.lift`` on logs written here, line by line: no strace needed.

Promises checked: strace's line forms (process ids, ``-tt``/``-ttt``
timestamps, ``-T``, ``-y``, ``-ff`` files, unfinished/resumed pairs) lift
to the same program; bad input (not a log, a cut-off line, a call never
finished, a resumed call with none unfinished) is an error naming the
file and line; link/linkat, mkdir/mkdirat (the program's directory),
symlink/symlinkat, readlink/readlinkat, O_NOFOLLOW, flock, fdatasync,
renameat2(RENAME_NOREPLACE) and O_APPEND lift to their instructions, the
same from -f, split (unfinished/resumed) and -ff logs, with the EEXIST a
program goes on from, mkstemp's earlier try and a failure seen handled
as the module doc says; every call that changes contents or names and
that the language lacks (flock with LOCK_NB, O_APPEND by fcntl, record
locks, RENAME_EXCHANGE, an open flag it does not know, a moving lseek,
truncate, a call the lifter does not know, a descriptor it cannot tell
apart) is a CannotExpress naming the line and the call; calls that change neither
contents nor names are listed as ignored and change nothing; the
generalisation (private temps, payload slices, copy loops, threads sharing
descriptors, the path the results decide, a failure seen) is as the module
doc says; lifted programs are values the explorer and write_entry take
as they are (with the known-bad twin: an O_TRUNC writer is found
violating, the write-then-truncate one is not); and ``idemwrite lift``
prints, emits JSON, checks, and exits 2 on a bad log.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest

from idemwrite.commands import main
from spec import System, explore
from spec.lift import CannotExpress, CutOffLine, Lifted, MalformedLine, NotAnStraceLog, lift, success_path
from spec.lift.generalise import length_of, slice_of
from spec.ops import (ENTRY, O_CREAT, O_WRONLY, TEMP, Chtimes, Close, Data, Failed, Fdatasync, Flock, Fstat, Ftruncate,
                      Goto, If, Label, Length, Link, LockOp, MapRead, Mkdir, Mmap, Open, OpenFlags, Outcome,
                      Path as MPath, Program, Read, Readlink, Rename, Return, Role, Stat, Symlink, Unlink, Write)
from spec.programs import GO_OUTPUT_FILE, WRITE_THEN_TRUNCATE, go_read_entry_at
from spec.properties import STAYS

# write-then-truncate as strace -f shows it (pid 100), with Python's and
# Go's extra calls left out.
PLAIN = [
    '100  openat(AT_FDCWD, "/c/e", O_WRONLY|O_CREAT|O_CLOEXEC, 0666) = 3',
    '100  write(3, "hello", 5) = 5',
    '100  ftruncate(3, 5) = 0',
    '100  close(3) = 0',
    '100  utimensat(AT_FDCWD, "/c/e", NULL, 0) = 0',
    '100  +++ exited with 0 +++',
]


def text(lines: list[str]) -> str:
    return "\n".join(lines) + "\n"


def lifted(lines: list[str], *globs: str, name: str = "t.log") -> Lifted:
    return lift([(name, text(lines))], globs)


def only(lines: list[str], *globs: str) -> tuple[object, ...]:
    """The one program a log lifts to, as its source."""
    got = lifted(lines, *globs)
    assert len(got.programs) == 1, [p.program.listing() for p in got.programs]
    return got.programs[0].program.source


def ops(source: tuple[object, ...]) -> list[object]:
    """The operations of a program's main line, in order (what a
    comparison with a catalogue program's success path needs)."""
    return [i for i in source if type(i).__name__ not in ("If", "Goto", "Label")]


# ------------------------------------------------------------ line forms


def test_plain_log_lifts_to_write_then_truncate() -> None:
    got = lifted(PLAIN)
    (lp,) = got.programs
    assert lp.program.role is Role.WRITER and lp.program.publishes == ((ENTRY, "entry"),)
    assert success_path(lp.program) == success_path(WRITE_THEN_TRUNCATE)
    assert lp.occurrences[0].payload == 5 and lp.occurrences[0].path == "/c/e"
    assert (lp.occurrences[0].first, lp.occurrences[0].last) == (1, 5)


def test_timestamps_durations_and_descriptor_paths_change_nothing() -> None:
    want = only(PLAIN)
    tt = [ln.replace("100  ", f"100  08:54:45.{i:06d} ") for i, ln in enumerate(PLAIN)]
    ttt = [ln.replace("100  ", f"100  1701679685.{i:06d} ") for i, ln in enumerate(PLAIN)]
    timed = [ln + " <0.000012>" if " = " in ln else ln for ln in PLAIN]
    y = [ln.replace("(3,", "(3</c/e>,").replace("close(3)", "close(3</c/e>)").replace("= 3", "= 3</c/e>") for ln in PLAIN]
    nopid = [ln[5:] for ln in PLAIN]
    bracket = [ln.replace("100  ", "[pid   100] ") for ln in PLAIN]
    for variant in (tt, ttt, timed, y, nopid, bracket):
        assert only(variant) == want, variant


def test_unfinished_and_resumed_calls_are_joined() -> None:
    split = [
        '100  openat(AT_FDCWD, "/c/e", O_WRONLY|O_CREAT|O_CLOEXEC, 0666 <unfinished ...>',
        '200  newfstatat(AT_FDCWD, "/elsewhere",  <unfinished ...>',
        '100  <... openat resumed>)             = 3',
        '100  write(3, "hello", 5 <unfinished ...>',
        '200  <... newfstatat resumed>0x1f87e93069f8, 0) = -1 ENOENT (No such file or directory)',
        '100  <... write resumed>)              = 5',
        '100  ftruncate(3,  <unfinished ...>',
        '300  --- SIGURG {si_signo=SIGURG, si_code=SI_TKILL, si_pid=100, si_uid=0} ---',
        '100  <... ftruncate resumed>5)         = 0',
        '100  close(3)                          = 0',
        '100  utimensat(AT_FDCWD, "/c/e", NULL, 0) = 0',
    ]
    got = lifted(split, "/c/e")
    assert [p.program.source for p in got.programs] == [only(PLAIN)]
    occ = got.programs[0].occurrences[0]
    assert (occ.first, occ.last) == (1, 11)


def test_ff_files_merge_by_timestamp() -> None:
    """strace -ff -tt: one file per process, no pid on the lines."""
    a = [f"08:00:0{i}.000000 {ln[5:]}" for i, ln in enumerate(PLAIN[:2])]
    b = [f"08:00:0{i + 2}.000000 {ln[5:]}" for i, ln in enumerate(PLAIN[2:5])]
    # The writes happen on two threads of one process: -ff gives each its file.
    got = lift([("run.101", text(a)), ("run.102", text(b))], ())
    assert [p.program.source for p in got.programs] == [only(PLAIN)]
    assert any("merged in the order of their timestamps" in n for n in got.notes)


def test_ff_files_without_timestamps_are_read_in_turn_and_say_so() -> None:
    got = lift([("run.101", text([ln[5:] for ln in PLAIN])), ("run.102", 'openat(AT_FDCWD, "/x", O_RDONLY) = 3\n')], ())
    assert [p.program.source for p in got.programs] == [only(PLAIN)]
    assert any("cannot be put in time order" in n for n in got.notes)


# ------------------------------------------------------------ bad input


def test_not_an_strace_log() -> None:
    with pytest.raises(NotAnStraceLog) as e:
        lift([("notes.txt", "Dear diary,\ntoday I wrote a file.\n")])
    assert (e.value.file, e.value.line) == ("notes.txt", 1)
    assert "strace -f -o LOG" in str(e.value)
    with pytest.raises(NotAnStraceLog):
        lift([("empty.log", "")])


def test_cut_off_last_line() -> None:
    with pytest.raises(CutOffLine) as e:
        lift([("t.log", text(PLAIN[:1]) + '100  write(3, "hel')])
    assert e.value.line == 2 and "t.log:2:" in str(e.value)


def test_cut_off_line_in_the_middle() -> None:
    with pytest.raises(CutOffLine) as e:
        lifted([PLAIN[0], '100  write(3, "hello", 5', *PLAIN[2:]])
    assert e.value.line == 2


def test_a_line_cut_inside_a_string_is_not_taken_for_a_result() -> None:
    with pytest.raises(CutOffLine) as e:
        lifted([PLAIN[0], '100  write(3, "f(x) = 5']) 
    assert e.value.line == 2


def test_unfinished_call_never_resumed() -> None:
    with pytest.raises(CutOffLine) as e:
        lifted([*PLAIN[:3], '100  close(3 <unfinished ...>', '200  openat(AT_FDCWD, "/x", O_RDONLY) = 4'])
    assert e.value.line == 4 and "ends before close" in str(e.value)


def test_resumed_call_with_none_unfinished() -> None:
    with pytest.raises(MalformedLine) as e:
        lifted([PLAIN[0], '100  <... write resumed>) = 5'])
    assert e.value.line == 2


def test_garbage_in_the_middle() -> None:
    with pytest.raises(MalformedLine) as e:
        lifted([PLAIN[0], "this is not strace", *PLAIN[1:]])
    assert e.value.line == 2


def test_a_call_the_process_never_finished() -> None:
    with pytest.raises(CutOffLine) as e:
        lifted([*PLAIN[:1], '100  write(3, "hello", 5 <unfinished ...>', '100  +++ killed by SIGKILL +++'])
    assert e.value.line == 2 and "result is unknown" in str(e.value)


# ------------------------------------------------------------ what the language cannot express

OPEN_TMP = '100  openat(AT_FDCWD, "/c/e.tmp", O_WRONLY|O_CREAT|O_EXCL|O_CLOEXEC, 0666) = 3'
CANNOT = [
    # (log, the line of the call, the call, what the language lacks)
    ([PLAIN[0], '100  flock(3, LOCK_EX|LOCK_NB) = 0', *PLAIN[1:]], 2, "flock", "flock(LOCK_EX|LOCK_NB)"),
    ([PLAIN[0], '100  fcntl(3, F_SETLKW, {l_type=F_WRLCK, l_whence=SEEK_SET, l_start=0, l_len=0}) = 0', *PLAIN[1:]],
     2, "fcntl", "fcntl locks"),
    ([PLAIN[0], '100  fcntl(3, F_SETFL, O_WRONLY|O_APPEND) = 0', *PLAIN[1:]], 2, "fcntl", "O_APPEND"),
    ([OPEN_TMP, '100  write(3, "hello", 5) = 5', '100  close(3) = 0',
      '100  renameat2(AT_FDCWD, "/c/e.tmp", AT_FDCWD, "/c/e", RENAME_EXCHANGE) = 0'], 4, "renameat2",
     "renameat2(RENAME_EXCHANGE)"),
    ([PLAIN[0].replace("O_CREAT|", "O_CREAT|O_DIRECT|"), *PLAIN[1:]], 1, "openat", "the open flag O_DIRECT"),
    ([PLAIN[0], '100  lseek(3, 100, SEEK_SET) = 100', *PLAIN[1:]], 2, "lseek", "lseek"),
    ([*PLAIN[:4], '100  truncate("/c/e", 0) = 0'], 5, "truncate", "truncate"),
    ([PLAIN[0], '100  fallocate(3, 0, 0, 4096) = 0', *PLAIN[1:]], 2, "fallocate", "fallocate"),
    ([PLAIN[0], '100  dup(3) = 4', *PLAIN[1:]], 2, "dup", "dup"),
    ([PLAIN[0], '100  frobnicate(3, 7) = 0', *PLAIN[1:]], 2, "frobnicate", "unknown"),
    ([PLAIN[0], '100  pread64(3, "hel", 3, 0) = 3', *PLAIN[1:]], 2, "pread64", "pread"),
]


@pytest.mark.parametrize("log,line,call,missing", CANNOT, ids=[c[3] for c in CANNOT])
def test_a_call_the_language_cannot_express_is_named(log: list[str], line: int, call: str, missing: str) -> None:
    with pytest.raises(CannotExpress) as e:
        lifted(log)
    assert (e.value.line, e.value.call, e.value.missing) == (line, call, missing)
    assert str(e.value).startswith(f"t.log:{line}: {log[line - 1][5:].split(' = ')[0]}")
    assert "cannot express" in str(e.value)


def test_mkdir_outside_every_sequence_is_left_out_and_said() -> None:
    got = lifted(['100  mkdir("/c", 0777) = 0', *PLAIN])
    assert [p.program.source for p in got.programs] == [only(PLAIN)]
    assert any("mkdir outside every sequence" in n for n in got.notes)


def test_a_descriptor_two_processes_hold_is_ambiguous() -> None:
    log = [
        '100  openat(AT_FDCWD, "/c/e", O_WRONLY|O_CREAT|O_CLOEXEC, 0666) = 3',
        '200  openat(AT_FDCWD, "/c/other", O_RDONLY|O_CLOEXEC) = 3',
        '300  write(3, "hello", 5) = 5',
        '100  close(3) = 0',
    ]
    with pytest.raises(CannotExpress) as e:
        lifted(log)
    assert e.value.line == 3 and "told apart" in e.value.missing


# ------------------------------------------------------------ the newer operations

OTHER = '999  openat(AT_FDCWD, "/elsewhere", O_RDONLY|O_CLOEXEC) = -1 ENOENT (No such file or directory)'


def _split(line: str) -> list[str]:
    """One -f line as strace writes it when another thread's call comes
    in between: unfinished after its first argument, then resumed."""
    pid, body = line.split("  ", 1)
    i = body.rfind(" = ")
    head, result = body[:i], body[i + 3:]
    name = head[:head.index("(")]
    cut = head.index(",") + 1 if "," in head else head.index("(") + 1
    return [f"{pid}  {head[:cut]} <unfinished ...>", OTHER, f"{pid}  <... {name} resumed>{head[cut:]} = {result}"]


def styles(lines: list[str]) -> dict[str, list[tuple[str, str]]]:
    """The same run as ``strace -f`` writes it, with every call split in
    two (unfinished/resumed), and as ``strace -ff -tt`` files."""
    split = [part for ln in lines for part in (_split(ln) if " = " in ln else [ln])]
    per: dict[str, list[str]] = {}
    for i, ln in enumerate(lines):
        pid, body = ln.split("  ", 1)
        per.setdefault(pid, []).append(f"08:00:00.{i:06d} {body}")
    return {"-f": [("t.log", text(lines))], "split": [("t.log", text(split))],
            "-ff": [(f"t.log.{pid}", text(body)) for pid, body in per.items()]}


def lifts_alike(lines: list[str], *globs: str) -> Lifted:
    """What the -f log lifts to, having checked that the split and -ff
    forms lift to the very same programs."""
    got = {style: lift(logs, globs) for style, logs in styles(lines).items()}
    want = [(p.program.source, p.program.publishes) for p in got["-f"].programs]
    for style, lifted_ in got.items():
        assert [(p.program.source, p.program.publishes) for p in lifted_.programs] == want, style
    return got["-f"]


def one(lines: list[str], *globs: str) -> Program:
    (lp,) = lifts_alike(lines, *globs).programs
    return lp.program


TMP_WRITTEN = [OPEN_TMP, '100  write(3, "hello", 5) = 5', '100  close(3) = 0']
PRIVATE = MPath("entry.tmp", private=True)
EXCL_W = OpenFlags.WRITE | OpenFlags.CREAT | OpenFlags.EXCL


def test_styles_split_every_call_and_keep_the_ff_pid() -> None:
    (f,), split, ff = styles(PLAIN[:2]).values()
    assert split[0][1].splitlines() == [
        '100  openat(AT_FDCWD, <unfinished ...>', OTHER,
        '100  <... openat resumed> "/c/e", O_WRONLY|O_CREAT|O_CLOEXEC, 0666) = 3',
        '100  write(3, <unfinished ...>', OTHER, '100  <... write resumed> "hello", 5) = 5']
    assert [name for name, _ in ff] == ["t.log.100"]


def test_link_publishes_a_private_temp() -> None:
    """git's way: a temp one process used, linked onto the entry, then unlinked."""
    prog = one([*TMP_WRITTEN, '100  link("/c/e.tmp", "/c/e") = 0', '100  unlink("/c/e.tmp") = 0'])
    assert ops(prog.source) == [Open(PRIVATE, EXCL_W), Write(Data("entry")), Close(), Link(PRIVATE, ENTRY),
                                Unlink(PRIVATE), Return(Outcome.OK), Return(Outcome.FAIL), Close(), Return(Outcome.FAIL)]
    assert prog.publishes == ((ENTRY, "entry"),)
    assert explore(System.of(prog, 2, 1, faults=1), [STAYS]).verdict(STAYS) == "holds"
    # Two processes using the one temp name: it is shared, not private.
    log = [*TMP_WRITTEN, '100  link("/c/e.tmp", "/c/e") = 0', '100  unlink("/c/e.tmp") = 0']
    both = log + [ln.replace("100", "200").replace("= 3", "= 4").replace("(3", "(4") for ln in log]
    got = lifts_alike(both, "/c/e")
    assert {p.program.source[0] for p in got.programs} == {Open(MPath("entry.tmp"), EXCL_W)}


def test_linkat_and_its_eexist_seen_go_on() -> None:
    """Another writer linked first: EEXIST, the temp goes, and the writer succeeds."""
    prog = one([*TMP_WRITTEN, '100  linkat(AT_FDCWD, "/c/e.tmp", AT_FDCWD, "/c/e", 0) = -1 EEXIST (File exists)',
                '100  unlink("/c/e.tmp") = 0'], "/c/e")
    assert Link(PRIVATE, ENTRY) in prog.source and Unlink(PRIVATE) in prog.source
    assert "if err in {EEXIST}: goto on_eexist" in prog.listing()
    assert prog.source[prog.source.index(Unlink(PRIVATE)) + 2] == Return(Outcome.OK)


MKDIR_LOG = [
    '100  openat(AT_FDCWD, "/c/ab/e", O_WRONLY|O_CREAT|O_EXCL|O_CLOEXEC, 0666) = -1 ENOENT (No such file or directory)',
    '100  mkdir("/c/ab", 0777) = 0',
    '100  openat(AT_FDCWD, "/c/ab/e", O_WRONLY|O_CREAT|O_EXCL|O_CLOEXEC, 0666) = 3',
    '100  write(3, "hello", 5) = 5',
    '100  close(3) = 0',
]
DIR_ENTRY = MPath("dir/entry")


def test_mkdir_on_enoent_makes_the_programs_directory() -> None:
    """The directory the sequence makes is the program's ``dir``; the
    entry in it is ``dir/entry``, published and read there."""
    got = lifts_alike(MKDIR_LOG)
    prog = got.programs[0].program
    assert ops(prog.source)[:5] == [Open(DIR_ENTRY, EXCL_W), Mkdir(MPath("dir")), Open(DIR_ENTRY, EXCL_W),
                                    Write(Data("entry")), Close()]
    assert "if err in {ENOENT}: goto on_enoent" in prog.listing()
    assert prog.publishes == ((DIR_ENTRY, "entry"),) and prog.dirs == ()
    assert any("program's dir" in n for n in got.programs[0].notes)
    # The success path, alone: the first open fails (no directory yet), as the log shows.
    assert [type(i) for i in success_path(prog)] == [Open, Mkdir, Open, Write, Close]


def test_mkdir_eexist_seen_goes_on_and_nested_directories_nest() -> None:
    eexist = one([MKDIR_LOG[0], MKDIR_LOG[1].replace("= 0", "= -1 EEXIST (File exists)"), *MKDIR_LOG[2:]])
    assert Return(Outcome.OK) in eexist.source and "if err in {EEXIST}" in eexist.listing()
    # os.MkdirAll's way: the deeper one first (ENOENT), its parent, then it again.
    nested = one([MKDIR_LOG[0].replace("/c/ab/e", "/c/ab/cd/e"),
                  '100  mkdirat(AT_FDCWD, "/c/ab/cd", 0777) = -1 ENOENT (No such file or directory)',
                  '100  mkdir("/c/ab", 0777) = 0', '100  mkdirat(AT_FDCWD, "/c/ab/cd", 0777) = 0',
                  MKDIR_LOG[2].replace("/c/ab/e", "/c/ab/cd/e"), *MKDIR_LOG[3:]], "/c/ab/cd/e")
    deep = MPath("dir/dir/entry")
    assert ops(nested.source)[:5] == [Open(deep, EXCL_W), Mkdir(MPath("dir/dir")), Mkdir(MPath("dir")),
                                      Mkdir(MPath("dir/dir")), Open(deep, EXCL_W)]
    assert Return(Outcome.OK) in nested.source
    assert explore(System.of(nested, 2, 1, go_read_entry_at(deep)), [STAYS]).verdict(STAYS) == "holds"


def test_mkstemps_first_try_joins_the_temp_it_came_before() -> None:
    """git: mkstemp's first name fails (ENOENT: no directory), mkdir, a
    second name, written and linked: the first is a private name of its
    own in the program's directory."""
    log = ['100  openat(AT_FDCWD, "/c/ab/tmp_1", O_RDWR|O_CREAT|O_EXCL, 0444) = -1 ENOENT (No such file or directory)',
           '100  mkdir("/c/ab", 0777) = 0',
           '100  openat(AT_FDCWD, "/c/ab/tmp_2", O_RDWR|O_CREAT|O_EXCL, 0444) = 3',
           '100  write(3, "hello", 5) = 5', '100  close(3) = 0',
           '100  link("/c/ab/tmp_2", "/c/ab/e") = 0', '100  unlink("/c/ab/tmp_2") = 0']
    got = lifts_alike(log)
    prog = got.programs[0].program
    rw = OpenFlags.READ | OpenFlags.WRITE | OpenFlags.CREAT | OpenFlags.EXCL
    tmp, first = MPath("dir/entry.tmp", private=True), MPath("dir/entry.tmp2", private=True)
    assert ops(prog.source)[:7] == [Open(first, rw), Mkdir(MPath("dir")), Open(tmp, rw), Write(Data("entry")), Close(),
                                    Link(tmp, DIR_ENTRY), Unlink(tmp)]
    assert any("earlier try" in n for n in got.programs[0].notes)
    assert explore(System.of(prog, 3, 1, reader=go_read_entry_at(DIR_ENTRY), faults=1), [STAYS]).verdict(STAYS) == "holds"


def test_renameat2_noreplace_and_its_eexist() -> None:
    rn = '100  renameat2(AT_FDCWD, "/c/e.tmp", AT_FDCWD, "/c/e", RENAME_NOREPLACE) = 0'
    prog = one([*TMP_WRITTEN, rn])
    assert Rename(PRIVATE, ENTRY, noreplace=True) in prog.source
    taken = one([*TMP_WRITTEN, rn.replace("= 0", "= -1 EEXIST (File exists)"), '100  unlink("/c/e.tmp") = 0'], "/c/e")
    assert "if err in {EEXIST}" in taken.listing() and Return(Outcome.OK) in taken.source


def test_symlink_publishes_the_file_it_names_and_readlink_checks_it() -> None:
    """A first-writer-wins link: the data by temp and rename, then a
    symlink from the entry to it (the data file is shared: every
    writer's link reaches it); EEXIST, then a readlink, means done."""
    data = [OPEN_TMP, '100  write(3, "hello", 5) = 5', '100  close(3) = 0', '100  rename("/c/e.tmp", "/c/o/x") = 0']
    prog = one([*data, '100  symlink("../o/x", "/c/a/e") = 0'], "/c/a/e")
    shared = MPath("entry.tmp2")
    assert ops(prog.source)[:5] == [Open(PRIVATE, EXCL_W), Write(Data("entry")), Close(), Rename(PRIVATE, shared),
                                    Symlink(shared, ENTRY)]
    assert explore(System.of(prog, 2, 1, faults=1), [STAYS]).verdict(STAYS) == "holds"
    won = one([*data, '100  symlinkat("/c/o/x", AT_FDCWD, "/c/a/e") = -1 EEXIST (File exists)',
               '100  readlinkat(AT_FDCWD, "/c/a/e", "/c/o/x", 4096) = 6'], "/c/a/e")
    assert Readlink(ENTRY, into="lnk") in won.source and "if err in {EEXIST}" in won.listing()
    assert Return(Outcome.OK) in won.source


def test_o_nofollow_and_readlink_on_the_entry() -> None:
    reader = lifts_alike(['100  readlink("/c/e", 0x7ffd, 4096) = -1 EINVAL (Invalid argument)',
                          '100  openat(AT_FDCWD, "/c/e", O_RDONLY|O_NOFOLLOW|O_CLOEXEC) = 3',
                          '100  read(3, "hello", 4096) = 5', '100  read(3, "", 4091) = 0', '100  close(3) = 0'], "/c/e")
    (lp,) = reader.readers()
    assert ops(lp.program.source)[0] == Open(ENTRY, OpenFlags.READ | OpenFlags.NOFOLLOW)
    # The readlink alone changes nothing: listed, not lifted.
    assert [i.call for i in reader.ignored] == ["readlink"]


def test_o_append_writes_land_at_the_end_and_two_appenders_are_found_violating() -> None:
    """The known-bad twin of appending to a cache entry: a second writer's
    append makes the published entry longer than any payload."""
    prog = one([PLAIN[0].replace("O_CREAT|", "O_CREAT|O_APPEND|"), PLAIN[1], PLAIN[3]])
    assert ops(prog.source)[:2] == [Open(ENTRY, OpenFlags.WRITE | OpenFlags.CREAT | OpenFlags.APPEND), Write(Data("entry"))]
    assert explore(System.of(prog, 2, readers=0), [STAYS]).verdict(STAYS) == "violated"


def test_flock_and_fdatasync() -> None:
    prog = one([PLAIN[0], '100  flock(3, LOCK_EX) = 0', PLAIN[1], PLAIN[2], '100  fdatasync(3) = 0',
                '100  flock(3, LOCK_UN) = 0', PLAIN[3]])
    assert ops(prog.source)[:7] == [Open(ENTRY, O_WRONLY | O_CREAT), Flock(LockOp.EXCLUSIVE), Write(Data("entry")),
                                    Ftruncate(Length("entry")), Fdatasync(), Flock(LockOp.UNLOCK), Close()]
    shared = one(['100  openat(AT_FDCWD, "/c/e", O_RDONLY|O_CLOEXEC) = 3', '100  flock(3, LOCK_SH) = 0',
                  '100  read(3, "hello", 4096) = 5', '100  read(3, "", 4091) = 0', '100  close(3) = 0'], "/c/e")
    assert Flock(LockOp.SHARED) in shared.source and shared.role is Role.READER
    assert explore(System.of(prog, 2, 1, shared, faults=1), [STAYS]).verdict(STAYS) == "holds"


def test_a_new_call_failing_closes_and_fails() -> None:
    """fdatasync's EIO, seen: close what is open, return failure, and say so."""
    got = lifts_alike([PLAIN[0], PLAIN[1], '100  fdatasync(3) = -1 EIO (Input/output error)', '100  close(3) = 0',
                       '100  unlink("/c/e") = 0'])
    (lp,) = got.programs
    assert lp.program.source[lp.program.source.index(Fdatasync()) + 1:][:4] == (
        If(Failed(frozenset({"EIO"})), "on_eio"), Goto("close_fail"), Label("on_eio"), Close())
    assert Return(Outcome.OK) not in lp.program.source
    assert any("fdatasync failing with EIO" in n for n in lp.notes)


# ------------------------------------------------------------ ignored calls

IGNORABLE = [
    '100  fchown(3, 0, 0) = 0',
    '100  fchmod(3, 0644) = 0',
    '100  fsetxattr(3, "user.x", "1", 1, 0) = 0',
    '100  fcntl(3, F_GETFL) = 0x8001 (flags O_WRONLY|O_LARGEFILE)',
    '100  fcntl(3, F_SETFL, O_WRONLY|O_NONBLOCK|O_LARGEFILE) = 0',
    '100  ioctl(3, TCGETS, 0x7ffd08041f20) = -1 ENOTTY (Inappropriate ioctl for device)',
    '100  lseek(3, 0, SEEK_CUR) = 0',
    '100  newfstatat(3, "", {st_mode=S_IFREG|0644, st_size=0, ...}, AT_EMPTY_PATH) = 0',
    '100  fstat(3, {st_mode=S_IFREG|0644, st_size=0, ...}) = 0',
    '100  statx(3, "", AT_STATX_SYNC_AS_STAT|AT_EMPTY_PATH, STATX_ALL, {stx_mask=STATX_ALL, stx_size=0, ...}) = 0',
    '100  fadvise64(3, 0, 0, POSIX_FADV_SEQUENTIAL) = 0',
    '100  utimensat(3, NULL, NULL, 0) = 0',
]


def test_calls_that_change_neither_contents_nor_names_are_listed_as_ignored() -> None:
    got = lifted([PLAIN[0], *IGNORABLE, *PLAIN[1:]])
    assert [p.program.source for p in got.programs] == [only(PLAIN)]
    assert [i.line for i in got.ignored] == list(range(2, 2 + len(IGNORABLE)))
    names = {i.call for i in got.ignored}
    assert {"fchown", "fchmod", "fsetxattr", "fcntl", "ioctl", "lseek", "newfstatat", "fstat", "statx"} <= names


def test_a_chtimes_alone_is_not_a_write() -> None:
    got = lifted([*PLAIN[:5], '100  utimensat(AT_FDCWD, "/c/e", NULL, 0) = 0'][:5]
                 + ['100  openat(AT_FDCWD, "/c/e", O_RDONLY|O_CLOEXEC) = 3', '100  close(3) = 0',
                    '100  utimensat(AT_FDCWD, "/c/e", NULL, 0) = 0'])
    assert len(got.writers()) == 1
    assert any(i.line == 8 and "neither contents nor names" in i.why for i in got.ignored)


# ------------------------------------------------------------ generalising


def test_slices_and_lengths() -> None:
    assert slice_of(0, 10, 10) == Data("entry")
    assert slice_of(0, 9, 10) == Data("entry", None, -1)
    assert slice_of(9, 1, 10) == Data("entry", -1, None)
    assert slice_of(0, 3, 10) == Data("entry", None, 3)
    assert slice_of(3, 7, 10) == Data("entry", 3, None)
    assert slice_of(2, 3, 10) == Data("entry", 2, 5)
    assert slice_of(5, 6, 10) is None
    assert slice_of(0, 0, 0) == Data("entry")
    assert length_of(10, 10) == Length("entry")
    assert length_of(11, 10) == Length("entry", 1)
    assert length_of(0, 10) == Length(None, 0)
    assert length_of(4096, 10) == Length(None, 4096)


def test_a_copy_loop_and_the_last_byte_lift_to_go_output_file() -> None:
    n = 2 * 32768 + 100 + 1
    log = [
        '100  newfstatat(AT_FDCWD, "/c/o", 0x1f87e92a4378, 0) = -1 ENOENT (No such file or directory)',
        '100  openat(AT_FDCWD, "/c/o", O_RDWR|O_CREAT|O_CLOEXEC, 0666) = 8',
        '100  write(8, "go index v2\\np1\\1\\0"..., 32768) = 32768',
        '101  write(8, "\\0\\0\\0\\0"..., 32768) = 32768',
        '100  write(8, "tr.go"..., 100) = 100',
        '100  write(8, "\\377", 1) = 1',
        '100  close(8) = 0',
        '100  utimensat(AT_FDCWD, "/c/o", [{tv_sec=1, tv_nsec=2} /* x */, {tv_sec=1, tv_nsec=2} /* y */], 0) = 0',
    ]
    (lp,) = lifted(log).programs
    as_entry = {MPath("output"): ENTRY}
    want = [_renamed(i, as_entry) for i in success_path(GO_OUTPUT_FILE)]
    assert list(success_path(lp.program)) == want
    assert lp.occurrences[0].payload == n
    assert any("copy loop" in note for note in lp.notes)


def _renamed(ins: object, paths: dict[MPath, MPath]) -> object:
    """A catalogue instruction on ``output`` as the lifter writes it (on ``entry``)."""
    from dataclasses import fields, replace

    changes: dict[str, object] = {}
    for f in fields(ins):  # type: ignore[arg-type]
        v = getattr(ins, f.name)
        if isinstance(v, MPath) and v in paths:
            changes[f.name] = paths[v]
        elif isinstance(v, (Data, Length)) and v.payload == "output":
            changes[f.name] = replace(v, payload="entry")
    return replace(ins, **changes)  # type: ignore[type-var]


def test_the_results_seen_decide_the_path() -> None:
    """stat's ENOENT is the way on; the file existing (unseen) fails."""
    log = ['100  stat("/c/e", 0x7ffd) = -1 ENOENT (No such file or directory)', *PLAIN]
    source = only(log)
    assert source[0] == Stat(ENTRY)
    lp = lifted(log).programs[0].program
    assert success_path(lp)[0] == Stat(ENTRY) and len(success_path(lp)) == 6
    assert "if err in {ENOENT}: goto on_enoent" in lp.listing()


def test_a_failure_seen_makes_the_writer_fail_and_is_said() -> None:
    log = [PLAIN[0], '100  write(3, "hello", 5) = -1 ENOSPC (No space left on device)', '100  close(3) = 0',
           '100  unlink("/c/e") = 0']
    got = lifted(log)
    (lp,) = got.programs
    assert lp.program.source[-1] != Return(Outcome.OK)
    main_line = lp.program.listing().split("\n")
    assert "    return fail" in main_line[main_line.index("on_enospc:"):][:6]
    assert any("ENOSPC" in n for n in lp.notes)


def test_threads_of_one_process_share_descriptors() -> None:
    log = [PLAIN[0], PLAIN[1].replace("100", "101"), PLAIN[2].replace("100", "102"), PLAIN[3], PLAIN[4]]
    got = lifted(log)
    assert [p.program.source for p in got.programs] == [only(PLAIN)]


def test_a_close_frees_its_descriptor_where_it_began() -> None:
    """Another thread's pipe2 may get the number while the close is
    unfinished: the close came first."""
    log = [PLAIN[0], '101  fcntl(3, F_GETFL) = 0x8001 (flags O_WRONLY)', PLAIN[1], PLAIN[2],
           '101  pipe2( <unfinished ...>', '100  close(3 <unfinished ...>',
           '101  <... pipe2 resumed>[3, 4], O_CLOEXEC) = 0', '100  <... close resumed>) = 0', PLAIN[4]]
    assert only(log) == only(PLAIN)


def test_a_child_between_fork_and_exec_closes_its_own_copies() -> None:
    """What a go build's log showed: the writer makes a pipe (10) and
    forks child 300; the writer then opens the entry at 13; the child
    dup3s the pipe onto 13 (in its own table, a copy) and runs execve.
    The writer's descriptor 13 stays open, and its writes are the entry's."""
    log = ['100  pipe2([9, 10], O_CLOEXEC) = 0',
           '300  chdir("/src") = 0',
           PLAIN[0].replace("= 3", "= 13"),
           '300  dup3(10, 13, O_CLOEXEC) = 13',
           '300  close(9) = 0',
           '300  execve("/bin/asm", ["asm"], 0x7ffd /* 1 var */) = 0',
           *[ln.replace("(3", "(13") for ln in PLAIN[1:]]]
    assert only(log) == only(PLAIN)
    # A thread that never runs execve is the writer's own: its dup3 over
    # the open entry closes the writer's descriptor, which the language
    # cannot express (an error, not a guess).
    with pytest.raises(CannotExpress) as e:
        lifted([ln for ln in log if "execve" not in ln])
    assert e.value.line == 4


EXECS = ['100  execve("/bin/writer", ["writer"], 0x7ffd /* 1 var */) = 0',
         '200  execve("/bin/other", ["other"], 0x7ffd /* 1 var */) = 0',
         '200  openat(AT_FDCWD, "/c/x", O_RDONLY|O_CLOEXEC) = 3']


def test_a_thread_is_placed_by_the_exit_group_it_ends_with() -> None:
    """Thread 101 writes descriptor 3, which both programs hold; it exits
    with process 100 (exit_group), so it is 100's."""
    log = [*EXECS, PLAIN[0], PLAIN[1].replace("100", "101"), PLAIN[2].replace("100", "101"), PLAIN[3], PLAIN[4],
           '101  +++ exited with 0 +++', '100  +++ exited with 0 +++', '200  close(3) = 0', '200  +++ exited with 0 +++']
    assert only(log) == only(PLAIN)
    # Without the exits nothing tells the two apart: an error, not a guess.
    with pytest.raises(CannotExpress) as e:
        lifted(log[:-4])
    assert e.value.line == 5


def test_a_thread_is_placed_with_a_sibling_that_exits_with_it() -> None:
    """Thread 101 reads descriptor 4, held by program 200 (the file it
    writes) and by thread 102 (which opened its own file there).  Both
    threads end with program 100's exit_group: 101 is with 102, not 200."""
    log = [*EXECS[:2],
           '200  openat(AT_FDCWD, "/c/e", O_WRONLY|O_CREAT|O_CLOEXEC, 0666) = 4',
           '102  openat(AT_FDCWD, "/c/src", O_RDONLY|O_CLOEXEC) = 4',
           '101  read(4, "data", 4096) = 4',
           *[ln.replace("100", "200").replace("(3", "(4") for ln in PLAIN[1:5]],
           '102  +++ exited with 0 +++', '101  +++ exited with 0 +++', '100  +++ exited with 0 +++']
    assert only(log) == only(PLAIN)


def test_two_programs_that_ran_execve_are_never_one_process() -> None:
    """Process 200 writes its own descriptor 3 (inherited from before the
    log): that is not the writer's file."""
    log = [*EXECS[:2], PLAIN[0], '200  write(3, "other", 5) = 5', *PLAIN[1:]]
    assert only(log) == only(PLAIN)


def test_a_temp_one_process_uses_is_private() -> None:
    log = [OPEN_TMP, '100  write(3, "hello", 5) = 5', '100  close(3) = 0', '100  rename("/c/e.tmp", "/c/e") = 0']
    source = only(log)
    assert source[0] == Open(TEMP, OpenFlags.WRITE | OpenFlags.CREAT | OpenFlags.EXCL)
    assert Rename(TEMP, ENTRY) in source
    shared = log + [ln.replace("100", "200").replace("= 3", "= 4").replace("(3", "(4") for ln in log]
    got = lifted(shared, "/c/e")
    assert {p.program.source[0] for p in got.programs} == {
        Open(MPath("entry.tmp", private=False), OpenFlags.WRITE | OpenFlags.CREAT | OpenFlags.EXCL)}


def test_a_reader_reads_to_the_end_and_hits() -> None:
    log = ['100  openat(AT_FDCWD, "/c/e", O_RDONLY|O_CLOEXEC) = 3',
           '100  read(3, "hello", 4096) = 5', '100  read(3, "", 4091) = 0', '100  close(3) = 0']
    got = lifted(log, "/c/e")
    (lp,) = got.readers()
    assert ops(lp.program.source) == [Open(ENTRY, OpenFlags.READ), Read(Length("entry", 1)), Close(),
                                      Return(Outcome.HIT), Return(Outcome.MISS), Close(), Return(Outcome.MISS)]
    assert any("invisible to strace" in n for n in got.notes)


def test_an_mmap_reader_lifts_to_mmap_read() -> None:
    log = ['100  openat(AT_FDCWD, "/c/e", O_RDONLY|O_CLOEXEC) = 3',
           '100  fstat(3, {st_mode=S_IFREG|0644, st_size=5, ...}) = 0',
           '100  mmap(NULL, 5, PROT_READ, MAP_SHARED, 3, 0) = 0x7f0000000000', '100  close(3) = 0']
    (lp,) = lifted(log, "/c/e").readers()
    assert ops(lp.program.source)[:5] == [Open(ENTRY, OpenFlags.READ), Fstat(), Mmap(), Close(), MapRead()]


# ------------------------------------------------------------ values, checked as they are


def test_lifted_programs_go_to_the_explorer_as_values() -> None:
    """The known-bad twin: O_TRUNC first is found violating
    published-entry-stays-complete, truncate-after is not."""
    safe = lifted(PLAIN).programs[0].program
    trunc = lifted([PLAIN[0].replace("O_CREAT|", "O_CREAT|O_TRUNC|"), PLAIN[1], PLAIN[3]]).programs[0].program
    assert explore(System.of(trunc, 2, readers=0), [STAYS]).verdict(STAYS) == "violated"
    assert explore(System.of(safe, 2, readers=0, faults=1), [STAYS]).verdict(STAYS) == "holds"


def test_lifted_programs_run_on_real_files(tmp_path: Path) -> None:
    from reference import read_entry, write_entry

    program = lifted([OPEN_TMP, '100  write(3, "hello", 5) = 5', '100  fsync(3) = 0', '100  close(3) = 0',
                      '100  rename("/c/e.tmp", "/c/e") = 0']).programs[0].program
    write_entry(tmp_path / "e", b"some bytes", protocol=program)
    assert read_entry(tmp_path / "e", 10) == b"some bytes"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e"]


def test_success_path_of_the_catalogue() -> None:
    assert [type(i) for i in success_path(GO_OUTPUT_FILE)] == [Stat, Open, Write, Write, Close, Chtimes]
    assert [type(i) for i in success_path(WRITE_THEN_TRUNCATE)] == [Open, Write, Ftruncate, Close, Chtimes]
    assert success_path(WRITE_THEN_TRUNCATE)[0] == Open(ENTRY, O_WRONLY | O_CREAT)


# ------------------------------------------------------------ the command


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def test_the_command_prints_each_program_as_list_does(tmp_path: Path) -> None:
    log = tmp_path / "w.log"
    log.write_text(text([PLAIN[0], IGNORABLE[0], *PLAIN[1:]]))
    code, out, _ = run("lift", str(log))
    assert code == 0
    assert "lifted-1 (writer): lifted: 1 sequence like" in out
    assert "\n      f = open(entry, O_WRONLY|O_CREAT)\n" in out and "\n  close_fail:\n" in out
    assert "note: the log shows one path" in out
    assert "fchown x1: sets attributes only" in out


def test_the_command_json_and_check(tmp_path: Path) -> None:
    log = tmp_path / "w.log"
    log.write_text(text(PLAIN))
    code, out, _ = run("lift", str(log), "--json", "--check")
    data = json.loads(out)
    assert code == 0
    assert [p["role"] for p in data["programs"]] == ["writer"]
    assert data["programs"][0]["sequences"][0]["payload"] == 5
    verdicts = {(r["property"], r["faults"]): r["verdict"] for r in data["results"]}
    assert verdicts[("published-entry-stays-complete", 1)] == "holds"
    code, out, _ = run("lift", str(log), "--check")
    assert "protocols" in out and "lifted-1" in out and "verdicts on 1 lifted programs" in out


def test_the_command_takes_ff_files_by_prefix(tmp_path: Path) -> None:
    (tmp_path / "run.7").write_text(text([f"08:00:0{i}.000000 {ln[5:]}" for i, ln in enumerate(PLAIN)]))
    code, out, _ = run("lift", str(tmp_path / "run"))
    assert code == 0 and "run.7:1-5" in out


def test_the_command_says_what_is_wrong(tmp_path: Path) -> None:
    log = tmp_path / "w.log"
    log.write_text(text([PLAIN[0], '100  flock(3, LOCK_EX|LOCK_NB) = 0', *PLAIN[1:]]))
    code, out, err = run("lift", str(log))
    assert code == 2 and out == ""
    assert err.startswith(f"idemwrite: error: {log}:2: flock(3, LOCK_EX|LOCK_NB) = 0: the instruction language cannot "
                          "express flock(LOCK_EX|LOCK_NB)")
    code, _, err = run("lift", str(tmp_path / "missing"))
    assert code == 2 and "no such file" in err
    binary = tmp_path / "a.out"
    binary.write_bytes(bytes(range(256)) * 4)
    code, _, err = run("lift", str(binary))
    assert code == 2 and f"{binary}:1: this is not a log strace writes" in err
