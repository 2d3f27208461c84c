"""Z3 proofs about the catalogue's protocols (``idemwrite prove``).

- :mod:`proofs.symbolic`   the solver interpreter: ``spec.semantics`` on Z3
  terms (:class:`~proofs.symbolic.Z3Dom`), one transition per step;
- :mod:`proofs.bmc`        bounded model checking of any ``spec.system.System``,
  counterexamples decoded into ``spec.trace`` traces and replayed;
- :mod:`proofs.invariants` the hand-written inductive invariants;
- :mod:`proofs.induction`  initiation / consecution / property checks for
  all N and all L, and vacuity checks on explored states;
- :mod:`proofs.theorems`   the named theorems and how each is settled;
- :mod:`proofs.small_scope` every run of a small System (dropped
  assumptions), by explicit search on ``spec.machine``;
- :mod:`proofs.concrete`   model worlds as symbolic states;
- :mod:`proofs.conformance` the solver's transition against ``spec.machine``;
- :mod:`proofs.cli`        ``idemwrite prove``.

See "What is proved" in ``spec/SPEC.md`` for what is proved, in words.
"""

from .bmc import BmcResult, search
from .theorems import COUNTEREXAMPLE, PROVED, UNKNOWN, Result, Theorem, catalogue, find, run

# ``idemwrite prove`` is proofs.cli.main (not imported here, so that
# ``python -m proofs.cli`` runs without a double import).
__all__ = ["COUNTEREXAMPLE", "PROVED", "UNKNOWN", "BmcResult", "Result", "Theorem", "catalogue", "find", "run", "search"]
