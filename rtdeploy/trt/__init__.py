"""TensorRT engines: build (version-adaptive 8.6 / 10.x / 11.x), inspect, load and run.

This package is the only place in rtdeploy that imports ``tensorrt`` or the CUDA Python bindings,
and it imports them inside functions only, so ``import rtdeploy.trt`` works on any machine.

    from rtdeploy.trt import availability, TrtRunner
    availability()                     # what is installed, and why not (for `rtdeploy doctor`)
    with TrtRunner("resnet50.int8.engine") as r:
        out = r.infer({"input": batch})
        r.last_timings                 # {'h2d_ms': .., 'compute_ms': .., 'd2h_ms': .., 'total_ms': ..}
"""

from __future__ import annotations

from rtdeploy.trt.loader import availability, import_tensorrt
from rtdeploy.trt.options import BatchProfile, BuildOptions, parse_size
from rtdeploy.trt.runner import SharedEngine, TrtRunner, load_shared_engine
from rtdeploy.trt.stage import EngineBuildResult, build_engine

__all__ = [
    "BatchProfile",
    "BuildOptions",
    "EngineBuildResult",
    "SharedEngine",
    "TrtRunner",
    "availability",
    "build_engine",
    "import_tensorrt",
    "load_shared_engine",
    "parse_size",
]
