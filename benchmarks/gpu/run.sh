#!/usr/bin/env bash
# GPU kit: everything worth measuring in a few minutes on a CUDA machine WITHOUT TensorRT
# (e.g. one H200 with CUDA PyTorch, cuda-python, onnx, onnxruntime), written into OUTDIR.
#
#   bash benchmarks/gpu/run.sh OUTDIR            # run it (under 8 minutes: every step has a timeout)
#   bash benchmarks/gpu/run.sh --dry-run OUTDIR  # no GPU needed: write the plan and the machine record only
#
# Steps (each with its own timeout; one failing does not stop the others; rc and seconds are recorded):
#   machine     benchmarks/gpu/machine.py   -> machine.json (GPU, driver, CUDA, torch, cuda-python, load average)
#   gpu-tests   pytest -m gpu               -> pytest-gpu.xml/.log (cuda-python memory layer, graphs, torch CUDA runner,
#                                              CUDA-event timer; TensorRT tests skip with their reason)
#   sweep       benchmarks/gpu_torch.py     -> gpu_torch_eager.{json,md,png}: every depth, eager/channels_last, FP32/FP16
#   compile     benchmarks/gpu_torch.py     -> gpu_torch_compile.{json,md,png}: ResNet-18/50 incl. torch.compile
#   summary     benchmarks/gpu/summarize.py -> README.md (what ran, rc, seconds, where the numbers are)
# Then: copy OUTDIR to benchmarks/results/gpu-<machine>/ and commit it.
set -uo pipefail
cd "$(dirname "$0")/../.."

DRY=0
if [ "${1:-}" = "--dry-run" ]; then DRY=1; shift; fi
if [ $# -ne 1 ]; then
  echo "usage: bash benchmarks/gpu/run.sh [--dry-run] OUTDIR" >&2
  exit 2
fi
OUT="$1"
mkdir -p "$OUT" || { echo "error: cannot create $OUT" >&2; exit 2; }
PY="${PYTHON:-python3}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

# name | timeout (s) | command.  The timeouts add up to 450 s (< 8 minutes with start-up).
STEPS=(
  "machine|30|$PY benchmarks/gpu/machine.py $OUT/machine.json"
  "gpu-tests|120|$PY -m pytest -q -rs -m gpu tests/test_trt_gpu_cuda.py tests/test_trt_gpu.py --junitxml=$OUT/pytest-gpu.xml -p no:cacheprovider"
  "sweep|150|$PY benchmarks/gpu_torch.py --depth all --batch 1,32 --no-compile --warmup 200ms --duration 300ms --repeats 3 --out $OUT --name gpu_torch_eager"
  "compile|140|$PY benchmarks/gpu_torch.py --depth 18,50 --batch 1,32 --warmup 200ms --duration 300ms --repeats 3 --out $OUT --name gpu_torch_compile"
  "summary|10|$PY benchmarks/gpu/summarize.py $OUT"
)

: > "$OUT/steps.tsv"
for step in "${STEPS[@]}"; do
  IFS='|' read -r name limit cmd <<< "$step"
  printf '%s\t%s\t%s\n' "$name" "$limit" "$cmd" >> "$OUT/plan.tsv.tmp"
done
mv "$OUT/plan.tsv.tmp" "$OUT/plan.tsv"

if [ "$DRY" = 1 ]; then
  $PY benchmarks/gpu/machine.py "$OUT/machine.json" --dry-run || exit 1
  # the GPU tests must at least be collected here (they skip without a GPU)
  $PY -m pytest -q --collect-only -m gpu tests/test_trt_gpu_cuda.py tests/test_trt_gpu.py -p no:cacheprovider > "$OUT/collect.log" 2>&1 \
    || { echo "error: pytest could not collect the GPU tests; see $OUT/collect.log" >&2; exit 1; }
  $PY benchmarks/gpu/summarize.py "$OUT" --dry-run || exit 1
  echo "dry run: plan in $OUT/plan.tsv, nothing measured"
  exit 0
fi

for step in "${STEPS[@]}"; do
  IFS='|' read -r name limit cmd <<< "$step"
  echo "== $name (timeout ${limit}s): $cmd"
  start=$(date +%s)
  timeout --kill-after=10 "$limit" bash -c "$cmd" > "$OUT/$name.log" 2>&1
  rc=$?
  printf '%s\t%s\t%s\n' "$name" "$rc" "$(( $(date +%s) - start ))" >> "$OUT/steps.tsv"
  tail -n 3 "$OUT/$name.log"
done
echo "done: $OUT (see $OUT/README.md)"
