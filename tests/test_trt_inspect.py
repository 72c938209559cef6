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


def tf32_layers(stem: str) -> int:
    """Layers on TF32 tensor-core tactics (README: TF32 is on by default; a100 fp32 20 of 21, rtx fp32 40 of 54)."""
    return refdata.expected(stem)["tactic_name_substring_counts_case_sensitive"]["tf32"]


def expected_by_precision(stem: str, weighted: int) -> dict:
    precision, tf32 = built_precision(stem), tf32_layers(stem)
    return {k: v for k, v in {precision: weighted - tf32, "tf32": tf32}.items() if v}


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
    assert report["compute"] == {"total": weighted, "by_precision": expected_by_precision(stem, weighted)}
    assert report["qdq"] == e["origin_histogram"].get("QDQ", 0)
    assert report["reformat"] == e["origin_histogram"].get("REFORMAT", 0)
    assert [t["name"] for t in report["io"]] == e["bindings"]
    assert [(t["mode"], t["dtype"]) for t in report["io"]] == [("input", "fp32"), ("output", "fp32")]  # README: bindings are FP32
    assert report["schema"] == ("8.x/10.x" if form == "8.x/10.x" else "11.x")
    # An engine is what it was built as and nothing else: INT8 is no FP32 engine, and TF32 layers are not FP32
    # (README: 20/21 and 40/54 convs of the FP32 files run TF32 tactics); with --tf32 allowed they count as FP32.
    for expect in ("fp32", "fp16", "int8"):
        judged = verdict(report, expect)
        assert judged["verifiable"], judged["reason"]
        assert judged["ok"] == (expect == precision and not tf32_layers(stem)), (expect, judged["reason"])
        assert judged["verified"] is judged["ok"]
    if tf32_layers(stem):
        fell = verdict(report, "fp32")["fallbacks"]
        assert len(fell) == tf32_layers(stem) and {(f["asked"], f["got"]) for f in fell} == {("fp32", "tf32")}
        assert verdict(report, "fp32", tf32=True)["ok"] is True


@needs_reference
@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("stem", [s for s in ALL if "qat" in s])
def test_fallen_back_copies_are_caught(stem, form):
    data = refdata.load(stem)
    names = refdata.compute_layer_names(data)
    one = build_report(in_form(refdata.with_fallback(data, [names[3]], "fp16"), form))
    assert fallbacks(one, "int8") == [{"name": names[3], "asked": "int8", "got": "fp16"}]
    # asked FP16, the other layers run INT8: below what was asked, and said so
    assert [f["got"] for f in fallbacks(one, "fp16")] == ["int8"] * (len(names) - 1)
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


# A TensorRT 10.x Myelin layer as NVIDIA's samples/sampleEditableTimingCache/README.md (HEAD a892d222) prints it:
# "Name: matMul1_myl0_0, LayerType: gemm, Inputs: [ { Name: input, ..., Format/Datatype: Float }, { Name: weight1, ...,
# Format/Datatype: Float }, ...], Outputs: [...Float], TacticName: sm80_xmma_gemm_f32f32_tf32f32_f32_nn_n_tilesize32x32x64_...".
# Lower-case type, weights as an input tensor, no "Weights" entry.
MYELIN_GEMM = {"Name": "matMul1_myl0_0", "LayerType": "gemm",
               "Inputs": [{"Name": "input", "Dimensions": [128, 128], "Format/Datatype": "Float"},
                          {"Name": "weight1", "Dimensions": [128, 128], "Format/Datatype": "Float"}],
               "Outputs": [{"Name": "__myln_k_arg__bb1_4", "Dimensions": [128, 128], "Format/Datatype": "Float"}],
               "TacticName": "sm80_xmma_gemm_f32f32_tf32f32_f32_nn_n_tilesize32x32x64_stage3_warpsize2x1x2_tensor16x8x8",
               "StreamId": 0, "Metadata": ""}


def test_names_only_and_unknown_forms():
    names_only = build_report({"Layers": ["conv1", "fc"], "Bindings": ["x", "y"]})
    assert names_only["schema"] == "names-only" and verdict(names_only, "int8")["verified"] is False
    assert verdict(names_only, "int8")["ok"] is None and verdict(names_only, "int8")["verifiable"] is False
    myelin = build_report({"Layers": [MYELIN_GEMM], "Bindings": ["input", "__myln_k_arg__bb1_4"]})
    assert myelin["compute"] == {"total": 1, "by_precision": {"tf32": 1}}
    assert [dtype_of(x) for x in ("Float", "Half", "Int8", "BFloat16", "bf16", "FP8", "Int32")] == \
        ["fp32", "fp16", "int8", "bf16", "bf16", "fp8", "int32"]
    with pytest.raises(ValueError, match="no \"Layers\" list"):
        build_report({"foo": 1})


@needs_reference
def test_an_int8_engine_whose_classifier_ran_fp32_as_a_myelin_gemm_fails():
    """Finding 5 of issue 19: the Myelin gemm (lower case, no Weights) was no compute layer, so this passed --expect int8."""
    data = refdata.load("a100-resnet18-qat")
    names = refdata.compute_layer_names(data)
    fc = next(layer for layer in data["Layers"] if layer.get("Name") == names[-1])
    data["Layers"].remove(fc)  # the classifier, now run by Myelin as TensorRT 10.x reports it
    data["Layers"].append({**MYELIN_GEMM, "Name": "fc_myl0_0"})
    for form in FORMS:
        judged = verdict(build_report(in_form(data, form)), "int8")
        assert judged["ok"] is False and judged["fallbacks"] == [{"name": "fc_myl0_0", "asked": "int8", "got": "tf32"}], form


@needs_reference
@pytest.mark.parametrize("hidden", [{"Name": "{ForeignNode[/fc/Gemm...Softmax]}", "LayerType": "Myelin"},
                                    {"Name": "__myl_region_0", "LayerType": "kgen"}])
def test_a_region_that_hides_its_layers_cannot_be_verified(hidden):
    """A Myelin/kgen region reported as one layer (TREx colors.py lists "Myelin" and "kgen" layer types;
    {ForeignNode[...]} names: NVIDIA/TensorRT #2308, #2576, #4157) hides what ran inside: not verified."""
    data = refdata.load("a100-resnet18-qat")
    data["Layers"].append({**hidden, "Inputs": [{"Name": "x", "Format/Datatype": "Row major linear FP32"}],
                           "Outputs": [{"Name": "y", "Format/Datatype": "Row major linear FP32"}]})
    judged = verdict(build_report(data), "int8")
    assert judged["ok"] is None and judged["verifiable"] is False and judged["verified"] is False
    assert judged["unverifiable"] == [hidden["Name"]] and "hide their layers" in judged["reason"]


@needs_reference
def test_a_compute_layer_without_precision_fields_is_unverifiable():
    """Issue 22 item 6: a compute layer the report cannot judge made the whole engine "verified"."""
    data = refdata.load("a100-resnet18-qat")
    data["Layers"].append({"Name": "conv_mystery", "LayerType": "CaskConvolution", "Inputs": [{"Name": "x"}], "Outputs": [{"Name": "y"}]})
    judged = verdict(build_report(data), "int8")
    assert judged["ok"] is None and judged["unverifiable"] == ["conv_mystery"] and "carry no precision" in judged["reason"]


@needs_reference
def test_a_layer_kept_in_fp32_that_ran_fp16_is_reported():
    """Finding 6: the check reported only layers above the asked precision, never "asked FP32, ran FP16"."""
    data = refdata.load("a100-resnet18-qat")
    names = refdata.compute_layer_names(data)
    report = build_report(refdata.with_fallback(data, [names[-1]], "fp16"))
    kept = {names[-1].split(" + ")[-1]}
    assert fallbacks(report, "int8", kept) == [{"name": names[-1], "asked": "fp32", "got": "fp16"}]
    assert verdict(report, "int8", kept)["ok"] is False


# -- the command ------------------------------------------------------------------------------------
@needs_reference
@pytest.mark.parametrize("stem", ALL)
@pytest.mark.slow
def test_cli_on_every_real_file(stem, tmp_path):
    src = refdata.graphs_dir() / f"{stem}.graph.json"
    ok = rtdeploy("inspect", src, "--expect", built_precision(stem))
    total = sum(refdata.expected(stem)["weights_type_histogram"].values()) + \
        sum(refdata.expected(stem)["conv_weights_type_histogram_ConvActPool"].values())
    counts = ", ".join(f"{n} {p.upper()}" for p, n in sorted(expected_by_precision(stem, total).items(), key=lambda kv: -kv[1]))
    assert f"compute layers (with weights): {total} — {counts}" in ok.stdout
    if tf32_layers(stem):  # finding 7: --expect fp32 names the TF32 layers (it passed every verifiable engine)
        lines = ok.stderr.strip().splitlines()
        assert ok.returncode == 3 and len(lines) == 1, ok.stderr
        assert f"{tf32_layers(stem)} of {total} compute layers do not run as asked" in lines[0] and "(asked FP32, got TF32)" in lines[0]
        assert "--noTF32" in lines[0]
    else:
        assert ok.returncode == 0, ok.stderr
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
        assert lines[0].startswith(f"error: {path.name}: 2 of 54 compute layers do not run as asked (INT8, FP32 where kept in float): "
                                   f"{names[0]} (asked INT8, got FP16)")
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
                                        "by_device", "list")}, "count": report["layers"], "kept_float": ["Gemm_9"], "verified": True}
    path = tmp_path / "m.engine.json"
    path.write_text(json.dumps({"kind": "engine", "layers": layers}))
    proc = rtdeploy("inspect", path, "--expect", "int8")
    assert proc.returncode == 0, proc.stderr
    layers["kept_float"] = []
    path.write_text(json.dumps({"kind": "engine", "layers": layers}))
    proc = rtdeploy("inspect", path, "--expect", "int8")
    assert proc.returncode == 3 and "Gemm_9 (asked INT8, got FP32)" in proc.stderr


# -- what is read as layer information, and what is refused (issue 19 minor; issue 22 item 6) ------------
TINY = {"Layers": [{"Name": "conv", "LayerType": "CaskConvolution", "Weights": {"Type": "Int8"},
                    "Inputs": [{"Name": "x", "Format/Datatype": "Row major Int8 format"}],
                    "Outputs": [{"Name": "y", "Format/Datatype": "Row major Int8 format"}]}], "Bindings": ["x", "y"]}


@pytest.mark.parametrize("name,content", [
    ("utf8-bom", b"\xef\xbb\xbf" + json.dumps(TINY).encode()),
    ("utf16-bom", json.dumps(TINY).encode("utf-16")),  # what PowerShell's ">" writes
    ("leading-blanks", b"\n" * 200 + b"  \t" + json.dumps(TINY).encode()),
])
def test_layer_json_is_recognised_by_content(tmp_path, name, content):
    """The old check looked at 64 bytes for '{' or '[': these went to TensorRT as engine plans."""
    from rtdeploy.trt.inspect_file import inspect_file

    path = tmp_path / f"{name}.json"
    path.write_bytes(content)
    result = inspect_file(path, expect="int8")
    assert result.source == "layer-json" and result.verdict["ok"] is True


@pytest.mark.parametrize("name,content,message", [
    ("empty", b"", "is empty"),
    ("blank", b"\n \t\r\n" * 50, "is empty"),
    ("null", b"null", "the JSON is null, expected an object"),
    ("bom-null", b"\xef\xbb\xbfnull\n", "the JSON is null"),
    ("number", b"  42", "the JSON is a number"),
    ("deep", b"[" * 100_000, "nested too deeply|not valid JSON"),
    ("truncated", json.dumps(TINY).encode()[:-9], "not valid JSON"),
    ("layers-object", b'{"Layers": {"conv": 1}}', 'no "Layers" list'),
    ("inputs-null", b'{"Layers": [{"Name": "c", "LayerType": "CaskConvolution", "Inputs": null}]}', r"Layers\[0\].Inputs is null, not a list"),
    ("tensor-number", b'{"Layers": [{"Name": "c", "Inputs": [7]}]}', r"Layers\[0\].Inputs\[0\] is a number, not an object"),
    ("weights-string", b'{"Layers": [{"Name": "c", "Weights": "Int8"}]}', r"Layers\[0\].Weights is a string, not an object"),
    ("name-list", b'{"Layers": [{"Name": ["c"]}]}', r"Layers\[0\].Name is a list, not a string or null"),
    ("layer-number", b'{"Layers": [3]}', r"Layers\[0\] is a number, not a string or an object"),
    ("bindings-objects", b'{"Layers": ["c"], "Bindings": [{"x": 1}]}', r"Bindings\[0\] is an object, not a string"),
    ("io-string", b'{"Layers": ["c"], "I/O Tensors": "x"}', r"I/O Tensors is a string, not a list"),
    ("profile-null", b'{"Layers": ["c"], "I/O Tensors": [{"Name": "x", "ProfileInfo": [null]}]}', r"ProfileInfo\[0\] is null, not an object"),
])
def test_other_json_ends_in_one_line_not_a_traceback(tmp_path, name, content, message):
    """A BOM, `null`, blanks or an empty file were taken for an engine plan ("TensorRT is not available"); malformed,
    deep or partial JSON ended in tracebacks. Now the content decides, and the JSON is checked against the schema of
    the fields inspect reads (rtdeploy.trt.layer_report.LAYER_INFO_SCHEMA) before any is read."""
    from rtdeploy.errors import ArtifactError
    from rtdeploy.trt.inspect_file import inspect_file

    path = tmp_path / f"{name}.json"
    path.write_bytes(content)
    with pytest.raises(ArtifactError, match=message) as err:
        inspect_file(path)
    assert "\n" not in str(err.value) and "TensorRT is not available" not in str(err.value)


def test_cli_on_json_that_is_no_layer_information_says_one_line(tmp_path):
    for name, content in (("null.json", b"null"), ("empty.json", b""), ("bad.json", b'{"Layers": [{"Inputs": null}]}')):
        path = tmp_path / name
        path.write_bytes(content)
        proc = rtdeploy("inspect", path)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 1 and len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
