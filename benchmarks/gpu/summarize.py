"""Write OUTDIR/README.md for a GPU kit run: the machine, the preflight, each step's budget, estimate, exit code
and seconds, and which files hold the numbers. The kit rewrites it after every step.

    python benchmarks/gpu/summarize.py OUTDIR [--dry-run]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

BUDGET_S = 600


def read_tsv(path: Path) -> list[list[str]]:
    return [line.split("\t") for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []


def _json(path: Path) -> dict:
    try:
        return json.loads(path.read_text()) if path.is_file() else {}
    except ValueError:
        return {}


def render(out: Path, dry_run: bool) -> str:
    plan = read_tsv(out / "plan.tsv")
    ran = {row[0]: row for row in read_tsv(out / "steps.tsv")}
    machine, preflight = _json(out / "machine.json"), _json(out / "preflight.json")
    gpus = (machine.get("nvidia_smi") or {}).get("gpus") or []
    lines = [f"# GPU run: {', '.join(g['name'] for g in gpus) or 'no NVIDIA GPU'}", ""]
    if dry_run:
        lines += ["**Dry run: nothing was measured.** This folder holds the plan, the machine record and the preflight only;",
                  "GPU numbers do not exist until `bash benchmarks/gpu/run.sh OUTDIR` runs on a machine with an NVIDIA GPU.", ""]
    total = sum(int(row[1]) for row in plan)
    lines += [f"Host {machine.get('host', '?')}, {machine.get('platform', '?')}, load average {machine.get('load_average')}; "
              f"torch {(machine.get('torch') or {}).get('version', '?')}. Step timeouts add up to {total} s (budget {BUDGET_S} s); "
              "estimates assume a T4-class GPU (benchmarks/gpu/plan.py).", ""]
    if preflight.get("missing"):
        lines += [f"**Preflight: missing {', '.join(preflight['missing'])}** — {preflight['fix']}", ""]
    lines += ["| step | timeout s | estimate s | exit code | seconds | outputs |", "|---|---|---|---|---|---|"]
    for name, limit, estimate, outputs, _cmd in plan:
        rc, secs = (ran[name][1], ran[name][2]) if name in ran else ("not run", "")
        rc = "124 (timed out)" if rc == "124" else rc
        files = ", ".join(f for f in outputs.split(",") if f and (out / f).is_file()) or "-"
        lines.append(f"| {name} | {limit} | {estimate} | {rc} | {secs} | {files} |")
    lines += ["", "Commands:", ""] + [f"- `{name}`: `{cmd}`" for name, _, _, _, cmd in plan]
    return "\n".join(lines) + "\n"


def write(out: Path, dry_run: bool) -> Path:
    path = out / "README.md"
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text(render(out, dry_run))
    tmp.replace(path)
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("outdir", type=Path)
    ap.add_argument("--dry-run", action="store_true")
    args = ap.parse_args(argv)
    if not (args.outdir / "plan.tsv").is_file():
        print(f"error: {args.outdir}/plan.tsv is missing; run benchmarks/gpu/run.sh first", file=sys.stderr)
        return 2
    write(args.outdir, args.dry_run)
    return 0


if __name__ == "__main__":
    sys.exit(main())
