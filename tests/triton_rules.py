"""Triton's own rules for a model repository entry, encoded from Triton's sources, each citing its file.

A config is parsed with Triton's ``ModelConfig`` (``model_config.proto``, shipped in tritonclient as
``model_config_pb2``), then held to the load rules of Triton core and of the backend that serves it,
and to the request rule: every request Triton accepts under the config is one the model can run.
What the backend sees of the model (a :class:`Subject`) is read independently of rtdeploy's
serving code: from an onnxruntime session for ONNX models (as the onnxruntime backend reads its
session's inputs and outputs), and for an engine from the ONNX it was built from plus what TensorRT
documents about bindings (onnx-tensorrt docs), with the profile from the engine's manifest.

Run as a script (``python tests/triton_rules.py``) it packages every model of :func:`build_matrix`
with the rtdeploy that is importable and prints the table of models x rules; run from a checkout of
another revision (PYTHONPATH) it gives that revision's table.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

WILDCARD = -1

# Sources (repository: path) of every rule below.
SOURCES = {
    "parse": "triton-inference-server/common protobuf/model_config.proto (tritonclient model_config_pb2), protobuf text format",
    "config": "triton-inference-server/core src/model_config_utils.cc ValidateModelConfig; server docs/user_guide/model_repository.md (name = folder)",
    "io_shape": "triton-inference-server/core src/model_config_utils.cc ValidateIOShape (ValidateModelInput/ValidateModelOutput)",
    "instances": "triton-inference-server/core src/model_config_utils.cc ValidateInstanceGroup; tensorrt_backend src/tensorrt_model_instance.cc",
    "backend_io": "onnxruntime_backend src/onnxruntime.cc ValidateInputs/ValidateOutputs/AutoCompleteMaxBatch + src/onnxruntime_utils.cc "
                  "CompareDimsSupported; tensorrt_backend src/instance_state.cc, src/tensorrt_utils.cc CompareDimsSupported, "
                  "src/model_state.cc (max batch vs profile)",
    "requests": "triton-inference-server/core src/infer_request.cc (batch <= max_batch_size, shape vs dims); tensorrt_backend "
                "src/instance_state.cc SetBindingDimensions -> src/tensorrt_utils.cc ValidateDimension (profile min..max)",
    "runtime": "tensorrt_backend src/loader.cc (setDLACore, version compatibility), src/tensorrt.cc (backend-config "
               "version-compatible), README; onnxruntime_backend src/onnxruntime.cc and README (TensorRT execution accelerator)",
}
RULES = tuple(SOURCES)

# What the onnxruntime backend calls each session type (onnxruntime_utils.cc ConvertFromOnnxDataType and
# OnnxDataTypeToModelConfigDataType), by onnxruntime's Python type string.
ORT_TYPES = {
    "tensor(float)": "TYPE_FP32", "tensor(float16)": "TYPE_FP16", "tensor(double)": "TYPE_FP64", "tensor(bfloat16)": "TYPE_BF16",
    "tensor(int8)": "TYPE_INT8", "tensor(int16)": "TYPE_INT16", "tensor(int32)": "TYPE_INT32", "tensor(int64)": "TYPE_INT64",
    "tensor(uint8)": "TYPE_UINT8", "tensor(uint16)": "TYPE_UINT16", "tensor(uint32)": "TYPE_UINT32", "tensor(uint64)": "TYPE_UINT64",
    "tensor(bool)": "TYPE_BOOL", "tensor(string)": "TYPE_STRING",
}


@dataclass
class Subject:
    """The model as the serving backend sees it: tensors by name -> (Triton type, shape with -1 for
    dynamic); for an engine its profile (min, max), DLA core and version compatibility; for an INT8
    ONNX the target its Q/DQ was placed for."""

    platform: str
    inputs: dict[str, tuple[str, tuple[int, ...]]]
    outputs: dict[str, tuple[str, tuple[int, ...]]]
    profile: tuple[int, int] | None = None
    dla_core: int | None = None
    version_compatible: bool = False
    int8_target: str | None = None


def onnxruntime_subject(path: Path) -> Subject:
    """Inputs and outputs as an onnxruntime session reports them (what the onnxruntime backend validates against)."""
    import json

    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])

    def tensors(items):
        return {t.name: (ORT_TYPES[t.type], tuple(d if isinstance(d, int) else WILDCARD for d in t.shape)) for t in items}

    manifest = json.loads(Path(f"{path}.json").read_text())
    target = (manifest.get("quantization") or {}).get("target", "tensorrt") if manifest.get("kind") == "onnx-int8" else None
    return Subject("onnxruntime_onnx", tensors(sess.get_inputs()), tensors(sess.get_outputs()), int8_target=target)


def tensorrt_subject(engine: Path) -> Subject:
    """An engine's bindings, from the ONNX it was built from and what TensorRT documents: names and shapes
    are the network's (a dynamic axis stays -1), DOUBLE is cast down to FLOAT (onnx-tensorrt
    docs/operators.md), INT64 binds as INT32 before TensorRT 9.0 (onnx-tensorrt docs/Changelog.md, 9.0 EA)."""
    import json

    import onnx

    manifest = json.loads(Path(f"{engine}.json").read_text())
    model = onnx.load(manifest["parent"]["path"], load_external_data=False)
    major = int(manifest["tensorrt"]["version"].split(".")[0])
    names = {1: "TYPE_FP32", 10: "TYPE_FP16", 16: "TYPE_BF16", 3: "TYPE_INT8", 2: "TYPE_UINT8", 6: "TYPE_INT32",
             7: "TYPE_INT64" if major >= 9 else "TYPE_INT32", 9: "TYPE_BOOL", 11: "TYPE_FP32"}
    inits = {i.name for i in model.graph.initializer}

    def tensors(items):
        out = {}
        for vi in items:
            tt = vi.type.tensor_type
            out[vi.name] = (names.get(tt.elem_type, "TYPE_INVALID"),
                            tuple(d.dim_value if d.HasField("dim_value") else WILDCARD for d in tt.shape.dim))
        return out

    p = manifest["profile"]
    return Subject("tensorrt_plan", tensors(v for v in model.graph.input if v.name not in inits), tensors(model.graph.output),
                   profile=(p["min"], p["max"]), dla_core=manifest["build"]["dla_core"],
                   version_compatible=manifest["build"]["version_compatible"])


# -- the rules: each returns the problems found (empty: the rule holds) --------------------------------
def parse(text: str):
    """Strict protobuf text parse into Triton's ModelConfig (an unknown field or enum value raises)."""
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2

    return text_format.Parse(text, model_config_pb2.ModelConfig())


def rule_config(cfg, folder: str, s: Subject) -> list[str]:
    problems = []
    if not cfg.name or cfg.name != folder:
        problems.append(f"name {cfg.name!r} must be the model folder's {folder!r}")
    if cfg.platform not in ("onnxruntime_onnx", "tensorrt_plan") or cfg.platform != s.platform:
        problems.append(f"platform {cfg.platform!r} for a {s.platform} model")
    if cfg.max_batch_size < 0:
        problems.append("max_batch_size must be non-negative")
    if cfg.HasField("dynamic_batching"):
        for size in cfg.dynamic_batching.preferred_batch_size:
            if not 0 < size <= cfg.max_batch_size:
                problems.append(f"dynamic batching preferred size {size} must be positive and <= max_batch_size {cfg.max_batch_size}")
    return problems


def rule_io_shape(cfg, folder: str, s: Subject) -> list[str]:
    problems = []
    for kind, ios in (("input", cfg.input), ("output", cfg.output)):
        for io in ios:
            who = f"model {kind} {io.name!r}"
            if not io.name:
                problems.append(f"model {kind} must specify 'name'")
            if io.data_type == 0:
                problems.append(f"{who} must specify 'data_type'")
            if len(io.dims) == 0:
                problems.append(f"{who} must specify 'dims'")
            if io.HasField("reshape") and not io.reshape.shape and cfg.max_batch_size == 0:
                problems.append(f"{who} cannot have empty reshape for non-batching model")
            if any(d < 1 and d != WILDCARD for d in io.dims):
                problems.append(f"{who} dimension must be integer >= 1, or -1")
            if io.HasField("reshape"):
                n_dims, n_re = _count(io.dims), _count(io.reshape.shape)
                if n_dims != n_re and not (len(io.reshape.shape) == 0 and n_dims == 1):
                    problems.append(f"{who} has different size for dims and reshape")
    return problems


def _count(dims) -> int:
    total = 1
    for d in dims:
        if d == WILDCARD:
            return WILDCARD
        total *= d
    return total


def rule_instances(cfg, folder: str, s: Subject) -> list[str]:
    problems = []
    if not cfg.instance_group:
        problems.append("must specify one or more 'instance group's")
    for g in cfg.instance_group:
        kind = type(g).Kind.Name(g.kind)
        if kind not in ("KIND_GPU", "KIND_CPU", "KIND_MODEL"):
            problems.append(f"instance group has unexpected kind {kind}")
        if s.platform == "tensorrt_plan" and kind != "KIND_GPU":
            problems.append(f"a TensorRT plan runs on GPU instances, not {kind}")
        if kind == "KIND_CPU" and g.gpus:
            problems.append("instance group has kind KIND_CPU but specifies one or more GPUs")
        if g.secondary_devices and s.platform != "tensorrt_plan":
            problems.append("secondary devices (KIND_NVDLA) are supported by the TensorRT backend only")
        if len(g.secondary_devices) > 1:
            problems.append("must have either zero or one secondary devices")
    return problems


def _config_shape(io) -> tuple[int, ...]:
    """What a backend compares with the model: the reshape when there is one, else dims."""
    return tuple(io.reshape.shape) if io.HasField("reshape") else tuple(io.dims)


def rule_backend_io(cfg, folder: str, s: Subject) -> list[str]:
    import tritonclient.grpc.model_config_pb2 as pb

    problems = []
    batching = cfg.max_batch_size > 0
    for kind, ios, model in (("input", cfg.input, s.inputs), ("output", cfg.output, s.outputs)):
        names = [io.name for io in ios]
        if sorted(names) != sorted(model):
            problems.append(f"{kind}s {sorted(names)} are not the model's {sorted(model)}")
        for io in ios:
            if io.name not in model:
                continue
            mtype, mshape = model[io.name]
            ctype = pb.DataType.Name(io.data_type)
            if ctype != mtype:
                problems.append(f"configuration expects datatype {ctype} for {kind} {io.name!r}, model provides {mtype}")
            problems += _compare_dims(s, kind, io.name, mshape, _config_shape(io), batching)
    if s.platform == "tensorrt_plan" and s.profile and cfg.max_batch_size > s.profile[1]:
        problems.append(f"configuration specified max-batch {cfg.max_batch_size} but TensorRT engine only supports max-batch {s.profile[1]}")
    return problems


def _compare_dims(s: Subject, kind: str, name: str, mshape: tuple, cshape: tuple, batching: bool) -> list[str]:
    """CompareDimsSupported of each backend (the ORT backend compares outputs exactly and skips scalars,
    where the config must then say 1 in every dim)."""
    if s.platform == "onnxruntime_onnx" and len(mshape) == 0:
        return [] if all(d == 1 for d in cshape) else [f"scalar tensor {name!r} should only provide 1 in the model configuration"]
    if batching and (len(mshape) == 0 or (s.platform == "onnxruntime_onnx" and mshape[0] != WILDCARD)):
        return [f"tensor {name!r}: for the model to support batching the shape should have at least 1 dimension and the "
                f"first dimension must be -1; model shape {list(mshape)}"]
    full = ((WILDCARD,) + cshape) if batching else cshape
    exact = s.platform == "onnxruntime_onnx" and kind == "output"
    ok = len(full) == len(mshape) and all(
        m == c for m, c in zip(mshape, full) if exact or (m != WILDCARD and (s.platform == "onnxruntime_onnx" or c != WILDCARD)))
    return [] if ok else [f"tensor {name!r}: the model expects shape {list(mshape)} but the configuration specifies {list(full)}"]


def rule_requests(cfg, folder: str, s: Subject) -> list[str]:
    """Every request Triton accepts can run: the batches the dynamic batcher may form (1..max_batch_size)
    or the full shapes a non-batching config lets through (-1: any size) must fit the model."""
    problems = []
    batching = cfg.max_batch_size > 0
    for io in cfg.input:
        if io.name not in s.inputs:
            continue
        _, mshape = s.inputs[io.name]
        accepted = [(1, cfg.max_batch_size)] if batching else []
        accepted += [None if d == WILDCARD else (d, d) for d in _config_shape(io)]
        if len(accepted) != len(mshape):
            problems.append(f"input {io.name!r}: requests of rank {len(accepted)} for a model of rank {len(mshape)}")
            continue
        for axis, (acc, m) in enumerate(zip(accepted, mshape)):
            runs = _model_range(s, axis, m)
            if acc is None and runs != (1, None):
                problems.append(f"input {io.name!r} axis {axis}: Triton accepts any size, the model runs {_show(runs)}")
            elif acc is not None and not (runs[0] <= acc[0] and (runs[1] is None or acc[1] <= runs[1])):
                problems.append(f"input {io.name!r} axis {axis}: Triton accepts {_show(acc)}, the model runs {_show(runs)}")
    return problems


def _model_range(s: Subject, axis: int, dim: int) -> tuple[int, int | None]:
    if dim != WILDCARD:
        return (dim, dim)
    if s.platform == "tensorrt_plan" and axis == 0 and s.profile:
        return s.profile
    return (1, None)


def _show(r) -> str:
    return f"{r[0]}..{r[1] if r[1] is not None else 'any'}" if r[0] != r[1] else str(r[0])


def rule_runtime(cfg, folder: str, s: Subject, text: str = "") -> list[str]:
    problems = []
    secondary = [d for g in cfg.instance_group for d in g.secondary_devices]
    if s.dla_core is not None:
        if not any(g.secondary_devices and g.secondary_devices[0].device_id == s.dla_core for g in cfg.instance_group):
            problems.append(f"a DLA engine (core {s.dla_core}) needs secondary_devices {{ kind: KIND_NVDLA device_id: {s.dla_core} }}")
    elif secondary:
        problems.append("a GPU engine must not be placed on an NVDLA core")
    if s.version_compatible and "version-compatible=true" not in text:
        problems.append("a version-compatible plan loads only with --backend-config=tensorrt,version-compatible=true; the config says nothing")
    accelerators = [a for a in cfg.optimization.execution_accelerators.gpu_execution_accelerator]
    for a in accelerators:
        params = dict(a.parameters)
        if a.name not in ("tensorrt", "cuda"):
            problems.append(f"unknown Execution Accelerator {a.name!r}")
        if params.get("precision_mode", "FP32") not in ("FP32", "FP16", "BF16", "INT8"):
            problems.append(f"unsupported precision mode {params['precision_mode']!r}")
    gpu = any(type(g).Kind.Name(g.kind) == "KIND_GPU" for g in cfg.instance_group)
    trt_int8 = any(a.name == "tensorrt" and dict(a.parameters).get("precision_mode") == "INT8" for a in accelerators)
    if s.int8_target == "tensorrt" and gpu and not trt_int8:
        problems.append("an INT8 Q/DQ model on GPU instances runs on the CUDA execution provider unless the TensorRT execution "
                        "accelerator is configured with precision_mode INT8")
    if s.int8_target == "onnxruntime-cpu" and any(a.name == "tensorrt" for a in accelerators):
        problems.append("TensorRT takes no uint8/asymmetric Q/DQ: the CPU form must not ask for the TensorRT accelerator")
    return problems


def check(config_path: Path, s: Subject) -> dict[str, list[str]]:
    """Every rule's problems for one written config (``parse`` failing stops the others)."""
    text = config_path.read_text(encoding="utf-8")
    try:
        cfg = parse(text)
    except Exception as e:  # protobuf's ParseError, or a UnicodeError
        return {"parse": [f"{type(e).__name__}: {e}"]}
    folder = config_path.parent.name
    return {"parse": [], "config": rule_config(cfg, folder, s), "io_shape": rule_io_shape(cfg, folder, s),
            "instances": rule_instances(cfg, folder, s), "backend_io": rule_backend_io(cfg, folder, s),
            "requests": rule_requests(cfg, folder, s), "runtime": rule_runtime(cfg, folder, s, text)}


# -- the models ------------------------------------------------------------------------------------
@dataclass
class Case:
    """One package call: the artifact, its ``kind``, what the backend sees, and whether rtdeploy is
    meant to refuse it (an engine whose profile Triton cannot be kept within)."""

    label: str
    artifact: Path
    kind: str = "gpu"
    subject: Subject | None = None
    refused_by_design: bool = False
    package_kw: dict = field(default_factory=dict)


def build_matrix(folder: Path, resnet: Path | None = None) -> list[Case]:
    """Every model of the issue, each made the way a user makes it (tiny graphs: quantized and imported
    for real; engines as manifest stand-ins, no TensorRT here), and the package kinds each serves with."""
    import numpy as np
    import onnx
    from onnx import TensorProto

    from manifest_fakes import write_engine_manifest, write_onnx_manifest
    from rtdeploy import api
    from rtdeploy.artifacts import read_manifest
    from rtdeploy.models import model_meta
    from tiny_graphs import foreign_multi_output, tiny_convnet

    folder.mkdir(parents=True, exist_ok=True)
    meta = model_meta(20, image_size=8).to_dict()
    calib = folder / "calib.npy"
    np.save(calib, np.random.default_rng(0).normal(0, 1, (8, 3, 8, 8)).astype(np.float32))

    def fp32(name: str, **kw) -> Path:
        path = folder / name
        onnx.save(tiny_convnet(**kw), str(path))
        write_onnx_manifest(path, meta, export={"exporter": "torchscript", "opset": 17, "batch": kw.get("batch", "dynamic"), "seconds": 0.0})
        return path

    dyn, fixed = fp32("tiny.onnx"), fp32("tiny_b4.onnx", batch=4)
    q = dict(calib_dir=calib, method="max", stats_cache=False)
    fp16 = api.quantize(dyn, fp16=True, calib_dir=calib, stats_cache=False, output=folder / "tiny.fp16.onnx").path
    int8 = api.quantize(dyn, int8=True, output=folder / "tiny.int8.onnx", **q).path
    cpu = api.quantize(dyn, int8=True, target="onnxruntime-cpu", output=folder / "tiny.int8-cpu.onnx", **q).path
    def imported(name: str, **kw) -> Path:
        path = folder / name
        onnx.save(foreign_multi_output(**kw), str(path))
        api.import_model(path, preprocess="none")
        return path

    label = imported("label.onnx", odd_names=False, confident=False)
    flag = imported("flag.onnx", odd_names=False, label=False)
    odd = imported("odd.onnx", label=False, confident=False)
    foreign = imported("foreign.onnx")
    kinds = (TensorProto.BOOL, TensorProto.INT8, TensorProto.UINT8, TensorProto.INT16, TensorProto.UINT16, TensorProto.INT32,
             TensorProto.UINT32, TensorProto.UINT64, TensorProto.FLOAT16, TensorProto.BFLOAT16, TensorProto.DOUBLE, TensorProto.STRING)
    typed = imported("types.onnx", odd_names=False, label=False, confident=False, extra_types=kinds)
    scalar = imported("scalar.onnx", odd_names=False, label=False, confident=False, scalar=True)

    def engine(name: str, parent: Path, precision: str, profile, **kw) -> Path:
        path = folder / name
        path.write_bytes(f"stand-in plan {name}".encode())
        pm = read_manifest(parent)
        write_engine_manifest(path, parent, precision=precision, model=pm["model"], profile=profile,
                              input_name=pm["model"]["input_name"], sample_shape=(3, 8, 8), **kw)
        return path

    cases = []
    if resnet is not None:
        cases.append(Case("ResNet-20 export, dynamic batch", resnet))
    for text, path, kinds_ in (("FP32, dynamic batch", dyn, ("gpu", "cpu")), ("FP32, fixed batch 4", fixed, ("gpu", "cpu")),
                               ("FP16 graph", fp16, ("gpu",)), ("INT8 Q/DQ (TensorRT form)", int8, ("gpu",)),
                               ("INT8 CPU form (X.int8-cpu.onnx)", cpu, ("cpu", "gpu")),
                               ("imported: int64 label output, shape (N,)", label, ("gpu", "cpu")),
                               ("imported: bool output", flag, ("gpu",)),
                               ("imported: odd tensor names (quotes, backslash, UTF-8)", odd, ("gpu",)),
                               ("imported: int64 + bool outputs, odd names", foreign, ("gpu", "cpu")),
                               ("imported: 12 more output types", typed, ("cpu",)),
                               ("imported: a scalar output", scalar, ("gpu",))):
        cases += [Case(f"{text} [{k}]", path, k) for k in kinds_]
    cases.append(Case("FP32, dynamic batch, --max-batch 0 [gpu]", dyn, package_kw={"max_batch": 0}))
    cases += [
        Case("engine INT8, profile 1:8:32", engine("tiny.int8.plan", int8, "int8", (1, 8, 32))),
        Case("engine INT8, 1:8:32, --max-batch 8 --preferred-batch 2,8", folder / "tiny.int8.plan",
             package_kw={"max_batch": 8, "preferred_batch": (2, 8)}),
        Case("engine FP16, profile 8:8:8 (--batch 8)", engine("tiny.fp16.plan", fp16, "fp16", (8, 8, 8))),
        Case("engine FP32 of fixed-batch ONNX, profile 4:4:4", engine("tiny_b4.fp32.plan", fixed, "fp32", (4, 4, 4))),
        Case("engine INT8, profile 4:16:32", engine("tiny.416.int8.plan", int8, "int8", (4, 16, 32)), refused_by_design=True),
        Case("engine INT8 on DLA core 1, profile 8:8:8", engine("tiny.dla.int8.plan", int8, "int8", (8, 8, 8), dla_core=1)),
        Case("engine FP32 version-compatible, 1:8:32", engine("tiny.vc.fp32.plan", dyn, "fp32", (1, 8, 32), version_compatible=True)),
        Case("engine of imported int64-label model, TensorRT 8.6", engine("label86.fp32.plan", label, "fp32", (1, 8, 32), tensorrt="8.6.1")),
        Case("engine of imported int64/bool/odd-names model, TensorRT 10.3", engine("foreign.fp32.plan", foreign, "fp32", (1, 8, 32))),
    ]
    for c in cases:
        c.subject = tensorrt_subject(c.artifact) if c.artifact.suffix == ".plan" else onnxruntime_subject(c.artifact)
    return cases


def package_case(case: Case, repo: Path, name: str) -> Path:
    """``rtdeploy package`` of one case (through the API every revision has); returns config.pbtxt."""
    from rtdeploy import api

    return api.package(case.artifact, triton=repo, name=name, kind=case.kind, **case.package_kw) / "config.pbtxt"


def table(folder: Path) -> str:
    """The markdown table of models x rules for the importable rtdeploy (✓ holds, ✗ broken, refused:
    package exits 1 with one line)."""
    from rtdeploy.errors import RtDeployError

    rows = ["| model [package --kind] | " + " | ".join(RULES) + " |", "|---|" + "---|" * len(RULES)]
    for i, case in enumerate(build_matrix(folder / "models")):
        try:
            results = check(package_case(case, folder / "repo", f"m{i}"), case.subject)
            cells = ["✗" if results.get(r) else ("✓" if r in results else "–") for r in RULES]
        except RtDeployError as e:
            cells = [f"refused: {str(e)[:60]}…"] + [""] * (len(RULES) - 1)
        rows.append(f"| {case.label} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


if __name__ == "__main__":
    import tempfile

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    with tempfile.TemporaryDirectory() as tmp:
        print(table(Path(tmp)))
