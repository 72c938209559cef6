"""Artifact labels (every table and plot tells artifacts apart) and the INT8-on-CPU note, on hand-made records."""

from __future__ import annotations

import pytest

from rtdeploy.bench.naming import assign_labels, base_label
from rtdeploy.bench.notes import CPU_QUANTIZE, int8_cpu_note
from rtdeploy.bench.report import markdown, terminal_table


def rec(precision="fp32", latency=10.0, quant=None, path=None, sha="a" * 64, model="resnet50", backend="onnxruntime",
        device="cpu", batch=1, streams=1, runner="onnxruntime[CPU]"):
    stats = {"count": 30, "min": latency, "mean": latency, "median": latency, "p90": None, "p95": None, "p99": None,
             "max": latency, "std": 0.0, "cv": 0.0, "tail_counts": {"p90": 3, "p95": 1, "p99": 0}}
    return {"id": f"{model}/{backend}/{precision}/b{batch}", "model": model, "depth": 50, "family": "imagenet", "image_size": 224,
            "gmacs": 4.09, "backend": backend, "runner": runner, "precision": precision, "device": device,
            "artifact": {"path": path, "sha256": sha} if path else None, "quantization": quant, "batch": batch,
            "streams": streams, "settings": {}, "latency_ms": latency, "throughput_ips": 1000 / latency,
            "repeat_spread": 0.0, "repeat_low_ms": latency, "repeat_high_ms": latency, "host_ms": stats, "device_ms": None,
            "per_stream": [], "warnings": []}


Q_MAX = {"calibrator": "max", "kept_fp": [], "target": "tensorrt"}
Q_ENT = {"calibrator": "entropy", "kept_fp": ["/layer4/conv2", "/fc/Gemm"], "target": "tensorrt"}


def test_base_label_names_precision_calibrator_and_kept_layers():
    assert base_label("resnet50", "fp16", None) == "resnet50 fp16"
    assert base_label("resnet50", "int8", Q_MAX) == "resnet50 int8 max"
    assert base_label("resnet50", "int8", Q_ENT) == "resnet50 int8 entropy, 2 kept in float (/layer4/conv2, /fc/Gemm)"
    many = {**Q_ENT, "kept_fp": list("abcde")}
    assert base_label("resnet50", "int8", many).endswith("5 kept in float (a, b, c, ...)")


def test_same_calibrator_twice_falls_back_to_file_name_then_hash():
    results = [rec("int8", quant=Q_MAX, path="/x/a.int8.onnx", sha="1" * 64), rec("int8", quant=Q_MAX, path="/y/b.int8.onnx", sha="2" * 64),
               rec("int8", quant=Q_MAX, path="/z/b.int8.onnx", sha="3" * 64), rec("int8", quant=Q_ENT, path="/w/c.onnx")]
    assign_labels(results)
    labels = [r["label"] for r in results]
    assert len(set(labels)) == 4
    assert labels[0] == "resnet50 int8 max [a.int8.onnx]"
    assert labels[1] == "resnet50 int8 max [b.int8.onnx] [22222222]" and labels[2].endswith("[33333333]")
    assert labels[3].startswith("resnet50 int8 entropy") and "[" not in labels[3]


def test_one_artifact_at_two_batches_keeps_its_plain_label():
    results = [rec("int8", quant=Q_MAX, path="/x/a.onnx", batch=1), rec("int8", quant=Q_MAX, path="/x/a.onnx", batch=8)]
    assign_labels(results)
    assert [r["label"] for r in results] == ["resnet50 int8 max"] * 2


def report_of(results):
    assign_labels(results)
    return {"created": "t", "command": None, "measured": {"start": "s", "end": "e"},
            "settings": {"device": "cpu", "repeats": 3, "warmup_s": 0.2, "threads": 1, "torch_threads": None},
            "environment": {"cpu_model": "cpu", "usable_cores": 2, "logical_cores": 2, "memory_gib": 1, "os": "linux",
                            "load_average_start": [1.0, 1.0, 1.0], "load_average_end": [2.0, 1.0, 1.0], "gpu": None,
                            "versions": {"python": "3"}},
            "results": results, "scaling": [], "skipped": [], "warnings": [],
            "notes": [n for n in (int8_cpu_note(results),) if n]}


def test_int8_slower_than_fp32_on_ort_cpu_gets_one_line_everywhere():
    rep = report_of([rec("fp32", 38.6), rec("int8", 54.6, quant=Q_MAX, path="/x/r.int8.onnx")])
    assert len(rep["notes"]) == 1
    note = rep["notes"][0]
    assert "resnet50 b1: 54.6 vs 38.6 ms" in note and "placed for TensorRT" in note and CPU_QUANTIZE in note
    assert terminal_table(rep).splitlines()[-1] == f"note: {note}"
    assert f"**Note.** {note}" in markdown(rep)


@pytest.mark.parametrize("results", [
    [rec("fp32", 38.6), rec("int8", 30.0, quant=Q_MAX)],                                         # INT8 faster
    [rec("fp32", 38.6), rec("int8", 54.6, quant={**Q_MAX, "target": "onnxruntime-cpu"})],        # made for the CPU
    [rec("fp32", 38.6, backend="tensorrt", device="cuda"), rec("int8", 54.6, quant=Q_MAX, backend="tensorrt", device="cuda")],
    [rec("fp32", 38.6, batch=8), rec("int8", 54.6, quant=Q_MAX, batch=1)],                         # not its parent's config
    [rec("int8", 54.6, quant=Q_MAX)],                                                              # no FP32 to compare with
])
def test_no_note_otherwise(results):
    assert int8_cpu_note(results) is None


def test_tail_percentiles_show_na_and_count_column():
    rep = report_of([rec("fp32", 12.0)])
    table = terminal_table(rep)
    header, row = table.splitlines()[0], table.splitlines()[2]
    assert " n " in header and "p99 ms" in header and "30" in row and row.count("n/a") == 3
