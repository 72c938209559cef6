"""Artifacts and their manifests.

Every stage reads one artifact and writes the next. Beside each artifact ``X`` lies ``X.json``, its
manifest: what kind of artifact it is, its sha256, which model it holds, which artifact it was made
from (with that one's sha256), the versions of the tools that made it, and stage-specific details.
This module reads and writes that header and follows the parent chain; the typed records of every
kind are :mod:`rtdeploy.manifests`, writing files is :mod:`rtdeploy.files`, naming and reuse
:mod:`rtdeploy.lineage`.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import logging
import os
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rtdeploy.errors import ArtifactError, RtDeployError
from rtdeploy.files import manifest_path, sha256_file, write_json_atomic

log = logging.getLogger(__name__)

MANIFEST_FORMAT = 1

# File suffixes of a TensorRT engine (a serialized plan).

# File suffixes of a TensorRT engine (a serialized plan).
ENGINE_SUFFIXES = (".engine", ".plan")

# Write failures that mean "no room here" (disk or quota full, file-size limit, read-only
# filesystem): reported as an OutputError naming the destination.


def load_onnx_graph(path: str | os.PathLike):
    """The ONNX model at ``path`` without its external data, or None when the bytes are not an ONNX
    model (not a protobuf, or one with no IR version or no nodes)."""
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as e:  # protobuf raises DecodeError and friends for non-ONNX bytes
        log.debug("onnx.load(%s): %s", path, e)
        return None
    return model if model.ir_version > 0 and len(model.graph.node) > 0 else None


def check_matches_manifest(path: str | os.PathLike, recorded_sha256: str | None, *, remedy: str,
                           error: type[RtDeployError] = ArtifactError) -> str:
    """The sha256 of ``path``, after checking that it is the one its manifest recorded.

    A file edited, truncated or replaced after the stage that made it no longer holds what its
    manifest describes (model, preprocessing, precision), so every stage that trusts a manifest
    checks this before using the file.

    Raises:
        error: the bytes differ; the message ends with ``remedy``.
    """
    actual = sha256_file(path)
    if recorded_sha256 != actual:
        raise error(f"{path} does not match its manifest (sha256 differs): it was changed, truncated or replaced after "
                    f"the stage that made it; {remedy}")
    return actual


def tool_versions(*extra: str) -> dict[str, str]:
    """Versions of Python, rtdeploy and the libraries that shaped an artifact.

    Only modules already imported by the caller's stage, or named in ``extra``, are looked up, so
    writing a manifest never imports a heavy library on its own.
    """
    import importlib.metadata as md
    import sys

    from rtdeploy import __version__

    versions = {"python": platform.python_version(), "rtdeploy": __version__}
    for name in ("torch", "onnx", "onnxruntime", "numpy", "tensorrt", *extra):
        if name in versions:
            continue
        mod = sys.modules.get(name)
        if mod is not None and getattr(mod, "__version__", None):
            versions[name] = str(mod.__version__)
        elif name in extra:
            with contextlib.suppress(md.PackageNotFoundError):
                versions[name] = md.version(name)
    return versions


def new_manifest(kind: str, artifact: str | os.PathLike, **fields: Any) -> dict[str, Any]:
    """A manifest dict for ``artifact`` (which must already be complete on disk).

    Args:
        kind: what the artifact is: ``onnx``, ``onnx-fp16``, ``onnx-int8``, ``engine``, ``report``.
        artifact: the artifact's path; its sha256 and size are recorded.
        **fields: stage-specific entries (``model``, ``parent``, ``export``, ``checks`` ...).
    """
    p = Path(artifact)
    return {
        "format": MANIFEST_FORMAT,
        "kind": kind,
        "artifact": p.name,
        "sha256": sha256_file(p),
        "bytes": p.stat().st_size,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "versions": tool_versions(),
        **fields,
    }


def parent_entry(path: str | os.PathLike) -> dict[str, str]:
    """The ``parent`` entry of a manifest: the artifact a stage read, by name and sha256."""
    p = Path(path)
    return {"path": str(p.resolve()), "sha256": sha256_file(p)}


def write_manifest(artifact: str | os.PathLike, manifest: dict[str, Any]) -> Path:
    """Write ``manifest`` beside ``artifact`` atomically and return its path."""
    return write_json_atomic(manifest_path(artifact), manifest)


def read_manifest(artifact: str | os.PathLike, *, required: bool = True) -> dict[str, Any] | None:
    """Read the manifest beside ``artifact``.

    Raises:
        ArtifactError: it is missing (when ``required``) or is not a valid rtdeploy manifest.
    """
    mp = manifest_path(artifact)
    if not mp.exists():
        if required:
            raise ArtifactError(
                f"{artifact} has no manifest ({mp.name} beside it); rtdeploy needs it to know the model — "
                "keep the manifest beside the file, re-export with `rtdeploy export`, or adopt an ONNX made elsewhere "
                "with `rtdeploy import FILE --preprocess imagenet|cifar|none`"
            )
        return None
    try:
        data = json.loads(mp.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ArtifactError(f"manifest {mp} is not valid JSON ({e}); delete it and re-run the stage that made {Path(artifact).name}") from e
    if not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT or "kind" not in data:
        raise ArtifactError(f"{mp} is not an rtdeploy manifest (format {MANIFEST_FORMAT}); re-run the stage that made {Path(artifact).name}")
    return data


# How many parent links the ancestor walk follows (export -> quantize -> engine is two).
_MAX_CHAIN = 8


def ancestors(path: str | os.PathLike) -> list[Path]:
    """``path`` and every artifact its manifest chain says it was made from, resolved (nearest first)."""
    chain = [Path(path).resolve()]
    for _ in range(_MAX_CHAIN):
        try:
            m = read_manifest(chain[-1], required=False)
        except ArtifactError:
            break
        parent = (m or {}).get("parent")
        if not isinstance(parent, dict) or not parent.get("path") or Path(parent["path"]).resolve() in chain:
            break
        chain.append(Path(parent["path"]).resolve())
    return chain


@dataclass(frozen=True)
class ArtifactKind:
    """What an artifact is, as far as replacing it goes: its manifest ``kind``, its ``precision``,
    and for INT8 models the ``target`` the Q/DQ was placed for (TensorRT or onnxruntime's CPU kernels)."""

    kind: str
    precision: str | None = None
    target: str | None = None

    @classmethod
    def of_manifest(cls, manifest: dict[str, Any]) -> "ArtifactKind":
        """The kind a manifest describes (an INT8 model without a recorded target is TensorRT's)."""
        kind = str(manifest.get("kind"))
        target = None
        if kind == "onnx-int8":
            target = (manifest.get("quantization") or {}).get("target") or "tensorrt"
        return cls(kind, manifest.get("precision"), target)

    def describe(self) -> str:
        """``an INT8 model placed for TensorRT``, ``the INT8 form for onnxruntime's CPU kernels`` ..."""
        if self.kind == "onnx-int8":
            return "the INT8 form for onnxruntime's CPU kernels" if self.target == "onnxruntime-cpu" else "an INT8 model placed for TensorRT"
        if self.kind == "engine":
            return f"an {self.precision.upper()} TensorRT engine" if self.precision else "a TensorRT engine"
        if self.kind in ("onnx", "onnx-fp16"):
            return f"an {(self.precision or 'fp32').upper()} ONNX model"
        return f"a {self.kind} artifact"
