"""What can go wrong when lifting, one class per failure, each naming the place.

Every error carries the log file and line it is about (``file``, ``line``),
so that a message reads ``go.log:150: ...`` and says what to do.  Nothing
is guessed past an error: the lifter stops at the first one.
"""

from __future__ import annotations


class LiftError(ValueError):
    """A log the lifter cannot turn into programs; ``file``:``line`` says where."""

    def __init__(self, file: str, line: int, message: str) -> None:
        super().__init__(f"{file}:{line}: {message}" if line else f"{file}: {message}")
        self.file = file
        self.line = line
        self.message = message


class NotAnStraceLog(LiftError):
    """The file does not start like a log strace writes (or is empty)."""


class MalformedLine(LiftError):
    """A line in the middle of a log that strace would not write (a resumed
    call with no unfinished one, text that is not a call, a signal or an exit)."""


class CutOffLine(LiftError):
    """A call whose line is cut off before its result, or that was never
    resumed before the log ended: the log is incomplete."""


class CannotExpress(LiftError):
    """A call in a lifted sequence that changes contents or names but that
    the instruction language cannot express (yet): ``call`` is the system
    call's name, ``missing`` what the language lacks (``mkdir``,
    ``O_APPEND``, ...), ``text`` the call as strace wrote it."""

    def __init__(self, file: str, line: int, call: str, missing: str, text: str, detail: str = "") -> None:
        why = f"the instruction language cannot express {missing}"
        super().__init__(file, line, f"{text.strip()}: {why}{'; ' + detail if detail else ''}")
        self.call = call
        self.missing = missing
        self.text = text
