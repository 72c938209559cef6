"""The GPU kit's steps and their time plan: every step has a budget (its timeout), and its iteration counts are
sized so that its worst-case estimate fits inside that budget.

The estimate assumes the slowest GPU the kit is meant for, a T4-class card, not the H100/H200 it usually
runs on (those are 5-20x faster), so a step that fits here fits there with room:

- compute: 2 x GMACs x batch FLOPs at 2 TFLOP/s in FP32 (T4 peak 8.1, 25 %) and 8 TFLOP/s in FP16 autocast
  (T4 tensor cores 65 peak, 12 %);
- launch-bound floor of eager PyTorch: 4 kernels per convolution (conv, batch norm, activation, add), 25 us
  each, 1.5x that under autocast (its casts);
- host-to-device copy of the batch at 4 GB/s (pageable memory);
- per model (depth x variant x precision): 3 s to build it, move it to the GPU and run it once per batch; per
  step: 15 s to start Python, import torch and initialise CUDA; torch.compile: 60 s per compiled graph
  (inductor, default mode; every batch and precision is a graph of its own).

A window lasts its warm-up plus max(minimum duration, iterations x latency) (rtdeploy.bench.stoprule); every
configuration is timed in ``REPEATS`` windows. The iteration count of a sweep step is the largest of
``ITERATION_CHOICES`` whose estimate stays within ``FILL`` of the step's budget.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field

BUDGET_S = 600  # the kit must yield numbers within 10 minutes of machine time
FILL = 0.8  # a step's estimate may use this share of its timeout
REPEATS = 3
WARMUP_S, DURATION_S = 0.1, 0.2
ITERATION_CHOICES = (200, 100, 50, 30, 20, 10, 5)
FP32_FLOPS, FP16_FLOPS = 2e12, 8e12
KERNEL_S, KERNELS_PER_CONV, AUTOCAST_FACTOR = 25e-6, 4, 1.5
COPY_BYTES_S = 4e9
MODEL_SETUP_S, STEP_START_S, COMPILE_S = 3.0, 15.0, 60.0
# ImageNet ResNets at 224 px: (GMACs per image, convolutions incl. the classifier) — rtdeploy.models.model_meta's gmacs
RESNETS = {18: (1.81, 21), 34: (3.66, 37), 50: (4.09, 54), 101: (7.8, 105), 152: (11.51, 156)}
IMAGE_BYTES = 3 * 224 * 224 * 4


def latency_s(depth: int, batch: int, precision: str) -> float:
    """The worst-case time of one eager inference (see the module docstring)."""
    gmacs, convs = RESNETS[depth]
    compute = 2 * gmacs * 1e9 * batch / (FP16_FLOPS if precision == "fp16" else FP32_FLOPS)
    launch = convs * KERNELS_PER_CONV * KERNEL_S * (AUTOCAST_FACTOR if precision == "fp16" else 1.0)
    return max(compute, launch) + batch * IMAGE_BYTES / COPY_BYTES_S


@dataclass(frozen=True)
class Sweep:
    """A torch sweep step: these depths x variants x precisions x batches, ``REPEATS`` windows each."""

    depths: tuple[int, ...]
    batches: tuple[int, ...] = (1, 32)
    precisions: tuple[str, ...] = ("fp32", "fp16")
    variants: tuple[str, ...] = ("eager", "channels_last")

    @property
    def configs(self) -> list[tuple[int, int, str, str]]:
        return [(d, b, p, v) for d in self.depths for v in self.variants for p in self.precisions for b in self.batches]

    def estimate_s(self, iterations: int) -> float:
        models = len(self.depths) * len(self.variants) * len(self.precisions)
        compiled = sum(1 for *_, v in self.configs if v == "compile")
        windows = sum(REPEATS * (WARMUP_S + max(DURATION_S, iterations * latency_s(d, b, p))) for d, b, p, _ in self.configs)
        return STEP_START_S + models * MODEL_SETUP_S + compiled * COMPILE_S + windows

    def iterations_for(self, timeout_s: int) -> int:
        """The most iterations per window (from ITERATION_CHOICES) whose estimate fits ``FILL`` of ``timeout_s``."""
        for n in ITERATION_CHOICES:
            if self.estimate_s(n) <= FILL * timeout_s:
                return n
        raise ValueError(f"{self} does not fit {timeout_s} s even at {ITERATION_CHOICES[-1]} iterations")


@dataclass(frozen=True)
class Step:
    """One step of the kit.

    Attributes:
        name: also the stem of its log (``<name>.log``) and outputs.
        timeout_s: its budget; the step is killed when it runs longer.
        argv: the command, ``{out}`` standing for OUTDIR and ``{py}`` for the Python interpreter.
        estimate_s: the worst-case time (see the module docstring).
        needs: preflight checks that must pass for the step to run (else it is skipped, with the reason).
        outputs: the files it writes into OUTDIR.
        detail: what the estimate counts.
    """

    name: str
    timeout_s: int
    argv: tuple[str, ...]
    estimate_s: float
    needs: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    detail: str = ""
    iterations: int | None = None


SWEEPS = {  # name -> (sweep, timeout): depth groups so that each step's numbers are written when it ends
    "torch-r18-r34": (Sweep((18, 34)), 80),
    "torch-r50": (Sweep((50,)), 60),
    "torch-r101-r152": (Sweep((101, 152)), 150),
    "compile-r50": (Sweep((50,), batches=(32,), precisions=("fp16",), variants=("compile",)), 100),
}


def _sweep_step(name: str, sweep: Sweep, timeout_s: int) -> Step:
    n = sweep.iterations_for(timeout_s)
    argv = ("{py}", "benchmarks/gpu_torch.py", "--depth", ",".join(map(str, sweep.depths)),
            "--batch", ",".join(map(str, sweep.batches)), "--precision", ",".join(sweep.precisions),
            "--variants", ",".join(sweep.variants), "--iterations", str(n),
            "--warmup", f"{int(WARMUP_S * 1000)}ms", "--duration", f"{int(DURATION_S * 1000)}ms", "--repeats", str(REPEATS),
            "--out", "{out}", "--name", name.replace("-", "_"))
    stem = name.replace("-", "_")
    return Step(name, timeout_s, argv, sweep.estimate_s(n), needs=("torch-cuda", "rtdeploy", "matplotlib"),
                outputs=(f"{stem}.json", f"{stem}.md", f"{stem}.png"), iterations=n,
                detail=f"{len(sweep.configs)} configs x {REPEATS} windows, {n} iterations each")


def steps() -> list[Step]:
    """The kit's steps in the order they run: cheap records first, then tests, then the sweeps (each writes its own files)."""
    out = [
        Step("machine", 20, ("{py}", "benchmarks/gpu/machine.py", "{out}/machine.json"), 5.0, outputs=("machine.json",),
             detail="nvidia-smi, torch, cuda-python, load average"),
        Step("preflight", 30, ("{py}", "benchmarks/gpu/preflight.py", "{out}/preflight.json"), STEP_START_S,
             outputs=("preflight.json",), detail="imports every step needs; says what to install"),
        Step("gpu-tests", 90, ("{py}", "-m", "pytest", "-q", "-rs", "-m", "gpu", "tests/test_trt_gpu_cuda.py", "tests/test_trt_gpu.py",
                               "--junitxml={out}/pytest-gpu.xml", "-p", "no:cacheprovider"), 45.0,
             needs=("pytest", "rtdeploy"), outputs=("pytest-gpu.xml",),
             detail="cuda-python memory layer, CUDA graphs, torch CUDA runner; TensorRT tests skip without TensorRT"),
    ]
    out += [_sweep_step(name, sweep, timeout) for name, (sweep, timeout) in SWEEPS.items()]
    return out


def render(argv: tuple[str, ...], out: str, py: str) -> list[str]:
    return [a.replace("{out}", out).replace("{py}", py) for a in argv]


def time_plan(plan: list[Step]) -> str:
    """The table ``run.sh --dry-run`` prints."""
    rows = [f"{'step':<18} {'timeout s':>9} {'estimate s':>10}  detail"]
    rows += [f"{s.name:<18} {s.timeout_s:>9} {s.estimate_s:>10.0f}  {s.detail}" for s in plan]
    total_t, total_e = sum(s.timeout_s for s in plan), sum(s.estimate_s for s in plan)
    rows.append(f"{'total':<18} {total_t:>9} {total_e:>10.0f}  budget {BUDGET_S} s; estimates assume a T4-class GPU "
                "(benchmarks/gpu/plan.py)")
    return "\n".join(rows)


if __name__ == "__main__":
    print(time_plan(steps()))
    sys.exit(0 if all(s.estimate_s <= s.timeout_s for s in steps()) and math.fsum(s.timeout_s for s in steps()) <= BUDGET_S else 1)
