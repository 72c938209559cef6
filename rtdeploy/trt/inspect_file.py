"""``rtdeploy inspect``: the per-layer precision of an engine plan or of a layer-information JSON.

A layer-information JSON (``trtexec --exportLayerInfo``, Polygraphy, or an rtdeploy engine manifest,
whose ``layers`` entry carries the same table) is read without TensorRT or a GPU. An engine plan is
deserialized (after the usual manifest checks) and read through TensorRT's engine inspector.
"""

from __future__ import annotations

import codecs
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rtdeploy.files import not_a_file
from rtdeploy.errors import ArtifactError, EngineError
from rtdeploy.trt.layer_report import EXPECTABLE, LayerInfoError, build_report, describe_fallbacks, kept_float_nodes, verdict


@dataclass(frozen=True)
class InspectResult:
    """What :func:`inspect_file` found.

    Attributes:
        path: the file inspected; source: ``engine``, ``layer-json`` or ``engine-manifest``.
        report: the layer report (:func:`rtdeploy.trt.layer_report.build_report`).
        verdict: the check against ``expect`` (:func:`rtdeploy.trt.layer_report.verdict`).
        kept_float: ONNX node names the manifest says stay in float (never counted as fallbacks).
    """

    path: Path
    source: str
    report: dict
    verdict: dict
    kept_float: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), "source": self.source, "kept_float": list(self.kept_float), "verdict": self.verdict,
                **{k: v for k, v in self.report.items() if k != "list"}}

    def failure(self) -> str | None:
        """One line when ``expect`` was given and is not met (or cannot be verified); else None."""
        v = self.verdict
        if v["expected"] is None or v["ok"]:
            return None
        what = v["expected"].upper()
        if v["ok"] is None:
            return (f"{self.path.name}: cannot verify that every compute layer runs at {what}: {v['reason']}; "
                    "export the layer information with --profilingVerbosity=detailed (a Myelin/kgen region cannot be looked into)")
        fell = v["fallbacks"]
        tf32 = any(f["got"] == "tf32" for f in fell)
        fix = ("build with rtdeploy build-engine, which clears BuilderFlag.TF32 (trtexec: --noTF32)" if tf32 else
               f"rebuild from the {'Q/DQ' if what == 'INT8' else what} ONNX (rtdeploy build-engine), or keep those layers in float "
               "on purpose with quantize --keep-fp")
        return (f"{self.path.name}: {len(fell)} of {self.report['compute']['total']} compute layers do not run as asked "
                f"({what}, FP32 where kept in float): {describe_fallbacks(fell)}; {fix}")


def check_expect(expect: str | None) -> None:
    """Raises EngineError unless ``expect`` is None or one of fp32/fp16/int8."""
    if expect is not None and expect not in EXPECTABLE:
        raise EngineError(f"--expect {expect} is not accepted; give one of {', '.join(EXPECTABLE)}")


def inspect_file(path: str | Path, *, expect: str | None = None, trt_module=None, memory=None) -> InspectResult:
    """Inspect an engine plan or a layer-information JSON (see the module docstring).

    Raises:
        ArtifactError: the file is missing or is neither a plan nor a layer-information JSON.
        EngineError, MissingDependency: an engine plan that cannot be loaded here (no TensorRT, no
            GPU, another TensorRT release...).
    """
    check_expect(expect)
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"{path} {not_a_file(path)}; give an engine plan or a layer-information JSON (trtexec --exportLayerInfo)")
    _refuse_onnx(path)
    kind = sniff(path)
    if kind == "empty":
        raise ArtifactError(f"{path} is empty; give an engine plan or the JSON trtexec --exportLayerInfo wrote")
    if kind == "json":
        source, report, manifest = _from_json(path)
    else:
        source, (report, manifest) = "engine", _from_engine(path, trt_module, memory)
    kept = tuple(kept_float_nodes(manifest))
    return InspectResult(path, source, report, verdict(report, expect, frozenset(kept)), kept)


def _refuse_onnx(path: Path) -> None:
    """An ONNX model (or its manifest) is not an engine: say so, whatever TensorRT this machine has."""
    from rtdeploy.artifacts import load_onnx_graph

    onnx_manifest = path.name.endswith(".onnx.json")
    if onnx_manifest or (path.suffix.lower() == ".onnx" and load_onnx_graph(path) is not None):
        model = str(path).removesuffix(".json")
        raise ArtifactError(f"{path} is {'the manifest of ' if onnx_manifest else ''}an ONNX model, not a TensorRT engine; inspect reads "
                            f"engine plans and layer-information JSONs: build one with `rtdeploy build-engine --onnx {model}` "
                            "on a machine with TensorRT, or give the JSON trtexec --exportLayerInfo wrote")


# Byte-order marks and the text encodings they announce (JSON written by PowerShell's ">" is UTF-16 with a BOM).
_BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF8, "utf-8-sig"),
         (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))
_JSON_START = "{[\"-0123456789ntf"  # what a JSON text starts with after blanks (object, array, string, number, null/true/false)
_SNIFF_CHUNK = 1 << 16


def _encoding(head: bytes) -> str:
    return next((enc for bom, enc in _BOMS if head.startswith(bom)), "utf-8")


def sniff(path: Path) -> str:
    """``empty``, ``json`` or ``plan``, from the content: an optional byte-order mark and any amount of
    blank space, then the first character of a JSON text; anything else is taken for an engine plan."""
    with open(path, "rb") as f:
        head = f.read(_SNIFF_CHUNK)
        encoding = _encoding(head)
        decoder = codecs.getincrementaldecoder(encoding)(errors="replace")
        chunk = head
        while chunk:
            text = decoder.decode(chunk).lstrip(" \t\r\n\ufeff")
            if text:
                return "json" if text[0] in _JSON_START and (encoding != "utf-8" or _is_text(head)) else "plan"
            chunk = f.read(_SNIFF_CHUNK)
    return "empty"


def _is_text(head: bytes) -> bool:
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as e:
        return e.start >= len(head) - 3  # a character cut at the end of the chunk
    return True


def _from_json(path: Path) -> tuple[str, dict, dict | None]:
    raw = path.read_bytes()
    try:
        data = json.loads(raw.decode(_encoding(raw[:4])))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ArtifactError(f"{path} is not valid JSON ({e.__class__.__name__}: {str(e)[:80]}); give an engine plan or the JSON "
                            "trtexec --exportLayerInfo wrote") from None
    except RecursionError:
        raise ArtifactError(f"{path} is JSON nested too deeply to be layer information; give the JSON trtexec --exportLayerInfo "
                            "wrote") from None
    if isinstance(data, dict) and data.get("kind") == "engine":
        return "engine-manifest", _from_manifest(path, data), data
    try:
        report = build_report(data)
    except LayerInfoError as e:
        raise ArtifactError(f"{path}: {e}; give an engine plan or the JSON trtexec --exportLayerInfo wrote") from None
    if report["layers"] == 0:  # every engine has layers: an empty list describes none, and a report of it says nothing
        raise ArtifactError(f"{path} lists no layers; give an engine plan or the JSON trtexec --exportLayerInfo wrote for one")
    return "layer-json", report, _manifest_beside(path)


def _from_manifest(path: Path, data: dict) -> dict:
    """The layer report an rtdeploy engine manifest carries (checked like any manifest first)."""
    from rtdeploy.manifests.engine import LayersSection

    try:
        layers = LayersSection.from_dict(data.get("layers"), where=f"{path.name}: layers").to_dict()
    except ArtifactError as e:
        raise ArtifactError(f"{e}; inspect the engine itself, or rebuild it with rtdeploy build-engine") from None
    if not layers.get("compute_layers") and layers.get("schema") is None:
        raise ArtifactError(f"{path} is an engine manifest from an older rtdeploy without the layer table; "
                            "inspect the engine itself, or rebuild it with rtdeploy build-engine")
    keys = ("schema", "detailed", "compute", "compute_layers", "hidden", "reformat", "qdq", "io", "by_precision", "by_device", "list")
    return {k: layers.get(k) for k in keys} | {"hidden": layers.get("hidden") or [], "layers": layers.get("count")}


def _manifest_beside(path: Path) -> dict | None:
    """The engine manifest of ``x.graph.json`` / ``x.json`` when an ``x.engine.json`` sits beside it."""
    from rtdeploy.artifacts import read_manifest

    for stem in (path.name.split(".")[0],):
        candidate = path.with_name(f"{stem}.engine")
        if Path(str(candidate) + ".json").is_file():
            return read_manifest(candidate, required=False)
    return None


def _from_engine(path: Path, trt_module, memory) -> tuple[dict, dict | None]:
    from rtdeploy.trt.device_memory import open_device_memory
    from rtdeploy.trt.engine_file import load_engine
    from rtdeploy.trt.engine_report import inspect_engine
    from rtdeploy.trt.loader import import_tensorrt

    trt = trt_module if trt_module is not None else import_tensorrt()
    mem = memory if memory is not None else open_device_memory()
    engine, typed_manifest, _runtime = load_engine(trt, path, device=mem.device_info())
    manifest = typed_manifest.to_dict() if typed_manifest is not None else None
    profile = (manifest or {}).get("profile") or {}
    shape = (profile["opt"], *profile["sample_shape"]) if "opt" in profile and "sample_shape" in profile else None
    return inspect_engine(trt, engine, profile.get("input"), shape), manifest
