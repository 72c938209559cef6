"""``rtdeploy run``'s options, each declared once: here, and in the groups of the model
(:mod:`rtdeploy.models.options`) and of the calibration (:mod:`rtdeploy.precision.options`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rtdeploy.errors import RtDeployError, opt
from rtdeploy.models.options import Checkpoint, ModelChoice
from rtdeploy.options import FLAG, NEGATIVE, READS, JsonReport, Options, Progress, When, option
from rtdeploy.precision.options import Calibration

PRECISIONS = ("fp32", "fp16", "int8")

# Stage families, in order; forcing one redoes it and every family after it that depends on it.
STAGES = ("export", "quantize", "validate", "build-engine", "bench")

_DEPENDENTS = {"export": STAGES, "quantize": ("quantize", "validate", "build-engine", "bench"),
               "validate": ("validate",), "build-engine": ("build-engine", "bench"), "bench": ("bench",)}

def _precisions(value) -> tuple[str, ...]:
    from rtdeploy.checks import comma_list

    items = comma_list(value, opt("precision"), example="fp16,int8") if isinstance(value, str) else list(value)
    if not items:
        raise RtDeployError(f"{opt('precision')} is empty; give a comma-separated subset of {','.join(PRECISIONS)}")
    bad = [p for p in items if p not in PRECISIONS]
    if bad:
        raise RtDeployError(f"{opt('precision')} {bad[0]!r} is not accepted; give a comma-separated subset of {','.join(PRECISIONS)}")
    return tuple(items)


def _stages(value) -> tuple[str, ...]:
    """``--force``: True or ``all`` (every stage), a stage family or a comma list of them."""
    from rtdeploy.checks import comma_list

    if value is True:
        return ("all",)
    if not value:
        return ()
    items = comma_list(value, opt("force"), example="quantize,bench") if isinstance(value, str) else list(value)
    unknown = [f for f in items if f not in (*STAGES, "all")]
    if unknown:
        raise RtDeployError(f"{opt('force')} {unknown[0]!r} is not a stage; give one of {', '.join(STAGES)}, or {opt('force')} alone for all")
    return tuple(items)


def _duration(value) -> str:
    from rtdeploy.bench.options import parse_duration

    parse_duration(value, opt("bench_duration"))
    return value


def _bench_batch(value) -> str:
    from rtdeploy.bench.options import parse_positive_ints

    parse_positive_ints(value, opt("bench_batch"))
    return value


def _count(name: str):
    def parse(value):
        from rtdeploy.checks import whole

        return whole(value, opt(name), minimum=1)

    return parse


BENCH = When("bench", True, message="{given} does nothing with {decider}: no benchmark runs; drop one of them")


@dataclass(frozen=True, kw_only=True)
class RunConfig(JsonReport, Progress, Calibration, Checkpoint, ModelChoice, Options):
    """``rtdeploy run``'s options, each declared once: here, and in the groups of the model
    (:class:`~rtdeploy.models.options.ModelChoice`, :class:`~rtdeploy.models.options.Checkpoint`)
    and of the calibration (:class:`~rtdeploy.precision.options.Calibration`).

    ``force`` names the stage families to redo with everything that depends on them (``all``:
    every stage); ``rebench`` is ``force=("bench",)``. ``onnx`` takes an ONNX with a manifest
    (from ``rtdeploy export`` or ``rtdeploy import``) in place of the export stage.
    """

    onnx: Path | None = option(None, "--onnx", type=Path, path=READS, changes_output=False,
                               help="Run on this ONNX (made by `rtdeploy export` or `rtdeploy import`) instead of exporting --model.")
    images: Path | None = option(None, "--images", type=Path, path=READS, changes_output=False,
                                 help="Images to validate on (class subfolders give accuracy) [default: a quarter of the calibration images, held out from calibration].")
    samples: int | None = option(None, "--samples", type=int, parse=_count("samples"), help="Validation samples per input set.")
    precision: tuple[str, ...] = option(PRECISIONS, "--precision", parse=_precisions, cli_default="fp32,fp16,int8",
                                        help="Precisions to produce, comma-separated.")
    engines: bool = option(True, "--no-engines", kind=NEGATIVE, help="Do not build TensorRT engines even where TensorRT is present.")
    bench: bool = option(True, "--no-bench", kind=NEGATIVE, help="Skip the benchmark stage.")
    bench_duration: str = option("1s", "--bench-duration", parse=_duration, applies=(BENCH,), help="Timed window per benchmark repeat.")
    bench_batch: str = option("1", "--bench-batch", parse=_bench_batch, applies=(BENCH,), help="Benchmark batch sizes, e.g. 1,8.")
    outdir: Path | None = option(None, "-o", "--outdir", type=Path, changes_output=False,
                                 help="Report folder [default: rtdeploy-out/<model>].")
    force: tuple[str, ...] = option((), "--force", metavar="[STAGE]", parse=_stages, flag_value="all", show_default=False,
                                    help="Redo STAGE (export, quantize, validate, build-engine, bench; comma list) and what depends on it; "
                                         "--force alone redoes every stage.")
    rebench: bool = option(False, "--rebench", kind=FLAG, applies=(BENCH,),
                           help="Re-time the benchmark; reuse every other stage whose inputs are unchanged.")

    def forced(self) -> frozenset[str]:
        """The stage families to redo."""
        wanted = set(self.force) | ({"bench"} if self.rebench else set())
        if "all" in wanted:
            return frozenset(STAGES)
        return frozenset(s for f in wanted for s in _DEPENDENTS[f])

    @property
    def name(self) -> str:
        """The model's name: the registry name, or the given ONNX's base stem."""
        from rtdeploy.lineage import base_stem

        return base_stem(self.onnx) if self.onnx is not None else self.model_name

    @property
    def calibrates(self) -> bool:
        """True when a precision other than FP32 is made (it reads the calibration images)."""
        return any(p != "fp32" for p in self.precision)

    quantizes = calibrates

    @property
    def makes_int8(self) -> bool:
        """True when an INT8 model is made (the options that choose INT8 scales apply)."""
        return "int8" in self.precision

    def explain(self, name: str) -> str:
        return f"with {opt('precision')} {','.join(self.precision)}"

    def rules(self) -> None:
        """Every option rule the mode rule does not cover, before any work.

        Raises:
            RtDeployError: the first broken rule, naming the option and what is accepted.
        """
        idle = {"bench": (self.bench, "bench"), "build-engine": (self.engines, "engines")}
        for stage in self.force:
            if stage in idle and not idle[stage][0]:
                raise RtDeployError(f"{opt('force')} {stage} does nothing with {opt(idle[stage][1])}: that stage does not run; "
                                    "drop one of them")
        self.calibration_rules()

    def check_inputs(self) -> None:
        """The given ONNX (or the model's metadata), checkpoint, images and calibration data, checked
        before the first stage runs."""
        if self.onnx is not None:
            from rtdeploy.pipeline.given_onnx import check_given_onnx

            check_given_onnx(self)
        else:
            self.meta()  # a metadata option the model does not take (a variant of a CIFAR ResNet)
        _check_input_paths(self)

    def writes(self) -> list[tuple[str, Path]]:
        """The report files of the run folder (the artifacts in it are named by the stages)."""
        outdir = self.outdir or default_outdir(self.name)
        return [("outdir", outdir / name) for name in ("report.md", "report.json", "stages.json", "bench.json", "bench.md", "bench.png")]


def default_outdir(name: str | int) -> Path:
    """``rtdeploy-out/<name>`` (a depth gives ``resnet<depth>``)."""
    return Path("rtdeploy-out") / (f"resnet{name}" if isinstance(name, int) else name)


def _check_input_paths(cfg: RunConfig) -> None:
    """The files the stages read, present before the first stage runs (a missing --images failed
    validation only after the export and the quantization had run)."""
    if cfg.weights is not None and not Path(cfg.weights).is_file():
        raise RtDeployError(f"{opt('weights')} {cfg.weights} is not a file; give the path of a .pth/.pt/.th checkpoint")
    for flag, path in ((opt("images"), cfg.images), (opt("calib_dir"), cfg.calib_dir)):
        if path is not None and not Path(path).exists():
            raise RtDeployError(f"{flag} {path} does not exist; give a folder of images or a .npy/.npz tensor file")
