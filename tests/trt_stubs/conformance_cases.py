"""API-conformance cases for ONE TensorRT release, run in a subprocess by tests/test_trt_conformance.py.

The process imports that release's REAL bindings (``tensorrt_bindings``, with stub libraries) and
the matching REAL ``cuda.bindings.runtime``; rtdeploy's builder, inspector, loader and runner then
drive objects specced from those real classes (see fakes.py). A member the release lacks, a call
whose arguments fit no real overload, or a wrong enum fails here. These cases prove that rtdeploy
speaks each release's API; they do not prove that an engine builds or runs (that needs a GPU:
tests/test_trt_gpu.py).
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: manifest_fakes

from fakes import FP16_LAYERS, FP32_LAYERS, INT8_LAYERS, FakeCudart, World  # noqa: E402

from rtdeploy.errors import EngineError, MissingDependency, PrecisionError  # noqa: E402
from rtdeploy.trt.options import BuildOptions  # noqa: E402

RELEASE = os.environ.get("RTDEPLOY_CONFORMANCE_RELEASE", "")
MAJOR = int(RELEASE.split(".")[0]) if RELEASE else 0
# Version and hardware compatibility and builder optimization levels came with 8.6 (NVIDIA/TensorRT v8.6.0
# python/src/infer/pyCore.cpp; absent from 8.5.3's, see surface-8.5.3.json).
COMPAT = bool(RELEASE) and not RELEASE.startswith("8.5")
needs_compat = pytest.mark.skipif(not COMPAT, reason="TensorRT 8.5 has no version/hardware compatibility (8.6 added them)")
pytestmark = pytest.mark.skipif(not RELEASE, reason="run by tests/test_trt_conformance.py with a release's real bindings")


# -- fixtures -------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def trt():
    import tensorrt_bindings

    surface = os.environ.get("RTDEPLOY_CONFORMANCE_SURFACE")
    if surface:  # a release without importable bindings: a later release's real bindings narrowed to its names
        from surface import load_surface, masked_module

        tensorrt_bindings = masked_module(tensorrt_bindings, load_surface(surface))
    assert tensorrt_bindings.__version__ == RELEASE
    return tensorrt_bindings


@pytest.fixture(scope="session")
def rt():
    from cuda.bindings import runtime

    return runtime


@pytest.fixture(scope="session")
def models(tmp_path_factory):
    """Tiny ONNX models (fp32, fp16 graph, Q/DQ) with manifests, made with onnx.helper."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from manifest_fakes import write_derived_manifest, write_onnx_manifest
    from rtdeploy.models.metadata import ModelMeta

    folder = tmp_path_factory.mktemp("models")
    meta = ModelMeta(family="cifar", depth=20, name="tiny", num_classes=4, in_channels=3, image_size=8, resize=None)

    def make(kind: str) -> Path:
        elem, np_type = (TensorProto.FLOAT16, np.float16) if kind == "fp16" else (TensorProto.FLOAT, np.float32)
        rng = np.random.default_rng(0)
        inits = [numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np_type), "w"),
                 numpy_helper.from_array(rng.standard_normal((4, 4)).astype(np_type), "fc_w")]
        nodes, conv_in, conv_w = [], "input", "w"
        if kind == "int8":  # explicit quantization: Q/DQ on conv1's input and weights; fc stays float
            inits += [numpy_helper.from_array(np.array(0.05, np.float32), "s"), numpy_helper.from_array(np.array(0, np.int8), "z"),
                      numpy_helper.from_array(rng.integers(-127, 128, (4, 3, 3, 3)).astype(np.int8), "w_q")]
            nodes += [helper.make_node("QuantizeLinear", ["input", "s", "z"], ["q"], name="input_q"),
                      helper.make_node("DequantizeLinear", ["q", "s", "z"], ["dq"], name="input_dq"),
                      helper.make_node("DequantizeLinear", ["w_q", "s", "z"], ["w_dq"], name="w_dq")]
            conv_in, conv_w = "dq", "w_dq"
        nodes += [helper.make_node("Conv", [conv_in, conv_w], ["c"], name="conv1", pads=[1, 1, 1, 1]),
                  helper.make_node("Relu", ["c"], ["r"], name="relu"),
                  helper.make_node("GlobalAveragePool", ["r"], ["p"], name="pool"),
                  helper.make_node("Flatten", ["p"], ["f"], name="flatten"),
                  helper.make_node("MatMul", ["f", "fc_w"], ["logits"], name="fc")]
        graph = helper.make_graph(nodes, f"tiny_{kind}", [helper.make_tensor_value_info("input", elem, ["batch", 3, 8, 8])],
                                  [helper.make_tensor_value_info("logits", elem, ["batch", 4])], inits)
        path = folder / ("tiny.onnx" if kind == "fp32" else f"tiny.{kind}.onnx")
        onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
        if kind == "fp32":
            write_onnx_manifest(path, meta.to_dict())
        else:  # what quantize writes for a model made from the fp32 one
            write_derived_manifest(path, folder / "tiny.onnx", kind)
        return path

    return {kind: make(kind) for kind in ("fp32", "fp16", "int8")}


@pytest.fixture
def make_world(trt):
    """World factory; after the test, every call made on a stand-in must fit the real API."""
    worlds = []

    def make(**kw) -> World:
        w = World(trt, **kw)
        worlds.append(w)
        return w

    yield make
    problems = [p for w in worlds for p in w.call_problems()]
    assert not problems, "calls that do not fit this release's API:\n" + "\n".join(problems)


def memory_for(world, rt, **kw):
    from rtdeploy.trt.device_memory import CudaRuntime

    world.memory = CudaRuntime(FakeCudart(rt, world, **kw))
    return world.memory


def build(world, rt, tmp_path, onnx, **opts):
    from rtdeploy.trt.stage import build_engine

    opts.setdefault("output", tmp_path / "model.engine")
    memory = world.memory or memory_for(world, rt)
    result = build_engine(BuildOptions(onnx=onnx, **opts), trt_module=world.module, memory=memory)
    check_engine_manifest(result.manifest)
    return result


def check_engine_manifest(manifest: dict) -> None:
    """Every engine manifest a build writes follows rtdeploy/manifests/schemas/engine.schema.json and reads back typed."""
    import jsonschema

    from rtdeploy.manifests import EngineManifest, load_schema

    jsonschema.Draft202012Validator(load_schema("engine")).validate(manifest)
    assert EngineManifest.from_dict(manifest).to_dict() == manifest


def network_flag_names(trt, world) -> set[str]:
    flags = world.builder.create_network.call_args.args[0]
    return {n for n in ("EXPLICIT_BATCH", "STRONGLY_TYPED") if hasattr(trt.NetworkDefinitionCreationFlag, n)
            and flags & (1 << int(getattr(trt.NetworkDefinitionCreationFlag, n)))}


def builder_flag_names(world) -> set[str]:
    return {c.args[0].name for c in world.config.set_flag.call_args_list}


# -- features -------------------------------------------------------------------------------------
def test_features_are_read_off_the_real_api(trt):
    from rtdeploy.trt.features import Features

    f = Features.detect(trt)
    expected = {8: dict(explicit_batch_flag=True, strongly_typed=False, fp16_flag=True, calibrators=True, max_workspace_size=True,
                        same_cc_compatibility=False),
                10: dict(explicit_batch_flag=True, strongly_typed=True, fp16_flag=True, calibrators=True, max_workspace_size=False,
                         same_cc_compatibility=RELEASE != "10.3.0"),
                11: dict(explicit_batch_flag=False, strongly_typed=True, fp16_flag=False, calibrators=False, max_workspace_size=False,
                         same_cc_compatibility=True)}[MAJOR]
    assert {k: getattr(f, k) for k in expected} == expected
    assert f.memory_pool_limit and f.detailed_profiling


# -- building -------------------------------------------------------------------------------------
@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_build_takes_the_release_path(trt, rt, make_world, models, tmp_path, precision):
    layers = {"fp32": FP32_LAYERS, "fp16": FP16_LAYERS, "int8": INT8_LAYERS}[precision]
    w = make_world(layers=layers)
    result = build(w, rt, tmp_path, models[precision], precision=precision, batch="1:8:32", workspace="1G")
    nets, flags = network_flag_names(trt, w), builder_flag_names(w)
    if MAJOR == 8:
        assert nets == {"EXPLICIT_BATCH"}
        # the Q/DQ graph's unquantized fc is asked FP32 and pinned: weak typing would be free to run it FP16
        assert flags == {"fp32": set(), "fp16": {"FP16"}, "int8": {"INT8", "FP16", "OBEY_PRECISION_CONSTRAINTS"}}[precision]
    else:
        assert nets == {"STRONGLY_TYPED"} and flags == set()
    w.config.clear_flag.assert_called_once_with(trt.BuilderFlag.TF32)  # FP32 layers run FP32, not TF32
    w.config.set_memory_pool_limit.assert_called_once_with(trt.MemoryPoolType.WORKSPACE, 1 << 30)
    assert w.config.profiling_verbosity == trt.ProfilingVerbosity.DETAILED
    (profile,) = w.profiles
    profile.set_shape.assert_called_once_with("input", (1, 3, 8, 8), (8, 3, 8, 8), (32, 3, 8, 8))
    w.config.add_optimization_profile.assert_called_once_with(profile)
    m = result.manifest
    assert result.path.read_bytes().startswith(b"FAKEPLAN")
    assert m["precision"] == precision and m["tensorrt"]["version"] == RELEASE
    assert m["profile"]["min"] == 1 and m["profile"]["max"] == 32 and m["device"]["compute_capability"] == "8.6"
    assert m["layers"]["verified"] is True and m["layers"]["by_precision"].get(precision, 0) >= 1
    assert json.loads(Path(str(result.path) + ".json").read_text())["sha256"] == m["sha256"]
    from rtdeploy.trt.engine_file import this_platform

    # what ties the plan is an input of its derivation: reuse elsewhere is a rebuild (tests/test_trt_engine_reuse.py)
    assert m["derivation"]["inputs"]["target"] == f"TensorRT {RELEASE}, compute 8.6, {this_platform()}"


def test_the_target_here_needs_a_gpu(trt):
    """derive.engine asks target_here(); with the real bindings and no driver that is a MissingDependency (one line),
    and the build that follows says how to build elsewhere."""
    from rtdeploy.trt.stage import target_here

    with pytest.raises(MissingDependency, match="no usable NVIDIA GPU"):
        target_here()


def test_parser_errors_name_the_nodes(rt, make_world, models, tmp_path):
    w = make_world(parse_ok=False, parser_errors=[("Unsupported operator FooOp", 2, "pool", "GlobalAveragePool")])
    with pytest.raises(EngineError, match=r"cannot parse tiny.onnx: node pool \(GlobalAveragePool\): Unsupported operator FooOp"):
        build(w, rt, tmp_path, models["fp32"], precision="fp32")
    assert not (tmp_path / "model.engine").exists()


def test_a_failed_build_is_an_engine_error_and_writes_nothing(rt, make_world, models, tmp_path):
    w = make_world(build_ok=False)
    with pytest.raises(EngineError, match="could not build an engine from tiny.onnx"):
        build(w, rt, tmp_path, models["fp32"], precision="fp32")
    assert list(tmp_path.iterdir()) == []


def test_int8_without_int8_layers_fails_loudly(rt, make_world, models, tmp_path):
    w = make_world(layers=FP32_LAYERS)
    with pytest.raises(EngineError, match=r"INT8 was asked, but TensorRT built 1 of 2 compute layers above it \(conv1 \+ relu \(asked INT8, got FP32\)"):
        build(w, rt, tmp_path, models["int8"], precision="int8")
    assert not (tmp_path / "model.engine").exists()


def test_options_8_5_lacks_are_refused_before_any_work(rt, make_world, models, tmp_path):
    """Crash 2 of issue 19: features.py read trt.HardwareCompatibilityLevel unguarded (first in v8.6.0 pyCore.cpp),
    so every build on 8.5 died with AttributeError; now only the options 8.5 lacks are refused, in one line."""
    w = make_world()
    build(w, rt, tmp_path, models["fp32"], precision="fp32")  # a plain build works on every release
    for option in (dict(version_compatible=True), dict(hardware_compatibility="ampere+"), dict(builder_optimization_level=4)):
        w = make_world()
        if COMPAT:
            build(w, rt, tmp_path, models["fp32"], precision="fp32", **option)
            continue
        flag = "--" + next(iter(option)).replace("_", "-")
        with pytest.raises(EngineError, match=rf"TensorRT {RELEASE} has no {flag} \(TensorRT 8.6 added them\); drop {flag}"):
            build(w, rt, tmp_path, models["fp32"], precision="fp32", **option)
        w.builder.create_network.assert_not_called()


@needs_compat
def test_options_reach_the_config(trt, rt, make_world, models, tmp_path):
    w = make_world()
    cache = tmp_path / "trt.cache"
    result = build(w, rt, tmp_path, models["fp32"], precision="fp32", builder_optimization_level=4, version_compatible=True,
                   hardware_compatibility="ampere+", timing_cache=cache)
    assert w.config.builder_optimization_level == 4
    assert w.config.hardware_compatibility_level == trt.HardwareCompatibilityLevel.AMPERE_PLUS
    assert "VERSION_COMPATIBLE" in builder_flag_names(w)
    w.config.create_timing_cache.assert_called_once_with(b"")
    assert cache.read_bytes() == b"TIMING-CACHE"
    assert result.manifest["build"]["version_compatible"] is True


def test_build_progress_where_the_release_reports_it(trt, rt, make_world, models, tmp_path, capsys):
    w = make_world()
    build(w, rt, tmp_path, models["fp32"], precision="fp32", progress=True)
    err = capsys.readouterr().err
    if hasattr(trt, "IProgressMonitor"):  # 10.x and 11.x; 8.6 has none
        assert isinstance(w.config.progress_monitor, trt.IProgressMonitor)
        assert "Tactic selection" in err and "Building engine" in err
        assert w.progress_answers == [True] * 4  # the build is never cancelled
    else:
        assert "Tactic selection" not in err


def test_no_progress_monitor_unless_asked(trt, rt, make_world, models, tmp_path):
    w = make_world()
    build(w, rt, tmp_path, models["fp32"], precision="fp32")
    assert not hasattr(w, "progress_answers")


@needs_compat
def test_same_cc_compatibility_only_where_the_release_has_it(trt, rt, make_world, models, tmp_path):
    w = make_world()
    if RELEASE in ("8.6.1", "10.3.0"):  # HardwareCompatibilityLevel.SAME_COMPUTE_CAPABILITY came after 10.3
        with pytest.raises(EngineError, match="no same-compute-capability"):
            build(w, rt, tmp_path, models["fp32"], precision="fp32", hardware_compatibility="same-cc")
    else:
        build(w, rt, tmp_path, models["fp32"], precision="fp32", hardware_compatibility="same-cc")
        assert w.config.hardware_compatibility_level == trt.HardwareCompatibilityLevel.SAME_COMPUTE_CAPABILITY


def test_workspace_larger_than_the_device_is_refused(rt, make_world, models, tmp_path):
    w = make_world()
    with pytest.raises(EngineError, match="larger than the memory of this GPU"):
        build(w, rt, tmp_path, models["fp32"], precision="fp32", workspace="64G")


def test_unified_memory_workspace_is_a_share_of_free_memory(trt, rt, make_world, models, tmp_path):
    w = make_world()
    memory_for(w, rt, integrated=True, free=4 << 30)
    build(w, rt, tmp_path, models["fp32"], precision="fp32")
    w.config.set_memory_pool_limit.assert_called_once_with(trt.MemoryPoolType.WORKSPACE, 2 << 30)


# -- DLA ------------------------------------------------------------------------------------------
def test_dla_on_a_device_without_one(rt, make_world, models, tmp_path):
    w = make_world(num_dla_cores=0, layers=FP16_LAYERS)
    with pytest.raises(EngineError, match="this device has no DLA"):
        build(w, rt, tmp_path, models["fp16"], precision="fp16", dla_core=0, batch="8")


def test_dla_placement_with_gpu_fallback(trt, rt, make_world, models, tmp_path):
    w = make_world(num_dla_cores=2, dla_unsupported={"fc"}, layers=FP16_LAYERS)
    with pytest.raises(EngineError, match="cannot run on DLA .fc.; add --gpu-fallback"):
        build(w, rt, tmp_path, models["fp16"], precision="fp16", dla_core=1, batch="8")
    w = make_world(num_dla_cores=2, dla_unsupported={"fc"}, layers=FP16_LAYERS)
    result = build(w, rt, tmp_path, models["fp16"], precision="fp16", dla_core=1, gpu_fallback=True, batch="8")
    assert w.config.default_device_type == trt.DeviceType.DLA and w.config.DLA_core == 1
    assert "GPU_FALLBACK" in builder_flag_names(w)
    assert ("FP16" in builder_flag_names(w)) == (MAJOR < 11)  # DLA: weak typing where the release has it
    assert result.manifest["dla"] == {"dla": 2, "gpu": 1, "gpu_layers": ["fc"]}
    w.profiles[0].set_shape.assert_called_once_with("input", (8, 3, 8, 8), (8, 3, 8, 8), (8, 3, 8, 8))


# -- implicit calibration -------------------------------------------------------------------------
def test_implicit_calibration_only_where_the_release_has_it(trt, rt, make_world, models, tmp_path):
    w = make_world(layers=INT8_LAYERS)
    calib = tmp_path / "calib.npy"
    np.save(calib, np.random.default_rng(0).standard_normal((20, 3, 8, 8)).astype(np.float32))
    if MAJOR >= 11:
        with pytest.raises(PrecisionError, match="no implicit INT8 calibration.*Q/DQ"):
            build(w, rt, tmp_path, models["fp32"], precision="int8", implicit_calibration=True, calib_dir=calib)
        return
    result = build(w, rt, tmp_path, models["fp32"], precision="int8", implicit_calibration=True, calib_dir=calib, batch="1:8:32")
    assert network_flag_names(trt, w) == ({"EXPLICIT_BATCH"} if MAJOR == 8 else set())
    assert builder_flag_names(w) == {"INT8", "FP16"}
    calib = w.config.int8_calibrator
    assert isinstance(calib, trt.IInt8EntropyCalibrator2)
    assert calib.get_algorithm() == trt.CalibrationAlgoType.ENTROPY_CALIBRATION_2
    w.config.set_calibration_profile.assert_called_once_with(w.profiles[1])
    w.profiles[1].set_shape.assert_called_once_with("input", (8, 3, 8, 8), (8, 3, 8, 8), (8, 3, 8, 8))
    assert result.manifest["calibration"]["method"] == "tensorrt-entropy2"


def test_calibrator_feeds_batches_and_keeps_tensorrts_cache(trt, rt, make_world, tmp_path):
    if MAJOR >= 11:
        pytest.skip("TensorRT 11 has no calibrators (covered by the test above)")
    from rtdeploy.trt.calibrator import make_entropy_calibrator

    w = make_world()
    mem = memory_for(w, rt)
    data = [np.full((5, 3, 8, 8), i, np.float32) for i in range(4)]  # 20 samples -> two batches of 8
    cache = tmp_path / "calib.cache"
    calib = make_entropy_calibrator(trt, iter(data), batch_size=8, input_name="input", memory=mem, cache_path=cache)
    assert calib.read_calibration_cache() is None
    (ptr,) = calib.get_batch(["input"])
    first = np.ctypeslib.as_array((np.ctypeslib.ctypes.c_float * (8 * 3 * 64)).from_address(ptr)).reshape(8, 3, 8, 8)
    assert (first[:5] == 0).all() and (first[5:] == 1).all()
    assert calib.get_batch(["input"]) is not None and calib.get_batch(["input"]) is None
    text = f"TRT-{RELEASE.replace('.', '')[:4]}-EntropyCalibration2\ninput: 3c010a14\n".encode()
    calib.write_calibration_cache(text)
    assert calib.read_calibration_cache() == text
    cache.write_bytes(b"not a cache")
    assert calib.read_calibration_cache() is None


# -- loading --------------------------------------------------------------------------------------
def built_engine(w, rt, tmp_path, models, **kw):
    path = build(w, rt, tmp_path, models["fp32"], precision="fp32", batch="1:8:32", **kw).path
    w.runtime.deserialize_cuda_engine.reset_mock()  # the build deserialized it once to inspect it
    return path


def test_manifest_is_checked_before_deserializing(rt, make_world, models, tmp_path):
    from rtdeploy.trt.runner import TrtRunner

    w = make_world()
    path = built_engine(w, rt, tmp_path, models)
    mp = Path(str(path) + ".json")
    m = json.loads(mp.read_text())
    m["tensorrt"]["version"] = "7.2.3"
    mp.write_text(json.dumps(m))
    with pytest.raises(EngineError, match=rf"built for TensorRT 7.2.3, this machine has TensorRT {RELEASE} .a plan loads only on the release that built it.; rebuild it here: rtdeploy build-engine"):
        TrtRunner(path, trt_module=w.module, memory=w.memory).activate()
    w.runtime.deserialize_cuda_engine.assert_not_called()


def test_other_compute_capability_is_refused(rt, make_world, models, tmp_path):
    from rtdeploy.trt.runner import TrtRunner

    w = make_world()
    path = built_engine(w, rt, tmp_path, models)
    with pytest.raises(EngineError, match=r"compute capability 8.6 \(Fake GPU\), this GPU \(Fake GPU\) has compute 7.2"):
        TrtRunner(path, trt_module=w.module, memory=memory_for(w, rt, cc=(7, 2))).activate()
    w.runtime.deserialize_cuda_engine.assert_not_called()


def test_truncated_or_foreign_engine_files(rt, make_world, models, tmp_path):
    from rtdeploy.trt.runner import TrtRunner

    w = make_world()
    path = built_engine(w, rt, tmp_path, models)
    path.write_bytes(path.read_bytes()[:10])
    with pytest.raises(EngineError, match="does not match its manifest"):
        TrtRunner(path, trt_module=w.module, memory=w.memory).activate()
    foreign = tmp_path / "foreign.engine"
    foreign.write_bytes(b"\x89PNG not an engine")
    with pytest.raises(EngineError, match="is not a TensorRT .* engine or is truncated"):
        TrtRunner(foreign, trt_module=w.module, memory=w.memory).activate()


@needs_compat
def test_version_compatible_engines_allow_host_code(rt, make_world, models, tmp_path):
    from rtdeploy.trt.runner import TrtRunner

    w = make_world()
    path = built_engine(w, rt, tmp_path, models, version_compatible=True)
    with TrtRunner(path, trt_module=w.module, memory=w.memory):
        assert w.runtime.engine_host_code_allowed is True


# -- running --------------------------------------------------------------------------------------
def expected_logits(x: np.ndarray) -> np.ndarray:
    return x.reshape(len(x), -1).astype(np.float32).mean(axis=1)[:, None] * np.arange(1, 5)


@pytest.mark.parametrize("cuda_graph", [False, True])
def test_runner_moves_the_data_and_times_it(rt, make_world, models, tmp_path, cuda_graph):
    from rtdeploy.trt.runner import TrtRunner

    w = make_world()
    path = built_engine(w, rt, tmp_path, models)
    rng = np.random.default_rng(1)
    with TrtRunner(path, trt_module=w.module, memory=w.memory, cuda_graph=cuda_graph) as r:
        assert (r.input_names, r.output_names, str(r.profile)) == (["input"], ["logits"], "1:8:32")
        for batch in (8, 8, 3):
            x = rng.standard_normal((batch, 3, 8, 8)).astype(np.float32)
            out = r.infer({"input": x})
            np.testing.assert_allclose(out["logits"], expected_logits(x), rtol=1e-5, atol=1e-6)
            assert set(r.last_timings) == {"h2d_ms", "compute_ms", "d2h_ms", "total_ms"}
        assert r.infer_device_only() == pytest.approx(0.25) and r.last_timings == {"compute_ms": 0.25}
        with pytest.raises(EngineError, match=r"batch 33 is outside the profile 1:8:32"):
            r.infer({"input": np.zeros((33, 3, 8, 8), np.float32)})
    enqueues = w.context.execute_async_v3.call_count
    # plain: 3 infers + 1 device-only run; graphs: (warm-up + captured enqueue) x 2 shapes, then replays only
    assert enqueues == 4
    assert w.memory.rt.buffers == {}, "the runner left buffers allocated"


def test_runner_takes_fp16_io(rt, make_world, models, tmp_path):
    from rtdeploy.trt.runner import TrtRunner

    w = make_world(io_dtype="HALF", layers=FP16_LAYERS)
    path = build(w, rt, tmp_path, models["fp16"], precision="fp16").path
    x = np.random.default_rng(2).standard_normal((4, 3, 8, 8)).astype(np.float32)
    with TrtRunner(path, trt_module=w.module, memory=w.memory) as r:
        out = r.infer({"input": x})["logits"]
    assert out.dtype == np.float16
    np.testing.assert_allclose(out.astype(np.float32), expected_logits(x.astype(np.float16)), rtol=2e-2, atol=2e-2)


# -- the real bindings with no GPU ------------------------------------------------------------------
def test_real_builder_without_gpu_is_a_missing_dependency(trt):
    from rtdeploy.trt.builder import create_builder, make_logger

    with pytest.raises(MissingDependency, match=rf"TensorRT {RELEASE} could not create a builder: no usable NVIDIA GPU or driver"):
        create_builder(trt, make_logger(trt))


def test_logger_keeps_errors_and_warnings(trt):
    from rtdeploy.trt.builder import make_logger

    logger = make_logger(trt)
    assert isinstance(logger, trt.ILogger)
    logger.log(trt.ILogger.Severity.ERROR, "out of memory")
    logger.log(trt.ILogger.Severity.WARNING, "slow")
    logger.log(trt.ILogger.Severity.VERBOSE, "chatter")
    assert (logger.errors, logger.warnings) == (["out of memory"], ["slow"])


def test_real_runtime_without_gpu_is_a_missing_dependency(trt, tmp_path):
    from rtdeploy.trt.engine_file import load_engine

    path = tmp_path / "x.engine"
    path.write_bytes(b"FAKEPLAN")
    with pytest.raises(MissingDependency, match="could not create a runtime"):
        load_engine(trt, path, device=None)


def test_real_cuda_bindings_without_driver_are_a_missing_dependency(rt):
    from rtdeploy.trt.device_memory import CudaRuntime

    # No driver here: cudaErrorInsufficientDriver with cudaDriverGetVersion() == 0 means "no driver", not "too old";
    # cuda-bindings 11.8 raises RuntimeError instead, a different one on the first call and on later calls.
    for _ in range(2):
        with pytest.raises(MissingDependency, match="no usable NVIDIA GPU: no NVIDIA driver is loaded"):
            CudaRuntime(rt)


def test_signature_checker_catches_wrong_calls(trt):
    """The checker itself must be able to fail: wrong arity, wrong enum, unknown keyword."""
    from fakes import SignatureChecker

    c = SignatureChecker(trt)
    assert c.problems(trt.IBuilderConfig, "set_memory_pool_limit", (trt.MemoryPoolType.WORKSPACE, 1 << 20), {}) is None
    assert c.problems(trt.IBuilderConfig, "set_memory_pool_limit", (1 << 20,), {})
    assert c.problems(trt.IBuilderConfig, "set_flag", (trt.MemoryPoolType.WORKSPACE,), {})
    assert c.problems(trt.IExecutionContext, "execute_async_v3", (), {"stream": 0})
    assert c.problems(trt.IBuilderConfig, "set_timing_cache", (object(), False), {})


# -- defects found by the source-level review (issue 13); each case fails on the code before the fix --
import logging  # noqa: E402

import refdata  # noqa: E402
from fakes import VC_MARK, PLAN_MAGIC, cudart_call_problem, cudart_return_problem  # noqa: E402


@needs_compat
def test_stand_in_refuses_a_version_compatible_plan_without_host_code(make_world):
    """Rule (a) itself: NvInferRuntime.h — engine_host_code_allowed defaults to False and a plan with an
    embedded lean runtime is refused without it (trtexec sampleEngines.cpp:114-118 opts in)."""
    from rtdeploy.trt.builder import make_logger

    w = make_world()
    plan = PLAN_MAGIC + VC_MARK + b"\0" * 48
    runtime = w.module.Runtime(make_logger(w.real))
    assert runtime.deserialize_cuda_engine(plan) is None
    runtime.engine_host_code_allowed = True
    assert runtime.deserialize_cuda_engine(plan) is not None


@needs_compat
def test_version_compatible_build_is_inspected_with_host_code_allowed(rt, make_world, models, tmp_path):
    """Defect 1: the post-build inspection deserialized with a plain Runtime, so every --version-compatible build failed."""
    w = make_world()
    result = build(w, rt, tmp_path, models["fp32"], precision="fp32", version_compatible=True)
    assert result.manifest["build"]["version_compatible"] is True
    assert w.runtimes and all(r.engine_host_code_allowed is True for r in w.runtimes)


def test_plugins_are_registered_before_every_deserialization(rt, make_world, models, tmp_path):
    from rtdeploy.trt.runner import TrtRunner

    w = make_world()
    path = built_engine(w, rt, tmp_path, models)
    with TrtRunner(path, trt_module=w.module, memory=w.memory):
        pass
    deserializations = [i for i, e in enumerate(w.events) if e == "deserialize"]
    assert len(deserializations) == 2
    assert all("plugins" in w.events[:i] for i in deserializations)


@pytest.mark.parametrize("batches", [(8, 3, 8, 3), (3, 8, 8, 3, 3)])
def test_cuda_graph_is_recaptured_after_a_shape_change(rt, make_world, models, tmp_path, batches):
    """Defect 2: the old runner replayed the batch-8 graph after set_input_shape(3) then (8); the stand-in
    asserts on such a replay (rule (b), TensorRT #3798)."""
    from rtdeploy.trt.runner import TrtRunner

    w = make_world()
    path = built_engine(w, rt, tmp_path, models)
    rng = np.random.default_rng(3)
    with TrtRunner(path, trt_module=w.module, memory=w.memory, cuda_graph=True) as r:
        for batch in batches:
            x = rng.standard_normal((batch, 3, 8, 8)).astype(np.float32)
            np.testing.assert_allclose(r.infer({"input": x})["logits"], expected_logits(x), rtol=1e-5, atol=1e-6)
    changes = 1 + sum(a != b for a, b in zip(batches, batches[1:]))
    fake = w.memory.rt
    assert fake.cudaGraphInstantiateWithFlags.call_count == changes  # one capture per run of equal shapes
    assert fake.launched == len(batches)
    assert fake.buffers == {}


def test_failed_capture_runs_without_graphs(rt, make_world, models, tmp_path, caplog):
    """Defect 3: execute_async_v3 failing under capture crashed with the end-capture error; trtexec ends the
    capture, clears the error, warns once and continues without a graph (sampleInference.cpp:1330-1371)."""
    from rtdeploy.trt.runner import TrtRunner

    w = make_world(fail_in_capture=True)
    path = built_engine(w, rt, tmp_path, models)
    rng = np.random.default_rng(4)
    with caplog.at_level(logging.WARNING, logger="rtdeploy.trt.runner"):
        with TrtRunner(path, trt_module=w.module, memory=w.memory, cuda_graph=True) as r:
            for batch in (8, 3, 8):
                x = rng.standard_normal((batch, 3, 8, 8)).astype(np.float32)
                np.testing.assert_allclose(r.infer({"input": x})["logits"], expected_logits(x), rtol=1e-5, atol=1e-6)
    fake = w.memory.rt
    assert [m for m in caplog.messages if "CUDA graph capture failed" in m] and len(caplog.messages) == 1
    assert fake.launched == 0 and fake.cudaGraphInstantiateWithFlags.call_count == 0
    assert fake.last_error == rt.cudaError_t.cudaSuccess, "the capture's error was not cleared"
    assert fake.buffers == {}


def test_runners_share_one_engine(rt, make_world, models, tmp_path):
    """One deserialization, one execution context + stream per runner (for benches alternating batch sizes)."""
    from rtdeploy.trt.runner import TrtRunner, load_shared_engine

    w = make_world()
    path = built_engine(w, rt, tmp_path, models)
    shared = load_shared_engine(path, trt_module=w.module, memory=w.memory)
    rng = np.random.default_rng(5)
    with TrtRunner(engine=shared, cuda_graph=True) as r8, TrtRunner(engine=shared, cuda_graph=True) as r3:
        for _ in range(2):
            for r, batch in ((r8, 8), (r3, 3)):
                x = rng.standard_normal((batch, 3, 8, 8)).astype(np.float32)
                np.testing.assert_allclose(r.infer({"input": x})["logits"], expected_logits(x), rtol=1e-5, atol=1e-6)
        assert len(w.memory.rt.streams) == 2
    assert sum(r.deserialize_cuda_engine.call_count for r in w.runtimes) == 1
    assert w.engine.create_execution_context.call_count == 2
    assert w.memory.rt.cudaGraphInstantiateWithFlags.call_count == 2 and w.memory.rt.buffers == {}


def test_profiler_is_attached_and_refused_with_graphs(trt, rt, make_world, models, tmp_path):
    from rtdeploy.trt.runner import TrtRunner

    class Profiler(trt.IProfiler):
        def __init__(self):
            trt.IProfiler.__init__(self)

        def report_layer_time(self, layer_name, ms):
            pass

    w = make_world()
    path = built_engine(w, rt, tmp_path, models)
    profiler = Profiler()
    with TrtRunner(path, trt_module=w.module, memory=w.memory, profiler=profiler):
        assert w.context.profiler is profiler
    with pytest.raises(ValueError, match="profiler= needs cuda_graph=False"):
        TrtRunner(path, trt_module=w.module, memory=w.memory, profiler=profiler, cuda_graph=True)


def test_io_without_a_numpy_type_is_a_clear_error(trt, rt, make_world, models, tmp_path):
    """Defect 7: BF16/FP8 I/O raised trt.nptype's TypeError; now one EngineError naming the tensor."""
    from rtdeploy.trt.runner import TrtRunner

    w = make_world()
    path = built_engine(w, rt, tmp_path, models)
    if not hasattr(trt.DataType, "FP8"):
        pytest.skip("TensorRT 8.5 has no I/O type without a numpy type (FP8 came with 8.6)")
    w.io_dtype = "FP8"  # present from 8.6 on; the real trt.nptype has no numpy type for it
    with pytest.raises(EngineError, match="tensor input is FP8, which has no numpy type"):
        TrtRunner(path, trt_module=w.module, memory=w.memory).activate()
    assert w.memory.rt.buffers == {}


def test_calibrator_frees_its_buffer_and_stream(rt, make_world, models, tmp_path):
    """Defect 7: the implicit calibrator's device buffer and stream outlived the build."""
    if MAJOR >= 11:
        pytest.skip("TensorRT 11 has no calibrators")
    w = make_world(layers=INT8_LAYERS)
    mem = memory_for(w, rt)
    calib = tmp_path / "calib.npy"
    np.save(calib, np.random.default_rng(0).standard_normal((20, 3, 8, 8)).astype(np.float32))
    build(w, rt, tmp_path, models["fp32"], precision="int8", implicit_calibration=True, calib_dir=calib, batch="1:8:32")
    assert w.config.int8_calibrator.batches_used == 1
    assert mem.rt.buffers == {} and mem.rt.streams == set()


def _fp16_model_with_guard(models, tmp_path, kept=("fc",)):
    import shutil

    from rtdeploy.artifacts import read_manifest, write_manifest

    path = tmp_path / "guarded.fp16.onnx"
    shutil.copy(models["fp16"], path)
    m = read_manifest(models["fp16"])
    m["fp16"] = {**m["fp16"], "kept_fp32": [{"node": n, "reason": "test"} for n in kept]}
    write_manifest(path, {**m, "sha256": m["sha256"]})
    return path


@pytest.mark.parametrize("dla", [False, True])
def test_fp16_guard_layers_are_pinned_where_typing_is_weak(trt, rt, make_world, models, tmp_path, dla):
    """Defect 4: weakly typed builds (8.6; DLA on 10.x) treat Casts as hints (NvInfer.h ILayer::setPrecision);
    the FP16 stage's FP32 layers get precision FP32 and OBEY_PRECISION_CONSTRAINTS (and the stand-in, rule (d),
    runs fc FP16 unless TensorRT must obey, so the build's check would fail otherwise)."""
    w = make_world(layers=FP16_LAYERS, num_dla_cores=1 if dla else 0, weak_fp16=("fc",))
    onnx = _fp16_model_with_guard(models, tmp_path)
    kw = dict(dla_core=0, gpu_fallback=True, batch="8") if dla else {}
    result = build(w, rt, tmp_path, onnx, precision="fp16", **kw)
    fc = next(layer for layer in w.layer_mocks if layer.name == "fc")
    weak = MAJOR == 8 or (dla and MAJOR == 10)
    if weak:
        assert "OBEY_PRECISION_CONSTRAINTS" in builder_flag_names(w)
        assert fc.precision == trt.float32
        fc.set_output_type.assert_called_once_with(0, trt.float32)
        assert result.manifest["build"]["precision_constraints"]["layers"] == ["fc"]
    else:
        assert "OBEY_PRECISION_CONSTRAINTS" not in builder_flag_names(w)
        assert result.manifest["build"]["precision_constraints"] is None
        if hasattr(fc, "set_output_type"):  # 11.x layers have none
            fc.set_output_type.assert_not_called()


def _real_layers(stem: str, **fallback) -> str:
    if not refdata.stems():
        pytest.skip(f"the real engine JSONs are not at {refdata.graphs_dir()} (../shared/reference/trt-engine-graphs)")
    data = refdata.load(stem)
    if fallback:
        data = refdata.with_fallback(data, **fallback)
    if MAJOR >= 11:
        data = refdata.to_trt11_form(data)
    return json.dumps(data)


@pytest.mark.parametrize("stem,precision", [("a100-resnet18-qat", "int8"), ("rtx3090-resnet50-fp16", "fp16"),
                                            ("a100-resnet18-fp32", "fp32")])
def test_real_inspector_output_is_judged_by_compute_layers(rt, make_world, models, tmp_path, stem, precision):
    w = make_world(layers_json=_real_layers(stem))
    tf32 = precision == "fp32"  # this real FP32 engine was built with TF32 on (its default): 20 of 21 convs run TF32
    result = build(w, rt, tmp_path, models[precision], precision=precision, tf32=tf32)
    layers = result.manifest["layers"]
    total = {"a100": 21, "rtx3090": 54}[stem.split("-")[0]]
    by = {"fp32": 1, "tf32": 20} if tf32 else {precision: total}
    assert layers["verified"] is True and layers["ok"] is True and layers["verifiable"] is True
    assert layers["compute"] == {"total": total, "by_precision": by} and result.manifest["build"]["tf32"] is tf32
    assert layers["schema"] == ("11.x" if MAJOR >= 11 else "8.x/10.x") and layers["fallbacks"] == []


def test_fp32_builds_clear_tf32_and_fail_where_it_still_runs(trt, rt, make_world, models, tmp_path):
    """Finding 7 of issue 19: BuilderFlag.TF32 is on by default (NvInfer.h @5302b288:10486-10488, "Enabled by default"),
    so FP32 engines ran TF32 (20 of 21 convolutions of NVIDIA's A100 FP32 engine). FP32 builds now clear it unless
    --tf32 (Polygraphy clears it by default), and a plan that still reports TF32 layers is not written."""
    w = make_world(layers_json=_real_layers("a100-resnet18-fp32"))
    with pytest.raises(EngineError, match=r"FP32 was asked, but TensorRT built 20 of 21 compute layers below what was asked "
                                          r"\(.* \(asked FP32, got TF32\).*TF32 ran where FP32 was asked.*--tf32"):
        build(w, rt, tmp_path, models["fp32"], precision="fp32")
    w.config.clear_flag.assert_called_once_with(trt.BuilderFlag.TF32)
    assert not (tmp_path / "model.engine").exists()
    w = make_world()
    build(w, rt, tmp_path, models["fp32"], precision="fp32", tf32=True)
    w.config.clear_flag.assert_not_called()


def test_every_layer_kept_in_float_is_pinned_where_typing_is_weak(trt, rt, make_world, models, tmp_path):
    """Finding 6: only the FP16 guard's layers were pinned; an INT8 Q/DQ graph's unquantized fc (asked FP32: onnxruntime
    measured it so) and --keep-fp layers were not, so on weakly typed 8.x builds they could run FP16 (rule (d))."""
    w = make_world(layers=[INT8_LAYERS[0], ("fc", "CaskGemmConvolution", "Row major linear FP16 format")], weak_fp16=("fc",))
    result = build(w, rt, tmp_path, models["int8"], precision="int8")
    fc = next(layer for layer in w.layer_mocks if layer.name == "fc")
    if MAJOR == 8:
        assert "OBEY_PRECISION_CONSTRAINTS" in builder_flag_names(w) and fc.precision == trt.float32
        assert result.manifest["build"]["precision_constraints"]["layers"] == ["fc"]
    assert result.manifest["layers"]["ok"] is True and "fc" in result.manifest["layers"]["kept_float"]
    assert [c["precision"] for c in result.manifest["layers"]["compute_layers"]] == ["int8", "fp32"]


def test_real_inspector_output_with_fallen_back_convs_fails_the_build(rt, make_world, models, tmp_path):
    """Defect 5: the old check passed an INT8 engine whose convolutions all ran FP16, because the INT8
    pooling layer of this real file (CudaPooling, Int8 tensors) counted as "INT8 present"."""
    data = refdata.load("a100-resnet18-qat-residual-qgap") if refdata.stems() else None
    names = refdata.compute_layer_names(data) if data else []
    w = make_world(layers_json=_real_layers("a100-resnet18-qat-residual-qgap", names=names, to="fp16"))
    with pytest.raises(EngineError, match=rf"INT8 was asked, but TensorRT built 21 of 21 compute layers above it \({re.escape(names[0])} "
                                          r"\(asked INT8, got FP16\)"):
        build(w, rt, tmp_path, models["int8"], precision="int8")
    assert not (tmp_path / "model.engine").exists()
    w = make_world(layers_json=_real_layers("a100-resnet18-qat-residual-qgap", names=names[5:6], to="fp32"))
    with pytest.raises(EngineError, match=rf"1 of 21 compute layers above it \({re.escape(names[5])} \(asked INT8, got FP32\)"):
        build(w, rt, tmp_path, models["int8"], precision="int8")


@needs_compat
def test_hardware_compatibility_is_checked_against_the_build_gpu(rt, make_world, models, tmp_path):
    """Defect 6: NvInfer.h HardwareCompatibilityLevel — kAMPERE_PLUS needs an Ampere+ GPU to build on."""
    w = make_world()
    memory_for(w, rt, cc=(7, 5))
    with pytest.raises(EngineError, match=r"--hardware-compatibility ampere\+ needs an Ampere or newer GPU to build on .* has compute 7.5"):
        build(w, rt, tmp_path, models["fp32"], precision="fp32", hardware_compatibility="ampere+")
    w.builder.build_serialized_network.assert_not_called()


def test_manifest_records_the_platform(rt, make_world, models, tmp_path):
    from rtdeploy.trt.engine_file import this_platform
    from rtdeploy.trt.runner import TrtRunner

    w = make_world()
    path = built_engine(w, rt, tmp_path, models)
    mp = Path(str(path) + ".json")
    m = json.loads(mp.read_text())
    assert m["platform"] == this_platform()
    other = "linux-aarch64" if m["platform"] != "linux-aarch64" else "linux-x86_64"
    mp.write_text(json.dumps({**m, "platform": other}))
    with pytest.raises(EngineError, match=rf"built for the {other} platform, this machine is {this_platform()} .*; rebuild it here"):
        TrtRunner(path, trt_module=w.module, memory=w.memory).activate()


@pytest.mark.parametrize("error,driver,message", [
    ("cudaErrorNoDevice", 12040, "the driver is installed but reports no CUDA device"),
    ("cudaErrorInsufficientDriver", 0, "no NVIDIA driver is loaded"),
    ("cudaErrorInsufficientDriver", 12020, r"the NVIDIA driver supports CUDA 12.2, older than the CUDA \d+\.\d+ that cuda-python \d+.x needs")])
def test_no_gpu_reasons_are_told_apart(rt, make_world, error, driver, message):
    """Defect 7: cuda-python 13 on a CUDA 12 driver said "no usable NVIDIA GPU" like a machine without one."""
    from rtdeploy.trt.device_memory import CudaRuntime

    fake = FakeCudart(rt, make_world(), driver=driver, device_error=error)
    runtime_version = rt.cudaRuntimeGetVersion()[1]
    if "older" in message and runtime_version <= driver:
        pytest.skip("this cuda-bindings runtime is not newer than the simulated driver")
    with pytest.raises(MissingDependency, match=message):
        CudaRuntime(fake)
    if "older" in message:
        with pytest.raises(MissingDependency, match=rf'install cuda-python<{runtime_version // 1000} '):
            CudaRuntime(fake)


def test_cudart_checks_can_fail(rt):
    """The cudart stand-in's checks themselves: a bare create_autospec of these functions accepts anything."""
    from unittest import mock

    assert mock.create_autospec(rt.cudaMalloc, return_value=(0, 1))(1, 2, 3) == (0, 1)  # why the checks are needed
    ok = rt.cudaError_t.cudaSuccess
    assert cudart_call_problem(rt.cudaMalloc, (64,), {}) is None
    assert cudart_call_problem(rt.cudaMalloc, (64, 0), {})
    assert cudart_call_problem(rt.cudaGraphInstantiateWithFlags, (object(),), {})
    assert cudart_call_problem(rt.cudaGraphInstantiateWithFlags, (object(), 0), {}) is None  # one signature in 11.8, 12.x, 13.x
    if rt.cudaRuntimeGetVersion()[1] < 12000:  # crash 1 of issue 19: 11.8 takes (graph, pLogBuffer, bufferSize)
        assert cudart_call_problem(rt.cudaGraphInstantiate, (object(), 0), {})
    assert cudart_return_problem(rt.cudaMalloc, (ok, 1)) is None
    assert cudart_return_problem(rt.cudaStreamSynchronize, (ok, 1))
    assert cudart_return_problem(rt.cudaMemGetInfo, (ok, 1))


def test_inspect_reads_a_plan_through_the_engine_inspector(rt, make_world, models, tmp_path):
    from rtdeploy.trt.inspect_file import inspect_file

    w = make_world(layers_json=_real_layers("a100-resnet18-qat"))
    path = build(w, rt, tmp_path, models["int8"], precision="int8").path
    result = inspect_file(path, expect="int8", trt_module=w.module, memory=w.memory)
    assert result.source == "engine" and result.verdict["ok"] is True
    assert result.report["compute"] == {"total": 21, "by_precision": {"int8": 21}} and result.failure() is None
    assert w.events.count("deserialize") == 2 and w.events[-2:] == ["plugins", "deserialize"]


def test_derived_surface_hides_what_the_old_release_lacks(trt, make_world):
    """The 8.5.3 stand-in (surface.py over the real 8.6.1 bindings) lacks what NVIDIA's 8.5.3 sources do not declare
    (surface-8.5.3.json) and keeps the rest; real enum values and specced mocks still pass isinstance."""
    surface = os.environ.get("RTDEPLOY_CONFORMANCE_SURFACE")
    if not surface:
        pytest.skip("this release runs on its own real bindings")
    from surface import load_surface

    hidden = load_surface(surface)["hidden"]
    assert all(not hasattr(trt, name) for name in hidden["module"])
    for scope, names in hidden["members"].items():
        assert all(not hasattr(getattr(trt, scope), n) for n in names), scope
    assert not hasattr(trt, "HardwareCompatibilityLevel") and not hasattr(trt.BuilderFlag, "VERSION_COMPATIBLE")
    assert hasattr(trt.IExecutionContext, "execute_async_v3") and hasattr(trt.ICudaEngine, "get_tensor_profile_shape")
    assert isinstance(trt.BuilderFlag.FP16, trt.BuilderFlag)
    w = make_world()
    assert isinstance(w.config, trt.IBuilderConfig)
    with pytest.raises(AttributeError):
        w.config.builder_optimization_level = 3
    with pytest.raises(AttributeError):
        w.runtime.engine_host_code_allowed = True


def test_runners_that_take_turns_share_one_scratch_buffer(trt, rt, make_world, models, tmp_path):
    """Issue 19 (minor): bench opened (batch sizes x streams) contexts, each with its own device memory (Jetson's
    unified memory ran out). Runners that never run at once now share one buffer per lane; the stand-in enforces
    rule (f): memory given before the first enqueue, 256-byte aligned, at least the engine's size."""
    from rtdeploy.trt.runner import ScratchPool, TrtRunner, load_shared_engine, scratch_size

    w = make_world()
    path = built_engine(w, rt, tmp_path, models)
    shared = load_shared_engine(path, trt_module=w.module, memory=w.memory)
    pool = ScratchPool(w.memory)
    before = len(w.contexts)  # the build's inspection made one of its own
    rng = np.random.default_rng(6)
    with TrtRunner(engine=shared, cuda_graph=True, scratch=pool.get(0, scratch_size(shared.trt, shared.engine))) as r8, \
            TrtRunner(engine=shared, cuda_graph=True, scratch=pool.get(0, scratch_size(shared.trt, shared.engine))) as r3:
        for r, batch in ((r8, 8), (r3, 3), (r8, 8)):
            x = rng.standard_normal((batch, 3, 8, 8)).astype(np.float32)
            np.testing.assert_allclose(r.infer({"input": x})["logits"], expected_logits(x), rtol=1e-5, atol=1e-6)
    contexts = w.contexts[before:]
    assert len(contexts) == 2 and all(c["user_managed"] for c in contexts)
    if hasattr(trt, "ExecutionContextAllocationStrategy"):
        strategies = [c.args for c in w.engine.create_execution_context.call_args_list]
        assert strategies == [(trt.ExecutionContextAllocationStrategy.USER_MANAGED,)] * 2
        assert len({c["memory"] for c in contexts}) == 1  # one buffer, given to both
    else:
        assert w.engine.create_execution_context_without_device_memory.call_count == 2
    assert pool.total_bytes == w.scratch_bytes
    pool.close()
    assert w.memory.rt.buffers == {}


def test_stand_in_refuses_an_enqueue_without_the_memory_it_was_promised(trt, rt, make_world, models, tmp_path):
    """Rule (f) itself must be able to fail: a context made without device memory and never given any."""
    from rtdeploy.trt.runner import Scratch, TrtRunner

    w = make_world()
    path = built_engine(w, rt, tmp_path, models)
    too_small = Scratch(w.memory.malloc(256), 256)
    with pytest.raises(EngineError, match="smaller than the .* bytes this engine needs"):
        TrtRunner(path, trt_module=w.module, memory=w.memory, scratch=too_small).activate()
    context = w.engine.create_execution_context_without_device_memory() if not hasattr(trt, "ExecutionContextAllocationStrategy") \
        else w.engine.create_execution_context(trt.ExecutionContextAllocationStrategy.USER_MANAGED)
    with pytest.raises(AssertionError, match="before any was given"):
        context.execute_async_v3(0)
    w.memory.free(too_small.ptr)


def test_a_partial_batch_on_a_static_engine_is_padded(rt, make_world, models, tmp_path):
    """Issue 19 (minor): `validate` of a static-profile engine failed on its data set's last, partial batch
    ("batch 3 is outside the profile 8:8:8"); the runner now pads it to the profile's MIN and returns its own rows.
    The stand-in refuses set_input_shape outside the profile (NvInferRuntime.h, setInputShape returns false)."""
    from rtdeploy.trt.runner import TrtRunner

    w = make_world(profile=(8, 8, 8))
    path = built_engine(w, rt, tmp_path, models)
    rng = np.random.default_rng(7)
    with TrtRunner(path, trt_module=w.module, memory=w.memory, cuda_graph=True) as r:
        assert str(r.profile) == "8:8:8"
        for batch in (8, 3, 8):
            x = rng.standard_normal((batch, 3, 8, 8)).astype(np.float32)
            out = r.infer({"input": x})["logits"]
            assert out.shape == (batch, 4)
            np.testing.assert_allclose(out, expected_logits(x), rtol=1e-5, atol=1e-6)
        with pytest.raises(EngineError, match=r"batch 9 is outside the profile 8:8:8"):
            r.infer({"input": np.zeros((9, 3, 8, 8), np.float32)})
    assert all(c.args[1][0] == 8 for c in w.context.set_input_shape.call_args_list)


def test_a_foreign_plan_without_a_manifest_says_why_it_may_not_load(trt, rt, make_world, models, tmp_path):
    """Issue 19 (minor): a version-compatible plan from trtexec (no rtdeploy manifest) was deserialized without host
    code and refused as "not an engine or truncated". It is still not given host code (rule (a): the application must
    opt in; a plan without a manifest is untrusted), but the line now says so and how to get a plan that loads."""
    from rtdeploy.trt.runner import TrtRunner

    w = make_world()
    foreign = tmp_path / "trtexec-vc.engine"
    foreign.write_bytes(PLAN_MAGIC + VC_MARK + b"\0" * 48)
    with pytest.raises(EngineError) as err:
        TrtRunner(foreign, trt_module=w.module, memory=memory_for(w, rt)).activate()
    assert "is not a TensorRT" in str(err.value)
    if COMPAT:
        assert "deserialized without host code, so a version-compatible plan (trtexec --versionCompatible) fails this way" in str(err.value)
        assert all(r.engine_host_code_allowed is False for r in w.runtimes)


@pytest.mark.parametrize("dla", [False, True])
def test_a_weak_build_with_fallbacks_is_written_but_not_called_verified(rt, make_world, models, tmp_path, dla):
    """Finding 9 of issue 19: `layers.verified: true` was written for engines with fallbacks (it meant "could be
    judged"); the schema says it means "the asked precision runs". Weakly typed builds (8.x; DLA on 10.x) may pick a
    wider kernel and are written, with ok false and verifiable true; explicit (strongly typed) builds fail instead."""
    layers = [FP16_LAYERS[0], ("fc", "CaskGemmConvolution", "Row major linear FP32")]  # fc ran FP32, asked FP16
    w = make_world(layers=layers, num_dla_cores=1 if dla else 0)
    kw = dict(dla_core=0, gpu_fallback=True, batch="8") if dla else {}
    weak = MAJOR == 8 or (dla and MAJOR == 10)
    if not weak:
        with pytest.raises(EngineError, match=r"FP16 was asked, but TensorRT built 1 of 2 compute layers above it \(fc \(asked FP16, got FP32\)"):
            build(w, rt, tmp_path, models["fp16"], precision="fp16", **kw)
        return
    m = build(w, rt, tmp_path, models["fp16"], precision="fp16", **kw).manifest["layers"]
    assert (m["verified"], m["ok"], m["verifiable"]) == (False, False, True)
    assert m["fallbacks"] == [{"name": "fc", "asked": "fp16", "got": "fp32"}]
