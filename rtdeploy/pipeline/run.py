"""``rtdeploy run``: export -> validate -> FP16 -> INT8 -> validate each -> engines -> bench -> report.

Every stage goes through :mod:`rtdeploy.api`, the same functions the single commands use. Stages
whose inputs are unchanged since the last run in the same folder are skipped (see
:mod:`rtdeploy.pipeline.stage_cache`); a stage that cannot run here (TensorRT on a CPU machine)
is recorded as skipped with the reason, and the run goes on with the rest.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rtdeploy.artifacts import check_output_path, write_json_atomic
from rtdeploy.errors import MissingDependency, OutputError, RtDeployError
from rtdeploy.pipeline.stage_cache import StageCache, stage_key

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "fp16", "int8")


@dataclass(frozen=True)
class RunConfig:
    """Options of ``rtdeploy run`` (see its --help)."""

    depth: int = 50
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
    force: bool = False
    progress: bool = False


@dataclass
class StageRecord:
    """What happened to one stage: ``ran``, ``reused``, ``skipped`` (with a reason) or ``failed``."""

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
    """
    from rtdeploy.models import family_of

    family_of(cfg.depth)
    bad = [p for p in cfg.precisions if p not in PRECISIONS]
    if bad:
        raise RtDeployError(f"--precision {bad[0]!r} is not accepted; give a comma-separated subset of {','.join(PRECISIONS)}")
    _check_numbers(cfg)
    outdir = _prepare_outdir(cfg)
    pipe = _Pipeline(cfg, outdir, StageCache(outdir, force=cfg.force), on_stage)
    pipe.run_all()
    from rtdeploy.pipeline.report import write_report

    pipe.report.report_md, pipe.report.report_json = write_report(pipe.report, cfg)
    return pipe.report


def _check_numbers(cfg: RunConfig) -> None:
    """The options the stages would refuse only minutes in (or silently ignore), refused first."""
    from rtdeploy.bench.options import parse_duration, parse_positive_ints
    from rtdeploy.checks import whole

    if not cfg.precisions:
        raise RtDeployError(f"--precision is empty; give a comma-separated subset of {','.join(PRECISIONS)}")
    parse_duration(cfg.bench_duration, "--bench-duration")
    parse_positive_ints(cfg.bench_batch, "--bench-batch")
    whole(cfg.keep_fp, "--keep-fp", minimum=0)
    for option, value in (("--calib-size", cfg.calib_size), ("--samples", cfg.samples)):
        if value is not None:
            whole(value, option, minimum=1)


def _prepare_outdir(cfg: RunConfig) -> Path:
    outdir = cfg.outdir or Path("rtdeploy-out") / f"resnet{cfg.depth}"
    existing = next(p for p in (outdir, *outdir.parents) if p.exists())
    if not existing.is_dir():
        raise OutputError(f"--outdir {outdir}: {existing} is a file; give a folder path")
    check_output_path(existing / "report.md")  # writable?
    outdir.mkdir(parents=True, exist_ok=True)
    return outdir


class _Pipeline:
    def __init__(self, cfg: RunConfig, outdir: Path, cache: StageCache, on_stage):
        self.cfg, self.outdir, self.cache, self.on_stage = cfg, outdir, cache, on_stage
        self.report = RunReport(outdir)
        self.models: dict[str, Path] = {}
        self.engines: dict[str, Path] = {}

    def run_all(self) -> None:
        c, name = self.cfg, f"resnet{self.cfg.depth}"
        fp32 = self.outdir / f"{name}.onnx"
        export_opts = {"depth": c.depth, "num_classes": c.num_classes, "weights": c.weights}
        if self._stage("export", self._export, {"out": fp32}, export_opts, inputs=[c.weights], outputs=[fp32]):
            self.models["fp32"] = fp32
        calib_opts = {"calib_dir": c.calib_dir, "calib_size": c.calib_size}
        for prec in c.precisions:
            if prec != "fp32" and "fp32" in self.models:
                out = self.outdir / f"{name}.{prec}.onnx"
                opts = {**calib_opts, **({"method": c.method, "keep_fp": c.keep_fp} if prec == "int8" else {})}
                if self._stage(f"quantize-{prec}", self._quantize, {"prec": prec, "out": out}, opts, inputs=[fp32], outputs=[out]):
                    self.models[prec] = out
            if prec in self.models:
                rep = self.outdir / f"validate-{prec}.json"
                self._stage(f"validate-{prec}", self._validate, {"model": self.models[prec], "out": rep},
                            {"images": c.images, "samples": c.samples}, inputs=[self.models[prec]], outputs=[rep])
        if c.engines:
            self._engines()
        if c.bench and self.models:
            self._stage("bench", self._bench, {}, {"duration": c.bench_duration, "batch": c.bench_batch},
                        inputs=[*self.models.values(), *self.engines.values()], outputs=[self.outdir / "bench.json"])

    def _stage(self, name: str, fn, args: dict, options: dict, *, inputs: list, outputs: list[Path]) -> bool:
        """Run or reuse one stage; True when its outputs are usable by the stages after it.

        The key covers the stage's own options and its inputs' bytes (a missing input counts as
        such, so the stage runs and reports it). Only a stage that succeeded is recorded: a
        failure is retried, and never reused as if it had passed.
        """
        key = stage_key(name, {k: str(v) for k, v in {**args, **options}.items()}, [p for p in inputs if p is not None])
        start = time.perf_counter()
        if self.cache.is_fresh(name, key):
            rec = StageRecord(name, "reused", 0.0, "inputs unchanged since the last run", self.cache.result(name))
        else:
            rec = self._attempt(name, fn, args)
            if rec.status == "ran" and all(p.exists() for p in outputs):
                self.cache.record(name, key, outputs, rec.result)
        rec.seconds = round(time.perf_counter() - start, 2)
        self.report.stages.append(rec)
        if self.on_stage:
            self.on_stage(rec)
        return rec.status in ("ran", "reused")

    @staticmethod
    def _attempt(name: str, fn, args: dict) -> StageRecord:
        try:
            status, detail, result = fn(**args)
        except MissingDependency as e:
            return StageRecord(name, "skipped", detail=str(e))
        except RtDeployError as e:
            return StageRecord(name, "failed", detail=str(e))
        return StageRecord(name, status, detail=detail, result=result)

    # --- the stages: each returns (status, one-line detail, JSON-able result) -------------------

    def _export(self, out: Path):
        from rtdeploy import api

        r = api.export(depth=self.cfg.depth, weights=self.cfg.weights, num_classes=self.cfg.num_classes, output=out)
        weights = "trained weights" if self.cfg.weights else "no weights given: seed-0 initialisation"
        return "ran", f"{out.name}, {r.manifest['bytes'] / 1e6:.1f} MB ({weights})", {"sha256": r.manifest["sha256"]}

    def _quantize(self, prec: str, out: Path):
        from rtdeploy import api

        kw = {"int8": prec == "int8", "fp16": prec == "fp16", "output": out, "calib_dir": self.cfg.calib_dir}
        if prec == "int8":
            kw.update(method=self.cfg.method, keep_fp=self.cfg.keep_fp)
            if self.cfg.calib_size:
                kw["calib_size"] = self.cfg.calib_size
        r = api.quantize(self.models["fp32"], **kw)
        return "ran", f"{out.name}", _jsonable(getattr(r, "report", None))

    def _validate(self, model: Path, out: Path):
        from rtdeploy import api

        rep = api.validate(model, images=self.cfg.images, samples=self.cfg.samples, progress=self.cfg.progress)
        data = rep.to_dict()
        write_json_atomic(out, data)
        if not rep.passed:
            return "failed", rep.failure_message(), data
        return "ran", f"within {rep.precision} tolerance against {rep.reference}", data

    def _engines(self) -> None:
        from rtdeploy.trt.loader import availability

        avail = availability()
        if not avail["ok"]:
            rec = StageRecord("build-engine", "skipped", detail=f"needs TensorRT and an NVIDIA GPU: {avail['hint']}")
            self.report.stages.append(rec)
            if self.on_stage:
                self.on_stage(rec)
            return
        for prec, onnx_path in list(self.models.items()):
            out = onnx_path.with_suffix(".engine")
            if self._stage(f"build-engine-{prec}", self._build, {"onnx": onnx_path, "out": out}, {}, inputs=[onnx_path], outputs=[out]):
                self.engines[prec] = out

    def _build(self, onnx: Path, out: Path):
        from rtdeploy import api

        r = api.build_engine(onnx, output=out)
        return "ran", f"{out.name}", {"layers": _jsonable(getattr(r, "layers", None))}

    def _bench(self):
        from rtdeploy import api

        models = [str(p) for p in [*self.models.values(), *self.engines.values()]]
        res = api.bench(model=",".join(models), backend="onnxruntime", batch=self.cfg.bench_batch,
                        duration=self.cfg.bench_duration, json=self.outdir / "bench.json",
                        markdown=self.outdir / "bench.md", plot=self.outdir / "bench.png", progress=self.cfg.progress)
        return "ran", f"{len(models)} models timed", {"written": [str(p) for p in getattr(res, "written", [])]}


def _jsonable(obj: Any) -> Any:
    if obj is None or isinstance(obj, (str, int, float, bool, list, dict)):
        return obj
    if hasattr(obj, "to_dict"):
        return obj.to_dict()
    return str(obj)
