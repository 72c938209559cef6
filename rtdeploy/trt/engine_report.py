"""What was built: each layer's precision and device, read from TensorRT's engine inspector.

The inspector returns JSON; with ``ProfilingVerbosity.DETAILED`` each layer lists its inputs and
outputs with a ``Format/Datatype`` such as ``"Row major linear FP32"`` or ``"Thirty-two wide
channel vectorized row major Int8 format."``. A layer's precision here is the lowest precision
among its tensors (an INT8 convolution with an FP32 output is an INT8 layer).
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from typing import Any

from rtdeploy.errors import EngineError

log = logging.getLogger(__name__)

# Lowest first: a layer touching any of these is reported at the first one found.
_PRECISION_WORDS = (("int8", ("int8",)), ("fp8", ("fp8",)), ("fp16", ("fp16", "half")), ("bf16", ("bf16", "bfloat")),
                    ("fp32", ("fp32", "float")), ("int32", ("int32",)))
# Layers that move data rather than compute; they do not count as proof of a precision.
_DATA_MOVEMENT = {"Reformat", "Shuffle", "NoOp", "Constant", "Identity", "Slice", "Concatenation"}


def tensor_precision(fmt: str) -> str:
    """``"Row major linear FP16 format"`` -> ``"fp16"``; ``"unknown"`` when no precision is named."""
    text = fmt.lower()
    for precision, words in _PRECISION_WORDS:
        if any(w in text for w in words):
            return precision
    return "unknown"


def layer_precision(layer: dict[str, Any]) -> str:
    """The lowest precision among a detailed layer entry's input and output tensors."""
    found = {tensor_precision(str(t.get("Format/Datatype", ""))) for t in [*layer.get("Inputs", []), *layer.get("Outputs", [])]
             if isinstance(t, dict)}
    for precision, _ in _PRECISION_WORDS:
        if precision in found:
            return precision
    return "unknown"


def layer_device(layer: dict[str, Any]) -> str:
    """``DLA`` for layers TensorRT runs on a DLA core (named so in type, name or tactic), else ``GPU``."""
    text = " ".join(str(layer.get(k, "")) for k in ("LayerType", "Name", "TacticName"))
    return "DLA" if "DLA" in text else "GPU"


def parse_engine_information(info: str) -> dict[str, Any]:
    """Turn the inspector's JSON into the report stored in the engine manifest.

    Returns:
        ``{"detailed": bool, "layers": [{"name", "type", "precision", "device"}], "by_precision": {...},
        "by_device": {...}}``; ``detailed`` is False when the engine carries layer names only.
    """
    try:
        data = json.loads(info)
    except (TypeError, json.JSONDecodeError):
        log.warning("the engine inspector returned no JSON; the layer report is empty")
        data = {}
    layers = []
    for entry in data.get("Layers", []) if isinstance(data, dict) else []:
        if isinstance(entry, dict):
            layers.append({"name": str(entry.get("Name", "")), "type": str(entry.get("LayerType", "")),
                           "precision": layer_precision(entry), "device": layer_device(entry)})
        else:
            layers.append({"name": str(entry), "type": "", "precision": "unknown", "device": "GPU"})
    detailed = any(layer["precision"] != "unknown" for layer in layers)
    return {"detailed": detailed, "layers": layers,
            "by_precision": dict(Counter(layer["precision"] for layer in layers)),
            "by_device": dict(Counter(layer["device"] for layer in layers))}


def inspect_engine(trt, engine, input_name: str, opt_shape: tuple[int, ...]) -> dict[str, Any]:
    """The layer report of a deserialized engine (see :func:`parse_engine_information`).

    An execution context at the OPT shape is attached so that dynamic-shape engines report their
    tensor formats too.
    """
    inspector = engine.create_engine_inspector()
    context = engine.create_execution_context()
    if context is not None:
        context.set_input_shape(input_name, opt_shape)
        inspector.execution_context = context
    return parse_engine_information(inspector.get_engine_information(trt.LayerInformationFormat.JSON))


def check_precision_realized(report: dict[str, Any], precision: str) -> bool:
    """Fail when the engine has no compute layer in the precision that was asked.

    Returns:
        True when verified; False when the report has no precision detail (nothing to verify).

    Raises:
        EngineError: INT8 or FP16 was asked and no compute layer runs in it (TensorRT fell back).
    """
    if precision == "fp32":
        return True
    if not report["detailed"]:
        log.warning("the engine reports no layer precisions; the %s build could not be verified", precision.upper())
        return False
    wanted = {"int8"} if precision == "int8" else {"fp16"}
    compute = [layer for layer in report["layers"] if layer["type"] not in _DATA_MOVEMENT]
    if not any(layer["precision"] in wanted for layer in compute):
        counts = ", ".join(f"{n} {p.upper()}" for p, n in sorted(report["by_precision"].items()))
        raise EngineError(f"{precision.upper()} was asked, but TensorRT built no {precision.upper()} layer ({counts}); "
                          "nothing was written — check that the ONNX is the "
                          f"{'Q/DQ' if precision == 'int8' else 'FP16'} model and that this GPU supports {precision.upper()}")
    return True
