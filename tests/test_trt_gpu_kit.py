"""The GPU kit (benchmarks/gpu/): a time plan whose every step fits its budget, a preflight of every import, and
results written as each step ends, so a 10-minute GPU run yields numbers (issue 19, finding 4).

What the old kit did, which these tests would catch: the torch sweep timed every depth x variant x precision x
batch (40 configurations, 120 windows) at the CUDA default of 200 iterations per window, and the compile step
compiled 8 graphs, in 150 s and 140 s; both wrote only at their end, so a run on a GPU machine would have left
machine.json alone. No timing here depends on this machine: the plan's estimates are arithmetic.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
GPU = REPO / "benchmarks" / "gpu"
sys.path.insert(0, str(GPU))

import kit  # noqa: E402
import plan  # noqa: E402


def run_kit(*args) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHON": sys.executable}
    return subprocess.run(["bash", str(GPU / "run.sh"), *map(str, args)], capture_output=True, text=True, timeout=300, env=env)


def test_every_step_fits_its_budget_and_the_kit_fits_ten_minutes():
    steps = plan.steps()
    assert [s.name for s in steps][:3] == ["machine", "preflight", "gpu-tests"]
    assert all(s.estimate_s <= plan.FILL * s.timeout_s for s in steps), plan.time_plan(steps)
    assert sum(s.timeout_s for s in steps) <= plan.BUDGET_S - 60  # a minute left for starting and summarizing
    for name, (sweep, timeout) in plan.SWEEPS.items():
        step = next(s for s in steps if s.name == name)
        bigger = [n for n in plan.ITERATION_CHOICES if n > step.iterations]
        assert not bigger or sweep.estimate_s(min(bigger)) > plan.FILL * timeout, "the most iterations that fit"
        assert step.outputs and all(name.replace("-", "_") in o for o in step.outputs), "each step writes its own files"


def test_the_old_kit_could_not_have_fitted():
    """The estimate that sizes the new steps, applied to the old ones: far past their timeouts."""
    old_sweep = plan.Sweep((18, 34, 50, 101, 152))
    assert len(old_sweep.configs) * plan.REPEATS == 120
    assert old_sweep.estimate_s(200) > 150 * 10
    old_compile = plan.Sweep((18, 50), variants=("compile",))  # 2 depths x 2 batches x 2 precisions = 8 graphs
    assert old_compile.estimate_s(200) > 140 * 3


@pytest.mark.slow
def test_dry_run_prints_the_time_plan_and_records_machine_and_preflight(tmp_path):
    out = tmp_path / "gpu-run"
    proc = run_kit("--dry-run", out)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0].split() == ["step", "timeout", "s", "estimate", "s", "detail"]
    for s in plan.steps():
        assert f"{s.name:<18} {s.timeout_s:>9} {s.estimate_s:>10.0f}" in proc.stdout
    rows = [line.split("\t") for line in (out / "plan.tsv").read_text().splitlines()]
    assert [r[0] for r in rows] == [s.name for s in plan.steps()] and all(str(out) in r[4] for r in rows)
    machine = json.loads((out / "machine.json").read_text())
    assert machine["dry_run"] is True and "available" in machine["nvidia_smi"]
    pre = json.loads((out / "preflight.json").read_text())
    assert {"torch-cuda", "rtdeploy", "pytest", "matplotlib", "cuda-bindings", "tensorrt"} <= set(pre["checks"])
    assert pre["checks"]["rtdeploy"]["ok"] is True and "tensorrt" not in pre["missing"]  # TensorRT is optional
    readme = (out / "README.md").read_text()
    assert "Dry run: nothing was measured" in readme and "| torch-r50 | 60 |" in readme
    assert (out / "steps.tsv").read_text() == ""
    assert "collected" in (out / "collect.log").read_text() or "selected" in (out / "collect.log").read_text()


def test_results_are_written_as_each_step_ends_and_a_slow_step_does_not_stop_the_rest(tmp_path):
    py = sys.executable
    out = tmp_path / "run"
    out.mkdir()
    (out / "preflight.json").write_text(json.dumps({"checks": {"torch-cuda": {"ok": False, "detail": "no GPU"}}}))
    steps = [
        plan.Step("first", 30, ("{py}", "-c", "open('{out}/first.json', 'w').write('{}')"), 1.0, outputs=("first.json",)),
        plan.Step("stuck", 1, ("{py}", "-c", "import time; time.sleep(60)"), 1.0),
        plan.Step("needs-gpu", 30, ("{py}", "-c", "raise SystemExit(3)"), 1.0, needs=("torch-cuda",)),
        plan.Step("last", 30, ("{py}", "-c", "print('ok')"), 1.0),
    ]
    seen = []
    real = kit.summarize.write
    kit.summarize.write = lambda o, dry_run: seen.append((o / "steps.tsv").read_text().count("\n")) or real(o, dry_run)
    try:
        assert kit.run(out, steps, py) == 0
    finally:
        kit.summarize.write = real
    assert seen == [1, 2, 3, 4], "README.md rewritten after every step"
    ran = {row[0]: row[1] for row in (line.split("\t") for line in (out / "steps.tsv").read_text().splitlines())}
    assert ran == {"first": "0", "stuck": "124", "needs-gpu": "skipped: torch-cuda", "last": "0"}
    readme = (out / "README.md").read_text()
    assert "| stuck | 1 | 1 | 124 (timed out) |" in readme and "| first | 30 | 1 | 0 |" in readme and "first.json" in readme
    assert (out / "last.log").read_text().strip() == "ok"


def test_the_sweep_commands_parse_and_fail_cleanly_without_a_gpu(tmp_path, capsys):
    sys.path.insert(0, str(REPO / "benchmarks"))
    import gpu_torch

    for s in plan.steps():
        argv = plan.render(s.argv, str(tmp_path), sys.executable)
        if argv[1] != "benchmarks/gpu_torch.py":
            continue
        assert gpu_torch.main(argv[2:]) == 4, s.name  # 2 would be an argparse error; 4 is "no CUDA device" after parsing
        assert capsys.readouterr().err.strip().splitlines()[-1].startswith("error:")


def test_usage_errors():
    proc = run_kit()
    assert proc.returncode == 2 and "usage:" in proc.stderr
    sys.path.insert(0, str(REPO / "benchmarks"))
    import gpu_torch

    with pytest.raises(SystemExit) as exit_:
        gpu_torch.main(["--variants", "bogus"])
    assert exit_.value.code == 2
