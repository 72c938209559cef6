"""Complete manifests for test stand-ins, written through the typed writer (rtdeploy.manifests).

A stand-in for a stage (a tiny hand-made ONNX, a fake engine) still needs the manifest that stage
writes, with every field its kind's schema requires; these helpers fill the fields a test does not
care about with plausible values, and the typed writer checks the result like any real manifest.
"""

from __future__ import annotations

from pathlib import Path

from rtdeploy.artifacts import parent_entry, write_manifest
from rtdeploy.files import sha256_file
from rtdeploy.manifests import new_manifest


def export_fields(batch="dynamic") -> dict:
    """The fields ``rtdeploy export`` writes beside ``model`` (seed-0 weights, opset 17)."""
    return {"weights": {"path": None, "init_seed": 0},
            "export": {"exporter": "torchscript", "opset": 17, "batch": batch, "seconds": 0.0},
            "ops": {}, "checks": {}}


def write_onnx_manifest(path: Path, meta: dict, **overrides) -> dict:
    """Write the manifest ``rtdeploy export`` would write for the FP32 ONNX at ``path``."""
    manifest = new_manifest("onnx", path, **{"precision": "fp32", "model": meta, **export_fields(), **overrides})
    write_manifest(path, manifest)
    return manifest


def engine_fields(parent: Path, *, precision: str, model: dict | None, profile: tuple[int, int, int] = (1, 8, 32),
                  input_name: str = "input", sample_shape: tuple[int, ...] = (3, 32, 32), tensorrt: str = "10.3.0",
                  compute_capability: str = "8.6", device: str = "NVIDIA A10", dla_core: int | None = None,
                  version_compatible: bool = False) -> dict:
    """The fields ``build-engine`` writes for an engine built from ``parent`` (an existing ONNX file);
    with ``dla_core``, a DLA build (every layer on the DLA)."""
    lo, opt, hi = profile
    calibration = {"method": "qdq", "onnx": None} if precision == "int8" else None
    return {
        "precision": precision, "model": model,
        "parent": parent_entry(parent) if Path(parent).is_file() else {"path": str(parent), "sha256": "0" * 64},
        "tensorrt": {"version": tensorrt, "network_flags": [], "builder_flags": [], "strongly_typed": True, "method": "stand-in"},
        "device": {"index": 0, "name": device, "compute_capability": compute_capability, "total_bytes": 24 << 30, "integrated": False},
        "profile": {"input": input_name, "sample_shape": list(sample_shape), "min": lo, "opt": opt, "max": hi},
        "calibration": calibration,
        "build": {"seconds": 0.0, "workspace_bytes": None, "builder_optimization_level": None, "timing_cache": None,
                  "dla_core": dla_core, "gpu_fallback": False, "version_compatible": version_compatible,
                  "hardware_compatibility": None},
        "dla": None if dla_core is None else {"dla": 1, "gpu": 0, "gpu_layers": []},
        "layers": {"verified": True, "detailed": False, "by_precision": {}, "by_device": {}, "list": []},
        "rebuild_command": f"rtdeploy build-engine --onnx {parent} --{precision}",
    }


def write_engine_manifest(engine: Path, parent: Path, *, derivation: dict | None = None, **kw) -> dict:
    """Write a complete engine manifest beside the stand-in plan file ``engine`` (with the
    ``derivation`` record the real stage writes, when given, so that reuse can be judged)."""
    extra = {"derivation": derivation} if derivation is not None else {}
    manifest = new_manifest("engine", engine, **engine_fields(parent, **kw), **extra)
    assert manifest["sha256"] == sha256_file(engine)
    write_manifest(engine, manifest)
    return manifest


FP16_SECTION = {"io": "fp32", "limit": 16376.0, "safety_factor": 4.0, "max_abs_activation": 0.0, "kept_fp32": [], "casts": 0,
                "weights_clamped": 0, "weights_flushed_to_zero": 0, "seconds": {}}
INT8_SECTION = {"method": "max", "percentile": None, "weights": "stand-in", "activations": "stand-in", "placement": "stand-in",
                "layers": 0, "quantized_layers": 0, "kept_fp": [], "qdq_nodes": {}, "scales": {}, "seconds": {}}


def write_derived_manifest(child: Path, parent: Path, precision: str, *, derivation: dict | None = None) -> dict:
    """Write the manifest ``quantize`` writes for ``child``, a stand-in FP16/INT8 model made from ``parent``
    (an ONNX with its export manifest beside it)."""
    from rtdeploy.artifacts import read_manifest

    pm = read_manifest(parent)
    calibration = {"source": "images", "dir": None, "data": "stand-in", "fingerprint": "0" * 64, "images": 1, "seed": 0,
                   "stats_cache": "off"}
    section = {"fp16": FP16_SECTION} if precision == "fp16" else {"quantization": INT8_SECTION}
    manifest = new_manifest(f"onnx-{precision}", child, precision=precision, model=pm["model"], parent=parent_entry(parent),
                            weights=pm["weights"], export=pm["export"], calibration=calibration, ops={}, **section,
                            **({"derivation": derivation} if derivation is not None else {}))
    write_manifest(child, manifest)
    return manifest
