"""The calibrator registry: one protocol, and the names every command offers for ``--method``.

A calibrator turns activation statistics into a clipping threshold (amax) per tensor::

    from rtdeploy.precision.calibrators import register_calibrator

    @register_calibrator("p99", description="the 99th percentile of |x|")
    def p99(stats, inputs):
        return {name: percentile_of(s, 99.0) for name, s in stats.items()}

``stats`` maps each tensor to its :class:`~rtdeploy.precision.int8.histogram.TensorStats` (the
maximum of |x| and, when the calibrator needs it, a histogram of |x|); ``inputs`` is a
:class:`CalibrationInputs`. A calibrator that needs more than statistics declares it with
``needs``: ``"model"`` (the FP32 ONNX and the Q/DQ placement plan) and ``"images"`` (batches of the
statistics part of the calibration images); ``targets`` says which INT8 forms it can calibrate.
``quantize``, ``run`` and ``build-engine`` take every registered name as ``--method``, and a
calibrator registered by a plugin (:mod:`rtdeploy.plugins`) is among them on the command line.

The built-in calibrators (``entropy``, ``max``, ``percentile``, ``mse`` from the histogram; the
model-aware ``consumer-mse``) are registered the same way on first use.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from rtdeploy.errors import PrecisionError

# What a calibrator may need besides the maximum of |x|.
HISTOGRAM, MODEL, IMAGES = "histogram", "model", "images"
NEEDS = (HISTOGRAM, MODEL, IMAGES)
TARGETS = ("tensorrt", "onnxruntime-cpu")
DEFAULT = "mse"  # --method's default (rtdeploy.precision.options), and the built-in that shows the built-ins are registered

_registry: dict[str, "Calibrator"] = {}


@dataclass(frozen=True)
class CalibrationInputs:
    """What a calibrator may read besides the statistics.

    Attributes:
        percentile: the ``--percentile`` option (for the calibrators that take it).
        model: the FP32 ONNX (``onnx.ModelProto``; calibrators that need ``"model"``).
        plan: the Q/DQ placement (:class:`rtdeploy.precision.int8.qdq.QdqPlan`; ``"model"``).
        batches: ``batches(batch_size) -> iterator of input arrays`` over the statistics part of the
            calibration images, never the held-out part (calibrators that need ``"images"``).
        target: the INT8 form being made (``tensorrt`` or ``onnxruntime-cpu``).
        sample_shape: one input's shape as the stages feed it (C, H, W), for memory estimates.
    """

    percentile: float = 99.99
    model: Any = None
    plan: Any = None
    batches: Callable[[int], Iterator[Any]] | None = None
    target: str = "tensorrt"
    sample_shape: tuple[int, ...] | None = None


@dataclass(frozen=True)
class Calibrator:
    """One registered calibrator.

    Attributes:
        name: its ``--method`` name.
        thresholds: ``thresholds(stats, inputs) -> {tensor: amax}`` for every tensor of ``stats``.
        needs: what besides the maxima it reads (HISTOGRAM, MODEL, IMAGES).
        targets: the INT8 forms it can calibrate.
        description: one line for ``--help`` and docs.
        settings: what to record in the manifest about how it ran (a JSON-ready dict), or None.
    """

    name: str
    thresholds: Callable[[dict, CalibrationInputs], dict[str, float]]
    needs: frozenset[str] = field(default_factory=lambda: frozenset({HISTOGRAM}))
    targets: tuple[str, ...] = TARGETS
    description: str = ""
    settings: Callable[[], dict] | None = None

    @property
    def model_aware(self) -> bool:
        """True when it needs the model or images, not statistics alone."""
        return bool(self.needs & {MODEL, IMAGES})


def register_calibrator(name: str, *, needs: tuple[str, ...] = (HISTOGRAM,), targets: tuple[str, ...] = TARGETS,
                        description: str = "", settings: Callable[[], dict] | None = None) -> Callable[[Callable], Callable]:
    """Register ``fn(stats, inputs) -> {tensor: amax}`` as calibrator ``name`` (a decorator; returns ``fn``).

    Raises:
        PrecisionError: a bad name, an unknown need or target, or a name taken by another function.
    """
    from rtdeploy.checks import model_name

    model_name(name, "register_calibrator name", PrecisionError)
    unknown = [n for n in needs if n not in NEEDS] + [t for t in targets if t not in TARGETS]
    if unknown:
        raise PrecisionError(f"register_calibrator({name!r}): {unknown[0]!r} is not known; needs: {', '.join(NEEDS)}; "
                             f"targets: {', '.join(TARGETS)}")

    def decorate(fn: Callable) -> Callable:
        old = _registry.get(name)
        if old is not None and (old.thresholds.__module__, old.thresholds.__qualname__) != (fn.__module__, fn.__qualname__):
            raise PrecisionError(f"calibrator {name!r} is already registered (by {old.thresholds.__module__}); choose another name")
        _registry[name] = Calibrator(name, fn, frozenset(needs), tuple(targets), description, settings)
        return fn

    return decorate


def _entries() -> dict[str, Calibrator]:
    """The registry, with the built-in calibrators and the plugins' (loaded on first use)."""
    from rtdeploy.plugins import filled
    from rtdeploy.precision.int8.builtin_calibrators import register_builtins

    return filled(_registry, DEFAULT, register_builtins, register_calibrator)


def list_calibrators() -> tuple[str, ...]:
    """Every registered calibrator name (the built-ins first): the ``--method`` choices."""
    return tuple(_entries())


def get_calibrator(name: str) -> Calibrator:
    """The calibrator registered as ``name``.

    Raises:
        PrecisionError: no calibrator has that name (the message lists the accepted ones).
    """
    entries = _entries()
    if name not in entries:
        raise PrecisionError(f"unknown calibration method {name!r}; accepted: {', '.join(entries)}")
    return entries[name]


def check_method(method: str, percentile: float) -> None:
    """Raises PrecisionError for a method no calibrator is registered as, or a percentile outside (0, 100]."""
    from rtdeploy.precision.int8.calibrators import check_percentile

    get_calibrator(method)
    check_percentile(percentile)


def parse_method(name: str) -> str:
    """``name`` checked against the registry (the ``--method`` option's parser)."""
    return get_calibrator(str(name)).name


def describe() -> str:
    """The calibrators, one ``name: description`` each, for ``--help``."""
    return "; ".join(f"{c.name}: {c.description}" if c.description else c.name for c in _entries().values())


def calibration_inputs(cfg, parent, plan, split, target: str = "tensorrt"):
    """What a calibrator may read besides the statistics (:class:`CalibrationInputs`)."""
    return CalibrationInputs(percentile=cfg.percentile, model=parent.model, plan=plan,
                             batches=lambda batch: split.stats_batches(batch), target=target,
                             sample_shape=getattr(parent, "sample_shape", None))


def calibrator_settings(cfg) -> dict:
    """The manifest record of how a calibrator with settings ran: ``calibrator_settings`` (any
    registered calibrator), and for ``consumer-mse`` also under its older key ``consumer_mse``."""
    if cfg.from_trt_cache is not None:
        return {}
    calibrator = get_calibrator(cfg.method)
    if calibrator.settings is None:
        return {}
    settings = calibrator.settings()
    record = {"calibrator_settings": {"calibrator": calibrator.name, **settings}}
    if calibrator.name == "consumer-mse":
        record["consumer_mse"] = settings
    return record
