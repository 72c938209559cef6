"""The model a precision branch writes: the result type, phase timing, writing the model with its
manifest, and the manifest fields copied from the FP32 parent (shared by the FP16 and INT8 branches).

It sits below :mod:`rtdeploy.precision.quantize` (which dispatches to the branches) and below the
branches themselves, so none of them imports another upward.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class QuantizeResult:
    """The written model, its manifest, and a JSON-ready report of what was done."""

    path: Path
    manifest: dict
    report: dict = field(default_factory=dict)


def write_model(model, out: Path, make_manifest) -> dict:
    """Save ``model`` to ``out`` atomically with the manifest ``make_manifest(tmp_path)`` returns."""
    from rtdeploy.files import atomic_path
    from rtdeploy.precision.graph import save_model

    holder: dict = {}

    def manifest(tmp: Path) -> dict:
        holder["m"] = make_manifest(tmp)
        return holder["m"]

    with atomic_path(out, manifest=manifest) as tmp:
        save_model(model, tmp)
    return holder["m"]


def base_fields(parent) -> dict:
    """Manifest fields every precision artifact copies from its FP32 parent."""
    from rtdeploy.artifacts import parent_entry

    m = parent.manifest
    fields = {"model": m.model.to_dict(), "parent": parent_entry(parent.path)}
    for key, section in (("weights", m.weights), ("export", m.export)):
        fields[key] = section.to_dict() if section is not None else None
    return fields


def op_inventory(model) -> dict[str, int]:
    """Node count per op type, sorted by op."""
    from collections import Counter

    return dict(sorted(Counter(n.op_type for n in model.graph.node).items()))


class Timer:
    """Named wall-clock phases, in seconds."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._start = time.perf_counter()

    def lap(self, name: str) -> None:
        """Record the time since the previous lap under ``name``."""
        now = time.perf_counter()
        self.seconds[name] = round(self.seconds.get(name, 0.0) + now - self._start, 3)
        self._start = now
