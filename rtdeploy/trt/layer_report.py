"""Per-layer precision of a TensorRT engine, judged from its layer information (no TensorRT needed).

The input is the engine inspector's JSON (``IEngineInspector::getEngineInformation(kJSON)``), as
``trtexec --exportLayerInfo``, Polygraphy and ``rtdeploy build-engine`` write it. Three forms are read:

- 8.x/10.x: ``{"Layers": [...], "Bindings": ["in", "out"]}``, each tensor with ``"Format/Datatype"``
  (e.g. ``"Thirty-two wide channel vectorized row major Int8 format"``; Myelin layers: ``"Float"``);
- 11.x: ``"I/O Tensors"`` objects instead of ``Bindings`` (NVIDIA's 10.x -> 11.x IEngineInspector
  migration page) and, per NVIDIA's 11.0 overview, ``Format/Datatype`` split in two; the per-layer
  key names of that split are not documented, so ``Format`` + ``Datatype`` and ``Format`` +
  ``DataType`` are both accepted;
- without detailed profiling verbosity: ``{"Layers": ["name", ...]}`` (names only: nothing to judge).

**Compute layers** are the layers with weights (``Weights`` or, in fused ``ConvActPool`` layers,
``ConvWeights``): convolutions, fully connected layers (TensorRT runs them as 1x1 convolutions) and
fused conv+add. Each runs at the wider of its weight type and its first input's type (the rule of
NVIDIA's TREx, ``trex/layer.py``). Reformat/Quantize/Dequantize/Cast/Shuffle layers only move data
and never count. Tactic names are not used: INT8 kernels carry ``f16``/``f32`` in their names.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

# Narrowest first. A layer "runs above P" when its rank is greater than P's.
RANK = {"int4": 0, "int8": 1, "fp8": 2, "fp16": 3, "bf16": 3, "fp32": 4}
EXPECTABLE = ("fp32", "fp16", "int8")
# Checked in order: "bfloat16" contains "float", "Half" means FP16, "Float" alone means FP32.
_TYPE_WORDS = (("int4", ("int4",)), ("int8", ("int8",)), ("fp8", ("fp8", "e4m3", "e5m2")), ("bf16", ("bf16", "bfloat")),
               ("fp16", ("fp16", "half", "float16")), ("fp32", ("fp32", "float")), ("int32", ("int32",)), ("int64", ("int64",)),
               ("bool", ("bool",)))
# Layer types that compute with weights even when a (Myelin/kgen) entry lists none.
_COMPUTE_TYPES = ("Convolution", "Gemm", "MatrixMultiply", "FullyConnected", "ConvActPool")


def dtype_of(text: Any) -> str:
    """``"Row major linear FP16 format"`` / ``"Half"`` / ``"float"`` -> ``"fp16"`` / ``"fp16"`` / ``"fp32"``; else ``"unknown"``."""
    low = str(text or "").lower()
    for name, words in _TYPE_WORDS:
        if any(w in low for w in words):
            return name
    return "unknown"


def tensor_dtype(tensor: Any) -> str:
    """A layer tensor's type, from ``Format/Datatype`` (8.x/10.x) or a split ``Datatype``/``DataType`` (11.x)."""
    if not isinstance(tensor, dict):
        return "unknown"
    for key in ("Datatype", "DataType", "Format/Datatype", "Format"):
        if key in tensor:
            found = dtype_of(tensor[key])
            if found != "unknown":
                return found
    return "unknown"


def tensor_format(tensor: dict) -> str:
    return str(tensor.get("Format/Datatype") or tensor.get("Format") or "")


def weight_dtype(layer: dict) -> str | None:
    """The weight type (``Weights.Type`` or ``ConvWeights.Type``) of a layer, None when it lists none."""
    for key in ("Weights", "ConvWeights"):
        w = layer.get(key)
        if isinstance(w, dict) and "Type" in w:
            return dtype_of(w["Type"])
    return None


def is_compute(layer: dict) -> bool:
    """A layer that computes with weights (see the module docstring)."""
    if weight_dtype(layer) is not None:
        return True
    kind = f"{layer.get('LayerType', '')} {layer.get('ParameterType', '')}"
    return "Reformat" not in kind and any(t in kind for t in _COMPUTE_TYPES)


def compute_precision(layer: dict) -> str:
    """The precision a compute layer runs at: the wider of its weight type and its first input's type."""
    found = [t for t in (weight_dtype(layer), tensor_dtype((layer.get("Inputs") or [None])[0])) if t in RANK]
    return max(found, key=RANK.__getitem__) if found else "unknown"


def _lowest(layer: dict) -> str:
    found = {tensor_dtype(t) for t in [*layer.get("Inputs", []), *layer.get("Outputs", [])]}
    ranked = [t for t in found if t in RANK]
    return min(ranked, key=RANK.__getitem__) if ranked else next(iter(found - {"unknown"}), "unknown")


def _io_tensors(data: dict, layers: list[dict]) -> tuple[str, list[dict]]:
    if isinstance(data.get("I/O Tensors"), list):  # TensorRT 11.x
        io = []
        for t in data["I/O Tensors"]:
            if isinstance(t, dict):
                fmt = ((t.get("ProfileInfo") or [{}])[0] or {}).get("Format", "") if isinstance(t.get("ProfileInfo"), list) else ""
                io.append({"name": str(t.get("Name", "")), "mode": str(t.get("IOMode", "")).lower() or "?",
                           "dtype": dtype_of(t.get("DataType") or t.get("Datatype") or fmt), "format": str(fmt)})
        return "11.x", io
    names = [str(n) for n in data.get("Bindings", [])]
    # 8.x/10.x name the bindings only; their types are those of the layer tensors carrying the names.
    seen: dict[str, tuple[str, dict]] = {}
    for layer in layers:
        for side in ("Inputs", "Outputs"):
            for t in layer.get(side, []) or []:
                if isinstance(t, dict) and t.get("Name") in names and (t["Name"], side) not in seen:
                    seen[(t["Name"], side)] = t
    io = []
    for n in names:
        t = seen.get((n, "Inputs")) or seen.get((n, "Outputs")) or {}
        mode = "input" if (n, "Inputs") in seen else "output" if (n, "Outputs") in seen else "?"
        io.append({"name": n, "mode": mode, "dtype": tensor_dtype(t), "format": tensor_format(t)})
    return "8.x/10.x", io


def load_layer_information(source: str | bytes | dict | list) -> dict:
    """Parse inspector JSON (text or already loaded) into ``{"Layers": [...], ...}``.

    Raises:
        ValueError: not JSON, or JSON without a layer list.
    """
    data = source
    if isinstance(source, (str, bytes)):
        data = json.loads(source)
    if isinstance(data, list):  # some tools write the layer list alone
        data = {"Layers": data}
    if not isinstance(data, dict):
        raise ValueError("not an engine layer-information JSON (expected an object with \"Layers\")")
    for key in ("Layers", "layers", "LayerInfo", "layerInfo"):
        if isinstance(data.get(key), list):
            return {**data, "Layers": data[key]}
    raise ValueError("not an engine layer-information JSON (no \"Layers\" list)")


def build_report(source: str | bytes | dict | list) -> dict[str, Any]:
    """The layer report of one engine.

    Returns:
        ``{"schema", "detailed", "layers", "compute": {"total", "by_precision"}, "compute_layers":
        [{"name", "type", "weights", "input", "precision"}], "reformat", "qdq", "io": [...],
        "by_precision", "by_device", "list"}``. ``by_precision`` counts every layer at its
        narrowest tensor (for the manifest's history); only ``compute`` is used to judge.
    """
    data = load_layer_information(source)
    entries = data["Layers"]
    dicts = [e for e in entries if isinstance(e, dict)]
    schema, io = _io_tensors(data, dicts)
    if len(dicts) < len(entries):
        schema = "names-only"
    compute, listed = [], []
    for e in entries:
        if not isinstance(e, dict):
            listed.append({"name": str(e), "type": "", "precision": "unknown", "device": "GPU"})
            continue
        name, kind = str(e.get("Name", "")), str(e.get("LayerType", ""))
        listed.append({"name": name, "type": kind, "precision": _lowest(e), "device": _device(e)})
        if is_compute(e):
            compute.append({"name": name, "type": kind, "weights": weight_dtype(e) or "none",
                            "input": tensor_dtype((e.get("Inputs") or [None])[0]), "precision": compute_precision(e)})
    origins = Counter(str(e.get("Origin", "")) for e in dicts if "Reformat" in str(e.get("LayerType", "")))
    detailed = bool(dicts) and any(layer["precision"] != "unknown" for layer in listed)
    return {
        "schema": schema, "detailed": detailed, "layers": len(entries),
        "compute": {"total": len(compute), "by_precision": dict(Counter(c["precision"] for c in compute))},
        "compute_layers": compute,
        "reformat": origins.get("REFORMAT", 0) + sum(n for o, n in origins.items() if o not in ("REFORMAT", "QDQ")),
        "qdq": origins.get("QDQ", 0) + sum(1 for e in dicts if str(e.get("LayerType")) in ("Quantize", "Dequantize")),
        "io": io,
        "by_precision": dict(Counter(layer["precision"] for layer in listed)),
        "by_device": dict(Counter(layer["device"] for layer in listed)),
        "list": listed,
    }


def _device(layer: dict) -> str:
    text = " ".join(str(layer.get(k, "")) for k in ("LayerType", "Name", "TacticName"))
    return "DLA" if "DLA" in text else "GPU"


def _kept(name: str, kept: frozenset[str]) -> bool:
    # TensorRT names a fused layer by joining its ONNX nodes' names with " + ".
    return name in kept or any(part.strip() in kept for part in name.split(" + "))


def fallbacks(report: dict, expected: str, kept: frozenset[str] | set[str] = frozenset()) -> list[dict]:
    """Compute layers running above ``expected`` (``fp32``/``fp16``/``int8``): ``[{"name", "asked", "got"}]``.

    Layers named in ``kept`` (ONNX node names the precision stage kept in float: ``--keep-fp``,
    the FP16 overflow guard) are asked FP32 and never fall back.
    """
    if expected not in EXPECTABLE:
        raise ValueError(f"expected precision {expected!r}; give one of {', '.join(EXPECTABLE)}")
    kept = frozenset(kept)
    out = []
    for layer in report["compute_layers"]:
        asked = "fp32" if _kept(layer["name"], kept) else expected
        got = layer["precision"]
        if got in RANK and RANK[got] > RANK[asked]:
            out.append({"name": layer["name"], "asked": asked, "got": got})
    return out


def verdict(report: dict, expected: str | None, kept: frozenset[str] | set[str] = frozenset()) -> dict[str, Any]:
    """``{"expected", "verified", "fallbacks", "ok", "reason"}`` for ``report`` against ``expected``.

    ``verified`` is False when the report cannot say (names only, or no compute layer with a known
    precision); ``ok`` is then None. With ``expected`` None nothing is judged.
    """
    if expected is None:
        return {"expected": None, "verified": False, "fallbacks": [], "ok": None, "reason": "no precision expected"}
    known = [c for c in report["compute_layers"] if c["precision"] in RANK]
    if not report["detailed"] or not known:
        why = ("the engine lists layer names only (build with detailed profiling verbosity)" if report["schema"] == "names-only"
               or not report["detailed"] else "no compute layer with a known precision")
        return {"expected": expected, "verified": False, "fallbacks": [], "ok": None, "reason": why}
    fell = fallbacks(report, expected, kept)
    return {"expected": expected, "verified": True, "fallbacks": fell, "ok": not fell,
            "reason": "" if not fell else f"{len(fell)} of {len(report['compute_layers'])} compute layers run above {expected.upper()}"}


def describe_fallbacks(fell: list[dict], limit: int = 3) -> str:
    """``conv1 (asked INT8, got FP16), fc (asked INT8, got FP32) and 2 more``."""
    shown = ", ".join(f"{f['name']} (asked {f['asked'].upper()}, got {f['got'].upper()})" for f in fell[:limit])
    return shown + (f" and {len(fell) - limit} more" if len(fell) > limit else "")


def format_table(report: dict, judged: dict | None = None) -> str:
    """The human-readable report: compute layers by precision, fallbacks, Reformat/QDQ counts, I/O types."""
    comp = report["compute"]
    by = ", ".join(f"{n} {p.upper()}" for p, n in sorted(comp["by_precision"].items(), key=lambda kv: RANK.get(kv[0], 9)))
    lines = [f"layers: {report['layers']} ({report['schema']} layer information)",
             f"compute layers (with weights): {comp['total']}" + (f" — {by}" if by else ""),
             f"data movement: {report['reformat']} Reformat, {report['qdq']} Quantize/Dequantize (QDQ)"]
    for t in report["io"]:
        lines.append(f"{t['mode']:>6} {t['name']}: {t['dtype'].upper()}" + (f" ({t['format']})" if t["format"] else ""))
    if report["compute_layers"]:
        lines.append("")
        lines.append(f"{'precision':<9}  {'weights':<7}  {'input':<7}  layer")
        for c in report["compute_layers"]:
            lines.append(f"{c['precision'].upper():<9}  {c['weights']:<7}  {c['input']:<7}  {c['name']}")
    if judged and judged.get("expected"):
        lines.append("")
        if not judged["verified"]:
            lines.append(f"expected {judged['expected'].upper()}: not verifiable ({judged['reason']})")
        elif judged["ok"]:
            lines.append(f"expected {judged['expected'].upper()}: every compute layer runs at or below it")
        else:
            lines.append(f"expected {judged['expected'].upper()}: {judged['reason']}")
            lines.append(f"{'asked':<6} {'got':<6} layer")
            lines += [f"{f['asked'].upper():<6} {f['got'].upper():<6} {f['name']}" for f in judged["fallbacks"]]
    return "\n".join(lines)


def kept_float_nodes(manifest: dict | None) -> list[str]:
    """ONNX node names a manifest says stay in float: an INT8 ONNX's ``quantization.kept_fp``
    (``--keep-fp``), an FP16 ONNX's ``fp16.kept_fp32`` (the overflow guard), or an engine
    manifest's ``layers.kept_float``."""
    if not isinstance(manifest, dict):
        return []
    found: list[str] = []
    for section, key in (("quantization", "kept_fp"), ("fp16", "kept_fp32"), ("layers", "kept_float")):
        for item in (manifest.get(section) or {}).get(key) or []:
            name = item.get("node") if isinstance(item, dict) else item
            if name and str(name) not in found:
                found.append(str(name))
    return found
