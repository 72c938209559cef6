"""Typed manifests and reports: one JSON Schema and one typed record per kind of file rtdeploy writes.

=====================  ===============================  ==========================================
kind                   record                           schema (in the package)
=====================  ===============================  ==========================================
``onnx``               :class:`OnnxManifest`            ``manifests/schemas/onnx.schema.json``
``onnx-fp16``          :class:`Fp16Manifest`            ``manifests/schemas/onnx-fp16.schema.json``
``onnx-int8``          :class:`Int8Manifest`            ``manifests/schemas/onnx-int8.schema.json``
``engine``             :class:`EngineManifest`          ``manifests/schemas/engine.schema.json``
``validation-report``  :class:`ValidationReportRecord`  ``manifests/schemas/validation-report.schema.json``
``run-report``         :class:`RunReportRecord`         ``manifests/schemas/run-report.schema.json``
``bench-report``       :class:`BenchReportRecord`       ``bench/schema.json`` (``rtdeploy.bench/1``)
=====================  ===============================  ==========================================

Writers build a manifest with :func:`new_manifest` (the typed writer: a missing or ill-typed field
fails there, before anything is written); readers use :func:`read_artifact` or one of the
per-kind readers and get a frozen record with typed fields instead of guessing with ``.get``.
The schemas are the contract for other tools; the tests validate every kind against them (the
``jsonschema`` package is a test-only dependency, so nothing here needs it).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from rtdeploy.files import json_default
from rtdeploy.manifests.common import ArtifactManifest, ExportInfo, ParentRef, Weights
from rtdeploy.manifests.engine import EngineManifest, Profile
from rtdeploy.manifests.onnx import Fp16Manifest, Int8Manifest, OnnxManifest, PrecisionManifest, QuantizeCalibration
from rtdeploy.manifests.reports import BenchReportRecord, RunReportRecord, ValidationReportRecord
from rtdeploy.manifests.typed import Record, RecordError

__all__ = [
    "ARTIFACT_KINDS", "REPORT_KINDS", "ArtifactManifest", "BenchReportRecord", "EngineManifest", "ExportInfo",
    "Fp16Manifest", "Int8Manifest", "OnnxManifest", "ParentRef", "PrecisionManifest", "Profile",
    "QuantizeCalibration", "Record", "RecordError", "RunReportRecord", "ValidationReportRecord", "Weights",
    "as_json", "check_report", "load_schema", "new_manifest", "read_artifact", "read_engine", "read_onnx", "schema_path", "typed",
]

# The manifest kinds (the ``kind`` field) and their records.
ARTIFACT_KINDS: dict[str, type[ArtifactManifest]] = {
    "onnx": OnnxManifest, "onnx-fp16": Fp16Manifest, "onnx-int8": Int8Manifest, "engine": EngineManifest,
}
# The report kinds (they carry no ``kind`` field; the writer knows what it writes).
REPORT_KINDS: dict[str, type[Record]] = {
    "validation-report": ValidationReportRecord, "run-report": RunReportRecord, "bench-report": BenchReportRecord,
}

_PACKAGE = Path(__file__).resolve().parent
# The benchmark report's schema predates this package and keeps its place and id; it is found by
# path (not through rtdeploy.bench, which sits above this core package).
_SCHEMA_FILES = {kind: _PACKAGE / "schemas" / f"{kind}.schema.json" for kind in (*ARTIFACT_KINDS, "validation-report", "run-report")}
_SCHEMA_FILES["bench-report"] = _PACKAGE.parent / "bench" / "schema.json"


def schema_path(kind: str) -> Path:
    """The JSON Schema file of ``kind`` (a manifest kind or a report kind)."""
    try:
        return _SCHEMA_FILES[kind]
    except KeyError:
        raise ValueError(f"unknown manifest kind {kind!r}; known: {', '.join(_SCHEMA_FILES)}") from None


def load_schema(kind: str) -> dict[str, Any]:
    """The JSON Schema of ``kind``, parsed."""
    return json.loads(schema_path(kind).read_text(encoding="utf-8"))


def new_manifest(kind: str, artifact: str | os.PathLike, **fields: Any) -> dict[str, Any]:
    """The typed writer: :func:`rtdeploy.artifacts.new_manifest`, checked against ``kind``'s record.

    Returns:
        the manifest dict, ready for :func:`rtdeploy.artifacts.write_manifest` or ``atomic_path``.

    Raises:
        RecordError: a field the kind requires is missing or has the wrong type (a bug in the writer).
    """
    from rtdeploy.artifacts import new_manifest as header

    record = _record_class(kind)
    data = as_json(header(kind, artifact, **fields))
    try:
        return record.from_dict(data, where=f"the new {kind} manifest of {Path(artifact).name}").to_dict()
    except RecordError as e:
        raise RecordError(f"{e}; this is a bug in rtdeploy's writer — please report it") from e


def check_report(kind: str, data: dict[str, Any]) -> dict[str, Any]:
    """The typed writer of a report: ``data`` checked against ``kind``'s record, as a dict.

    Raises:
        RecordError: a required field is missing or ill-typed (a bug in the writer).
    """
    try:
        return REPORT_KINDS[kind].from_dict(as_json(data), where=f"the {kind}").to_dict()
    except RecordError as e:
        raise RecordError(f"{e}; this is a bug in rtdeploy's writer — please report it") from e


def as_json(data: Any) -> Any:
    """``data`` as it reads back from its JSON file: numpy scalars and arrays become numbers and
    lists, paths strings, tuples lists (so the check sees what the file will hold)."""
    return json.loads(json.dumps(data, default=json_default))


def read_artifact(artifact: str | os.PathLike, *, required: bool = True) -> ArtifactManifest | None:
    """The typed manifest beside ``artifact``, as the record of its ``kind``.

    Raises:
        ArtifactError: the manifest is missing (when ``required``), unreadable, of an unknown kind,
            or lacks a field its kind requires.
    """
    from rtdeploy.artifacts import read_manifest

    data = read_manifest(artifact, required=required)
    if data is None:
        return None
    return typed(data, artifact)


def typed(data: dict[str, Any], artifact: str | os.PathLike) -> ArtifactManifest:
    """The record of an already read manifest ``data`` of ``artifact`` (see :func:`read_artifact`)."""
    name = Path(artifact).name
    kind = data.get("kind")
    if kind not in ARTIFACT_KINDS:
        raise RecordError(f"{name}.json is of kind {kind!r}, which rtdeploy does not know ({', '.join(ARTIFACT_KINDS)}); "
                          f"re-make {name} with rtdeploy's stages")
    try:
        return ARTIFACT_KINDS[kind].from_dict(data, where=f"{name}.json")
    except RecordError as e:
        raise RecordError(f"{e}; re-make {name} with the rtdeploy stage that wrote it (the manifest is from another version "
                          "or was edited)") from e


def read_onnx(artifact: str | os.PathLike) -> OnnxManifest | PrecisionManifest:
    """The typed manifest of an ONNX model (``onnx``, ``onnx-fp16`` or ``onnx-int8``).

    Raises:
        ArtifactError: as :func:`read_artifact`, or the manifest is an engine's.
    """
    return _read_of(artifact, (OnnxManifest, PrecisionManifest), "an ONNX model's (kind onnx, onnx-fp16 or onnx-int8)")


def read_engine(artifact: str | os.PathLike) -> EngineManifest:
    """The typed manifest of a TensorRT engine.

    Raises:
        ArtifactError: as :func:`read_artifact`, or the manifest is not an engine's.
    """
    return _read_of(artifact, (EngineManifest,), "an engine's (kind engine)")


def _read_of(artifact, classes: tuple[type, ...], wanted: str):
    m = read_artifact(artifact)
    if not isinstance(m, classes):
        raise RecordError(f"{Path(artifact).name}.json is the manifest of kind {m.kind!r}, not {wanted}; "
                          "give the file the matching rtdeploy stage wrote")
    return m


def _record_class(kind: str) -> type[ArtifactManifest]:
    try:
        return ARTIFACT_KINDS[kind]
    except KeyError:
        raise ValueError(f"unknown manifest kind {kind!r}; known: {', '.join(ARTIFACT_KINDS)}") from None
