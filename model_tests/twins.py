"""Known-bad twins shared by several test files.

``TrustingSummary`` hands out every fact of the summary unchecked: neither
its form (``summary.well_formed``) nor its output (a regular file, not a
link, of the recorded size) is looked at.  ``test_summary`` shows that a
server using it answers hits whose output has gone, ``test_hostile_dir``
that it hands the go command a forged fact about a linked output.
"""

from __future__ import annotations

from reference.summary import Summary


class TrustingSummary(Summary):
    """A summary whose ``hit`` (the server's fast path) checks nothing."""

    def hit(self, key: bytes) -> tuple[bytes, bytes, bytes, bytes] | None:
        fact_ = self.peek(key)
        if fact_ is None:
            return None
        mtime, _, output_hex, answer = fact_.split(b" ", 3)
        return fact_, mtime, output_hex, answer
