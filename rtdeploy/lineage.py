"""Naming and reuse: the one naming rule of derived files, and the one reuse rule of every stage.

A derived file is named from its source (:func:`derived_path`: ``resnet50.onnx`` ->
``resnet50.int8.onnx`` -> ``resnet50.int8.engine``). An artifact is reused only when its recorded
derivation — the stage, the options that change its output, and a fingerprint of every input it
read — equals what the stage would record now (:func:`reuse_verdict`).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from rtdeploy.artifacts import ENGINE_SUFFIXES, read_manifest
from rtdeploy.errors import ArtifactError
from rtdeploy.files import json_default, sha256_file

# File-name tags of derived models: the precision, or the INT8 form for onnxruntime's CPU kernels.
PRECISION_TAGS = ("fp32", "fp16", "int8", "int8-cpu")


def base_stem(path: str | os.PathLike) -> str:
    """The model's stem without suffix and precision tag: ``resnet50.int8.onnx`` -> ``resnet50``."""
    stem = Path(path).name
    for suffix in (".onnx", *ENGINE_SUFFIXES):
        if stem.endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    head, _, tag = stem.rpartition(".")
    return head if head and tag in PRECISION_TAGS else stem


# The INT8 form made for onnxruntime's CPU kernels (``quantize --int8 --target onnxruntime-cpu``).
CPU_TARGET = "onnxruntime-cpu"


def precision_tag(precision: str, target: str | None = None) -> str:
    """The file-name tag of a precision model: ``fp16``, ``int8``, or ``int8-cpu`` for the INT8 form
    placed for ``target`` onnxruntime-cpu, so that the two INT8 forms never share a name."""
    return "int8-cpu" if precision == "int8" and target == CPU_TARGET else precision


def derived_path(source: str | os.PathLike, precision: str, suffix: str = ".onnx") -> Path:
    """The one naming rule for derived files, beside ``source``.

    ``resnet50.onnx`` -> ``resnet50.int8.onnx``, ``resnet50.fp16.onnx``, ``resnet50.int8-cpu.onnx``
    (the INT8 form for onnxruntime's CPU kernels: ``precision`` is then :func:`precision_tag`'s
    ``int8-cpu``); engines always carry their
    precision: ``resnet50.onnx`` -> ``resnet50.fp32.engine``, ``resnet50.int8.onnx`` -> ``resnet50.int8.engine``.
    The FP32 ONNX of ``resnet50.onnx`` is the file itself.
    """
    src = Path(source)
    if suffix == ".onnx" and precision == "fp32":
        return src.with_name(f"{base_stem(src)}.onnx")
    return src.with_name(f"{base_stem(src)}.{precision}{suffix}")


def derivation(stage: str, config: dict[str, Any], inputs: dict[str, str]) -> dict[str, Any]:
    """The manifest's ``derivation`` record: what decides an artifact's bytes.

    Args:
        stage: the stage that made it (``export``, ``quantize``, ``build-engine``, ``validate``, ``bench``).
        config: the stage's options that change its output (paths of inputs excluded: their content
            is in ``inputs``), JSON-normalised.
        inputs: a fingerprint per input read (``parent``: the parent's sha256; ``calibration``: the
            calibration data's content fingerprint; ``weights``: the checkpoint's sha256 ...).
    """
    return {"stage": stage, "config": json.loads(json.dumps(config, sort_keys=True, default=json_default)),
            "inputs": dict(sorted(inputs.items()))}


def parent_inputs(parent: str | os.PathLike, parent_sha256: str) -> dict[str, str]:
    """The inputs a derivation records of its parent: its bytes (``parent``) and, when its manifest
    has one, its ``model`` record (preprocessing, input, classes). ``rtdeploy import`` again with
    other preprocessing changes the manifest, not the bytes, and what was made from the old record
    (and carries it on in its own manifest) must not be reused."""
    inputs = {"parent": parent_sha256}
    try:
        model = (read_manifest(parent, required=False) or {}).get("model")
    except ArtifactError:
        model = None
    if isinstance(model, dict):
        inputs["model"] = hashlib.sha256(json.dumps(model, sort_keys=True, default=json_default).encode()).hexdigest()
    return inputs


def reuse_verdict(path: str | os.PathLike, wanted: dict[str, Any], recorded: dict[str, Any] | None = None) -> tuple[bool, str]:
    """The reuse rule, the same for every stage: may ``path`` stand for what ``wanted`` would make?

    Yes only when ``path`` is intact and its recorded derivation (its manifest's ``derivation``, or
    ``recorded`` — a derivation plus ``output_sha256`` — for a report without a manifest) has the
    same stage, the same normalised options
    and the same fingerprint for every input — the parent's sha256 and the calibration data's
    content among them.

    Returns:
        (reusable, why): ``why`` is one short phrase, for the user.
    """
    p = Path(path)
    if not p.is_file():
        return False, "not made yet"
    if recorded is None:
        try:
            manifest = read_manifest(p, required=False)
        except ArtifactError:
            return False, "its manifest is unreadable"
        if manifest is None:
            return False, "it has no manifest"
        if manifest.get("sha256") != sha256_file(p):
            return False, "the file changed since its manifest was written"
        recorded = manifest.get("derivation")
    elif recorded.get("output_sha256") != sha256_file(p):
        return False, "the file changed since it was recorded"
    if not isinstance(recorded, dict):
        return False, "it records no derivation (made by an older rtdeploy)"
    if recorded.get("stage") != wanted["stage"]:
        return False, f"it was made by {recorded.get('stage')}, not {wanted['stage']}"
    for name, value in wanted["inputs"].items():
        if (recorded.get("inputs") or {}).get(name) != value:
            return False, f"its {name} changed"
    old, new = recorded.get("config") or {}, wanted["config"]
    changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    if changed:
        return False, "options changed: " + ", ".join(f"{k} {old.get(k)!r} -> {new.get(k)!r}" for k in changed[:3])
    return True, "same " + ", ".join(["options", *sorted(wanted["inputs"])])


# How many parent links the ancestor walk follows (export -> quantize -> engine is two).
