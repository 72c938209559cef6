"""Benchmark options: parsing ("200ms", "18,50", "all") and the validated configuration.

Everything a user can get wrong is checked here, before any model is exported or loaded.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from rtdeploy.artifacts import default_cache_dir, not_a_file
from rtdeploy.errors import BenchmarkError

BACKENDS = ("torch", "onnxruntime", "tensorrt")
PRECISIONS = ("fp32", "fp16", "int8")
DEVICES = ("cpu", "cuda")
ALL_DEPTHS = (18, 34, 50, 101, 152)

_DURATION = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:e[-+]?[0-9]+)?)\s*(ms|s|m|min)?\s*$", re.IGNORECASE)
_UNIT_SECONDS = {"ms": 1e-3, "s": 1.0, "m": 60.0, "min": 60.0, None: 1.0}


def parse_duration(text: str | float | int, option: str = "--duration", *, allow_zero: bool = False) -> float:
    """Seconds from ``"200ms"``, ``"3s"``, ``"1.5"`` (seconds) or ``"2m"``.

    Raises:
        BenchmarkError: not a duration, negative, or zero where zero is not allowed.
    """
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        seconds = float(text)
    else:
        m = _DURATION.match(str(text))
        if not m:
            if str(text).strip().startswith("-"):
                raise BenchmarkError(f"{option} {text!r} is negative; give a positive duration such as 200ms or 3s")
            raise BenchmarkError(f"{option} {text!r} is not a duration; write it like 200ms, 3s or 1.5 (seconds)")
        seconds = float(m.group(1)) * _UNIT_SECONDS[m.group(2).lower() if m.group(2) else None]
    if not seconds < float("inf") or seconds < 0 or (seconds == 0 and not allow_zero):  # NaN and inf fail the first
        accepted = "0 or a positive duration" if allow_zero else "a positive duration"
        raise BenchmarkError(f"{option} {text!r} is not accepted; give {accepted} such as 200ms or 3s")
    return seconds


def parse_names(value: str | Iterable[str], option: str, accepted: tuple[str, ...]) -> tuple[str, ...]:
    """A de-duplicated tuple of names from ``"a,b"`` or a list, each one of ``accepted``.

    Raises:
        BenchmarkError: an unknown name (the message lists the accepted ones).
    """
    items = _split(value, option)
    if not items:
        raise BenchmarkError(f"{option} is empty; give one or more of {', '.join(accepted)}")
    for item in items:
        if item.lower() not in accepted:
            raise BenchmarkError(f"unknown {option.lstrip('-')} {item!r}; accepted: {', '.join(accepted)} (comma-separated)")
    return tuple(dict.fromkeys(i.lower() for i in items))


def parse_depths(value: str | int | Iterable) -> tuple[int, ...]:
    """Depths from ``"18,50"``, ``"all"`` (the five ImageNet depths), an int or a list.

    Raises:
        BenchmarkError: not integers; ModelError: a depth no family has.
    """
    from rtdeploy.models import family_of

    items = [str(value)] if isinstance(value, int) else _split(value, "--depth")
    if [i.lower() for i in items] == ["all"]:
        return ALL_DEPTHS
    try:
        depths = tuple(dict.fromkeys(int(i) for i in items))
    except ValueError:
        raise BenchmarkError(f"--depth {value!r} is not accepted; give depths such as 18,50 or 'all'") from None
    if not depths:
        raise BenchmarkError("--depth is empty; give depths such as 18,50 or 'all'")
    for d in depths:
        family_of(d)
    return depths


def parse_positive_ints(value: str | int | Iterable, option: str) -> tuple[int, ...]:
    """Positive integers from ``"1,8,32"``, an int or a list.

    Raises:
        BenchmarkError: anything that is not a positive integer.
    """
    items = [str(value)] if isinstance(value, int) else _split(value, option)
    try:
        nums = tuple(dict.fromkeys(int(i) for i in items))
    except ValueError:
        nums = ()
    if not nums or any(n < 1 for n in nums):
        raise BenchmarkError(f"{option} {value!r} is not accepted; give positive integers such as 1,8,32")
    return nums


def _split(value: str | os.PathLike | Iterable, option: str) -> list[str]:
    from rtdeploy.checks import comma_list

    if isinstance(value, os.PathLike):
        return [os.fspath(value)]
    if isinstance(value, str):
        return comma_list(value, option, BenchmarkError)
    return [str(v).strip() for v in value if str(v).strip()]


@dataclass(frozen=True)
class BenchConfig:
    """A validated benchmark request.

    Attributes:
        depths: ResNet depths to sweep (ignored when ``models`` is given).
        models: explicit artifacts (ONNX files or TensorRT engines) to time instead of a depth sweep.
        precisions, backends: what to time; unsupported combinations are skipped with a note.
        device: ``cpu`` or ``cuda`` (TensorRT always runs on CUDA).
        batches: batch sizes.
        warmup_s: warm-up time before each timed window (0: none).
        iterations: minimum timed iterations per window and stream (None: the device's default,
            see :mod:`rtdeploy.bench.stoprule`).
        duration_s: minimum timed seconds per window (None: the default, 1 s; 0: no minimum).
            A window ends when both minima are reached.
        repeats: timed windows per configuration, interleaved across configurations.
        streams: concurrent streams per configuration (each a configuration of its own).
        threads: intra-op threads for torch and onnxruntime (0: the library's default).
        image_size: input height/width (None: the model's default).
        cuda_graph: TensorRT: replay a captured CUDA graph.
        channels_last, compile: torch: NHWC memory format; ``torch.compile``.
        workdir: where exported / quantized / built artifacts are kept and reused.
        json, markdown, plot: report files to write (None: not written).
        progress: show a progress bar on stderr.
        export_profile, export_times: TensorRT per-layer profile / per-inference times, written in
            trtexec's ``--exportProfile`` / ``--exportTimes`` JSON formats (None: not written).
    """

    depths: tuple[int, ...] = (50,)
    models: tuple[Path, ...] = ()
    precisions: tuple[str, ...] = ("fp32",)
    backends: tuple[str, ...] = ("onnxruntime",)
    device: str = "cpu"
    batches: tuple[int, ...] = (1,)
    warmup_s: float = 0.2
    iterations: int | None = None
    duration_s: float | None = None
    repeats: int = 3
    streams: tuple[int, ...] = (1,)
    threads: int = 0
    image_size: int | None = None
    cuda_graph: bool = False
    channels_last: bool = False
    compile: bool = False
    workdir: Path = field(default_factory=lambda: default_workdir())
    json: Path | None = None
    markdown: Path | None = None
    plot: Path | None = None
    progress: bool = False
    export_profile: Path | None = None
    export_times: Path | None = None

    def rule(self, device: str):
        """The :class:`~rtdeploy.bench.stoprule.StopRule` of a configuration on ``device`` (``cpu``/``cuda``)."""
        from rtdeploy.bench.stoprule import default_rule

        return default_rule(device, warmup_s=self.warmup_s, iterations=self.iterations, duration_s=self.duration_s)


def default_workdir() -> Path:
    """``bench`` in rtdeploy's cache folder (:func:`rtdeploy.artifacts.default_cache_dir`, e.g.
    ``~/.cache/rtdeploy/bench``): never the working directory."""
    return default_cache_dir() / "bench"


def make_config(*, depth="50", model=None, precision="fp32", backend="onnxruntime", device="cpu", batch="1",
                warmup="200ms", iterations=None, duration=None, repeats=3, threads=0, image_size=None,
                cuda_graph=False, channels_last=False, compile=False, workdir=None, json=None, markdown=None,
                plot=None, progress=False, streams="1", export_profile=None, export_times=None) -> BenchConfig:
    """Parse and check the user's options into a :class:`BenchConfig` (see ``rtdeploy bench --help``).

    Raises:
        BenchmarkError, ModelError, OutputError: an option that cannot be used; nothing has run yet.
    """
    from rtdeploy.artifacts import check_output_path

    if iterations is not None and (not _is_int(iterations) or int(iterations) < 1):
        raise BenchmarkError(f"--iterations {iterations!r} is not accepted; give a positive number of timed iterations such as 100")
    if not _is_int(repeats) or int(repeats) < 1:
        raise BenchmarkError(f"--repeats {repeats!r} is not accepted; give a positive number such as 3")
    if not _is_int(threads) or int(threads) < 0:
        raise BenchmarkError(f"--threads {threads!r} is not accepted; give 0 (the library's default) or a positive number")
    if image_size is not None and (not _is_int(image_size) or int(image_size) < 8):
        raise BenchmarkError(f"--image-size {image_size!r} is not accepted; give a size of at least 8 pixels, such as 64 or 224")
    if device not in DEVICES:
        raise BenchmarkError(f"unknown device {device!r}; accepted: {', '.join(DEVICES)}")
    outputs = {k: check_output_path(v) if v is not None else None
               for k, v in (("json", json), ("markdown", markdown), ("plot", plot), ("export_profile", export_profile),
                            ("export_times", export_times))}
    if outputs["plot"] is not None and outputs["plot"].suffix.lower() != ".png":
        raise BenchmarkError(f"--plot {plot} must be a .png file")
    from rtdeploy.checks import check_memory

    size = int(image_size) if image_size is not None else 32  # the smallest default: a lower bound
    biggest = max(parse_positive_ints(batch, "--batch"))
    check_memory(biggest, 3, size, error=BenchmarkError, what=f"--batch {biggest} at {size}x{size}")
    _check_parallelism(threads, streams)
    named, files = _names_and_files(model)
    if named:
        depth = ",".join(str(d) for d in named)  # --model resnet18,resnet50: the same sweep as --depth 18,50
    models = tuple(Path(m) for m in files)
    for m in models:
        if not m.is_file():
            raise BenchmarkError(f"--model {m} {not_a_file(m)}; give an ONNX file or a TensorRT engine")
        _check_model_memory(m, biggest, max(parse_positive_ints(streams, "--streams")))
    cfg = BenchConfig(
        depths=parse_depths(depth) if not models else (), models=models,
        precisions=parse_names(precision, "--precision", PRECISIONS), backends=parse_names(backend, "--backend", BACKENDS),
        device=device, batches=parse_positive_ints(batch, "--batch"),
        warmup_s=parse_duration(warmup, "--warmup", allow_zero=True),
        iterations=int(iterations) if iterations is not None else None,
        duration_s=parse_duration(duration, "--duration", allow_zero=True) if duration is not None else None,
        repeats=int(repeats), streams=parse_positive_ints(streams, "--streams"), threads=int(threads), image_size=int(image_size) if image_size is not None else None,
        cuda_graph=bool(cuda_graph), channels_last=bool(channels_last), compile=bool(compile),
        workdir=Path(workdir) if workdir else default_workdir(), progress=bool(progress), **outputs,
    )
    _check_trt_exports(cfg)
    return cfg


# Threads or concurrent streams beyond this are a typo, not a measurement: each stream holds its own
# session, and thousands of threads or sessions exhaust the machine before the first timing.
MAX_PARALLEL = 1024


def _check_parallelism(threads, streams) -> None:
    """``--threads`` and every ``--streams`` value at most :data:`MAX_PARALLEL`."""
    cores = os.cpu_count() or 1
    for option, value in (("--threads", int(threads)), ("--streams", max(parse_positive_ints(streams, "--streams")))):
        if value > MAX_PARALLEL:
            raise BenchmarkError(f"{option} {value} is not accepted; give at most {MAX_PARALLEL} (this machine has {cores} CPU cores)")


def _check_model_memory(path: Path, batch: int, streams: int) -> None:
    """An ONNX ``--model`` at the largest batch on every stream, by the shapes its graph declares
    (anything that is not ONNX is left to the stages that read it)."""
    from rtdeploy.artifacts import load_onnx_graph, read_manifest
    from rtdeploy.errors import ArtifactError
    from rtdeploy.footprint import check_model_memory, manifest_sample_shape

    graph = load_onnx_graph(path) if path.suffix.lower() == ".onnx" else None
    if graph is None:
        return
    try:
        sample = manifest_sample_shape(read_manifest(path, required=False))
    except ArtifactError:  # the stage that reads the manifest says what is wrong with it
        sample = None
    check_model_memory(graph, batch, sample_shape=sample, copies=streams, error=BenchmarkError,
                       what=f"bench --model {path.name} --batch {batch}" + (f" on {streams} streams" if streams > 1 else ""))


def _check_trt_exports(cfg: BenchConfig) -> None:
    """``--export-profile`` / ``--export-times`` describe one TensorRT configuration timed on one stream."""
    asked = [flag for flag, path in (("--export-profile", cfg.export_profile), ("--export-times", cfg.export_times)) if path]
    if not asked:
        return
    flags = " and ".join(asked)
    if cfg.models:
        from rtdeploy.artifacts import ENGINE_SUFFIXES

        if len(cfg.models) != 1 or cfg.models[0].suffix.lower() not in ENGINE_SUFFIXES:
            raise BenchmarkError(f"{flags} need exactly one TensorRT engine in --model (given: {', '.join(m.name for m in cfg.models)}); "
                                 "time one engine per run when exporting its profile")
    elif cfg.backends != ("tensorrt",) or len(cfg.depths) != 1 or len(cfg.precisions) != 1:
        raise BenchmarkError(f"{flags} describe one TensorRT engine; give --backend tensorrt with one --depth and one "
                             "--precision, or --model ENGINE")
    if len(cfg.batches) != 1 or cfg.streams != (1,):
        raise BenchmarkError(f"{flags} describe one batch size on one stream; give a single --batch and no --streams")


def _names_and_files(model) -> tuple[tuple[int, ...], tuple[str, ...]]:
    """``--model``'s items split into registry models (as depths) and files: an item with a path
    (a folder part, a model suffix, or an existing file) is a file, anything else a name.

    Raises:
        BenchmarkError: names and files mixed; ModelError: an unknown name.
    """
    from rtdeploy.models.specs import resolve_depth

    items = _split(model, "--model") if model else []
    files = [i for i in items if Path(i).suffix or Path(i).name != i or Path(i).exists()]
    names = [i for i in items if i not in files]
    if names and files:
        raise BenchmarkError(f"--model mixes model names ({names[0]}) and files ({files[0]}); give one kind per run")
    return tuple(dict.fromkeys(resolve_depth(n, None) for n in names)), tuple(files)


def _is_int(v) -> bool:
    if isinstance(v, bool):
        return False
    if isinstance(v, int):
        return True
    return isinstance(v, str) and v.strip().lstrip("-").isascii() and v.strip().lstrip("-").isdigit()
