"""``rtdeploy build-engine``: ONNX (exported and quantized as needed) -> TensorRT engine + manifest."""

from __future__ import annotations

from rtdeploy.cli.common import say
from rtdeploy.cli.generate import command
from rtdeploy.trt.options import BuildOptions


@command("build-engine", BuildOptions)
def build_engine(**options):
    """Build a TensorRT engine (a plain plan file) and its JSON manifest.

    Exports and quantizes as needed (reusing artifacts whose manifests match), parses the ONNX,
    builds with the API of the installed TensorRT (8.6, 10.x or 11.x), then checks each layer's
    precision and fails if INT8/FP16 was asked but not built. Without TensorRT or a GPU it still
    writes the precision ONNX and says how to build it elsewhere. An ONNX TensorRT does not build
    is refused first: the onnxruntime-CPU INT8 form (X.int8-cpu.onnx), asymmetric or UINT8 Q/DQ,
    and opsets or Q/DQ scale types the installed TensorRT (or, without one, --trt-version)
    does not document (TensorRT 8.6: opsets up to 17, float32 scales).

    \b
    Examples:
      rtdeploy build-engine --depth 50 --int8 --calib-dir calib/
      rtdeploy build-engine --onnx resnet50.fp16.onnx --batch 1:16:64 --timing-cache trt.cache
      rtdeploy build-engine --onnx r18.onnx --int8 --dla-core 0 --gpu-fallback --batch 8
    """
    from rtdeploy import api

    json_out = options.get("json")

    def show(result):
        m = result.manifest
        counts = ", ".join(f"{n} {p.upper()}" for p, n in sorted(m["layers"]["by_precision"].items()))
        placement = f", DLA {m['dla']['dla']} / GPU {m['dla']['gpu']} layers" if m.get("dla") else ""
        say(f"wrote {result.path} ({m['bytes'] / 1e6:.1f} MB, TensorRT {m['tensorrt']['version']}, {m['precision']}, "
            f"batch {m['profile']['min']}:{m['profile']['opt']}:{m['profile']['max']}, layers: {counts}{placement}, "
            f"{m['build']['seconds']:.1f}s)", json_out)

    api.build_engine(**options, show=show)
