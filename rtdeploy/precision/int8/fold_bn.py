"""Fold a BatchNormalization that follows a convolution into the convolution, in the ONNX graph.

Training code often exports without folding (rtdeploy's own export folds in PyTorch). TensorRT
folds such a pair when it builds; the INT8 pass does the same before placing Q/DQ, so the
quantized graph is the one TensorRT would run (int8 weights of the folded convolution, the Add
fused behind it), and onnxruntime evaluates it the same way as an rtdeploy export — with the
BatchNormalization between them, onnxruntime cannot fuse DQ -> Conv -> Q and runs another
arithmetic than TensorRT will.

Folded: ``Conv(x, W[, b]) -> BatchNormalization(scale, B, mean, var, epsilon)`` where every
parameter is an initializer, the Conv's output feeds only the BatchNormalization, and the latter
has one output. ``W' = W * s`` per output channel and ``b' = (b - mean) * s + B`` with
``s = scale / sqrt(var + epsilon)``, in float64, stored as float32.
"""

from __future__ import annotations

import numpy as np

from rtdeploy.precision.graph import NameMaker, initializers, producers


def fold_batchnorms(model) -> int:
    """Fold every foldable Conv -> BatchNormalization pair of ``model`` in place; returns the count."""
    from onnx import numpy_helper

    g = model.graph
    prod = producers(g)
    inits = _through_identities(initializers(g), prod)
    consumers: dict[str, int] = {}
    for n in g.node:
        for t in n.input:
            consumers[t] = consumers.get(t, 0) + 1
    outputs = {o.name for o in g.output}
    names = NameMaker(model)
    drop, count = set(), 0
    for bn in g.node:
        conv = prod.get(bn.input[0]) if bn.op_type == "BatchNormalization" else None
        if conv is None or not _foldable(conv, bn, inits, consumers, outputs):
            continue
        w = numpy_helper.to_array(inits[conv.input[1]]).astype(np.float64)
        scale, beta, mean, var = (numpy_helper.to_array(inits[t]).astype(np.float64) for t in bn.input[1:5])
        eps = next((a.f for a in bn.attribute if a.name == "epsilon"), 1e-5)
        s = scale / np.sqrt(var + eps)
        b = numpy_helper.to_array(inits[conv.input[2]]).astype(np.float64) if len(conv.input) > 2 and conv.input[2] else 0.0
        wn, bn_name = names(f"{conv.input[1]}_bnfolded"), names(f"{conv.name or 'conv'}_bias_bnfolded")
        g.initializer.extend([numpy_helper.from_array((w * s.reshape(-1, *[1] * (w.ndim - 1))).astype(np.float32), wn),
                              numpy_helper.from_array(((b - mean) * s + beta).astype(np.float32), bn_name)])
        del conv.input[1:]
        conv.input.extend([wn, bn_name])
        conv.output[0] = bn.output[0]
        drop.add(id(bn))
        count += 1
    if count:
        kept = [n for n in g.node if id(n) not in drop]
        del g.node[:]
        g.node.extend(kept)
        _drop_unused(g)
    return count


def _through_identities(inits: dict, prod: dict) -> dict:
    """Initializers, plus every tensor that is an Identity (chain) of one: exporters write shared
    parameters (BatchNorm's 1s and 0s of an untrained model) once and alias them by Identity."""
    out = dict(inits)
    for name, node in prod.items():
        t, seen = name, set()
        while t not in inits and t in prod and prod[t].op_type == "Identity" and t not in seen:
            seen.add(t)
            t = prod[t].input[0]
        if t in inits and name not in out:
            out[name] = inits[t]
    return out


def _foldable(conv, bn, inits: dict, consumers: dict, outputs: set) -> bool:
    return (conv.op_type == "Conv" and len(conv.input) > 1 and conv.input[1] in inits
            and (len(conv.input) < 3 or not conv.input[2] or conv.input[2] in inits)
            and len(bn.output) == 1 and len(bn.input) == 5 and all(t in inits for t in bn.input[1:5])
            and consumers.get(conv.output[0], 0) == 1 and conv.output[0] not in outputs
            and not any(a.name == "training_mode" and a.i for a in bn.attribute))


def _drop_unused(graph) -> None:
    """Drop initializers nothing reads (and their graph-input entries, as old exporters list
    weights as inputs), and shape records of tensors no node writes any more."""
    used = {t for n in graph.node for t in n.input}
    removed = {i.name for i in graph.initializer if i.name not in used}
    kept = [i for i in graph.initializer if i.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    inputs = [i for i in graph.input if i.name not in removed]
    del graph.input[:]
    graph.input.extend(inputs)
    written = {t for n in graph.node for t in n.output}
    infos = [v for v in graph.value_info if v.name in written]
    del graph.value_info[:]
    graph.value_info.extend(infos)
