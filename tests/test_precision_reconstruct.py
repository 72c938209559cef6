"""Block reconstruction (--weights block): blocks found at the graph's cut tensors, a block whose best
rounding is known is solved, and no block ends worse than its start on the calibration objective."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from rtdeploy.precision.int8.qdq import plan_qdq, quantize_weight
from rtdeploy.precision.int8.reconstruct import ReconstructConfig, find_blocks, reconstruct
from rtdeploy.precision.int8.torch_graph import TorchGraph
from test_precision_torch_graph import _residual_net


def _one_block(w_row):
    """x (3 channels) -> 1x1 Conv (3 -> 3, every row ``w_row``) -> Add(conv, x) -> Relu -> pool -> fc."""
    w = np.tile(np.asarray(w_row, np.float32), (3, 1)).reshape(3, 3, 1, 1)
    inits = [numpy_helper.from_array(w, "w"), numpy_helper.from_array(np.zeros(3, np.float32), "b"),
             numpy_helper.from_array(np.eye(3, dtype=np.float32), "fc")]
    nodes = [
        helper.make_node("Conv", ["input", "w", "b"], ["c"], name="conv"),
        helper.make_node("Add", ["c", "input"], ["sum"], name="add"),
        helper.make_node("Relu", ["sum"], ["out"], name="relu"),
        helper.make_node("GlobalAveragePool", ["out"], ["gap"], name="gap"),
        helper.make_node("Flatten", ["gap"], ["flat"], name="flatten"),
        helper.make_node("Gemm", ["flat", "fc"], ["logits"], name="fc", transB=1),
    ]
    graph = helper.make_graph(nodes, "block", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, 4, 4])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 3])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def _images(n: int = 64, seed: int = 0):
    """Uniform in [-1, 1]; channel 2 equals channel 1, so a weight error on one can cancel one on the other."""
    x = np.random.default_rng(seed).uniform(-1, 1, size=(n, 3, 4, 4)).astype(np.float32)
    x[:, 2] = x[:, 1]
    return x


CFG = ReconstructConfig(images=32, iters=120, batch=16, lr=0.05, drop=0.0)
W_ROW = [1.27, 0.0045, 0.0035]  # scale 0.01: the last two are 0.45 and 0.35 of a step
SCALES = 1.0 / 127  # activations: [-1, 1] in int8, no clipping


def _block_loss(model, plan, ints) -> float:
    """The block's calibration objective for int8 conv rows ``ints`` (mean squared error of its output
    with quantized inputs against FP32), computed here directly with the torch graph."""
    import torch

    from rtdeploy.precision.int8.torch_graph import unit_scales

    graph = TorchGraph(model)
    x = torch.from_numpy(_images()[:CFG.images])
    w = torch.tensor(np.tile(np.asarray(ints, np.float32) * 0.01, (3, 1)).reshape(3, 3, 1, 1))
    with torch.no_grad():
        ref = graph.run({"input": x}, 0, 3)["out"]
        out = graph.run({"input": x}, 0, 3, unit_scales(plan, {t: SCALES for t in plan.observed()}), {"conv": w})["out"]
    return float(((out - ref) ** 2).sum(1).mean())


def test_blocks_are_the_stem_the_residual_block_and_the_head():
    model = _residual_net()
    graph, plan = TorchGraph(model), plan_qdq(model)
    blocks = find_blocks(graph, plan)
    assert [b.nodes for b in blocks] == [("stem",), ("conv1", "conv2"), ("fc",)]
    assert [(b.input, b.output) for b in blocks] == [("input", "m0"), ("m0", "out"), ("out", "logits")]


def test_a_block_whose_best_rounding_is_known():
    # Every conv row is [127, 0.45, 0.35] steps and inputs 1 and 2 are equal, so only the sum 0.8
    # matters: nearest rounds both down (off by 0.8 steps of x1), one up and one down leaves 0.2 (either
    # way), both up 1.2. The block objective, evaluated for all four roundings, agrees; reconstruction
    # must pick one of its best.
    model = _one_block(W_ROW)
    plan = plan_qdq(model)
    losses = {(a, b): _block_loss(model, plan, [127, a, b]) for a in (0, 1) for b in (0, 1)}
    best = min(losses.values())
    assert {k for k, v in losses.items() if v <= best * 1.01} == {(1, 0), (0, 1)} and losses[(0, 0)] > 2 * best
    result = reconstruct(model, plan, {t: SCALES for t in plan.observed()}, [_images()], CFG)
    q, s = result.weights["w"]
    np.testing.assert_allclose(s, 0.01, rtol=1e-6)
    rows = {tuple(r) for r in q.reshape(3, 3).tolist()}
    assert rows <= {(127, 1, 0), (127, 0, 1)}, rows
    block = next(b for b in result.blocks if "conv" in b["nodes"])
    assert block["kept"] == "reconstructed"
    assert block["loss"] <= best * 1.01 and block["loss_start"] == pytest.approx(losses[(0, 0)], rel=1e-4)


def test_never_worse_than_nearest_on_the_calibration_objective():
    # Integer weights: nearest is exact and any flip adds error, so every block keeps nearest.
    row = [1.27, 0.03, -0.05]
    model = _one_block(row)
    plan = plan_qdq(model)
    result = reconstruct(model, plan, {t: SCALES for t in plan.observed()}, [_images()], CFG)
    assert all(b["loss"] <= b["loss_start"] for b in result.blocks)
    expected, _ = quantize_weight(np.tile(np.asarray(row, np.float32), (3, 1)).reshape(3, 3, 1, 1), 0)
    np.testing.assert_array_equal(result.weights["w"][0], expected)


def test_rounding_keeps_the_format_on_a_residual_net():
    model = _residual_net()
    plan = plan_qdq(model)
    scales = {t: 0.05 for t in plan.observed()}
    x = np.random.default_rng(3).normal(size=(32, 3, 8, 8)).astype(np.float32)
    result = reconstruct(model, plan, scales, [x], ReconstructConfig(images=32, iters=20, batch=8))
    from rtdeploy.precision.int8.layers import weighted_layers

    for node, layer in weighted_layers(model, plan.units).items():
        q, s = result.weights[layer.unit.weight]
        ref_q, ref_s = quantize_weight(layer.weight, layer.unit.axis)
        np.testing.assert_array_equal(s, ref_s)  # scales max|W_c| / 127, unchanged
        assert q.dtype == np.int8 and np.all(np.abs(q.astype(int) - ref_q.astype(int)) <= 1), node
    assert all(b["loss"] <= b["loss_start"] for b in result.blocks)
    assert result.scales == pytest.approx(scales)  # not learned by default


def test_a_fixed_batch_model_is_run_in_batches_of_its_own_size():
    # A Reshape to (4, -1) bakes the batch into the graph: a pass over 8 images at once would reshape
    # to the wrong rows without an error. Every pass must take exactly 4 (10 images -> 8 used).
    from onnx import numpy_helper

    model = _residual_net()
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 4
    flat = next(n for n in model.graph.node if n.op_type == "Flatten")
    flat.op_type, flat.input[:] = "Reshape", [flat.input[0], "shape"]
    model.graph.initializer.append(numpy_helper.from_array(np.array([4, -1], np.int64), "shape"))
    plan = plan_qdq(model)
    x = np.random.default_rng(4).normal(size=(10, 3, 8, 8)).astype(np.float32)
    result = reconstruct(model, plan, {t: 0.05 for t in plan.observed()}, [x], ReconstructConfig(images=10, iters=5, batch=8))
    assert result.images == 8 and len(result.blocks) == 3
    assert all(b["loss"] <= b["loss_start"] for b in result.blocks)
