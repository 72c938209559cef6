"""The runner protocol: every backend (torch, onnxruntime, TensorRT) behind one small interface.

    with runner:
        outputs = runner.infer({"input": batch})   # dict[str, np.ndarray]

Comparison (``rtdeploy.validate``) and timing (``rtdeploy.bench``) are written once against it.
``activate`` does the expensive set-up (session creation, engine deserialization, buffer
allocation) so that ``infer`` measures inference alone.
"""

from __future__ import annotations

import abc

import numpy as np


class Runner(abc.ABC):
    """Base class of all runners.

    Attributes:
        name: a short label for reports, such as ``onnxruntime[CPU]``.
        input_names, output_names: tensor names; available once active.
        identity: what the runner computes (its model's bytes and backend), set by whoever knows it,
            so that two comparisons needing its outputs on the same inputs share one pass; None
            when unknown (never shared).
    """

    name: str = "runner"
    identity: str | None = None

    def __init__(self) -> None:
        self._active = False
        self.input_names: list[str] = []
        self.output_names: list[str] = []

    @property
    def is_active(self) -> bool:
        """True between ``activate`` and ``deactivate``."""
        return self._active

    def activate(self) -> "Runner":
        """Prepare to run (idempotent)."""
        if not self._active:
            self._activate()
            self._active = True
        return self

    def deactivate(self) -> None:
        """Release what ``activate`` took (idempotent)."""
        if self._active:
            self._active = False
            self._deactivate()

    def __enter__(self) -> "Runner":
        return self.activate()

    def __exit__(self, *exc) -> None:
        self.deactivate()

    def infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run one batch; returns every output by name as a host numpy array."""
        if not self._active:
            raise RuntimeError(f"{self.name}: call activate() or use `with runner:` before infer()")
        return self._infer(feed)

    @abc.abstractmethod
    def _activate(self) -> None: ...

    def _deactivate(self) -> None:
        return None

    @abc.abstractmethod
    def _infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...
