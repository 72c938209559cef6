"""Models rtdeploy did not make, through import -> quantize -> validate.

Real trained CIFAR ResNets exported with plain ``torch.onnx.export`` from a definition written
in ``tests/foreign_nets.py`` (BatchNorm left in the graph, other names, opset 13, fixed and
dynamic batch) must agree with their FP32 model after INT8 within 0.3 points of what rtdeploy's
own export of the same weights reaches; small non-ResNet CNNs (a plain conv stack, a depthwise
stack) go through the whole chain. Fast tests check the two changes that make this work: the
shortcut of a residual Add behind an unfolded BatchNorm is found, and a fixed-batch model is
calibrated in batches of its own size with exactly the statistics of the dynamic-batch model.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from foreign_nets import (DepthwiseNet, PaperCifarResNet, PlainConvNet, agreement_pair, export_plain,
                          load_cifar_checkpoint, trained_briefly)


def _random_calibration(path, n=32, size=32):
    np.save(path, np.random.default_rng(0).normal(size=(n, 3, size, size)).astype(np.float32))
    return path


@pytest.mark.slow
def test_unfolded_batchnorm_resnet_gets_the_same_qdq_plan_as_rtdeploys_export(tmp_path):
    import onnx

    from rtdeploy import api
    from rtdeploy.precision.int8.qdq import plan_qdq

    torch.manual_seed(0)
    foreign = onnx.load(str(export_plain(trained_briefly(PaperCifarResNet(20)), tmp_path / "f.onnx")))
    assert sum(n.op_type == "BatchNormalization" for n in foreign.graph.node) == 19
    own = onnx.load(str(api.export(model="resnet20", output=tmp_path / "o.onnx").path))
    kinds = lambda plan: sorted(u.op_type for u in plan.units)  # noqa: E731
    # 19 Conv + 1 Gemm + 9 residual Adds each; before issue 10 the Adds behind a BatchNorm were missed.
    assert kinds(plan_qdq(foreign)) == kinds(plan_qdq(own)) == ["Add"] * 9 + ["Conv"] * 19 + ["Gemm"]


@pytest.mark.slow
def test_fixed_batch_statistics_equal_the_dynamic_models(tmp_path):
    """A batch-4 model sees 10 samples as 4+4+2 (padded, the padding cut): its statistics are
    exactly those of the dynamic-batch model fed the same 10 samples at once."""
    import onnx

    from rtdeploy.precision.int8.collect import collect_stats
    from rtdeploy.precision.int8.qdq import plan_qdq

    torch.manual_seed(0)
    net = trained_briefly(PaperCifarResNet(20, head="view"))
    fixed = onnx.load(str(export_plain(net, tmp_path / "fixed.onnx", batch=4)))
    dynamic = onnx.load(str(export_plain(net, tmp_path / "dyn.onnx")))
    images = np.random.default_rng(0).normal(size=(10, 3, 32, 32)).astype(np.float32)
    tensors_f, tensors_d = plan_qdq(fixed).observed(), plan_qdq(dynamic).observed()
    assert len(tensors_f) == len(tensors_d)
    a = collect_stats(fixed, tensors_f, [images], histogram=False)
    b = collect_stats(dynamic, tensors_d, [images], histogram=False)
    np.testing.assert_allclose([a[t].amax for t in tensors_f], [b[t].amax for t in tensors_d], rtol=1e-5)


@pytest.mark.parametrize("net", [PlainConvNet, DepthwiseNet], ids=["plain-conv-stack", "depthwise"])
def test_small_cnns_go_through_import_quantize_validate(tmp_path, net):
    import onnx

    from rtdeploy import api

    torch.manual_seed(0)
    path = export_plain(trained_briefly(net()), tmp_path / "net.onnx", opset=17)
    api.import_model(path, preprocess="cifar")
    calib = _random_calibration(tmp_path / "calib.npy")
    q = api.quantize(path, int8=True, calib_dir=calib, stats_cache=False)
    convs = sum(1 for n in onnx.load(str(path)).graph.node if n.op_type in ("Conv", "Gemm"))
    assert q.report["quantized_layers"] == convs and q.report["left_in_float"] == []
    rep = api.validate(q.path, samples=16)
    assert rep.passed, rep.failure_message()
    assert api.validate(api.quantize(path, fp16=True, calib_dir=calib).path, samples=8).passed


@pytest.mark.slow
@pytest.mark.shared_data
@pytest.mark.parametrize("depth,batch,head", [(56, None, "flatten"), (20, 8, "view")],
                         ids=["resnet56-dynamic-flatten", "resnet20-batch8-reshape"])
def test_imported_cifar_resnet_int8_agrees_like_rtdeploys_own_export(tmp_path, cifar_root, depth, batch, head):
    row = agreement_pair(depth, cifar_root, tmp_path, batch=batch, head=head)
    print(f"\nforeign-model row: {row}")  # the closing table is read from `pytest -s` output
    # The same trained weights: the FP32 models agree on accuracy (onnxruntime vs PyTorch-equivalent graphs).
    assert abs(row["imported_fp32_accuracy"] - row["own_fp32_accuracy"]) <= 0.001, row
    assert row["imported_int8_layers"] == row["own_int8_layers"], row
    assert abs(row["imported_agreement"] - row["own_agreement"]) <= 0.003, row


@pytest.mark.slow
def test_int8_folds_a_batchnorm_left_after_a_conv_as_tensorrt_does(tmp_path):
    """The INT8 model of an unfolded export has the folded structure of rtdeploy's own export (no
    BatchNormalization left, the same Q/DQ counts), and its FP32 function is unchanged."""
    import onnx

    from rtdeploy import api
    from rtdeploy.precision.int8.fold_bn import fold_batchnorms
    from rtdeploy.runners.ort_runner import OrtRunner

    torch.manual_seed(0)
    path = export_plain(trained_briefly(PaperCifarResNet(20)), tmp_path / "f.onnx")
    model = onnx.load(str(path))
    assert fold_batchnorms(model) == 19 and not any(n.op_type == "BatchNormalization" for n in model.graph.node)
    onnx.checker.check_model(model)
    onnx.save_model(model, str(tmp_path / "folded.onnx"))
    x = np.random.default_rng(0).normal(size=(4, 3, 32, 32)).astype(np.float32)
    with OrtRunner(path) as a, OrtRunner(tmp_path / "folded.onnx") as b:
        np.testing.assert_allclose(b.infer({"images": x})["scores"], a.infer({"images": x})["scores"], rtol=1e-4, atol=1e-4)
    api.import_model(path, preprocess="cifar")
    q = api.quantize(path, int8=True, calib_dir=_random_calibration(tmp_path / "c.npy"), stats_cache=False)
    assert q.report["batchnorm_folded"] == 19 and "BatchNormalization" not in q.manifest["ops"]
    assert q.report["qdq_nodes"] == {"QuantizeLinear": 22, "DequantizeLinear": 42}  # as rtdeploy's ResNet-20 (precision.md)
