"""The parts every artifact manifest shares: the header and the parent link (the model section is
:class:`rtdeploy.models.ModelMeta` itself)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from rtdeploy.manifests.typed import Record

Precision = Literal["fp32", "fp16", "int8"]


@dataclass(frozen=True, kw_only=True)
class ParentRef(Record):
    """The artifact a stage read: its absolute path and its sha256 when read."""

    path: str
    sha256: str

    @property
    def file(self) -> Path:
        """``path`` as a Path."""
        return Path(self.path)


@dataclass(frozen=True, kw_only=True)
class Weights(Record):
    """The checkpoint an export loaded (``path``, ``sha256``), or none (``path`` null, ``init_seed``)."""

    path: str | None
    sha256: str | None = None
    init_seed: int | None = None


@dataclass(frozen=True, kw_only=True)
class ExportInfo(Record):
    """How the ONNX was exported."""

    exporter: str
    opset: int
    batch: Literal["dynamic"] | int
    seconds: float | None = None


@dataclass(frozen=True, kw_only=True)
class Derivation(Record):
    """The stage that made an artifact, its output-deciding options, and a fingerprint per input read."""

    stage: str
    config: dict[str, Any]
    inputs: dict[str, str]


@dataclass(frozen=True, kw_only=True)
class ArtifactManifest(Record):
    """The header of every artifact manifest (written by :func:`rtdeploy.artifacts.new_manifest`).

    Attributes:
        format: the manifest format (1).
        kind: ``onnx``, ``onnx-fp16``, ``onnx-int8`` or ``engine``.
        artifact: the artifact's file name.
        sha256, bytes: the artifact's bytes when written.
        created: UTC ISO-8601 time of writing.
        versions: Python, rtdeploy and the libraries that shaped the artifact.
        precision: the precision the artifact carries.
        derivation: what decides its bytes, for the reuse rule (:func:`rtdeploy.lineage.reuse_verdict`).
    """

    format: Literal[1]
    kind: str
    artifact: str
    sha256: str
    bytes: int
    created: str
    versions: dict[str, str]
    precision: Precision
    derivation: Derivation | None = None

    def kept_float(self) -> list[str]:
        """The ONNX nodes this artifact keeps in float (none here; the FP16, INT8 and engine kinds say)."""
        return []
