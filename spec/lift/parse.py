"""strace's text, read: calls with their arguments and results, in order.

What is read: what ``strace -f -o LOG -e trace=... PROGRAM`` writes, with
or without a process id on each line (``-f``; ``[pid N]`` when strace
writes to a terminal), with or without timestamps (``-t``, ``-tt``,
``-ttt``, ``-r``), call times (``-T``) and descriptor paths (``-y``), at
any string length (``-s``).  A call that strace splits in two under
``-f`` (``NAME(... <unfinished ...>`` then ``<... NAME resumed>...)``) is
joined into one call at the line where it began, and put in order where it
returned (a close where it began: the descriptor is free from then on).  Signals (``--- SIG``)
are skipped; exits (``+++ exited``) are kept, since a process that exits
drops its descriptors.  Several files (``-ff -o LOG`` writes ``LOG.<pid>``
with no process id on the lines) are merged by their timestamps when every
line has one, else read one after another (the result says so).

Not read: anything else.  A file that does not start like a strace log, a
line cut off before its result, a call the log ends in the middle of, or a
resumed call with no unfinished one is an error naming the file and line
(``spec.lift.errors``): nothing is guessed.

Arguments stay text (:attr:`Call.args`) until a caller asks for them
(:func:`split_args`): most calls in a log are on files nobody selected.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence, Union

from .errors import CutOffLine, MalformedLine, NotAnStraceLog


@dataclass(frozen=True)
class Call:
    """One system call, joined if strace split it.

    ``ret`` is the return value (None when strace shows ``?``: the process
    ended during the call, ``finished`` is then False); ``errno`` its error
    name when it failed; ``detail`` what strace prints after the result;
    ``text`` the call as strace wrote it (joined), for messages; ``line``
    the line where it began, ``end`` where its result is; ``order`` its
    place among all the calls read (the merge order of several files)."""

    file: str
    line: int
    end: int
    pid: int
    name: str
    args: str
    ret: int | None
    errno: str | None
    detail: str
    text: str
    ts: float | None
    finished: bool = True
    order: int = 0

    @property
    def ok(self) -> bool:
        """The call succeeded (it has a result and no errno)."""
        return self.finished and self.errno is None and self.ret is not None and self.ret >= 0

    def where(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True)
class Exit:
    """``+++ exited with N +++`` or ``+++ killed by SIG +++``: the process
    (or thread) ``pid`` is gone."""

    file: str
    line: int
    pid: int
    ts: float | None
    how: str
    order: int = 0


Record = Union[Call, Exit]

# An optional process id (``1234  `` or ``[pid  1234] ``), then an optional
# timestamp (-t/-tt ``08:54:45.350613``, -ttt ``1701679685.350613``, -r
# ``0.000123``), then the body.
_PREFIX = re.compile(
    r"\s*(?:\[pid\s+(?P<bpid>\d+)\]\s+|(?P<pid>\d+)\s+(?=\S))?"
    r"(?:(?P<ts>\d{1,2}:\d{2}:\d{2}(?:\.\d+)?|\d+\.\d+)\s+)?(?P<body>.*)$")
_NAME = re.compile(r"(?P<name>[a-z_][a-z0-9_]*|\?\?\?)\(")
_RESUMED = re.compile(r"<\.\.\. (?P<name>[a-z_][a-z0-9_]*|\?\?\?) resumed>\s?(?P<rest>.*)$")
_EXIT = re.compile(r"\+\+\+ (?P<how>exited with -?\d+|killed by \S+(?: \(core dumped\))?|superseded by execve.*) \+\+\+$")
_RET = re.compile(r"(?P<ret>-?\d+|0x[0-9a-fA-F]+|\?)(?:<[^>]*>)?")
_ERRNO = re.compile(r"(?P<errno>E[A-Z0-9]+)\b")
_UNFINISHED = "<unfinished ...>"
# Strings and comments, removed before counting brackets: what is left of a
# call's arguments must balance, or the line was cut off inside them.
_OPAQUE = re.compile(r'"(?:[^"\\]|\\.)*"(?:\.\.\.)?|/\*.*?\*/')
_FF_SUFFIX = re.compile(r"\.(\d+)$")
# Calls whose effect on the descriptor table comes when they begin: a close
# split by another thread's call releases the descriptor before that call
# can be given the same number.  Every other call takes effect where it
# returns.
_AT_START = frozenset({"close", "close_range"})


def _timestamp(s: str | None) -> float | None:
    """Seconds, from an absolute timestamp; None for none or a relative one."""
    if s is None:
        return None
    if ":" in s:
        h, m, sec = s.split(":")
        return int(h) * 3600 + int(m) * 60 + float(sec)
    v = float(s)
    # -r prints the time since the previous line: not a place in time.
    return v if v >= 1e6 else None


def _balanced(args: str) -> bool:
    """Do the arguments close every string and bracket they open?"""
    rest = _OPAQUE.sub("", args) if '"' in args or "/*" in args else args
    if '"' in rest or "/*" in rest:
        return False
    return all(rest.count(a) == rest.count(b) for a, b in ("()", "[]", "{}"))


def _split_result(body: str) -> tuple[str, str] | None:
    """``name(args)`` and the text after `` = ``, or None when the line has
    no result (it is cut off)."""
    i = body.rfind(" = ")
    while i > 0:
        head = body[:i].rstrip()
        if head.endswith(")") and _balanced(head[head.index("(") + 1:-1]):
            return head, body[i + 3:]
        i = body.rfind(" = ", 0, i)
    return None


class _Reader:
    """One file's lines into records (a reader per file: pid and pending
    unfinished calls are per file)."""

    def __init__(self, file: str, text: str) -> None:
        self.file = file
        self.text = text
        m = _FF_SUFFIX.search(file)
        self.file_pid = int(m.group(1)) if m else 0
        self.pending: dict[int, tuple[int, str, str, float | None]] = {}
        # A call's place among the records: where it returns, but a close
        # where it began (``_AT_START``); None holds a place until resumed.
        self.out: list[Record | None] = []
        self.slot: dict[int, int] = {}
        self.timed = True

    def read(self) -> list[Record]:
        lines = self.text.split("\n")
        # The last line is cut off when the text does not end with a newline.
        cut_at = 0 if self.text.endswith("\n") else len(lines)
        seen = False
        for n, raw in enumerate(lines, 1):
            if not raw.strip() or raw.startswith("strace: "):
                continue
            m = _PREFIX.match(raw)
            assert m is not None  # every group is optional
            body = m.group("body").rstrip()
            pid_s = m.group("pid") or m.group("bpid")
            pid = int(pid_s) if pid_s else self.file_pid
            ts = _timestamp(m.group("ts"))
            if ts is None:
                self.timed = False
            if not self._line(n, pid, ts, body, cut=n == cut_at):
                if not seen:
                    raise NotAnStraceLog(self.file, n, f"this is not a log strace writes (line {n}: {raw[:60]!r}); "
                                         "record one with strace -f -o LOG -e trace=%file,%desc,fsync,fdatasync,flock PROGRAM")
                raise MalformedLine(self.file, n, f"strace does not write lines like {raw[:80]!r}")
            seen = True
        if not seen:
            raise NotAnStraceLog(self.file, 0, "the file is empty: no calls to lift")
        if self.pending:
            pid, (n, name, _, _) = min(self.pending.items(), key=lambda kv: kv[1][0])
            raise CutOffLine(self.file, n, f"the log ends before {name} (pid {pid}) finished: "
                             "was strace stopped before the program ended?")
        return [r for r in self.out if r is not None]

    def _line(self, n: int, pid: int, ts: float | None, body: str, *, cut: bool) -> bool:
        """Read one line's body; False when it is not strace's."""
        if body.startswith("--- ") and body.endswith(" ---"):
            return True  # a signal: changes no file
        m = _EXIT.match(body)
        if m:
            self._exit(n, pid, ts, m.group("how"))
            return True
        m = _RESUMED.match(body)
        if m:
            self._resumed(n, pid, m.group("name"), m.group("rest"))
            return True
        m = _NAME.match(body)
        if m is None:
            return False
        if body.endswith(_UNFINISHED):
            self.pending[pid] = (n, m.group("name"), body[:-len(_UNFINISHED)], ts)
            if m.group("name") in _AT_START:
                self.slot[pid] = len(self.out)
                self.out.append(None)
            return True
        self._complete(n, n, pid, ts, body, cut)
        return True

    def _complete(self, line: int, end: int, pid: int, ts: float | None, body: str, cut: bool) -> None:
        parts = _split_result(body)
        if parts is None:
            what = "the log ends in the middle of this call" if cut else "the line is cut off before the call's result"
            raise CutOffLine(self.file, end, f"{what}: {body[:80]!r}")
        head, after = parts
        name = head[:head.index("(")]
        after = after.strip()
        r = _RET.match(after)
        if r is None:
            raise CutOffLine(self.file, end, f"no result after '=': {body[:80]!r}")
        tok = r.group("ret")
        ret = None if tok == "?" else int(tok, 16) if tok.startswith("0x") else int(tok)
        detail = after[r.end():].strip()
        e = _ERRNO.match(detail)
        errno = e.group("errno") if e and (ret is None or ret < 0) else None
        self._place(pid, Call(self.file, line, end, pid, name, head[len(name) + 1:-1], ret, errno, detail,
                              head + " = " + after, ts, finished=ret is not None or errno is not None))

    def _place(self, pid: int, call: Call) -> None:
        i = self.slot.pop(pid, None)
        if i is None:
            self.out.append(call)
        else:
            self.out[i] = call

    def _resumed(self, n: int, pid: int, name: str, rest: str) -> None:
        if pid not in self.pending:
            raise MalformedLine(self.file, n, f"{name} resumed in pid {pid}, which has no unfinished call")
        line, pname, head, ts = self.pending.pop(pid)
        if pname != name:
            raise MalformedLine(self.file, n, f"{name} resumed in pid {pid}, whose unfinished call (line {line}) is {pname}")
        if rest.startswith(_UNFINISHED):  # killed in the call: "<... read resumed> <unfinished ...>) = ?"
            rest = rest[len(_UNFINISHED):]
        head = head.rstrip()
        sep = " " if head.endswith(",") and not rest.lstrip().startswith(")") else ""
        self._complete(line, n, pid, ts, head + sep + rest.lstrip(), cut=False)

    def _exit(self, n: int, pid: int, ts: float | None, how: str) -> None:
        pending = self.pending.pop(pid, None)
        if pending is not None:
            # The process ended inside the call: it has no result.
            line, name, head, pts = pending
            args = head[len(name) + 1:].rstrip().rstrip(",")
            self._place(pid, Call(self.file, line, n, pid, name, args, None, None, "never finished",
                                  head.rstrip() + " <never finished>", pts, finished=False))
        self.out.append(Exit(self.file, n, pid, ts, how))


def read_logs(logs: Sequence[tuple[str, str]]) -> tuple[list[Record], list[str]]:
    """The records of one or more logs ``(name, text)`` in order, each with
    its ``order``, and notes on how they were put in order."""
    readers = [_Reader(name, text) for name, text in logs]
    per = [r.read() for r in readers]
    notes: list[str] = []
    if len(per) == 1:
        merged = per[0]
    elif all(r.timed for r in readers):
        # Stable: equal timestamps keep file order, then line order.
        keyed = [(_ts(rec), i, j, rec) for i, recs in enumerate(per) for j, rec in enumerate(recs)]
        keyed.sort(key=lambda k: (k[0], k[1], k[2]))
        merged = [k[3] for k in keyed]
        notes.append(f"{len(per)} files merged in the order of their timestamps")
    else:
        merged = [rec for recs in per for rec in recs]
        notes.append(f"{len(per)} files read one after another: without absolute timestamps (strace -tt) "
                     "the calls of different processes cannot be put in time order")
    out: list[Record] = []
    for i, rec in enumerate(merged):
        out.append(_with_order(rec, i))
    return out, notes


def _ts(rec: Record) -> float:
    return rec.ts if rec.ts is not None else 0.0


def _with_order(rec: Record, i: int) -> Record:
    if isinstance(rec, Call):
        return Call(rec.file, rec.line, rec.end, rec.pid, rec.name, rec.args, rec.ret, rec.errno, rec.detail, rec.text,
                    rec.ts, rec.finished, i)
    return Exit(rec.file, rec.line, rec.pid, rec.ts, rec.how, i)


# ------------------------------------------------------------ arguments

_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"(?:\.\.\.)?|/\*.*?\*/|[\[\]{}(),]|[^"\[\]{}(),/]+|/')
_OPEN, _CLOSE = "[{(", "]})"
_NESTED = re.compile(r'["\[{(/]')


def split_args(args: str) -> list[str]:
    """The top-level arguments of a call, each stripped (strings, structs
    and arrays kept whole)."""
    if not _NESTED.search(args):
        return [a.strip() for a in args.split(",")] if args.strip() else []
    out: list[str] = []
    cur: list[str] = []
    depth = 0
    for m in _TOKEN.finditer(args):
        t = m.group(0)
        if t in _OPEN:
            depth += 1
        elif t in _CLOSE:
            depth -= 1
        elif t == "," and depth == 0:
            out.append("".join(cur).strip())
            cur = []
            continue
        cur.append(t)
    last = "".join(cur).strip()
    if last or out:
        out.append(last)
    return out


class Args:
    """A call's arguments, split only when asked (most calls in a log are
    on files nobody selected, and the descriptor comes first); an index
    past the end is ""."""

    __slots__ = ("text", "_all")

    def __init__(self, text: str) -> None:
        self.text = text
        self._all: list[str] | None = None

    def all(self) -> list[str]:
        if self._all is None:
            self._all = split_args(self.text)
        return self._all

    def __getitem__(self, i: int) -> str:
        if i == 0 and self._all is None:
            head = self.text.split(",", 1)[0]
            if not _NESTED.search(head):
                return head.strip()
        a = self.all()
        return a[i] if i < len(a) else ""

    def __len__(self) -> int:
        return len(self.all())


_ESCAPE = re.compile(r'\\(x[0-9a-fA-F]{2}|[0-7]{1,3}|.)')
_SIMPLE = {"n": "\n", "t": "\t", "r": "\r", "v": "\v", "f": "\f", "a": "\a", "b": "\b", "\\": "\\", '"': '"'}


def unquote(arg: str) -> str | None:
    """A string argument's text (strace's escapes undone), or None when
    ``arg`` is not a string (NULL, a pointer)."""
    if not arg.startswith('"'):
        return None
    body = arg[1:arg.rindex('"')] if arg.endswith('"...') else arg[1:-1]

    def one(m: re.Match[str]) -> str:
        e = m.group(1)
        if e[0] == "x" and len(e) == 3:
            return chr(int(e[1:], 16))
        if e[0] in "01234567":
            return chr(int(e, 8))
        return _SIMPLE.get(e, e)

    return _ESCAPE.sub(one, body)


def int_arg(arg: str) -> int | None:
    """An integer argument (decimal, hex, or a descriptor shown with its
    path by -y: ``8</tmp/x>``), else None."""
    m = re.match(r"(-?\d+|0x[0-9a-fA-F]+)(?:<.*>)?$", arg)
    if m is None:
        return None
    tok = m.group(1)
    return int(tok, 16) if tok.startswith("0x") else int(tok)


def flag_names(arg: str) -> list[str]:
    """``O_WRONLY|O_CREAT|O_CLOEXEC`` as names (a bare number as its text)."""
    return [f.strip() for f in arg.split("|") if f.strip()]


_SIZE = re.compile(r"\bstx?_size=(\d+)")


def st_size(arg: str) -> int | None:
    """The size in a stat or statx structure, if strace printed one."""
    m = _SIZE.search(arg)
    return int(m.group(1)) if m else None
