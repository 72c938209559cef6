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


class OutputStore:
    """Outputs by (model identity, set fingerprint, batch size); a model without identity is never kept."""

    def __init__(self) -> None:
        self._kept: dict[tuple[str, str, int], Outputs] = {}
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
        result = run_over(runner, source, batch=batch, progress=progress, desc=f"{role} {runner.name}".strip())
        self.computed += 1
        if identity is not None:
            self._kept[key] = result
        return result


def run_over(runner, source, *, batch: int, progress: bool = False, desc: str = "") -> Outputs:
    """One pass of the active ``runner`` over ``source`` in batches; outputs concatenated by name."""
    start = time.perf_counter()
    parts: dict[str, list[np.ndarray]] = {}
    labels: list[np.ndarray] = []
    with bar(len(source), progress, desc) as shown:
        for images, batch_labels in source.batches(batch):
            for name, value in runner.infer({runner.input_names[0]: images}).items():
                parts.setdefault(name, []).append(np.asarray(value))
            if batch_labels is not None:
                labels.append(batch_labels)
            shown.update(len(images))
    arrays = {k: np.concatenate(v) for k, v in parts.items()}
    return Outputs(arrays, np.concatenate(labels) if labels else None, time.perf_counter() - start)
