"""Per-layer precision of a TensorRT engine, judged from its layer information (no TensorRT needed).

The input is the engine inspector's JSON (``IEngineInspector::getEngineInformation(kJSON)``), as
``trtexec --exportLayerInfo``, Polygraphy and ``rtdeploy build-engine`` write it. Three forms are read:

- 8.x/10.x: ``{"Layers": [...], "Bindings": ["in", "out"]}``, each tensor with ``"Format/Datatype"``
  (e.g. ``"Thirty-two wide channel vectorized row major Int8 format"``; Myelin/kgen layers: ``"Float"``);
- 11.x: ``"I/O Tensors"`` objects instead of ``Bindings`` (NVIDIA's 10.x -> 11.x IEngineInspector
  migration page) and, per NVIDIA's 11.0 overview, ``Format/Datatype`` split in two; the per-layer
  key names of that split are not documented, so ``Format`` + ``Datatype`` and ``Format`` +
  ``DataType`` are both accepted;
- without detailed profiling verbosity: ``{"Layers": ["name", ...]}`` (names only: nothing to judge).

Before anything is read, the JSON is checked against :data:`LAYER_INFO_SCHEMA`, the fields read here
and their types: a file of another shape is one :class:`LayerInfoError`, never a traceback.

**Compute layers** are the layers with weights (``Weights`` or, in fused ``ConvActPool`` layers,
``ConvWeights``) and the layers whose type computes with weights even when the entry lists none:
convolutions, deconvolutions, fully connected layers, matrix multiplies and GEMMs — compared without
case, because TensorRT 10.x's Myelin layers say ``LayerType: gemm`` and take their weights as an input
(NVIDIA/TensorRT ``samples/sampleEditableTimingCache/README.md``; TREx ``colors.py`` lists ``gemm``
beside ``MatrixMultiply``). Each runs at the wider of its weight type and its first input's type (the
rule of NVIDIA's TREx, ``trex/layer.py``); an FP32 layer whose tactic is a TF32 tensor-core kernel
(``..._f32f32_tf32f32_f32_...``) runs **TF32**. A compute layer whose entry carries no type cannot be
judged, and neither can a Myelin/kgen region reported as one layer (``LayerType`` ``Myelin``/``kgen``,
or a ``{ForeignNode[...]}`` name: NVIDIA/TensorRT #2308, #2576, #4157), which hides the layers it
fused: both make the engine *unverifiable*, never verified. Reformat/Quantize/Dequantize/Cast/Shuffle
layers only move data and never count. Tactic names say nothing else: INT8 kernels carry ``f16``/``f32``.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

# Narrowest first. A layer "runs above P" when its rank is greater than P's, "below" when smaller.
# TF32 keeps FP32's range with FP16's 10-bit mantissa: between the two.
RANK = {"int4": 0, "int8": 1, "fp8": 2, "fp16": 3, "bf16": 3, "tf32": 3.5, "fp32": 4}
EXPECTABLE = ("fp32", "fp16", "int8")
# Checked in order: "bfloat16" contains "float", "Half" means FP16, "Float" alone means FP32.
_TYPE_WORDS = (("int4", ("int4",)), ("int8", ("int8",)), ("fp8", ("fp8", "e4m3", "e5m2")), ("bf16", ("bf16", "bfloat")),
               ("fp16", ("fp16", "half", "float16")), ("fp32", ("fp32", "float")), ("int32", ("int32",)), ("int64", ("int64",)),
               ("bool", ("bool",)))
# Layer types (lower case) that compute with weights even when a (Myelin/kgen) entry lists none.
_COMPUTE_TYPES = ("convolution", "gemm", "matrixmultiply", "fullyconnected", "convactpool")
# Regions TensorRT reports as one layer, hiding what runs inside.
_OPAQUE_TYPES = ("myelin", "kgen")


class LayerInfoError(ValueError):
    """The JSON is not an engine's layer information of a shape rtdeploy reads."""


# The fields read here and their types (None: JSON null accepted). Every other field is ignored.
_TEXT = (str, type(None))
_TENSOR = {"Name": _TEXT, "Format/Datatype": _TEXT, "Format": _TEXT, "Datatype": _TEXT, "DataType": _TEXT}
_WEIGHTS = {"Type": _TEXT}
_LAYER = {"Name": _TEXT, "LayerType": _TEXT, "ParameterType": _TEXT, "TacticName": _TEXT, "Origin": _TEXT,
          "Inputs": [_TENSOR], "Outputs": [_TENSOR], "Weights": _WEIGHTS, "ConvWeights": _WEIGHTS}
_IO_TENSOR = {"Name": _TEXT, "IOMode": _TEXT, "DataType": _TEXT, "Datatype": _TEXT, "ProfileInfo": [{"Format": _TEXT}]}
LAYER_INFO_SCHEMA = {"Layers": [(str, _LAYER)], "Bindings": [str], "I/O Tensors": [_IO_TENSOR]}


def check_shape(value: Any, schema: Any = LAYER_INFO_SCHEMA, where: str = "") -> None:
    """Check ``value`` against a schema of :data:`LAYER_INFO_SCHEMA`'s form: a dict maps optional keys to
    schemas, a one-item list is a list of that item, a tuple of types or schemas is any of them.

    Raises:
        LayerInfoError: the first field of another type, by its path (``Layers[3].Inputs[0].Name``).
    """
    if isinstance(schema, dict):
        if not isinstance(value, dict):
            raise LayerInfoError(f"{where or 'the top level'} is {_kind(value)}, not an object")
        for key, sub in schema.items():
            if key in value:
                check_shape(value[key], sub, f"{where}.{key}" if where else key)
        return
    if isinstance(schema, list):
        if not isinstance(value, list):
            raise LayerInfoError(f"{where} is {_kind(value)}, not a list")
        for i, item in enumerate(value):
            check_shape(item, schema[0], f"{where}[{i}]")
        return
    options = schema if isinstance(schema, tuple) else (schema,)
    for option in options:
        if isinstance(option, type) and isinstance(value, option):
            return
        if isinstance(option, (dict, list)) and isinstance(value, type(option)):
            return check_shape(value, option, where)  # the one structured option of this kind: its error is the one to tell
    raise LayerInfoError(f"{where} is {_kind(value)}, not {' or '.join(_kind_of(o) for o in options)}")


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number" if isinstance(value, (int, float)) else type(value).__name__)


def _kind_of(schema: Any) -> str:
    if isinstance(schema, dict):
        return "an object"
    if isinstance(schema, list):
        return "a list"
    return {str: "a string", type(None): "null"}.get(schema, getattr(schema, "__name__", str(schema)))


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


def _tensors(layer: dict, side: str) -> list:
    return layer.get(side) or []


def weight_dtype(layer: dict) -> str | None:
    """The weight type (``Weights.Type`` or ``ConvWeights.Type``) of a layer, None when it lists none."""
    for key in ("Weights", "ConvWeights"):
        w = layer.get(key)
        if isinstance(w, dict) and w.get("Type") is not None:
            return dtype_of(w["Type"])
    return None


def _kind_text(layer: dict) -> str:
    return f"{layer.get('LayerType') or ''} {layer.get('ParameterType') or ''}".lower()


def is_opaque(layer: dict) -> bool:
    """A Myelin/kgen region reported as one layer: what it fused (and their precisions) is hidden."""
    kind = str(layer.get("LayerType") or "").lower()
    return kind in _OPAQUE_TYPES or str(layer.get("Name") or "").startswith("{ForeignNode[")


def is_compute(layer: dict) -> bool:
    """A layer that computes with weights (see the module docstring)."""
    if weight_dtype(layer) is not None:
        return True
    kind = _kind_text(layer)
    return "reformat" not in kind and any(t in kind for t in _COMPUTE_TYPES)


def compute_precision(layer: dict) -> str:
    """The precision a compute layer runs at: the wider of its weight type and its first input's type,
    ``tf32`` for an FP32 layer on a TF32 tensor-core tactic; ``unknown`` when the entry says neither."""
    found = [t for t in (weight_dtype(layer), tensor_dtype((_tensors(layer, "Inputs") or [None])[0])) if t in RANK]
    if not found:
        return "unknown"
    widest = max(found, key=RANK.__getitem__)
    return "tf32" if widest == "fp32" and "tf32" in str(layer.get("TacticName") or "").lower() else widest


def _lowest(layer: dict) -> str:
    found = {tensor_dtype(t) for t in [*_tensors(layer, "Inputs"), *_tensors(layer, "Outputs")]}
    ranked = [t for t in found if t in RANK]
    return min(ranked, key=RANK.__getitem__) if ranked else next(iter(found - {"unknown"}), "unknown")


def _io_tensors(data: dict, layers: list[dict]) -> tuple[str, list[dict]]:
    if isinstance(data.get("I/O Tensors"), list):  # TensorRT 11.x
        io = []
        for t in data["I/O Tensors"]:
            fmt = str(((t.get("ProfileInfo") or [{}])[0] or {}).get("Format") or "")
            io.append({"name": str(t.get("Name") or ""), "mode": str(t.get("IOMode") or "").lower() or "?",
                       "dtype": dtype_of(t.get("DataType") or t.get("Datatype") or fmt), "format": fmt})
        return "11.x", io
    names = [str(n) for n in data.get("Bindings") or []]
    # 8.x/10.x name the bindings only; their types are those of the layer tensors carrying the names.
    seen: dict[tuple[str, str], dict] = {}
    for layer in layers:
        for side in ("Inputs", "Outputs"):
            for t in _tensors(layer, side):
                if t.get("Name") in names and (t["Name"], side) not in seen:
                    seen[(t["Name"], side)] = t
    io = []
    for n in names:
        t = seen.get((n, "Inputs")) or seen.get((n, "Outputs")) or {}
        mode = "input" if (n, "Inputs") in seen else "output" if (n, "Outputs") in seen else "?"
        io.append({"name": n, "mode": mode, "dtype": tensor_dtype(t), "format": tensor_format(t)})
    return "8.x/10.x", io


def load_layer_information(source: str | bytes | dict | list) -> dict:
    """Parse inspector JSON (text or already loaded) into ``{"Layers": [...], ...}``, checked against
    :data:`LAYER_INFO_SCHEMA`.

    Raises:
        LayerInfoError: not JSON, JSON without a layer list, or a field of another type than TensorRT writes.
    """
    data = source
    if isinstance(source, (str, bytes)):
        try:
            data = json.loads(source)
        except RecursionError:
            raise LayerInfoError("the JSON is nested too deeply to be layer information") from None
        except ValueError as e:
            raise LayerInfoError(f"not valid JSON ({e})") from None
    if isinstance(data, list):  # some tools write the layer list alone
        data = {"Layers": data}
    if not isinstance(data, dict):
        raise LayerInfoError(f"not an engine layer-information JSON (the JSON is {_kind(data)}, expected an object with \"Layers\")")
    for key in ("Layers", "layers", "LayerInfo", "layerInfo"):
        if isinstance(data.get(key), list):
            data = {**data, "Layers": data[key]}
            check_shape(data)
            return data
    raise LayerInfoError("not an engine layer-information JSON (no \"Layers\" list)")


def build_report(source: str | bytes | dict | list) -> dict[str, Any]:
    """The layer report of one engine.

    Returns:
        ``{"schema", "detailed", "layers", "compute": {"total", "by_precision"}, "compute_layers":
        [{"name", "type", "weights", "input", "precision"}], "hidden": [names of opaque regions],
        "reformat", "qdq", "io": [...], "by_precision", "by_device", "list"}``. ``by_precision`` counts
        every layer at its narrowest tensor (for the manifest's history); only ``compute`` and
        ``hidden`` are used to judge.

    Raises:
        LayerInfoError: see :func:`load_layer_information`.
    """
    data = load_layer_information(source)
    entries = data["Layers"]
    dicts = [e for e in entries if isinstance(e, dict)]
    schema, io = _io_tensors(data, dicts)
    if len(dicts) < len(entries):
        schema = "names-only"
    compute, listed, hidden = [], [], []
    for e in entries:
        if not isinstance(e, dict):
            listed.append({"name": str(e), "type": "", "precision": "unknown", "device": "GPU"})
            continue
        name, kind = str(e.get("Name") or ""), str(e.get("LayerType") or "")
        listed.append({"name": name, "type": kind, "precision": _lowest(e), "device": _device(e)})
        if is_opaque(e):
            hidden.append(name)
        elif is_compute(e):
            compute.append({"name": name, "type": kind, "weights": weight_dtype(e) or "none",
                            "input": tensor_dtype((_tensors(e, "Inputs") or [None])[0]), "precision": compute_precision(e)})
    origins = Counter(str(e.get("Origin") or "") for e in dicts if "reformat" in str(e.get("LayerType") or "").lower())
    detailed = bool(dicts) and any(layer["precision"] != "unknown" for layer in listed)
    return {
        "schema": schema, "detailed": detailed, "layers": len(entries),
        "compute": {"total": len(compute), "by_precision": dict(Counter(c["precision"] for c in compute))},
        "compute_layers": compute, "hidden": hidden,
        "reformat": origins.get("REFORMAT", 0) + sum(n for o, n in origins.items() if o not in ("REFORMAT", "QDQ")),
        "qdq": origins.get("QDQ", 0) + sum(1 for e in dicts if str(e.get("LayerType")) in ("Quantize", "Dequantize")),
        "io": io,
        "by_precision": dict(Counter(layer["precision"] for layer in listed)),
        "by_device": dict(Counter(layer["device"] for layer in listed)),
        "list": listed,
    }


def _device(layer: dict) -> str:
    text = " ".join(str(layer.get(k) or "") for k in ("LayerType", "Name", "TacticName"))
    return "DLA" if "DLA" in text else "GPU"


def _kept(name: str, kept: frozenset[str]) -> bool:
    # TensorRT names a fused layer by joining its ONNX nodes' names with " + ".
    return name in kept or any(part.strip() in kept for part in name.split(" + "))


def asked_of(name: str, expected: str, kept: frozenset[str] | set[str] = frozenset()) -> str:
    """What a compute layer was asked to run at: ``fp32`` for a layer kept in float, else ``expected``."""
    return "fp32" if _kept(name, frozenset(kept)) else expected


def fallbacks(report: dict, expected: str, kept: frozenset[str] | set[str] = frozenset(), *, tf32: bool = False) -> list[dict]:
    """Compute layers that do not run at what they were asked: ``[{"name", "asked", "got"}]``, above it
    (a fallback to a wider type) or below it (``asked FP32, got FP16``; ``asked FP32, got TF32``).

    Each layer is asked ``expected`` (``fp32``/``fp16``/``int8``), except the layers named in ``kept``
    (ONNX node names the precision stage kept in float: ``--keep-fp``, the FP16 overflow guard,
    unquantized layers of a Q/DQ graph), which are asked FP32. With ``tf32`` (``build-engine --tf32``)
    a TF32 layer counts as FP32.
    """
    if expected not in EXPECTABLE:
        raise ValueError(f"expected precision {expected!r}; give one of {', '.join(EXPECTABLE)}")
    out = []
    for layer in report["compute_layers"]:
        asked, got = asked_of(layer["name"], expected, kept), layer["precision"]
        if tf32 and got == "tf32" and asked == "fp32":
            continue
        if got in RANK and RANK[got] != RANK[asked]:
            out.append({"name": layer["name"], "asked": asked, "got": got})
    return out


def below(fell: list[dict]) -> list[dict]:
    """The entries of :func:`fallbacks` that run narrower than asked (what weak typing may never excuse)."""
    return [f for f in fell if RANK[f["got"]] < RANK[f["asked"]]]


def verdict(report: dict, expected: str | None, kept: frozenset[str] | set[str] = frozenset(), *, tf32: bool = False) -> dict[str, Any]:
    """``{"expected", "verifiable", "ok", "verified", "fallbacks", "unverifiable", "reason"}`` for ``report``.

    ``verifiable``: every compute layer's precision is known and no region hides its layers (names-only
    files never are). ``ok``: False when any compute layer runs other than asked (:func:`fallbacks`);
    True when none does and the engine is verifiable; None when nothing contradicts the ask but part of
    the engine cannot be judged. ``verified`` is ``ok is True``: the asked precision really runs. With
    ``expected`` None nothing is judged.
    """
    if expected is None:
        return {"expected": None, "verifiable": False, "ok": None, "verified": False, "fallbacks": [], "unverifiable": [],
                "reason": "no precision expected"}
    unknown = [c["name"] for c in report["compute_layers"] if c["precision"] not in RANK]
    unverifiable = [*unknown, *report.get("hidden", [])]
    if not report["detailed"]:
        why = "the engine lists layer names only (build with detailed profiling verbosity)"
    elif not report["compute_layers"] and not unverifiable:
        why = "it lists no compute layer"
    elif unverifiable:
        parts = ([f"{len(unknown)} compute layer(s) carry no precision ({_names(unknown)})"] if unknown else []) + \
                ([f"{len(report['hidden'])} Myelin/kgen region(s) hide their layers ({_names(report['hidden'])})"] if report.get("hidden") else [])
        why = "; ".join(parts)
    else:
        why = ""
    verifiable = not why
    fell = fallbacks(report, expected, kept, tf32=tf32) if report["detailed"] else []
    ok = False if fell else (True if verifiable else None)
    if fell:
        reason = f"{len(fell)} of {report['compute']['total']} compute layers do not run as asked" + (f" (and {why})" if why else "")
    else:
        reason = why
    return {"expected": expected, "verifiable": verifiable, "ok": ok, "verified": ok is True, "fallbacks": fell,
            "unverifiable": unverifiable, "reason": reason}


def _names(names: list[str], limit: int = 3) -> str:
    return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")


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
    if report.get("hidden"):
        lines.append(f"hidden by TensorRT: {len(report['hidden'])} Myelin/kgen region(s) ({_names(report['hidden'])})")
    if report["compute_layers"]:
        lines.append("")
        lines.append(f"{'precision':<9}  {'weights':<7}  {'input':<7}  layer")
        for c in report["compute_layers"]:
            lines.append(f"{c['precision'].upper():<9}  {c['weights']:<7}  {c['input']:<7}  {c['name']}")
    if judged and judged.get("expected"):
        what = judged["expected"].upper()
        lines.append("")
        if judged["ok"]:
            lines.append(f"expected {what}: every compute layer runs as asked ({what}, or FP32 where kept in float)")
        elif judged["ok"] is None:
            lines.append(f"expected {what}: cannot verify ({judged['reason']})")
        else:
            lines.append(f"expected {what}: {judged['reason']}")
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
