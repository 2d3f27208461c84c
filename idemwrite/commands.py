"""The explorer's commands: ``idemwrite check``, ``trace``, ``list`` and ``lift``.

Every result is data first (``--json``), then a table for people.  Exit
status: 0 when every verdict is the one the catalogue declares, 1 when one
differs, 2 for bad usage.  (``prove``, ``cache`` and ``gocacheprog`` are
dispatched by ``idemwrite.cli`` before this module is imported; they appear
in this parser only for ``--help``.)
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Sequence

from spec.check import Result, Scenario, answer, applicable, declared, default_scenarios, groups
from spec.explore import explore
from spec.lift import Lifted, LiftError, lift, render
from spec.lift import to_json as lift_json
from spec.properties import PROPERTIES, UnknownProperty, get_property
from spec.protocols import CATALOGUE, Protocol, UnknownProtocol
from spec.report import markdown, text_table, violations_text
from spec.ops import Role
from spec.programs import go_read_entry_at
from spec.semantics import OBJECTS
from spec.system import SetupError, System
from spec.trace import Trace, from_exploration, markdown_table, mermaid, show, table, to_json

from .progress import Progress

WRITERS = tuple(p.name for p in CATALOGUE.writers())
READERS = tuple(p.name for p in CATALOGUE.readers())


def _bounds(p: argparse.ArgumentParser, *, faults_many: bool) -> None:
    p.add_argument("--writers", "-N", type=int, default=None,
                   help="writer processes (default 3, or fewer where the protocol says so)")
    p.add_argument("--readers", "-R", type=int, default=1, help="reader processes (default 1)")
    p.add_argument("--reader", default=None, choices=READERS, help="reader protocol (default: the protocol's own, mmap-read for mmap-reader-never-faults)")
    if faults_many:
        p.add_argument("--faults", "-F", type=int, action="append", help="fault budget; repeatable (default: 0 and 1)")
    else:
        p.add_argument("--faults", "-F", type=int, default=None, help="fault budget (default: the smallest of 0, 1, 2 that shows a violation)")
    p.add_argument("--entry-length", "-L", type=int, default=2, help="bytes per entry (default 2)")
    p.add_argument("--granularity", choices=("byte", "write"), default="byte", help="a write lands a byte a step, or whole (default byte)")
    p.add_argument("--crashes", type=int, choices=(0, 1), default=None, help="let the machine lose power once (default: only for published-entry-survives-crash)")


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="idemwrite", description="Model, check, prove and run protocols for writing shared cache files.")
    sub = ap.add_subparsers(dest="command", required=True)
    c = sub.add_parser("check", help="explore every interleaving; verdict table of protocols x properties")
    c.add_argument("--protocol", "-p", action="append", choices=WRITERS, help="writer protocol; repeat for a mix (default: the whole catalogue)")
    c.add_argument("--property", "-P", action="append", choices=list(PROPERTIES), help="property to check; repeatable (default: all that apply)")
    _bounds(c, faults_many=True)
    fmt = c.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="results as JSON")
    fmt.add_argument("--markdown", action="store_true", help="verdict table and counterexamples as Markdown")
    t = sub.add_parser("trace", help="the shortest counterexample of one property")
    t.add_argument("protocols", nargs="+", choices=WRITERS, metavar="PROTOCOL", help="writer protocol(s): " + ", ".join(WRITERS))
    t.add_argument("--property", "-P", required=True, choices=list(PROPERTIES))
    _bounds(t, faults_many=False)
    tf = t.add_mutually_exclusive_group()
    tf.add_argument("--json", action="store_true")
    tf.add_argument("--markdown", action="store_true")
    tf.add_argument("--mermaid", action="store_true", help="a Mermaid sequence diagram")
    t.add_argument("--replay", action="store_true", help="also replay it on real files in a temporary directory")
    sub.add_parser("list", help="the catalogue: every protocol as pseudo-code, with its claims")
    lf = sub.add_parser("lift", help="turn an strace log of a real program into protocol programs (and check them)",
                        description="Lift the calls a program made, as recorded by strace -f -o LOG -e "
                                    "trace=%file,%desc,fsync,fdatasync,flock PROGRAM, into one program per "
                                    "distinct sequence of calls on the selected files.")
    lf.add_argument("logs", nargs="+", metavar="LOG",
                    help="the log; several files, or the prefix of strace -ff's LOG.<pid> files")
    lf.add_argument("--path", action="append", default=[], metavar="GLOB",
                    help="lift the calls on names matching GLOB (fnmatch on the whole name; repeatable; "
                         "default: every regular file written)")
    lf.add_argument("--check", action="store_true",
                    help="run the explorer on each program at the default bounds (writers N=3 R=1, F=0 and 1; "
                         "readers against write-then-truncate)")
    lf.add_argument("--json", action="store_true", help="the programs (and verdicts) as JSON")
    for name, what in (("prove", "Z3 proofs (see `idemwrite prove --help`)"), ("cache", "inspect a Go build cache directory"), ("gocacheprog", "serve GOCACHEPROG for the go command")):
        s = sub.add_parser(name, help=what, add_help=False)
        s.add_argument("rest", nargs=argparse.REMAINDER)
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        if args.command == "check":
            return cmd_check(args)
        if args.command == "trace":
            return cmd_trace(args)
        if args.command == "list":
            return cmd_list()
        if args.command == "lift":
            return cmd_lift(args)
        return _delegate(args.command, list(args.rest))
    except (UnknownProtocol, UnknownProperty, SetupError, LiftError, LogNotFound) as e:
        print(f"idemwrite: error: {e}", file=sys.stderr)
        return 2


def _delegate(command: str, rest: list[str]) -> int:
    from .cli import delegate

    return delegate(command, rest)


def _writers(args: argparse.Namespace, protocols: Sequence[Protocol]) -> int:
    """``--writers``, or the protocols' own default (3, or fewer where a
    protocol lowers it; at least one per protocol)."""
    if args.writers is not None:
        return int(args.writers)
    return max(len(protocols), min(p.writer_count(3) for p in protocols))


def _variants(protocols: Sequence[Protocol]) -> int:
    """How many versions of the bytes the writers of a mix write."""
    return max(p.variants for p in protocols)


def _scenarios(args: argparse.Namespace) -> list[Scenario]:
    budgets = args.faults or [0, 1]
    if not args.protocol:
        out = default_scenarios(3 if args.writers is None else args.writers, args.readers, args.entry_length,
                                args.granularity, budgets)
        if args.crashes is not None:
            out = [s for s in out if s.system.crashes == args.crashes]
        if args.reader:
            out = [s for s in out if CATALOGUE[args.reader].program in s.system.reader_programs()]
        return [s for s in out if not args.property or s.property.name in args.property]
    out = []
    writers = [CATALOGUE[n] for n in dict.fromkeys(args.protocol)]
    for f in budgets:
        reader = CATALOGUE[args.reader].program if args.reader else writers[0].reader
        crashes = args.crashes if args.crashes is not None else int(bool(args.property) and all(get_property(p).after_crash for p in args.property))
        system = System.of(writers, _writers(args, writers), args.readers, reader, faults=f,
                           entry_length=args.entry_length, granularity=args.granularity, crashes=crashes,
                           variants=_variants(writers))
        for prop in [get_property(p) for p in args.property] if args.property else applicable(system):
            expected, reason = declared(system, prop)
            out.append(Scenario(system, prop, expected, reason))
    return out


def timed_run(scenarios: list[Scenario], progress: Progress | None = None) -> list[Result]:
    """Answer every scenario (each system explored once), timing each
    exploration: the specification reads no clock, its caller does."""
    answers: dict[tuple[System, str], Result] = {}
    for system, group in groups(scenarios).items():
        started = time.perf_counter()
        results = answer(system, group, None if progress is None else progress.explorer)
        seconds = time.perf_counter() - started
        for r in results:
            answers[(system, r.scenario.property.name)] = replace(r, seconds=seconds)
    return [answers[(s.system, s.property.name)] for s in scenarios]


def cmd_check(args: argparse.Namespace) -> int:
    progress = Progress(enabled=not args.json)
    try:
        results = timed_run(_scenarios(args), progress)
    finally:
        progress.done()
    bad = [r for r in results if not r.ok]
    if args.json:
        print(json.dumps({"results": [r.to_json() for r in results]}, indent=1))
    elif args.markdown:
        print(markdown(results, timings=True))
        print()
        print(violations_text(results, md=True))
    else:
        print(text_table(results))
        print()
        print(violations_text(results))
        print(_summary(results, bad))
    return 1 if bad else 0


def _summary(results: list[Result], bad: list[Result]) -> str:
    states = sum(r.states for r in results)
    if not bad:
        return f"{len(results)} verdicts, all as the catalogue declares ({states} states explored in all)."
    return f"{len(bad)} of {len(results)} verdicts differ from the catalogue's declarations."


def _find_trace(args: argparse.Namespace) -> Trace | None:
    prop = get_property(args.property)
    writers = [CATALOGUE[n] for n in dict.fromkeys(args.protocols)]
    reader = CATALOGUE[args.reader].program if args.reader else writers[0].reader_for(prop)
    progress = Progress(enabled=not args.json)
    for f in [args.faults] if args.faults is not None else [0, 1, 2]:
        crashes = args.crashes if args.crashes is not None else int(prop.after_crash)
        system = System.of(writers, _writers(args, writers), args.readers, reader, faults=f,
                           entry_length=args.entry_length, granularity=args.granularity, crashes=crashes,
                           variants=_variants(writers))
        try:
            ex = explore(system, [prop], progress=progress.explorer)
        finally:
            progress.done()
        if prop.name in ex.violations:
            return from_exploration(ex, prop)
    return None


def cmd_trace(args: argparse.Namespace) -> int:
    get_property(args.property)
    trace = _find_trace(args)
    if trace is None:
        print(f"no counterexample: {args.property} holds for {' + '.join(args.protocols)} within these bounds", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(to_json(trace), indent=1))
    elif args.markdown:
        print(markdown_table(trace))
    elif args.mermaid:
        print(mermaid(trace))
    else:
        s = trace.system.describe()
        print(f"{args.property} violated by {' + '.join(s['protocols'])} (N={s['writers']} R={s['readers']} "
              f"reader={s['reader']} F={s['faults']} L={s['entry_length']} {s['granularity']}), {len(trace.steps)} steps:")
        print(table(trace))
    if args.replay:
        print()
        if OBJECTS in trace.system.features:
            # The OS interpreter has no object store to ask (reference.syscalls.RemoteOperationError).
            print("idemwrite: error: --replay runs a trace on real files, and this one makes object-store "
                  "requests, which only the model, BMC and SPIN run", file=sys.stderr)
            return 2
        print(_replay(trace))
    return 0


def _replay(trace: Trace) -> str:
    """The trace replayed on real files, next to the model's files."""
    from reference.replay import replay_until_crash
    from spec.trace import rows

    model_rows = rows(trace)
    with tempfile.TemporaryDirectory(prefix="idemwrite-replay-") as d:
        real, stopped = replay_until_crash(trace, Path(d))
    lines = [f"replayed on real files ({len(real)} steps); the entry after each step, model | real:"]
    agree = True
    for r, files in zip(model_rows, real):
        m, o = dict(r.files).get("entry"), dict(files).get("entry")
        agree &= dict(r.files) == dict(files)
        lines.append(f"  {r.step:>3} {r.process:<3} {show(m):<24} | {show(o)}{'' if dict(r.files) == dict(files) else '   <- differs'}")
    lines.append("the real files agree with the model at every step replayed" if agree else "the real files DIFFER from the model")
    if stopped is not None:
        lines.append(f"replay stopped: {stopped}")
    return "\n".join(lines)


def cmd_list() -> int:
    for p in CATALOGUE:
        print(f"{p.name} ({p.program.role.value}): {p.program.summary}")
        if p.source is not None:
            print(f"  source: {p.source.cite()}")
        if p.variants > 1:
            print(f"  its writers may write {p.variants} different versions of the bytes")
        for c in p.claims:
            print(f"  claims {c.property.name}: {_claim_text(c.holds_up_to)} - {c.reason}")
        print("  " + p.program.listing().replace("\n", "\n  "))
        print()
    return 0


def _claim_text(up_to: int | None) -> str:
    if up_to is None:
        return "holds at every fault budget"
    return "violated even without faults" if up_to < 0 else f"holds up to F={up_to}, violated beyond"


# ------------------------------------------------------------ lift

# What a lifted reader is checked against: the catalogue's default writer.
LIFT_WRITER = "write-then-truncate"


class LogNotFound(OSError):
    """A LOG argument names no file, and no strace -ff files LOG.<pid>."""


def read_logs(names: Sequence[str]) -> list[tuple[str, str]]:
    """Each log's name and text: a file, or every ``NAME.<pid>`` file of
    an ``strace -ff -o NAME`` run, in process-id order."""
    out: list[tuple[str, str]] = []
    for name in names:
        p = Path(name)
        files = [p] if p.is_file() else sorted(
            (f for f in p.parent.glob(p.name + ".*") if f.suffix[1:].isdigit() and f.is_file()),
            key=lambda f: int(f.suffix[1:]))
        if not files:
            raise LogNotFound(f"{name}: no such file, and no strace -ff files {name}.<pid>")
        out.extend((str(f), f.read_text(errors="replace")) for f in files)
    return out


def lift_scenarios(lifted: Lifted, fault_budgets: Sequence[int] = (0, 1)) -> list[Scenario]:
    """Each lifted program at the default bounds, as ``idemwrite check -p``
    would ask: a writer with 3 writers and the default reader, a reader
    with 3 writers of the catalogue's default writer."""
    out: list[Scenario] = []
    for lp in lifted.programs:
        for f in fault_budgets:
            if lp.program.role is Role.WRITER:
                # The default reader, reading where the writer publishes.
                reader = go_read_entry_at(lp.program.publishes[0][0])
                system = System.of(lp.program, 3, 1, reader, faults=f)
            else:
                system = System.of(CATALOGUE[LIFT_WRITER], 3, 1, lp.program, faults=f)
            for prop in applicable(system):
                expected, reason = declared(system, prop)
                out.append(Scenario(system, prop, expected, reason))
    return out


def cmd_lift(args: argparse.Namespace) -> int:
    lifted = lift(read_logs(args.logs), args.path)
    results: list[Result] = []
    if args.check:
        progress = Progress(enabled=not args.json)
        try:
            results = timed_run(lift_scenarios(lifted), progress)
        finally:
            progress.done()
    bad = [r for r in results if not r.ok]
    if args.json:
        data = lift_json(lifted)
        if args.check:
            data["results"] = [r.to_json() for r in results]
        print(json.dumps(data, indent=1))
        return 1 if bad else 0
    print(render(lifted))
    if args.check:
        print()
        if any(lp.program.role is Role.READER for lp in lifted.programs):
            print(f"readers are checked with writers of {LIFT_WRITER}, the catalogue's default writer")
        print(text_table(results))
        print()
        print(violations_text(results))
        states = sum(r.states for r in results)
        print(f"{len(results)} verdicts on {len(lifted.programs)} lifted programs ({states} states explored in all).")
    return 1 if bad else 0
