"""The INT8 branch of ``quantize``: statistics -> scales -> (fallback) -> Q/DQ model + manifest."""

from __future__ import annotations

import logging
from pathlib import Path

from rtdeploy.errors import PrecisionError, first_line
from rtdeploy.precision.stats import gather_stats
from rtdeploy.progress import phase

log = logging.getLogger(__name__)


def run_int8(cfg, parent, out: Path):
    """Make the INT8 Q/DQ model of ``parent`` as ``cfg`` asks (see :mod:`rtdeploy.precision.quantize`)."""
    from rtdeploy.precision.calibration_data import SplitSource, calibration_source, holdout_count
    from rtdeploy.precision.graph import MIN_QDQ_OPSET, opset_of
    from rtdeploy.precision.int8.qdq import plan_qdq
    from rtdeploy.precision.int8.sensitivity import check_keep_fp
    from rtdeploy.precision.artifact import Timer

    from rtdeploy.precision.reuse_record import uses_calibration_images

    timer = Timer()
    opset = opset_of(parent.model)
    if opset < MIN_QDQ_OPSET:
        raise PrecisionError(f"{parent.path} uses opset {opset}; per-channel Q/DQ needs opset >= {MIN_QDQ_OPSET} — re-export with --opset 17")
    folded = _fold_batchnorms(parent.model)  # as TensorRT will; the file on disk is not changed
    plan = plan_qdq(parent.model)
    if not plan.units:
        raise PrecisionError(f"{parent.path} has no Conv/Gemm/MatMul with constant weights to quantize")
    check_keep_fp(cfg.keep_fp, len(plan.units), parent.path.name)
    meta = parent.manifest.model
    fallback = cfg.keep_fp > 0 or cfg.target_agreement is not None
    split = None
    if uses_calibration_images(cfg):
        source = calibration_source(cfg, meta)
        held = holdout_count(len(source), meta.gmacs, len(plan.units)) if fallback else 0
        split = SplitSource(source, held, cfg.seed)
    timer.lap("setup")
    scales, calibration = _scales(cfg, parent, plan, split, timer)
    from rtdeploy.precision.int8.weight_rounding import auto_weights

    weights = auto_weights(parent.model, plan, split.stats_count if split is not None else 0, cfg)
    rounding = None
    if weights[0] == "adaround":
        from rtdeploy.precision.int8.weight_rounding import adaptive_rounding

        phase("INT8: adaptive weight rounding (adaround) on %d calibration images", split.stats_count)
        rounding = adaptive_rounding(parent, plan, scales, split, progress=cfg.progress)
        timer.lap("adaround")
    elif weights[0] == "block":
        from rtdeploy.precision.int8.weight_rounding import block_reconstruction

        phase("INT8: block reconstruction of the weight rounding on %d calibration images", split.stats_count)
        rounding = block_reconstruction(parent, plan, scales, split, progress=cfg.progress)
        scales.update(rounding.scales)
        timer.lap("block")
    kept, sens = [], None
    if fallback:
        kept, sens = _fallback(cfg, parent, plan, scales, split, rounding)
        timer.lap("sensitivity")
    calib_fingerprint = split.source.fingerprint() if split is not None else None
    ranges = None
    if cfg.high_precision == "fp16":
        from rtdeploy.precision.fp16_float_parts import measure_ranges

        ranges, _ = measure_ranges(parent, split, cfg.stats_cache, cfg.progress)
        timer.lap("fp16_guard")
    result = _write(cfg, parent, plan, scales, kept, sens, calibration, out, timer, rounding, calib_fingerprint, ranges, weights)
    result.report["batchnorm_folded"] = folded
    return result


def _fold_batchnorms(model) -> int:
    from rtdeploy.precision.int8.fold_bn import fold_batchnorms

    return fold_batchnorms(model)


def _scales(cfg, parent, plan, split, timer) -> tuple[dict[str, float], dict]:
    """Activation scales by tensor (the plan's, plus every activation when a cache is written)."""
    from rtdeploy.precision.calibrators import get_calibrator
    from rtdeploy.precision.int8 import trt_cache
    from rtdeploy.precision.int8.qdq import scale_from_amax
    from rtdeploy.precision.calibrators import calibration_inputs

    if cfg.from_trt_cache is not None:
        cache = trt_cache.read_cache(cfg.from_trt_cache)
        scales = trt_cache.scales_for(cache, plan.observed(), f"calibration cache {cfg.from_trt_cache}")
        timer.lap("read_cache")
        return scales, {"source": "trt-cache", "trt_cache": str(Path(cfg.from_trt_cache).resolve())}
    tensors = plan.observed()
    if cfg.trt_cache is not None:
        from rtdeploy.precision.fp16 import float_tensors

        tensors = list(dict.fromkeys(tensors + float_tensors(parent.model)))
    calibrator = get_calibrator(cfg.method)
    stats, cache_state = gather_stats(parent, tensors, split, calibrator, cfg.stats_cache, cfg.progress)
    timer.lap("collect")
    thresholds = calibrator.thresholds(stats, calibration_inputs(cfg, parent, plan, split))
    timer.lap("thresholds")
    scales = {t: scale_from_amax(a) for t, a in thresholds.items()}
    calibration = split.record(cfg.seed, cache_state)
    return scales, calibration


def _fallback(cfg, parent, plan, scales, split, rounding=None):
    from rtdeploy.precision.int8.collect import batch_size_for
    from rtdeploy.precision.int8.sensitivity import SwitchableEvaluator, choose_fallback

    images = split.holdout_images()
    phase("INT8: ranking %d layers by sensitivity on %d held-out calibration images", len(plan.units), len(images))
    batch = max(1, batch_size_for(parent.model, plan.observed(), sample_shape=parent.sample_shape) // 2)
    evaluator = SwitchableEvaluator(parent.model, plan, {t: scales[t] for t in plan.observed()}, images, batch_size=batch,
                                    weights=rounding.weights if rounding is not None else None)
    result = choose_fallback(evaluator, keep_fp=cfg.keep_fp, target_agreement=cfg.target_agreement)
    return result.kept, result


def _write(cfg, parent, plan, scales, kept, sens, calibration, out: Path, timer, rounding=None,
           calib_fingerprint: str | None = None, ranges=None, weights: tuple[str, str] = ("nearest", "asked for")):
    import onnx

    from rtdeploy.manifests import new_manifest
    from rtdeploy.precision.int8 import trt_cache
    from rtdeploy.precision.reuse_record import quantize_derivation
    from rtdeploy.precision.int8.qdq import insert_qdq, qdq_counts
    from rtdeploy.precision.artifact import QuantizeResult, base_fields, op_inventory, write_model

    observed = {t: scales[t] for t in plan.observed()}
    qmodel = insert_qdq(parent.model, plan, observed, keep=set(kept), weights=rounding.weights if rounding is not None else None)
    high_precision = None
    if ranges is not None:
        from rtdeploy.precision.fp16_float_parts import to_fp16_float_parts

        qmodel, high_precision = to_fp16_float_parts(qmodel, ranges)
    try:
        onnx.checker.check_model(qmodel)
    except onnx.checker.ValidationError as e:
        raise PrecisionError(f"the Q/DQ model failed onnx.checker ({first_line(e, 160)}); this is a bug — please report it") from e
    timer.lap("write")
    by_node = {u.node: u for u in plan.units}
    quantization = {
        "target": "tensorrt",
        "high_precision": cfg.high_precision,
        "method": None if cfg.from_trt_cache else cfg.method,
        "percentile": cfg.percentile if cfg.method == "percentile" and not cfg.from_trt_cache else None,
        "weights": "int8 symmetric, per output channel (max)",
        "activations": "int8 symmetric, per tensor",
        "placement": "tensorrt: inputs of Conv/Gemm/MatMul and the shortcut input of residual Adds",
        "layers": len(plan.units),
        "quantized_layers": len(plan.units) - len(kept),
        "kept_fp": [{"node": n, "op_type": by_node[n].op_type} for n in kept],
        "left_in_float": _left_in_float(parent.model, plan),
        "qdq_nodes": qdq_counts(qmodel),
        "scales": observed,
    }
    from rtdeploy.precision.int8.weight_rounding import rounding_fields
    from rtdeploy.precision.calibrators import calibrator_settings

    quantization.update(rounding_fields(rounding, *weights, auto=cfg.weights == "auto"))
    quantization.update(calibrator_settings(cfg))
    if sens is not None:
        quantization["fallback"] = {
            "keep_fp": cfg.keep_fp, "target_agreement": cfg.target_agreement,
            "held_out_images": sens.images,
            "held_out_agreement": round(sens.agreement, 6), "held_out_kl": sens.kl,
            "trace": [{"kept": k, "agreement": round(a, 6), "kl": kl} for k, a, kl in sens.trace],
            "sensitivity": [{"node": s.node, "op_type": s.op_type, "kl": s.kl} for s in sens.ranking],
        }
    if high_precision is not None:
        quantization["high_precision_fp16"] = high_precision
    quantization["seconds"] = dict(timer.seconds)

    def make_manifest(tmp: Path) -> dict:
        return new_manifest("onnx-int8", tmp, precision="int8", **base_fields(parent), calibration=calibration,
                            quantization=quantization, ops=op_inventory(qmodel),
                            derivation=quantize_derivation(cfg, parent.sha256, calib_fingerprint))

    manifest = write_model(qmodel, out, make_manifest)
    report = _report(quantization, calibration, out)
    if cfg.trt_cache is not None:
        trt_cache.write_cache(cfg.trt_cache, scales, cfg.trt_version)
        report["trt_cache"] = str(cfg.trt_cache)
    log.info("wrote %s (%d of %d layers int8)", out, quantization["quantized_layers"], quantization["layers"])
    return QuantizeResult(out, manifest, report)


def _left_in_float(model, plan) -> list[dict]:
    from rtdeploy.precision.int8.coverage import left_in_float

    return left_in_float(model, plan)


def _report(q: dict, calibration: dict, out: Path) -> dict:
    report = {
        "output": str(out),
        "precision": "int8",
        "target": q["target"],
        "high_precision": q["high_precision"],
        "method": q["method"],
        "weight_rounding": q.get("weight_rounding"),
        "images": calibration.get("images"),
        "held_out": calibration.get("held_out"),
        "stats_cache": calibration.get("stats_cache"),
        "layers": q["layers"],
        "quantized_layers": q["quantized_layers"],
        "kept_fp": [k["node"] for k in q["kept_fp"]],
        "left_in_float": q["left_in_float"],
        "qdq_nodes": q["qdq_nodes"],
        "seconds": q["seconds"],
    }
    if "fallback" in q:
        report["held_out_agreement"] = q["fallback"]["held_out_agreement"]
        report["held_out"] = q["fallback"]["held_out_images"]
    return report
