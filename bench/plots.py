"""The plots of ``docs/BENCHMARKS.md``, drawn from the benchmark data with
matplotlib (the ``bench`` extra: ``pip install '.[bench]'``).  Only the
bench imports this module, and only when it draws."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.report import Data, plot_files

COLOURS = {"symmetry": "tab:blue", "no-symmetry": "tab:orange", "spin": "tab:green"}


def draw(data: Data, img_dir: Path) -> list[Path]:
    """Every plot :func:`bench.report.plot_files` names, into ``img_dir``."""
    import matplotlib

    matplotlib.use("Agg")
    img_dir.mkdir(parents=True, exist_ok=True)
    out = []
    for name, _ in plot_files(data):
        path = img_dir / name
        if name.startswith("explorer-"):
            fig = _explorer(data, name.removeprefix("explorer-").removesuffix(".png"))
        else:
            fig = {"proofs.png": _proofs, "writes.png": _writes, "throughput.png": _throughput,
                   "gobuild.png": _gobuild}[name](data)
        title = "QUICK RUN (python -m bench --quick): not benchmark figures" if data["quick"] else None
        if title:
            fig.suptitle(title, color="tab:red", fontsize=10)
        fig.savefig(path, dpi=100, metadata={"Software": None})
        import matplotlib.pyplot as plt

        plt.close(fig)
        out.append(path)
    return out


def _figure(cols: int, width: float, height: float) -> tuple[Any, Any]:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, cols, figsize=(width, height), layout="constrained", squeeze=False)
    return fig, axes[0]


def _explorer(data: Data, protocol: str) -> Any:
    e = data["explorer"]
    lim = e["limits"]
    fig, (ax_states, ax_secs, ax_rss) = _figure(3, 15, 4.5)
    for c in e["curves"]:
        if c["protocol"] != protocol or "skipped" in c:
            continue
        colour = COLOURS[c["engine"]]
        done = [p for p in c["points"] if "stopped" not in p]
        ns = [p["n"] for p in done]
        ax_states.plot(ns, [p["states"] for p in done], "o-", ms=3, color=colour, label=c["label"])
        med = [p["seconds"]["median"] for p in done]
        lo = [p["seconds"]["median"] - p["seconds"]["min"] for p in done]
        hi = [p["seconds"]["max"] - p["seconds"]["median"] for p in done]
        ax_secs.errorbar(ns, med, yerr=[lo, hi], fmt="o-", ms=3, color=colour, label=c["label"])
        ax_rss.plot(ns, [p["peak_rss_mib"] for p in done], "o-", ms=3, color=colour, label=c["label"])
        stop = next((p for p in c["points"] if "stopped" in p), None)
        if stop is not None:
            why = stop["stopped"]["why"]
            ax, y = (ax_rss, lim["memory_gib"] * 1024) if why == "memory" else (ax_secs, lim["seconds"])
            ax.plot([stop["n"]], [y], "x", ms=10, mew=2, color=colour)
            ax.annotate(f"{why}", (stop["n"], y), textcoords="offset points", xytext=(4, -12),
                        color=colour, fontsize=8)
    ax_secs.axhline(lim["seconds"], ls="--", lw=0.8, color="grey")
    ax_rss.axhline(lim["memory_gib"] * 1024, ls="--", lw=0.8, color="grey")
    faults = next(c["faults"] for c in e["curves"] if c["protocol"] == protocol)
    from matplotlib.ticker import MaxNLocator

    for ax, what in ((ax_states, "states"), (ax_secs, "seconds (median, min-max)"), (ax_rss, "peak RSS (MiB)")):
        ax.set_yscale("log")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("N writers")
        ax.set_ylabel(what)
        ax.grid(True, which="major", alpha=0.3)
    ax_states.set_title(f"{protocol}, F={faults}, L={e['entry_length']}")
    ax_secs.set_title(f"x: stopped (limits {lim['seconds']:g} s, {lim['memory_gib']:g} GiB)")
    ax_states.legend(fontsize=8)
    return fig


def _proofs(data: Data) -> Any:
    p = data["proofs"]
    rows = list(p["theorems"]) + [{"theorem": "the whole idemwrite prove", "seconds": p["whole"]["seconds"],
                                   **({"alone_seconds": p["whole"]["alone_seconds"]}
                                      if "alone_seconds" in p["whole"] else {})}]
    fig, (ax,) = _figure(1, 11, 1.2 + 0.26 * len(rows))
    ys = list(range(len(rows)))[::-1]
    med = [r["seconds"]["median"] for r in rows]
    lo = [r["seconds"]["median"] - r["seconds"]["min"] for r in rows]
    hi = [r["seconds"]["max"] - r["seconds"]["median"] for r in rows]
    ax.barh(ys, med, xerr=[lo, hi], color=["tab:blue"] * (len(rows) - 1) + ["tab:purple"],
            label=f"{p['whole']['jobs']} workers (median, min-max)")
    alone = [(y, r["alone_seconds"]) for y, r in zip(ys, rows) if "alone_seconds" in r]
    if alone:
        ax.plot([a for _, a in alone], [y for y, _ in alone], "k|", ms=10, mew=2, label="alone (1 worker)")
    ax.set_yticks(ys, [r["theorem"] for r in rows], fontsize=7)
    ax.set_xscale("log")
    ax.set_xlabel("seconds")
    ax.grid(True, axis="x", alpha=0.3)
    fig.legend(fontsize=8, loc="outside lower center", ncols=2)
    return fig


def _writes(data: Data) -> Any:
    rows = data["writes"]["rows"]
    hand = [r for r in rows if r["case"] == r["baseline"]]
    fig, (ax,) = _figure(1, 10, 4.5)
    width = 0.38
    for i, base in enumerate(hand):
        mine = [r for r in rows if r["baseline"] == base["case"] and r["case"] != base["case"]]
        for j, r in enumerate([base, *mine[:1]]):
            f = r["us"]
            ax.bar(i + (j - 0.5) * width, f["median"], width,
                   yerr=[[f["median"] - f["min"]], [f["max"] - f["median"]]],
                   color="tab:grey" if j == 0 else "tab:blue", label=("by hand" if j == 0 else "idemwrite")
                   if i == 0 else None)
            if j == 1:
                ax.annotate(f"{r['ratio']:.2f}x", (i + 0.5 * width, f["max"]), textcoords="offset points",
                            xytext=(0, 3), ha="center", fontsize=8)
    ax.set_xticks(range(len(hand)), [b["case"].removeprefix("by hand: ") for b in hand], fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("µs per call (median over runs, min-max)")
    ax.set_title("write_entry per protocol (and read_entry) against the same syscalls by hand")
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def _throughput(data: Data) -> Any:
    t = data["throughput"]
    fig, axes = _figure(2, 11, 4)
    for ax, op in zip(axes, ("put", "get")):
        for impl, colour in (("by hand", "tab:grey"), ("GoCache", "tab:blue")):
            rs = [r for r in t["rows"] if r["op"] == op and r["impl"] == impl]
            med = [r["ops_per_s"]["median"] for r in rs]
            ax.errorbar([r["processes"] for r in rs], med,
                        yerr=[[m - r["ops_per_s"]["min"] for m, r in zip(med, rs)],
                              [r["ops_per_s"]["max"] - m for m, r in zip(med, rs)]],
                        fmt="o-", color=colour, label=impl if impl == "by hand" else f"GoCache.{op}")
        ax.set_xscale("log", base=2)
        ax.set_xticks(t["processes"], [str(p) for p in t["processes"]])
        ax.set_xlabel("processes")
        ax.set_ylabel("operations per second (median, min-max)")
        ax.set_title(f"{op}, {t['size']:,}-byte outputs")
        ax.set_ylim(bottom=0)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    return fig


def _gobuild(data: Data) -> Any:
    g = data["gobuild"]
    fig, axes = _figure(2, 11, 4)
    for ax, kind in zip(axes, ("cold", "warm")):
        rows = g[kind]["rows"]
        for i, r in enumerate(rows):
            f = r["seconds"]
            ax.bar(i, f["median"], 0.6, yerr=[[f["median"] - f["min"]], [f["max"] - f["median"]]],
                   color="tab:grey" if r["variant"] == "builtin" else "tab:blue")
            label = f"{r['ratio']:.2f}x" + (f"\n{r['ratio_null']:.2f}x null" if "ratio_null" in r else "")
            ax.annotate(label, (i, f["max"]), textcoords="offset points", xytext=(0, 3), ha="center", fontsize=8)
        ax.set_xticks(range(len(rows)), [r["variant"] for r in rows], fontsize=8)
        ax.set_ylabel("seconds (median, min-max)")
        ax.set_title(f"{kind} {g['target']} ({g[kind]['runs']} runs)", fontsize=9)
        ax.margins(y=0.2)
        ax.grid(True, axis="y", alpha=0.3)
    return fig
