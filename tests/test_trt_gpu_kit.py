"""benchmarks/gpu/run.sh --dry-run: the GPU kit is runnable on a CPU machine, writes its plan and the
machine record, keeps its step timeouts under the 8-minute budget, and its commands parse."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def run_kit(*args, env=None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHON": sys.executable, **(env or {})}
    return subprocess.run(["bash", str(REPO / "benchmarks" / "gpu" / "run.sh"), *map(str, args)], capture_output=True, text=True,
                          timeout=300, env=env)


@pytest.mark.slow
def test_dry_run_writes_the_plan_and_the_machine(tmp_path):
    out = tmp_path / "gpu-run"
    proc = run_kit("--dry-run", out)
    assert proc.returncode == 0, proc.stderr
    plan = [line.split("\t") for line in (out / "plan.tsv").read_text().splitlines()]
    assert [row[0] for row in plan] == ["machine", "gpu-tests", "sweep", "compile", "summary"]
    assert sum(int(row[1]) for row in plan) <= 480  # every step has a timeout; together under 8 minutes
    assert all(str(out) in row[2] for row in plan)  # everything lands in OUTDIR
    machine = json.loads((out / "machine.json").read_text())
    assert machine["dry_run"] is True and machine["cpu_count"] and "load_average" in machine
    assert "available" in machine["nvidia_smi"] and "available" in machine["torch"]
    readme = (out / "README.md").read_text()
    assert "Dry run: nothing was measured" in readme and "| sweep | 150 | not run |" in readme
    assert (out / "steps.tsv").read_text() == ""  # nothing ran
    assert "collected" in (out / "collect.log").read_text() or "selected" in (out / "collect.log").read_text()


@pytest.mark.slow
def test_the_sweep_commands_parse_and_fail_cleanly_without_a_gpu(tmp_path):
    out = tmp_path / "gpu-run"
    assert run_kit("--dry-run", out).returncode == 0
    for name, _, cmd in (line.split("\t") for line in (out / "plan.tsv").read_text().splitlines()):
        if name not in ("sweep", "compile"):
            continue
        argv = shlex.split(cmd)
        assert argv[1] == "benchmarks/gpu_torch.py"
        proc = subprocess.run([sys.executable, *argv[1:]], capture_output=True, text=True, timeout=300, cwd=REPO,
                              env={**os.environ, "PYTHONPATH": str(REPO)})
        # 2 would be an argparse error; 4 is gpu_torch.py's "no CUDA device" after parsing every option
        assert proc.returncode == 4, proc.stderr[-500:]
        assert proc.stderr.strip().splitlines()[-1].startswith("error:")


def test_usage_errors(tmp_path):
    proc = run_kit()
    assert proc.returncode == 2 and "usage:" in proc.stderr
