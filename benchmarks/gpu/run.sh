#!/usr/bin/env bash
# GPU kit: everything worth measuring in 10 minutes on a CUDA machine WITHOUT TensorRT (e.g. one H200 with CUDA
# PyTorch, cuda-python, onnx, onnxruntime), written into OUTDIR as each step ends. See benchmarks/gpu/kit.py.
#
#   bash benchmarks/gpu/run.sh OUTDIR            # run it: every step has a timeout, together under 10 minutes
#   bash benchmarks/gpu/run.sh --dry-run OUTDIR  # no GPU needed: print the time plan, record machine and preflight
#
# Steps (benchmarks/gpu/plan.py; `python benchmarks/gpu/plan.py` prints the time plan):
#   machine      machine.json: GPU, driver, CUDA, torch, cuda-python, load average
#   preflight    preflight.json: every import the steps need, and what to install; steps that lack one are skipped
#   gpu-tests    pytest -m gpu: cuda-python memory layer, CUDA graphs, torch CUDA runner (TensorRT tests skip without it)
#   torch-*      benchmarks/gpu_torch.py per depth group: eager and channels_last, FP32 and FP16 autocast, batch 1 and 32
#   compile-r50  torch.compile of ResNet-50, FP16, batch 32
# After each step: steps.tsv (exit code, seconds) and README.md. Then copy OUTDIR to benchmarks/results/gpu-<machine>/.
set -uo pipefail
cd "$(dirname "$0")/../.."
PY="${PYTHON:-python3}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
exec "$PY" benchmarks/gpu/kit.py "$@"
