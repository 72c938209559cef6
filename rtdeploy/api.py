"""The public Python API: one function per CLI command, taking the same options with the same defaults.

    from rtdeploy import api
    api.export(depth=50)                       # == rtdeploy export --depth 50
    api.validate("resnet50.onnx")              # == rtdeploy validate resnet50.onnx

Every function's keyword options are the fields of its command's config class (listed in its
docstring and its signature): the same declarations the command line is made from
(:mod:`rtdeploy.options`), so a flag and its keyword cannot drift apart. ``json=PATH`` writes the
result as JSON (``"-"``: to stdout) as ``--json`` does. Functions follow the data flow: summary,
export, import_model, validate, quantize, build_engine, inspect, bench, then run (all of them),
package (Triton hand-off) and doctor. Each returns the stage's result object and raises
:class:`rtdeploy.errors.RtDeployError` subclasses for anything a user can fix.
"""

from __future__ import annotations

import dataclasses
import inspect as _inspect
import json as _json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rtdeploy.bench.options import BenchConfig
from rtdeploy.doctor import DoctorConfig
from rtdeploy.export.options import ExportConfig, ImportConfig
from rtdeploy.models.summary import SummaryConfig
from rtdeploy.options import declared, default_of
from rtdeploy.pipeline.options import RunConfig
from rtdeploy.precision.quantize import QuantizeConfig
from rtdeploy.serving.package import PackageConfig
from rtdeploy.trt.inspect_options import InspectConfig
from rtdeploy.trt.options import BuildOptions
from rtdeploy.validate.options import ValidateConfig

# The keyword every function takes besides its options: called with the result before the JSON
# is written (the command line prints its lines there, so that a JSON written through
# /dev/stdout comes after them).
SHOW = _inspect.Parameter("show", _inspect.Parameter.KEYWORD_ONLY, default=None)


def _takes(config: type, positional: str | None = None, extra: tuple[_inspect.Parameter, ...] = ()):
    """Give the decorated function the signature and option list of ``config``'s fields."""

    def decorate(fn: Callable) -> Callable:
        params = []
        for f, o in declared(config):
            default = default_of(f)
            kind = _inspect.Parameter.POSITIONAL_OR_KEYWORD if f.name == positional else _inspect.Parameter.KEYWORD_ONLY
            params.append(_inspect.Parameter(f.name, kind, default=_inspect.Parameter.empty if default is dataclasses.MISSING else default))
        params.sort(key=lambda p: p.kind)
        fn.__signature__ = _inspect.Signature([*params, *extra, SHOW])
        fn.__doc__ = (fn.__doc__ or "") + _options_doc(config)
        fn.config_class = config
        return fn

    return decorate


def _options_doc(config: type) -> str:
    lines = ["", "    Options (the fields of :class:`" + config.__module__ + "." + config.__qualname__ + "`; the command line's flags):"]
    for f, o in declared(config):
        text = (o.help.__doc__ or "").strip() if callable(o.help) else o.help  # a registry's text is read when --help is built
        flag = f" ({', '.join(o.flags)})" if o.flags and o.cli else ""
        lines.append(f"        {f.name}{flag}: {text}")
    return "\n".join(lines) + "\n"


def _finish(cfg: Any, result: Any, data: Callable[[Any], Any] | None, show: Callable[[Any], None] | None) -> Any:
    """Show the result (the CLI's lines), then write its JSON where ``cfg.json`` says."""
    if show is not None:
        show(result)
    target = getattr(cfg, "json", None)
    if target is None or data is None:
        return result
    if target == "-":
        sys.stdout.write(_json.dumps(data(result), indent=2, default=str) + "\n")
        sys.stdout.flush()
    else:
        from rtdeploy.files import write_json_atomic

        write_json_atomic(Path(target), data(result))
    return result


@_takes(SummaryConfig)
def summary(*, show=None, **options):
    """Per-layer output shapes, parameters and MACs of a registered model (``rtdeploy summary``).

    Returns:
        :class:`rtdeploy.models.summary.ModelSummary` (``rows``, ``total_params``, ``total_macs``, ``to_dict()``).
    """
    from rtdeploy.models.summary import summary as run

    cfg = SummaryConfig(**options)
    return _finish(cfg, run(cfg), lambda s: s.to_dict(), show)


@_takes(ExportConfig)
def export(*, show=None, **options):
    """Export a registered model to ONNX with its manifest (``rtdeploy export``).

    ``model`` names it (``resnet50``); ``depth`` is the short alias used when ``model`` is None.

    Returns:
        :class:`rtdeploy.export.ExportResult` (``path``, ``manifest``, ``meta``).
    """
    from rtdeploy.export.onnx_export import export_onnx

    cfg = ExportConfig(**options)
    return _finish(cfg, export_onnx(cfg), lambda r: r.manifest, show)


@_takes(ImportConfig, positional="model")
def import_model(model, *, show=None, **options):
    """Adopt an ONNX image classifier that rtdeploy did not write (``rtdeploy import``).

    Checks the file (ONNX checker, one float32 NCHW input, opset >= 13 or upgradable, external data
    present, output size vs ``classes``) and writes the manifest every later stage reads; the
    model is then taken by ``validate``, ``quantize``, ``build_engine``, ``bench``, ``package`` and
    ``run``. (``import`` is a Python keyword, hence the name.)

    Returns:
        :class:`rtdeploy.export.onnx_import.ImportResult` (``path``, ``manifest``, ``meta``).

    Raises:
        ExportError: the file is not an ONNX image classifier rtdeploy can take; OutputError.
    """
    from rtdeploy.export.onnx_import import import_onnx

    cfg = ImportConfig(model=model, **options)
    return _finish(cfg, import_onnx(cfg), lambda r: r.manifest, show)


@_takes(ValidateConfig, positional="model")
def validate(model, *, show=None, **options):
    """Compare a model with its reference on random inputs and, if given, images (``rtdeploy validate``).

    The reference is the PyTorch model rebuilt from the manifest for an FP32 export, and the parent
    ONNX (onnxruntime) for FP16/INT8 models and TensorRT engines; ``reference`` overrides it
    (``torch``, ``onnx`` or an ONNX path). Tolerances default per precision (see
    ``rtdeploy.validate.DEFAULT_TOLERANCES``); ``tolerances`` overrides single limits by name.

    Returns:
        :class:`rtdeploy.validate.ValidationReport`; it does not raise when out of tolerance —
        check ``report.passed`` or call ``report.raise_for_failure()``.
    """
    from rtdeploy.validate.run import validate_model

    cfg = ValidateConfig(model=model, **options)
    return _finish(cfg, validate_model(cfg), lambda r: r.to_dict(), show)


@_takes(QuantizeConfig, positional="model")
def quantize(model, *, show=None, **options):
    """FP32 ONNX -> calibrated INT8 Q/DQ ONNX or FP16 ONNX, with manifest (``rtdeploy quantize``).

    ``method`` is any registered calibrator (:mod:`rtdeploy.precision.calibrators`);
    ``stats_cache`` may also be a folder path for the collected-statistics cache.

    Returns:
        :class:`rtdeploy.precision.artifact.QuantizeResult` (``path``, ``manifest``, ``report``).

    Raises:
        PrecisionError, ArtifactError, DataError, OutputError: see ``rtdeploy quantize --help``.
    """
    from rtdeploy.precision.quantize import quantize as run

    cfg = QuantizeConfig(model=model, **options)
    return _finish(cfg, run(cfg), lambda r: r.report, show)


@_takes(BuildOptions, positional="onnx")
def build_engine(onnx=None, *, show=None, **options):
    """Build a TensorRT engine with its manifest (``rtdeploy build-engine``).

    Exports (``model``, when no ``onnx`` is given) and quantizes (FP16 graph, or calibrated INT8
    Q/DQ, with the calibration options) as needed, reusing artifacts whose manifests match; then
    builds, checks that the engine's layers really run in ``precision`` (None: the ONNX's own),
    and writes ``output`` and ``output.json``.

    Returns:
        :class:`rtdeploy.trt.EngineBuildResult` (``path``, ``manifest``, ``onnx``, ``layers``).

    Raises:
        EngineError, PrecisionError, ArtifactError, OutputError: see :func:`rtdeploy.trt.build_engine`; an
            ONNX TensorRT does not build (the onnxruntime-CPU INT8 form, asymmetric or UINT8 Q/DQ, an
            opset or scale type the release does not document) is an EngineError before any work.
        MissingDependency: TensorRT, cuda-python or a GPU is missing (the precision ONNX is written first).
    """
    from rtdeploy.make_or_reuse import engine_from

    cfg = BuildOptions(onnx=onnx, **options)
    return _finish(cfg, engine_from(cfg), lambda r: r.manifest, show)


@_takes(InspectConfig, positional="path")
def inspect(path, *, show=None, **options):
    """Per-layer precision of an engine plan or a layer-information JSON (``rtdeploy inspect``).

    Compute layers (those with weights) are judged by weight type and input precision; with
    ``expect`` (``fp32``/``fp16``/``int8``) every compute layer must run at that precision or below,
    except the layers the manifest lists as kept in float. A JSON needs neither TensorRT nor a GPU.

    Returns:
        :class:`rtdeploy.trt.inspect_file.InspectResult` (``report``, ``verdict``, ``failure()``).
    """
    from rtdeploy.trt.inspect_file import inspect_file

    cfg = InspectConfig(path=path, **options)
    cfg.check()
    return _finish(cfg, inspect_file(cfg.path, expect=cfg.expect), lambda r: r.to_dict(), show)


@_takes(BenchConfig)
def bench(*, show=None, **options):
    """Time models across precisions, backends, batch sizes and streams (``rtdeploy bench``).

    List options take comma-separated strings or lists (``depth="18,50"`` or ``"all"``); durations
    take ``"200ms"``, ``"3s"`` or seconds. Each of the ``repeats`` interleaved timed windows runs after
    ``warmup`` until both ``duration`` and ``iterations`` are reached. Artifacts are prepared in
    ``workdir`` and reused while their manifests match; ``model`` times registered models by name,
    or given ONNX files or engines as they are.

    Returns:
        :class:`rtdeploy.bench.BenchResult` (``report``: the dict of ``rtdeploy/bench/schema.json``;
        ``written``: the report files).

    Raises:
        BenchmarkError: bad options, nothing runnable, a batch the model or engine cannot take.
        MissingDependency: a backend, or the GPU that ``device="cuda"`` needs, is absent.
        OutputError: a report file in a missing or unwritable folder.
    """
    from rtdeploy.bench import benchmark

    cfg = BenchConfig(**options)
    result = benchmark(cfg)  # writes a --json FILE itself, checked against its schema
    return _finish(cfg, result, (lambda r: r.report) if cfg.json == "-" else None, show)


ON_STAGE = _inspect.Parameter("on_stage", _inspect.Parameter.KEYWORD_ONLY, default=None)


@_takes(RunConfig, extra=(ON_STAGE,))
def run(*, on_stage=None, show=None, **options):
    """The whole pipeline into one report folder (``rtdeploy run``).

    Artifacts and reports whose inputs are unchanged since the last run in ``outdir`` are reused
    (each stage says why). ``force``: True or ``"all"`` redoes every stage; a stage family
    (``export``, ``quantize``, ``validate``, ``build-engine``, ``bench``, or a comma list) redoes
    it and what depends on it; ``rebench`` re-times only. ``on_stage`` is called with each stage's
    record as it ends.

    Returns:
        :class:`rtdeploy.pipeline.RunReport` (``stages``, ``failed``, ``report_md``, ``report_json``).
    """
    from rtdeploy.pipeline import run_pipeline

    cfg = RunConfig(**options)
    return _finish(cfg, run_pipeline(cfg, on_stage=on_stage), lambda r: r.to_dict(), show)


@_takes(PackageConfig, positional="artifact")
def package(artifact, *, show=None, **options) -> Path:
    """Write a Triton model repository entry for an ONNX model or engine (``rtdeploy package --triton``).

    With ``kind="cpu"``, an INT8 model placed for TensorRT is replaced by its onnxruntime-CPU form
    (``X.int8-cpu.onnx``, from ``quantize --int8 --target onnxruntime-cpu``) when one was made from
    the same parent. The config keeps to Triton's rules (docs/triton.md): an engine of one batch
    size is packaged with ``max_batch_size`` 0 and full dims, and one Triton cannot keep within its
    profile is refused (:class:`rtdeploy.errors.PackageError`).

    Returns:
        The model folder ``triton/<name>``.
    """
    from rtdeploy.serving.package import package as run

    cfg = PackageConfig(artifact=artifact, **options)
    return _finish(cfg, run(cfg), None, show)


@_takes(DoctorConfig)
def doctor(*, show=None, **options):
    """What is installed, which CUDA devices are visible, and what each command still needs (``rtdeploy doctor``).

    Returns:
        :class:`rtdeploy.doctor.DoctorReport` (never raises for missing optional libraries).
    """
    from rtdeploy.doctor import diagnose

    cfg = DoctorConfig(**options)
    cfg.check()
    return _finish(cfg, diagnose(), lambda r: r.to_dict(), show)
