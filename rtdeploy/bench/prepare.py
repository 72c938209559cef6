"""Artifacts for a sweep, made through the pipeline's stages and reused while their manifests match.

    <workdir>/resnet50_224px.onnx          api.export (seed-0 weights, dynamic batch)
    <workdir>/resnet50_224px.int8.onnx     api.quantize(int8=True), calibrated on synthetic inputs (timing only)
    <workdir>/resnet50_224px.fp16.onnx     api.quantize(fp16=True)
    <workdir>/resnet50_224px.int8.engine   api.build_engine (profile up to the sweep's largest batch)

An artifact is reused when it exists, its bytes match its manifest's sha256, and the manifest says
it was made from the same model (exports) or from the same parent bytes (the later stages): the
rules of :mod:`rtdeploy.reuse`, shared with build-engine.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from rtdeploy.errors import MissingDependency, OutputError
from rtdeploy.reuse import derived_path, precision_onnx, reuse_or_make

log = logging.getLogger(__name__)


def prepare_slots(slots: list, cfg, skipped: list[dict]) -> list:
    """Give every slot that needs one its artifact; return the slots that can run.

    A precision whose stage cannot run in this install (it raises :class:`MissingDependency`) is
    moved to ``skipped`` with the reason, so the rest of the sweep still runs.

    Raises:
        OutputError: the work folder cannot be created.
        RtDeployError: a stage failed.
    """
    from tqdm.auto import tqdm

    todo = [s for s in slots if s.backend != "torch" and not s.given]
    if not todo:
        return slots
    _make_workdir(cfg.workdir)
    ready = []
    onnx_cache: dict[tuple, Path] = {}
    with tqdm(todo, desc="prepare", unit="artifact", file=sys.stderr, disable=not cfg.progress, leave=False) as bar:
        for slot in bar:
            bar.set_postfix_str(slot.label, refresh=False)
            try:
                onnx = _onnx_for(slot.meta, slot.precision, cfg, onnx_cache)
                slot.artifact = onnx if slot.backend == "onnxruntime" else _engine_for(onnx, slot.precision, max(slot.batches))
            except MissingDependency as e:
                if slot.backend == "tensorrt":
                    raise
                skipped.append({"model": slot.meta.name, "backend": slot.backend, "precision": slot.precision, "reason": str(e)})
                continue
    for slot in slots:
        if slot.backend == "torch" or slot.given or slot.artifact is not None:
            ready.append(slot)
    return ready


def _make_workdir(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"cannot create the work folder {path}: {e.strerror or e}; choose another with --workdir") from e


def _onnx_for(meta, precision: str, cfg, cache: dict) -> Path:
    key = (meta.depth, meta.image_size, precision)
    if key not in cache:
        fp32 = cache.get((meta.depth, meta.image_size, "fp32")) or exported_onnx(meta, cfg.workdir)
        cache[(meta.depth, meta.image_size, "fp32")] = fp32
        cache[key] = fp32 if precision == "fp32" else _quantize(fp32, precision, meta)
    return cache[key]


def exported_onnx(meta, workdir: Path) -> Path:
    """The seed-0, dynamic-batch ONNX of ``meta`` in ``workdir``: reused when its manifest matches, else exported."""
    from rtdeploy.export.onnx_export import INIT_SEED
    from rtdeploy.reuse import exported_onnx as reuse_or_export

    return reuse_or_export(workdir / f"{meta.name}_{meta.image_size}px.onnx", meta.depth, image_size=meta.image_size,
                           model=meta.to_dict(), weights={"path": None, "init_seed": INIT_SEED})


def _quantize(fp32: Path, precision: str, meta) -> Path:
    calib = synthetic_calibration(meta, fp32.parent)  # FP16 uses it too, for its overflow check
    if precision == "fp16":
        return precision_onnx(fp32, "fp16", calib_dir=calib)
    return precision_onnx(fp32, "int8", calib_dir=calib, method="max")


CALIBRATION_SAMPLES = 16


def synthetic_calibration(meta, folder: Path) -> Path:
    """A ``.npy`` of seeded standard-normal inputs to calibrate the INT8 (and check the FP16) models a sweep makes.

    The speed of an INT8 graph does not depend on its scales (the same Q/DQ nodes, the same
    kernels), so the sweep calibrates on these few inputs with the quick ``max`` calibrator rather
    than spend minutes on photos. Such a model is for timing only: for an accurate INT8 model use
    ``rtdeploy quantize`` and time it with ``rtdeploy bench --model``.
    """
    import numpy as np

    from rtdeploy.artifacts import atomic_path

    path = folder / f"calib_synthetic_{meta.in_channels}x{meta.image_size}px_{CALIBRATION_SAMPLES}.npy"
    if not path.is_file():
        x = np.random.default_rng(0).standard_normal((CALIBRATION_SAMPLES, *meta.input_shape(1)[1:]), dtype=np.float32)
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.save(f, x)
    return path


def _engine_for(onnx: Path, precision: str, max_batch: int) -> Path:
    from rtdeploy import api

    out = derived_path(onnx if precision == "fp32" else onnx.with_name(onnx.name.replace(f".{precision}", "")), precision, ".engine")

    def fits(manifest: dict) -> bool:
        limit = engine_max_batch(manifest)
        return limit is not None and limit >= max_batch

    return reuse_or_make(out, onnx, lambda path: api.build_engine(onnx, precision=precision, max_batch=max_batch, output=path),
                         accept=fits)


def engine_max_batch(manifest: dict) -> int | None:
    """The largest batch an engine's optimization profile accepts: its manifest's ``profile.max``,
    read through the typed engine record (None when ``manifest`` is not a complete engine manifest)."""
    from rtdeploy.manifests import EngineManifest, RecordError

    try:
        return EngineManifest.from_dict(manifest).max_batch
    except RecordError:
        return None
