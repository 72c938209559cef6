"""The README's trained ResNet-56 example, timed side by side against an older checkout.

    python benchmarks/readme_example.py --old /tmp/old-rtdeploy            # new, old, new (interleaved)
    python benchmarks/readme_example.py --old /tmp/old-rtdeploy --order old,new

Runs ``rtdeploy run --depth 56 --weights resnet56 --calib-dir calib --images dev`` (the README's
command, with the benchmark) once per entry of ``--order``, each in a fresh output folder and a
fresh process, the old one with ``PYTHONPATH=<old checkout>`` in this same venv (same torch,
onnxruntime and machine). The calibration statistics cache is turned off for both (a fresh
``XDG_CACHE_HOME`` per run), so neither profits from the other. Recorded per run: wall seconds,
each stage's seconds (from report.json), the exit status, and the load average before and after;
the machine is shared, so the load is part of the result.

With ``--beside N``, N CPU-heavy jobs run for the whole measurement (each the one
``benchmarks/suite_under_load.sh`` uses: an onnxruntime ResNet-50 benchmark in a loop), so both
codes meet a busy machine, as users' machines often are (the first results, ``readme_example.md``,
were measured beside other engineers' jobs instead).

Results: benchmarks/results/readme_example.{json,md} (or ``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from record import machine, save

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
CIFAR = Path(os.environ.get("RTDEPLOY_CIFAR10", REPO.parent / "shared" / "data" / "cifar10"))


def command(outdir: Path) -> list[str]:
    weights = next((CIFAR / "weights").glob("resnet56-*.th"))
    return [sys.executable, "-m", "rtdeploy.cli.main", "run", "--depth", "56", "--weights", str(weights),
            "--calib-dir", str(CIFAR / "calib"), "--images", str(CIFAR / "dev"), "-o", str(outdir)]


def one(label: str, code: Path, work: Path, index: int) -> dict:
    outdir = work / f"{index}-{label}"
    env = {**os.environ, "PYTHONPATH": str(code), "XDG_CACHE_HOME": str(work / f"cache-{index}")}
    load_before = os.getloadavg()
    start = time.perf_counter()
    proc = subprocess.run(command(outdir), cwd=work, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    stages = {}
    report = outdir / "report.json"
    if report.exists():
        stages = {s["name"]: s["seconds"] for s in json.loads(report.read_text())["stages"]}
    run = {"label": label, "code": str(code), "rc": proc.returncode, "seconds": round(seconds, 1), "stages": stages,
           "load_before": [round(x, 2) for x in load_before], "load_after": [round(x, 2) for x in os.getloadavg()],
           "tail": proc.stdout.splitlines()[-3:] + proc.stderr.splitlines()[-3:]}
    print(json.dumps({k: run[k] for k in ("label", "rc", "seconds", "load_before", "load_after")}), flush=True)
    return run


def markdown(result: dict) -> str:
    from rtdeploy.tables import format_table

    m = result["machine"]
    runs = result["runs"]
    stages = sorted({s for r in runs for s in r["stages"]}, key=lambda s: min(list(r["stages"]).index(s) for r in runs if s in r["stages"]))
    rows = [{"stage": s, **{f"{i + 1}. {r['label']}": r["stages"].get(s) for i, r in enumerate(runs)}} for s in stages]
    rows.append({"stage": "wall (whole command)", **{f"{i + 1}. {r['label']}": r["seconds"] for i, r in enumerate(runs)}})
    loads = [{"run": f"{i + 1}. {r['label']}", "exit": r["rc"], "seconds": r["seconds"], "load before (1/5/15 min)": r["load_before"],
              "load after": r["load_after"]} for i, r in enumerate(runs)]
    return "\n".join([
        "# The README's ResNet-56 example, old and new side by side", "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['date']}; old = `{result['old']}` at {result['old_commit']}, "
        f"new = this checkout at {result['new_commit']}. Command: `{' '.join(result['command'])}` "
        "(statistics cache off for every run). Script: `benchmarks/readme_example.py`."
        + (f" Beside it the whole time: `{result['beside']}`." if result.get("beside") else " Nothing of ours ran beside it."), "",
        f"Median wall time: old {result['median_old']:.0f} s, new {result['median_new']:.0f} s: "
        f"**{result['speedup']:.1f}x faster** ({len([r for r in runs if r['label'] == 'old'])} old and "
        f"{len([r for r in runs if r['label'] == 'new'])} new runs, one after the other on a shared machine).", "",
        "Seconds per stage:", "", "```", format_table(rows), "```", "", "Load average around each run:", "", "```",
        format_table(loads), "```", "",
    ])


BESIDE = "rtdeploy bench --depth 50 --backend onnxruntime --duration 20s, in a loop"


def start_beside(work: Path) -> subprocess.Popen:
    """The CPU-heavy job beside the measurement, in its own session so that it stops with all it started."""
    loop = (f'while true; do "{sys.executable}" -m rtdeploy.cli.main bench --depth 50 --backend onnxruntime '
            f'--duration 20s --repeats 1 --workdir "{work}/beside" --json /dev/null --no-progress >/dev/null 2>&1; done')
    proc = subprocess.Popen(["bash", "-c", loop], cwd=REPO, start_new_session=True)
    time.sleep(30)  # let it reach its timed loop (and the load average rise) before the first run starts
    return proc


def _commit(path: Path) -> str:
    return subprocess.run(["git", "-C", str(path), "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--old", required=True, help="a checkout of the older rtdeploy (e.g. main at 2f5556d)")
    p.add_argument("--order", default="new,old,new")
    p.add_argument("--out", default=str(HERE / "results" / "readme_example"))
    p.add_argument("--beside", type=int, default=0, metavar="N", help=f"run N CPU-heavy jobs beside the measurement ({BESIDE})")
    args = p.parse_args()
    codes = {"old": Path(args.old).resolve(), "new": REPO}
    info = machine("onnxruntime", "torch")
    runs = []
    with tempfile.TemporaryDirectory(prefix="rtdeploy-readme-") as tmp:
        beside = [start_beside(Path(tmp) / str(k)) for k in range(args.beside)]
        try:
            for i, label in enumerate(args.order.split(",")):
                runs.append(one(label, codes[label], Path(tmp), i))
        finally:
            for job in beside:
                os.killpg(job.pid, signal.SIGTERM)
                job.wait()
    med = {k: statistics.median(r["seconds"] for r in runs if r["label"] == k) for k in ("old", "new")}
    result = {"machine": info, "old": str(codes["old"]), "old_commit": _commit(codes["old"]), "new_commit": _commit(REPO),
              "command": ["rtdeploy", *command(Path("OUT"))[3:]], "runs": runs, "median_old": med["old"], "median_new": med["new"],
              "speedup": med["old"] / med["new"], "beside": f"{args.beside} x {BESIDE}" if args.beside else None}
    save(result, Path(args.out), markdown)
    print(markdown(result))


if __name__ == "__main__":
    main()
