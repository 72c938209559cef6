"""Shared by the benchmark scripts: what machine a result came from, and writing it as JSON + Markdown."""

from __future__ import annotations

import datetime as dt
import importlib
import json
import os
import platform
from collections.abc import Callable
from pathlib import Path


def machine(*packages: str, **extra) -> dict:
    """Date, CPU, cores, load average before the run, platform, Python, and the version of each of
    ``packages`` (keyed by its name), plus ``extra`` fields a script records besides."""
    from rtdeploy.machine import cpu_model, load_average

    info = {"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "cpu": cpu_model(), "cores": os.cpu_count(),
            "load_average_before": load_average(), "platform": platform.platform(), "python": platform.python_version()}
    info.update({name: importlib.import_module(name).__version__ for name in packages})
    return {**info, **extra}


def save(result: dict, out: Path, markdown: Callable[[dict], str]) -> None:
    """``result`` as ``out.json`` and its ``markdown(result)`` as ``out.md`` (folders made as needed)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    out.with_suffix(".md").write_text(markdown(result))
