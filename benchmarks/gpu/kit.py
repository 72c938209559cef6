"""The GPU kit: everything worth measuring in 10 minutes on a CUDA machine, written into OUTDIR as it comes.

    python benchmarks/gpu/kit.py OUTDIR            # run it (benchmarks/gpu/run.sh OUTDIR does the same)
    python benchmarks/gpu/kit.py --dry-run OUTDIR  # no GPU needed: print the time plan, record machine and preflight

The steps and their time plan are benchmarks/gpu/plan.py: each has a timeout, and its iteration counts are
sized so that its worst-case estimate fits inside it. ``preflight`` checks every import the later steps
need; a step whose needs are missing is skipped with the reason instead of running into its timeout.
After every step, ``steps.tsv`` gets its line (name, exit code, seconds) and ``README.md`` is written
again, so a run cut short still leaves every number measured so far. Nothing is installed: preflight
says what to install.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE))

import plan as planning  # noqa: E402
import summarize  # noqa: E402

TIMED_OUT = 124  # what timeout(1) returns, kept for readers of steps.tsv


def write_plan(out: Path, steps: list[planning.Step], py: str) -> None:
    lines = ["\t".join([s.name, str(s.timeout_s), f"{s.estimate_s:.0f}", ",".join(s.outputs),
                        " ".join(planning.render(s.argv, str(out), py))]) for s in steps]
    (out / "plan.tsv").write_text("\n".join(lines) + "\n")


def run_step(step: planning.Step, out: Path, py: str) -> tuple[int, float]:
    """Run ``step`` in its own process group with its timeout; (exit code, seconds). 124 when it timed out."""
    start = time.monotonic()
    with open(out / f"{step.name}.log", "w") as log:
        proc = subprocess.Popen(planning.render(step.argv, str(out), py), cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                                env={**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))},
                                start_new_session=True)
        try:
            rc = proc.wait(timeout=step.timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            rc = TIMED_OUT
    return rc, time.monotonic() - start


def missing_needs(step: planning.Step, out: Path) -> list[str]:
    """The preflight checks ``step`` needs that failed (none known yet: none missing)."""
    path = out / "preflight.json"
    if not step.needs or not path.is_file():
        return []
    found = json.loads(path.read_text())["checks"]
    return [n for n in step.needs if not found.get(n, {}).get("ok", False)]


def record(out: Path, name: str, rc: int | str, seconds: float) -> None:
    with open(out / "steps.tsv", "a") as f:
        f.write(f"{name}\t{rc}\t{seconds:.0f}\n")


def run(out: Path, steps: list[planning.Step], py: str, *, dry_run: bool = False) -> int:
    out.mkdir(parents=True, exist_ok=True)
    (out / "steps.tsv").write_text("")
    write_plan(out, steps, py)
    print(planning.time_plan(steps))
    if dry_run:
        return _dry_run(out, py)
    started = time.monotonic()
    for step in steps:
        missing = missing_needs(step, out)
        if missing:
            record(out, step.name, "skipped: " + ", ".join(missing), 0.0)
        elif time.monotonic() - started + step.timeout_s > planning.BUDGET_S + 60:
            record(out, step.name, "skipped: out of the kit's time budget", 0.0)
        else:
            print(f"== {step.name} (timeout {step.timeout_s} s)", flush=True)
            rc, seconds = run_step(step, out, py)
            record(out, step.name, rc, seconds)
        summarize.write(out, dry_run=False)  # every number so far is on record, even if the run is cut short
    print(f"done: {out} (see {out}/README.md)")
    return 0


def _dry_run(out: Path, py: str) -> int:
    """Record the machine and the preflight (both need no GPU) and collect the GPU tests; measure nothing."""
    for argv in ([py, str(HERE / "machine.py"), str(out / "machine.json"), "--dry-run"], [py, str(HERE / "preflight.py"), str(out / "preflight.json")]):
        if subprocess.run(argv, cwd=REPO).returncode != 0:
            print(f"error: {' '.join(argv[1:2])} failed", file=sys.stderr)
            return 1
    collect = subprocess.run([py, "-m", "pytest", "-q", "--collect-only", "-m", "gpu", "tests/test_trt_gpu_cuda.py", "tests/test_trt_gpu.py",
                              "-p", "no:cacheprovider"], cwd=REPO, capture_output=True, text=True)
    (out / "collect.log").write_text(collect.stdout + collect.stderr)
    if collect.returncode != 0:
        print(f"error: pytest could not collect the GPU tests; see {out}/collect.log", file=sys.stderr)
        return 1
    summarize.write(out, dry_run=True)
    print(f"dry run: plan in {out}/plan.tsv, nothing measured")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    dry = "--dry-run" in args
    args = [a for a in args if a != "--dry-run"]
    if len(args) != 1:
        print("usage: bash benchmarks/gpu/run.sh [--dry-run] OUTDIR", file=sys.stderr)
        return 2
    out = Path(args[0])
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        print(f"error: cannot create {out}: {e.strerror or e}", file=sys.stderr)
        return 2
    return run(out, planning.steps(), os.environ.get("PYTHON") or sys.executable, dry_run=dry)


if __name__ == "__main__":
    sys.exit(main())
