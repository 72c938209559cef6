"""The public Python API: one function per CLI command, with the same options and defaults.

    from rtdeploy import api
    api.export(depth=50)                       # == rtdeploy export --depth 50
    api.validate("resnet50.onnx")              # == rtdeploy validate resnet50.onnx

Functions follow the data flow: summary, export, validate, quantize, build_engine, bench, then
run (all of them), package (Triton hand-off) and doctor. Each returns the stage's result object and raises :class:`rtdeploy.errors.RtDeployError`
subclasses for anything a user can fix.
"""

from __future__ import annotations

import os
from pathlib import Path


def summary(*, depth: int = 50, model: str | None = None, image_size: int | None = None, num_classes: int | None = None, in_channels: int = 3,
            variant: str | None = None):
    """Per-layer output shapes, parameters and MACs of a ResNet (``rtdeploy summary``).

    Returns:
        :class:`rtdeploy.models.summary.ModelSummary` (``rows``, ``total_params``, ``total_macs``, ``to_dict()``).
    """
    from rtdeploy.models.specs import get_spec
    from rtdeploy.models.summary import summarize

    spec = get_spec(model if model is not None else depth)
    meta = spec.meta(num_classes=num_classes, in_channels=in_channels, variant=variant, image_size=image_size)
    return summarize(meta)


def export(*, depth: int = 50, model: str | None = None, weights: str | os.PathLike | None = None, num_classes: int | None = None,
           in_channels: int = 3, variant: str | None = None, image_size: int | None = None, opset: int = 17,
           batch: int | str = "dynamic", output: str | os.PathLike | None = None, progress: bool = False):
    """Export a registry model to ONNX with its manifest (``rtdeploy export``).

    ``model`` names it (``resnet50``); ``depth`` is the short alias used when ``model`` is None.

    Returns:
        :class:`rtdeploy.export.ExportResult` (``path``, ``manifest``, ``meta``).
    """
    from rtdeploy.export import ExportConfig, export_onnx
    from rtdeploy.models.specs import get_spec

    get_spec(model if model is not None else depth)  # an unknown model fails before anything else is checked
    cfg = ExportConfig(depth=depth, model=model, output=Path(output) if output is not None else None, weights=Path(weights) if weights else None, num_classes=num_classes,
                       in_channels=in_channels, variant=variant, image_size=image_size, opset=opset, batch=batch,
                       progress=progress)
    return export_onnx(cfg)


def validate(model: str | os.PathLike, *, images: str | os.PathLike | None = None, samples: int | None = None,
             batch: int = 8, reference: str | None = None, tolerances: dict | None = None, seed: int = 0,
             providers: tuple[str, ...] = ("cpu",), progress: bool = False):
    """Compare a model with its reference on random inputs and, if given, images (``rtdeploy validate``).

    The reference is the PyTorch model rebuilt from the manifest for an FP32 export, and the parent
    ONNX (onnxruntime) for FP16/INT8 models and TensorRT engines; ``reference`` overrides it
    (``torch``, ``onnx`` or an ONNX path). Tolerances default per precision (see
    ``rtdeploy.validate.DEFAULT_TOLERANCES``); ``tolerances`` overrides single limits by name.

    Returns:
        :class:`rtdeploy.validate.ValidationReport`; it does not raise when out of tolerance —
        check ``report.passed`` or call ``report.raise_for_failure()``.
    """
    from rtdeploy.validate import ValidateConfig, validate_model

    cfg = ValidateConfig(model=Path(model), images=Path(images) if images is not None else None, samples=samples,
                         batch=batch, reference=reference, tolerances=dict(tolerances or {}), seed=seed,
                         providers=tuple(providers), progress=progress)
    return validate_model(cfg)


def quantize(model: str | os.PathLike, *, int8: bool = False, fp16: bool = False, calib_dir: str | os.PathLike | None = None,
             method: str = "entropy", percentile: float = 99.99, calib_size: int | None = None, seed: int = 0,
             keep_fp: int = 0, target_agreement: float | None = None, fp16_io: bool = False,
             trt_cache: str | os.PathLike | None = None, from_trt_cache: str | os.PathLike | None = None,
             trt_version: str = "8601", output: str | os.PathLike | None = None,
             stats_cache: str | os.PathLike | bool = True, progress: bool = False, weights: str = "nearest",
             target: str = "tensorrt", high_precision: str = "fp32"):
    """FP32 ONNX -> calibrated INT8 Q/DQ ONNX or FP16 ONNX, with manifest (``rtdeploy quantize``).

    Args:
        model: an FP32 ONNX made by ``rtdeploy export`` (its manifest beside it).
        int8, fp16: which precision to make (exactly one).
        calib_dir: calibration images (folder, recursive) or a .npy/.npz tensor file; None: the
            photos bundled with the package (``rtdeploy/calib_data``).
        method: INT8 calibrator: ``entropy``, ``max``, ``percentile``, ``mse`` or ``consumer-mse``
            (the threshold minimising the error of the ops that read each tensor).
        percentile: for ``percentile``, in (0, 100].
        calib_size: how many calibration images (a seeded random subset); None: all, up to 1,000.
        seed: seed of that subset and of the held-out split.
        keep_fp: keep the N most quantization-sensitive layers in floating point.
        target_agreement: instead, keep layers until the held-out top-1 agreement with FP32 reaches
            this fraction (e.g. 0.99).
        fp16_io: FP16 model with float16 inputs and outputs (default: float32 I/O).
        trt_cache: also write a TensorRT calibration cache here.
        from_trt_cache: take the activation scales from this TensorRT calibration cache.
        trt_version: TensorRT version in the written cache's header (8601 = 8.6.1).
        output: the model to write (default: ``X.int8.onnx`` / ``X.fp16.onnx`` beside ``X.onnx``).
        stats_cache: reuse collected statistics from a cache: True for ``$RTDEPLOY_CACHE_DIR`` or
            ``~/.cache/rtdeploy``, a folder path, or False for no cache.
        progress: show a progress bar on stderr.
        weights: INT8 weight rounding: ``nearest`` or ``adaround`` (each weight rounded up or down
            to minimise its layer's output error on the calibration images).
        target: INT8 form: ``tensorrt`` (int8 Q/DQ placed for TensorRT) or ``onnxruntime-cpu``
            (uint8 activations with zero points and int32 biases, placed so that onnxruntime's CPU
            kernels fuse every layer; no --keep-fp/--target-agreement/TensorRT cache).
        high_precision: type of the float parts of an INT8 ``tensorrt`` graph: ``fp32`` or ``fp16``
            (FP16 outside the Q/DQ layers, the FP16 overflow guard keeping large activations FP32).

    Returns:
        :class:`rtdeploy.precision.quantize.QuantizeResult` (``path``, ``manifest``, ``report``).

    Raises:
        PrecisionError, ArtifactError, DataError, OutputError: see ``rtdeploy quantize --help``.
    """
    from rtdeploy.precision.quantize import QuantizeConfig
    from rtdeploy.precision.quantize import quantize as _quantize

    opt = lambda p: Path(p) if p is not None else None  # noqa: E731
    cfg = QuantizeConfig(model=Path(model), int8=int8, fp16=fp16, calib_dir=opt(calib_dir), method=method,
                         percentile=percentile, calib_size=calib_size, seed=seed, keep_fp=keep_fp,
                         target_agreement=target_agreement, fp16_io=fp16_io, trt_cache=opt(trt_cache),
                         from_trt_cache=opt(from_trt_cache), trt_version=str(trt_version), output=opt(output),
                         cache_dir=stats_cache, progress=progress, weights=weights, target=target, high_precision=high_precision)
    return _quantize(cfg)


def build_engine(onnx: str | os.PathLike | None = None, *, depth: int = 50, model: str | None = None, precision: str | None = None,
                 calib_dir: str | os.PathLike | None = None, calibrate: bool = True, batch: str | int | None = None,
                 max_batch: int | None = None, workspace: str | int | None = None,
                 timing_cache: str | os.PathLike | None = None, builder_optimization_level: int | None = None,
                 dla_core: int | None = None, gpu_fallback: bool = False, version_compatible: bool = False,
                 hardware_compatibility: str | None = None, implicit_calibration: bool = False,
                 output: str | os.PathLike | None = None, progress: bool = False):
    """Build a TensorRT engine with its manifest (``rtdeploy build-engine``).

    Exports (``depth``, when no ``onnx`` is given) and quantizes (FP16 graph, or calibrated INT8
    Q/DQ) as needed, reusing artifacts whose manifests match; then builds, checks that the engine's
    layers really run in ``precision``, and writes ``output`` and ``output.json``.

    Args:
        onnx: an FP32, FP16 or INT8 Q/DQ ONNX file (exported or imported); None exports ``model``
            (a registry name; ``depth`` is its short alias).
        precision: ``fp32``, ``fp16``, ``int8``; None takes the ONNX's own precision.
        calib_dir: INT8 calibration images/tensors (None: the quantize stage's default data).
        calibrate: False never calibrates: INT8 then needs a Q/DQ ONNX.
        batch: ``"MIN:OPT:MAX"`` or ``N`` (static). None: the ONNX's fixed batch, else 1:8:32.
        max_batch: shorthand when ``batch`` is None: profile ``1:min(8, max_batch):max_batch``.
        workspace, timing_cache, builder_optimization_level, dla_core, gpu_fallback, version_compatible,
        hardware_compatibility, implicit_calibration: as the CLI options of the same names.
        output: the engine path (default: beside the ONNX, ``<stem>.<precision>.engine``).
        progress: bars on stderr for calibration and, on TensorRT 10 and later, the build's phases.

    Returns:
        :class:`rtdeploy.trt.EngineBuildResult` (``path``, ``manifest``, ``onnx``, ``layers``).

    Raises:
        EngineError, PrecisionError, ArtifactError, OutputError: see :func:`rtdeploy.trt.build_engine`.
        MissingDependency: TensorRT, cuda-python or a GPU is missing (the precision ONNX is written first).
    """
    from rtdeploy.derive import engine_from
    from rtdeploy.trt import BuildOptions

    if batch is None and max_batch is not None:
        batch = f"1:{min(8, max_batch)}:{max_batch}" if max_batch > 1 else "1"
    opts = BuildOptions(depth=depth, model=model, onnx=Path(onnx) if onnx is not None else None, precision=precision,
                        calib_dir=Path(calib_dir) if calib_dir is not None else None, calibrate=calibrate,
                        batch=str(batch) if batch is not None else None, workspace=workspace,
                        timing_cache=Path(timing_cache) if timing_cache is not None else None,
                        builder_optimization_level=builder_optimization_level, dla_core=dla_core, gpu_fallback=gpu_fallback,
                        version_compatible=version_compatible, hardware_compatibility=hardware_compatibility,
                        implicit_calibration=implicit_calibration, output=Path(output) if output is not None else None,
                        progress=progress)
    return engine_from(opts)


def bench(*, depth: int | str = "50", model: str | os.PathLike | None = None, precision: str = "fp32",
          backend: str = "onnxruntime", device: str = "cpu", batch: int | str = "1", warmup: str | float = "200ms",
          iterations: int | None = None, duration: str | float | None = None, repeats: int = 3, threads: int = 0,
          image_size: int | None = None, cuda_graph: bool = False, channels_last: bool = False, compile: bool = False,
          workdir: str | os.PathLike | None = None, json: str | os.PathLike | None = None,
          markdown: str | os.PathLike | None = None, plot: str | os.PathLike | None = None, progress: bool = False,
          command: str | None = None, streams: int | str = "1", export_profile: str | os.PathLike | None = None,
          export_times: str | os.PathLike | None = None):
    """Time ResNets across depths, precisions, backends, batch sizes and streams (``rtdeploy bench``).

    List options take comma-separated strings or lists (``depth="18,50"`` or ``"all"``); durations
    take ``"200ms"``, ``"3s"`` or seconds. Each of the ``repeats`` interleaved timed windows runs after
    ``warmup`` until both ``duration`` (default 1 s; 0: none) and ``iterations`` (default 200 on a GPU,
    20 on CPU, per stream) are reached. ``streams="1,2,4"`` times each configuration with that many
    concurrent streams (onnxruntime sessions, torch CUDA streams, TensorRT execution contexts).
    ``export_profile`` / ``export_times`` write trtexec's ``--exportProfile`` / ``--exportTimes`` JSON
    for one TensorRT configuration. Artifacts are prepared in ``workdir`` (default
    ``~/.cache/rtdeploy/bench``) and reused while their manifests match; ``model`` times given ONNX
    files or engines instead of a depth sweep.

    Returns:
        :class:`rtdeploy.bench.BenchResult` (``report``: the dict of ``rtdeploy/bench/schema.json``;
        ``written``: the report files).

    Raises:
        BenchmarkError: bad options, nothing runnable, a batch the model or engine cannot take.
        MissingDependency: a backend, or the GPU that ``device="cuda"`` needs, is absent.
        OutputError: a report file in a missing or unwritable folder.
    """
    from rtdeploy.bench import benchmark

    return benchmark(depth=depth, model=model, precision=precision, backend=backend, device=device, batch=batch, warmup=warmup,
                     iterations=iterations, duration=duration, repeats=repeats, threads=threads, image_size=image_size,
                     cuda_graph=cuda_graph, channels_last=channels_last, compile=compile, workdir=workdir, json=json,
                     markdown=markdown, plot=plot, progress=progress, command=command, streams=streams,
                     export_profile=export_profile, export_times=export_times)


def run(*, depth: int = 50, model: str | None = None, onnx: str | os.PathLike | None = None, weights: str | os.PathLike | None = None, num_classes: int | None = None,
        calib_dir: str | os.PathLike | None = None, calib_size: int | None = None, method: str = "entropy",
        keep_fp: int = 0, images: str | os.PathLike | None = None, samples: int | None = None, precision: str = "fp32,fp16,int8",
        engines: bool = True, bench: bool = True, bench_duration: str = "1s", bench_batch: str = "1",
        outdir: str | os.PathLike | None = None, force: bool | str | tuple[str, ...] = False, rebench: bool = False,
        progress: bool = False, on_stage=None):
    """The whole pipeline into one report folder (``rtdeploy run``).

    Artifacts and reports whose inputs are unchanged since the last run in ``outdir`` are reused
    (each stage says why). ``force``: True or ``"all"`` redoes every stage; a stage family
    (``export``, ``quantize``, ``validate``, ``build-engine``, ``bench``, or a comma list) redoes
    it and what depends on it; ``rebench`` re-times only. ``model`` names the registry model to
    export (``depth`` is its alias); ``onnx`` runs the stages on an ONNX that already has a
    manifest (made by ``rtdeploy export`` or ``rtdeploy import``) instead of exporting.

    Returns:
        :class:`rtdeploy.pipeline.RunReport` (``stages``, ``failed``, ``report_md``, ``report_json``).
    """
    from rtdeploy.checks import comma_list
    from rtdeploy.pipeline import RunConfig, run_pipeline

    opt = lambda p: Path(p) if p is not None else None  # noqa: E731
    cfg = RunConfig(depth=depth, model=model, onnx=opt(onnx), weights=opt(weights), num_classes=num_classes, calib_dir=opt(calib_dir),
                    calib_size=calib_size, method=method, keep_fp=keep_fp, images=opt(images), samples=samples,
                    precisions=tuple(comma_list(precision, "--precision", example="fp16,int8")), engines=engines,
                    bench=bench, bench_duration=bench_duration, bench_batch=bench_batch, outdir=opt(outdir),
                    force=_stage_list(force), rebench=rebench, progress=progress)
    return run_pipeline(cfg, on_stage=on_stage)


def _stage_list(force: bool | str | tuple[str, ...]) -> tuple[str, ...]:
    if force is True:
        return ("all",)
    if not force:
        return ()
    items = force.split(",") if isinstance(force, str) else force
    return tuple(f.strip() for f in items if f.strip())


def package(artifact: str | os.PathLike, *, triton: str | os.PathLike, name: str | None = None, version: int = 1,
            max_batch: int | None = None, preferred_batch: tuple[int, ...] = (), max_queue_delay_us: int = 100,
            instances: int = 1, kind: str = "gpu", force: bool = False) -> Path:
    """Write a Triton model repository entry for an ONNX model or engine (``rtdeploy package --triton``).

    With ``kind="cpu"``, an INT8 model placed for TensorRT is replaced by its onnxruntime-CPU form
    (``X.int8-cpu.onnx``, from ``quantize --int8 --target onnxruntime-cpu``) when one was made from
    the same parent.

    Returns:
        The model folder ``triton/<name>``.
    """
    from rtdeploy.serving.package import PackageConfig
    from rtdeploy.serving.package import package as _package

    return _package(PackageConfig(artifact=Path(artifact), triton=Path(triton), name=name, version=version,
                                  max_batch=max_batch, preferred_batch=tuple(preferred_batch),
                                  max_queue_delay_us=max_queue_delay_us, instances=instances, kind=kind, force=force))


def doctor():
    """What is installed, which CUDA devices are visible, and what each command still needs (``rtdeploy doctor``).

    Returns:
        :class:`rtdeploy.doctor.DoctorReport` (never raises for missing optional libraries).
    """
    from rtdeploy.doctor import diagnose

    return diagnose()


def inspect(path: str | os.PathLike, *, expect: str | None = None):
    """Per-layer precision of an engine plan or a layer-information JSON (``rtdeploy inspect``).

    Compute layers (those with weights) are judged by weight type and input precision; with
    ``expect`` (``fp32``/``fp16``/``int8``) every compute layer must run at that precision or below,
    except the layers the manifest lists as kept in float. A JSON needs neither TensorRT nor a GPU.

    Returns:
        :class:`rtdeploy.trt.inspect_file.InspectResult` (``report``, ``verdict``, ``failure()``).
    """
    from rtdeploy.trt.inspect_file import inspect_file

    return inspect_file(path, expect=expect)


def import_model(model: str | os.PathLike, *, output: str | os.PathLike | None = None, name: str | None = None,
                 preprocess: str | None = None, size: int | None = None, mean: str | tuple[float, ...] | None = None,
                 std: str | tuple[float, ...] | None = None, layout: str = "NCHW", classes: int | None = None):
    """Adopt an ONNX image classifier that rtdeploy did not write (``rtdeploy import``).

    Checks the file (ONNX checker, one float32 NCHW input, opset >= 13 or upgradable, external data
    present, output size vs ``classes``) and writes the manifest every later stage reads; the
    model is then taken by ``validate``, ``quantize``, ``build-engine``, ``bench --model``,
    ``package`` and ``run --onnx``. (``import`` is a Python keyword, hence the name.)

    Args:
        model: the ONNX file.
        output: where the adopted file lies (None: in place, or ``<stem>.imported.onnx`` when it
            has to be rewritten: opset upgrade, external data inlined).
        name: its name in reports and derived files (None: the file's stem).
        preprocess: ``imagenet``, ``cifar`` or ``none`` (see :mod:`rtdeploy.export.onnx_import`).
        size: input height = width (None: the model's).
        mean, std: per-channel normalization, ``"0.485,0.456,0.406"`` or a tuple (override ``preprocess``).
        layout: ``NCHW``.
        classes: the output size the model must have (None: the model's).

    Returns:
        :class:`rtdeploy.export.onnx_import.ImportResult` (``path``, ``manifest``, ``meta``).

    Raises:
        ExportError: the file is not an ONNX image classifier rtdeploy can take; OutputError.
    """
    from rtdeploy.export.onnx_import import ImportConfig, import_onnx, parse_floats

    cfg = ImportConfig(model=Path(model), output=Path(output) if output is not None else None, name=name,
                       preprocess=preprocess, size=size,
                       mean=parse_floats(mean, "--mean") if isinstance(mean, str) else mean,
                       std=parse_floats(std, "--std") if isinstance(std, str) else std, layout=layout, classes=classes)
    return import_onnx(cfg)
