"""Model worlds as symbolic states: the abstraction function.

``spec.machine.World`` -> :class:`~proofs.symbolic.SymState` with concrete
values (arrays built from K and Store), so a formula (an invariant, a
property) can be evaluated on a state the explorer actually reached, and a
solver state can be compared field by field with the model's.
"""

from __future__ import annotations

import z3  # type: ignore[import-untyped]

from spec.machine import Config, Proc, World, published
from spec.ops import Outcome

from .symbolic import BUF, FD, MAP, SIZE, SymFS, SymState, System, errno_code, status_code

# A kind index no program has: ids past the concrete processes are idle.
NO_KIND = 99


def _int_array(values: dict[int, int], default: int) -> z3.ArrayRef:
    arr: z3.ArrayRef = z3.K(z3.IntSort(), z3.IntVal(default))
    for i, v in sorted(values.items()):
        arr = z3.Store(arr, i, v)
    return arr


def _bool_array(values: dict[int, bool]) -> z3.ArrayRef:
    arr: z3.ArrayRef = z3.K(z3.IntSort(), z3.BoolVal(False))
    for i, v in sorted(values.items()):
        arr = z3.Store(arr, i, z3.BoolVal(v))
    return arr


def _reg_fields(cls: str, value: tuple[object, ...]) -> dict[str, int | bool]:
    """A model register value as the encoding's fields."""
    if cls == SIZE:
        return {"n": int(value[0]) if value else -1}  # type: ignore[call-overload]
    if not value:
        return {}
    if cls == FD:
        return {"set": True, "ino": int(value[0]), "off": int(value[1]), "mode": int(value[2])}  # type: ignore[call-overload]
    if cls == BUF:
        buf = value[0]
        assert isinstance(buf, bytes)
        return {"set": True, "len": len(buf), "nz": 0 not in buf}
    if cls == MAP:
        return {"set": True, "ino": int(value[0]), "n": int(value[1])}  # type: ignore[call-overload]
    raise ValueError(f"unknown register class {cls!r}")


def kind_map(sysm: System, cfg: Config) -> dict[int, int]:
    """Config kind index -> System kind index (matched by protocol name)."""
    names = [k.protocol for k in sysm.kinds]
    return {i: names.index(k.protocol) for i, k in enumerate(cfg.kinds)}


def kind_of_array(sysm: System, cfg: Config, procs: tuple[Proc, ...]) -> z3.ArrayRef:
    """Process id -> System kind, idle (NO_KIND) past the world's processes."""
    km = kind_map(sysm, cfg)
    return _int_array({i: km[p.kind] for i, p in enumerate(procs)}, NO_KIND)


def abstract(sysm: System, cfg: Config, w: World) -> SymState:
    """The symbolic state with ``w``'s values."""
    procs = w.procs
    idx = range(len(procs))
    regs: dict[tuple[str, str], z3.ArrayRef] = {}
    for r, f, is_bool in sysm.fields():
        cls = sysm.reg_class[r]
        vals: dict[int, object] = {}
        for i in idx:
            k = cfg.kinds[procs[i].kind]
            v = procs[i].regs[k.reg[r]] if r in k.reg else ()
            got = _reg_fields(cls, v)
            if f in got:
                vals[i] = got[f]
        default = -1 if (cls, f) == (SIZE, "n") else 0
        regs[(r, f)] = _bool_array({i: bool(v) for i, v in vals.items()}) if is_bool else _int_array({i: int(v) for i, v in vals.items()}, default)  # type: ignore[call-overload]
    priv = {n: _int_array({i: dict(procs[i].private).get(n, -1) for i in idx}, -1) for n in sysm.private_paths}
    # Content past each file's size is unspecified, as in the encoding.
    stores: z3.ArrayRef = z3.Array("data@world", z3.IntSort(), z3.IntSort(), z3.IntSort())
    for ino, content in enumerate(w.fs.contents):
        for b, byte in enumerate(content or b""):
            stores = z3.Store(stores, ino, b, byte)
    names = {n: z3.IntVal(w.fs.lookup(n) if w.fs.lookup(n) is not None else -1) for n in sysm.shared_paths}
    sizes = _int_array({i: len(c or b"") for i, c in enumerate(w.fs.contents)}, 0)
    ok_kinds = {cfg.kinds[p.kind].protocol for p in procs if p.status == Outcome.OK.value}
    pub_path = {n: z3.BoolVal(any(k.protocol in ok_kinds and any(pp.name == n for pp, _ in k.program.publishes)
                                  for k in cfg.kinds)) for n in sysm.published_paths()}
    return SymState(
        _int_array({i: procs[i].pc for i in idx}, 0),
        _int_array({i: status_code(procs[i].status) for i in idx}, 0),
        _int_array({i: errno_code(procs[i].last) for i in idx}, 0),
        _int_array({i: procs[i].progress for i in idx}, 0),
        _int_array({i: procs[i].began for i in idx}, 0),
        regs, priv, SymFS(names, sizes, stores, z3.IntVal(len(w.fs.contents))),
        z3.IntVal(w.faults), z3.BoolVal(published(w)), pub_path)
