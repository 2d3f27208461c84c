"""idemwrite's executable specification: pure, no I/O.

Write a protocol as a :class:`Program` of file-system operations, then ask
:func:`explore` whether it keeps a property in every interleaving::

    from spec import Setup, explore
    result = explore(Setup(("write-file",), writers=2, readers=0))
    result.verdict("published-entry-stays-complete")   # 'violated'
"""

from .explore import Exploration, Setup, SetupError, Violation, build, canonical, explore
from .fs import PAGE_SIZE, FileSystem
from .machine import Config, Kind, Proc, World, initial, published, step, successors, valid
from .ops import (
    ENTRY,
    O_CREAT,
    O_EXCL,
    O_RDONLY,
    O_RDWR,
    O_TRUNC,
    O_WRONLY,
    OUTPUT,
    TEMP,
    Chtimes,
    Close,
    Data,
    Failed,
    Fstat,
    Fsync,
    Ftruncate,
    Goto,
    If,
    Invalid,
    Label,
    Length,
    MapRead,
    Mmap,
    Open,
    OpenFlags,
    Outcome,
    Path,
    Program,
    ProgramError,
    PWrite,
    Read,
    Rename,
    Return,
    Role,
    SizeIs,
    Stat,
    Unlink,
    Write,
)
from .properties import PROPERTIES, Property, UnknownProperty, get_property
from .protocols import CATALOGUE, READERS, WRITERS, Claim, Protocol, UnknownProtocol, protocol
from .trace import Trace, TraceError, TraceStep, from_exploration, replay

__all__ = [
    "CATALOGUE", "ENTRY", "O_CREAT", "O_EXCL", "O_RDONLY", "O_RDWR", "O_TRUNC", "O_WRONLY", "OUTPUT",
    "PAGE_SIZE", "PROPERTIES", "READERS", "TEMP", "WRITERS",
    "Chtimes", "Claim", "Close", "Config", "Data", "Exploration", "Failed", "FileSystem", "Fstat", "Fsync",
    "Ftruncate", "Goto", "If", "Invalid", "Kind", "Label", "Length", "MapRead", "Mmap", "Open", "OpenFlags",
    "Outcome", "Path", "Proc", "Program", "ProgramError", "Property", "Protocol", "PWrite", "Read", "Rename",
    "Return", "Role", "Setup", "SetupError", "SizeIs", "Stat", "Trace", "TraceError", "TraceStep", "Unlink",
    "UnknownProperty", "UnknownProtocol", "Violation", "World", "Write",
    "build", "canonical", "explore", "from_exploration", "get_property", "initial", "protocol", "published",
    "replay", "step", "successors", "valid",
]
