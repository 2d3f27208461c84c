"""The ``idemwrite`` command line; the libraries are ``spec``, ``reference`` and ``proofs``."""

__all__: list[str] = []
