"""What the Q/DQ placement left in floating point, and why: for the quantize report.

The placement (:mod:`rtdeploy.precision.int8.qdq`) is by graph pattern. An op it does not know
is never guessed at: it stays in float, and this module lists it so the user sees it, e.g. a
``ConvTranspose``, a ``Mul`` of two activations, a ``MatMul`` whose weights are computed, or an
``Add`` of two tensors neither of which comes from a convolution.
"""

from __future__ import annotations

from rtdeploy.precision.int8.qdq import FOLDED_INTO_CONV, TRANSPARENT_OPS, QdqPlan

# Ops that hold no weights and add nothing to quantize: TensorRT runs them in the precision of the
# tensors around them (activations, pooling, data movement, shape arithmetic).
PASSIVE_OPS = frozenset({
    *TRANSPARENT_OPS, *FOLDED_INTO_CONV, "Relu", "LeakyRelu", "PRelu", "Clip", "Sigmoid", "Tanh", "HardSigmoid",
    "HardSwish", "Elu", "Selu", "Softplus", "Softmax", "LogSoftmax", "MaxPool", "AveragePool", "GlobalAveragePool",
    "GlobalMaxPool", "Concat", "Split", "Dropout", "Constant", "Shape", "Gather", "Cast", "ReduceMean", "Resize",
    "Expand", "Tile", "ConstantOfShape", "Range", "Size",
})


def left_in_float(model, plan: QdqPlan) -> list[dict[str, str]]:
    """Nodes with work to quantize that the plan does not quantize (``node``, ``op_type``, ``why``).

    Graph order; a node listed here runs in float in the Q/DQ model (TensorRT may still pick
    another precision for it only with implicit quantization, which rtdeploy does not use here).
    """
    planned = {u.node for u in plan.units}
    inits = {i.name for i in model.graph.initializer}
    out = []
    for node in model.graph.node:
        if node.name in planned or node.op_type in PASSIVE_OPS:
            continue
        if node.op_type in ("Conv", "Gemm", "MatMul"):
            why = "its weights are not a constant initializer" if len(node.input) < 2 or node.input[1] not in inits \
                else "its data input is a constant"
        elif node.op_type == "Add":
            why = "neither input comes from a Conv/Gemm/MatMul, so there is no convolution to fuse it into"
        else:
            why = "the Q/DQ placement has no rule for this op"
        out.append({"node": node.name, "op_type": node.op_type, "why": why})
    return out
