"""TensorRT engines: build (version-adaptive 8.6 / 10.x / 11.x), inspect, load and run.

This package is the only place in rtdeploy that imports ``tensorrt`` or the CUDA Python bindings,
and it imports them inside functions only, so ``import rtdeploy.trt`` works on any machine (and
imports none of its modules until a name is used).

    from rtdeploy.trt import availability, TrtRunner
    availability()                     # what is installed, and why not (for `rtdeploy doctor`)
    with TrtRunner("resnet50.int8.engine") as r:
        out = r.infer({"input": batch})
        r.last_timings                 # {'h2d_ms': .., 'compute_ms': .., 'd2h_ms': .., 'total_ms': ..}
"""

from rtdeploy.faces import lazy_face

__getattr__ = lazy_face(__name__, {
    "availability": "rtdeploy.trt.loader", "import_tensorrt": "rtdeploy.trt.loader",
    "BatchProfile": "rtdeploy.trt.options", "BuildOptions": "rtdeploy.trt.options", "parse_size": "rtdeploy.trt.options",
    "SharedEngine": "rtdeploy.trt.runner", "TrtRunner": "rtdeploy.trt.runner", "load_shared_engine": "rtdeploy.trt.runner",
    "EngineBuildResult": "rtdeploy.trt.stage", "build_engine": "rtdeploy.trt.stage",
})
__all__ = ["BatchProfile", "BuildOptions", "EngineBuildResult", "SharedEngine", "TrtRunner", "availability", "build_engine",
           "import_tensorrt", "load_shared_engine", "parse_size"]
