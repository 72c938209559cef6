"""Hand-off to Triton Inference Server: a model repository for an ONNX model or a TensorRT engine.

Layout written (one model per call)::

    DIR/<name>/config.pbtxt
    DIR/<name>/<version>/model.onnx | model.plan

``config.pbtxt`` is protobuf text of Triton's ``ModelConfig``: platform, max_batch_size (from the
engine's optimization profile, or the chosen maximum for a dynamic-batch ONNX), input/output
names, dims and data types, dynamic batching with preferred batch sizes, and instance groups.
The model folder is assembled in a temporary folder and renamed into place, so a failed run leaves
no half-written model behind.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from rtdeploy.artifacts import ENGINE_SUFFIXES, check_matches_manifest
from rtdeploy.files import folder_lock, not_a_file
from rtdeploy.errors import ArtifactError, OutputError, PackageError
from rtdeploy.manifests import EngineManifest, read_engine, read_onnx

log = logging.getLogger(__name__)

# A Triton model name is the name of its folder in the model repository, the quoted ``name`` of its
# config.pbtxt (the two must match), and a path segment of the HTTP/GRPC API (/v2/models/<name>);
# see https://github.com/triton-inference-server/server/blob/main/docs/user_guide/model_repository.md.
# Only names safe in all three are written: letters, digits, '_', '-' and '.', not starting with '.'
# (hidden folders, '.' and '..'), at most 255 bytes (a folder name).

ONNX_TO_TRITON = {1: "TYPE_FP32", 10: "TYPE_FP16", 11: "TYPE_FP64", 7: "TYPE_INT64", 6: "TYPE_INT32", 3: "TYPE_INT8", 2: "TYPE_UINT8"}


@dataclass(frozen=True)
class TensorSpec:
    """One model input or output as Triton sees it (dims without the batch axis when batching)."""

    name: str
    data_type: str
    dims: tuple[int, ...]


@dataclass(frozen=True)
class TritonConfig:
    """What goes into config.pbtxt."""

    name: str
    platform: str
    max_batch_size: int
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    preferred_batch_sizes: tuple[int, ...] = ()
    max_queue_delay_us: int = 100
    instance_count: int = 1
    instance_kind: str = "KIND_GPU"
    extra: dict = field(default_factory=dict)

    def to_pbtxt(self) -> str:
        """Protobuf text format of Triton's ModelConfig."""
        lines = [f'name: "{self.name}"', f'platform: "{self.platform}"', f"max_batch_size: {self.max_batch_size}"]
        lines += [_tensor_block("input", t) for t in self.inputs]
        lines += [_tensor_block("output", t) for t in self.outputs]
        if self.max_batch_size > 0:
            pref = "".join(f"\n  preferred_batch_size: {b}" for b in self.preferred_batch_sizes)
            lines.append(f"dynamic_batching {{{pref}\n  max_queue_delay_microseconds: {self.max_queue_delay_us}\n}}")
        lines.append(f"instance_group [\n  {{\n    count: {self.instance_count}\n    kind: {self.instance_kind}\n  }}\n]")
        return "\n".join(lines) + "\n"


def _tensor_block(kind: str, t: TensorSpec) -> str:
    dims = ", ".join(str(d) for d in t.dims)
    return f'{kind} [\n  {{\n    name: "{t.name}"\n    data_type: {t.data_type}\n    dims: [ {dims} ]\n  }}\n]'


def onnx_io(path: Path) -> tuple[list[tuple[str, str, list]], list[tuple[str, str, list]]]:
    """(inputs, outputs) of an ONNX file as (name, Triton type, dims with None for dynamic)."""
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as e:  # onnx raises DecodeError and others for a corrupt file
        raise ArtifactError(f"{path} is not a readable ONNX model ({type(e).__name__}); re-export it with `rtdeploy export`") from e
    inits = {i.name for i in model.graph.initializer}

    def spec(vi):
        tt = vi.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim]
        return vi.name, ONNX_TO_TRITON.get(tt.elem_type, f"TYPE_UNKNOWN_{tt.elem_type}"), dims

    return [spec(v) for v in model.graph.input if v.name not in inits], [spec(v) for v in model.graph.output]


def build_config(
    artifact: Path, *, name: str, max_batch: int | None = None, preferred: tuple[int, ...] = (),
    instances: int = 1, kind: str | None = None, max_queue_delay_us: int = 100,
) -> TritonConfig:
    """The Triton config for an ONNX file (``.onnx``) or a TensorRT engine (``.plan``/``.engine``).

    Raises:
        PackageError: a batch option that contradicts the artifact (e.g. above an engine's profile).
        ArtifactError: the artifact or its manifest is unreadable.
    """
    is_engine = artifact.suffix in ENGINE_SUFFIXES
    manifest = read_engine(artifact) if is_engine else read_onnx(artifact)
    check_matches_manifest(artifact, manifest.sha256, remedy="re-run that stage, or restore the file")
    onnx_path = _onnx_for(artifact, manifest) if is_engine else artifact
    inputs, outputs = onnx_io(onnx_path)  # an engine binds the I/O names and types of the ONNX it was built from
    batch_dim = inputs[0][2][0] if inputs and inputs[0][2] else None
    mbs = _max_batch_size(manifest, is_engine, batch_dim, max_batch)
    if preferred and mbs and max(preferred) > mbs:
        raise PackageError(f"--preferred-batch {max(preferred)} exceeds max_batch_size {mbs}; give sizes up to {mbs}")
    preferred = preferred or tuple(b for b in (1, 4, 8, 16, 32) if b <= mbs and b > 1)[:3]
    strip = 1 if mbs > 0 else 0
    to_specs = lambda items: tuple(TensorSpec(n, t, tuple(-1 if d is None else d for d in dims[strip:])) for n, t, dims in items)  # noqa: E731
    return TritonConfig(
        name=name, platform="tensorrt_plan" if is_engine else "onnxruntime_onnx", max_batch_size=mbs,
        inputs=to_specs(inputs), outputs=to_specs(outputs), preferred_batch_sizes=preferred if mbs else (),
        max_queue_delay_us=max_queue_delay_us, instance_count=instances,
        instance_kind=kind or "KIND_GPU",
    )


def _onnx_for(engine: Path, manifest: EngineManifest) -> Path:
    parent = manifest.parent.file
    if not parent.is_file():
        raise ArtifactError(f"cannot find the ONNX model engine {engine.name} was built from (manifest parent: {parent}); keep it beside the engine or rebuild with `rtdeploy build-engine`")
    return parent


def _max_batch_size(manifest, is_engine: bool, batch_dim: int | None, asked: int | None) -> int:
    if asked is not None and asked < 0:
        raise PackageError(f"--max-batch {asked} is negative; give 0 (no batching) or a positive size")
    if is_engine:
        top = manifest.max_batch
        if asked is not None and asked > top:
            raise PackageError(f"--max-batch {asked} exceeds the engine's profile maximum {top}; rebuild with --batch 1:OPT:{asked} or give ≤ {top}")
        return asked if asked is not None else top
    if batch_dim is not None:  # fixed-batch ONNX: Triton must not add a batch axis
        if asked:
            raise PackageError(f"this ONNX has a fixed batch of {batch_dim}; --max-batch needs a dynamic-batch export (rtdeploy export --batch dynamic)")
        return 0
    return asked if asked is not None else 32


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
