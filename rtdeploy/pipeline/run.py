"""``rtdeploy run``: export -> validate -> FP16 -> INT8 -> validate each -> engines -> bench -> report.

Artifacts (the ONNX, its FP16/INT8 models, engines) are made or reused through
:mod:`rtdeploy.make_or_reuse`, under its one reuse rule: the parent's sha256, the stage's options and the
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

from rtdeploy.errors import MissingDependency, OutputError, RtDeployError
from rtdeploy.files import check_output_path, folder_lock, sha256_file, write_json_atomic
from rtdeploy.library_errors import stage_boundary
from rtdeploy.lineage import derivation, derived_path, reuse_verdict
from rtdeploy.pipeline.options import RunConfig, default_outdir

log = logging.getLogger(__name__)

VALIDATE_BATCH = 32  # each model runs once over the validation inputs, in batches of this size

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


@stage_boundary("run", RtDeployError)
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
            for prec in [*c.precision, *self._cpu_form()]:
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

    # --- artifacts, through rtdeploy.make_or_reuse ---------------------------------------------------
    def _export(self, force: bool) -> StageRecord:
        from rtdeploy.make_or_reuse import exported
        from rtdeploy.export import ExportConfig
        from rtdeploy.models.options import model_choice_of

        c = self.cfg
        if c.onnx is not None:
            from rtdeploy.pipeline.given_onnx import adopt_given_onnx

            d = adopt_given_onnx(c.onnx, self.outdir, force=force)
            self.models["fp32"] = d.path
            return _artifact_record(d, f"{d.path.name} (from {c.onnx})")
        out = self.outdir / f"{c.name}.onnx"
        d = exported(ExportConfig(**model_choice_of(c), output=out, weights=c.weights, progress=c.progress), force=force)
        self.models["fp32"] = d.path
        weights = "trained weights" if c.weights else "no weights given: seed-0 initialisation"
        return _artifact_record(d, f"{out.name} ({weights})")

    def _check_keep_fp(self) -> None:
        """``keep_fp`` against the exported model's quantizable layers: the first moment they are known,
        so no FP16, INT8 or benchmark work is done for an option that cannot be met."""
        from rtdeploy.precision.int8.sensitivity import check_keep_fp, quantizable_layers

        if self.cfg.keep_fp and "int8" in self.cfg.precision:
            fp32 = self.models["fp32"]
            check_keep_fp(self.cfg.keep_fp, quantizable_layers(fp32), fp32.name)

    def _cpu_form(self) -> list[str]:
        """``int8-cpu`` when INT8 is asked and TensorRT cannot run here: the INT8 form onnxruntime's CPU
        kernels fuse, made and timed beside the TensorRT-placed one, so a CPU user sees both (when the
        chosen calibrator can make that form; else that stage is skipped with the reason)."""
        from rtdeploy.precision.calibrators import get_calibrator
        from rtdeploy.trt.loader import availability

        if "int8" not in self.cfg.precision or availability()["ok"]:
            return []
        if "onnxruntime-cpu" not in get_calibrator(self.cfg.method).targets:
            self._emit(StageRecord("quantize-int8-cpu", "skipped",
                                   detail=f"--method {self.cfg.method} calibrates the TensorRT placement only"))
            return []
        return ["int8-cpu"]

    def _quantize(self, prec: str, force: bool) -> StageRecord:
        from rtdeploy.make_or_reuse import quantized
        from rtdeploy.precision.quantize import QuantizeConfig

        from rtdeploy.precision.options import calibration_of

        c, fp32 = self.cfg, self.models["fp32"]
        kw = calibration_of(c, int8=prec.startswith("int8"), tensorrt=prec != "int8-cpu")
        if prec == "int8-cpu":
            kw["target"] = "onnxruntime-cpu"
        cfg = QuantizeConfig(model=fp32, int8=prec.startswith("int8"), fp16=prec == "fp16", output=derived_path(fp32, prec),
                             progress=c.progress, hold_out_validation=c.images is None, **kw)
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
        from rtdeploy.make_or_reuse import engine
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

        source = open_source(images, read_onnx(model).model)
        if held_out:
            source, _ = split_part(source, "validation")
        return {"images": source.fingerprint()}

    def _bench(self, force: bool) -> StageRecord:
        from rtdeploy.bench import benchmark
        from rtdeploy.bench.options import BenchConfig

        c = self.cfg
        timed = [*self.models.values(), *self.engines.values()]
        out = self.outdir / "bench.json"
        wanted = derivation("bench", {"duration": c.bench_duration, "batch": c.bench_batch},
                            {p.name: sha256_file(p) for p in timed})

        def make():
            res = benchmark(BenchConfig(model=tuple(timed), batch=c.bench_batch, duration=c.bench_duration, json=str(out),
                                        markdown=self.outdir / "bench.md", plot=self.outdir / "bench.png", progress=c.progress))
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
