"""Small ONNX graph clean-ups after export, so every later pass sees one plain graph.

- Constant sub-graphs (the pad amounts the exporter computes for the CIFAR shortcut) are evaluated
  once and stored as initializers.
- ``Identity`` nodes over initializers (the exporter's de-duplication of equal tensors, e.g. the
  zero biases of freshly initialised folded BatchNorms) are replaced by a private copy per consumer,
  so each Conv owns its weights and bias and the precision passes can edit them one by one.
"""

from __future__ import annotations

import numpy as np


def fold_constants(model) -> int:
    """Evaluate nodes whose inputs are all constant; returns how many nodes were removed."""
    import onnx
    from onnx import numpy_helper
    from onnx.reference import ReferenceEvaluator

    # Converted to numpy only when a node needs them: the weights of a large model are 100+ MB.
    protos = {i.name: i for i in model.graph.initializer}
    consts: dict[str, np.ndarray] = {}

    def const_of(name: str) -> np.ndarray:
        if name not in consts:
            consts[name] = numpy_helper.to_array(protos[name])
        return consts[name]

    def evaluate(node) -> list[np.ndarray] | None:
        if node.op_type == "Identity" or not all((not i) or i in protos or i in consts for i in node.input):
            return None
        fn = onnx.helper.make_graph(
            [node], "fold", [onnx.helper.make_tensor_value_info(i, onnx.TensorProto.UNDEFINED, None) for i in node.input if i],
            [onnx.helper.make_tensor_value_info(o, onnx.TensorProto.UNDEFINED, None) for o in node.output],
        )
        sub = onnx.helper.make_model(fn, opset_imports=model.opset_import)
        values = [np.asarray(v) for v in ReferenceEvaluator(sub).run(None, {i: const_of(i) for i in node.input if i})]
        consts.update(zip(node.output, values))
        return values

    return _replace_with_initializers(model, evaluate)


def materialize_identities(model) -> int:
    """Replace ``Identity(initializer)`` nodes with a copy of the initializer; returns the count."""
    from onnx import numpy_helper

    inits = {i.name: i for i in model.graph.initializer}

    def evaluate(node) -> list[np.ndarray] | None:
        if node.op_type == "Identity" and node.input[0] in inits:
            return [numpy_helper.to_array(inits[node.input[0]])]
        return None

    return _replace_with_initializers(model, evaluate)


def _replace_with_initializers(model, evaluate) -> int:
    """Replace each node for which ``evaluate(node)`` returns values by initializers of its outputs.

    Nodes that produce a graph output stay. Returns how many nodes were replaced.
    """
    from onnx import numpy_helper

    graph = model.graph
    graph_outputs = {o.name for o in graph.output}
    keep, removed = [], 0
    for node in graph.node:
        values = None if set(node.output) & graph_outputs else evaluate(node)
        if values is None:
            keep.append(node)
            continue
        graph.initializer.extend(numpy_helper.from_array(v, name) for name, v in zip(node.output, values))
        removed += 1
    del graph.node[:]
    graph.node.extend(keep)
    _drop_unused_initializers(model)
    return removed


def _drop_unused_initializers(model) -> None:
    graph = model.graph
    used = {i for n in graph.node for i in n.input} | {o.name for o in graph.output}
    keep = [i for i in graph.initializer if i.name in used]
    del graph.initializer[:]
    graph.initializer.extend(keep)
