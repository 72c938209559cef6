"""Every config.pbtxt `rtdeploy package` writes, held to Triton's own rules (tests/triton_rules.py,
each rule citing its source in Triton's repositories), over every package kind and the models of
the issue: dynamic and fixed batch, FP32/FP16/INT8/CPU-INT8, imported models with int64/bool and
twelve more output types, a scalar output and odd names, and engines of profiles 1:8:32, 8:8:8,
4:4:4 (fixed-batch ONNX), 4:16:32, on DLA, version-compatible, and built by TensorRT 8.6."""

from __future__ import annotations

import pytest

from rtdeploy.errors import PackageError

tritonclient = pytest.importorskip("tritonclient.grpc.model_config_pb2", reason="tritonclient[grpc] (dev extra) not installed")

from triton_rules import RULES, SOURCES, Subject, build_matrix, check, package_case  # noqa: E402


@pytest.fixture(scope="module")
def packaged(tmp_path_factory, exported):
    """(case, config path or the refusal) for every case of the matrix, packaged once."""
    folder = tmp_path_factory.mktemp("triton-rules")
    out = []
    for i, case in enumerate(build_matrix(folder / "models", resnet=exported(20).path)):
        try:
            out.append((case, package_case(case, folder / "repo", f"m{i}")))
        except PackageError as e:
            out.append((case, e))
    return out


@pytest.mark.parametrize("rule", RULES)
def test_every_packaged_config_keeps_triton_rule(packaged, rule):
    broken = []
    for case, config in packaged:
        if isinstance(config, Exception):
            continue
        problems = check(config, case.subject)
        if "parse" not in problems or problems["parse"]:
            problems = {"parse": problems["parse"]}
        if problems.get(rule):
            broken.append(f"{case.label}: {problems[rule][0]}")
    assert not broken, f"Triton rule {rule!r} ({SOURCES[rule]}) broken by:\n" + "\n".join(broken)


def test_only_engines_triton_cannot_keep_within_their_profile_are_refused(packaged):
    refused = {case.label: str(config) for case, config in packaged if isinstance(config, Exception)}
    assert sorted(refused) == sorted(case.label for case, _ in packaged if case.refused_by_design)
    for message in refused.values():
        assert "\n" not in message and "rebuild with --batch 1:16:32" in message


def test_refused_package_writes_nothing(packaged, tmp_path):
    case = next(c for c, config in packaged if isinstance(config, Exception))
    with pytest.raises(PackageError):
        package_case(case, tmp_path / "repo", "x")
    assert not (tmp_path / "repo" / "x").exists()


ONNX = Subject("onnxruntime_onnx", {"input": ("TYPE_FP32", (-1, 3, 8, 8))}, {"logits": ("TYPE_FP32", (-1, 10)),
                                                                          "label": ("TYPE_INT64", (-1,))})
ENGINE = Subject("tensorrt_plan", {"input": ("TYPE_FP32", (-1, 3, 8, 8))}, {"logits": ("TYPE_FP32", (-1, 10))}, profile=(8, 8), dla_core=0)
GOOD_ONNX = '''name: "m" platform: "onnxruntime_onnx" max_batch_size: 8
input [ { name: "input" data_type: TYPE_FP32 dims: [ 3, 8, 8 ] } ]
output [ { name: "logits" data_type: TYPE_FP32 dims: [ 10 ] }, { name: "label" data_type: TYPE_INT64 dims: [ 1 ] reshape { shape: [ ] } } ]
instance_group [ { kind: KIND_CPU count: 1 } ]'''


@pytest.mark.parametrize("rule,subject,text", [
    ("io_shape", ONNX, GOOD_ONNX.replace("dims: [ 1 ] reshape { shape: [ ] }", "dims: [ ]")),        # the rank-1 output of old
    ("backend_io", ONNX, GOOD_ONNX.replace("TYPE_INT64", "TYPE_INT32")),
    ("backend_io", ONNX, GOOD_ONNX.replace('"label"', '"label2"')),
    ("config", ONNX, GOOD_ONNX.replace("max_batch_size: 8", "max_batch_size: 8 dynamic_batching { preferred_batch_size: 16 }")),
    ("requests", ENGINE, '''name: "m" platform: "tensorrt_plan" max_batch_size: 8
        input [ { name: "input" data_type: TYPE_FP32 dims: [ 3, 8, 8 ] } ] output [ { name: "logits" data_type: TYPE_FP32 dims: [ 10 ] } ]
        instance_group [ { kind: KIND_GPU secondary_devices [ { kind: KIND_NVDLA device_id: 0 } ] } ]'''),
    ("runtime", ENGINE, '''name: "m" platform: "tensorrt_plan" max_batch_size: 0
        input [ { name: "input" data_type: TYPE_FP32 dims: [ 8, 3, 8, 8 ] } ] output [ { name: "logits" data_type: TYPE_FP32 dims: [ 8, 10 ] } ]
        instance_group [ { kind: KIND_GPU } ]'''),
], ids=["rank-1-empty-dims", "wrong-type", "unknown-output", "preferred-above-max", "batch-below-profile", "dla-without-nvdla"])
def test_each_rule_can_fail(tmp_path, rule, subject, text):
    assert not any(check(_write(tmp_path / "good", GOOD_ONNX), ONNX).values()), "the reference config must pass"
    assert check(_write(tmp_path / "bad", text), subject)[rule], f"rule {rule} did not see the fault"


def _write(folder, text):
    (folder / "m").mkdir(parents=True)
    (folder / "m" / "config.pbtxt").write_text(text)
    return folder / "m" / "config.pbtxt"


@pytest.mark.parametrize("text", ['name: "m" input [ { name: "image "rgb"" data_type: TYPE_FP32 dims: [ 3 ] } ]',
                                  'name: "m" output [ { name: "x" data_type: TYPE_UNKNOWN_9 dims: [ 3 ] } ]'],
                         ids=["unescaped-name", "unknown-type"])
def test_parse_rule_can_fail(tmp_path, text):
    assert check(_write(tmp_path, text), ONNX)["parse"]
