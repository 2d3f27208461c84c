"""Model worlds as symbolic states: the abstraction function.

``spec.state.World`` -> :class:`~proofs.symbolic.SymState` with concrete
values (arrays built from K and Store), so a formula (an invariant, a
property) can be evaluated on a state the explorer actually reached, and a
solver state can be compared field by field with the model's.
"""

from __future__ import annotations

import z3

from spec import semantics as S
from spec.fs import Symlink
from spec.state import Buf, Desc, Mapped, Proc, Reg, Size, Status, World, published
from spec.system import System

from .symbolic import SymFS, SymState, SymSystem, Term, errno_code, status_code

# A kind index no program has: ids past the concrete processes are idle.
NO_KIND = 99


def _int_array(values: dict[int, int], default: int) -> Term:
    arr = z3.K(z3.IntSort(), z3.IntVal(default))
    for i, v in sorted(values.items()):
        arr = z3.Store(arr, i, v)
    return arr


def _bool_array(values: dict[int, bool]) -> Term:
    arr = z3.K(z3.IntSort(), z3.BoolVal(False))
    for i, v in sorted(values.items()):
        arr = z3.Store(arr, i, z3.BoolVal(v))
    return arr


def reg_fields(value: Reg) -> dict[str, int | bool]:
    """A model register value as the encoding's fields (those of an unset
    register are left to their defaults; a buffer becomes its length and
    whether it holds no zero byte)."""
    if isinstance(value, Desc):
        # append and lock are fields only where the features ask (the rest are ignored).
        return {"set": True, "ino": value.ino, "off": value.off, "mode": value.mode, "append": value.append,
                "lock": value.lock}
    if isinstance(value, Size):
        return {"n": value.n}
    if isinstance(value, Buf):
        # src (a GET's body's object) is filled in by :func:`abstract`.
        return {"set": True, "len": len(value.data), "nz": 0 not in value.data}
    if isinstance(value, Mapped):
        return {"set": True, "ino": value.ino, "n": value.length}
    return {}


def kind_map(sysm: SymSystem, system: System) -> dict[int, int]:
    """System kind index -> SymSystem kind index (matched by program)."""
    progs = [k.program for k in sysm.kinds]
    return {i: progs.index(k.program) for i, k in enumerate(system.kinds)}


def kind_of_array(sysm: SymSystem, system: System, procs: tuple[Proc, ...]) -> Term:
    """Process id -> SymSystem kind, idle (NO_KIND) past the world's processes."""
    km = kind_map(sysm, system)
    return _int_array({i: km[p.kind] for i, p in enumerate(procs)}, NO_KIND)


def abstract(sysm: SymSystem, system: System, w: World) -> SymState:
    """The symbolic state with ``w``'s values."""
    procs = w.procs
    idx = range(len(procs))
    regs: dict[tuple[str, str], Term] = {}
    for r, f, is_bool in sysm.fields():
        vals: dict[int, int | bool] = {}
        for i in idx:
            k = system.kinds[procs[i].kind]
            value = procs[i].regs[k.reg[r]] if r in k.reg else None
            got = reg_fields(value) if value is not None else {}
            if f == "src" and isinstance(value, Buf):
                got = {"src": body_source(w, value.data)}
            if f in got:
                vals[i] = got[f]
        default = sysm.default(r, f)
        regs[(r, f)] = (_bool_array({i: bool(v) for i, v in vals.items()}) if is_bool
                        else _int_array({i: int(v) for i, v in vals.items()}, default.as_long()))
    priv = {n: _int_array({i: dict(procs[i].private).get(n, -1) for i in idx}, -1) for n in sysm.private_paths}
    # Content past each file's size is unspecified, as in the encoding.
    stores = z3.Array("data@world", z3.IntSort(), z3.IntSort(), z3.IntSort())
    for ino, content in enumerate(w.fs.contents):
        for b, byte in enumerate(file_bytes(content)):
            stores = z3.Store(stores, ino, b, byte)
    names = {n: z3.IntVal(_or_absent(w.fs.lookup(n))) for n in sysm.shared_paths}
    sizes = _int_array({i: len(c.target) if isinstance(c, Symlink) else len(c or b"")
                        for i, c in enumerate(w.fs.contents)}, 0)
    links = {i: sysm.link_targets.index(c.target) for i, c in enumerate(w.fs.contents) if isinstance(c, Symlink)}
    fs = SymFS(names, sizes, stores, z3.IntVal(len(w.fs.contents)), {d: z3.BoolVal(d in w.fs.dirs) for d in sysm.dirs},
               _int_array(links, -1) if S.LINKS in sysm.features else None,
               _int_array(dict(w.fs.locks), 0) if S.LOCKS in sysm.features else None,
               {k: z3.IntVal(_or_absent(None if w.fs.object(k) is None else w.fs.object(k)[0]))  # type: ignore[index]
                for k in sysm.object_keys},
               {k: z3.IntVal(-1 if w.fs.object(k) is None else w.fs.object(k)[1])  # type: ignore[index]
                for k in sysm.object_keys},
               z3.IntVal(w.fs.etags) if S.OBJECTS in sysm.features else None)
    ok = {system.kinds[p.kind].program for p in procs if p.status is Status.OK}
    pub_path = {n: z3.BoolVal(any(any(pp.name == n for pp, _ in prog.publishes) for prog in ok))
                for n in sysm.published_paths()}
    return SymState(
        _int_array({i: procs[i].pc for i in idx}, 0),
        _int_array({i: status_code(procs[i].status) for i in idx}, 0),
        _int_array({i: errno_code(procs[i].last) for i in idx}, 0),
        _int_array({i: procs[i].progress for i in idx}, 0),
        _int_array({i: int(procs[i].began) for i in idx}, 0),
        regs, priv, fs,
        z3.IntVal(w.faults), z3.BoolVal(published(w)), pub_path)


def body_source(w: World, data: bytes) -> int:
    """The object inode a GET's body came from: the model keeps the bytes
    only, the encoding their source (an object's inode, never written
    again).  The first object whose bytes start with ``data``; -1 if none
    (a buffer a local read filled)."""
    for _, ino, _ in w.fs.objects:
        content = w.fs.contents[ino]
        if isinstance(content, bytes) and content.startswith(data):
            return ino
    return -1


def file_bytes(content: bytes | Symlink | None) -> bytes:
    """An inode's bytes (a symlink, or a collected inode, has none)."""
    return content if isinstance(content, bytes) else b""


def _or_absent(ino: int | None) -> int:
    return -1 if ino is None else ino
