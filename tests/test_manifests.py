"""Typed manifests: every manifest and report rtdeploy writes validates against its JSON Schema, the
typed records agree with the schemas, and a missing or ill-typed field fails at write and at read."""

from __future__ import annotations

import json
import shutil
import sys
from fnmatch import fnmatch
from pathlib import Path

import pytest

from manifest_fakes import engine_fields, write_derived_manifest, write_engine_manifest, write_onnx_manifest
from rtdeploy import api
from rtdeploy.artifacts import read_manifest, write_manifest
from rtdeploy.files import manifest_path
from rtdeploy.errors import ArtifactError
from rtdeploy.manifests import (ARTIFACT_KINDS, REPORT_KINDS, EngineManifest, Fp16Manifest, Int8Manifest, OnnxManifest,
                                RecordError, load_schema, new_manifest, read_artifact, read_engine, schema_path)

jsonschema = pytest.importorskip("jsonschema", reason="jsonschema is a dev dependency (pip install -e '.[dev]')")

REPO = Path(__file__).resolve().parents[1]
ALL_KINDS = [*ARTIFACT_KINDS, *REPORT_KINDS]


def conforms(kind: str, data: dict) -> None:
    """Validate ``data`` against ``kind``'s schema (raises jsonschema.ValidationError)."""
    jsonschema.Draft202012Validator(load_schema(kind)).validate(data)


# -- the schemas themselves -------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ALL_KINDS)
def test_schema_is_valid_and_shipped_as_package_data(kind):
    jsonschema.Draft202012Validator.check_schema(load_schema(kind))
    tomllib = pytest.importorskip("tomllib", reason="reading pyproject.toml needs Python 3.11's tomllib")
    relative = schema_path(kind).relative_to(REPO / "rtdeploy").as_posix()
    patterns = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["rtdeploy"]
    assert any(fnmatch(relative, p) for p in patterns), f"{relative} is not in pyproject's package-data {patterns}"


def _required_tree(record) -> dict:
    """{field: subtree or None} of the record's required fields (nested records expanded)."""
    import dataclasses
    import typing

    hints = typing.get_type_hints(record)
    out = {}
    for f in dataclasses.fields(record):
        if f.name in ("extra", "given") or f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING:
            continue
        nested = [a for a in (hints[f.name], *typing.get_args(hints[f.name])) if isinstance(a, type) and dataclasses.is_dataclass(a)]
        out[f.name] = _required_tree(nested[0]) if nested else None
    return out


def _schema_required_tree(schema: dict, root: dict) -> dict | None:
    schema = _resolve(schema, root)
    if schema.get("type") == "array":
        return _schema_required_tree(schema.get("items", {}), root)
    options = [_resolve(o, root) for o in schema.get("oneOf", [schema])]
    options = [o for o in options if o.get("type") == "object" or "required" in o]
    if not options:
        return None
    schema = options[0]
    if isinstance(schema.get("additionalProperties"), dict) and "properties" not in schema:  # a map: {name: value schema}
        return _schema_required_tree(schema["additionalProperties"], root)
    out = {}
    for name in schema.get("required", []):
        out[name] = _schema_required_tree(schema["properties"].get(name, {}), root) or None
    return out


def _resolve(schema: dict, root: dict) -> dict:
    return root["$defs"][schema["$ref"].rpartition("/")[2]] if "$ref" in schema else schema


def _flatten(tree: dict | None, prefix: str = "") -> set[str]:
    out = set()
    for k, v in (tree or {}).items():
        out.add(prefix + k)
        out |= _flatten(v, f"{prefix}{k}.")
    return out


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_typed_record_requires_what_the_schema_requires(kind):
    record = {**ARTIFACT_KINDS, **REPORT_KINDS}[kind]
    schema = load_schema(kind)
    from_record = _flatten(_required_tree(record))
    from_schema = _flatten(_schema_required_tree(schema, schema))
    # The record may not look inside some sections (kept as plain JSON); everything it requires, the schema requires.
    assert from_record <= from_schema, f"required by the record but not the schema: {sorted(from_record - from_schema)}"
    top = set(schema["required"])
    assert top == set(_required_tree(record)), f"top-level required fields differ: {sorted(top ^ set(_required_tree(record)))}"


def _declared_tree(record) -> dict:
    """{field: subtree or None} of every field a record (or a domain dataclass it holds) declares."""
    import dataclasses
    import typing

    hints = typing.get_type_hints(record)
    out = {}
    for f in dataclasses.fields(record):
        if f.name in ("extra", "given"):
            continue
        hint = hints[f.name]
        inner = [b for a in typing.get_args(hint) if typing.get_origin(a) is tuple for b in typing.get_args(a)]  # X | tuple[X, ...]
        nested = [a for a in (hint, *typing.get_args(hint), *inner) if isinstance(a, type) and dataclasses.is_dataclass(a)]
        out[f.name] = _declared_tree(nested[0]) if nested else None
    return out


def _schema_properties_tree(schema: dict, root: dict) -> dict | None:
    schema = _resolve(schema, root)
    if schema.get("type") == "array":
        return _schema_properties_tree(schema.get("items", {}), root)
    options = [_resolve(o, root) for o in schema.get("oneOf", schema.get("anyOf", [schema]))]
    options = [o for o in options if "properties" in o]
    if not options:
        return None
    merged: dict = {}  # the shapes a oneOf allows, together
    for option in options:
        for name, sub in option["properties"].items():
            merged[name] = merged.get(name) or _schema_properties_tree(sub, root)
    return merged


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_the_schema_describes_exactly_the_fields_the_record_declares(kind):
    """The schemas are tested against the records: every field a typed record (or the domain type it
    holds, ModelMeta) declares is a property of the schema, at every level, and no property of an
    object the record declares is missing from the record."""
    record = {**ARTIFACT_KINDS, **REPORT_KINDS}[kind]
    schema = load_schema(kind)
    declared, described = _declared_tree(record), _schema_properties_tree(schema, schema)

    def compare(rec: dict, sch: dict, path: str) -> None:
        assert set(rec) == set(sch), f"{kind}{path}: only in the record {sorted(set(rec) - set(sch))}, only in the schema {sorted(set(sch) - set(rec))}"
        for name, sub in rec.items():
            if sub is not None and sch.get(name) is not None:
                compare(sub, sch[name], f"{path}.{name}")

    compare(declared, described, "")


@pytest.mark.parametrize("kind", [*ARTIFACT_KINDS, "validation-report", "run-report"])
def test_schemas_are_open_at_the_top_and_closed_inside(kind):
    schema = load_schema(kind)
    assert schema["additionalProperties"] is True, "other fields may be added at the top level"

    def closed(node, path):
        if isinstance(node, dict):
            if node.get("type") == "object" and "properties" in node and path:
                assert node.get("additionalProperties") is False, f"{kind}: {path} is an open object"
            for k, v in node.items():
                closed(v, f"{path}.{k}" if k not in ("properties", "oneOf", "items", "$defs") else path)
        elif isinstance(node, list):
            for v in node:
                closed(v, path)

    closed({k: v for k, v in schema.items() if k != "additionalProperties"}, "")


# -- what the stages write --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """ResNet-20 exported, then FP16 and INT8 made from it on the bundled calib_data."""
    folder = tmp_path_factory.mktemp("made")
    fp32 = api.export(depth=20, output=folder / "r20.onnx").path
    fp16 = api.quantize(fp32, fp16=True, output=folder / "r20.fp16.onnx").path
    int8 = api.quantize(fp32, int8=True, keep_fp=1, output=folder / "r20.int8.onnx").path
    return {"onnx": fp32, "onnx-fp16": fp16, "onnx-int8": int8}


@pytest.mark.parametrize("kind, record", [("onnx", OnnxManifest), ("onnx-fp16", Fp16Manifest), ("onnx-int8", Int8Manifest)])
def test_stage_manifests_validate_and_read_back_typed(made, kind, record):
    path = made[kind]
    data = json.loads(manifest_path(path).read_text())
    conforms(kind, data)
    typed = read_artifact(path)
    assert type(typed) is record and typed.kind == kind
    assert typed.to_dict() == data, "reading and writing back a manifest must not change it"
    assert typed.model.depth == 20
    if kind != "onnx":
        assert typed.parent.file == made["onnx"].resolve() and typed.calibration.source == "images"
        assert Path(typed.calibration.dir).name == "calib_data", "calibrated on the bundled calib_data/"


def test_validation_report_validates(made):
    report = api.validate(made["onnx-int8"], samples=4).to_dict()
    conforms("validation-report", report)
    assert report["precision"] == "int8"


def test_run_report_validates(tmp_path):
    result = api.run(depth=20, precision="fp32", engines=False, bench=False, samples=4, outdir=tmp_path / "run")
    data = json.loads(Path(result.report_json).read_text())
    conforms("run-report", data)
    conforms("validation-report", json.loads((tmp_path / "run" / "validate-fp32.json").read_text()))
    conforms("onnx", read_manifest(tmp_path / "run" / "resnet20.onnx"))


def test_bench_report_reads_typed(made, tmp_path):
    from rtdeploy.manifests import BenchReportRecord

    report = api.bench(model=str(made["onnx"]), iterations=2, repeats=1, warmup="0", workdir=tmp_path).report
    conforms("bench-report", report)
    typed = BenchReportRecord.from_dict(report)
    assert typed.results[0].batch == 1 and typed.results[0].artifact.sha256 == read_manifest(made["onnx"])["sha256"]


def test_test_stand_ins_write_what_the_stages_write(tmp_path, made):
    """The manifests tests write for stand-ins (tests/manifest_fakes.py) follow the same schemas."""
    onnx = tmp_path / "m.onnx"
    shutil.copy(made["onnx"], onnx)
    conforms("onnx", write_onnx_manifest(onnx, read_manifest(made["onnx"])["model"]))
    for precision in ("fp16", "int8"):
        child = tmp_path / f"m.{precision}.onnx"
        shutil.copy(onnx, child)
        conforms(f"onnx-{precision}", write_derived_manifest(child, onnx, precision))
    engine = tmp_path / "m.int8.engine"
    engine.write_bytes(b"stand-in plan")
    conforms("engine", write_engine_manifest(engine, onnx, precision="int8", model=read_manifest(onnx)["model"]))
    assert read_engine(engine).max_batch == 32


# -- refusals ---------------------------------------------------------------------------------------
def test_the_typed_writer_refuses_a_missing_or_ill_typed_field(tmp_path):
    plan = tmp_path / "m.engine"
    plan.write_bytes(b"plan")
    fields = engine_fields(tmp_path / "m.onnx", precision="fp16", model=None)
    del fields["profile"]
    with pytest.raises(RecordError, match=r"the new engine manifest of m.engine: 'profile' is missing; this is a bug"):
        new_manifest("engine", plan, **fields)
    fields = engine_fields(tmp_path / "m.onnx", precision="fp16", model=None)
    fields["profile"]["max"] = "32"
    with pytest.raises(RecordError, match=r"'profile.max' should be an integer, found the string '32'"):
        new_manifest("engine", plan, **fields)


def test_a_manifest_missing_a_field_is_one_actionable_line(tmp_path, made):
    onnx = tmp_path / "r20.onnx"
    shutil.copy(made["onnx"], onnx)
    data = read_manifest(made["onnx"])
    del data["model"]["image_size"]
    write_manifest(onnx, data)
    with pytest.raises(ArtifactError, match=r"^r20.onnx.json: 'model.image_size' is missing; re-make r20.onnx with the rtdeploy stage"):
        read_artifact(onnx)
    with pytest.raises(jsonschema.ValidationError):
        conforms("onnx", data)


def test_schema_allows_new_top_level_fields_only(made):
    data = read_manifest(made["onnx-int8"])
    conforms("onnx-int8", {**data, "added_by_a_newer_writer": {"any": 1}})
    assert read_artifact(made["onnx-int8"]).extra == {}
    with pytest.raises(jsonschema.ValidationError, match="Additional properties"):
        conforms("onnx-int8", {**data, "model": {**data["model"], "colour": "blue"}})


def test_engine_max_batch_is_the_profile_field_only(tmp_path, made):
    """The bench used to find an engine's max batch in three places and shapes, one of which
    (``build.profile``) only a test fake wrote; now it is the engine manifest's ``profile.max``."""
    from rtdeploy.manifests import EngineManifest, RecordError

    def engine_max_batch(manifest: dict) -> int | None:
        try:
            return EngineManifest.from_dict(manifest).max_batch
        except RecordError:
            return None

    engine = tmp_path / "m.engine"
    engine.write_bytes(b"plan")
    full = write_engine_manifest(engine, made["onnx"], precision="fp32", model=read_manifest(made["onnx"])["model"], profile=(1, 4, 16))
    assert engine_max_batch(full) == 16
    guessed = {k: v for k, v in full.items() if k != "profile"}
    for where in ({"max_batch": 16}, {"build": {**full["build"], "profile": {"min": 1, "opt": 4, "max": 16}}},
                  {"engine": {"profile": {"max": [16, 3, 32, 32]}}}):
        assert engine_max_batch({**guessed, **where}) is None, f"max batch guessed from {where}"


def test_bench_refuses_an_engine_manifest_without_a_profile(tmp_path, made):
    engine = tmp_path / "r20.engine"
    engine.write_bytes(b"plan")
    full = write_engine_manifest(engine, made["onnx"], precision="fp32", model=read_manifest(made["onnx"])["model"])
    write_manifest(engine, {k: v for k, v in full.items() if k != "profile"})
    with pytest.raises(ArtifactError, match=r"r20.engine.json: 'profile' is missing; re-make r20.engine"):
        api.bench(model=str(engine), iterations=1, workdir=tmp_path)


def test_reader_by_kind_refuses_the_wrong_kind(made):
    with pytest.raises(ArtifactError, match="is the manifest of kind 'onnx', not an engine's"):
        read_engine(made["onnx"])


def test_manifests_are_core_and_import_no_stage():
    """rtdeploy.manifests sits in the core (artifacts, files, errors, and models, whose ModelMeta is the model
    section): importing it loads no stage or orchestration module."""
    import subprocess

    code = ("import sys, rtdeploy.manifests; bad = sorted(m for m in sys.modules if m.startswith('rtdeploy.') and "
            "m.split('.')[1] not in ('manifests', 'artifacts', 'files', 'errors', 'models')); print(bad); sys.exit(1 if bad else 0)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_engine_loader_refuses_an_incomplete_manifest(tmp_path):
    """The loader used to read ``tensorrt.version`` and ``device.compute_capability`` with ``.get(..., "?")``
    defaults; an engine manifest without them is now refused, naming the field, before deserializing."""
    from rtdeploy.trt.device_memory import DeviceInfo
    from rtdeploy.trt.engine_file import check_engine_file

    engine = tmp_path / "r20.engine"
    engine.write_bytes(b"plan")
    full = write_engine_manifest(engine, tmp_path / "r20.onnx", precision="fp32", model=None)
    gpu = DeviceInfo(0, "NVIDIA A10", "8.6", 24 << 30, 20 << 30, False)
    assert isinstance(check_engine_file(engine, full, runtime_version="10.3.0", device=gpu), EngineManifest)
    partial = {k: v for k, v in full.items() if k != "tensorrt"}
    with pytest.raises(ArtifactError, match=r"r20.engine.json: 'tensorrt' is missing; re-make r20.engine"):
        check_engine_file(engine, partial, runtime_version="10.3.0", device=gpu)
