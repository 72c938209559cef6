"""Model outputs on an input set, computed once and shared by every comparison that needs them.

A validation compares two models on the same inputs. Each model runs over the whole set in one
pass of its own (never interleaved with the other: onnxruntime's spinning worker threads and
PyTorch's OpenMP threads then fight over the cores, and the PyTorch pass ran many times slower
than a plain loop), and its outputs are kept by the model's identity and the set's fingerprint.
Within one ``rtdeploy run`` the FP32 ONNX's outputs are the candidate of the FP32 check and the
reference of the FP16 and INT8 checks: they are computed once.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np

from rtdeploy.progress import bar, phase

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outputs:
    """One model's outputs on every sample of a set, by output name, and the set's labels."""

    arrays: dict[str, np.ndarray]
    labels: np.ndarray | None
    seconds: float


INPUT_BUDGET = 512 << 20  # decoded input sets are kept for the next model up to this many bytes in all


class OutputStore:
    """Outputs by (model identity, set fingerprint, batch size); a model without identity is never kept.

    The decoded input sets are kept too (while they fit ``input_budget`` bytes in all), so the next
    model's pass over a set does not decode its images again.
    """

    def __init__(self, input_budget: int = INPUT_BUDGET) -> None:
        self._kept: dict[tuple[str, str, int], Outputs] = {}
        self._inputs: dict[tuple[str, int], list] = {}
        self.input_budget = input_budget
        self.computed = 0  # passes actually run (the rest were shared)

    def outputs(self, runner, source, *, batch: int, fingerprint: str, progress: bool = False, role: str = "") -> Outputs:
        """The outputs of ``runner`` on ``source`` (whose fingerprint is given): kept ones when this
        model already ran on this set, else one pass in batches of ``batch`` (activating the runner;
        the caller deactivates it)."""
        identity = getattr(runner, "identity", None)
        key = (identity, fingerprint, batch)
        if identity is not None and key in self._kept:
            log.info("%s outputs on %s shared from an earlier comparison", runner.name, source.description)
            return self._kept[key]
        phase("validate: %s %s on %s", role, runner.name, source.description)
        runner.activate()
        result = run_over(runner, self._batches(source, batch, fingerprint), len(source), progress=progress,
                          desc=f"{role} {runner.name}".strip())
        self.computed += 1
        if identity is not None:
            self._kept[key] = result
        return result

    def _batches(self, source, batch: int, fingerprint: str):
        """The set's batches: the kept ones, or decoded now (and kept when they fit the budget)."""
        if (fingerprint, batch) in self._inputs:
            yield from self._inputs[(fingerprint, batch)]
            return
        room = self.input_budget - sum(b.images.nbytes for kept in self._inputs.values() for b in kept)
        kept: list | None = []
        for b in source.batches(batch):
            room -= b.images.nbytes
            if kept is not None and room >= 0:
                kept.append(b)
            else:
                kept = None
            yield b
        if kept is not None:
            self._inputs[(fingerprint, batch)] = kept


def run_over(runner, batches, count: int, *, progress: bool = False, desc: str = "") -> Outputs:
    """One pass of the active ``runner`` over ``batches`` (``count`` samples); outputs concatenated by name."""
    start = time.perf_counter()
    parts: dict[str, list[np.ndarray]] = {}
    labels: list[np.ndarray] = []
    with bar(count, progress, desc) as shown:
        for images, batch_labels in batches:
            for name, value in runner.infer({runner.input_names[0]: images}).items():
                parts.setdefault(name, []).append(np.asarray(value))
            if batch_labels is not None:
                labels.append(batch_labels)
            shown.update(len(images))
    arrays = {k: np.concatenate(v) for k, v in parts.items()}
    return Outputs(arrays, np.concatenate(labels) if labels else None, time.perf_counter() - start)
