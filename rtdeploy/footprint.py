"""The memory running an ONNX model takes, read from the shapes its graph declares.

A model says how big its tensors are before anything runs: an imported one may declare a
60000x60000 input, or a layer of a million channels. Every stage that runs a model (validate,
quantize and its calibration sessions, bench) calls :func:`check_model_memory` before it
allocates, so such a model is refused in one line instead of failing deep inside numpy ("Unable
to allocate 112 GiB") or being killed by the kernel after eating the machine's memory.

The estimate is a lower bound no runtime beats: the weights, plus, per sample, the most that one
step must hold at once: a node's inputs or its outputs (both are alive while it runs), or all of
the graph's outputs together (they are returned at once; a calibration session outputs every
activation it observes). A tensor whose shape is not known counts as empty, so an estimate can be
too low, never too high.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from rtdeploy.checks import check_bytes
from rtdeploy.errors import RtDeployError


@dataclass(frozen=True)
class Footprint:
    """What running a model holds in memory.

    Attributes:
        weights: bytes of its initializers (from their declared dims, so external data need not be read).
        per_sample: bytes per sample of every activation whose shape is known (batch axis excluded).
        peak_per_sample: the most bytes per sample one step holds at once (see the module docstring).
        fixed_batch: the batch the graph's input fixes (it always runs in chunks of that size), else None.
    """

    weights: int
    per_sample: dict[str, int] = field(repr=False)
    peak_per_sample: int
    fixed_batch: int | None

    def held_per_sample(self, names: Iterable[str]) -> int:
        """Bytes per sample of the tensors ``names`` held together (unknown ones count as 0)."""
        return sum(self.per_sample.get(n, 0) for n in set(names))

    def need(self, batch: int, *, copies: int = 1, holding: Iterable[str] = ()) -> int:
        """Bytes at least, for ``copies`` sessions each running ``batch`` samples (a fixed-batch
        model runs its own batch) while also holding the tensors ``holding``."""
        per_sample = max(self.peak_per_sample, self.held_per_sample(holding))
        return copies * (self.weights + (self.fixed_batch or batch) * per_sample)


def footprint(model, sample_shape: tuple[int, ...] | None = None) -> Footprint:
    """The :class:`Footprint` of an ``onnx.ModelProto`` (its shapes inferred where onnx can).

    Args:
        sample_shape: the input shape of one sample (C, H, W) the stages feed, from the manifest:
            it stands in for dims the graph names instead of fixing (an import with ``--size``),
            which would otherwise count as empty all the way through the graph.
    """
    import onnx

    if sample_shape is not None:
        model = _with_sample_shape(model, sample_shape)
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:  # noqa: BLE001 - inference is best effort here; the declared shapes still count
        inferred = model
    graph = inferred.graph
    inits = {i.name for i in graph.initializer}
    per_sample: dict[str, int] = {}
    for info in (*graph.input, *graph.value_info, *graph.output):
        if info.name not in inits:
            size = _bytes_per_sample(info.type.tensor_type)
            if size is not None:
                per_sample[info.name] = size
    steps = [sum(per_sample.get(t, 0) for t in node.input) for node in graph.node]
    steps += [sum(per_sample.get(t, 0) for t in node.output) for node in graph.node]
    steps.append(sum(per_sample.get(o.name, 0) for o in graph.output))
    real_inputs = [i for i in graph.input if i.name not in inits]
    return Footprint(weights=sum(_count(t.dims) * _itemsize(t.data_type) for t in graph.initializer),
                     per_sample=per_sample, peak_per_sample=max(steps, default=0), fixed_batch=_fixed_batch(real_inputs))


def read_footprint(path: str | os.PathLike, sample_shape: tuple[int, ...] | None = None) -> Footprint:
    """The :class:`Footprint` of the ONNX file at ``path`` (its external data is not read)."""
    import onnx

    return footprint(onnx.load(str(path), load_external_data=False), sample_shape)


def check_model_memory(model, batch: int, *, what: str, error: type[RtDeployError], sample_shape: tuple[int, ...] | None = None,
                       copies: int = 1, holding: Iterable[str] = (), available: int | None = None) -> int:
    """Refuse to run ``model`` (a ModelProto, a path or a :class:`Footprint`) at ``batch`` when its
    declared shapes need more memory than is available, before anything is allocated.

    Args:
        what: what would run, for the message (``"validate --batch 8 of m.onnx"``).
        sample_shape: see :func:`footprint` (with a :class:`Footprint`, the one it was made with, for the message).
        copies: sessions of the model held at once (bench streams).
        holding: tensors held together besides (a calibration session's observed activations).
        available: bytes to compare with (default: :func:`rtdeploy.checks.available_memory`).

    Returns:
        The estimate in bytes.

    Raises:
        error: the estimate exceeds the available memory.
    """
    fp = (model if isinstance(model, Footprint) else read_footprint(model, sample_shape) if isinstance(model, (str, Path))
          else footprint(model, sample_shape))
    need = fp.need(batch, copies=copies, holding=holding)
    runs = fp.fixed_batch or batch
    per_sample = max(fp.peak_per_sample, fp.held_per_sample(holding))
    inputs = f" for {'x'.join(map(str, sample_shape))} inputs" if sample_shape is not None else ""
    purpose = f"{runs} sample(s) of {_size(per_sample)} each and {_size(fp.weights)} of weights, by the shapes its graph declares{inputs}"
    smaller = ("re-export the model with a smaller (or dynamic) batch, " if fp.fixed_batch and fp.fixed_batch > 1
               else "give a smaller batch, " if runs > 1 else "")
    return check_bytes(need, what=what, purpose=purpose, error=error, available=available,
                       advice=f"{smaller}run it where more memory is, or fix the model if those shapes are wrong")


def manifest_sample_shape(manifest: dict | None) -> tuple[int, int, int] | None:
    """(C, H, W) of one sample as an artifact's manifest says the stages feed it (None when it does not say)."""
    model = (manifest or {}).get("model") or {}
    channels, size = model.get("in_channels"), model.get("image_size")
    return (channels, size, size) if isinstance(channels, int) and isinstance(size, int) else None


def _with_sample_shape(model, sample_shape: tuple[int, ...]):
    """A copy of ``model`` whose single input has ``sample_shape`` where it names a dim instead of fixing it."""
    import onnx

    inits = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in inits]
    dims = list(inputs[0].type.tensor_type.shape.dim)[1:] if len(inputs) == 1 else []
    if len(dims) != len(sample_shape) or all(d.HasField("dim_value") for d in dims):
        return model
    pinned = onnx.ModelProto()
    pinned.CopyFrom(model)
    target = next(i for i in pinned.graph.input if i.name == inputs[0].name)
    for d, size in zip(list(target.type.tensor_type.shape.dim)[1:], sample_shape):
        if not d.HasField("dim_value"):
            d.dim_value = int(size)
    return pinned


def _bytes_per_sample(tensor_type) -> int | None:
    if not tensor_type.HasField("shape"):
        return None
    dims = list(tensor_type.shape.dim)[1:]
    if any(not d.HasField("dim_value") or d.dim_value < 1 for d in dims):
        return None
    return _count(d.dim_value for d in dims) * _itemsize(tensor_type.elem_type)


def _count(dims: Iterable[int]) -> int:
    return math.prod(max(int(d), 0) for d in dims)


def _itemsize(data_type: int) -> int:
    from onnx import helper

    try:
        return helper.tensor_dtype_to_np_dtype(data_type).itemsize
    except (KeyError, TypeError, ValueError):  # UNDEFINED, STRING: no fixed size
        return 0


def _fixed_batch(inputs) -> int | None:
    if len(inputs) != 1 or not inputs[0].type.tensor_type.shape.dim:
        return None
    first = inputs[0].type.tensor_type.shape.dim[0]
    return int(first.dim_value) if first.HasField("dim_value") and first.dim_value > 0 else None


def _size(n: int) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:,.1f} {unit}"
    return f"{n} bytes"
