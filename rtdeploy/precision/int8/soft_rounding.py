"""AdaRound's soft rounding (Nagel et al., ICML 2020), shared by the per-layer relaxed solver
(:func:`rtdeploy.precision.int8.adaround.solve_group_relaxed`) and block reconstruction
(:mod:`rtdeploy.precision.int8.reconstruct`).

A weight is ``s * (floor(W / s) + h(V))`` with the rectified sigmoid ``h``; the regulariser
``sum(1 - |2h - 1|^beta)``, with ``beta`` annealed from high to low after a warm-up, drives every
``h`` to 0 or 1.
"""

from __future__ import annotations

import numpy as np

ZETA, GAMMA = 1.1, -0.1  # the sigmoid stretched beyond [0, 1] so that h reaches 0 and 1 exactly


def initial_v(frac: np.ndarray) -> np.ndarray:
    """The ``V`` at which ``h(V)`` equals ``frac`` (each strictly between 0 and 1)."""
    return -np.log((ZETA - GAMMA) / (frac - GAMMA) - 1)


def rectified_sigmoid(v):
    """``h(V) = clip(sigmoid(V) * (ZETA - GAMMA) + GAMMA, 0, 1)`` (torch)."""
    import torch

    return torch.clamp(torch.sigmoid(v) * (ZETA - GAMMA) + GAMMA, 0, 1)


def rounding_penalty(h, beta: float):
    """``sum(1 - |2h - 1|^beta)``: zero only where every ``h`` is 0 or 1."""
    return (1 - (2 * h - 1).abs().pow(beta)).sum()


def annealed_beta(step: int, steps: int, warmup: float, beta: tuple[float, float]) -> float | None:
    """The regulariser's exponent at ``step`` of ``steps``: ``None`` during the first ``warmup``
    fraction (no regulariser yet), then linear from ``beta[0]`` to ``beta[1]``."""
    warm = int(warmup * steps)
    if step < warm:
        return None
    return beta[1] + (beta[0] - beta[1]) * (1 - (step - warm) / max(1, steps - warm))
