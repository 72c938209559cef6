"""What was built: the layer report of a deserialized engine, and the build's precision check.

The report itself (compute layers, their precision, fallbacks) is :mod:`rtdeploy.trt.layer_report`,
which needs no TensorRT; this module gets the inspector's JSON out of an engine and turns a
failed expectation into the build's one-line error.
"""

from __future__ import annotations

import logging
from typing import Any

from rtdeploy.errors import EngineError
from rtdeploy.trt.layer_report import RANK, build_report, describe_fallbacks, dtype_of, verdict

log = logging.getLogger(__name__)

# Kept for callers of the earlier name: a tensor format string -> "int8"/"fp16"/"fp32"/...
tensor_precision = dtype_of


def parse_engine_information(info: str) -> dict[str, Any]:
    """The layer report (:func:`rtdeploy.trt.layer_report.build_report`) of the inspector's JSON;
    an empty report when the inspector returned no JSON."""
    try:
        return build_report(info)
    except (TypeError, ValueError):
        log.warning("the engine inspector returned no layer JSON; the layer report is empty")
        return build_report({"Layers": []})


def inspect_engine(trt, engine, input_name: str | None = None, opt_shape: tuple[int, ...] | None = None) -> dict[str, Any]:
    """The layer report of a deserialized engine.

    With ``input_name``/``opt_shape`` an execution context at that shape is attached, so that
    dynamic-shape engines report their tensor formats too.
    """
    inspector = engine.create_engine_inspector()
    if input_name is not None and opt_shape is not None:
        context = engine.create_execution_context()
        if context is not None:
            context.set_input_shape(input_name, opt_shape)
            inspector.execution_context = context
    return parse_engine_information(inspector.get_engine_information(trt.LayerInformationFormat.JSON))


def check_precision_realized(report: dict[str, Any], precision: str, kept: frozenset[str] | set[str] = frozenset(),
                             *, strict: bool = True) -> dict[str, Any]:
    """Judge the build: every compute layer must run at ``precision`` or below, except the layers
    the precision stage kept in float (``kept``: ONNX node names).

    ``strict=False`` is for weakly typed builds that let TensorRT choose (FP16 flag on 8.6, implicit
    calibration): there TensorRT may legitimately pick a wider kernel when it is faster, so only an
    engine with NO compute layer at ``precision`` fails; the fallbacks are still reported.

    Returns:
        the verdict (:func:`rtdeploy.trt.layer_report.verdict`); ``verified`` False when the
        engine reports no layer precisions (a warning is logged).

    Raises:
        EngineError: a compute layer runs above ``precision`` (TensorRT fell back); the message
            names the layers, what was asked and what was built.
    """
    judged = verdict(report, precision, kept)
    if not judged["verified"]:
        log.warning("the %s build could not be verified: %s", precision.upper(), judged["reason"])
        return judged
    reached = any(RANK.get(c["precision"], 9) <= RANK[precision] for c in report["compute_layers"])
    if not judged["ok"] and not strict and reached:
        log.warning("%s asked (weakly typed): TensorRT chose wider kernels for %s", precision.upper(),
                    describe_fallbacks(judged["fallbacks"]))
        return judged
    if not judged["ok"]:
        counts = ", ".join(f"{n} {p.upper()}" for p, n in sorted(report["compute"]["by_precision"].items()))
        raise EngineError(f"{precision.upper()} was asked, but TensorRT built {len(judged['fallbacks'])} of "
                          f"{report['compute']['total']} compute layers above it ({describe_fallbacks(judged['fallbacks'])}; "
                          f"compute layers: {counts}); nothing was written — check that the ONNX is the "
                          f"{'Q/DQ' if precision == 'int8' else 'FP16' if precision == 'fp16' else 'FP32'} model and that this GPU "
                          f"supports {precision.upper()} (rtdeploy inspect shows every layer)")
    return judged
