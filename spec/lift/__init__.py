"""``idemwrite lift``: a real program's system calls, as protocol values.

Pure: strace's text in, :class:`~spec.ops.Program` values out; no I/O, no
clock.  :func:`lift` reads one log (or the ``-ff`` files of one run) and
returns a :class:`Lifted`: one program per distinct sequence of calls on
the selected files, the calls it left out and why, and a note on every
choice it made.  The programs are plain values: every checker takes them
as they are.

The layers: :mod:`spec.lift.parse` (strace's lines into calls),
:mod:`spec.lift.track` (calls into events on named files: descriptors,
threads, names, sizes; one table entry per system call),
:mod:`spec.lift.generalise` (events into sequences and programs; one table
entry per operation), :mod:`spec.lift.report` (the text and JSON).
"""

from .errors import CannotExpress, CutOffLine, LiftError, MalformedLine, NotAnStraceLog
from .generalise import Ignored, Lifted, LiftedProgram, Occurrence, lift
from .report import render, success_path, to_json

__all__ = [
    "CannotExpress", "CutOffLine", "Ignored", "LiftError", "Lifted", "LiftedProgram", "MalformedLine", "NotAnStraceLog",
    "Occurrence", "lift", "render", "success_path", "to_json",
]
