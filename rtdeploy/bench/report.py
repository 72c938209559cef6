"""Rendering a benchmark report: terminal table, Markdown, JSON and the PNG plot files.

The report itself is the dict :func:`rtdeploy.bench.sweep.run_sweep` returns (schema:
``rtdeploy/bench/schema.json``); everything here only formats it.
"""

from __future__ import annotations

from pathlib import Path

TABLE_COLUMNS = ["model", "runner", "precision", "batch", "median ms", "spread", "p90 ms", "p99 ms", "CV", "img/s", "device ms"]


def fmt_ms(x: float | None) -> str:
    """Milliseconds with about three significant digits."""
    if x is None:
        return "-"
    return f"{x:.1f}" if x >= 100 else f"{x:.2f}" if x >= 1 else f"{x:.3f}"


def _pct(x: float) -> str:
    return f"{x * 100:.1f}%"


def table_rows(report: dict) -> list[dict]:
    """One row per result, with the columns of :data:`TABLE_COLUMNS` as display strings."""
    rows = []
    for r in report["results"]:
        rows.append({
            "model": r["model"], "runner": r["runner"], "precision": r["precision"], "batch": r["batch"],
            "median ms": fmt_ms(r["latency_ms"]), "spread": _pct(r["repeat_spread"]),
            "p90 ms": fmt_ms(r["host_ms"]["p90"]), "p99 ms": fmt_ms(r["host_ms"]["p99"]), "CV": _pct(r["host_ms"]["cv"]),
            "img/s": f"{r['throughput_ips']:.1f}", "device ms": fmt_ms((r.get("device_ms") or {}).get("median")),
        })
    return rows


def terminal_table(report: dict) -> str:
    """The results as an aligned text table (device time only when some result has it)."""
    from rtdeploy.tables import format_table

    columns = [c for c in TABLE_COLUMNS if c != "device ms" or any(r.get("device_ms") for r in report["results"])]
    return format_table(table_rows(report), columns)


def markdown(report: dict) -> str:
    """A self-contained Markdown report: machine, settings, results, scaling with GMACs, notes."""
    env, st = report["environment"], report["settings"]
    lines = ["# rtdeploy benchmark", "", f"Run {report['created']}" + (f": `{report['command']}`" if report.get("command") else ""), ""]
    lines += ["## Machine", "", *_machine_lines(env), ""]
    length = f"{st['iterations']} iterations" if st.get("iterations") else f"{st['duration_s']:g} s"
    lines += ["## Method", "",
              f"Each configuration: {st['repeats']} timed windows of {length}, each after {st['warmup_s'] * 1000:g} ms of warm-up; "
              "windows interleaved across configurations (alternating order). Latency is host wall time per inference "
              "(time.perf_counter_ns); the headline is the median of the windows' medians, with the spread "
              "(max - min of those medians) / median. Throughput is images per second, median over windows.",
              f"Device `{st['device']}`, threads {st['threads'] or 'library default'}"
              + (f" (torch used {st['torch_threads']})" if st.get("torch_threads") else "") + ".", ""]
    lines += ["## Results", "", *_md_table(table_rows(report), [c for c in TABLE_COLUMNS]), ""]
    if report["scaling"]:
        lines += ["## Latency against GMACs", "",
                  "Each series compared with its smallest model: the GMAC ratio is the cost the architecture predicts, "
                  "the latency ratio the cost measured (median of repeats), the fastest-repeat ratio the same from each "
                  "model's least disturbed repeat; per-GMAC (latency ratio / GMAC ratio) above 1 means the deeper model "
                  "costs more per GMAC.", ""]
        rows = [{"runner": s["runner"], "precision": s["precision"], "batch": s["batch"], "model": s["model"], "GMACs": f"{s['gmacs']:.3g}",
                 "latency ms": fmt_ms(s["latency_ms"]), "GMAC ratio": f"{s['gmacs_ratio']:.2f}", "latency ratio": f"{s['latency_ratio']:.2f}",
                 "fastest-repeat ratio": f"{s['fastest_ratio']:.2f}", "per-GMAC": f"{s['per_gmac_ratio']:.2f}"} for s in report["scaling"]]
        lines += [*_md_table(rows, list(rows[0])), ""]
    for title, items in (("Skipped", [f"{s['model']} {s['backend']} {s['precision']}: {s['reason']}" for s in report["skipped"]]),
                         ("Warnings", report["warnings"])):
        if items:
            lines += [f"## {title}", "", *(f"- {i}" for i in items), ""]
    return "\n".join(lines)


def _machine_lines(env: dict) -> list[str]:
    load = lambda la: "/".join(f"{x:.2f}" for x in la) if la else "unknown"  # noqa: E731
    out = [f"- CPU: {env['cpu_model']}, {env['usable_cores']} usable of {env['logical_cores']} logical cores, "
           f"{env['memory_gib']} GiB memory; {env['os']}",
           f"- Load average (1/5/15 min): {load(env['load_average_start'])} at start, {load(env['load_average_end'])} at end"]
    gpu = env.get("gpu")
    if gpu:
        out.append("- GPU: " + ", ".join(f"{k} {v}" for k, v in gpu.items()))
    out.append("- Versions: " + ", ".join(f"{k} {v}" for k, v in env["versions"].items()))
    return out


def _md_table(rows: list[dict], columns: list[str]) -> list[str]:
    if not rows:
        return ["(no results)"]
    out = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    out += ["| " + " | ".join(str(r.get(c, "")) for c in columns) + " |" for r in rows]
    return out


def write_outputs(report: dict, *, json: Path | None = None, markdown_path: Path | None = None, plot: Path | None = None) -> list[Path]:
    """Write the requested report files atomically; returns the paths written."""
    from rtdeploy.artifacts import write_json_atomic, write_text_atomic

    written = []
    if json is not None:
        written.append(write_json_atomic(json, report))
    if markdown_path is not None:
        written.append(write_text_atomic(markdown_path, markdown(report) + "\n"))
    if plot is not None:
        from rtdeploy.bench.plot import save_plot

        written.append(save_plot(report, plot))
    return written
