"""torch -> ONNX export with checks and a manifest.

Exporter choice: the TorchScript-based exporter (``torch.onnx.export(..., dynamo=False)``). For
these convolutional networks it is fast, writes one self-contained file, and supports opsets down
to 13 that TensorRT 8.6 reads. The dynamo exporter writes weights as external data by default and
costs more time per model for no gain on a static CNN. If a future torch drops the TorchScript
exporter, :func:`_torch_export` is the one place to change.

Where the time goes, and what was done about it (ResNet-101 at 224 on 2 busy cores): the
exporter's own BatchNorm folding pass and the tracing forward pass dominated, then serializing
and checking. BatchNorm is folded into the convolutions before export (:func:`fold_batchnorms`),
ImageNet models are traced at 64x64 (their graph does not depend on the size; the real size is set
and every shape re-inferred strictly), the exporter writes into memory, and ``onnx.checker``'s
full check (structural check + strict typed shape inference) runs each part once on the final
model instead of inferring shapes twice. No check was dropped.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from rtdeploy.artifacts import ArtifactKind
from rtdeploy.files import atomic_path, sha256_file
from rtdeploy.lineage import derivation
from rtdeploy.checks import check_bytes, check_memory, output_file
from rtdeploy.errors import ExportError, RtDeployError, first_line
from rtdeploy.library_errors import stage_boundary
from rtdeploy.manifests import new_manifest
from rtdeploy.models import ModelMeta
from rtdeploy.models.reference import INIT_SEED, build_torch_model, check_weight_values
from rtdeploy.export.options import DEFAULT_OPSET, ExportConfig, export_path
from rtdeploy.options import output_fields
from rtdeploy.progress import phase, ticking

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExportResult:
    """The written ONNX file, its manifest and the model metadata."""

    path: Path
    manifest: dict
    meta: ModelMeta


@stage_boundary("export", ExportError)
def export_onnx(cfg: ExportConfig) -> ExportResult:
    """Export the model ``cfg.model`` (or ResNet-``cfg.depth``) to ONNX, check it, and write it with its manifest.

    Raises:
        ModelError, WeightsError, OutputError: bad options, weights or output path.
        ExportError: the exporter or the ONNX checker failed.
    """
    cfg.check()
    batch = cfg.batch
    meta = cfg.meta()
    out = output_file(export_path(cfg), manifest=True, writes=ArtifactKind("onnx", "fp32"))
    size = _trace_size(meta)
    traced = 1 if batch == "dynamic" else batch
    check_memory(traced, meta.in_channels, size, error=ExportError, what=f"tracing {meta.name} at batch {traced}, {size}x{size}")
    check_weights_memory(meta)
    phase("export %s: building the model%s", meta.name, f" with the weights of {cfg.weights}" if cfg.weights else " (seed 0)")
    model = build_torch_model(meta, cfg.weights)
    check_weight_values(model, cfg.weights)
    start = time.perf_counter()
    fold_batchnorms(model)
    done: dict = {}

    def make_manifest(tmp: Path) -> dict:
        done["manifest"] = new_manifest(
            "onnx", tmp,
            precision="fp32",
            model=meta.to_dict(),
            weights=_weights_entry(cfg.weights),
            export={"exporter": "torchscript", "opset": cfg.opset, "batch": batch,
                    "seconds": round(time.perf_counter() - start, 3)},
            ops=done["ops"],
            checks={"onnx_checker_full": True, "shape_inference": True, "batchnorm_folded": True},
            derivation=export_derivation(cfg),
        )
        return done["manifest"]

    with atomic_path(out, manifest=make_manifest) as tmp:
        phase("export %s: tracing with torch.onnx (TorchScript exporter, opset %d)", meta.name, cfg.opset)
        with ticking(f"export {meta.name}: tracing", cfg.progress):
            data = _torch_export(model, meta, cfg.opset, batch)
        phase("export %s: checking the graph (shape inference, onnx.checker)", meta.name)
        done["ops"] = _check_and_finalize(data, meta, batch, tmp)
    manifest = done["manifest"]
    seconds = manifest["export"]["seconds"]
    log.info("exported %s to %s in %.2fs", meta.name, out, seconds)
    return ExportResult(out, manifest, meta)


# An export holds the weights about three times at once: the torch model, the ONNX graph and its bytes.
_WEIGHT_COPIES = 3


def check_weights_memory(meta: ModelMeta) -> None:
    """Refuse a model whose weights cannot fit in memory (e.g. ``--num-classes 2000000000``), before
    allocating them: the parameters are counted on torch's meta device.

    Raises:
        ExportError: the weights need more memory than is available.
    """
    import torch

    from rtdeploy.models.registry import build

    with torch.device("meta"):
        model = build(meta)
    params = sum(p.numel() for p in model.parameters())
    check_bytes(4 * params * _WEIGHT_COPIES, what=f"{meta.name} with {meta.num_classes} classes ({params:,} parameters)",
                purpose="its weights", advice="give a smaller --num-classes or --in-channels", error=ExportError)


def export_derivation(cfg: ExportConfig) -> dict:
    """The derivation record of what ``cfg`` exports (see :func:`rtdeploy.lineage.reuse_verdict`).

    The model is recorded by depth for ResNets (as before names existed), by name otherwise.
    """
    entry = cfg.entry
    named = {"depth": entry.depth} if entry.depth is not None else {"depth": None, "model": entry.name}
    config = output_fields(cfg, exclude={"model", "depth"}) | named
    weights = sha256_file(cfg.weights) if cfg.weights is not None else f"init-seed-{INIT_SEED}"
    return derivation("export", config, {"weights": weights})


def _weights_entry(weights: Path | None) -> dict:
    if weights is None:
        return {"path": None, "init_seed": INIT_SEED}
    p = Path(weights)
    return {"path": str(p.resolve()), "sha256": sha256_file(p)}


def fold_batchnorms(model) -> int:
    """Fold every BatchNorm into the convolution it directly follows, in place; returns the count.

    Our ResNets apply ``bnN`` right after ``convN`` (and ``downsample = Sequential(conv, bn)``), so
    in eval mode ``bn(conv(x)) == conv'(x)`` with rescaled weights and a bias. Folding here costs a
    few multiplications per weight; the exporter's own folding pass took a sixth of the export.
    """
    import torch
    from torch import nn

    count = 0
    for module in list(model.modules()):
        names = list(module._modules)
        pairs = [(a, b) for a, b in zip(names, names[1:])] if isinstance(module, nn.Sequential) else [(f"conv{i}", f"bn{i}") for i in range(1, 4)]
        for conv_name, bn_name in pairs:
            conv, bn = module._modules.get(conv_name), module._modules.get(bn_name)
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                with torch.no_grad():
                    _fold_into(conv, bn)
                module._modules[bn_name] = nn.Identity()
                count += 1
    return count


def _fold_into(conv, bn) -> None:
    import numpy as np
    import torch

    # numpy, in place on the tensors' memory: a handful of small element-wise products, for which
    # torch's thread pool costs more than the work when the cores are busy.
    scale = (bn.weight.detach().numpy() / np.sqrt(bn.running_var.numpy() + bn.eps)).astype(np.float32)
    conv.weight.detach().numpy()[...] *= scale.reshape(-1, 1, 1, 1)
    bias = conv.bias.detach().numpy() if conv.bias is not None else np.zeros_like(scale)
    folded = (bias - bn.running_mean.numpy()) * scale + bn.bias.detach().numpy()
    conv.bias = torch.nn.Parameter(torch.from_numpy(folded.astype(np.float32)))


# ImageNet ResNets are traced at this size: the graph (Conv, MaxPool, GlobalAveragePool, Flatten,
# Gemm) does not depend on the spatial size, and tracing runs the model once, which at 224x224
# was a fifth of the export time. The real size is then set on the input and every shape is
# re-inferred strictly, so a size-dependent constant would fail the checks (and validate).
TRACE_SIZE = 64


def _trace_size(meta: ModelMeta) -> int:
    return min(meta.image_size, TRACE_SIZE) if meta.family == "imagenet" else meta.image_size


def _torch_export(model, meta: ModelMeta, opset: int, batch: int | str) -> bytes:
    """Run the TorchScript exporter into memory; returns the ONNX bytes."""
    import io

    import torch

    size = _trace_size(meta)
    example = torch.zeros((1 if batch == "dynamic" else batch, meta.in_channels, size, size))
    axes = {meta.input_name: {0: "batch"}, meta.output_name: {0: "batch"}} if batch == "dynamic" else None
    buffer = io.BytesIO()
    try:
        with torch.no_grad(), warnings.catch_warnings():
            # The exporter warns about its own deprecation and about the strided Slice of the
            # CIFAR shortcut, which it cannot fold; neither concerns the user.
            warnings.simplefilter("ignore")
            torch.onnx.export(
                model, (example,), buffer, dynamo=False, opset_version=opset,
                input_names=[meta.input_name], output_names=[meta.output_name],
                dynamic_axes=axes, do_constant_folding=True,
            )
    except RtDeployError:
        raise
    except Exception as e:
        raise ExportError(f"torch.onnx.export failed for {meta.name} at opset {opset}: {first_line(e)}; try --opset {DEFAULT_OPSET}") from e
    return buffer.getvalue()


def _check_and_finalize(data: bytes, meta: ModelMeta, batch: int | str, path: Path) -> dict[str, int]:
    """Clean up, set the real input size, infer shapes strictly, check fully, write ``path``.

    ``onnx.checker``'s ``full_check`` is its structural check plus strict, type-checked shape
    inference; both are run here, once each, on the final model (instead of inferring twice).

    Returns:
        The op inventory (op type -> count).
    """
    import onnx

    from rtdeploy.export.graph_cleanup import fold_constants, materialize_identities

    model = onnx.load_from_string(data)
    fold_constants(model)
    materialize_identities(model)
    _set_input_size(model, meta.image_size)
    try:
        model = onnx.shape_inference.infer_shapes(model.SerializeToString(), check_type=True, strict_mode=True)
        final = model.SerializeToString()
        onnx.checker.check_model(final)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as e:
        raise ExportError(f"the exported ONNX failed onnx.checker: {first_line(e)}") from e
    _check_output_shape(model, meta, batch)
    ops = dict(sorted(Counter(n.op_type for n in model.graph.node).items()))
    if "BatchNormalization" in ops:
        raise ExportError("BatchNormalization survived the export (not folded into Conv); this is a bug — please report it with the command")
    path.write_bytes(final)
    return ops


def _set_input_size(model, size: int) -> None:
    dims = model.graph.input[0].type.tensor_type.shape.dim
    dims[2].dim_value = dims[3].dim_value = size
    del model.graph.value_info[:]  # traced at another size; re-inferred below


def _check_output_shape(model, meta: ModelMeta, batch: int | str) -> None:
    dims = model.graph.output[0].type.tensor_type.shape.dim
    found = tuple(d.dim_param or d.dim_value for d in dims)
    expected = ("batch" if batch == "dynamic" else batch, meta.num_classes)
    if found != expected:
        raise ExportError(f"the exported ONNX's output shape is {found}, expected {expected}; this is a bug — please report it with the command")
