"""Verdicts of `rtdeploy run` without --images on a user's small folder, before and after, correct and broken.

    python benchmarks/small_folder_verdicts.py --old /tmp/old-rtdeploy

For trained CIFAR-10 ResNet-20 and ResNet-56 (../shared/data/cifar10, or $RTDEPLOY_CIFAR10) and five
48-image calibration folders drawn from ``calib/`` (four flat ones, as a user's own folder, drawn
with seeds 1-4, and one with class subfolders), runs

    rtdeploy run --depth D --weights W --calib-dir FOLDER --precision int8 --no-bench --no-engines

with the old code (``PYTHONPATH=<old checkout>``) and this checkout, each once as it is and once with
a deliberately broken INT8: every calibrated activation range multiplied by 8 (the scales x 8;
3 bits of each activation lost), by wrapping the calibrators' ``compute_thresholds`` before the CLI
runs. Recorded per run: the exit status and the verdict of validate-int8 and validate-int8-cpu
(with the statistic that decided a failure). The statistics cache is off (a fresh cache per run).

Results: benchmarks/results/small_folder_verdicts.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from record import machine, save

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
CIFAR = Path(os.environ.get("RTDEPLOY_CIFAR10", REPO.parent / "shared" / "data" / "cifar10"))

# Runs the CLI with every calibrated activation range x 8 (the old and the new code share the hook).
BROKEN = """
import sys
from rtdeploy.precision.int8 import calibrators
real = calibrators.compute_thresholds
calibrators.compute_thresholds = lambda *a, **k: {t: 8 * v for t, v in real(*a, **k).items()}
from rtdeploy.cli.main import main
sys.argv[0] = "rtdeploy"
main()
"""
PLAIN = "from rtdeploy.cli.main import main\nimport sys\nsys.argv[0] = 'rtdeploy'\nmain()\n"


def folders(dest: Path) -> dict[str, Path]:
    """Four flat 48-image folders (seeds 1-4) and one with 5 images per class (4 for the last two)."""
    files = sorted((CIFAR / "calib").rglob("*.jpg"))
    out = {}
    for seed in range(1, 5):
        d = dest / f"flat48-s{seed}"
        d.mkdir(parents=True)
        pick = list(files)
        random.Random(seed).shuffle(pick)
        for f in pick[:48]:
            shutil.copy(f, d / f"{f.parent.name}_{f.name}")
        out[d.name] = d
    d = dest / "classes48"
    for i, klass in enumerate(sorted(p for p in (CIFAR / "calib").iterdir() if p.is_dir())):
        (d / klass.name).mkdir(parents=True)
        for f in sorted(klass.glob("*.jpg"))[: 5 if i < 8 else 4]:
            shutil.copy(f, d / klass.name / f.name)
    out[d.name] = d
    return out


def verdicts(outdir: Path) -> dict[str, str]:
    found = {}
    for prec in ("int8", "int8-cpu"):
        path = outdir / f"validate-{prec}.json"
        if not path.exists():
            found[prec] = "not run"
            continue
        rep = json.loads(path.read_text())
        real = [s["name"] for s in rep["sets"]]
        found[prec] = ("pass" if rep["passed"] else f"FAIL: {rep['worst']}") + f" [on {'+'.join(real)}]"
    return found


def one(code: Path, depth: int, folder: Path, broken: bool, work: Path, index: int) -> dict:
    weights = next((CIFAR / "weights").glob(f"resnet{depth}-*.th"))
    outdir = work / f"run{index}"
    env = {**os.environ, "PYTHONPATH": str(code), "XDG_CACHE_HOME": str(work / f"cache{index}")}
    argv = ["run", "--depth", str(depth), "--weights", str(weights), "--calib-dir", str(folder), "--precision", "int8",
            "--no-bench", "--no-engines", "-o", str(outdir)]
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", BROKEN if broken else PLAIN, *argv], cwd=work, env=env, capture_output=True, text=True)
    return {"rc": proc.returncode, "seconds": round(time.perf_counter() - start, 1), **verdicts(outdir),
            "load": [round(x, 2) for x in os.getloadavg()]}


def short(verdict: str) -> str:
    """``FAIL: cosine_mean 0.958049 < 0.986 (logits, images in ...) [on held-out]`` -> ``FAIL cosine_mean 0.958 < 0.986 (held-out)`` (4 digits)."""
    head, _, on = verdict.rpartition(" [on ")
    if head.startswith("FAIL: "):
        stat, value, op, limit = head[len("FAIL: "):].split(" (")[0].split()[:4]
        head = f"FAIL {stat} {float(value):.4g} {op} {limit}"
    return f"{head} ({on.rstrip(']')})" if on else verdict


def summary(rows: list[dict]) -> list[dict]:
    """Per model, code and INT8: how many of the folders' runs passed (exit 0)."""
    out: dict[tuple, dict] = {}
    for r in rows:
        s = out.setdefault((r["model"], r["code"], r["INT8"]), {"model": r["model"], "code": r["code"], "INT8": r["INT8"],
                                                                "runs": 0, "exit 0 (pass)": 0})
        s["runs"] += 1
        s["exit 0 (pass)"] += r["exit"] == 0
    return list(out.values())


def markdown(result: dict) -> str:
    from rtdeploy.tables import format_table

    m = result["machine"]
    rows = [{**{k: r[k] for k in ("model", "folder", "code", "INT8", "exit")},
             "validate-int8": short(r["validate-int8"]), "validate-int8-cpu": short(r["validate-int8-cpu"]), "s": r["seconds"]}
            for r in result["rows"]]
    return "\n".join([
        "# Verdicts of `rtdeploy run` without --images on 48-image folders, before and after", "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['date']}, load average before {m['load_average_before']}, "
        f"after {result['load_after']}; took {result['seconds']:.0f} s. old = `{result['old']}` at {result['old_commit']}, "
        f"new = this checkout at {result['new_commit']}. Script: `benchmarks/small_folder_verdicts.py`.", "",
        "`broken`: every calibrated activation range x 8. The old code judged INT8 on 8 random normal inputs; "
        "the new on the 12 images of the folder held out from calibration.", "",
        "A correct INT8 should pass (exit 0) and a broken one fail (exit 1):", "",
        "```", format_table(summary(result["rows"])), "```", "",
        "Each run (`s`: seconds; the verdict's input set in brackets):", "",
        "```", format_table(rows), "```", "",
    ])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--old", required=True)
    p.add_argument("--depths", default="20,56")
    p.add_argument("--folders", default="flat48-s1,flat48-s2,flat48-s3,flat48-s4,classes48",
                   help="which of the five folders (comma-separated)")
    p.add_argument("--old-commit", default=None, help="the old checkout's commit, when it is not a git checkout (git archive)")
    p.add_argument("--out", default=str(HERE / "results" / "small_folder_verdicts"))
    p.add_argument("--render", action="store_true", help="only rewrite OUT.md from OUT.json")
    p.add_argument("--codes", default="old,new", help="which codes to run (new alone: re-check this checkout)")
    args = p.parse_args()
    if args.render:
        out = Path(args.out)
        out.with_suffix(".md").write_text(markdown(json.loads(out.with_suffix(".json").read_text())))
        return
    codes = {"old": Path(args.old).resolve(), "new": REPO}
    info = machine("onnxruntime", "torch")
    start = time.perf_counter()
    rows = []
    with tempfile.TemporaryDirectory(prefix="rtdeploy-verdicts-") as tmp:
        tmp = Path(tmp)
        for depth in (int(d) for d in args.depths.split(",")):
            for label, folder in folders(tmp / f"folders{depth}").items():
                if label not in args.folders.split(","):
                    continue
                for code in args.codes.split(","):
                    for broken in (False, True):
                        r = one(codes[code], depth, folder, broken, tmp, len(rows))
                        row = {"model": f"resnet{depth}", "folder": label, "code": code, "INT8": "broken" if broken else "correct",
                               "exit": r["rc"], "validate-int8": r["int8"], "validate-int8-cpu": r["int8-cpu"],
                               "seconds": r["seconds"], "load": r["load"]}
                        rows.append(row)
                        print(json.dumps(row), flush=True)
    commit = lambda path: subprocess.run(["git", "-C", str(path), "rev-parse", "--short", "HEAD"],  # noqa: E731
                                         capture_output=True, text=True).stdout.strip()
    result = {"machine": info, "load_after": [round(x, 2) for x in os.getloadavg()], "seconds": time.perf_counter() - start,
              "old": str(codes["old"]), "old_commit": args.old_commit or commit(codes["old"]), "new_commit": commit(REPO), "rows": rows}
    save(result, Path(args.out), markdown)
    print(markdown(result))


if __name__ == "__main__":
    main()
