"""Small ONNX graph helpers shared by the FP16 and INT8 passes.

Loading the FP32 parent (with its manifest and the checks that it is really FP32), the producer and
consumer maps of a graph and unique names.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from rtdeploy.errors import ArtifactError, PrecisionError, first_line

MIN_QDQ_OPSET = 13  # per-axis DequantizeLinear (per-channel weights) arrived in opset 13
QUANT_OPS = ("QuantizeLinear", "DequantizeLinear", "QLinearConv", "QLinearMatMul", "ConvInteger", "MatMulInteger")


@dataclass
class Parent:
    """An FP32 ONNX model read for a precision pass.

    Attributes:
        path: the ONNX file.
        model: the loaded ``onnx.ModelProto``.
        manifest: its rtdeploy manifest, typed (:class:`rtdeploy.manifests.OnnxManifest`).
        sha256: sha256 of the file (the manifest's, checked against the bytes).
    """

    path: Path
    model: object
    manifest: object
    sha256: str

    @property
    def sample_shape(self) -> tuple[int, int, int] | None:
        """(C, H, W) of one input sample, as the manifest says the stages feed it (None when it does not say)."""
        from rtdeploy.footprint import manifest_sample_shape

        return manifest_sample_shape(self.manifest.to_dict())


def refuse_quantized(record, path: Path) -> None:
    """Refuse a model whose manifest says it is already FP16 or INT8 (every kind but ``onnx`` is made
    from an FP32 export, named in its parent).

    Raises:
        PrecisionError: naming the FP32 model to quantize instead.
    """
    from rtdeploy.manifests import OnnxManifest

    if not isinstance(record, OnnxManifest):
        raise PrecisionError(f"{path} is already an {record.precision.upper()} model (kind {record.kind}); quantize the FP32 model "
                             f"it was made from ({record.parent.path})")


def load_fp32_parent(path: str | os.PathLike) -> Parent:
    """Read an FP32 ONNX model made by ``rtdeploy export`` and check it can be converted.

    Raises:
        ArtifactError: the file or its manifest is missing or unreadable.
        PrecisionError: the model is already FP16/INT8 (by manifest or by content).
    """
    import onnx

    from rtdeploy.artifacts import check_matches_manifest, read_manifest
    from rtdeploy.files import not_a_file
    from rtdeploy.manifests import typed

    p = Path(path)
    if not p.is_file():
        raise ArtifactError(f"ONNX model {p} {not_a_file(p)}; export one with `rtdeploy export --depth N -o {p.name}`")
    record = typed(read_manifest(p), p)
    refuse_quantized(record, p)
    sha = check_matches_manifest(p, record.sha256, remedy="re-export it (or re-import it), then quantize the new file")
    try:
        model = onnx.load(str(p))
    except Exception as e:  # onnx raises DecodeError and friends, untyped
        raise ArtifactError(f"cannot read ONNX model {p}: {first_line(e, 160)}; re-export it") from e
    found = sorted({n.op_type for n in model.graph.node if n.op_type in QUANT_OPS})
    if found:
        raise PrecisionError(f"{p} already holds quantization nodes ({', '.join(found)}); give the FP32 model it was made from")
    if any(_is_float16(i.type) for i in model.graph.input):
        raise PrecisionError(f"{p} has FP16 inputs, so it is not an FP32 model; give the FP32 export")
    # A fixed-batch model is calibrated in batches of its own size (precision/int8/fixed_batch.py).
    return Parent(p, model, record, sha)


def _is_float16(type_proto) -> bool:
    from onnx import TensorProto

    return type_proto.tensor_type.elem_type == TensorProto.FLOAT16


def opset_of(model) -> int:
    """The default-domain opset version of ``model``."""
    for imp in model.opset_import:
        if imp.domain in ("", "ai.onnx"):
            return int(imp.version)
    return 0


def name_nodes(model) -> None:
    """Give every unnamed node a unique name (``<op>_<index>``) so reports can refer to it."""
    seen = {n.name for n in model.graph.node if n.name}
    for i, node in enumerate(model.graph.node):
        if not node.name:
            name = f"{node.op_type}_{i}"
            while name in seen:
                name += "_"
            node.name = name
            seen.add(name)


def producers(graph) -> dict:
    """Tensor name -> the node that writes it."""
    return {out: node for node in graph.node for out in node.output if out}


def initializers(graph) -> dict:
    """Initializer name -> ``TensorProto``."""
    return {i.name: i for i in graph.initializer}


def graph_input_names(graph) -> list[str]:
    """Names of the real inputs (not initializers listed as inputs, as old exporters did)."""
    inits = {i.name for i in graph.initializer}
    return [i.name for i in graph.input if i.name not in inits]


class NameMaker:
    """Unique tensor/node names derived from a base name."""

    def __init__(self, model):
        g = model.graph
        self.used = {i.name for i in g.initializer} | {i.name for i in g.input} | {o.name for o in g.output}
        self.used |= {t for n in g.node for t in (*n.input, *n.output)} | {n.name for n in g.node}

    def __call__(self, base: str) -> str:
        name, i = base, 1
        while name in self.used:
            name, i = f"{base}_{i}", i + 1
        self.used.add(name)
        return name


def save_model(model, path: Path) -> None:
    """Save ``model`` to ``path`` (one file; models here are far below 2 GB)."""
    import onnx

    onnx.save_model(model, str(path))
