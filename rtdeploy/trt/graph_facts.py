"""What the builder needs to know about an ONNX graph, read without TensorRT."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from rtdeploy.files import not_a_file
from rtdeploy.errors import ArtifactError

QDQ_OPS = frozenset({"QuantizeLinear", "DequantizeLinear"})


@dataclass(frozen=True)
class GraphFacts:
    """Facts about an ONNX model.

    Attributes:
        input_name: the (single) graph input.
        sample_shape: the input shape after the batch axis, e.g. (3, 224, 224).
        fixed_batch: the batch size when the batch axis is fixed, None when dynamic.
        has_qdq: QuantizeLinear/DequantizeLinear nodes are present (explicit INT8).
        fp16: the graph computes in float16 (FP16 initializers or FP16 input).
        node_names: node names in graph order (to name a node a parser error points at by index).
        node_ops: their operator types, in the same order.
        float_weighted: in a Q/DQ graph, the Conv/Gemm/MatMul nodes whose weights are NOT quantized
            (no DequantizeLinear feeds their weight input): TensorRT is asked to run them in float.
    """

    input_name: str
    sample_shape: tuple[int, ...]
    fixed_batch: int | None
    has_qdq: bool
    fp16: bool
    node_names: tuple[str, ...]
    node_ops: tuple[str, ...] = ()
    float_weighted: tuple[str, ...] = ()

    @property
    def precision(self) -> str:
        """The precision the graph itself carries: ``int8`` (Q/DQ), ``fp16`` or ``fp32``."""
        return "int8" if self.has_qdq else "fp16" if self.fp16 else "fp32"


def read_graph_facts(path: str | os.PathLike) -> GraphFacts:
    """Read :class:`GraphFacts` from an ONNX file (weights stored outside it are not loaded).

    Raises:
        ArtifactError: the file is missing, is not ONNX, or has not exactly one input of rank >= 2
            with known non-batch dimensions.
    """
    import onnx

    p = Path(path)
    if not p.is_file():
        raise ArtifactError(f"ONNX model {p} {not_a_file(p)}; export one with `rtdeploy export` or give --depth")
    try:
        model = onnx.load(str(p), load_external_data=False)
    except Exception as e:  # onnx raises DecodeError and others for a non-ONNX file
        raise ArtifactError(f"{p} is not a readable ONNX model ({type(e).__name__}); re-export it with `rtdeploy export`") from e
    graph = model.graph
    initializer_names = {i.name for i in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initializer_names]
    if len(inputs) != 1:
        raise ArtifactError(f"{p} has {len(inputs)} inputs; build-engine takes image models with exactly one input")
    tensor_type = inputs[0].type.tensor_type
    dims = list(tensor_type.shape.dim)
    if len(dims) < 2 or any(not d.HasField("dim_value") for d in dims[1:]):
        raise ArtifactError(f"{p}: input {inputs[0].name} must be (batch, C, H, W) with fixed C, H, W; re-export it with `rtdeploy export`")
    fp16_type = onnx.TensorProto.FLOAT16
    fp16 = tensor_type.elem_type == fp16_type or any(i.data_type == fp16_type for i in graph.initializer)
    return GraphFacts(
        input_name=inputs[0].name,
        sample_shape=tuple(int(d.dim_value) for d in dims[1:]),
        fixed_batch=int(dims[0].dim_value) if dims[0].HasField("dim_value") else None,
        has_qdq=any(n.op_type in QDQ_OPS for n in graph.node),
        fp16=fp16,
        node_names=tuple(n.name or f"{n.op_type}_{i}" for i, n in enumerate(graph.node)),
        node_ops=tuple(n.op_type for n in graph.node),
        float_weighted=_float_weighted(graph),
    )


def _float_weighted(graph) -> tuple[str, ...]:
    if not any(n.op_type in QDQ_OPS for n in graph.node):
        return ()
    dequantized = {o for n in graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    return tuple(n.name for n in graph.node
                 if n.op_type in ("Conv", "Gemm", "MatMul") and len(n.input) > 1 and n.input[1] not in dequantized)
