"""Adaptive weight rounding (--weights adaround): it lowers a layer's output error, keeps the format."""

from __future__ import annotations

import itertools

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from rtdeploy.precision.int8.adaround import AdaRoundConfig, Moments, adaround_weights, collect_moments, round_layers, solve_group
from rtdeploy.precision.int8.layers import WeightedLayer, weighted_layers
from rtdeploy.precision.int8.qdq import QuantUnit, insert_qdq, plan_qdq, quantize_weight


def _output_error(w_hat: np.ndarray, w: np.ndarray, x: np.ndarray) -> float:
    """||W~ X - W X||^2 computed directly from the data (not from the moments)."""
    return float(np.sum(((w_hat - w) @ x) ** 2))


def test_two_correlated_halves_round_in_opposite_directions():
    # One channel, scale 1 (max |w| = 127): w = [127, 0.5, 0.5] and the last two inputs are equal.
    # Nearest rounds both halves to 0 (half to even), so the output is off by x2 everywhere;
    # rounding one up and one down cancels exactly: error 0. Adaptive rounding must find that.
    rng = np.random.default_rng(0)
    x1, x2 = rng.normal(size=(2, 500))
    x = np.stack([x1, x2, x2])
    w = np.array([[127.0, 0.5, 0.5]])
    h = (x @ x.T / x.shape[1])[None]
    q, s, stats = solve_group(w[None], h, np.zeros_like(h))
    assert s[0, 0] == pytest.approx(1.0)
    assert sorted(q[0, 0, 1:]) == [0.0, 1.0] and q[0, 0, 0] == 127
    nearest = np.rint(w)
    assert _output_error(nearest, w, x) == pytest.approx(np.sum(x2 ** 2))
    assert _output_error(q[0] * s[0][:, None], w, x) == pytest.approx(0.0, abs=1e-9)
    assert stats["adaround_error"][0] < stats["nearest_error"][0] and stats["flipped"][0] == 1


def test_never_worse_than_nearest_and_close_to_the_exhaustive_optimum():
    # Small channels (K = 8) with strongly correlated inputs: the best up/down choice can be found by
    # trying all 256. Greedy single flips stop at a local optimum (here it takes 74 % of the best
    # possible gain over nearest); it must never be worse than nearest and take most of the gain.
    rng = np.random.default_rng(1)
    k, n = 8, 2000
    mix = rng.normal(size=(k, 3))
    x = mix @ rng.normal(size=(3, n)) + 0.1 * rng.normal(size=(k, n))
    w = rng.normal(size=(6, k))
    h = (x @ x.T / n)[None]
    q, s, _ = solve_group(w[None], h, np.zeros_like(h))
    scale = np.abs(w).max(axis=1, keepdims=True) / 127
    low = np.floor(w / scale)
    gains = []
    for c in range(w.shape[0]):
        err = lambda ints: _output_error((ints * scale[c])[None], w[c:c + 1], x)  # noqa: E731
        nearest = err(np.rint(w[c] / scale[c]))
        greedy = err(q[0, c])
        best = min(err(low[c] + np.array(bits)) for bits in itertools.product((0, 1), repeat=k))
        assert greedy <= nearest + 1e-12
        gains.append((nearest - greedy, nearest - best))
    got, possible = map(sum, zip(*gains))
    assert possible > 0 and got >= 0.6 * possible


def test_rounding_keeps_the_per_channel_symmetric_format():
    rng = np.random.default_rng(2)
    w = rng.normal(size=(4, 16, 10))
    h = np.stack([np.cov(rng.normal(size=(10, 300))) for _ in range(4)])
    q, s, _ = solve_group(w, h, np.zeros_like(h))
    ref_q, ref_s = quantize_weight(w.reshape(-1, 10).astype(np.float32), 0)
    np.testing.assert_allclose(s.reshape(-1), ref_s, rtol=1e-6)  # scales are max|W_c| / 127, unchanged
    assert np.all(np.abs(q) <= 127) and np.all(q == np.round(q))
    assert np.all(np.abs(q.reshape(-1, 10) - ref_q) <= 1), "every weight is its floor or its ceiling"


def test_sampled_columns_are_the_im2col_columns():
    import torch
    import torch.nn.functional as F

    unit = QuantUnit("c", "Conv", 0, "x", "x", "w", 0)
    rng = np.random.default_rng(3)
    for strides, pads, dil in [((1, 1), (1, 1, 1, 1), (1, 1)), ((2, 2), (1, 0, 1, 1), (1, 1)), ((1, 2), (0, 0, 0, 0), (2, 1))]:
        w = rng.normal(size=(4, 3, 3, 2)).astype(np.float32)
        layer = WeightedLayer(unit, w, (3, 2), strides, pads, dil)
        x = rng.normal(size=(2, 3, 9, 8)).astype(np.float32)
        cols = layer.sampled_columns(x, np.arange(layer.output_positions(x.shape)))
        conv = F.conv2d(F.pad(torch.from_numpy(x), (pads[1], pads[3], pads[0], pads[2])), torch.from_numpy(w), stride=strides, dilation=dil)
        out = (layer.matrix() @ cols).reshape(4, 2, -1).transpose(1, 0, 2)
        np.testing.assert_allclose(out.reshape(conv.shape), conv.numpy(), rtol=1e-4, atol=1e-4)


def _conv_model(w: np.ndarray) -> onnx.ModelProto:
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", w.shape[1], 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    inits = [numpy_helper.from_array(w, "w"), numpy_helper.from_array(np.zeros(w.shape[0], np.float32), "b")]
    conv = helper.make_node("Conv", ["input", "w", "b"], ["c"], name="conv", pads=[1, 1, 1, 1])
    relu = helper.make_node("Relu", ["c"], ["y"], name="relu")
    return helper.make_model(helper.make_graph([conv, relu], "g", [x], [y], inits), opset_imports=[helper.make_opsetid("", 17)])


def test_adaround_lowers_the_conv_output_error_on_its_calibration_data():
    rng = np.random.default_rng(4)
    w = rng.normal(size=(8, 4, 3, 3)).astype(np.float32)
    model = _conv_model(w)
    plan = plan_qdq(model)
    # Smooth images: neighbouring pixels correlate, so the rounding errors of neighbouring taps can cancel.
    raw = rng.normal(size=(64, 4, 10, 10)).astype(np.float32)
    x = ((raw[:, :, :-2, :-2] + raw[:, :, 1:-1, 1:-1] + raw[:, :, 2:, 2:]) / 3).astype(np.float32)
    scales = {"input": float(np.abs(x).max() / 127)}
    result = adaround_weights(model, plan, scales, [x[:32], x[32:]], AdaRoundConfig(images=64, columns=4096))
    assert set(result.weights) == {"w"} and result.images == 64 and result.layers["conv"]["flipped"] > 0

    import torch
    import torch.nn.functional as F

    def conv_output(weights) -> np.ndarray:
        # The weights as the Q/DQ model stores them (int8 + per-channel scale), applied to the FP32 input.
        m = insert_qdq(model, plan, scales, weights=weights)
        inits = {i.name: numpy_helper.to_array(i) for i in m.graph.initializer}
        dq = next(n for n in m.graph.node if n.op_type == "DequantizeLinear" and n.input[0] in inits)
        w_hat = inits[dq.input[0]].astype(np.float32) * inits[dq.input[1]].reshape(-1, 1, 1, 1)
        return F.conv2d(torch.from_numpy(x), torch.from_numpy(w_hat), padding=1).numpy()

    exact = F.conv2d(torch.from_numpy(x), torch.from_numpy(w), padding=1).numpy()
    err_near = float(np.sum((conv_output(None) - exact) ** 2))
    err_ada = float(np.sum((conv_output(result.weights) - exact) ** 2))
    assert err_ada < 0.8 * err_near


def test_written_weights_keep_the_qdq_format(exported):
    model = onnx.load(str(exported(20).path))
    plan = plan_qdq(model)
    x = np.random.default_rng(5).normal(0, 1, (8, 3, 32, 32)).astype(np.float32)
    layers = {n: l for n, l in weighted_layers(model, plan.units).items() if l.supported}
    assert len(layers) == 20  # 19 Conv + 1 Gemm
    from rtdeploy.precision.int8.adaround import _InputRunner

    moments = collect_moments(layers, [_InputRunner(model, plan, {}, layers, False).run(x)], 8, 2048)
    result = round_layers(layers, moments)
    qmodel = insert_qdq(model, plan, {t: 0.05 for t in plan.observed()}, weights=result.weights)
    plain = insert_qdq(model, plan, {t: 0.05 for t in plan.observed()})
    assert [n.op_type for n in qmodel.graph.node] == [n.op_type for n in plain.graph.node]
    inits = {i.name: numpy_helper.to_array(i) for i in qmodel.graph.initializer}
    ref = {i.name: numpy_helper.to_array(i) for i in plain.graph.initializer}
    assert set(inits) == set(ref)
    changed = 0
    for name, a in inits.items():
        assert a.dtype == ref[name].dtype and a.shape == ref[name].shape
        if a.dtype == np.int8 and a.ndim > 1:
            assert np.abs(a.astype(int) - ref[name].astype(int)).max() <= 1
            changed += int(np.any(a != ref[name]))
        else:
            np.testing.assert_array_equal(a, ref[name])  # scales and zero points are untouched
    assert changed >= 10


def test_moments_with_quantized_inputs_hold_the_cross_term():
    unit = QuantUnit("g", "Gemm", 0, "x", "x", "w", 0)
    layer = WeightedLayer(unit, np.ones((2, 3), np.float32))
    x = np.random.default_rng(6).normal(size=(50, 3)).astype(np.float32)
    xq = x + 0.1
    m = collect_moments({"g": layer}, [({"g": x}, {"g": xq})], 50, 10_000)["g"]
    assert isinstance(m, Moments) and m.columns == 50
    np.testing.assert_allclose(m.h, xq.T @ xq / 50, rtol=1e-5)
    np.testing.assert_allclose(m.p, xq.T @ (xq - x) / 50, rtol=1e-4, atol=1e-6)
