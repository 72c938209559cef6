"""The benchmark plot: latency and throughput against depth and GMACs (bars when one depth was timed),
and aggregate throughput against streams when several stream counts were timed.

Every bar and line is one artifact (its ``label``: model, precision, and for INT8 the calibrator and
kept layers) on one runner, batch and stream count, so two INT8 models of one network never share one.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path


def _variant(r: dict) -> str:
    """The label without the model name: what stays the same along a line across depths."""
    label = r.get("label", f"{r['model']} {r['precision']}")
    return label[len(r["model"]):].strip() if label.startswith(r["model"]) else label


def _streams_suffix(r: dict) -> str:
    return f" x{r['streams']} streams" if r.get("streams", 1) > 1 else ""


def _series(report: dict) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = defaultdict(list)
    for r in report["results"]:
        out[f"{_variant(r)} {_short(r['runner'])} b{r['batch']}{_streams_suffix(r)}"].append(r)
    return {k: sorted(v, key=lambda r: (r["gmacs"] or 0, r["depth"] or 0, r["model"])) for k, v in out.items()}


def _short(runner: str) -> str:
    return runner.replace("onnxruntime", "ORT")


def _stream_series(report: dict) -> dict[str, list[dict]]:
    """Per artifact / runner / batch timed at two or more stream counts: its results by streams."""
    out: dict[str, list[dict]] = defaultdict(list)
    for r in report["results"]:
        out[f"{r.get('label', r['model'])} {_short(r['runner'])} b{r['batch']}"].append(r)
    return {k: sorted(v, key=lambda r: r.get("streams", 1)) for k, v in out.items() if len({r.get("streams", 1) for r in v}) > 1}


def save_plot(report: dict, path: Path) -> Path:
    """Draw the PNG and write it atomically.

    Latency points carry error bars from the lowest to the highest repeat median.
    """
    import matplotlib

    matplotlib.use("Agg")

    from rtdeploy.files import atomic_path

    streams = _stream_series(report)
    depths = {r["depth"] for r in report["results"]}
    if len(depths) == 1 or None in depths:
        fig = _bars(report, streams)  # one depth, or imported models (no depth): lines against depth would mean nothing
    else:
        fig = _lines(report, streams)
    env = report["environment"]
    fig.suptitle(f"rtdeploy bench on {report['settings']['device']}: {env['cpu_model']}"
                 + (f" / {env['gpu'].get('name')}" if env.get("gpu") else ""), fontsize="medium")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    return Path(path)


def _bars(report: dict, streams: dict):
    """Latency and throughput as bars, one per artifact / runner / batch / streams (a single-depth run)."""
    from matplotlib.figure import Figure

    rows = report["results"]
    several = len({r["model"] for r in rows}) > 1
    title = "" if several else rows[0]["model"]
    labels = [f"{r.get('label', r['model'])}\n{_short(r['runner'])} b{r['batch']}{_streams_suffix(r)}" for r in rows]
    width = max(7, 2.2 * len(rows) + 2) + (5 if streams else 0)
    fig = Figure(figsize=(width, 5), constrained_layout=True)
    axes = fig.subplots(1, 3 if streams else 2)
    lat_ax, ips_ax = axes[0], axes[1]
    err = [[r["latency_ms"] - r["repeat_low_ms"] for r in rows], [r["repeat_high_ms"] - r["latency_ms"] for r in rows]]
    lat_ax.bar(labels, [r["latency_ms"] for r in rows], yerr=err, capsize=4, color="tab:blue")
    title = "" if several else rows[0]["model"]
    lat_ax.set(ylabel="latency per batch, ms (whiskers: repeat range)", title=title)
    ips_ax.bar(labels, [r["throughput_ips"] for r in rows], color="tab:green")
    ips_ax.set(ylabel="throughput, images/s (all streams)", title=title)
    for ax in (lat_ax, ips_ax):
        ax.tick_params(axis="x", labelsize="x-small", labelrotation=30)
        ax.grid(True, axis="y", alpha=0.3)
    if streams:
        _streams_axis(axes[2], streams)
    return fig


def _streams_axis(ax, streams: dict) -> None:
    for label, items in streams.items():
        ax.plot([r["streams"] for r in items], [r["throughput_ips"] for r in items], marker="o", label=label)
    ax.set(xlabel="concurrent streams", ylabel="throughput, images/s (all streams)", title="throughput against streams")
    ax.set_xticks(sorted({r["streams"] for items in streams.values() for r in items}))
    ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="x-small", loc="lower right")


def _lines(report: dict, streams: dict):
    """Latency and throughput against depth and against GMACs, one line per series (and against streams)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 12 if streams else 8), constrained_layout=True)
    axes = fig.subplots(3 if streams else 2, 2)
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
    if streams:
        _streams_axis(axes[2][0], streams)
        axes[2][1].axis("off")
    return fig
