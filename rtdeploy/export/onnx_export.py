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

import contextlib
import logging
import time
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from rtdeploy.artifacts import atomic_path, config_fields, derivation, refuse_overwriting_inputs, sha256_file
from rtdeploy.checks import check_bytes, check_memory, output_file
from rtdeploy.errors import ExportError, RtDeployError, WeightsError, first_line
from rtdeploy.manifests import OnnxManifest, PrecisionManifest, new_manifest, typed
from rtdeploy.models import ModelMeta, build_model, load_weights
from rtdeploy.models.specs import get_spec, model_names
from rtdeploy.progress import phase, ticking

log = logging.getLogger(__name__)

MIN_OPSET, MAX_OPSET, DEFAULT_OPSET = 13, 20, 17
INIT_SEED = 0


@dataclass(frozen=True)
class ExportConfig:
    """What to export.

    Attributes:
        depth: ResNet depth (see ``rtdeploy.models``); the short alias of ``model``.
        model: the registry name (``resnet50``; see :mod:`rtdeploy.models.specs`); wins over ``depth``.
        output: the ONNX path to write, its manifest beside it (None: ``<name>.onnx`` here).
        weights: a checkpoint file; None exports a deterministically initialised model (seed 0).
        num_classes, in_channels, variant, image_size: model options (family defaults when None).
        opset: ONNX opset, 13..20.
        batch: ``"dynamic"`` for a dynamic batch axis, or a fixed batch size.
        progress: a bar with the time elapsed while the exporter traces (it reports no steps);
            each phase is also announced on the ``rtdeploy.progress`` logger.
    """

    depth: int = 50
    model: str | None = None
    output: Path | None = None
    weights: Path | None = None
    num_classes: int | None = None
    in_channels: int = 3
    variant: str | None = None
    image_size: int | None = None
    opset: int = DEFAULT_OPSET
    batch: int | str = "dynamic"
    progress: bool = False


@dataclass(frozen=True)
class ExportResult:
    """The written ONNX file, its manifest and the model metadata."""

    path: Path
    manifest: dict
    meta: ModelMeta


def parse_batch(value: str | int) -> int | str:
    """``"dynamic"`` or a positive batch size.

    Raises:
        ExportError: anything else.
    """
    if (isinstance(value, int) and not isinstance(value, bool)) or (isinstance(value, str) and value.isascii() and value.isdigit()):
        if int(value) >= 1:
            return int(value)
    elif value == "dynamic":
        return value
    raise ExportError(f"--batch {value!r} is not accepted; give 'dynamic' or a positive integer such as 1 or 32")


def export_onnx(cfg: ExportConfig) -> ExportResult:
    """Export the model ``cfg.model`` (or ResNet-``cfg.depth``) to ONNX, check it, and write it with its manifest.

    Raises:
        ModelError, WeightsError, OutputError: bad options, weights or output path.
        ExportError: the exporter or the ONNX checker failed.
    """
    if not MIN_OPSET <= cfg.opset <= MAX_OPSET:
        raise ExportError(f"--opset {cfg.opset} is not supported; accepted: {MIN_OPSET}..{MAX_OPSET} (TensorRT 8.6 reads up to 17, the default)")
    batch = parse_batch(cfg.batch)
    meta = _spec(cfg).meta(num_classes=cfg.num_classes, in_channels=cfg.in_channels, variant=cfg.variant, image_size=cfg.image_size)
    out = output_file(export_path(cfg), manifest=True)
    refuse_overwriting_inputs(out, cfg.weights)
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

    with torch.device("meta"):
        model = _build(meta)
    params = sum(p.numel() for p in model.parameters())
    check_bytes(4 * params * _WEIGHT_COPIES, what=f"{meta.name} with {meta.num_classes} classes ({params:,} parameters)",
                purpose="its weights", advice="give a smaller --num-classes or --in-channels", error=ExportError)


def _build(meta: ModelMeta):
    return get_spec(meta.name).build(meta) if meta.name in model_names() else build_model(meta)


def build_torch_model(meta: ModelMeta, weights: str | Path | None):
    """The eval-mode torch model for ``meta``: loaded from ``weights``, or initialised with seed 0.

    The fixed seed makes an export without weights reproducible, so ``validate`` can rebuild the
    same model from the manifest.
    """
    with _seeded(INIT_SEED):
        model = _build(meta)
    if weights is not None:
        load_weights(model, weights, model_name=f"{meta.name} ({meta.num_classes} classes)")
    return model.eval()


def torch_model_from_manifest(manifest: dict | OnnxManifest | PrecisionManifest):
    """Rebuild the torch model an ONNX manifest (typed, or the dict of one) was exported from.

    Raises:
        ArtifactError: the manifest is not an ONNX model's, or the weights file it records is gone or has changed.
    """
    from rtdeploy.errors import ArtifactError

    if isinstance(manifest, dict):
        manifest = typed(manifest, manifest.get("artifact", "the model"))
    if not isinstance(manifest, (OnnxManifest, PrecisionManifest)):
        raise ArtifactError(f"{manifest.artifact} is not an ONNX model made by rtdeploy (kind {manifest.kind}); give its ONNX")
    meta = ModelMeta.from_dict(manifest.model.to_dict())
    w = manifest.weights
    if w.path is None:
        return build_torch_model(meta, None)
    path = Path(w.path)
    if not path.is_file():
        raise ArtifactError(f"the weights this model was exported from ({path}) are gone; put them back or re-export with --weights")
    if sha256_file(path) != w.sha256:
        raise ArtifactError(f"the weights file {path} changed since export (sha256 differs); re-export with `rtdeploy export --weights {path}`")
    return build_torch_model(meta, path)


def check_weight_values(model, weights: str | Path | None) -> None:
    """Refuse weights no trained network has: NaN or Inf anywhere, or a negative BatchNorm variance
    (the export would fold them into every convolution and the model would output NaN).

    Raises:
        WeightsError: naming the first bad tensor.
    """
    import torch

    source = f"weights {weights}" if weights is not None else "the initialised model"
    for name, tensor in [*model.named_parameters(), *model.named_buffers()]:
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise WeightsError(f"{source}: {name!r} holds NaN or Inf; the checkpoint is corrupt or diverged — use another checkpoint")
    for name, module in model.named_modules():
        var = getattr(module, "running_var", None)
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm) and var is not None and bool((var < 0).any()):
            raise WeightsError(f"{source}: '{name}.running_var' has negative values (min {float(var.min()):.4g}); "
                               "a variance is never negative, so the checkpoint is corrupt — use another checkpoint")


@contextlib.contextmanager
def _seeded(seed: int):
    import torch

    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        yield
    finally:
        torch.random.set_rng_state(state)


def export_path(cfg: ExportConfig) -> Path:
    """Where ``cfg`` writes: ``cfg.output``, or ``<name>.onnx`` (``resnet50.onnx``) in the working folder."""
    return Path(cfg.output) if cfg.output is not None else Path(f"{_spec(cfg).name}.onnx")


def _spec(cfg: ExportConfig):
    return get_spec(cfg.model if cfg.model is not None else cfg.depth)


def export_derivation(cfg: ExportConfig) -> dict:
    """The derivation record of what ``cfg`` exports (see :func:`rtdeploy.artifacts.reuse_verdict`).

    The model is recorded by depth for ResNets (as before names existed), by name otherwise.
    """
    spec = _spec(cfg)
    named = {"depth": spec.depth} if spec.depth is not None else {"depth": None, "model": spec.name}
    config = config_fields(cfg, exclude={"output", "weights", "model", "progress"}) | named | {"batch": parse_batch(cfg.batch)}
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
