"""Write OUTDIR/README.md for a benchmarks/gpu/run.sh run: the machine, each step's exit code and
seconds, and which files hold the numbers.

    python benchmarks/gpu/summarize.py OUTDIR [--dry-run]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

OUTPUTS = {"gpu-tests": ["pytest-gpu.xml", "gpu-tests.log"], "sweep": ["gpu_torch_eager.md", "gpu_torch_eager.json", "gpu_torch_eager.png"],
           "compile": ["gpu_torch_compile.md", "gpu_torch_compile.json", "gpu_torch_compile.png"], "machine": ["machine.json"]}
BUDGET_S = 480


def read_tsv(path: Path) -> list[list[str]]:
    return [line.split("\t") for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []


def render(out: Path, dry_run: bool) -> str:
    plan = read_tsv(out / "plan.tsv")
    ran = {row[0]: row for row in read_tsv(out / "steps.tsv")}
    machine = json.loads((out / "machine.json").read_text()) if (out / "machine.json").is_file() else {}
    gpus = (machine.get("nvidia_smi") or {}).get("gpus") or []
    total = sum(int(row[1]) for row in plan)
    lines = [f"# GPU run: {', '.join(g['name'] for g in gpus) or 'no NVIDIA GPU'}", ""]
    if dry_run:
        lines += ["**Dry run: nothing was measured.** This folder holds the plan only; GPU numbers do not exist until",
                  "`bash benchmarks/gpu/run.sh OUTDIR` runs on a machine with an NVIDIA GPU.", ""]
    lines += [f"Host {machine.get('host', '?')}, {machine.get('platform', '?')}, load average {machine.get('load_average')}; "
              f"torch {(machine.get('torch') or {}).get('version', '?')}. Step timeouts add up to {total} s (budget {BUDGET_S} s).", "",
              "| step | timeout s | exit code | seconds | outputs |", "|---|---|---|---|---|"]
    for name, limit, cmd in plan:
        rc, secs = (ran[name][1], ran[name][2]) if name in ran else ("not run", "")
        if rc == "124":
            rc = "124 (timed out)"
        files = ", ".join(f for f in OUTPUTS.get(name, []) if (out / f).is_file()) or "-"
        lines.append(f"| {name} | {limit} | {rc} | {secs} | {files} |")
    lines += ["", "Commands:", ""] + [f"- `{name}`: `{cmd}`" for name, _, cmd in plan]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("outdir", type=Path)
    ap.add_argument("--dry-run", action="store_true")
    args = ap.parse_args(argv)
    if not (args.outdir / "plan.tsv").is_file():
        print(f"error: {args.outdir}/plan.tsv is missing; run benchmarks/gpu/run.sh first", file=sys.stderr)
        return 2
    (args.outdir / "README.md").write_text(render(args.outdir, args.dry_run))
    return 0


if __name__ == "__main__":
    sys.exit(main())
