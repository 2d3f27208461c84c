"""Hypothesis settings profiles for the model tests.

``ci`` (the default) is deterministic and small enough for ``make test``;
``deep`` (``make test-deep`` sets ``HYPOTHESIS_PROFILE=deep``) runs many more
examples and longer programs, with a fresh random seed each run.  Neither
writes an example database: nothing a test run makes lands in the repository
(a failure is reproduced from the printed program, not from ``.hypothesis/``).

Hypothesis still keeps other files (its cache of the constants in the code
under test, Unicode tables) in a storage directory, by default
``.hypothesis/`` in the working directory - the repository.  It is moved
here to the user's cache directory (``$XDG_CACHE_HOME/idemwrite/hypothesis``,
else ``~/.cache/...``), unless ``HYPOTHESIS_STORAGE_DIRECTORY`` names one;
``test_conftest.py`` checks that a run leaves no ``.hypothesis/`` behind.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings
from hypothesis.configuration import set_hypothesis_home_dir


def storage_home() -> str:
    """Where Hypothesis keeps its files: outside the repository."""
    named = os.environ.get("HYPOTHESIS_STORAGE_DIRECTORY")
    if named:
        return named
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(cache, "idemwrite", "hypothesis")


set_hypothesis_home_dir(storage_home())

PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")

settings.register_profile(
    "ci",
    database=None,
    derandomize=True,  # the same examples every run: a red CI is reproducible
    deadline=None,  # real file-system calls have no useful per-example deadline
    max_examples=60,
    stateful_step_count=40,
    print_blob=False,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "deep",
    database=None,
    deadline=None,
    max_examples=1000,  # the stateful machines multiply this (see their TestCase settings)
    stateful_step_count=120,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(PROFILE)
