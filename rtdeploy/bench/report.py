"""Rendering a benchmark report: terminal table, Markdown, JSON and the PNG plot files.

The report itself is the dict :func:`rtdeploy.bench.sweep.run_sweep` returns (schema:
``rtdeploy/bench/schema.json``); everything here only formats it.
"""

from __future__ import annotations

from pathlib import Path

TABLE_COLUMNS = ["artifact", "runner", "batch", "tuned for", "streams", "n", "median ms", "spread", "p90 ms", "p95 ms", "p99 ms",
                 "CV", "img/s", "device ms"]
NOT_AVAILABLE = "n/a"


def fmt_ms(x: float | None) -> str:
    """Milliseconds with about three significant digits ("-" for None)."""
    if x is None:
        return "-"
    return f"{x:.1f}" if x >= 100 else f"{x:.2f}" if x >= 1 else f"{x:.3f}"


def fmt_tail(x: float | None) -> str:
    """A tail percentile: its value, or "n/a" when too few samples lie beyond it to report one."""
    return NOT_AVAILABLE if x is None else fmt_ms(x)


def _pct(x: float) -> str:
    return f"{x * 100:.1f}%"


def table_rows(report: dict) -> list[dict]:
    """One row per result, with the columns of :data:`TABLE_COLUMNS` as display strings."""
    from rtdeploy.bench.notes import tuned_for

    rows = []
    for r in report["results"]:
        h = r["host_ms"]
        opt = tuned_for(r)
        rows.append({
            "artifact": r.get("label", f"{r['model']} {r['precision']}"), "runner": r["runner"], "batch": r["batch"],
            "tuned for": f"batch {opt}" if opt is not None else "", "streams": r.get("streams", 1), "n": h["count"],
            "median ms": fmt_ms(r["latency_ms"]), "spread": _pct(r["repeat_spread"]),
            "p90 ms": fmt_tail(h["p90"]), "p95 ms": fmt_tail(h["p95"]), "p99 ms": fmt_tail(h["p99"]), "CV": _pct(h["cv"]),
            "img/s": f"{r['throughput_ips']:.1f}", "device ms": fmt_ms((r.get("device_ms") or {}).get("median")),
        })
    return rows


def columns(report: dict) -> list[str]:
    """The table's columns: device time only when some result has it, streams only when some result has several,
    "tuned for" only when some TensorRT batch was timed on an engine tuned for another batch."""
    from rtdeploy.bench.notes import tuned_for

    results = report["results"]
    return [c for c in TABLE_COLUMNS
            if (c != "device ms" or any(r.get("device_ms") for r in results))
            and (c != "streams" or any(r.get("streams", 1) > 1 for r in results))
            and (c != "tuned for" or any(tuned_for(r) is not None for r in results))]


def terminal_table(report: dict) -> str:
    """The results as an aligned text table, then the report's notes (one line each)."""
    from rtdeploy.tables import format_table

    text = format_table(table_rows(report), columns(report))
    notes = report.get("notes") or []
    return text + "".join(f"\nnote: {n}" for n in notes)


def streams_rows(report: dict) -> list[dict]:
    """Aggregate throughput against streams, per artifact / runner / batch (only those timed at several stream counts)."""
    groups: dict[tuple, list[dict]] = {}
    for r in report["results"]:
        groups.setdefault((r.get("label", r["model"]), r["runner"], r["batch"]), []).append(r)
    rows = []
    for (label, runner, batch), items in groups.items():
        if len({r.get("streams", 1) for r in items}) < 2:
            continue
        items = sorted(items, key=lambda r: r.get("streams", 1))
        base = items[0]["throughput_ips"]
        for r in items:
            per = r.get("per_stream") or []
            rows.append({"artifact": label, "runner": runner, "batch": batch, "streams": r.get("streams", 1),
                         "img/s (all streams)": f"{r['throughput_ips']:.1f}",
                         "x first": f"{r['throughput_ips'] / base:.2f}" if base > 0 else "-",
                         "median ms": fmt_ms(r["latency_ms"]),
                         "per-stream median ms": " / ".join(fmt_ms(p["median_ms"]) for p in per),
                         "n": r["host_ms"]["count"]})
    return rows


def markdown(report: dict) -> str:
    """A self-contained Markdown report: machine, settings, results, streams, scaling with GMACs, notes."""
    env = report["environment"]
    lines = ["# rtdeploy benchmark", "", f"Run {report['created']}" + (f": `{report['command']}`" if report.get("command") else ""), ""]
    measured = report.get("measured")
    if measured:
        lines += [f"Measured {measured['start']} to {measured['end']} (UTC).", ""]
    lines += ["## Machine", "", *_machine_lines(env), ""]
    lines += ["## Method", "", _method_line(report), ""]
    lines += ["## Results", "", *_md_table(table_rows(report), columns(report)), ""]
    notes = report.get("notes") or []
    if notes:
        lines += [*(f"**Note.** {n}" for n in notes), ""]
    lines += ["n: timed inferences pooled over all windows (and streams). A tail percentile is shown only when at least "
              "10 samples lie beyond it (p90: n >= 100, p95: n >= 200, p99: n >= 1000); otherwise n/a.", ""]
    srows = streams_rows(report)
    if srows:
        lines += ["## Throughput against streams", "",
                  "Images completed by all streams over the measured wall time of the windows; x first: against the "
                  "fewest streams timed. " + _streams_mode_line(report), "", *_md_table(srows, list(srows[0])), ""]
    if report["scaling"]:
        lines += ["## Latency against GMACs", "",
                  "Each series compared with its smallest model: the GMAC ratio is the cost the architecture predicts, "
                  "the latency ratio the cost measured (median of repeats), the fastest-repeat ratio the same from each "
                  "model's least disturbed repeat; per-GMAC (latency ratio / GMAC ratio) above 1 means the deeper model "
                  "costs more per GMAC.", ""]
        rows = [{"artifact": s.get("label", s["model"]), "runner": s["runner"], "batch": s["batch"], "GMACs": f"{s['gmacs']:.3g}",
                 "latency ms": fmt_ms(s["latency_ms"]), "GMAC ratio": f"{s['gmacs_ratio']:.2f}", "latency ratio": f"{s['latency_ratio']:.2f}",
                 "fastest-repeat ratio": f"{s['fastest_ratio']:.2f}", "per-GMAC": f"{s['per_gmac_ratio']:.2f}"} for s in report["scaling"]]
        lines += [*_md_table(rows, list(rows[0])), ""]
    for title, items in (("Skipped", [f"{s['model']} {s['backend']} {s['precision']}: {s['reason']}" for s in report["skipped"]]),
                         ("Warnings", report["warnings"])):
        if items:
            lines += [f"## {title}", "", *(f"- {i}" for i in items), ""]
    return "\n".join(lines)


def _method_line(report: dict) -> str:
    st = report["settings"]
    rules = sorted({(r["settings"].get("warmup_s"), r["settings"].get("min_iterations"), r["settings"].get("min_duration_s"))
                    for r in report["results"] if "min_iterations" in r["settings"]}, key=str)
    length = "; ".join(f"{w * 1000:g} ms warm-up, then at least {d:g} s and at least {n} iterations" for w, n, d in rules) \
        or f"{st['warmup_s'] * 1000:g} ms warm-up"
    return (f"Each configuration: {st['repeats']} timed windows ({length}), interleaved across configurations "
            "(alternating order). Latency is host wall time per inference (time.perf_counter_ns); the headline is the "
            "median of the windows' medians, with the spread (max - min of those medians) / median. Throughput is images "
            "completed / measured wall time of each window (all streams), median over windows. "
            f"Device `{st['device']}`, threads {st['threads'] or 'library default'}"
            + (f" (torch used {st['torch_threads']})" if st.get("torch_threads") else "") + ".")


def _streams_mode_line(report: dict) -> str:
    modes = sorted({f"{r['backend']}: {r['settings']['streams_mode']}" for r in report["results"]
                    if r.get("streams", 1) > 1 and r["settings"].get("streams_mode")})
    return ("Streams run as " + "; ".join(modes) + ".") if modes else ""


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
    from rtdeploy.files import write_json_atomic, write_text_atomic

    written = []
    if json is not None:
        written.append(write_json_atomic(json, report))
    if markdown_path is not None:
        written.append(write_text_atomic(markdown_path, markdown(report) + "\n"))
    if plot is not None:
        from rtdeploy.bench.plot import save_plot

        written.append(save_plot(report, plot))
    return written
