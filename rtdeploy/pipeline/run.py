"""``rtdeploy run``: export -> validate -> FP16 -> INT8 -> validate each -> engines -> bench -> report.

Artifacts (the ONNX, its FP16/INT8 models, engines) are made or reused through
:mod:`rtdeploy.derive`, under its one reuse rule: the parent's sha256, the stage's options and the
content of every input it read must all match what the artifact's manifest records. The two stages
that write reports rather than artifacts (validate, bench) keep the same record — derivation plus
the report's sha256 — in the folder's ``stages.json``, and are judged by the same rule. The run
folder is locked for the whole run. A stage that cannot run here (TensorRT on a CPU machine) is
recorded as skipped with the reason, and the run goes on with the rest.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rtdeploy.artifacts import check_output_path, derivation, derived_path, folder_lock, reuse_verdict, sha256_file
from rtdeploy.artifacts import write_json_atomic
from rtdeploy.errors import MissingDependency, OutputError, RtDeployError, opt

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "fp16", "int8")
VALIDATE_BATCH = 32  # each model runs once over the validation inputs, in batches of this size
# Stage families, in order; forcing one redoes it and every family after it that depends on it.
STAGES = ("export", "quantize", "validate", "build-engine", "bench")
_DEPENDENTS = {"export": STAGES, "quantize": ("quantize", "validate", "build-engine", "bench"),
               "validate": ("validate",), "build-engine": ("build-engine", "bench"), "bench": ("bench",)}


@dataclass(frozen=True)
class RunConfig:
    """Options of ``rtdeploy run`` (see its --help).

    ``force`` names the stage families to redo with everything that depends on them (``all``:
    every stage); ``rebench`` is ``force=("bench",)``. ``model`` names the registry model to export
    (``depth`` is its alias); ``onnx`` takes an ONNX with a manifest (from ``rtdeploy export`` or
    ``rtdeploy import``) in place of the export stage.
    """

    depth: int = 50
    model: str | None = None
    onnx: Path | None = None
    weights: Path | None = None
    num_classes: int | None = None
    calib_dir: Path | None = None
    calib_size: int | None = None
    method: str = "entropy"
    keep_fp: int = 0
    images: Path | None = None
    samples: int | None = None
    outdir: Path | None = None
    precisions: tuple[str, ...] = PRECISIONS
    engines: bool = True
    bench: bool = True
    bench_duration: str = "1s"
    bench_batch: str = "1"
    force: tuple[str, ...] = ()
    rebench: bool = False
    progress: bool = False

    def forced(self) -> frozenset[str]:
        """The stage families to redo."""
        wanted = set(self.force) | ({"bench"} if self.rebench else set())
        if "all" in wanted:
            return frozenset(STAGES)
        return frozenset(s for f in wanted for s in _DEPENDENTS[f])

    @property
    def name(self) -> str:
        """The model's name: the registry name, or the given ONNX's base stem."""
        from rtdeploy.artifacts import base_stem
        from rtdeploy.models.specs import model_name

        return base_stem(self.onnx) if self.onnx is not None else model_name(self.model, self.depth)

    def check(self) -> None:
        """Every option rule, before any work.

        Raises:
            RtDeployError: the first broken rule, naming the option and what is accepted.
        """
        from rtdeploy.models.specs import get_spec

        if self.onnx is not None and self.model is not None:
            raise RtDeployError(f"give --model {self.model} or --onnx {self.onnx}, not both")
        if self.onnx is not None:
            from rtdeploy.pipeline.given_onnx import check_given_onnx

            check_given_onnx(self)
        else:
            get_spec(self.model if self.model is not None else self.depth)
        if not self.precisions:
            raise RtDeployError(f"{opt('precisions')} is empty; give a comma-separated subset of {','.join(PRECISIONS)}")
        bad = [p for p in self.precisions if p not in PRECISIONS]
        if bad:
            raise RtDeployError(f"{opt('precisions')} {bad[0]!r} is not accepted; give a comma-separated subset of {','.join(PRECISIONS)}")
        unknown = [f for f in self.force if f not in (*STAGES, "all")]
        if unknown:
            raise RtDeployError(f"{opt('force')} {unknown[0]!r} is not a stage; give one of {', '.join(STAGES)}, or {opt('force')} alone for all")
        _check_numbers(self)


@dataclass
class StageRecord:
    """What happened to one stage: ``made``, ``reused`` (with why), ``skipped`` (with the reason) or ``failed``."""

    name: str
    status: str
    seconds: float = 0.0
    detail: str = ""
    result: Any = None


@dataclass
class RunReport:
    """The run's stages, in order, and where its report lies."""

    outdir: Path
    stages: list[StageRecord] = field(default_factory=list)
    report_md: Path | None = None
    report_json: Path | None = None

    @property
    def failed(self) -> list[StageRecord]:
        """Stages that failed (validation out of tolerance included)."""
        return [s for s in self.stages if s.status == "failed"]

    def to_dict(self) -> dict:
        """A JSON-ready dict."""
        return {"outdir": str(self.outdir), "stages": [s.__dict__ for s in self.stages]}


def run_pipeline(cfg: RunConfig, *, on_stage: Callable[[StageRecord], None] | None = None) -> RunReport:
    """Run the whole pipeline into ``cfg.outdir`` and write its report.

    Args:
        cfg: the options.
        on_stage: called after each stage (the CLI prints a line per stage).

    Returns:
        The :class:`RunReport`; check ``report.failed``.

    Raises:
        RtDeployError: a bad option (before any work); OutputError: the folder is not usable or
            another rtdeploy is writing into it.
    """
    from rtdeploy.pipeline.report import write_report

    cfg.check()
    outdir = _prepare_outdir(cfg)
    with folder_lock(outdir, what="run folder"):
        pipe = _Pipeline(cfg, outdir, on_stage)
        pipe.run_all()
        pipe.report.report_md, pipe.report.report_json = write_report(pipe.report, cfg)
    return pipe.report


def default_outdir(name: str | int) -> Path:
    """``rtdeploy-out/<name>`` (a depth gives ``resnet<depth>``)."""
    return Path("rtdeploy-out") / (f"resnet{name}" if isinstance(name, int) else name)


def _check_numbers(cfg: RunConfig) -> None:
    """The options the stages would refuse only minutes in (or silently ignore), refused first."""
    from rtdeploy.bench.options import parse_duration, parse_positive_ints
    from rtdeploy.checks import whole

    parse_duration(cfg.bench_duration, opt("bench_duration"))
    parse_positive_ints(cfg.bench_batch, opt("bench_batch"))
    whole(cfg.keep_fp, opt("keep_fp"), minimum=0)
    if cfg.keep_fp and "int8" not in cfg.precisions:
        raise RtDeployError(f"{opt('keep_fp')} applies to INT8 only, and {opt('precisions')} {','.join(cfg.precisions)} has no int8; "
                            f"add int8 or drop {opt('keep_fp')}")
    for option, value in ((opt("calib_size"), cfg.calib_size), (opt("samples"), cfg.samples), (opt("num_classes"), cfg.num_classes)):
        if value is not None:
            whole(value, option, minimum=1)
    _check_input_paths(cfg)


def _check_input_paths(cfg: RunConfig) -> None:
    """The files the stages read, present before the first stage runs (a missing --images failed
    validation only after the export and the quantization had run)."""
    if cfg.weights is not None and not Path(cfg.weights).is_file():
        raise RtDeployError(f"{opt('weights')} {cfg.weights} is not a file; give the path of a .pth/.pt/.th checkpoint")
    for option, path in ((opt("images"), cfg.images), (opt("calib_dir"), cfg.calib_dir)):
        if path is not None and not Path(path).exists():
            raise RtDeployError(f"{option} {path} does not exist; give a folder of images or a .npy/.npz tensor file")


def _prepare_outdir(cfg: RunConfig) -> Path:
    outdir = cfg.outdir or default_outdir(cfg.name)
    existing = next(p for p in (outdir, *outdir.parents) if p.exists())
    if not existing.is_dir():
        raise OutputError(f"--outdir {outdir}: {existing} is a file; give a folder path")
    check_output_path(existing / "report.md")  # writable?
    outdir.mkdir(parents=True, exist_ok=True)
    return outdir


class _Records:
    """The reuse records of the run folder's report stages (validate, bench): ``stages.json``."""

    def __init__(self, folder: Path):
        self.path = folder / "stages.json"
        self.entries: dict[str, dict] = {}
        if self.path.exists():
            try:
                data = json.loads(self.path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, json.JSONDecodeError):
                data = None
            if isinstance(data, dict) and all(isinstance(v, dict) for v in data.values()):
                self.entries = data
            else:
                log.warning("ignoring %s: not a record this rtdeploy wrote; its stages will run again", self.path)

    def get(self, output: Path) -> dict | None:
        return self.entries.get(output.name)

    def put(self, output: Path, wanted: dict, result: Any) -> None:
        self.entries[output.name] = {**wanted, "output_sha256": sha256_file(output), "result": result}
        write_json_atomic(self.path, self.entries)


class _Pipeline:
    def __init__(self, cfg: RunConfig, outdir: Path, on_stage):
        self.cfg, self.outdir, self.on_stage = cfg, outdir, on_stage
        self.forced = cfg.forced()
        self.records = _Records(outdir)
        self.report = RunReport(outdir)
        self.models: dict[str, Path] = {}
        self.engines: dict[str, Path] = {}
        from rtdeploy.validate import OutputStore

        self.outputs = OutputStore()  # each model's outputs on the validation inputs, computed once per run

    def run_all(self) -> None:
        c = self.cfg
        if self._stage("export", "export", self._export):
            self._check_keep_fp()
            for prec in [*c.precisions, *self._cpu_form()]:
                if prec != "fp32":
                    self._stage(f"quantize-{prec}", "quantize", lambda force, p=prec: self._quantize(p, force))
                if prec in self.models:
                    self._stage(f"validate-{prec}", "validate", lambda force, p=prec: self._validate(p, force))
        if c.engines and self.models:
            self._engines()
        if c.bench and self.models:
            self._stage("bench", "bench", self._bench)

    def _stage(self, name: str, family: str, fn: Callable[[bool], StageRecord]) -> bool:
        """Run one stage (``fn(force)`` returns its record); True when its outputs are usable."""
        start = time.perf_counter()
        try:
            rec = fn(family in self.forced)
        except MissingDependency as e:
            rec = StageRecord(name, "skipped", detail=str(e))
        except RtDeployError as e:
            rec = StageRecord(name, "failed", detail=str(e))
        rec.name, rec.seconds = name, round(time.perf_counter() - start, 2)
        self._emit(rec)
        return rec.status in ("made", "reused")

    def _emit(self, rec: StageRecord) -> None:
        self.report.stages.append(rec)
        if self.on_stage:
            self.on_stage(rec)

    # --- artifacts, through rtdeploy.derive ---------------------------------------------------
    def _export(self, force: bool) -> StageRecord:
        from rtdeploy.derive import exported
        from rtdeploy.export import ExportConfig

        c = self.cfg
        if c.onnx is not None:
            from rtdeploy.pipeline.given_onnx import adopt_given_onnx

            d = adopt_given_onnx(c.onnx, self.outdir, force=force)
            self.models["fp32"] = d.path
            return _artifact_record(d, f"{d.path.name} (from {c.onnx})")
        out = self.outdir / f"{c.name}.onnx"
        d = exported(ExportConfig(depth=c.depth, model=c.model, output=out, weights=c.weights, num_classes=c.num_classes,
                                  progress=c.progress), force=force)
        self.models["fp32"] = d.path
        weights = "trained weights" if c.weights else "no weights given: seed-0 initialisation"
        return _artifact_record(d, f"{out.name} ({weights})")

    def _check_keep_fp(self) -> None:
        """``keep_fp`` against the exported model's quantizable layers: the first moment they are known,
        so no FP16, INT8 or benchmark work is done for an option that cannot be met."""
        from rtdeploy.precision.int8.sensitivity import check_keep_fp, quantizable_layers

        if self.cfg.keep_fp and "int8" in self.cfg.precisions:
            fp32 = self.models["fp32"]
            check_keep_fp(self.cfg.keep_fp, quantizable_layers(fp32), fp32.name)

    def _cpu_form(self) -> list[str]:
        """``int8-cpu`` when INT8 is asked and TensorRT cannot run here: the INT8 form onnxruntime's CPU
        kernels fuse, made and timed beside the TensorRT-placed one, so a CPU user sees both."""
        from rtdeploy.trt.loader import availability

        return ["int8-cpu"] if "int8" in self.cfg.precisions and not availability()["ok"] else []

    def _quantize(self, prec: str, force: bool) -> StageRecord:
        from rtdeploy.derive import quantized
        from rtdeploy.precision.quantize import QuantizeConfig

        c, fp32 = self.cfg, self.models["fp32"]
        kw = {"method": c.method, "calib_size": c.calib_size} if prec.startswith("int8") else {}
        if prec == "int8":
            kw["keep_fp"] = c.keep_fp
        if prec == "int8-cpu":
            kw["target"] = "onnxruntime-cpu"
        cfg = QuantizeConfig(model=fp32, int8=prec.startswith("int8"), fp16=prec == "fp16", calib_dir=c.calib_dir,
                             output=derived_path(fp32, prec), progress=c.progress, hold_out_validation=c.images is None, **kw)
        d = quantized(cfg, force=force)
        self.models[prec] = d.path
        return _artifact_record(d, d.path.name, _jsonable(getattr(d.result, "report", None)))

    def _engines(self) -> None:
        from rtdeploy.trt.loader import availability

        avail = availability()
        if not avail["ok"]:
            self._emit(StageRecord("build-engine", "skipped", detail=f"needs TensorRT and an NVIDIA GPU: {avail['hint']}"))
            return
        for prec, onnx_path in list(self.models.items()):
            self._stage(f"build-engine-{prec}", "build-engine", lambda force, p=prec, o=onnx_path: self._build(p, o, force))

    def _build(self, prec: str, onnx: Path, force: bool) -> StageRecord:
        from rtdeploy.derive import engine
        from rtdeploy.trt import BuildOptions

        d = engine(BuildOptions(onnx=onnx, precision=prec, progress=self.cfg.progress), force=force)
        self.engines[prec] = d.path
        return _artifact_record(d, d.path.name, {"layers": _jsonable(getattr(d.result, "layers", None))})

    # --- reports, under the same rule ---------------------------------------------------------
    def _report_stage(self, out: Path, wanted: dict, force: bool, make: Callable[[], tuple[str, str, Any]]) -> StageRecord:
        recorded = self.records.get(out)
        if force:
            ok, why = False, "forced"
        elif recorded is None:
            ok, why = False, "not made yet"
        else:
            ok, why = reuse_verdict(out, wanted, recorded)
        if ok:  # only a stage that succeeded is ever recorded, so a failure is never reused
            return StageRecord("", "reused", detail=f"reused: {why}", result=recorded.get("result"))
        status, detail, result = make()
        if status == "made":
            self.records.put(out, wanted, result)
        return StageRecord("", status, detail=detail, result=result)

    def _validation_images(self) -> tuple[Path, bool]:
        """What the validations compare on: ``--images``, or else the calibration folder, of which
        only the part held out from calibration is used (``held_out`` True)."""
        if self.cfg.images is not None:
            return self.cfg.images, False
        from rtdeploy.precision.calibration_data import default_calib_dir

        return (self.cfg.calib_dir if self.cfg.calib_dir is not None else default_calib_dir()), True

    def _validate(self, prec: str, force: bool) -> StageRecord:
        from rtdeploy.validate import ValidateConfig, validate_model

        c, model = self.cfg, self.models[prec]
        out = self.outdir / f"validate-{prec}.json"
        images, held_out = self._validation_images()
        vcfg = ValidateConfig(model=model, images=images, held_out=held_out, samples=c.samples, batch=VALIDATE_BATCH,
                              progress=c.progress)
        wanted = derivation("validate", {"samples": c.samples, "held_out": held_out},
                            {"parent": sha256_file(model), **self._images_fingerprint(model, images, held_out)})

        def make():
            rep = validate_model(vcfg, store=self.outputs)
            data = rep.to_dict()
            write_json_atomic(out, data)
            if not rep.passed:
                return "failed", rep.failure_message(), data
            kind = f"{rep.precision} ({rep.target})" if rep.target else rep.precision
            return "made", f"within {kind} tolerance against {rep.reference} {_judged_on(rep)}", data

        return self._report_stage(out, wanted, force, make)

    def _images_fingerprint(self, model: Path, images: Path, held_out: bool) -> dict[str, str]:
        from rtdeploy.data import open_source
        from rtdeploy.data.split import split_part
        from rtdeploy.manifests import read_onnx
        from rtdeploy.models import ModelMeta

        meta = ModelMeta.from_dict(read_onnx(model).model.to_dict())
        source = open_source(images, meta)
        if held_out:
            source, _ = split_part(source, "validation")
        return {"images": source.fingerprint()}

    def _bench(self, force: bool) -> StageRecord:
        from rtdeploy.bench import benchmark

        c = self.cfg
        timed = [*self.models.values(), *self.engines.values()]
        out = self.outdir / "bench.json"
        wanted = derivation("bench", {"duration": c.bench_duration, "batch": c.bench_batch},
                            {p.name: sha256_file(p) for p in timed})

        def make():
            res = benchmark(model=",".join(str(p) for p in timed), backend="onnxruntime", batch=c.bench_batch,
                            duration=c.bench_duration, json=out, markdown=self.outdir / "bench.md",
                            plot=self.outdir / "bench.png", progress=c.progress)
            return "made", f"{len(timed)} models timed", {"written": [str(p) for p in res.written],
                                                           "measured": _measured(res.report)}

        rec = self._report_stage(out, wanted, force, make)
        if rec.status == "reused":
            rec.detail += f"; numbers measured {(rec.result or {}).get('measured', 'earlier')} — --rebench to re-time"
        return rec


def _judged_on(rep) -> str:
    """Which inputs the verdict rests on, for the stage line."""
    if rep.inputs_note:
        return rep.inputs_note
    real = [s for s in rep.sets if s.name != "random"]
    if not real:
        return f"on random inputs ({rep.sets[0].samples:,})"
    what = "held-out calibration images" if real[0].name == "held-out" else "images"
    return f"on {real[0].samples:,} {what}" + (" and random inputs" if len(rep.sets) > 1 else "")


def _artifact_record(d, detail: str, result: Any = None) -> StageRecord:
    if d.made:
        why = "" if d.why in ("not made yet", "forced") else f" (not reused: {d.why})"
        return StageRecord("", "made", detail=detail + why, result=result)
    return StageRecord("", "reused", detail=f"{d.path.name} reused: {d.why}")


def _measured(report: dict) -> str:
    when = (report.get("measured") or {}).get("start") or report.get("created", "?")
    load = (report.get("environment") or {}).get("load_average_start")
    return when + (f" under load average {load[0]:.2f}" if load else "")


def _jsonable(obj: Any) -> Any:
    if obj is None or isinstance(obj, (str, int, float, bool, list, dict)):
        return obj
    if hasattr(obj, "to_dict"):
        return obj.to_dict()
    return str(obj)
