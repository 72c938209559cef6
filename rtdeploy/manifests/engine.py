"""The manifest of a TensorRT engine (``build-engine``'s plan file)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from rtdeploy.manifests.common import ArtifactManifest, ParentRef
from rtdeploy.manifests.onnx import QuantizeCalibration
from rtdeploy.manifests.typed import Record
from rtdeploy.models.metadata import ModelMeta


@dataclass(frozen=True, kw_only=True)
class TensorRTInfo(Record):
    """The TensorRT release that built the plan, and how the precision was obtained."""

    version: str
    network_flags: tuple[str, ...]
    builder_flags: tuple[str, ...]
    strongly_typed: bool
    method: str


@dataclass(frozen=True, kw_only=True)
class DeviceSection(Record):
    """The GPU the plan was built on (a plan runs only on GPUs of this compute capability, unless
    built hardware-compatible)."""

    index: int
    name: str
    compute_capability: str
    total_bytes: int
    integrated: bool


@dataclass(frozen=True, kw_only=True)
class Profile(Record):
    """The optimization profile: the input and the batch sizes the engine accepts (min..max) and is tuned for (opt)."""

    input: str
    sample_shape: tuple[int, ...]
    min: int
    opt: int
    max: int


@dataclass(frozen=True, kw_only=True)
class EngineCalibration(Record):
    """Where an INT8 engine's scales came from: the Q/DQ ONNX (``qdq``, its calibration in ``onnx``),
    or TensorRT's implicit calibrator (``tensorrt-entropy2``: the data, its fingerprint, the cache)."""

    method: Literal["qdq", "tensorrt-entropy2"]
    onnx: QuantizeCalibration | None = None
    source: str | None = None
    source_fingerprint: str | None = None
    cache: str | None = None
    cache_sha256: str | None = None


@dataclass(frozen=True, kw_only=True)
class PrecisionConstraints(Record):
    """Layers pinned to FP32 on a weakly typed build (the FP16 guard), and the flag that enforces it."""

    flag: str
    layers: tuple[str, ...]
    missing: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class BuildInfo(Record):
    """The build options that shaped the plan, and how long the build took."""

    seconds: float
    workspace_bytes: int | None
    builder_optimization_level: int | None
    timing_cache: str | None
    dla_core: int | None
    gpu_fallback: bool
    version_compatible: bool
    hardware_compatibility: str | None
    precision_constraints: PrecisionConstraints | None = None
    tf32: bool | None = None


@dataclass(frozen=True, kw_only=True)
class DlaPlacement(Record):
    """How many layers run on the DLA and on the GPU (DLA builds only)."""

    dla: int
    gpu: int
    gpu_layers: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class LayerRow(Record):
    """One layer of the built engine, as TensorRT's inspector reports it."""

    name: str
    type: str
    precision: str
    device: str


@dataclass(frozen=True, kw_only=True)
class Fallback(Record):
    """A compute layer that does not run at the precision asked for it (above it, or below it: asked FP32, got FP16 or TF32)."""

    name: str
    asked: str
    got: str


@dataclass(frozen=True, kw_only=True)
class ComputeSummary(Record):
    """How many compute layers (convolutions, fully connected, fused conv+add) run in each precision."""

    total: int
    by_precision: dict[str, int]


@dataclass(frozen=True, kw_only=True)
class ComputeLayer(Record):
    """One compute layer: its weight type, its input's type and the precision it runs in."""

    name: str
    type: str
    weights: str
    input: str
    precision: str


@dataclass(frozen=True, kw_only=True)
class IoTensor(Record):
    """An engine input or output: its type and format."""

    name: str
    mode: str
    dtype: str
    format: str


@dataclass(frozen=True, kw_only=True)
class LayersSection(Record):
    """The engine's layers by precision and device. ``ok``: the asked precision runs (False: a compute layer
    runs other than asked; None: nothing contradicts it but part of the engine cannot be judged);
    ``verifiable``: every compute layer could be judged; ``verified``: ``ok`` is True."""

    verified: bool
    detailed: bool
    by_precision: dict[str, int]
    by_device: dict[str, int]
    list: tuple[LayerRow, ...]
    expected: str | None = None
    fallbacks: tuple[Fallback, ...] = ()
    kept_float: tuple[str, ...] = ()
    schema: str | None = None
    count: int | None = None
    compute: ComputeSummary | None = None
    compute_layers: tuple[ComputeLayer, ...] = ()
    reformat: int | None = None
    qdq: int | None = None
    io: tuple[IoTensor, ...] = ()
    ok: bool | None = None
    verifiable: bool | None = None
    unverifiable: tuple[str, ...] = ()
    hidden: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class EngineManifest(ArtifactManifest):
    """``rtdeploy build-engine``'s plan (kind ``engine``).

    ``model`` is null when the ONNX the engine was built from had no rtdeploy manifest.
    """

    kind: Literal["engine"]
    model: ModelMeta | None
    parent: ParentRef
    tensorrt: TensorRTInfo
    device: DeviceSection
    profile: Profile
    calibration: EngineCalibration | None
    build: BuildInfo
    dla: DlaPlacement | None
    layers: LayersSection
    rebuild_command: str
    platform: str | None = None

    def kept_float(self) -> list[str]:
        """The layers the engine's source ONNX kept in float."""
        return list(self.layers.kept_float)

    @property
    def max_batch(self) -> int:
        """The largest batch the engine's optimization profile accepts."""
        return self.profile.max
