"""torch -> ONNX export with checks and a manifest.

Exporter choice: the TorchScript-based exporter (``torch.onnx.export(..., dynamo=False)``). For
these convolutional networks it is fast (about a second for ResNet-50 on 2 cores), writes one
self-contained file, folds BatchNorm into the convolutions by constant folding, and supports opsets
down to 13 that TensorRT 8.6 reads. The dynamo exporter writes weights as external data by default
and costs far more time per model for no gain on a static CNN. If a future torch drops the
TorchScript exporter, :func:`_torch_export` is the one place to change.
"""

from __future__ import annotations

import contextlib
import logging
import time
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from rtdeploy.artifacts import atomic_path, check_output_path, new_manifest, sha256_file
from rtdeploy.errors import ExportError, RtDeployError
from rtdeploy.models import ModelMeta, build_model, load_weights, model_meta

log = logging.getLogger(__name__)

MIN_OPSET, MAX_OPSET, DEFAULT_OPSET = 13, 20, 17
INIT_SEED = 0


@dataclass(frozen=True)
class ExportConfig:
    """What to export.

    Attributes:
        depth: ResNet depth (see ``rtdeploy.models``).
        output: the ONNX path to write (its manifest goes beside it).
        weights: a checkpoint file; None exports a deterministically initialised model (seed 0).
        num_classes, in_channels, variant, image_size: model options (family defaults when None).
        opset: ONNX opset, 13..20.
        batch: ``"dynamic"`` for a dynamic batch axis, or a fixed batch size.
    """

    depth: int
    output: Path
    weights: Path | None = None
    num_classes: int | None = None
    in_channels: int = 3
    variant: str | None = None
    image_size: int | None = None
    opset: int = DEFAULT_OPSET
    batch: int | str = "dynamic"


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
    if isinstance(value, int) or (isinstance(value, str) and value.isdigit()):
        if int(value) >= 1:
            return int(value)
    elif value == "dynamic":
        return value
    raise ExportError(f"--batch {value!r} is not accepted; give 'dynamic' or a positive integer such as 1 or 32")


def export_onnx(cfg: ExportConfig) -> ExportResult:
    """Export the ResNet of ``cfg.depth`` to ONNX, check it, and write it with its manifest.

    Raises:
        ModelError, WeightsError, OutputError: bad options, weights or output path.
        ExportError: the exporter or the ONNX checker failed.
    """
    if not MIN_OPSET <= cfg.opset <= MAX_OPSET:
        raise ExportError(f"--opset {cfg.opset} is not supported; accepted: {MIN_OPSET}..{MAX_OPSET} (TensorRT 8.6 reads up to 17, the default)")
    batch = parse_batch(cfg.batch)
    meta = model_meta(cfg.depth, num_classes=cfg.num_classes, in_channels=cfg.in_channels, variant=cfg.variant, image_size=cfg.image_size)
    out = check_output_path(cfg.output)
    model = build_torch_model(meta, cfg.weights)
    start = time.perf_counter()
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
        )
        return done["manifest"]

    with atomic_path(out, manifest=make_manifest) as tmp:
        _torch_export(model, meta, tmp, cfg.opset, batch)
        done["ops"] = _check_and_finalize(tmp)
    manifest = done["manifest"]
    seconds = manifest["export"]["seconds"]
    log.info("exported %s to %s in %.2fs", meta.name, out, seconds)
    return ExportResult(out, manifest, meta)


def build_torch_model(meta: ModelMeta, weights: str | Path | None):
    """The eval-mode torch model for ``meta``: loaded from ``weights``, or initialised with seed 0.

    The fixed seed makes an export without weights reproducible, so ``validate`` can rebuild the
    same model from the manifest.
    """
    import torch

    with _seeded(INIT_SEED):
        model = build_model(meta)
    if weights is not None:
        load_weights(model, weights, model_name=f"{meta.name} ({meta.num_classes} classes)")
    return model.eval()


def torch_model_from_manifest(manifest: dict):
    """Rebuild the torch model an ONNX manifest was exported from.

    Raises:
        ArtifactError: the weights file recorded in the manifest is gone or has changed.
    """
    from rtdeploy.errors import ArtifactError

    meta = ModelMeta.from_dict(manifest["model"])
    w = manifest.get("weights") or {}
    if w.get("path") is None:
        return build_torch_model(meta, None)
    path = Path(w["path"])
    if not path.is_file():
        raise ArtifactError(f"the weights this model was exported from ({path}) are gone; put them back or re-export with --weights")
    if sha256_file(path) != w.get("sha256"):
        raise ArtifactError(f"the weights file {path} changed since export (sha256 differs); re-export with `rtdeploy export --weights {path}`")
    return build_torch_model(meta, path)


@contextlib.contextmanager
def _seeded(seed: int):
    import torch

    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        yield
    finally:
        torch.random.set_rng_state(state)


def _weights_entry(weights: Path | None) -> dict:
    if weights is None:
        return {"path": None, "init_seed": INIT_SEED}
    p = Path(weights)
    return {"path": str(p.resolve()), "sha256": sha256_file(p)}


def _torch_export(model, meta: ModelMeta, path: Path, opset: int, batch: int | str) -> None:
    import torch

    example = torch.zeros(meta.input_shape(1 if batch == "dynamic" else batch))
    axes = {meta.input_name: {0: "batch"}, meta.output_name: {0: "batch"}} if batch == "dynamic" else None
    try:
        with torch.no_grad(), warnings.catch_warnings():
            # The exporter warns about its own deprecation and about the strided Slice of the
            # CIFAR shortcut, which it cannot fold; neither concerns the user.
            warnings.simplefilter("ignore")
            torch.onnx.export(
                model, (example,), str(path), dynamo=False, opset_version=opset,
                input_names=[meta.input_name], output_names=[meta.output_name],
                dynamic_axes=axes, do_constant_folding=True,
            )
    except RtDeployError:
        raise
    except Exception as e:
        raise ExportError(f"torch.onnx.export failed for {meta.name} at opset {opset}: {str(e).splitlines()[0][:200]}; try --opset {DEFAULT_OPSET}") from e


def _check_and_finalize(path: Path) -> dict[str, int]:
    """Full ONNX check, shape inference written into the file; returns the op inventory."""
    import onnx

    from rtdeploy.export.graph_cleanup import fold_constants, materialize_identities

    model = onnx.load(str(path))
    fold_constants(model)
    materialize_identities(model)
    try:
        onnx.checker.check_model(model, full_check=True)
        model = onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as e:
        raise ExportError(f"the exported ONNX failed onnx.checker: {str(e).splitlines()[0][:200]}") from e
    ops = dict(sorted(Counter(n.op_type for n in model.graph.node).items()))
    if "BatchNormalization" in ops:
        raise ExportError("BatchNormalization survived the export (not folded into Conv); this is a bug — please report it with the command")
    onnx.save(model, str(path))
    return ops
