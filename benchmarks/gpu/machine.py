"""Record the machine a GPU run is made on: GPU(s), driver, CUDA, torch, cuda-python, CPU, load average.

    python benchmarks/gpu/machine.py OUT.json [--dry-run]

Never fails for a missing GPU or library: each part says what it found or why not. ``--dry-run``
marks the record as such (benchmarks/gpu/run.sh --dry-run on a machine without a GPU).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

SMI_FIELDS = "name,driver_version,memory.total,compute_cap,clocks.max.sm,power.limit"


def nvidia_smi() -> dict:
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return {"available": False, "reason": "nvidia-smi not found"}
    try:
        out = subprocess.run([exe, f"--query-gpu={SMI_FIELDS}", "--format=csv,noheader"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as e:
        return {"available": False, "reason": str(e)}
    if out.returncode != 0:
        return {"available": False, "reason": (out.stderr or out.stdout).strip()[:200]}
    keys = SMI_FIELDS.split(",")
    return {"available": True, "gpus": [dict(zip(keys, (v.strip() for v in line.split(",")))) for line in out.stdout.strip().splitlines()]}


def torch_part() -> dict:
    try:
        import torch
    except ImportError as e:
        return {"available": False, "reason": str(e)}
    part = {"available": True, "version": torch.__version__, "cuda": torch.version.cuda, "cuda_available": torch.cuda.is_available()}
    if torch.cuda.is_available():
        part["device"] = torch.cuda.get_device_name(0)
        part["cudnn"] = torch.backends.cudnn.version()
    return part


def cuda_python_part() -> dict:
    try:
        from rtdeploy.trt.loader import availability
    except ImportError as e:
        return {"available": False, "reason": str(e)}
    report = availability()
    try:
        import cuda.bindings

        report["cuda_bindings"] = cuda.bindings.__version__
    except ImportError:
        pass
    return report


def collect(dry_run: bool) -> dict:
    return {
        "dry_run": dry_run,
        "host": platform.node(),
        "platform": f"{platform.system()} {platform.release()} {platform.machine()}",
        "python": sys.version.split()[0],
        "cpu_count": os.cpu_count(),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "nvidia_smi": nvidia_smi(),
        "torch": torch_part(),
        "cuda_python_and_tensorrt": cuda_python_part(),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--dry-run", action="store_true")
    args = ap.parse_args(argv)
    record = collect(args.dry_run)
    args.out.write_text(json.dumps(record, indent=2, default=str) + "\n")
    gpus = record["nvidia_smi"].get("gpus") or []
    print(f"machine: {', '.join(g['name'] for g in gpus) or 'no NVIDIA GPU'} -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
