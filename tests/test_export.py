"""Export to ONNX and validation against PyTorch for every depth of both families."""

from __future__ import annotations

import numpy as np
import pytest

from rtdeploy.artifacts import read_manifest
from rtdeploy.files import manifest_path, sha256_file
from rtdeploy.errors import ExportError
from rtdeploy.export import ExportConfig, export_onnx
from rtdeploy.validate.reference import torch_model_from_manifest
from rtdeploy.validate import ValidateConfig, validate_model

QUICK = [18, 34, 50, 20, 32, 44, 56, 110]
SLOW = [101, 152]


def _size(depth: int) -> int | None:
    return 64 if depth in (18, 34, 50, 101, 152) else None  # ImageNet models at 64x64 keep this quick


def _export_and_validate(exported, depth):
    result = exported(depth, _size(depth))
    report = validate_model(ValidateConfig(model=result.path, samples=4, batch=2))
    assert report.passed, report.failure_message()
    assert report.reference.startswith("torch")
    stats = report.sets[0].outputs["logits"]
    assert stats["samples"] == 4 and stats["nonfinite"] == 0
    return result


@pytest.mark.parametrize("depth", QUICK)
@pytest.mark.slow
def test_export_and_validate(exported, depth):
    _export_and_validate(exported, depth)


@pytest.mark.slow
@pytest.mark.parametrize("depth", SLOW)
def test_export_and_validate_deep(exported, depth):
    _export_and_validate(exported, depth)


@pytest.mark.slow
def test_graph_is_checked_and_batchnorm_folded(exported):
    import onnx

    result = exported(50, 64)
    model = onnx.load(str(result.path))
    onnx.checker.check_model(model, full_check=True)
    ops = {n.op_type for n in model.graph.node}
    assert "BatchNormalization" not in ops and "Conv" in ops
    assert result.manifest["ops"]["Conv"] == 53
    assert len(model.graph.value_info) > 0, "shape inference results are stored"


def test_manifest_records_model_versions_and_hashes(exported):
    result = exported(20)
    m = read_manifest(result.path)
    assert m == result.manifest
    assert m["kind"] == "onnx" and m["precision"] == "fp32"
    assert m["sha256"] == sha256_file(result.path)
    assert (m["model"]["family"], m["model"]["depth"], m["model"]["image_size"]) == ("cifar", 20, 32)
    assert m["model"]["mean"] == [0.485, 0.456, 0.406]
    assert m["export"]["opset"] == 17 and m["export"]["batch"] == "dynamic"
    assert {"torch", "onnx", "rtdeploy", "python"} <= set(m["versions"])
    assert m["weights"] == {"path": None, "init_seed": 0}


@pytest.mark.parametrize("batch", [1, 3])
def test_dynamic_batch_runs_any_batch(exported, batch):
    import onnxruntime as ort

    result = exported(18, 64)
    session = ort.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
    inp = session.get_inputs()[0]
    assert inp.name == "input" and inp.shape == ["batch", 3, 64, 64]
    out = session.run(["logits"], {"input": np.zeros((batch, 3, 64, 64), np.float32)})[0]
    assert out.shape == (batch, 1000)


@pytest.mark.slow
def test_fixed_batch_and_input_size_other_than_trace_size(tmp_path):
    import onnxruntime as ort

    result = export_onnx(ExportConfig(depth=18, output=tmp_path / "r18.onnx", image_size=80, batch=2, num_classes=5))
    session = ort.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].shape == [2, 3, 80, 80]
    assert session.get_outputs()[0].shape == [2, 5]
    report = validate_model(ValidateConfig(model=result.path, samples=4, batch=2))
    assert report.passed, report.failure_message()


def test_weights_are_recorded_and_rebuilt(tmp_path, cifar_weights):
    w = cifar_weights(20)
    result = export_onnx(ExportConfig(depth=20, output=tmp_path / "r20.onnx", weights=w))
    assert result.manifest["weights"] == {"path": str(w.resolve()), "sha256": sha256_file(w)}
    import torch

    model = torch_model_from_manifest(result.manifest)
    from rtdeploy.models import build_model, load_weights, model_meta

    ref = build_model(model_meta(20))
    load_weights(ref, w)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), ref.state_dict().values()))


def test_seeded_export_is_reproducible(tmp_path):
    a = export_onnx(ExportConfig(depth=20, output=tmp_path / "a.onnx"))
    b = export_onnx(ExportConfig(depth=20, output=tmp_path / "b.onnx"))
    assert a.manifest["sha256"] == b.manifest["sha256"]


@pytest.mark.parametrize("kw,match", [({"opset": 12}, "opset 12"), ({"opset": 21}, "13..20"), ({"batch": "many"}, "'many'"), ({"batch": 0}, "positive")])
def test_bad_export_options(tmp_path, kw, match):
    with pytest.raises(ExportError, match=match):
        export_onnx(ExportConfig(depth=20, output=tmp_path / "x.onnx", **kw))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
@pytest.mark.shared_data
def test_cifar_resnet56_onnx_accuracy_matches_pytorch(tmp_path, cifar_root, cifar_weights):
    """All 3,000 dev images: onnxruntime's top-1 equals PyTorch's within 0.1 point."""
    result = export_onnx(ExportConfig(depth=56, output=tmp_path / "r56.onnx", weights=cifar_weights(56)))
    report = validate_model(ValidateConfig(model=result.path, images=cifar_root / "dev", batch=250))
    images = next(s for s in report.sets if s.name == "images")
    stats = images.outputs["logits"]
    assert images.samples == 3000
    assert abs(stats["reference_accuracy"] - stats["candidate_accuracy"]) <= 0.001
    # The README measures 82.93 % for PyTorch; a preprocessing bug would show as a large drop.
    assert stats["reference_accuracy"] > 0.80
    assert report.passed, report.failure_message()
    assert manifest_path(result.path).exists()


@pytest.mark.parametrize("depth", [pytest.param(50, marks=pytest.mark.slow), 20])
def test_batchnorm_folding_preserves_the_function(depth):
    import torch

    from rtdeploy.export.onnx_export import fold_batchnorms
    from rtdeploy.models import build_model, model_meta

    meta = model_meta(depth, image_size=32)
    model = build_model(meta)
    gen = torch.Generator().manual_seed(1)
    for m in model.modules():  # trained-looking statistics, so a wrong formula cannot hide
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
    n_bn = sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    x = torch.randn(2, 3, 32, 32, generator=gen)
    with torch.no_grad():
        before = model(x)
        assert fold_batchnorms(model) == n_bn
        after = model(x)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    torch.testing.assert_close(after, before, rtol=1e-4, atol=1e-4 * before.abs().max().item())
