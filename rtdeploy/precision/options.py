"""The calibration options: one group, taken by ``quantize``, ``run`` and ``build-engine``.

Declared once here (:mod:`rtdeploy.options`), so the three commands offer the same flags, help,
choices (every registered calibrator for ``--method``) and defaults, and each passes the group on to
the quantize stage whole (:func:`calibration_of`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rtdeploy.errors import PrecisionError, opt
from rtdeploy.options import NEGATIVE, READS, When, option


def _method_help() -> str:
    """INT8 activation calibrator: any registered one (rtdeploy.precision.calibrators.list_calibrators())."""
    from rtdeploy.precision.calibrators import describe

    return f"INT8 activation calibrator ({describe()})."


def _methods() -> tuple[str, ...]:
    from rtdeploy.precision.calibrators import list_calibrators

    return list_calibrators()


def _method(value):
    from rtdeploy.precision.calibrators import parse_method

    return parse_method(value)


def _percentile(value):
    from rtdeploy.precision.int8.calibrators import check_percentile

    return check_percentile(value)


def _seed(value):
    from rtdeploy.checks import seed

    return seed(value, opt("seed"), PrecisionError)


def _calib_size(value):
    from rtdeploy.checks import whole

    return whole(value, opt("calib_size"), PrecisionError, minimum=1)


def _keep_fp(value):
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        from rtdeploy.checks import is_ascii_int

        if isinstance(value, str) and is_ascii_int(value) and int(value) >= 0:
            return int(value)
        raise PrecisionError(f"{opt('keep_fp')} {value!r} must be a whole number >= 0")
    return value


def _fraction(value):
    from rtdeploy.checks import fraction

    return fraction(value, opt("target_agreement"), PrecisionError, allow_zero=False)


# The modes the INT8 options apply in: an INT8 quantize (not --fp16), the TensorRT placement (not
# --target onnxruntime-cpu), and in `run` a precision list with int8.
INT8 = When("int8", True, message="{option} apply to {mode} only")
INT8_IN_RUN = When("makes_int8", True, says="INT8",
                   message="{option} applies to {mode} only, and {decider} has no int8; add int8 or drop {option}")
TENSORRT = When("target", "tensorrt", message="{option} apply to {mode} only; drop them or use " + opt("target") + " tensorrt")
# In `quantize`: scales taken from a TensorRT cache are not calibrated.
FROM_IMAGES = When("from_trt_cache", lambda v: v is None,
                   message="{given} does nothing with {decider}: the scales come from the cache; drop {option}")
# In `build-engine`: the source ONNX is calibrated to INT8 here (not given as Q/DQ, not TensorRT's implicit calibration).
INT8_IN_BUILD = When("calibrates_int8", True, message="{given} does nothing {decider}: rtdeploy calibrates no INT8 model "
                     "for this engine; drop {option}")
CALIBRATES = When("calibrates", True, message="{given} does nothing {decider}: no calibration image is read; drop {option}")
# rtdeploy's own calibration (a seeded subset of the images), not TensorRT's implicit one.
SAMPLES = When("quantizes", True, message="{given} does nothing {decider}: rtdeploy calibrates nothing; drop {option}")


@dataclass(frozen=True, kw_only=True)
class Calibration:
    """Where the calibration images come from, and how INT8 scales are chosen from them."""

    calib_dir: Path | None = option(
        None, "--calib-dir", type=Path, path=READS, changes_output=False, applies=(CALIBRATES,),
        help="Calibration images (folder, recursive) or .npy/.npz [default: the photos bundled with rtdeploy].")
    calib_size: int | None = option(None, "--calib-size", type=int, parse=_calib_size, applies=(SAMPLES,),
                                    help="Number of calibration images (seeded random subset) [default: all, up to 1000].")
    method: str = option("mse", "--method", choices=_methods, parse=_method, help=_method_help,
                         applies=(When("int8", True, message="{given} applies to {mode} only; drop it for " + opt("fp16")),
                                  INT8_IN_RUN, INT8_IN_BUILD, FROM_IMAGES))
    percentile: float = option(99.99, "--percentile", type=float, parse=_percentile,
                               help="Percentile for --method percentile, in (0, 100].",
                               applies=(When("method", "percentile", message="{given} applies to {mode} only (the method is {decider}); "
                                             "add " + opt("method") + " percentile or drop {option}"),
                                        FROM_IMAGES, INT8, INT8_IN_RUN, INT8_IN_BUILD))
    seed: int = option(0, "--seed", type=int, parse=_seed, applies=(SAMPLES,), help="Seed of the calibration subset and of the held-out split.")
    keep_fp: int = option(0, "--keep-fp", type=int, parse=_keep_fp, applies=(INT8, TENSORRT, INT8_IN_RUN, INT8_IN_BUILD),
                          help="INT8: keep the N most quantization-sensitive layers in floating point.")
    target_agreement: float | None = option(
        None, "--target-agreement", type=float, parse=_fraction, applies=(INT8, TENSORRT, INT8_IN_RUN, INT8_IN_BUILD),
        help="INT8: keep layers in FP until held-out top-1 agreement with FP32 reaches this fraction (e.g. 0.99).")
    stats_cache: Path | bool = option(True, "--no-stats-cache", kind=NEGATIVE, changes_output=False,
                                      help="Do not read or write the collected-statistics cache (~/.cache/rtdeploy).")

    def calibration_rules(self) -> None:
        """The rule between two calibration options."""
        if self.keep_fp and self.target_agreement is not None:
            raise PrecisionError(f"give {opt('keep_fp')} N or {opt('target_agreement')} A, not both")


def calibration_of(cfg, *, int8: bool = True, tensorrt: bool = True) -> dict:
    """``cfg``'s calibration options by field, for a quantize config: all of them for an INT8
    model placed for TensorRT; for FP16 not those that apply to INT8 only, for the onnxruntime-cpu
    form not those that apply to the TensorRT placement only (by their declared modes)."""
    from rtdeploy.options import declared

    def applies(o) -> bool:
        deciders = {w.field for w in o.applies}
        return (int8 or "int8" not in deciders) and (tensorrt or "target" not in deciders)

    return {f.name: getattr(cfg, f.name) for f, o in declared(Calibration) if applies(o)}
