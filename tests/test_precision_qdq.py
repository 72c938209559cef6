"""Q/DQ placement per block type: counts, positions, which Add input is quantized, weights, numerics."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from rtdeploy.precision.graph import producers
from rtdeploy.precision.int8.collect import collect_stats
from rtdeploy.precision.int8.qdq import insert_qdq, plan_qdq, qdq_counts, quantized_inputs, scale_from_amax


def _load(result):
    return onnx.load(str(result.path))


def _max_scales(model, plan, image_size: int, n: int = 4) -> dict[str, float]:
    x = np.random.default_rng(0).standard_normal((n, 3, image_size, image_size)).astype(np.float32)
    stats = collect_stats(model, plan.observed(), [x], histogram=False)
    return {t: scale_from_amax(s.amax) for t, s in stats.items()}


def _quantized(exported, depth, image_size):
    model = _load(exported(depth, image_size))
    plan = plan_qdq(model)
    qmodel = insert_qdq(model, plan, _max_scales(model, plan, image_size or 32))
    return model, plan, qmodel


def _dq_source(qmodel, tensor: str) -> str:
    """The float tensor a DequantizeLinear output was quantized from."""
    prod = producers(qmodel.graph)
    q = prod[prod[tensor].input[0]]
    assert q.op_type == "QuantizeLinear"
    return q.input[0]


# depth, image size, convs (incl. downsample), residual adds, projection shortcuts
BLOCKS = {
    "basic-imagenet": (18, 64, 20, 8, 3),
    "bottleneck": (50, 64, 53, 16, 4),
    "cifar-option-a": (20, None, 19, 9, 0),
}


@pytest.mark.parametrize("kind", list(BLOCKS))
def test_units_and_counts_per_block_type(exported, kind):
    depth, size, convs, adds, _ = BLOCKS[kind]
    model, plan, qmodel = _quantized(exported, depth, size)
    ops = [u.op_type for u in plan.units]
    assert ops.count("Conv") == convs and ops.count("Gemm") == 1 and ops.count("Add") == adds
    counts = qdq_counts(qmodel)
    weighted = convs + 1
    # One DequantizeLinear per weight tensor, one Q/DQ pair per quantized activation (shared).
    pairs = len({(u.activation) for u in plan.units})
    assert counts["QuantizeLinear"] == pairs
    assert counts["DequantizeLinear"] == pairs + weighted
    onnx.checker.check_model(qmodel, full_check=True)


@pytest.mark.parametrize("kind", list(BLOCKS))
def test_every_conv_and_gemm_reads_quantized_data_and_weights_but_float_bias(exported, kind):
    depth, size, *_ = BLOCKS[kind]
    _, _, qmodel = _quantized(exported, depth, size)
    qin = quantized_inputs(qmodel)
    for node in qmodel.graph.node:
        if node.op_type in ("Conv", "Gemm"):
            assert qin.get(node.name) == [0, 1], f"{node.name}: quantized inputs {qin.get(node.name)}"
            assert len(node.input) < 3 or 2 not in qin.get(node.name, []), "bias must stay float"


@pytest.mark.parametrize("kind", list(BLOCKS))
def test_no_output_quantization(exported, kind):
    depth, size, *_ = BLOCKS[kind]
    model, _, qmodel = _quantized(exported, depth, size)
    prod = producers(model.graph)
    graph_inputs = {i.name for i in model.graph.input}
    for out in qmodel.graph.output:
        assert producers(qmodel.graph)[out.name].op_type not in ("QuantizeLinear", "DequantizeLinear")
    for q in (n for n in qmodel.graph.node if n.op_type == "QuantizeLinear"):
        t = q.input[0]
        if t in graph_inputs:
            continue
        op = prod[t].op_type
        # Only data a quantized op reads is quantized: block inputs (Relu/MaxPool), pooled
        # features, the option-A shortcut (Pad) and projection shortcuts (downsample Conv).
        assert op in ("Relu", "MaxPool", "Flatten", "Pad") or (op == "Conv" and "downsample" in t), f"{t} ({op})"


@pytest.mark.parametrize("kind", list(BLOCKS))
def test_residual_add_quantizes_only_the_shortcut(exported, kind):
    depth, size, _, adds, projections = BLOCKS[kind]
    model, plan, qmodel = _quantized(exported, depth, size)
    prod_fp = producers(model.graph)
    qin = quantized_inputs(qmodel)
    seen_projection = seen_identity = seen_option_a = 0
    for node in (n for n in qmodel.graph.node if n.op_type == "Add"):
        assert len(qin.get(node.name, [])) == 1, f"{node.name}: exactly one Add input is quantized"
        index = qin[node.name][0]
        other = node.input[1 - index]
        # the unquantized input is the conv branch: a Conv output consumed directly
        assert prod_fp[other].op_type == "Conv" and ("conv2" in other or "conv3" in other), other
        source = _dq_source(qmodel, node.input[index])
        if "downsample" in source:
            seen_projection += 1
        elif prod_fp.get(source) is not None and prod_fp[source].op_type == "Pad":
            seen_option_a += 1
        else:
            seen_identity += 1
    assert seen_projection == projections
    assert seen_identity + seen_projection + seen_option_a == adds
    if kind == "cifar-option-a":
        assert seen_option_a == 2


def test_option_a_shortcut_uses_the_block_input_scale(exported):
    model, plan, qmodel = _quantized(exported, 20, None)
    prod = producers(qmodel.graph)
    inits = {i.name: numpy_helper.to_array(i) for i in qmodel.graph.initializer}
    option_a = [u for u in plan.units if u.op_type == "Add" and u.activation != u.observe]
    assert len(option_a) == 2
    for u in option_a:
        pad = prod[u.activation]
        assert pad.op_type == "Pad"
        slice2 = prod[pad.input[0]]
        slice1 = prod[slice2.input[0]]
        assert slice1.input[0] == u.observe, "scale comes from the tensor before Slice/Slice/Pad"
        # the same tensor feeds the next stage's first conv; both Q/DQ pairs use one scale
        conv_unit = next(c for c in plan.units if c.op_type == "Conv" and c.activation == u.observe)
        scales = {float(inits[q.input[1]]) for q in qmodel.graph.node
                  if q.op_type == "QuantizeLinear" and q.input[0] in (u.activation, conv_unit.activation)}
        assert len(scales) == 1


def test_identity_shortcut_shares_the_q_dq_pair_with_the_next_conv(exported):
    model, plan, qmodel = _quantized(exported, 20, None)
    add = next(n for n in qmodel.graph.node if n.name == "/layer1/layer1.1/Add")
    conv = next(n for n in qmodel.graph.node if n.name == "/layer1/layer1.1/conv1/Conv")
    assert conv.input[0] in add.input, "block input quantized once, read by conv1 and by the Add"


def test_weights_are_int8_per_output_channel(exported):
    model, plan, qmodel = _quantized(exported, 20, None)
    inits = {i.name: i for i in qmodel.graph.initializer}
    prod = producers(qmodel.graph)
    for node in (n for n in qmodel.graph.node if n.op_type in ("Conv", "Gemm")):
        dq = prod[node.input[1]]
        axis = next(a.i for a in dq.attribute if a.name == "axis")
        w = inits[dq.input[0]]
        assert w.data_type == onnx.TensorProto.INT8
        assert axis == 0
        scale = numpy_helper.to_array(inits[dq.input[1]])
        assert scale.shape == (w.dims[0],) and (scale > 0).all()
        zp = numpy_helper.to_array(inits[dq.input[2]])
        assert zp.dtype == np.int8 and not zp.any()
        q = numpy_helper.to_array(w)
        assert np.abs(q).max() == 127, "per-channel max maps the largest weight to 127"


def test_activation_zero_points_are_int8_zero(exported):
    _, _, qmodel = _quantized(exported, 20, None)
    inits = {i.name: numpy_helper.to_array(i) for i in qmodel.graph.initializer}
    for q in (n for n in qmodel.graph.node if n.op_type == "QuantizeLinear"):
        zp = inits[q.input[2]]
        assert zp.dtype == np.int8 and zp.shape == () and zp == 0


def test_kept_layers_have_no_qdq(exported):
    model = _load(exported(20))
    plan = plan_qdq(model)
    keep = {"/conv1/Conv", "/layer1/layer1.0/Add", "/linear/Gemm"}
    assert keep <= {u.node for u in plan.units}
    qmodel = insert_qdq(model, plan, _max_scales(model, plan, 32), keep=keep)
    qin = quantized_inputs(qmodel)
    assert not keep & set(qin)
    counts = qdq_counts(qmodel)
    assert counts["DequantizeLinear"] < qdq_counts(insert_qdq(model, plan, _max_scales(model, plan, 32)))["DequantizeLinear"]


@pytest.mark.parametrize("kind", list(BLOCKS))
def test_quantized_model_runs_close_to_fp32(exported, kind):
    import onnxruntime as ort

    depth, size, *_ = BLOCKS[kind]
    model, plan, qmodel = _quantized(exported, depth, size)
    x = np.random.default_rng(1).standard_normal((2, 3, size or 32, size or 32)).astype(np.float32)
    ref = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    out = ort.InferenceSession(qmodel.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    cos = (ref * out).sum() / np.linalg.norm(ref) / np.linalg.norm(out)
    assert cos > 0.98
    assert not np.allclose(ref, out), "quantization must change the numbers a little"


def test_missing_scale_is_an_actionable_error(exported):
    from rtdeploy.errors import PrecisionError

    model = _load(exported(20))
    plan = plan_qdq(model)
    with pytest.raises(PrecisionError, match="no scale for"):
        insert_qdq(model, plan, {})
