"""TensorRT stage logic that needs no TensorRT: options, precision plans, manifests, layer reports."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from rtdeploy.errors import ArtifactError, EngineError, PrecisionError
from rtdeploy.trt.device_memory import DeviceInfo
from rtdeploy.trt.engine_file import check_engine_file, compatibility_problem
from rtdeploy.trt.engine_report import check_precision_realized, parse_engine_information, tensor_precision
from rtdeploy.trt.features import Features, plan_precision
from rtdeploy.trt.graph_facts import GraphFacts
from rtdeploy.trt.options import BatchProfile, BuildOptions, parse_size, resolve_profile
from rtdeploy.trt.stage import default_engine_path, resolve_workspace


# -- profile and sizes ----------------------------------------------------------------------------
def test_profile_parsing():
    assert BatchProfile.parse("1:8:32") == BatchProfile(1, 8, 32)
    assert BatchProfile.parse("8").is_static and BatchProfile.parse(4) == BatchProfile(4, 4, 4)
    assert BatchProfile(1, 8, 32).contains(32) and not BatchProfile(1, 8, 32).contains(33)
    assert BatchProfile(2, 4, 8).shapes((3, 32, 32)) == ((2, 3, 32, 32), (4, 3, 32, 32), (8, 3, 32, 32))


@pytest.mark.parametrize("text, message", [("32:8:1", r"not ordered; TensorRT needs MIN <= OPT <= MAX, e.g. 1:8:32"),
                                           ("0:1:2", "below 1"), ("1:8", "MIN:OPT:MAX"), ("a:b:c", "MIN:OPT:MAX"), ("-1", "MIN:OPT:MAX")])
def test_bad_profiles(text, message):
    with pytest.raises(EngineError, match=message):
        BatchProfile.parse(text)


def test_sizes():
    assert parse_size("2G") == 2 << 30 and parse_size("512M") == 512 << 20 and parse_size("1.5GiB") == 3 << 29
    assert parse_size("4096") == 4096 and parse_size(None) is None and parse_size("64kb") == 64 << 10
    for bad in ("12X", "0", "G", "2 GB extra"):
        with pytest.raises(EngineError, match="--workspace"):
            parse_size(bad)


@pytest.mark.parametrize("kw, error, message", [
    (dict(gpu_fallback=True), EngineError, "--gpu-fallback only applies with --dla-core"),
    (dict(dla_core=0, batch="1:8:32", precision="fp16"), EngineError, "DLA needs a static profile"),
    (dict(dla_core=0, precision="fp32"), PrecisionError, "DLA runs FP16 or INT8"),
    (dict(dla_core=-1), EngineError, "numbered from 0"),
    (dict(dla_core=0, precision="int8", version_compatible=True), EngineError, "cannot be version- or hardware-compatible"),
    (dict(implicit_calibration=True, precision="fp16", calib_dir=Path("c")), PrecisionError, "INT8 only"),
    (dict(implicit_calibration=True, calibrate=False, calib_dir=Path("c")), PrecisionError, "contradict"),
    (dict(implicit_calibration=True), PrecisionError, "needs --calib-dir"),
    (dict(builder_optimization_level=7), EngineError, "0..5"),
    (dict(hardware_compatibility="turing+"), EngineError, "ampere\\+ or same-cc"),
    (dict(precision="int4"), PrecisionError, "fp32, fp16, int8"),
])
def test_option_combinations_fail_before_any_work(kw, error, message):
    with pytest.raises(error, match=message):
        BuildOptions(**kw).check()


def test_profile_resolution():
    assert resolve_profile(BuildOptions(), None) == BatchProfile(1, 8, 32)
    assert resolve_profile(BuildOptions(), 4) == BatchProfile(4, 4, 4)
    assert resolve_profile(BuildOptions(dla_core=0), None) == BatchProfile(8, 8, 8)
    assert resolve_profile(BuildOptions(batch="4"), 4) == BatchProfile(4, 4, 4)
    with pytest.raises(EngineError, match="fixed batch of 4, so --batch 1:8:32 cannot be built; use --batch 4"):
        resolve_profile(BuildOptions(batch="1:8:32"), 4)


# -- precision plans per release ------------------------------------------------------------------
def features(major: int) -> Features:
    """The features of each release line, as tests/trt_stubs reads them off the real bindings."""
    return Features(version=f"{major}.0.0", explicit_batch_flag=major < 11, strongly_typed=major >= 10, fp16_flag=major < 11,
                    int8_flag=major < 11, calibrators=major < 11, memory_pool_limit=True, max_workspace_size=major < 10,
                    detailed_profiling=True, same_cc_compatibility=major >= 10, fast_fp16_query=major < 11,
                    calibration_profile=major < 11, engine_host_code_allowed=True)


def graph(precision: str) -> GraphFacts:
    return GraphFacts("input", (3, 32, 32), None, has_qdq=precision == "int8", fp16=precision == "fp16", node_names=("conv",))


@pytest.mark.parametrize("major, precision, network, flags", [
    (8, "fp32", ("EXPLICIT_BATCH",), ()), (8, "fp16", ("EXPLICIT_BATCH",), ("FP16",)), (8, "int8", ("EXPLICIT_BATCH",), ("INT8", "FP16")),
    (10, "fp32", ("STRONGLY_TYPED",), ()), (10, "fp16", ("STRONGLY_TYPED",), ()), (10, "int8", ("STRONGLY_TYPED",), ()),
    (11, "fp32", ("STRONGLY_TYPED",), ()), (11, "fp16", ("STRONGLY_TYPED",), ()), (11, "int8", ("STRONGLY_TYPED",), ()),
])
def test_precision_plan_per_release(major, precision, network, flags):
    plan = plan_precision(features(major), precision, graph(precision))
    assert (plan.network_flags, plan.builder_flags, plan.calibrator) == (network, flags, False)


def test_dla_prefers_weak_typing_where_the_release_has_it():
    assert plan_precision(features(10), "fp16", graph("fp16"), dla=True).builder_flags == ("FP16",)
    assert plan_precision(features(10), "int8", graph("int8"), dla=True).builder_flags == ("INT8", "FP16")
    assert plan_precision(features(11), "fp16", graph("fp16"), dla=True).network_flags == ("STRONGLY_TYPED",)


def test_precision_plan_refusals():
    with pytest.raises(PrecisionError, match="carries FP32, not INT8"):
        plan_precision(features(10), "int8", graph("fp32"))
    with pytest.raises(PrecisionError, match="no implicit INT8 calibration .*Q/DQ"):
        plan_precision(features(11), "int8", graph("fp32"), implicit_calibration=True)
    with pytest.raises(PrecisionError, match="needs the FP32 ONNX"):
        plan_precision(features(10), "int8", graph("int8"), implicit_calibration=True)
    implicit = plan_precision(features(10), "int8", graph("fp32"), implicit_calibration=True)
    assert implicit.calibrator and implicit.builder_flags == ("INT8", "FP16") and not implicit.strongly_typed


# -- engine manifests -----------------------------------------------------------------------------
GPU = DeviceInfo(0, "NVIDIA A100", "8.0", 80 << 30, 70 << 30, False)
ORIN = DeviceInfo(0, "Orin", "8.7", 32 << 30, 20 << 30, True)


def manifest(version="10.3.0", cc="8.0", **build):
    """A complete engine manifest (as JSON) built with TensorRT ``version`` on a GPU of compute ``cc``."""
    from manifest_fakes import engine_fields

    fields = engine_fields(Path("/m/r50.int8.onnx"), precision="int8", model=None, tensorrt=version, compute_capability=cc,
                           device="NVIDIA A100")
    fields["build"].update(build)
    fields["rebuild_command"] = "rtdeploy build-engine --onnx /m/r50.int8.onnx --int8 --batch 1:8:32 -o /m/r50.int8.engine"
    return {"format": 1, "kind": "engine", "artifact": "r50.int8.engine", "sha256": "0" * 64, "bytes": 0,
            "created": "2026-01-01T00:00:00+00:00", "versions": {"python": "3.11", "rtdeploy": "0.1.0"}, **fields}


def record(*args, **build):
    """:func:`manifest`, typed."""
    from rtdeploy.manifests import EngineManifest

    return EngineManifest.from_dict(manifest(*args, **build))


def test_compatibility_rules():
    # Defect 6: another minor release only warned. TensorRT's rule (engine-compatibility page, 11.1.0 docs;
    # ../shared/reference/trt-engine-graphs/README.md (e)): a plan loads on the release that built it only,
    # a version-compatible plan on that release or a later one.
    assert compatibility_problem(manifest(), runtime_version="10.3.0", device=GPU) is None
    assert "TensorRT 10.3.0, this machine has TensorRT 10.13.3.9 (a plan loads only" in compatibility_problem(
        manifest(), runtime_version="10.13.3.9", device=GPU)
    assert compatibility_problem(manifest(version_compatible=True), runtime_version="10.13.3.9", device=GPU) is None
    assert "run only on that release or later" in compatibility_problem(manifest("10.13.3.9", version_compatible=True),
                                                                         runtime_version="10.3.0", device=GPU)
    assert compatibility_problem(manifest("11.0.0.114", version_compatible=True), runtime_version="11.4.0.106", device=GPU) is None
    assert "platform" in compatibility_problem({**manifest(), "platform": "windows-x86_64"}, runtime_version="10.3.0", device=GPU,
                                               platform="linux-x86_64")
    assert compatibility_problem({**manifest(), "platform": "linux-x86_64"}, runtime_version="10.3.0", device=GPU,
                                 platform="linux-x86_64") is None
    assert "compute capability 8.0" in compatibility_problem(manifest(hardware_compatibility="same-cc"), runtime_version="10.3.0", device=ORIN)
    assert "TensorRT 10.3.0, this machine has TensorRT 11.4.0.106" in compatibility_problem(manifest(), runtime_version="11.4.0.106", device=GPU)
    assert compatibility_problem(manifest(version_compatible=True), runtime_version="11.4.0.106", device=GPU) is None
    assert compatibility_problem(manifest("11.4.0.106", version_compatible=True), runtime_version="10.3.0", device=GPU)
    assert "compute capability 8.0 (NVIDIA A100), this GPU (Orin) has compute 8.7" in compatibility_problem(manifest(), runtime_version="10.3.0", device=ORIN)
    assert compatibility_problem(manifest(hardware_compatibility="ampere+"), runtime_version="10.3.0", device=ORIN) is None
    turing = DeviceInfo(0, "T4", "7.5", 16 << 30, 15 << 30, False)
    assert "ampere+" in compatibility_problem(record(hardware_compatibility="ampere+"), runtime_version="10.3.0", device=turing)


def write_engine(folder: Path, data: bytes, m: dict) -> Path:
    from rtdeploy.files import sha256_file

    path = folder / "r50.int8.engine"
    path.write_bytes(data)
    m = {**m, "bytes": len(data), "sha256": sha256_file(path)}
    Path(str(path) + ".json").write_text(json.dumps(m))
    return path


def test_engine_file_checks(tmp_path):
    path = write_engine(tmp_path, b"PLAN" * 100, manifest())
    check_engine_file(path, json.loads(Path(str(path) + ".json").read_text()), runtime_version="10.3.0", device=GPU)
    m = json.loads(Path(str(path) + ".json").read_text())
    with pytest.raises(EngineError, match=r"built for TensorRT 10.3.0, this machine has TensorRT 8.6.1 .a plan loads only on the release "
                                          r"that built it.; rebuild it here: rtdeploy build-engine --onnx /m/r50.int8.onnx"):
        check_engine_file(path, m, runtime_version="8.6.1", device=GPU)
    path.write_bytes(b"PLAN" * 10)  # truncated
    with pytest.raises(EngineError, match="does not match its manifest .sha256 differs.: it was changed, truncated or replaced"):
        check_engine_file(path, m, runtime_version="10.3.0", device=GPU)
    path.write_bytes(b"")
    with pytest.raises(EngineError, match="is empty"):
        check_engine_file(path, m, runtime_version="10.3.0", device=GPU)
    with pytest.raises(ArtifactError, match="does not exist"):
        check_engine_file(tmp_path / "none.engine", None, runtime_version="10.3.0", device=GPU)
    path.write_bytes(b"x")
    with pytest.raises(ArtifactError, match="not an engine"):
        check_engine_file(path, {**m, "kind": "onnx"}, runtime_version="10.3.0", device=GPU)


# -- layer reports --------------------------------------------------------------------------------
def test_layer_report_and_precision_check():
    info = json.dumps({"Layers": [
        {"Name": "conv1", "LayerType": "CaskConvolution", "Inputs": [{"Format/Datatype": "Thirty-two wide channel vectorized row major Int8 format."}],
         "Outputs": [{"Format/Datatype": "Row major linear FP32"}], "Weights": {"Type": "Int8", "Count": 9}},
        {"Name": "reformat", "LayerType": "Reformat", "Inputs": [{"Format/Datatype": "Row major linear FP32"}],
         "Outputs": [{"Format/Datatype": "Channel major FP16 format where channel % 2 == 0"}]},
        {"Name": "dla_subgraph", "LayerType": "DLA", "Inputs": [{"Format/Datatype": "Half"}], "Outputs": []}]})
    report = parse_engine_information(info)
    assert [(x["precision"], x["device"]) for x in report["list"]] == [("int8", "GPU"), ("fp16", "GPU"), ("fp16", "DLA")]
    assert report["by_precision"] == {"int8": 1, "fp16": 2} and report["detailed"]
    assert report["compute"] == {"total": 1, "by_precision": {"int8": 1}}
    assert check_precision_realized(report, "int8")["ok"]
    with pytest.raises(EngineError, match=r"FP16 was asked, but TensorRT built 1 of 1 compute layers below what was asked "
                                          r"\(conv1 \(asked FP16, got INT8\)"):
        check_precision_realized(report, "fp16")  # an engine is what was asked, not merely "at or below" it
    only_reformat = parse_engine_information(json.dumps({"Layers": [json.loads(info)["Layers"][1]]}))
    assert check_precision_realized(only_reformat, "fp16")["verified"] is False  # a reformat alone proves nothing
    names_only = parse_engine_information(json.dumps({"Layers": ["conv1", "fc"]}))
    assert not names_only["detailed"] and check_precision_realized(names_only, "int8")["verified"] is False
    assert tensor_precision("N/A due to dynamic shapes") == "unknown" and tensor_precision("BFloat16") == "bf16"


# -- stage helpers --------------------------------------------------------------------------------
def test_default_engine_names():
    assert default_engine_path(Path("m/resnet50.int8.onnx"), "int8") == Path("m/resnet50.int8.engine")
    assert default_engine_path(Path("resnet50.onnx"), "fp32") == Path("resnet50.fp32.engine")


def test_workspace_sizing():
    assert resolve_workspace("2G", GPU) == 2 << 30
    assert resolve_workspace(None, GPU) is None
    assert resolve_workspace(None, ORIN) == 10 << 30  # unified memory: half of what is free
    with pytest.raises(EngineError, match=r"--workspace 100G is larger than the memory of this GPU \(NVIDIA A100: 80.0 GiB\)"):
        resolve_workspace("100G", GPU)


def test_calibration_helpers():
    from rtdeploy.trt.calibrator import is_calibration_cache, rebatch

    out = list(rebatch([np.ones((3, 2)), np.zeros((4, 2)), np.ones((2, 2))], 4))
    assert [b.shape for b in out] == [(4, 2), (4, 2)] and out[0].dtype == np.float32
    assert out[0][:3].sum() == 6 and out[1][-1].sum() == 2
    assert is_calibration_cache(b"TRT-8601-EntropyCalibration2\ninput: 3c010a14\n")
    assert not is_calibration_cache(b"TRT-8601-MinMaxCalibration\n") and not is_calibration_cache(b"\x89PNG")
