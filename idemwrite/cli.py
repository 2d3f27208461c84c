"""The ``idemwrite`` command: check, trace, list, prove, cache, gocacheprog.

``check``, ``trace`` and ``list`` run the specification's explorer
(``idemwrite.commands``); ``prove`` runs the Z3 proofs (``proofs.cli``);
``cache`` and ``gocacheprog`` are the reference implementation's tools
(``reference.cli``).  The last three are dispatched here, before anything
else is imported: their own parsers take every argument, and the go command
waits for a GOCACHEPROG server to start, so it must not pay for importing
the explorer.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # typing costs milliseconds at every GOCACHEPROG start
if TYPE_CHECKING:
    from typing import Sequence

DELEGATED = ("prove", "cache", "gocacheprog")


def delegate(command: str, rest: list[str]) -> int:
    """Run a delegated subcommand with its own argument parser."""
    if command == "prove":
        from proofs.cli import main as prove_main

        return prove_main(rest)
    from reference import cli as ref_cli

    return ref_cli.cache_main(rest) if command == "cache" else ref_cli.gocacheprog_main(rest)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in DELEGATED:
        return delegate(args[0], args[1:])
    from .commands import main as commands_main

    return commands_main(args)


def run_main() -> None:
    """What the ``idemwrite`` command (``scripts/idemwrite``) runs for
    every subcommand but ``gocacheprog``, which it sends straight to
    ``reference.gocacheprog`` (as ``delegate`` does here)."""
    sys.exit(main())


if __name__ == "__main__":
    run_main()
