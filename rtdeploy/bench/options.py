"""Benchmark options: parsing ("200ms", "18,50", "all") and the validated configuration.

Everything a user can get wrong is checked here, before any model is exported or loaded.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from rtdeploy.artifacts import ENGINE_SUFFIXES
from rtdeploy.files import default_cache_dir, not_a_file
from rtdeploy.errors import BenchmarkError
from rtdeploy.options import FLAG, WRITES, JsonReport, Options, Progress, When, option

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


def parse_depth_names(value) -> tuple[str, ...]:
    """``--depth``'s ResNets by registered name: ``"18,50"`` -> ``("resnet18", "resnet50")``."""
    if isinstance(value, tuple) and all(isinstance(v, str) and not v.isdigit() for v in value):
        return value
    return tuple(f"resnet{d}" for d in parse_depths(value))


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


def _names_or_files(value) -> tuple[str | Path, ...]:
    """``--model``: registered names (a sweep, like --depth) or ONNX files / engines to time.

    An item with a path (a folder part, a model suffix, or an existing file) is a file; anything
    else a name.

    Raises:
        BenchmarkError: names and files mixed, a file that is not one; ModelError: an unknown name.
    """
    from rtdeploy.models.registry import get_model

    if isinstance(value, tuple) and all(isinstance(v, Path) for v in value):
        return value  # files, already parsed (or nothing given)
    items = _split(value, "--model")
    files = [i for i in items if Path(i).suffix or Path(i).name != i or Path(i).exists()]
    names = [i for i in items if i not in files]
    if names and files:
        raise BenchmarkError(f"--model mixes model names ({names[0]}) and files ({files[0]}); give one kind per run")
    for f in files:
        if not Path(f).is_file():
            raise BenchmarkError(f"--model {f} {not_a_file(f)}; give an ONNX file or a TensorRT engine")
    if files:
        return tuple(Path(f) for f in dict.fromkeys(files))
    return tuple(dict.fromkeys(get_model(n).name for n in names))


def _list(option: str, accepted: tuple[str, ...]):
    return lambda value: parse_names(value, option, accepted)


def _device(value) -> str:
    if value not in DEVICES:
        raise BenchmarkError(f"unknown device {value!r}; accepted: {', '.join(DEVICES)}")
    return value


def _ints(option: str):
    return lambda value: parse_positive_ints(value, option)


def _duration(option: str, *, allow_zero: bool = True):
    return lambda value: parse_duration(value, option, allow_zero=allow_zero)


def _count(option: str, minimum: int, what: str):
    def parse(value) -> int:
        if not _is_int(value) or int(value) < minimum:
            raise BenchmarkError(f"{option} {value!r} is not accepted; give {what}")
        return int(value)

    return parse


def _image_size(value) -> int:
    if not _is_int(value) or int(value) < 8:
        raise BenchmarkError(f"--image-size {value!r} is not accepted; give a size of at least 8 pixels, such as 64 or 224")
    return int(value)


# Options of a sweep over registered models: a given file is timed as it is (its own size,
# precision and backend).
SWEEP = When("files", lambda files: not files, message="{given} does nothing {decider}: a given model is timed as it is "
                                  "(its own input size, precision and backend); drop {option}")


def _uses(backend: str, flag: str):
    return When("backends_used", lambda used: backend in used,
                message="{option} applies to --backend " + backend + " only, and this run times none ({decider}); drop it or add --backend " + backend)


# Options of torch and onnxruntime: TensorRT runs with its own threads.
NOT_ONLY_TENSORRT = When("backends_used", lambda used: bool(used - {"tensorrt"}),
                         message="{given} applies to torch and onnxruntime only, and this run times TensorRT alone ({decider}); drop {option}")


@dataclass(frozen=True, kw_only=True)
class BenchConfig(JsonReport, Progress, Options):
    """A benchmark request: ``rtdeploy bench``'s options, each declared once here, parsed and checked.

    ``depth`` and ``model`` choose what to time: registered models by name (a sweep; ``depth`` is
    the ResNet alias, ``all`` the five ImageNet depths) or ONNX files / engines as given. A window
    ends when both ``duration`` (default 1 s; 0: none) and ``iterations`` (default 200 on a GPU,
    20 on CPU, per stream) are reached.
    """

    error = BenchmarkError

    depth: tuple[str, ...] = option("50", "--depth", metavar="LIST", parse=parse_depth_names, cli_default="50",
                                    applies=(When("model", lambda model: not model, message="{option} does nothing with {decider}: --model chooses what "
                                                                         "to time; drop one of them"),),
                                    help="Depths, comma-separated (18,34,50,101,152; CIFAR 20..110), or 'all' (the five ImageNet depths).")
    model: tuple = option((), "--model", metavar="NAMES|FILES", parse=_names_or_files, show_default=False,
                          help="Models by name (resnet18,resnet50: a sweep like --depth), or ONNX files / TensorRT engines to time, "
                               "exported or imported (comma-separated).")
    precision: tuple[str, ...] = option("fp32", "--precision", metavar="LIST", parse=_list("--precision", PRECISIONS), cli_default="fp32",
                                        applies=(SWEEP,), help="fp32, fp16, int8 (comma-separated).")
    backend: tuple[str, ...] = option("onnxruntime", "--backend", metavar="LIST", parse=_list("--backend", BACKENDS),
                                      cli_default="onnxruntime", applies=(SWEEP,), help="torch, onnxruntime, tensorrt (comma-separated).")
    device: str = option("cpu", "--device", metavar="cpu|cuda", parse=_device,
                         help="cpu or cuda for torch and onnxruntime (TensorRT always runs on the GPU).")
    batch: tuple[int, ...] = option("1", "--batch", metavar="LIST", parse=_ints("--batch"), cli_default="1",
                                    help="Batch sizes, comma-separated, e.g. 1,8,32.")
    warmup: float = option("200ms", "--warmup", metavar="TIME", parse=_duration("--warmup"), cli_default="200ms",
                           help="Warm-up before each timed window, e.g. 200ms, 1s, 0.")
    iterations: int | None = option(None, "--iterations", metavar="N",
                                    parse=_count("--iterations", 1, "a positive number of timed iterations such as 100"),
                                    help="Minimum timed iterations per window and stream  [default: 200 on a GPU, 20 on CPU].")
    duration: float | None = option(None, "--duration", metavar="TIME", parse=_duration("--duration"),
                                    help="Minimum length of each timed window, e.g. 3s (0: none); a window ends when both minima are met  [default: 1s].")
    streams: tuple[int, ...] = option("1", "--streams", metavar="LIST", parse=_ints("--streams"), cli_default="1",
                                      help="Concurrent streams, comma-separated, e.g. 1,2,4: sessions (onnxruntime), CUDA streams (torch), "
                                           "execution contexts (TensorRT).")
    repeats: int = option(3, "--repeats", metavar="N", parse=_count("--repeats", 1, "a positive number such as 3"),
                          help="Timed windows per configuration, interleaved across configurations.")
    threads: int = option(0, "--threads", metavar="N", applies=(NOT_ONLY_TENSORRT,),
                          parse=_count("--threads", 0, "0 (the library's default) or a positive number"),
                          help="Intra-op threads for torch and onnxruntime (0: library default).")
    image_size: int | None = option(None, "--image-size", metavar="N", parse=_image_size, applies=(SWEEP,),
                                    help="Input height/width (default: the model's, 224 or 32).")
    cuda_graph: bool = option(False, "--cuda-graph", kind=FLAG, applies=(_uses("tensorrt", "--cuda-graph"),),
                              help="TensorRT: capture and replay a CUDA graph.")
    channels_last: bool = option(False, "--channels-last", kind=FLAG, applies=(_uses("torch", "--channels-last"),),
                                 help="torch: NHWC memory format.")
    compile: bool = option(False, "--compile", kind=FLAG, applies=(_uses("torch", "--compile"),), help="torch: time torch.compile'd models.")
    workdir: Path = option(factory=lambda: default_workdir(), flags=("--workdir",), type=Path, metavar="DIR", changes_output=False,
                           parse=Path, show_default=False,
                           help="Where artifacts are prepared and reused  [default: ~/.cache/rtdeploy/bench].")
    markdown: Path | None = option(None, "--markdown", type=Path, metavar="FILE", path=WRITES, help="Write a Markdown report.")
    plot: Path | None = option(None, "--plot", type=Path, metavar="FILE.png", path=WRITES,
                               help="Write a PNG plot of latency and throughput against depth and GMACs.")
    export_profile: Path | None = option(None, "--export-profile", type=Path, metavar="FILE", path=WRITES,
                                         help="TensorRT: per-layer times in trtexec's --exportProfile JSON (a separate profiled run).")
    export_times: Path | None = option(None, "--export-times", type=Path, metavar="FILE", path=WRITES,
                                       help="TensorRT: per-inference times in trtexec's --exportTimes JSON (a separate run).")
    command: str | None = option(None, cli=False, changes_output=False, help="The command line to record in the report.")

    @property
    def files(self) -> tuple[Path, ...]:
        """The ONNX files and engines given to time as they are (``--model FILE``)."""
        return tuple(m for m in self.model if isinstance(m, Path))

    @property
    def names(self) -> tuple[str, ...]:
        """The registered models to sweep (``--model NAME`` or ``--depth``); none when files are given."""
        if self.files:
            return ()
        return tuple(self.model) if self.model else self.depth

    @property
    def backends_used(self) -> frozenset[str]:
        """The backends this request times: those of the given files, or ``backend``."""
        if self.files:
            return frozenset("tensorrt" if p.suffix.lower() in ENGINE_SUFFIXES else "onnxruntime" for p in self.files)
        return frozenset(self.backend)

    def explain(self, name: str) -> str:
        if self.files:
            return f"with --model {','.join(p.name for p in self.files)}"
        return f"with --backend {','.join(self.backend)}"

    def rule(self, device: str):
        """The :class:`~rtdeploy.bench.stoprule.StopRule` of a configuration on ``device`` (``cpu``/``cuda``)."""
        from rtdeploy.bench.stoprule import default_rule

        return default_rule(device, warmup_s=self.warmup, iterations=self.iterations, duration_s=self.duration)

    def rules(self) -> None:
        """The rules between options and the memory one forward pass needs, before anything runs.

        Raises:
            BenchmarkError: an option combination that cannot be timed.
        """
        if self.plot is not None and Path(self.plot).suffix.lower() != ".png":
            raise BenchmarkError(f"--plot {self.plot} must be a .png file")
        from rtdeploy.checks import check_memory

        size = self.image_size if self.image_size is not None else 32  # the smallest default: a lower bound
        biggest = max(self.batch)
        check_memory(biggest, 3, size, error=BenchmarkError, what=f"--batch {biggest} at {size}x{size}")
        _check_parallelism(self.threads, self.streams)
        for f in self.files:
            _check_model_memory(f, biggest, max(self.streams))
        _check_trt_exports(self)

    def reads(self) -> list[Path]:
        return list(self.files)


def default_workdir() -> Path:
    """``bench`` in rtdeploy's cache folder (:func:`rtdeploy.files.default_cache_dir`, e.g.
    ``~/.cache/rtdeploy/bench``): never the working directory."""
    return default_cache_dir() / "bench"


# Threads or concurrent streams beyond this are a typo, not a measurement: each stream holds its own
# session, and thousands of threads or sessions exhaust the machine before the first timing.
MAX_PARALLEL = 1024


def _check_parallelism(threads: int, streams: tuple[int, ...]) -> None:
    """``--threads`` and every ``--streams`` value at most :data:`MAX_PARALLEL`."""
    cores = os.cpu_count() or 1
    for flag, value in (("--threads", threads), ("--streams", max(streams))):
        if value > MAX_PARALLEL:
            raise BenchmarkError(f"{flag} {value} is not accepted; give at most {MAX_PARALLEL} (this machine has {cores} CPU cores)")


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
    if cfg.files:
        if len(cfg.files) != 1 or cfg.files[0].suffix.lower() not in ENGINE_SUFFIXES:
            raise BenchmarkError(f"{flags} need exactly one TensorRT engine in --model (given: {', '.join(m.name for m in cfg.files)}); "
                                 "time one engine per run when exporting its profile")
    elif cfg.backend != ("tensorrt",) or len(cfg.names) != 1 or len(cfg.precision) != 1:
        raise BenchmarkError(f"{flags} describe one TensorRT engine; give --backend tensorrt with one --depth and one "
                             "--precision, or --model ENGINE")
    if len(cfg.batch) != 1 or cfg.streams != (1,):
        raise BenchmarkError(f"{flags} describe one batch size on one stream; give a single --batch and no --streams")


def _is_int(v) -> bool:
    if isinstance(v, bool):
        return False
    if isinstance(v, int):
        return True
    return isinstance(v, str) and v.strip().lstrip("-").isascii() and v.strip().lstrip("-").isdigit()
