"""Hand-off to Triton Inference Server: a model repository for an ONNX model or a TensorRT engine.

Layout written (one model per call)::

    DIR/<name>/config.pbtxt
    DIR/<name>/<version>/model.onnx | model.plan

``config.pbtxt`` is protobuf text of Triton's ``ModelConfig`` (:mod:`rtdeploy.serving.triton_config`):
platform, max_batch_size, input/output names (escaped), dims and data types (every type Triton
has), dynamic batching with preferred batch sizes, instance groups (with the NVDLA core of a DLA
engine), the TensorRT execution accelerator for an INT8 Q/DQ model on GPUs, and comments saying
why and what the server needs. Batching follows Triton's rules: only a model whose every tensor has
a dynamic first axis is batched, and an engine only within its optimization profile (see
:func:`build_config`). The model folder is assembled in a temporary folder and renamed into
place, so a failed run leaves no half-written model behind. docs/triton.md says it for users.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from rtdeploy.artifacts import ENGINE_SUFFIXES, check_matches_manifest
from rtdeploy.files import folder_lock, not_a_file
from rtdeploy.lineage import CPU_TARGET, derived_path
from rtdeploy.errors import ArtifactError, OutputError, PackageError
from rtdeploy.manifests import EngineManifest, read_engine, read_onnx
from rtdeploy.serving.triton_config import ONNX_TO_TRITON, TensorSpec, TritonConfig, engine_binding_type

log = logging.getLogger(__name__)

# A Triton model name is the name of its folder in the model repository, the quoted ``name`` of its
# config.pbtxt (the two must match), and a path segment of the HTTP/GRPC API (/v2/models/<name>);
# see https://github.com/triton-inference-server/server/blob/main/docs/user_guide/model_repository.md.
# Only names safe in all three are written: letters, digits, '_', '-' and '.', not starting with '.'
# (hidden folders, '.' and '..'), at most 255 bytes (a folder name).

DEFAULT_MAX_BATCH = 32  # for a batch-dynamic ONNX


@dataclass(frozen=True)
class Tensor:
    """An input or output of the ONNX model: name, Triton type, dims (None where dynamic)."""

    name: str
    data_type: str
    dims: tuple[int | None, ...]

    @property
    def batchable(self) -> bool:
        """Rank 1 or more with a dynamic first axis: what Triton needs of every tensor of a batching model."""
        return len(self.dims) > 0 and self.dims[0] is None


def onnx_io(path: Path) -> tuple[list[Tensor], list[Tensor]]:
    """(inputs, outputs) of an ONNX file, each type mapped by :data:`ONNX_TO_TRITON`.

    Raises:
        ArtifactError: the file is not a readable ONNX model.
        PackageError: a tensor of a type Triton has no data type for.
    """
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as e:  # onnx raises DecodeError and others for a corrupt file
        raise ArtifactError(f"{path} is not a readable ONNX model ({type(e).__name__}); re-export it with `rtdeploy export`") from e
    inits = {i.name for i in model.graph.initializer}

    def spec(vi) -> Tensor:
        tt = vi.type.tensor_type
        if tt.elem_type not in ONNX_TO_TRITON:
            name = onnx.TensorProto.DataType.Name(tt.elem_type) if tt.elem_type in onnx.TensorProto.DataType.values() else tt.elem_type
            raise PackageError(f"{path.name}: tensor {vi.name!r} is {name}, which Triton has no data type for (it takes "
                               f"{', '.join(sorted(set(ONNX_TO_TRITON.values())))}); cast it in the model before packaging")
        dims = tuple(d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim)
        return Tensor(vi.name, ONNX_TO_TRITON[tt.elem_type], dims)

    return [spec(v) for v in model.graph.input if v.name not in inits], [spec(v) for v in model.graph.output]


@dataclass(frozen=True)
class Batching:
    """How Triton batches the model: ``max_batch_size`` (0: not at all), the batch size every
    request must carry when not batching (``fixed``, None: any), and why (a config comment)."""

    max_batch_size: int
    fixed: int | None = None
    why: str = ""


def build_config(
    artifact: Path, *, name: str, max_batch: int | None = None, preferred: tuple[int, ...] = (),
    instances: int = 1, kind: str | None = None, max_queue_delay_us: int = 100,
) -> TritonConfig:
    """The Triton config for an ONNX file (``.onnx``) or a TensorRT engine (``.plan``/``.engine``).

    Every request Triton accepts under the config is one the model can run: a batching config
    only where every tensor has a dynamic first axis and, for an engine, where the profile takes
    every batch from 1 up to ``max_batch_size``; an engine of one batch size N (a static profile:
    fixed-batch ONNX, ``--batch N``, every DLA build) gets ``max_batch_size: 0`` and inputs of
    batch N; an engine whose profile starts above 1 and is not static is refused.

    Raises:
        PackageError: a batch option that contradicts the artifact, an engine profile Triton
            cannot be kept within, a type Triton has no data type for.
        ArtifactError: the artifact or its manifest is unreadable.
    """
    is_engine = artifact.suffix in ENGINE_SUFFIXES
    manifest = read_engine(artifact) if is_engine else read_onnx(artifact)
    check_matches_manifest(artifact, manifest.sha256, remedy="re-run that stage, or restore the file")
    onnx_path = _onnx_for(artifact, manifest) if is_engine else artifact
    inputs, outputs = onnx_io(onnx_path)  # an engine binds the I/O names and types of the ONNX it was built from
    plan = _engine_batching(artifact, manifest, inputs + outputs, max_batch) if is_engine else _onnx_batching(inputs + outputs, max_batch)
    mbs = plan.max_batch_size
    if preferred and not mbs:
        raise PackageError(f"--preferred-batch applies to a batching model, but {artifact.name} is packaged with max_batch_size 0 "
                           f"({plan.why or '--max-batch 0'}); drop --preferred-batch")
    if preferred and max(preferred) > mbs:
        raise PackageError(f"--preferred-batch {max(preferred)} exceeds max_batch_size {mbs}; give sizes up to {mbs}")
    preferred = preferred or tuple(b for b in (1, 4, 8, 16, 32) if b <= mbs and b > 1)[:3]
    types = _engine_types(artifact, manifest, inputs + outputs) if is_engine else {t.name: t.data_type for t in inputs + outputs}
    notes = [plan.why] if plan.why else []
    extra = _engine_extras(manifest, notes) if is_engine else _onnx_extras(artifact, manifest, kind, notes)
    return TritonConfig(
        name=name, platform="tensorrt_plan" if is_engine else "onnxruntime_onnx", max_batch_size=mbs,
        inputs=tuple(_spec(t, types[t.name], plan) for t in inputs), outputs=tuple(_spec(t, types[t.name], plan) for t in outputs),
        preferred_batch_sizes=preferred if mbs else (), max_queue_delay_us=max_queue_delay_us, instance_count=instances,
        instance_kind=kind or "KIND_GPU", notes=tuple(notes), **extra,
    )


def _spec(t: Tensor, data_type: str, plan: Batching) -> TensorSpec:
    """Dims as Triton reads them: the batch axis left out when batching, a dynamic batch fixed to
    ``plan.fixed``, -1 for other dynamic axes; no dims at all becomes ``[1]`` (with ``reshape: []``
    when batching, as Triton's autofill writes it; a non-batching config may not have an empty reshape)."""
    dims = list(t.dims)
    if plan.max_batch_size > 0:
        dims = dims[1:]
    elif plan.fixed is not None and dims and dims[0] is None:
        dims[0] = plan.fixed
    dims = [-1 if d is None else d for d in dims]
    if not dims:
        return TensorSpec(t.name, data_type, (1,), () if plan.max_batch_size > 0 else None)
    return TensorSpec(t.name, data_type, tuple(dims))


def _onnx_batching(tensors: list[Tensor], asked: int | None) -> Batching:
    """onnxruntime batches a model only when every input and output has a dynamic first axis
    (onnxruntime_backend src/onnxruntime.cc AutoCompleteMaxBatch; src/onnxruntime_utils.cc CompareDimsSupported)."""
    fixed = next((t for t in tensors if not t.batchable), None)
    if fixed is None:
        return Batching(DEFAULT_MAX_BATCH if asked is None else asked)
    if asked:
        shape = "no dimensions" if not fixed.dims else f"a fixed first axis of {fixed.dims[0]}"
        raise PackageError(f"--max-batch {asked}: tensor {fixed.name!r} has {shape}, and Triton batches a model only when every "
                           "input and output has a dynamic first axis; drop --max-batch, or re-export with a dynamic batch "
                           "(rtdeploy export --batch dynamic)")
    return Batching(0, why=f"max_batch_size 0: tensor {fixed.name} has no dynamic batch axis, so Triton must not batch")


def _engine_batching(engine: Path, manifest: EngineManifest, tensors: list[Tensor], asked: int | None) -> Batching:
    """Batching that keeps every batch Triton can send within the engine's profile (min..max):
    tensorrt_backend src/instance_state.cc SetBindingDimensions refuses any other (ValidateDimension)."""
    lo, opt, hi = manifest.profile.min, manifest.profile.opt, manifest.profile.max
    fixed = next((t for t in tensors if not t.batchable), None)
    if asked is not None and asked > hi:
        raise PackageError(f"--max-batch {asked} exceeds the engine's profile maximum {hi}; rebuild with --batch 1:OPT:{asked} or give ≤ {hi}")
    if lo == 1 and fixed is None and asked != 0:
        return Batching(hi if asked is None else asked)  # Triton sends 1..max_batch_size, all within 1..hi
    if lo == hi:
        if asked:
            raise PackageError(f"--max-batch {asked}: {engine.name} runs batch {lo} only (profile {lo}:{lo}:{lo}), and Triton's "
                               f"dynamic batcher would form batches from 1 up; drop --max-batch (clients send {lo} images per request)")
        reason = (f"tensor {fixed.name} has no dynamic batch axis" if fixed is not None else
                  f"Triton's dynamic batcher would also form batches other than {lo}")
        return Batching(0, fixed=lo, why=f"max_batch_size 0, inputs of batch {lo}: the engine runs batch {lo} only "
                                          f"(profile {lo}:{lo}:{lo}) and {reason}; every request carries the full batch")
    if lo > 1:
        raise PackageError(f"{engine.name} takes batches {lo} to {hi} (profile {lo}:{opt}:{hi}): Triton's dynamic batcher forms "
                           f"batches from 1 up, and a config without batching fixes one batch size or accepts any; rebuild "
                           f"with --batch 1:{opt}:{hi}, or --batch N for one batch size")
    if fixed is not None:
        raise PackageError(f"{engine.name} takes batches 1 to {hi}, but tensor {fixed.name!r} has no dynamic batch axis, so Triton "
                           "cannot batch it, and a config without batching would accept any batch size; rebuild with --batch N")
    raise PackageError(f"--max-batch 0 would let clients send any batch size, but {engine.name} takes 1 to {hi}; give "
                       f"--max-batch 1..{hi} (Triton then batches up to it)")


def _engine_types(engine: Path, manifest: EngineManifest, tensors: list[Tensor]) -> dict[str, str]:
    head = str(manifest.tensorrt.version).split(".")[0]
    major = int(head) if head.isdigit() else 0
    types = {}
    for t in tensors:
        bound = engine_binding_type(t.data_type, major)
        if bound is None:
            raise PackageError(f"{engine.name}: tensor {t.name!r} is {t.data_type}, which a TensorRT engine has no binding for; "
                               "package the ONNX model instead")
        types[t.name] = bound
    return types


def _engine_extras(manifest: EngineManifest, notes: list[str]) -> dict:
    """DLA engines run on their NVDLA core (a secondary device: tensorrt_backend
    src/tensorrt_model_instance.cc); version-compatible plans need a server flag (src/tensorrt.cc, src/loader.cc)."""
    if manifest.build.version_compatible:
        flag = "tritonserver --backend-config=tensorrt,version-compatible=true"
        notes.append(f"a version-compatible plan: start {flag} (the TensorRT backend refuses its lean runtime otherwise)")
        log.warning("%s is version-compatible: Triton loads it only when started with `%s`", manifest.artifact, flag)
    dla = manifest.build.dla_core
    if dla is not None:
        notes.append(f"built for DLA core {dla}: instances run on NVDLA core {dla} (secondary_devices)")
    return {"dla_core": dla}


def _onnx_extras(artifact: Path, manifest, kind: str | None, notes: list[str]) -> dict:
    """An INT8 Q/DQ model on a GPU runs on TensorRT only through the onnxruntime backend's TensorRT
    execution accelerator (precision_mode INT8 turns on trt_int8_enable: onnxruntime_backend
    src/onnxruntime.cc); without it the CUDA execution provider runs it, not in INT8 kernels."""
    if (kind or "KIND_GPU") != "KIND_GPU" or manifest.kind != "onnx-int8":
        return {}
    q = getattr(manifest, "quantization", None)
    if getattr(q, "target", "tensorrt") == CPU_TARGET:
        log.warning("%s is the INT8 form for onnxruntime's CPU kernels: on a GPU it runs on the CUDA execution provider, not "
                    "in TensorRT's INT8 kernels (TensorRT takes no uint8 Q/DQ); for GPU serving package %s or its engine",
                    artifact.name, derived_path(artifact, "int8").name)
        notes.append("the INT8 form for onnxruntime's CPU kernels: on a GPU it runs on the CUDA execution provider")
        return {}
    notes.append("INT8 Q/DQ model: served through onnxruntime's TensorRT execution accelerator in INT8 "
                 "(a Triton whose onnxruntime backend is built with TensorRT, as NVIDIA's containers are)")
    return {"accelerator": (("precision_mode", "INT8"),)}


def _onnx_for(engine: Path, manifest: EngineManifest) -> Path:
    parent = manifest.parent.file
    if not parent.is_file():
        raise ArtifactError(f"cannot find the ONNX model engine {engine.name} was built from (manifest parent: {parent}); keep it beside the engine or rebuild with `rtdeploy build-engine`")
    return parent


def check_model_name(name: str) -> str:
    """A Triton model name, checked (see :func:`rtdeploy.checks.model_name`).

    Raises:
        PackageError: a name that would not be a plain folder, a valid config string or URL segment.
    """
    from rtdeploy.checks import model_name

    return model_name(name, "--name", PackageError)


def default_model_name(artifact: Path) -> str:
    """``resnet50.int8.onnx`` -> ``resnet50_int8``; characters a model name cannot hold become '_'."""
    parts = artifact.name.split(".")
    name = parts[0] + "".join("_" + p for p in parts[1:-1])
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", name).lstrip(".")
    return name[:255] or "model"


def check_serving_options(*, version: int, max_queue_delay_us: int = 100, instances: int = 1,
                          preferred: tuple[int, ...] = (), max_batch: int | None = None) -> None:
    """The numeric options, before anything is read or written.

    Raises:
        PackageError: naming the option and the accepted range.
    """
    from rtdeploy.checks import whole

    whole(version, "--version", PackageError, minimum=1, maximum=_INT64_MAX)
    whole(max_queue_delay_us, "--max-queue-delay-us", PackageError, minimum=0, maximum=_UINT64_MAX)
    whole(instances, "--instances", PackageError, minimum=1, maximum=MAX_INSTANCES)
    if max_batch is not None:
        whole(max_batch, "--max-batch", PackageError, minimum=0, maximum=_INT32_MAX)
    for b in preferred:
        whole(b, "--preferred-batch", PackageError, minimum=1, maximum=_INT32_MAX)


# The widths of the fields in Triton's model_config.proto: a larger number makes a config.pbtxt
# Triton cannot parse (the version is the folder name, read as int64).
_INT32_MAX, _INT64_MAX, _UINT64_MAX = 2**31 - 1, 2**63 - 1, 2**64 - 1
# Instances of one model per device: each holds its own copy of the weights and activations.
MAX_INSTANCES = 64


def write_repository(artifact: str | os.PathLike, repo: str | os.PathLike, *, name: str | None = None, version: int = 1,
                     force: bool = False, **config_kw) -> Path:
    """Write ``repo/<name>/config.pbtxt`` and ``repo/<name>/<version>/model.{onnx,plan}``.

    Args:
        artifact: an rtdeploy ONNX model or TensorRT engine (with its manifest).
        repo: the model repository folder (created if its parent exists).
        name: the Triton model name (default: the artifact's stem, dots replaced by underscores).
        version: the model version folder.
        force: replace an existing model folder of that name.
        **config_kw: options of :func:`build_config`.

    Returns:
        The model folder.
    """
    src = Path(artifact)
    check_serving_options(version=version, max_queue_delay_us=config_kw.get("max_queue_delay_us", 100),
                          instances=config_kw.get("instances", 1), preferred=tuple(config_kw.get("preferred", ())),
                          max_batch=config_kw.get("max_batch"))
    name = check_model_name(name) if name is not None else default_model_name(src)
    if not src.is_file():
        raise ArtifactError(f"{src} {not_a_file(src)}; give an ONNX model or engine made by rtdeploy")
    repo = Path(repo)
    if not repo.parent.exists():
        raise OutputError(f"the parent of {repo} does not exist; create it first (mkdir -p {repo.parent})")
    if repo.exists() and not repo.is_dir():
        raise OutputError(f"--triton {repo} is not a folder; give a model repository folder (it is created if missing)")
    config = build_config(src, name=name, **config_kw)
    dest = repo / name
    if dest.exists() and not force:
        raise OutputError(f"{dest} already exists; pass --force to replace it or choose another --name")
    repo.mkdir(exist_ok=True)
    with folder_lock(repo, what="Triton model repository"):  # two packagers never interleave in one repository
        if dest.exists() and not force:
            raise OutputError(f"{dest} already exists; pass --force to replace it or choose another --name")
        _write_model_folder(src, repo, dest, name, version, config)
    log.info("wrote Triton model %s", dest)
    return dest


def _write_model_folder(src: Path, repo: Path, dest: Path, name: str, version: int, config) -> None:
    filename = "model.plan" if config.platform == "tensorrt_plan" else "model.onnx"
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=repo))
    try:
        (tmp / "config.pbtxt").write_text(config.to_pbtxt(), encoding="utf-8")
        (tmp / str(version)).mkdir()
        shutil.copyfile(src, tmp / str(version) / filename)
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(tmp, dest)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise OutputError(f"could not write the Triton model {dest}: {e.strerror or e}; free space or choose another folder") from e
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
