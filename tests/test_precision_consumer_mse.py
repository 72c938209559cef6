"""The consumer-mse calibrator: a threshold search that finds a planted optimum, and thresholds judged
by the error where the tensor is used."""

from __future__ import annotations

import math

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from rtdeploy.errors import PrecisionError
from rtdeploy.precision.int8.calibrators import compute_threshold, mse_threshold
from rtdeploy.precision.int8.consumer_mse import ConsumerMseConfig, consumer_mse_thresholds, fake_quant, search_threshold
from rtdeploy.precision.int8.histogram import AbsHistogram
from rtdeploy.precision.int8.qdq import plan_qdq


@pytest.mark.parametrize("planted", [0.37, 1.0, 0.05, 0.9])
def test_search_finds_a_planted_minimum(planted):
    calls = []

    def cost(t: float) -> float:
        calls.append(t)
        return (math.log(t) - math.log(planted)) ** 2 + 3.0

    found = search_threshold(cost, 1.0, grid=16, refine=8, low=1 / 32)
    assert found == pytest.approx(planted, rel=0.02)
    assert len(calls) <= 16 + 2 + 8 and all(1 / 32 - 1e-12 <= t <= 1.0 + 1e-12 for t in calls)


def test_search_finds_a_narrow_minimum_between_grid_points():
    # A V-shaped valley much narrower than the grid spacing (log step ~0.23): the grid's best point
    # brackets it and golden section must close in on it.
    planted = 0.61

    def cost(t: float) -> float:
        return abs(math.log(t) - math.log(planted))

    assert search_threshold(cost, 2.0) == pytest.approx(planted, rel=0.01)


def test_fake_quant_matches_quantize_linear():
    import onnxruntime as ort

    x = np.array([-300.0, -1.26, -0.05, 0.0, 0.05, 0.15, 0.25, 1.26, 300.0], np.float32)
    scale = 0.1
    q = helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"])
    dq = helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"])
    g = helper.make_graph([q, dq], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [9])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [9])],
                          [numpy_helper.from_array(np.array(scale, np.float32), "s"), numpy_helper.from_array(np.array(0, np.int8), "z")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    y = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    np.testing.assert_allclose(fake_quant(x, np.float32(scale)), y, rtol=1e-6, atol=1e-7)


def _conv_model(w: np.ndarray) -> onnx.ModelProto:
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", w.shape[1], 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    inits = [numpy_helper.from_array(w, "w")]
    conv = helper.make_node("Conv", ["input", "w"], ["y"], name="conv", pads=[1, 1, 1, 1])
    return helper.make_model(helper.make_graph([conv], "g", [x], [y], inits), opset_imports=[helper.make_opsetid("", 17)])


def test_a_channel_the_weights_ignore_does_not_set_the_threshold():
    # Channel 0 spans +-100 but every weight reading it is zero; channel 1 is N(0, 1). The tensor's own
    # MSE must keep ~100 (clipping channel 0 would cost its whole range), while the conv output does
    # not see channel 0 at all: its best threshold is channel 1's, a few units.
    rng = np.random.default_rng(0)
    x = np.stack([rng.uniform(-100, 100, (64, 8, 8)), rng.normal(0, 1, (64, 8, 8))], axis=1).astype(np.float32)
    w = rng.normal(size=(4, 2, 3, 3)).astype(np.float32)
    w[:, 0] = 0.0
    model = _conv_model(w)
    plan = plan_qdq(model)
    h = AbsHistogram()
    h.update(x)
    stats = h.result()
    own = compute_threshold(stats, "mse")
    found = consumer_mse_thresholds(model, plan, {"input": stats.amax}, [x[:32], x[32:]], ConsumerMseConfig(images=64))["input"]
    assert own > 60
    assert 2.0 < found < 8.0
    # and what the search found is at least as good as the tensor-MSE threshold on the conv output:
    import torch
    import torch.nn.functional as F

    def conv_err(t: float) -> float:
        e = fake_quant(x, t / 127) - x
        return float((F.conv2d(torch.from_numpy(e), torch.from_numpy(w), padding=1) ** 2).sum())

    assert conv_err(found) < 0.05 * conv_err(own)


def test_stats_calibrators_refuse_consumer_mse():
    h = AbsHistogram()
    h.update(np.linspace(-1, 1, 1000, dtype=np.float32))
    with pytest.raises(PrecisionError, match="needs the model and images"):
        compute_threshold(h.result(), "consumer-mse")
    assert mse_threshold(h.result().hist[:1024], 1 / 1024) > 0  # the plain mse path is unaffected
