"""Progress of a long check or proof, on a terminal's stderr.

A run that takes more than about a second shows a one-line status on
stderr, rewritten in place: for the explorer its states, depth and states
per second, for ``prove`` the theorems done out of the total.  Nothing is
shown when stderr is not a terminal, with ``--json``, or in CI (the
``CI`` environment variable, which CI services set), so that output
people or programs read is never touched.

Standard library only, and imported only by the commands that use it:
``idemwrite check``'s start-up does not pay for it, and the GOCACHEPROG
server never imports it.  The specification reads no clock; this module
is the caller that does.
"""

from __future__ import annotations

import os
import sys
import time

TYPE_CHECKING = False  # typing itself costs milliseconds, and only mypy needs it here
if TYPE_CHECKING:
    from typing import TextIO

# Seconds before the first line appears (tests set it to 0 through the
# environment), and between two redraws.
DELAY = float(os.environ.get("IDEMWRITE_PROGRESS_AFTER", "1.0"))
EVERY = 0.1


class Progress:
    """A status line on ``stream``, if it is a terminal and wanted."""

    def __init__(self, stream: TextIO | None = None, *, enabled: bool = True) -> None:
        self.stream = sys.stderr if stream is None else stream
        self.on = enabled and not os.environ.get("CI") and _is_tty(self.stream)
        self.started = time.perf_counter()
        self.last = float("-inf")  # the first line is not held back
        self.shown = False

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def show(self, text: str, *, force: bool = False) -> None:
        """Redraw the line (at most every EVERY seconds, after DELAY)."""
        if not self.on:
            return
        now = self.elapsed()
        if now < DELAY or (not force and now - self.last < EVERY):
            return
        self.last = now
        self.stream.write("\r\x1b[K" + text)
        self.stream.flush()
        self.shown = True

    def explorer(self, states: int, depth: int) -> None:
        """The explorer's callback: states so far, the current depth."""
        secs = self.elapsed()
        rate = states / secs if secs > 0 else 0.0
        self.show(f"exploring: {states:,} states, depth {depth}, {rate:,.0f} states/s")

    def done(self) -> None:
        """Erase the line, so that what follows starts on a clean one."""
        if self.shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self.shown = False


def _is_tty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
