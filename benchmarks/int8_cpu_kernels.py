"""What onnxruntime makes of two INT8 CPU models: optimized-graph op counts and per-node kernel times.

    python benchmarks/int8_cpu_kernels.py A.onnx B.onnx --batch 1 --runs 15

Each model is loaded with all graph optimizations (the optimized graph is written beside it as
``*.optimized.onnx`` via ``SessionOptions.optimized_model_filepath``) and profiled
(``enable_profiling``) over ``--runs`` runs, alternating the models; printed: the op types of each
optimized graph, the sum over nodes of each node's median kernel time by op type, and the nodes
whose medians differ most. Used to compare ``--target onnxruntime-cpu`` with onnxruntime's
``quantize_static`` (docs/precision.md, CPU target): the models written by ``benchmarks/int8_cpu_target.py``.
"""

from __future__ import annotations

import argparse
import collections
import json
from pathlib import Path

import numpy as np


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("models", nargs=2, type=Path)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--runs", type=int, default=15)
    args = p.parse_args()
    import onnx
    import onnxruntime as ort

    sessions = {}
    for path in args.models:
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        opts.optimized_model_filepath = str(path.with_suffix(".optimized.onnx"))
        opts.enable_profiling = True
        opts.profile_file_prefix = str(path.with_suffix(""))
        sessions[path.name] = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        ops = collections.Counter(n.op_type for n in onnx.load(opts.optimized_model_filepath).graph.node)
        print(path.name, "optimized graph:", dict(ops))
    size = sessions[args.models[0].name].get_inputs()[0].shape[-1]
    x = np.random.default_rng(0).normal(0, 1, (args.batch, 3, size, size)).astype(np.float32)
    for _ in range(args.runs + 1):  # the first run of each is dropped below (allocation, weight packing)
        for s in sessions.values():
            s.run(None, {s.get_inputs()[0].name: x})
    medians = {}
    for name, s in sessions.items():
        times, op = collections.defaultdict(list), {}
        for e in json.loads(Path(s.end_profiling()).read_text()):
            if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
                node = e["name"].rsplit("_kernel_time", 1)[0].split("_token_")[0]
                times[node].append(e["dur"])
                op[node] = e["args"]["op_name"]
        medians[name] = {n: (op[n], float(np.median(v[1:]))) for n, v in times.items()}
        by_op = collections.defaultdict(float)
        for o, t in medians[name].values():
            by_op[o] += t
        print(name, f"batch {args.batch}, {args.runs} runs: sum of per-node median kernel times (us):",
              {k: round(v) for k, v in sorted(by_op.items(), key=lambda t: -t[1])}, "total", round(sum(by_op.values())))
    a, b = (medians[m.name] for m in args.models)
    diffs = sorted((a[n][1] - b[n][1], n) for n in set(a) & set(b))
    print("largest differences (us, first minus second):", [(round(d), n) for d, n in diffs[:5] + diffs[-5:]])


if __name__ == "__main__":
    main()
