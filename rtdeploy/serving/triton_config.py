"""Triton's ``config.pbtxt``: the message rtdeploy writes, as protobuf text of ``inference.ModelConfig``
(``model_config.proto`` in triton-inference-server/common), and the data types Triton has.

Written by hand so that serving needs no Triton package at run time; the tests parse every file
with Triton's own ``ModelConfig`` (tritonclient's ``model_config_pb2``) and hold it to Triton's
load and request rules (tests/test_triton_rules.py).
"""

from __future__ import annotations

from dataclasses import dataclass

# ONNX TensorProto element type -> Triton DataType: every pair the onnxruntime backend knows
# (onnxruntime_backend src/onnxruntime_utils.cc, OnnxDataTypeToModelConfigDataType). ONNX's
# complex, float8, int4/uint4 and float4 types have no Triton type.
ONNX_TO_TRITON = {
    1: "TYPE_FP32", 2: "TYPE_UINT8", 3: "TYPE_INT8", 4: "TYPE_UINT16", 5: "TYPE_INT16", 6: "TYPE_INT32", 7: "TYPE_INT64",
    8: "TYPE_STRING", 9: "TYPE_BOOL", 10: "TYPE_FP16", 11: "TYPE_FP64", 12: "TYPE_UINT32", 13: "TYPE_UINT64", 16: "TYPE_BF16",
}
# The binding types a TensorRT engine can have (tensorrt_backend src/tensorrt_utils.cc,
# ConvertTrtTypeToConfigDataType).
TENSORRT_TYPES = frozenset({"TYPE_FP32", "TYPE_FP16", "TYPE_BF16", "TYPE_INT8", "TYPE_UINT8", "TYPE_INT32", "TYPE_INT64", "TYPE_BOOL"})


def engine_binding_type(onnx_type: str, tensorrt_major: int) -> str | None:
    """The Triton type of an engine binding built from an ONNX tensor of Triton type ``onnx_type``:
    TensorRT casts DOUBLE down to FLOAT (onnx-tensorrt docs/operators.md), and before 9.0 it bound
    INT64 tensors as INT32 ("ONNX models with INT64 I/O require INT64 bindings" from 9.0,
    onnx-tensorrt docs/Changelog.md). None: TensorRT has no binding of that type."""
    if onnx_type == "TYPE_FP64":
        return "TYPE_FP32"
    if onnx_type == "TYPE_INT64" and tensorrt_major < 9:
        return "TYPE_INT32"
    return onnx_type if onnx_type in TENSORRT_TYPES else None


def quoted(text: str) -> str:
    """``text`` as a protobuf text-format string literal: quotes and backslashes escaped, control
    characters as octal escapes, everything else (UTF-8 included) as it is."""
    out = []
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\{ord(ch):03o}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


@dataclass(frozen=True)
class TensorSpec:
    """One model input or output as Triton sees it.

    Attributes:
        name, data_type: the tensor's name and Triton type.
        dims: without the batch axis when the model batches; never empty (a tensor of no
            dimensions is ``[1]`` with ``reshape`` ``()``, as Triton's autofill writes it).
        reshape: the model's own shape when it differs from ``dims`` (only ``()`` here).
    """

    name: str
    data_type: str
    dims: tuple[int, ...]
    reshape: tuple[int, ...] | None = None

    def block(self, kind: str) -> str:
        dims = ", ".join(str(d) for d in self.dims)
        reshape = "" if self.reshape is None else f"\n    reshape {{ shape: [ {', '.join(str(d) for d in self.reshape)} ] }}"
        return (f"{kind} [\n  {{\n    name: {quoted(self.name)}\n    data_type: {self.data_type}\n    dims: [ {dims} ]{reshape}\n"
                "  }\n]")


@dataclass(frozen=True)
class TritonConfig:
    """What goes into config.pbtxt.

    Attributes:
        notes: comment lines at the top (why the config is as it is, what the server needs).
        dla_core: the NVDLA core of a DLA engine (a ``secondary_devices`` entry).
        accelerator: parameters of the onnxruntime backend's TensorRT execution accelerator
            (``optimization.execution_accelerators.gpu_execution_accelerator``), or None.
    """

    name: str
    platform: str
    max_batch_size: int
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    preferred_batch_sizes: tuple[int, ...] = ()
    max_queue_delay_us: int = 100
    instance_count: int = 1
    instance_kind: str = "KIND_GPU"
    dla_core: int | None = None
    accelerator: tuple[tuple[str, str], ...] | None = None
    notes: tuple[str, ...] = ()

    def to_pbtxt(self) -> str:
        """Protobuf text format of Triton's ModelConfig."""
        lines = [f"# {n}" for n in self.notes]
        lines += [f"name: {quoted(self.name)}", f"platform: {quoted(self.platform)}", f"max_batch_size: {self.max_batch_size}"]
        lines += [t.block("input") for t in self.inputs]
        lines += [t.block("output") for t in self.outputs]
        if self.max_batch_size > 0:
            pref = "".join(f"\n  preferred_batch_size: {b}" for b in self.preferred_batch_sizes)
            lines.append(f"dynamic_batching {{{pref}\n  max_queue_delay_microseconds: {self.max_queue_delay_us}\n}}")
        secondary = ("" if self.dla_core is None else
                     f"\n    secondary_devices [ {{ kind: KIND_NVDLA device_id: {self.dla_core} }} ]")
        lines.append(f"instance_group [\n  {{\n    count: {self.instance_count}\n    kind: {self.instance_kind}{secondary}\n  }}\n]")
        if self.accelerator is not None:
            params = "".join(f"\n        parameters {{ key: {quoted(k)} value: {quoted(v)} }}" for k, v in self.accelerator)
            lines.append("optimization {\n  execution_accelerators {\n    gpu_execution_accelerator [\n      {\n"
                         f"        name: \"tensorrt\"{params}\n      }}\n    ]\n  }}\n}}")
        return "\n".join(lines) + "\n"
