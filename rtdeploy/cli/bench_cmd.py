"""``rtdeploy bench``: latency and throughput across depths, precisions, backends and batch sizes."""

from __future__ import annotations

import shlex
import sys

import click

from rtdeploy.cli.common import emit_json, handle_errors, progress_option


@click.command("bench")
@click.option("--depth", default="50", show_default=True, metavar="LIST", help="Depths, comma-separated (18,34,50,101,152; CIFAR 20..110), or 'all' (the five ImageNet depths).")
@click.option("--model", "model", metavar="NAMES|FILES", help="Models by name (resnet18,resnet50: a sweep like --depth), or ONNX files / TensorRT engines to time, exported or imported (comma-separated).")
@click.option("--precision", default="fp32", show_default=True, metavar="LIST", help="fp32, fp16, int8 (comma-separated).")
@click.option("--backend", default="onnxruntime", show_default=True, metavar="LIST", help="torch, onnxruntime, tensorrt (comma-separated).")
@click.option("--device", default="cpu", show_default=True, metavar="cpu|cuda", help="cpu or cuda for torch and onnxruntime (TensorRT always runs on the GPU).")
@click.option("--batch", default="1", show_default=True, metavar="LIST", help="Batch sizes, comma-separated, e.g. 1,8,32.")
@click.option("--warmup", default="200ms", show_default=True, metavar="TIME", help="Warm-up before each timed window, e.g. 200ms, 1s, 0.")
@click.option("--iterations", metavar="N", help="Minimum timed iterations per window and stream  [default: 200 on a GPU, 20 on CPU].")
@click.option("--duration", metavar="TIME", help="Minimum length of each timed window, e.g. 3s (0: none); a window ends when both minima are met  [default: 1s].")
@click.option("--streams", default="1", show_default=True, metavar="LIST", help="Concurrent streams, comma-separated, e.g. 1,2,4: sessions (onnxruntime), CUDA streams (torch), execution contexts (TensorRT).")
@click.option("--repeats", default="3", show_default=True, metavar="N", help="Timed windows per configuration, interleaved across configurations.")
@click.option("--threads", default="0", show_default=True, metavar="N", help="Intra-op threads for torch and onnxruntime (0: library default).")
@click.option("--image-size", metavar="N", help="Input height/width (default: the model's, 224 or 32).")
@click.option("--cuda-graph", is_flag=True, help="TensorRT: capture and replay a CUDA graph.")
@click.option("--channels-last", is_flag=True, help="torch: NHWC memory format.")
@click.option("--compile", "compile_", is_flag=True, help="torch: time torch.compile'd models.")
@click.option("--workdir", metavar="DIR", help="Where artifacts are prepared and reused  [default: ~/.cache/rtdeploy/bench].")
@click.option("--json", "json_out", metavar="FILE", help="Write the report as JSON ('-' for stdout); schema in docs/bench.md.")
@click.option("--markdown", metavar="FILE", help="Write a Markdown report.")
@click.option("--plot", metavar="FILE.png", help="Write a PNG plot of latency and throughput against depth and GMACs.")
@click.option("--export-profile", metavar="FILE", help="TensorRT: per-layer times in trtexec's --exportProfile JSON (a separate profiled run).")
@click.option("--export-times", metavar="FILE", help="TensorRT: per-inference times in trtexec's --exportTimes JSON (a separate run).")
@progress_option()
@handle_errors
def bench(depth, model, precision, backend, device, batch, warmup, iterations, duration, streams, repeats, threads, image_size,
          cuda_graph, channels_last, compile_, workdir, json_out, markdown, plot, export_profile, export_times, progress):
    """Time ResNets: latency percentiles and throughput per depth, precision, backend and batch.

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

    result = api.bench(depth=depth, model=model, precision=precision, backend=backend, device=device, batch=batch,
                       warmup=warmup, iterations=iterations, duration=duration, streams=streams, repeats=repeats, threads=threads,
                       image_size=image_size, cuda_graph=cuda_graph, channels_last=channels_last, compile=compile_,
                       workdir=workdir, json=None if json_out == "-" else json_out, markdown=markdown, plot=plot,
                       export_profile=export_profile, export_times=export_times,
                       progress=progress, command="rtdeploy " + " ".join(shlex.quote(a) for a in sys.argv[1:]))
    report = result.report
    click.echo(terminal_table(report), err=json_out == "-")  # stdout carries the JSON then
    for s in report["skipped"]:
        click.echo(f"skipped {s['model']} {s['backend']} {s['precision']}: {s['reason']}", err=True)
    for w in report["warnings"]:
        click.echo(f"warning: {w}", err=True)
    for path in result.written:
        click.echo(f"wrote {path}", err=True)
    if json_out == "-":
        emit_json(report, "-")
