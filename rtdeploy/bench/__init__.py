"""Benchmarks over any runner: warm-up, interleaved repeats, percentiles, reports.

    from rtdeploy.bench import benchmark
    from rtdeploy.bench.options import BenchConfig
    result = benchmark(BenchConfig(depth="18,50", backend="torch,onnxruntime", duration="1s", markdown="bench.md"))
    result.report["results"][0]["latency_ms"]

Modules: ``options`` (parsing, config), ``stoprule`` (when a window ends), ``harness`` (timing loops,
streams), ``stats`` (percentiles and spread), ``backends`` (runners per backend), ``prepare``
(artifacts), ``sweep`` (the whole run), ``exports`` (trtexec's profile and times files),
``results`` / ``naming`` / ``notes`` / ``report`` / ``plot`` (records, their labels and notes, and
their renderings).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from rtdeploy.errors import BenchmarkError
from rtdeploy.library_errors import stage_boundary


@dataclass
class BenchResult:
    """What a benchmark produced.

    Attributes:
        report: the report dict (schema ``rtdeploy/bench/schema.json``).
        written: report files written (JSON, Markdown, PNG).
    """

    report: dict
    written: list[Path] = field(default_factory=list)


@stage_boundary("bench", BenchmarkError)
def benchmark(cfg) -> BenchResult:
    """Run the benchmark :class:`~rtdeploy.bench.options.BenchConfig` asks for.

    Raises:
        RtDeployError: bad options (before anything runs), a missing backend or GPU, or a failed stage.
    """
    from rtdeploy.bench.report import write_outputs
    from rtdeploy.bench.sweep import run_sweep

    cfg.check()
    report = run_sweep(cfg, command=cfg.command)
    exported = [Path(p) for p in (report["exports"]["times"], report["exports"]["profile"]) if p]
    json_file = cfg.json if cfg.json not in (None, "-") else None
    written = write_outputs(report, json=json_file, markdown_path=cfg.markdown, plot=cfg.plot)
    return BenchResult(report, exported + written)


def schema_path() -> Path:
    """The JSON Schema of the report (``rtdeploy/bench/schema.json``)."""
    return Path(__file__).with_name("schema.json")
