"""``rtdeploy bench``: latency and throughput across depths, precisions, backends and batch sizes."""

from __future__ import annotations

import shlex
import sys

import click

from rtdeploy.bench.options import BenchConfig
from rtdeploy.cli.generate import command


@command("bench", BenchConfig)
def bench(**options):
    """Time models: latency percentiles and throughput per model, precision, backend and batch.

    Artifacts (ONNX, FP16/INT8 ONNX, engines) are made through the pipeline's stages in --workdir
    and reused while their manifests match. Every configuration is warmed up and timed in
    --repeats windows interleaved with the others, each running until both --duration and
    --iterations are reached; the headline is the median of the windows' medians, with their
    spread, and a warning flags noisy numbers. Tail percentiles resting on fewer than 10 samples
    beyond them show as n/a.

    \b
    Examples:
      rtdeploy bench --depth 18,50 --backend torch,onnxruntime
      rtdeploy bench --depth all --precision fp32,int8 --duration 2s --markdown bench.md --plot bench.png
      rtdeploy bench --backend tensorrt --precision fp16,int8 --batch 1,8,32 --cuda-graph
      rtdeploy bench --model resnet50.int8.onnx --batch 1,8 --json -
      rtdeploy bench --depth 50 --streams 1,2 --threads 1 --plot streams.png
      rtdeploy bench --model resnet50.fp16.engine --export-profile prof.json --export-times times.json
    """
    from rtdeploy import api
    from rtdeploy.bench.report import terminal_table

    to_stderr = options.get("json") == "-"  # stdout carries the JSON then

    def show(result):
        report = result.report
        click.echo(terminal_table(report), err=to_stderr)
        for s in report["skipped"]:
            click.echo(f"skipped {s['model']} {s['backend']} {s['precision']}: {s['reason']}", err=True)
        for w in report["warnings"]:
            click.echo(f"warning: {w}", err=True)
        for path in result.written:
            click.echo(f"wrote {path}", err=True)

    api.bench(**options, command="rtdeploy " + " ".join(shlex.quote(a) for a in sys.argv[1:]), show=show)
