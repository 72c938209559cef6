"""The PyTorch reference pass of a validation against a plain torch loop over the same images.

    python benchmarks/reference_pass.py                 # ResNet-56, 1,000 dev images, 3 rounds

Three ways over the same CIFAR-10 ``dev/`` images (decoded by rtdeploy's image source each time),
batch 32, interleaved within every round:

- ``plain loop``: ``with torch.inference_mode(): model(torch.from_numpy(batch))`` for each batch;
- ``rtdeploy pass``: what validate does now, ``OutputStore.outputs`` with a ``TorchRunner``;
- ``interleaved (before)``: the old comparison, the PyTorch batch then the onnxruntime batch, batch 8.

As ``rtdeploy validate`` and ``run`` do, ``OMP_WAIT_POLICY=PASSIVE`` is set before torch loads unless
the environment sets it (``--spin`` leaves OpenMP's default). Reported: median and spread of each
over the rounds, and the ratio to the plain loop. Results: benchmarks/results/reference_pass.{json,md}.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

from record import machine, save

HERE = Path(__file__).resolve().parent
CIFAR = Path(os.environ.get("RTDEPLOY_CIFAR10", HERE.parents[1] / "shared" / "data" / "cifar10"))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--depth", type=int, default=56)
    p.add_argument("--images", type=int, default=1000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--spin", action="store_true", help="keep OpenMP's default (spinning) thread waits")
    p.add_argument("--out", default=str(HERE / "results" / "reference_pass"))
    args = p.parse_args()
    if not args.spin:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import tempfile

    import torch

    from rtdeploy import api
    from rtdeploy.data import open_source
    from rtdeploy.runners.ort_runner import OrtRunner
    from rtdeploy.runners.torch_runner import TorchRunner
    from rtdeploy.validate.outputs import OutputStore

    info = machine("torch", "onnxruntime", omp_wait_policy=os.environ.get("OMP_WAIT_POLICY"), torch_threads=torch.get_num_threads())
    with tempfile.TemporaryDirectory() as tmp:
        weights = next((CIFAR / "weights").glob(f"resnet{args.depth}-*.th"))
        exported = api.export(depth=args.depth, weights=weights, output=Path(tmp) / "m.onnx")
        from rtdeploy.validate.reference import torch_model_from_manifest
        from rtdeploy.manifests import read_onnx

        model = torch_model_from_manifest(read_onnx(exported.path)).eval()
        source = open_source(CIFAR / "dev", exported.meta, limit=args.images)

        def plain():
            with torch.inference_mode():
                for images, _ in source.batches(32):
                    model(torch.from_numpy(images))

        def ours():
            runner = TorchRunner(model, exported.meta.input_name, exported.meta.output_name)
            runner.identity = None  # never shared: every round computes
            OutputStore(input_budget=0).outputs(runner, source, batch=32, fingerprint="x")

        def interleaved():
            with TorchRunner(model, exported.meta.input_name, exported.meta.output_name) as ref, OrtRunner(exported.path) as cand:
                for images, _ in source.batches(8):
                    ref.infer({ref.input_names[0]: images})
                    cand.infer({cand.input_names[0]: images})

        ways = {"plain loop": plain, "rtdeploy pass": ours, "interleaved (before)": interleaved}
        times: dict[str, list[float]] = {k: [] for k in ways}
        for r in range(args.rounds):
            order = list(ways)[r % 3:] + list(ways)[: r % 3]
            for name in order:
                start = time.perf_counter()
                ways[name]()
                times[name].append(time.perf_counter() - start)
                print(f"round {r + 1} {name}: {times[name][-1]:.1f} s", flush=True)
    base = statistics.median(times["plain loop"])
    rows = [{"way": k, "median s": round(statistics.median(v), 2), "min s": round(min(v), 2), "max s": round(max(v), 2), "rounds": len(v),
             "x plain loop": round(statistics.median(v) / base, 2)} for k, v in times.items()]
    result = {"machine": {**info, "load_average_after": [round(x, 2) for x in os.getloadavg()]}, "depth": args.depth,
              "images": args.images, "rows": rows}

    def markdown(res: dict) -> str:
        from rtdeploy.tables import format_table

        m = res["machine"]
        return "\n".join([
            f"# PyTorch reference pass vs a plain torch loop (ResNet-{res['depth']}, {res['images']} dev images, batch 32)", "",
            f"Machine: {m['cpu']}, {m['cores']} cores, {m['date']}, load average before {m['load_average_before']}, after "
            f"{m['load_average_after']}; torch threads {m['torch_threads']}, OMP_WAIT_POLICY={m['omp_wait_policy']}. "
            "Each way decodes the images itself; interleaved within every round. Script: `benchmarks/reference_pass.py`.", "",
            "```", format_table(res["rows"]), "```", ""])

    save(result, Path(args.out), markdown)
    print(markdown(result))


if __name__ == "__main__":
    sys.exit(main())
