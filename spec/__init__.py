"""idemwrite's executable specification: pure, no I/O, no clocks.

Write a protocol as a :class:`Program` of file-system operations
(``spec.ops``), say who runs it in a :class:`System`, and ask
:func:`explore` whether it keeps a property in every interleaving::

    from spec import CATALOGUE, System, explore
    result = explore(System.of(CATALOGUE["write-file"], 2, readers=0))
    result.verdict("published-entry-stays-complete")   # 'violated'

The layers: ``spec.ops`` (the instruction language), ``spec.semantics``
(each operation's meaning, stated once), ``spec.machine`` (that meaning on
Python values), ``spec.programs`` and ``spec.protocols`` (the catalogue),
``spec.properties``, ``spec.explore``, ``spec.check`` (the verdict matrix)
and ``spec.trace`` (counterexamples and their renderings).
"""

from .explore import Exploration, Violation, explore
from .ops import Program, ProgramError, Role
from .properties import PROPERTIES, Property, UnknownProperty
from .protocols import CATALOGUE, Catalogue, Claim, Protocol, UnknownProtocol
from .state import World
from .system import Process, SetupError, System
from .trace import Trace, TraceError, from_exploration, replay

__all__ = [
    "CATALOGUE", "PROPERTIES",
    "Catalogue", "Claim", "Exploration", "Process", "Program", "ProgramError", "Property", "Protocol", "Role",
    "SetupError", "System", "Trace", "TraceError", "UnknownProperty", "UnknownProtocol", "Violation", "World",
    "explore", "from_exploration", "replay",
]
