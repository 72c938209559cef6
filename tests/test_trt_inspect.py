"""`rtdeploy inspect` and the layer report on REAL TensorRT engine-inspector output.

The files are ../shared/reference/trt-engine-graphs/*.graph.json (real `trtexec --exportLayerInfo`
output from NVIDIA's TREx examples; see that folder's README.md, which also gives the counts a
correct check must reach, machine-readable in expected-counts.json). TensorRT 11's form and the
fallen-back copies are derived by tests/trt_stubs/refdata.py (the README says what of 11.x is
confirmed; where it is not, both spellings are tested). No TensorRT or GPU is needed.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "trt_stubs"))

import refdata  # noqa: E402

from rtdeploy.trt.layer_report import build_report, dtype_of, fallbacks, verdict  # noqa: E402

STEMS = refdata.stems()
needs_reference = pytest.mark.skipif(not STEMS, reason=f"real engine JSONs not found at {refdata.graphs_dir()} "
                                                       "(set RTDEPLOY_TRT_GRAPHS or place ../shared/reference/trt-engine-graphs)")
# Every stem of the reference folder (the list is fixed by its README); parametrized even when absent so skips show.
ALL = ["a100-resnet18-fp32", "a100-resnet18-fp16", "a100-resnet18-qat", "a100-resnet18-qat-residual", "a100-resnet18-qat-residual-qgap",
       "rtx3090-resnet50-fp32", "rtx3090-resnet50-fp16", "rtx3090-resnet50-qat", "titanrtx-mobilenetv1-qat",
       "titanrtx-mobilenetv2-residuals-qat"]
FORMS = ["8.x/10.x", "11.x Datatype", "11.x DataType"]


def built_precision(stem: str) -> str:
    return "int8" if "qat" in stem else stem.rsplit("-", 1)[-1]


def in_form(data: dict, form: str) -> dict:
    return data if form == "8.x/10.x" else refdata.to_trt11_form(data, dtype_key=form.split()[1])


def rtdeploy(*args, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rtdeploy.cli.main", *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=120)


@needs_reference
def test_the_reference_folder_is_the_one_described():
    assert sorted(STEMS) == sorted(ALL)


@needs_reference
@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("stem", ALL)
def test_every_real_file_reaches_the_readme_counts(stem, form):
    e = refdata.expected(stem)
    report = build_report(in_form(refdata.load(stem), form))
    weighted = sum(e["weights_type_histogram"].values()) + sum(e["conv_weights_type_histogram_ConvActPool"].values())
    precision = built_precision(stem)
    assert report["layers"] == e["layers"]
    assert report["compute"] == {"total": weighted, "by_precision": {precision: weighted}}
    assert report["qdq"] == e["origin_histogram"].get("QDQ", 0)
    assert report["reformat"] == e["origin_histogram"].get("REFORMAT", 0)
    assert [t["name"] for t in report["io"]] == e["bindings"]
    assert [(t["mode"], t["dtype"]) for t in report["io"]] == [("input", "fp32"), ("output", "fp32")]  # README: bindings are FP32
    assert report["schema"] == ("8.x/10.x" if form == "8.x/10.x" else "11.x")
    # What the README says a correct check concludes: pass at the built precision, fail below it.
    for expect in ("fp32", "fp16", "int8"):
        judged = verdict(report, expect)
        assert judged["verified"] and judged["ok"] == (refdata_rank(expect) >= refdata_rank(precision)), (expect, judged["reason"])


def refdata_rank(p: str) -> int:
    return {"int8": 0, "fp16": 1, "fp32": 2}[p]


@needs_reference
@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("stem", [s for s in ALL if "qat" in s])
def test_fallen_back_copies_are_caught(stem, form):
    data = refdata.load(stem)
    names = refdata.compute_layer_names(data)
    one = build_report(in_form(refdata.with_fallback(data, [names[3]], "fp16"), form))
    assert fallbacks(one, "int8") == [{"name": names[3], "asked": "int8", "got": "fp16"}]
    assert fallbacks(one, "fp16") == []
    every = build_report(in_form(refdata.with_fallback(data, names, "fp32"), form))
    assert len(fallbacks(every, "int8")) == len(names) and every["compute"]["by_precision"] == {"fp32": len(names)}
    # the Q/DQ Reformat layers still carry Int8 tensors: they must not rescue the verdict
    assert every["qdq"] >= 1 and verdict(every, "int8")["ok"] is False


@needs_reference
def test_layers_kept_in_float_are_not_fallbacks():
    data = refdata.load("a100-resnet18-qat")
    names = refdata.compute_layer_names(data)
    report = build_report(refdata.with_fallback(data, [names[-1]], "fp32"))
    onnx_node = names[-1].split(" + ")[-1]  # TensorRT joins the fused ONNX nodes' names with " + "
    assert fallbacks(report, "int8", {onnx_node}) == []
    assert fallbacks(report, "int8") == [{"name": names[-1], "asked": "int8", "got": "fp32"}]


def test_names_only_and_unknown_forms():
    names_only = build_report({"Layers": ["conv1", "fc"], "Bindings": ["x", "y"]})
    assert names_only["schema"] == "names-only" and verdict(names_only, "int8")["verified"] is False
    # 10.x Myelin/kgen layers: short type names and no Weights (README: samples/sampleEditableTimingCache)
    kgen = build_report({"Layers": [{"Name": "myelin_gemm", "LayerType": "MatrixMultiply", "Inputs": [{"Name": "a", "Format/Datatype": "Half"}],
                                     "Outputs": [{"Name": "b", "Format/Datatype": "Half"}]}], "Bindings": ["a", "b"]})
    assert kgen["compute"] == {"total": 1, "by_precision": {"fp16": 1}}
    assert [dtype_of(x) for x in ("Float", "Half", "Int8", "BFloat16", "bf16", "FP8", "Int32")] == \
        ["fp32", "fp16", "int8", "bf16", "bf16", "fp8", "int32"]
    with pytest.raises(ValueError, match="no \"Layers\" list"):
        build_report({"foo": 1})


# -- the command ------------------------------------------------------------------------------------
@needs_reference
@pytest.mark.parametrize("stem", ALL)
@pytest.mark.slow
def test_cli_on_every_real_file(stem, tmp_path):
    src = refdata.graphs_dir() / f"{stem}.graph.json"
    ok = rtdeploy("inspect", src, "--expect", built_precision(stem))
    assert ok.returncode == 0, ok.stderr
    total = sum(refdata.expected(stem)["weights_type_histogram"].values()) + \
        sum(refdata.expected(stem)["conv_weights_type_histogram_ConvActPool"].values())
    assert f"compute layers (with weights): {total} — {total} {built_precision(stem).upper()}" in ok.stdout
    js = rtdeploy("inspect", src, "--json", "-")
    data = json.loads(js.stdout)  # JSON alone on stdout
    assert data["compute"]["total"] == total and data["source"] == "layer-json"


@needs_reference
@pytest.mark.slow
def test_cli_fails_on_a_fallen_back_copy_with_one_line(tmp_path):
    data = refdata.load("rtx3090-resnet50-qat")
    names = refdata.compute_layer_names(data)
    for form in FORMS:
        path = tmp_path / f"fell-{form.replace('/', '_').replace(' ', '_')}.graph.json"
        path.write_text(json.dumps(in_form(refdata.with_fallback(data, names[:2], "fp16"), form)))
        proc = rtdeploy("inspect", path, "--expect", "int8")
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 3 and len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
        assert lines[0].startswith(f"error: {path.name}: 2 of 54 compute layers run above INT8: {names[0]} (asked INT8, got FP16)")
        assert re.search(rf"^FP16\s+fp16\s+fp16\s+{re.escape(names[0])}$", proc.stdout, re.M)  # the table shows what was built
        js = rtdeploy("inspect", path, "--expect", "int8", "--json", "-")
        assert js.returncode == 3 and json.loads(js.stdout)["verdict"]["fallbacks"][1]["name"] == names[1]


@pytest.mark.slow
def test_cli_bad_inputs(tmp_path):
    proc = rtdeploy("inspect", tmp_path / "none.engine")
    assert proc.returncode == 1 and proc.stderr.strip().splitlines() == [
        f"error: {tmp_path / 'none.engine'} does not exist; give an engine plan or a layer-information JSON (trtexec --exportLayerInfo)"]
    names_only = tmp_path / "names.json"
    names_only.write_text(json.dumps({"Layers": ["conv1"], "Bindings": []}))
    proc = rtdeploy("inspect", names_only, "--expect", "fp16")
    assert proc.returncode == 3 and "cannot verify" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    proc = rtdeploy("inspect", names_only, "--json", tmp_path / "missing" / "r.json")
    assert proc.returncode != 0 and "does not exist" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    proc = rtdeploy("inspect", bad)
    assert proc.returncode == 1 and "is not valid JSON" in proc.stderr
    proc = rtdeploy("inspect", names_only, "--expect", "fp64")
    assert proc.returncode == 2 and "fp64" in proc.stderr


@pytest.mark.slow
def test_cli_reads_an_engine_manifest_and_its_kept_layers(tmp_path):
    report = build_report({"Layers": [
        {"Name": "conv + QuantizeLinear_3 + Conv_4", "LayerType": "CaskConvolution", "Weights": {"Type": "Int8"},
         "Inputs": [{"Name": "x", "Format/Datatype": "Row major Int8 format"}], "Outputs": [{"Name": "y", "Format/Datatype": "Row major Int8 format"}]},
        {"Name": "Gemm_9", "LayerType": "CaskConvolution", "Weights": {"Type": "Float"},
         "Inputs": [{"Name": "y", "Format/Datatype": "Row major linear FP32"}], "Outputs": [{"Name": "z", "Format/Datatype": "Row major linear FP32"}]}],
        "Bindings": ["x", "z"]})
    layers = {**{k: report[k] for k in ("schema", "detailed", "compute", "compute_layers", "reformat", "qdq", "io", "by_precision",
                                        "by_device", "list")}, "count": report["layers"], "kept_float": ["Gemm_9"]}
    path = tmp_path / "m.engine.json"
    path.write_text(json.dumps({"kind": "engine", "layers": layers}))
    proc = rtdeploy("inspect", path, "--expect", "int8")
    assert proc.returncode == 0, proc.stderr
    layers["kept_float"] = []
    path.write_text(json.dumps({"kind": "engine", "layers": layers}))
    proc = rtdeploy("inspect", path, "--expect", "int8")
    assert proc.returncode == 3 and "Gemm_9 (asked INT8, got FP32)" in proc.stderr
