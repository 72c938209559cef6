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


def run_child(script: str | os.PathLike, job: dict, timeout: float) -> dict:
    """Run ``script --child JOB`` (JSON) in a fresh Python process from the repository root and return
    the JSON its last stdout line holds, or ``{"error": ...}`` (timeout, or its last stderr line)."""
    import subprocess
    import sys

    cmd = [sys.executable, str(Path(script).resolve()), "--child", json.dumps(job)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=Path(__file__).resolve().parent.parent)
    except subprocess.TimeoutExpired:
        return {"error": f"did not finish in {timeout:.0f} s"}
    if proc.returncode != 0:
        return {"error": (proc.stderr.strip().splitlines() or ["failed"])[-1][:300]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def peak_rss_kib() -> int:
    """This process's peak RSS. VmHWM, not getrusage: Linux carries the parent's high-water mark
    across fork+exec into ru_maxrss, which would charge the benchmark's own memory to the child."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def cifar10_root() -> Path:
    """The CIFAR-10 data (``$RTDEPLOY_CIFAR10``, else ``../shared/data/cifar10`` beside the checkout);
    exits with one line when its ``calib/`` folder is not there."""
    import sys

    root = Path(os.environ.get("RTDEPLOY_CIFAR10", Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "cifar10"))
    if not (root / "calib").is_dir():
        sys.exit(f"error: CIFAR-10 data not found at {root}; set RTDEPLOY_CIFAR10")
    return root
