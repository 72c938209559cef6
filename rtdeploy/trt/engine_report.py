"""What was built: the layer report of a deserialized engine, and the build's precision check.

The report itself (compute layers, their precision, fallbacks) is :mod:`rtdeploy.trt.layer_report`,
which needs no TensorRT; this module gets the inspector's JSON out of an engine and turns a
failed expectation into the build's one-line error.
"""

from __future__ import annotations

import logging
from typing import Any

from rtdeploy.errors import EngineError
from rtdeploy.trt.layer_report import RANK, LayerInfoError, below, build_report, describe_fallbacks, dtype_of, verdict

log = logging.getLogger(__name__)

# Kept for callers of the earlier name: a tensor format string -> "int8"/"fp16"/"fp32"/...
tensor_precision = dtype_of


def parse_engine_information(info: str) -> dict[str, Any]:
    """The layer report (:func:`rtdeploy.trt.layer_report.build_report`) of the inspector's JSON;
    an empty report when the inspector returned no JSON."""
    try:
        return build_report(info)
    except (TypeError, LayerInfoError) as e:
        log.warning("the engine inspector returned no layer JSON of a known shape (%s); the layer report is empty", e)
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
                             *, strict: bool = True, tf32: bool = False) -> dict[str, Any]:
    """Judge the build: every compute layer must run at ``precision``, except the layers the precision
    stage kept in float (``kept``: ONNX node names), which must run FP32 (TF32 only with ``tf32``).

    ``strict=False`` is for weakly typed builds that let TensorRT choose (FP16 flag on 8.x / DLA,
    implicit calibration): there TensorRT may legitimately pick a *wider* kernel when it is faster, so
    such fallbacks fail only an engine with NO compute layer at ``precision`` (they are still reported).
    A layer running *narrower* than asked (a layer kept in FP32 that ran FP16, or TF32 when it was not
    allowed) always fails: its accuracy was measured in FP32 and does not carry over.

    Returns:
        the verdict (:func:`rtdeploy.trt.layer_report.verdict`); ``ok`` None when part of the engine
        cannot be judged (a warning is logged).

    Raises:
        EngineError: a compute layer runs other than asked; the message names the layers, what was
            asked and what was built.
    """
    judged = verdict(report, precision, kept, tf32=tf32)
    fell = judged["fallbacks"]
    if not fell:
        if judged["ok"] is None:
            log.warning("the %s build could not be verified: %s", precision.upper(), judged["reason"])
        return judged
    reached = any(RANK.get(c["precision"], 9) <= RANK[precision] for c in report["compute_layers"])
    if not strict and reached and not below(fell):
        log.warning("%s asked (weakly typed): TensorRT chose wider kernels for %s", precision.upper(), describe_fallbacks(fell))
        return judged
    narrower = below(fell)
    how = "below what was asked" if len(narrower) == len(fell) else "above it" if not narrower else "other than asked"
    counts = ", ".join(f"{n} {p.upper()}" for p, n in sorted(report["compute"]["by_precision"].items()))
    hint = ("TF32 ran where FP32 was asked: rebuild with rtdeploy build-engine (it clears BuilderFlag.TF32), or allow it "
            "with --tf32" if any(f["got"] == "tf32" for f in fell) else
            f"check that the ONNX is the {'Q/DQ' if precision == 'int8' else precision.upper()} model and that this GPU supports "
            f"{precision.upper()} (rtdeploy inspect shows every layer)")
    raise EngineError(f"{precision.upper()} was asked, but TensorRT built {len(fell)} of {report['compute']['total']} compute "
                      f"layers {how} ({describe_fallbacks(fell)}; compute layers: {counts}); nothing was written — {hint}")
