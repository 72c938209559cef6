"""Manifests of the ONNX artifacts: the FP32 export and the FP16 / INT8 models ``quantize`` makes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from rtdeploy.manifests.common import ArtifactManifest, ExportInfo, ParentRef, Weights
from rtdeploy.models.metadata import ModelMeta
from rtdeploy.manifests.typed import Record


@dataclass(frozen=True, kw_only=True)
class OnnxManifest(ArtifactManifest):
    """``rtdeploy export``'s FP32 ONNX (kind ``onnx``)."""

    kind: Literal["onnx"]
    precision: Literal["fp32"]
    model: ModelMeta
    weights: Weights | None
    export: ExportInfo
    ops: dict[str, int]
    checks: dict[str, bool]


@dataclass(frozen=True, kw_only=True)
class QuantizeCalibration(Record):
    """The data a precision model was calibrated (or range-checked) on.

    ``source`` is ``images`` (a folder or ``.npy`` of inputs: ``dir``, ``data``, ``fingerprint``,
    ``images``, ``seed``, ``stats_cache``, ``held_out`` (INT8's fallback search) and
    ``validation_held_out``: images of the folder set aside for validation and never read) or
    ``trt-cache`` (scales read from a TensorRT calibration cache: ``trt_cache``).
    """

    source: Literal["images", "trt-cache"]
    dir: str | None = None
    data: str | None = None
    fingerprint: str | None = None
    images: int | None = None
    held_out: int | None = None
    validation_held_out: int | None = None
    seed: int | None = None
    stats_cache: Literal["hit", "miss", "off"] | None = None
    trt_cache: str | None = None


@dataclass(frozen=True, kw_only=True)
class PrecisionManifest(ArtifactManifest):
    """What the FP16 and INT8 manifests share: the parent export, its model, weights and export record."""

    model: ModelMeta
    parent: ParentRef
    weights: Weights | None
    export: ExportInfo
    calibration: QuantizeCalibration
    ops: dict[str, int]


@dataclass(frozen=True, kw_only=True)
class KeptFp32(Record):
    """A node the FP16 conversion kept in FP32, and why."""

    node: str
    reason: str


@dataclass(frozen=True, kw_only=True)
class Fp16Info(Record):
    """How the FP16 model was made (see :mod:`rtdeploy.precision.fp16`)."""

    io: Literal["fp32", "fp16"]
    limit: float
    safety_factor: float
    max_abs_activation: float
    kept_fp32: tuple[KeptFp32, ...]
    casts: int
    weights_clamped: int
    weights_flushed_to_zero: int
    seconds: dict[str, float]


@dataclass(frozen=True, kw_only=True)
class Fp16Manifest(PrecisionManifest):
    """``rtdeploy quantize --fp16``'s model (kind ``onnx-fp16``)."""

    kind: Literal["onnx-fp16"]
    precision: Literal["fp16"]
    fp16: Fp16Info

    def kept_float(self) -> list[str]:
        """The nodes the overflow guard kept in FP32."""
        return [k.node for k in self.fp16.kept_fp32]


@dataclass(frozen=True, kw_only=True)
class KeptLayer(Record):
    """A layer the INT8 model keeps in floating point."""

    node: str
    op_type: str


@dataclass(frozen=True, kw_only=True)
class Fallback(Record):
    """The sensitivity-driven fallback (``--keep-fp`` / ``--target-agreement``) and its trace."""

    keep_fp: int
    target_agreement: float | None
    held_out_images: int
    held_out_agreement: float
    held_out_kl: float | None
    trace: tuple[dict[str, float | int | None], ...]
    sensitivity: tuple[dict[str, str | float | None], ...]


@dataclass(frozen=True, kw_only=True)
class LeftInFloat(Record):
    """A node with work to quantize that no Q/DQ rule covers: it runs in float, and says why."""

    node: str
    op_type: str
    why: str


@dataclass(frozen=True, kw_only=True)
class Quantization(Record):
    """How the INT8 Q/DQ model was made: calibrator, placement, scales, fallback."""

    method: str | None
    percentile: float | None
    weights: str
    activations: str
    placement: str
    layers: int
    quantized_layers: int
    kept_fp: tuple[KeptLayer, ...]
    qdq_nodes: dict[str, int]
    scales: dict[str, float]
    seconds: dict[str, float]
    fallback: Fallback | None = None
    left_in_float: tuple[LeftInFloat, ...] = ()
    weight_rounding: str | None = None
    adaround: dict[str, Any] | None = None
    reconstruction: dict[str, Any] | None = None
    weight_rounding_auto: dict[str, Any] | None = None
    consumer_mse: dict[str, Any] | None = None
    calibrator_settings: dict[str, Any] | None = None
    target: Literal["tensorrt", "onnxruntime-cpu"] = "tensorrt"
    high_precision: Literal["fp32", "fp16"] = "fp32"
    biases: str | None = None
    zero_points: dict[str, int] | None = None
    high_precision_fp16: dict[str, Any] | None = None


@dataclass(frozen=True, kw_only=True)
class Int8Manifest(PrecisionManifest):
    """``rtdeploy quantize --int8``'s Q/DQ model (kind ``onnx-int8``)."""

    kind: Literal["onnx-int8"]
    precision: Literal["int8"]
    quantization: Quantization

    def kept_float(self) -> list[str]:
        """The layers kept in floating point (``--keep-fp``, the sensitivity fallback)."""
        return [k.node for k in self.quantization.kept_fp]
