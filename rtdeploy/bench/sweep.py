"""The benchmark sweep: plan the configurations, prepare their artifacts, time them interleaved.

Artifacts come from the pipeline's own stages (``api.export``, ``api.quantize``,
``api.build_engine``) into a work folder, and are reused on later runs when their manifests still
match (same model, same parent bytes), so a sweep pays each export or engine build once.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rtdeploy.bench import backends as be
from rtdeploy.machine import describe, load_average, torch_threads
from rtdeploy.bench.harness import Case, run_interleaved
from rtdeploy.artifacts import ENGINE_SUFFIXES
from rtdeploy.bench.options import BACKENDS, BenchConfig
from rtdeploy.bench.prepare import prepare_slots
from rtdeploy.bench.results import SCHEMA_ID, result_record, scaling_table
from rtdeploy.bench.naming import assign_labels, quantization_facts
from rtdeploy.bench.notes import int8_cpu_note, tuned_for_note
from rtdeploy.bench.stats import NOISE_ADVICE
from rtdeploy.errors import BenchmarkError, RtDeployError
from rtdeploy.models import ModelMeta, get_model

log = logging.getLogger(__name__)


@dataclass
class Slot:
    """One runner to time: a model in one backend and precision, at one or more batch sizes.

    Attributes:
        artifact: the ONNX file or engine it runs (None for torch, which builds the model itself).
        engines: TensorRT engines the sweep built, one per batch size with a static profile (as trtexec
            ``--shapes`` times each shape on an engine tuned for it); empty for a given engine, which is
            timed at every batch on its own profile.
        given: the artifact was given by the user (``--model``), not prepared by the sweep.
        channels_last, compile: torch variants (NHWC memory format; ``torch.compile``).
        tag: tells apart given files of the same model, backend and precision (their file name).
    """

    meta: ModelMeta
    backend: str
    precision: str
    batches: tuple[int, ...]
    artifact: Path | None = None
    engines: dict[int, Path] = field(default_factory=dict)
    given: bool = False
    channels_last: bool = False
    compile: bool = False
    tag: str = ""
    runner_name: str = ""
    spin_wait: bool | None = None
    cases: list[Case] = field(default_factory=list)

    def artifact_for(self, batch: int) -> Path | None:
        """The file timed at ``batch``: its own engine when the sweep built one per batch, else ``artifact``."""
        return self.engines.get(batch, self.artifact)

    @property
    def label(self) -> str:
        """``resnet50/torch+channels_last/fp16``: unique within a sweep."""
        variant = "".join(f"+{v}" for v, on in (("channels_last", self.channels_last), ("compile", self.compile)) if on)
        tag = f"[{self.tag}]" if self.tag else ""
        return f"{self.meta.name}{tag}/{self.backend}{variant}/{self.precision}"


def plan(cfg: BenchConfig) -> tuple[list[Slot], list[dict]]:
    """The runners a request needs, and the combinations skipped as unsupported (with reasons)."""
    if cfg.files:
        slots = [_slot_for_file(p, cfg) for p in cfg.files]
        labels = [s.label for s in slots]
        for slot in slots:
            if labels.count(slot.label) > 1:  # two files of one model and precision: tell them apart by name
                slot.tag = slot.artifact.name
        return slots, []
    slots, skipped = [], []
    for name in cfg.names:
        meta = get_model(name).meta(image_size=cfg.image_size)
        for backend in cfg.backend:
            for precision in cfg.precision:
                reason = be.unsupported_reason(backend, precision, cfg.device)
                if reason:
                    skipped.append({"model": meta.name, "backend": backend, "precision": precision, "reason": reason})
                else:
                    torch_only = backend == "torch"
                    slots.append(Slot(meta, backend, precision, cfg.batch, channels_last=cfg.channels_last and torch_only,
                                      compile=cfg.compile and torch_only))
    return slots, skipped


def _slot_for_file(path: Path, cfg: BenchConfig) -> Slot:
    from rtdeploy.artifacts import check_matches_manifest
    from rtdeploy.manifests import read_artifact, read_engine

    is_engine = path.suffix.lower() in ENGINE_SUFFIXES
    manifest = read_engine(path) if is_engine else read_artifact(path)
    check_matches_manifest(path, manifest.sha256, remedy="re-run the stage that made it, then time the new file")
    meta = _model_entry(manifest, path)
    precision = manifest.precision
    if is_engine:
        limit = manifest.max_batch
        too_big = [b for b in cfg.batch if b > limit]
        if too_big:
            raise BenchmarkError(f"--batch {max(too_big)} is larger than engine {path.name}'s optimization profile (max batch {limit}); "
                                 f"give --batch {limit} or less, or rebuild the engine with a larger max batch")
        return Slot(meta, "tensorrt", precision, cfg.batch, path, given=True)
    if path.suffix.lower() == ".onnx":
        return Slot(meta, "onnxruntime", precision, cfg.batch, path, given=True)
    raise BenchmarkError(f"--model {path} is neither an ONNX file (.onnx) nor a TensorRT engine ({', '.join(ENGINE_SUFFIXES)})")


def _model_entry(manifest, path: Path) -> ModelMeta:
    """The typed manifest's ``model`` section (null only for an engine built from an ONNX without a manifest)."""
    from rtdeploy.errors import ArtifactError

    if manifest.model is None:
        raise ArtifactError(f"the manifest of {path} does not say which model it holds (it was built from an ONNX without "
                            "an rtdeploy manifest); build it from the ONNX that `rtdeploy export` or `quantize` wrote")
    return manifest.model


def run_sweep(cfg: BenchConfig, *, command: str | None = None) -> dict:
    """Plan, prepare, time and summarize a benchmark request.

    Returns:
        the report as a dict following ``rtdeploy/bench/schema.json``.

    Raises:
        BenchmarkError: nothing can run, or a runner fails on its first inference.
        MissingDependency: a backend or the GPU it needs is absent.
    """
    env = describe(cfg.device)
    slots, skipped = plan(cfg)
    if not slots:
        raise BenchmarkError("nothing to run: " + "; ".join(sorted({s["reason"] for s in skipped})))
    backends = tuple(b for b in BACKENDS if any(s.backend == b for s in slots))
    for b in backends:
        be.check_installed(b)
    be.check_device(backends, cfg.device)
    slots = prepare_slots(slots, cfg, skipped)
    if not slots:
        raise BenchmarkError("nothing to run: " + "; ".join(sorted({s["reason"] for s in skipped})))
    return run_slots(slots, cfg, skipped=skipped, env=env, command=command)


def run_slots(slots: list[Slot], cfg: BenchConfig, *, skipped: list[dict] | None = None, env: dict | None = None,
              command: str | None = None) -> dict:
    """Time prepared slots interleaved and summarize them (for scripts that build their own slots).

    Returns:
        the report dict (``rtdeploy/bench/schema.json``).
    """
    env = env or describe(cfg.device)
    backends = tuple(b for b in BACKENDS if any(s.backend == b for s in slots))
    exports: dict = {"profile": None, "times": None, "profile_count": None, "times_count": None}
    with contextlib.ExitStack() as stack:
        stack.enter_context(torch_threads(cfg.threads if "torch" in backends else 0))
        scratch = _Scratch(stack)  # closed after every runner (the stack unwinds last in, first out)
        cases = [c for s in slots for c in _open_cases(s, cfg, stack, scratch)]
        started = _now()
        _time(cases, cfg)
        measured = {"start": started, "end": _now()}
        if cfg.export_times or cfg.export_profile:
            exports = _export_trt(slots, cfg)
    env["load_average_end"] = load_average()
    report = _report(cfg, slots, skipped or [], env, command)
    report["measured"] = measured
    report["exports"] = exports
    return report


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _export_trt(slots: list[Slot], cfg: BenchConfig) -> dict:
    """trtexec's --exportTimes / --exportProfile for the one TensorRT configuration, each from its own run after
    the timed windows (like trtexec's --separateProfileRun: the profiler's synchronisation never touches the
    latencies reported), of the same warm-up and length as a timed window."""
    from rtdeploy.bench.exports import profile_run, times_run

    slot = next(s for s in slots if s.backend == "tensorrt")
    case = slot.cases[0]
    rule = cfg.rule("cuda")
    out: dict = {"profile": None, "times": None, "profile_count": None, "times_count": None}
    if cfg.export_times:
        out["times_count"] = times_run(case.timers[0], rule, cfg.export_times)
        out["times"] = str(cfg.export_times)
    if cfg.export_profile:
        feed = case.timers[0].feed
        out["profile_count"] = profile_run(lambda times: be.trt_profiled_runner(slot.artifact_for(case.batch), times), feed, rule,
                                           cfg.export_profile)
        out["profile"] = str(cfg.export_profile)
    return out


class _Scratch:
    """The sweep's TensorRT scratch memory: one buffer per stream, shared by the execution contexts of every
    batch size and slot (they are timed one case at a time, never at once), instead of one per context."""

    def __init__(self, stack: contextlib.ExitStack):
        self.stack, self.pool = stack, None

    def lanes(self, shared_engines: list, streams: int) -> list:
        if self.pool is None:
            self.pool = be.trt_scratch_pool(shared_engines[0])
            self.stack.callback(self.pool.close)
        size = max(be.trt_scratch_size(s) for s in shared_engines)
        return [self.pool.get(lane, size) for lane in range(streams)]


def _open_cases(slot: Slot, cfg: BenchConfig, stack: contextlib.ExitStack, scratch: _Scratch) -> list[Case]:
    device = _device(slot, cfg)
    # TensorRT: each engine is deserialized once, and each batch size gets its own execution contexts,
    # because a captured CUDA graph belongs to one input shape (TensorRT #3798): interleaved batches
    # on one context would re-capture inside the timed windows. The contexts share scratch memory.
    shared, lanes = {}, None
    if slot.backend == "tensorrt":
        engines = {path: be.trt_shared_engine(path) for path in dict.fromkeys(slot.artifact_for(b) for b in slot.batches)}
        shared = {b: engines[slot.artifact_for(b)] for b in slot.batches}  # a given engine serves every batch, loaded once
        lanes = scratch.lanes(list(engines.values()), max(cfg.streams))
    runners = None
    for batch in slot.batches:
        if runners is None or shared:
            runners = _open_runners(slot, cfg, stack, shared.get(batch), lanes)
            slot.runner_name = runners[0].name
            slot.spin_wait = getattr(runners[0], "spin_wait", None)
        runner = runners[0]
        _check_batch(slot, runner, batch)
        feed = {slot.meta.input_name: _input(slot.meta, batch, runner)}
        for r in runners:
            _first_inference(slot, r, feed)
        for streams in cfg.streams:
            timers = be.make_timers(slot.backend, runners, feed, device, streams)
            key = f"{slot.label}/b{batch}" + (f"/s{streams}" if streams > 1 else "")
            case = Case(key=key, timer=timers if streams > 1 else timers[0], batch=batch, rule=cfg.rule(device))
            slot.cases.append(case)
    return slot.cases


def _device(slot: Slot, cfg: BenchConfig) -> str:
    return "cuda" if slot.backend == "tensorrt" else cfg.device


def _open_runners(slot: Slot, cfg: BenchConfig, stack: contextlib.ExitStack, shared=None, lanes=None) -> list:
    # torch runs N streams on one model; onnxruntime and TensorRT need one session / context per stream
    n_runners = 1 if slot.backend == "torch" else max(cfg.streams)
    return [stack.enter_context(_make_runner(slot, cfg, shared, lanes[i] if lanes else None)) for i in range(n_runners)]


def _make_runner(slot: Slot, cfg: BenchConfig, shared=None, scratch=None):
    if slot.backend == "torch":
        return be.torch_runner(slot.meta, slot.precision, cfg.device, channels_last=slot.channels_last, compile=slot.compile)
    if slot.backend == "onnxruntime":
        return be.ort_runner(slot.artifact, cfg.device, cfg.threads)
    return be.trt_runner(shared.path, cuda_graph=cfg.cuda_graph, shared=shared, scratch=scratch)


def _check_batch(slot: Slot, runner, batch: int) -> None:
    profile = getattr(runner, "profile", None)  # a TensorRT engine's batch profile, once active
    if profile is not None and not profile.min <= batch <= profile.max:
        raise BenchmarkError(f"--batch {batch} is outside engine {slot.artifact_for(batch).name}'s optimization profile "
                             f"(batch {profile.min}..{profile.max}); give a batch in that range, or rebuild the engine")
    session = getattr(runner, "session", None)
    if session is None:
        return
    dim = session.get_inputs()[0].shape[0]
    if isinstance(dim, int) and dim != batch:
        raise BenchmarkError(f"{slot.artifact} has a fixed batch of {dim}; give --batch {dim}, "
                             "or export with --batch dynamic to time other batch sizes")


def _input(meta: ModelMeta, batch: int, runner) -> np.ndarray:
    x = np.random.default_rng(0).standard_normal(meta.input_shape(batch), dtype=np.float32)
    dtype = runner.input_dtype() if hasattr(runner, "input_dtype") else np.float32
    return np.ascontiguousarray(x.astype(dtype, copy=False))


def _first_inference(slot: Slot, runner, feed: dict) -> None:
    """One untimed inference, so a runner that cannot run fails with a clear line before any timing."""
    try:
        runner.infer(feed)
    except RtDeployError:
        raise
    except Exception as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        hint = "; drop --compile" if slot.compile else ""
        raise BenchmarkError(f"{slot.label} failed on its first inference: {first}{hint}") from e


def _time(cases: list[Case], cfg: BenchConfig) -> None:
    from tqdm.auto import tqdm

    with tqdm(total=len(cases) * cfg.repeats, desc="bench", unit="window", file=sys.stderr,
              disable=not cfg.progress, leave=False) as bar:
        def step(case: Case, repeat: int) -> None:
            bar.set_postfix_str(f"repeat {repeat + 1}/{cfg.repeats} {case.key}", refresh=False)
            bar.update(1)

        run_interleaved(cases, rule=cfg.rule(cfg.device), repeats=cfg.repeats, on_window=step)


def _report(cfg: BenchConfig, slots: list[Slot], skipped: list[dict], env: dict, command: str | None) -> dict:
    results, warnings = [], []
    for slot in slots:
        for case in slot.cases:
            record, warns = result_record(_identity(slot, case, cfg), case.batch, case.windows, _settings(slot, cfg, case))
            results.append(record)
            warnings.extend(warns)
    assign_labels(results)
    if warnings:
        warnings.append(NOISE_ADVICE)
    notes = [n for n in (int8_cpu_note(results), tuned_for_note(results)) if n]
    start, end = env["load_average_start"], env["load_average_end"]
    cores = env.get("usable_cores") or 1
    if start and end and max(start[0], end[0]) > 0.5 * cores:
        warnings.append(f"load average was {start[0]:.2f} at start and {end[0]:.2f} at end on {cores} usable cores; "
                        "other work shared the CPU — treat small differences with care and re-run on a quiet machine")
    return {
        "schema": SCHEMA_ID,
        "created": _now(),
        "command": command,
        "settings": _global_settings(cfg),
        "environment": env,
        "results": results,
        "scaling": scaling_table(results),
        "skipped": skipped,
        "warnings": warnings,
        "notes": notes,
    }


def _identity(slot: Slot, case: Case, cfg: BenchConfig) -> dict:
    from rtdeploy.files import sha256_file

    artifact, path = None, slot.artifact_for(case.batch)
    if path is not None:
        artifact = {"path": str(path), "sha256": sha256_file(path)}
    return {
        "id": case.key, "model": slot.meta.name, "depth": slot.meta.depth, "family": slot.meta.family,
        "image_size": slot.meta.image_size, "gmacs": slot.meta.gmacs, "backend": slot.backend,
        "runner": slot.runner_name, "precision": slot.precision,
        "device": _device(slot, cfg), "artifact": artifact,
        "quantization": quantization_facts(slot.artifact) if slot.precision == "int8" else None,
    }


def _settings(slot: Slot, cfg: BenchConfig, case: Case) -> dict:
    device = _device(slot, cfg)
    rule = case.rule or cfg.rule(device)
    return {
        "warmup_s": rule.warmup_s, "min_iterations": rule.min_iterations, "min_duration_s": rule.min_duration_s,
        "streams": case.streams, "streams_mode": be.stream_mode(slot.backend, device),
        "timer": case.timers[0].kind,
        "threads": cfg.threads if slot.backend != "tensorrt" else None,
        "cuda_graph": cfg.cuda_graph if slot.backend == "tensorrt" else False,
        "spin_wait": slot.spin_wait,
        "data_transfers": device == "cuda",
        "channels_last": slot.channels_last,
        "compile": slot.compile,
        "profile": _profile_of(slot, case) if slot.backend == "tensorrt" else None,
    }


def _profile_of(slot: Slot, case: Case) -> str | None:
    """A TensorRT engine's optimization profile ``MIN:OPT:MAX``, as its runner read it."""
    profile = getattr(case.timers[0].runner, "profile", None)
    return f"{profile.min}:{profile.opt}:{profile.max}" if profile is not None else None


def _global_settings(cfg: BenchConfig) -> dict:
    torch_threads = None
    if "torch" in sys.modules:  # the threads torch used: the requested count, or its default
        torch_threads = cfg.threads or sys.modules["torch"].get_num_threads()
    return {
        "device": cfg.device, "batches": list(cfg.batch), "streams": list(cfg.streams), "warmup_s": cfg.warmup,
        "iterations": cfg.iterations, "duration_s": cfg.duration, "stop_rule": STOP_RULE, "repeats": cfg.repeats,
        "interleaved": True,
        "threads": cfg.threads, "torch_threads": torch_threads, "image_size": cfg.image_size,
        "cuda_graph": cfg.cuda_graph, "channels_last": cfg.channels_last, "compile": cfg.compile,
        "workdir": str(cfg.workdir), "clock": "time.perf_counter_ns",
    }


STOP_RULE = ("each window: warm-up, then inferences until both the minimum duration and the minimum iterations "
             "(per stream) are reached; iterations/duration null = the device's default (see each result's settings)")
