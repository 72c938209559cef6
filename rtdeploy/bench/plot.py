"""The benchmark plot: latency and throughput against depth and GMACs (bars when one depth was timed)."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path


def _series(report: dict) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = defaultdict(list)
    for r in report["results"]:
        out[f"{r['runner']} {r['precision']} b{r['batch']}"].append(r)
    return {k: sorted(v, key=lambda r: (r["gmacs"] or 0, r["depth"] or 0, r["model"])) for k, v in out.items()}


def save_plot(report: dict, path: Path) -> Path:
    """Draw a 2x2 PNG (latency / throughput against depth / GMACs) and write it atomically.

    Latency points carry error bars from the lowest to the highest repeat median.
    """
    import matplotlib

    matplotlib.use("Agg")

    from rtdeploy.artifacts import atomic_path

    depths = {r["depth"] for r in report["results"]}
    if len(depths) == 1 or None in depths:
        fig = _bars(report)  # one depth, or imported models (no depth): lines against depth would not mean anything
    else:
        fig = _lines(report)
    env = report["environment"]
    fig.suptitle(f"rtdeploy bench on {report['settings']['device']}: {env['cpu_model']}"
                 + (f" / {env['gpu'].get('name')}" if env.get("gpu") else ""), fontsize="medium")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    return Path(path)


def _bars(report: dict):
    """Latency and throughput as bars, one per runner / precision / batch (a single-depth run)."""
    from matplotlib.figure import Figure

    rows = [r for items in _series(report).values() for r in items]
    several = len({r["model"] for r in rows}) > 1
    labels = [(f"{r['model']}\n" if several else "") + f"{r['precision']} b{r['batch']}\n{r['runner'].replace('onnxruntime', 'ORT')}"
              for r in rows]
    fig = Figure(figsize=(max(7, 2.2 * len(rows) + 2), 4.5), constrained_layout=True)
    lat_ax, ips_ax = fig.subplots(1, 2)
    err = [[r["latency_ms"] - r["repeat_low_ms"] for r in rows], [r["repeat_high_ms"] - r["latency_ms"] for r in rows]]
    lat_ax.bar(labels, [r["latency_ms"] for r in rows], yerr=err, capsize=4, color="tab:blue")
    title = "" if several else rows[0]["model"]
    lat_ax.set(ylabel="latency per batch, ms (whiskers: repeat range)", title=title)
    ips_ax.bar(labels, [r["throughput_ips"] for r in rows], color="tab:green")
    ips_ax.set(ylabel="throughput, images/s", title=title)
    for ax in (lat_ax, ips_ax):
        ax.tick_params(axis="x", labelsize="small")
        ax.grid(True, axis="y", alpha=0.3)
    return fig


def _lines(report: dict):
    """Latency and throughput against depth and against GMACs, one line per series."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 8), constrained_layout=True)
    axes = fig.subplots(2, 2)
    for label, items in _series(report).items():
        depth = [r["depth"] for r in items]
        gmacs = [r["gmacs"] or 0 for r in items]
        lat = [r["latency_ms"] for r in items]
        err = [[r["latency_ms"] - r["repeat_low_ms"] for r in items], [r["repeat_high_ms"] - r["latency_ms"] for r in items]]
        ips = [r["throughput_ips"] for r in items]
        for col, x in ((0, depth), (1, gmacs)):
            axes[0][col].errorbar(x, lat, yerr=err, marker="o", capsize=3, label=label)
            axes[1][col].plot(x, ips, marker="o", label=label)
    for col, xlabel in ((0, "ResNet depth"), (1, "GMACs per image")):
        axes[0][col].set(xlabel=xlabel, ylabel="latency per batch, ms (median of repeats)")
        axes[1][col].set(xlabel=xlabel, ylabel="throughput, images/s")
        axes[0][col].set_yscale("log")  # batch 1 and batch 32 latencies differ by orders of magnitude
        for row in (0, 1):
            axes[row][col].grid(True, which="both", alpha=0.3)
    depths = sorted({r["depth"] for r in report["results"]})
    for row in (0, 1):
        axes[row][0].set_xticks(depths)
    for col in (0, 1):
        axes[1][col].set_ylim(bottom=0)
    axes[1][0].legend(fontsize="small", loc="upper right")  # throughput falls with depth: that corner is free
    return fig
