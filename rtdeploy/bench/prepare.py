"""Artifacts for a sweep, made or reused through :mod:`rtdeploy.make_or_reuse` (its one reuse rule).

    <workdir>/resnet50_224px.onnx          export (seed-0 weights, dynamic batch)
    <workdir>/resnet50_224px.int8.onnx     quantize --int8, calibrated on synthetic inputs (timing only)
    <workdir>/resnet50_224px.fp16.onnx     quantize --fp16
    <workdir>/resnet50_224px.int8.b8.engine  build-engine, one per batch size with a static profile (trtexec --shapes)
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from rtdeploy.files import folder_lock
from rtdeploy.errors import MissingDependency, OutputError

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
    with folder_lock(cfg.workdir, what="bench work folder"), \
            tqdm(todo, desc="prepare", unit="artifact", file=sys.stderr, disable=not cfg.progress, leave=False) as bar:
        for slot in bar:
            bar.set_postfix_str(slot.label, refresh=False)
            try:
                onnx = _onnx_for(slot.meta, slot.precision, cfg, onnx_cache)
                if slot.backend == "onnxruntime":
                    slot.artifact = onnx
                else:
                    slot.engines = {b: _engine_for(onnx, slot.precision, b) for b in slot.batches}
                    slot.artifact = slot.engines[slot.batches[0]]
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
    key = (meta.name, meta.image_size, precision)
    if key not in cache:
        fp32 = cache.get((meta.name, meta.image_size, "fp32")) or exported_onnx(meta, cfg.workdir)
        cache[(meta.name, meta.image_size, "fp32")] = fp32
        cache[key] = fp32 if precision == "fp32" else _quantize(fp32, precision, meta)
    return cache[key]


def exported_onnx(meta, workdir: Path) -> Path:
    """The seed-0, dynamic-batch ONNX of ``meta`` in ``workdir``: reused when its manifest matches, else exported."""
    from rtdeploy.make_or_reuse import exported
    from rtdeploy.export import ExportConfig

    cfg = ExportConfig(model=meta.name, output=workdir / f"{meta.name}_{meta.image_size}px.onnx", image_size=meta.image_size)
    return exported(cfg).path


def _quantize(fp32: Path, precision: str, meta) -> Path:
    from rtdeploy.make_or_reuse import quantized
    from rtdeploy.precision.quantize import QuantizeConfig

    calib = synthetic_calibration(meta, fp32.parent)  # FP16 uses it too, for its overflow check
    method = {"method": "max"} if precision == "int8" else {}  # FP16 takes no calibrator
    return quantized(QuantizeConfig(model=fp32, int8=precision == "int8", fp16=precision == "fp16", calib_dir=calib,
                                    **method)).path


CALIBRATION_SAMPLES = 16


def synthetic_calibration(meta, folder: Path) -> Path:
    """A ``.npy`` of seeded standard-normal inputs to calibrate the INT8 (and check the FP16) models a sweep makes.

    The speed of an INT8 graph does not depend on its scales (the same Q/DQ nodes, the same
    kernels), so the sweep calibrates on these few inputs with the quick ``max`` calibrator rather
    than spend minutes on photos. Such a model is for timing only: for an accurate INT8 model use
    ``rtdeploy quantize`` and time it with ``rtdeploy bench --model``.
    """
    import numpy as np

    from rtdeploy.files import atomic_path

    path = folder / f"calib_synthetic_{meta.in_channels}x{meta.image_size}px_{CALIBRATION_SAMPLES}.npy"
    if not path.is_file():
        x = np.random.default_rng(0).standard_normal((CALIBRATION_SAMPLES, *meta.input_shape(1)[1:]), dtype=np.float32)
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.save(f, x)
    return path


def _engine_for(onnx: Path, precision: str, batch: int) -> Path:
    """The engine that times ``batch``: a static profile ``batch:batch:batch``, so its tactics are chosen for
    the batch it is timed at (trtexec ``--shapes``; MLPerf's engines are built per batch too)."""
    from rtdeploy.lineage import derived_path
    from rtdeploy.make_or_reuse import engine
    from rtdeploy.trt import BuildOptions

    out = derived_path(onnx, precision, f".b{batch}.engine")
    return engine(BuildOptions(onnx=onnx, precision=precision, batch=str(batch), output=out)).path
