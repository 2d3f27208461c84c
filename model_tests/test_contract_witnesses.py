"""Every contract CrossHair says "holds" can be met, and reaches its point.

``test_crosshair.py`` passes a contract when CrossHair prints nothing
within its time per condition: a bounded search that found no
counterexample.  A contract whose preconditions can never all hold would
pass the same way, and so would one whose search never reaches the branch
the postcondition is about.  So each contract of the "holds" runs
(``spec/fs.py``, ``spec/goentry.py`` and ``spec.contracts``' op and step
contracts) has witnesses here: concrete arguments that meet every ``pre:``
line (evaluated as CrossHair evaluates them, in the function's module with
the arguments bound), after which every ``post:`` line holds, and at least
one witness reaches the contract's *interesting* branch - the case its
postcondition exists for (a zero-extending truncate, a hole, SIGBUS past
the page, EEXIST, a published entry beside a running writer...).

The table must name every contract of those modules: a new contract
without witnesses fails ``test_every_contract_has_witnesses``.
"""

from __future__ import annotations

import inspect
import re
from types import ModuleType
from typing import Any, Callable

import pytest

from spec import CATALOGUE, System, explore
from spec import contracts as C
from spec import fs as F
from spec import goentry as G

MODULES: tuple[ModuleType, ...] = (F, G, C)
# The refuted twin: CrossHair must find its counterexample
# (test_crosshair.test_write_file_inductive_step_is_refuted), and
# test_crosshair.test_write_file_invariant_breaks_on_a_reachable_state
# shows its precondition met on a reachable state.
NOT_A_HOLDS_RUN = {"spec.contracts.write_file_step"}

Args = dict[str, Any]
# A contract's witnesses, and the predicate (arguments, result) -> bool
# naming its interesting branch, with a word on what that branch is.
Witnesses = tuple[list[Args], Callable[[Args, Any], bool], str]

FS2 = F.FileSystem((("a", 0), ("b", 1)), (b"xy", b""), (b"x", b""))
# The object store holding two objects ("k" in inode 0, "m" in inode 1).
FS_OBJ = FS2._replace(objects=(("k", 0, 1), ("m", 1, 2)), etags=2)
AID = bytes(range(32))
LOW = bytes([0x0A]) + bytes(31)  # first byte below 0x10: Go's %02x pads it
GOOD = G.encode(AID, AID[::-1], 5, 7)


def _published_beside_a_running_writer() -> Args:
    """A reachable write-then-truncate state: one writer has returned ok
    (the entry is published) and the other is about to open it."""
    result = explore(System.of(CATALOGUE["write-then-truncate"], 2, readers=0, faults=1, entry_length=C.STEP_LENGTH), [],
                     stop_when_all_violated=False)
    for w in result.worlds():
        s = C.from_world(w, C.STEP_LENGTH)
        for i in (0, 1):
            if s.writers[1 - i].status == "ok" and s.writers[i].status == "run" and s.writers[i].pc == 0:
                return {"content": s.content, "w0": s.writers[0], "w1": s.writers[1], "i": i, "fault": False}
    raise AssertionError("the explorer reached no published entry beside a writer at its open")


WITNESSES: dict[str, Callable[[], Witnesses]] = {
    # spec/fs.py
    "spec.fs.create": lambda: ([{"fs": FS2}], lambda a, r: r[1] == 2, "a new inode after existing ones"),
    "spec.fs.bind": lambda: ([{"fs": FS2, "path": "a", "ino": 1}, {"fs": FS2, "path": "c", "ino": 0}],
                             lambda a, r: a["fs"].lookup(a["path"]) not in (None, a["ino"]), "a name re-pointed"),
    "spec.fs.unbind": lambda: ([{"fs": FS2, "path": "a"}], lambda a, r: a["fs"].lookup("a") is not None,
                               "a name that was there"),
    "spec.fs.set_content": lambda: ([{"fs": FS2, "ino": 0, "data": b"new"}],
                                    lambda a, r: a["fs"].contents[0] != b"new", "content replaced"),
    "spec.fs.sync": lambda: ([{"fs": FS2, "ino": 0}], lambda a, r: a["fs"].durable[0] != a["fs"].contents[0],
                             "bytes not yet durable become so"),
    "spec.fs.write_at": lambda: ([{"old": b"ab", "offset": 4, "data": b"z"}, {"old": b"abcd", "offset": 1, "data": b"x"}],
                                 lambda a, r: a["offset"] > len(a["old"]), "a write past the end leaves a zero hole"),
    "spec.fs.truncate": lambda: ([{"old": b"ab", "n": 5}, {"old": b"abcd", "n": 1}],
                                 lambda a, r: a["n"] > len(a["old"]), "ftruncate zero-extends"),
    "spec.fs.mapped_read": lambda: ([{"current": b"ab", "length": F.PAGE_SIZE + 1}, {"current": b"ab", "length": 3}],
                                    lambda a, r: r is None, "SIGBUS past the last page"),
    "spec.fs.put_object": lambda: ([{"fs": FS_OBJ, "key": "k", "ino": 1}, {"fs": FS_OBJ, "key": "n", "ino": 0}],
                                   lambda a, r: a["fs"].object(a["key"]) is not None, "an object replaced, its ETag new"),
    "spec.fs.delete_object": lambda: ([{"fs": FS_OBJ, "key": "k"}, {"fs": FS_OBJ, "key": "n"}],
                                      lambda a, r: a["fs"].object(a["key"]) is not None, "an object that was there"),
    "spec.fs.valid": lambda: ([{"buf": b"abc", "length": 3}, {"buf": b"a\0c", "length": 3}, {"buf": None, "length": 0}],
                              lambda a, r: r is True, "an entry the reader accepts"),
    # spec/goentry.py
    "spec.goentry.entry_size": lambda: ([{"hash_size": G.HASH_SIZE}], lambda a, r: r == G.ENTRY_SIZE, "Go's 175 bytes"),
    "spec.goentry.encode": lambda: ([{"action_id": AID, "output_id": AID, "size": G.INT64_MAX, "time_ns": G.INT64_MAX},
                                     {"action_id": b"", "output_id": b"", "size": 0, "time_ns": 0}],
                                    lambda a, r: a["size"] == G.INT64_MAX, "numbers at int64's edge round-trip"),
    "spec.goentry.parse": lambda: ([{"data": GOOD, "action_id": AID}, {"data": GOOD[:-1], "action_id": AID}],
                                   lambda a, r: r is not None, "a hit (every post speaks of one)"),
    "spec.goentry.miss_reason": lambda: ([{"data": GOOD, "action_id": AID}, {"data": GOOD, "action_id": AID[::-1]}],
                                         lambda a, r: r == "", "a hit: no reason"),
    "spec.goentry._hex_decode": lambda: ([{"s": b"0aFF"}, {"s": b"0g"}], lambda a, r: r == b"\x0a\xff",
                                         "upper- and lower-case digits decode"),
    "spec.goentry._parse_int64": lambda: ([{"s": b"-9223372036854775808"}, {"s": b"9223372036854775808"}],
                                          lambda a, r: r == -G.INT64_MAX - 1, "int64's least value"),
    "spec.goentry.decimal_field": lambda: ([{"field": b" " * 18 + b"42"}, {"field": b"x" * 20}],
                                           lambda a, r: r == 42, "a padded number"),
    "spec.goentry.id_field": lambda: ([{"field": AID.hex().encode()}, {"field": b"z" * 64}],
                                      lambda a, r: r == AID, "an ID decodes"),
    "spec.goentry.file_name": lambda: ([{"cache_dir": "/c", "id_": LOW, "key": "a"}, {"cache_dir": "/c", "id_": AID, "key": "d"}],
                                       lambda a, r: a["id_"][0] < 0x10, "a first byte below 0x10 (padded to 2 digits)"),
    # spec/contracts.py: the op contracts, the step, the base case
    "spec.contracts.open_op": lambda: (
        [{"content": b"ab", "write": True, "creat": True, "trunc": False, "excl": True},
         {"content": None, "write": False, "creat": False, "trunc": False, "excl": False},
         {"content": b"ab", "write": True, "creat": False, "trunc": True, "excl": False}],
        lambda a, r: r[1] == "EEXIST", "O_CREAT|O_EXCL on an existing file"),
    "spec.contracts.write_op": lambda: ([{"content": b"a", "offset": 3, "n": 2}, {"content": b"abc", "offset": 0, "n": 0}],
                                        lambda a, r: a["n"] > 0 and a["offset"] > len(a["content"]), "a write past the end"),
    "spec.contracts.pwrite_op": lambda: ([{"content": b"", "fd_offset": 1, "at": 2, "n": 3}],
                                         lambda a, r: a["n"] > 0 and a["at"] > len(a["content"]), "a pwrite past the end"),
    "spec.contracts.ftruncate_op": lambda: ([{"content": b"ab", "n": 4}, {"content": b"abc", "n": 0}],
                                            lambda a, r: a["n"] > len(a["content"]), "an extending ftruncate"),
    "spec.contracts.write_then_truncate_step": lambda: (
        [_published_beside_a_running_writer()],
        lambda a, r: (a["w0"], a["w1"])[1 - a["i"]].status == "ok" and a["content"] == C.PAYLOAD[:C.STEP_LENGTH],
        "a published entry and another writer about to open it (where write-file breaks)"),
    "spec.contracts.initial_state": lambda: ([{"name": "write-then-truncate", "writers": C.MAX_WRITERS, "length": 3},
                                             {"name": "write-file", "writers": 1, "length": 1}],
                                            lambda a, r: len(r.writers) == C.MAX_WRITERS, "the most writers allowed"),
}


def _clauses(fn: Callable[..., Any], kind: str) -> list[str]:
    return [m.group(1).strip() for m in re.finditer(rf"^\s*{kind}:\s*(.+)$", fn.__doc__ or "", re.M)]


def _contracts() -> dict[str, Callable[..., Any]]:
    """Every function of MODULES whose docstring has a ``post:`` line."""
    found: dict[str, Callable[..., Any]] = {}
    for mod in MODULES:
        for name, fn in vars(mod).items():
            if inspect.isfunction(fn) and fn.__module__ == mod.__name__ and _clauses(fn, "post"):
                found[f"{mod.__name__}.{name}"] = fn
    return found


def _holds(fn: Callable[..., Any], clause: str, args: Args, result: Any = None) -> bool:
    """A clause evaluated as CrossHair does: in the function's module, with
    the arguments (and ``__return__``) bound."""
    # One namespace: a generator expression in a clause sees only globals.
    return bool(eval(clause, {**fn.__globals__, **args, "__return__": result}))  # noqa: S307 - our own docstrings


def test_every_contract_has_witnesses() -> None:
    """The table names exactly the contracts of the holds runs (and the
    modules have some: the discovery itself is not vacuous)."""
    found = set(_contracts()) - NOT_A_HOLDS_RUN
    assert len(found) >= 20
    assert found == set(WITNESSES), (found - set(WITNESSES), set(WITNESSES) - found)


@pytest.mark.parametrize("name", sorted(WITNESSES))
def test_the_precondition_is_met_and_the_interesting_branch_reached(name: str) -> None:
    """Every witness meets every ``pre:``; then every ``post:`` holds; and
    some witness reaches the branch the postcondition is about."""
    fn = _contracts()[name]
    witnesses, interesting, what = WITNESSES[name]()
    pres, posts = _clauses(fn, "pre"), _clauses(fn, "post")
    reached = False
    for args in witnesses:
        for clause in pres:
            assert _holds(fn, clause, args), f"{name}{args}: precondition {clause!r} not met"
        result = fn(**args)
        for clause in posts:
            assert _holds(fn, clause, args, result), f"{name}{args}: postcondition {clause!r} broken"
        reached = reached or interesting(args, result)
    assert reached, f"{name}: no witness reaches {what}"


def test_an_unsatisfiable_precondition_is_caught() -> None:
    """The known-bad twin: a contract whose preconditions contradict each
    other (CrossHair prints nothing for it) has no witness that meets them."""

    def truncate(old: bytes, n: int) -> bytes:
        """
        pre: n >= 0
        pre: n < 0
        post: len(__return__) == n
        """
        return F.truncate(old, n)

    args = {"old": b"ab", "n": 5}
    assert not all(_holds(truncate, c, args) for c in _clauses(truncate, "pre"))
