"""``rtdeploy import``: adopt an ONNX image classifier that rtdeploy did not write.

The file is checked (it parses, ``onnx.checker`` passes, one float32 input of rank 4 in NCHW with
every declared dimension positive or named, an output whose size agrees with ``--classes``, its
external data present in regular files inside its own folder, a default-domain opset of at least
13 or one that upgrades to 13), its input shape is read (a fixed or a dynamic batch), and the
manifest every later stage needs is written beside it: family ``imported``, the input size, the
preprocessing (``--preprocess imagenet|cifar|none`` or explicit ``--size/--mean/--std``, each std
usable in float32), the class count and the tensor names. An FP32 model that needs no change is
adopted in place (only ``X.onnx.json`` is written); one whose opset was upgraded or whose external
data was inlined is written as a new self-contained file (``-o``, default ``<stem>.imported.onnx``
beside it).

Only foreign FP32 models are adopted: a file whose manifest says rtdeploy made it (an export, an
FP16/INT8 model) is refused with what to run instead, as is a graph that is already quantized or
FP16; a file rtdeploy imported before may be imported again (to change its preprocessing).

Everything is checked before anything is written: a refused model leaves no manifest and no file.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from rtdeploy.artifacts import ArtifactKind, load_onnx_graph, new_manifest, read_manifest
from rtdeploy.files import atomic_path, check_output_path, manifest_path, not_a_file, sha256_file
from rtdeploy.guard import refuse_replacing_another_kind
from rtdeploy.lineage import base_stem, derivation
from rtdeploy.checks import model_name
from rtdeploy.artifacts import write_manifest
from rtdeploy.errors import ArtifactError, ExportError, OutputError, first_line
from rtdeploy.library_errors import stage_boundary
from rtdeploy.models.metadata import IMAGENET_MEAN, IMAGENET_STD, ModelMeta
from rtdeploy.models.registry import IMPORTED_FAMILY
from rtdeploy.export.options import LAYOUTS, PREPROCESS, ImportConfig
from rtdeploy.options import output_fields
from rtdeploy.precision.graph import QUANT_OPS

log = logging.getLogger(__name__)

MIN_IMPORT_OPSET = 13   # per-channel Q/DQ and the ops rtdeploy's passes read
MAX_IMPORT_OPSET = 21   # the newest opset the import is tested on
@dataclass(frozen=True)
class ImportResult:
    """The adopted ONNX, its manifest and the model metadata read from it."""

    path: Path
    manifest: dict
    meta: ModelMeta


@stage_boundary("import", ExportError)
def import_onnx(cfg: ImportConfig) -> ImportResult:
    """Check ``cfg.model``, then write its manifest (and a rewritten copy when needed).

    Raises:
        ExportError: the file is not an ONNX image classifier rtdeploy can take (one line, the fix).
        OutputError: the output cannot be written.
    """
    _check_options(cfg)
    cfg.check()
    src = Path(cfg.model)
    _refuse_rtdeploy_artifact(src)
    model, external = _load(src)
    _refuse_reduced_precision(model, src)
    upgraded_from = _opset_fixed(model, src)
    inp, batch, channels, size = _check_input(model, src, cfg)
    out_name, classes = _check_output(model, src, cfg)
    rewrite = upgraded_from is not None or external
    out = Path(cfg.output) if cfg.output is not None else (src.with_name(f"{base_stem(src)}.imported.onnx") if rewrite else src)
    if rewrite and out.resolve() == src.resolve():
        raise OutputError(f"-o {out} would overwrite the model being imported, which has to be rewritten "
                          f"({'opset upgrade' if upgraded_from else 'external data inlined'}); write it to another path")
    rewrite = rewrite or out.resolve() != src.resolve()
    check_output_path(out)
    if out.resolve() != src.resolve():
        refuse_replacing_another_kind(out, ArtifactKind("onnx", "fp32"))
    meta = _meta(cfg, out, inp, out_name, channels, size, classes)
    details = {"source": str(src.resolve()), "source_sha256": sha256_file(src), "opset": _opset(model),
               "opset_upgraded_from": upgraded_from, "batch": batch, "inlined_external_data": external}
    ops = dict(sorted(Counter(n.op_type for n in model.graph.node).items()))

    def make_manifest(path: Path) -> dict:
        return new_manifest("onnx", path, precision="fp32", model=meta.to_dict(), weights=None,
                            export={"exporter": "imported", "opset": details["opset"], "batch": batch},
                            imported=details, ops=ops, checks={"onnx_checker": True, "shape_inference": True},
                            derivation=import_derivation(cfg, details["source_sha256"]))

    if rewrite:
        import onnx

        with atomic_path(out, manifest=make_manifest) as tmp:
            onnx.save_model(model, str(tmp))
        manifest = read_manifest(out)
    else:
        manifest = make_manifest(out)
        write_manifest(out, manifest)
    log.info("imported %s as %s (%s, batch %s)", src, out, meta.name, batch)
    _tensorrt_note(details["opset"], out)
    return ImportResult(out, manifest, meta)


def _tensorrt_note(opset: int, out: Path) -> None:
    """Say so when the oldest TensorRT rtdeploy builds with does not document the model's opset."""
    from rtdeploy.precision.trt_buildable import opset_note

    note = opset_note(opset)
    if note:
        log.warning("%s: %s", out.name, note)


def import_derivation(cfg: ImportConfig, source_sha256: str) -> dict:
    """The derivation record of an import: its options and the source file's bytes."""
    return derivation("import", output_fields(cfg), {"source": source_sha256})


def _check_options(cfg: ImportConfig) -> None:
    if cfg.preprocess is not None and cfg.preprocess not in PREPROCESS:
        raise ExportError(f"--preprocess {cfg.preprocess!r} is not accepted; give {', '.join(PREPROCESS)}")
    if cfg.preprocess is None and (cfg.mean is None or cfg.std is None):
        raise ExportError("say how images become inputs: --preprocess imagenet|cifar|none, or --mean R,G,B and --std R,G,B")
    if cfg.layout not in LAYOUTS:
        raise ExportError(f"--layout {cfg.layout!r} is not accepted; rtdeploy feeds {', '.join(LAYOUTS)} inputs "
                          "(export the model with a channels-first input)")
    for label, value in (("--size", cfg.size), ("--classes", cfg.classes)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ExportError(f"{label} {value!r} is not accepted; give a positive integer")
    for label, value in (("--mean", cfg.mean), ("--std", cfg.std)):
        if value is not None and (not value or any(not isinstance(v, (int, float)) for v in value)):
            raise ExportError(f"{label} {value!r} is not accepted; give one number per channel, e.g. 0.485,0.456,0.406")
    if cfg.std is not None and any(v <= 0 for v in cfg.std):
        raise ExportError(f"--std {','.join(map(str, cfg.std))} is not accepted; every value must be > 0")
    _check_pixel_fractions(cfg)
    if cfg.name is not None:
        model_name(cfg.name, "--name", ExportError)
    if not Path(cfg.model).is_file():
        raise ExportError(f"{cfg.model} {not_a_file(cfg.model)}; give the path of an .onnx file")


def _refuse_rtdeploy_artifact(src: Path) -> None:
    """A file whose manifest says rtdeploy made it is used as it is: importing it would replace that
    manifest (an INT8 model relabelled FP32, an export losing its weights and its PyTorch reference).
    A file rtdeploy imported before may be imported again (with other preprocessing)."""
    if not manifest_path(src).exists():
        return
    try:
        manifest = read_manifest(src)
    except ArtifactError:
        raise ExportError(f"{manifest_path(src)} exists but is not an rtdeploy manifest; import writes that file, so move it "
                          "away first (nothing was changed)") from None
    if (manifest.get("derivation") or {}).get("stage") == "import" or (manifest.get("export") or {}).get("exporter") == "imported":
        return
    kind, precision = manifest.get("kind"), str(manifest.get("precision", "?"))
    if kind == "onnx":
        what, instead = f"FP32 export of {(manifest.get('model') or {}).get('name', 'a model')}", f"rtdeploy quantize {src} --int8"
    else:
        what, instead = f"{precision.upper()} model (kind {kind})", f"rtdeploy validate {src}"
    raise ExportError(f"{src} is rtdeploy's own {what}, as its manifest {manifest_path(src).name} says; it needs no import: "
                      f"use it as it is (e.g. {instead})")


def _refuse_reduced_precision(model, src: Path) -> None:
    """rtdeploy makes the FP16/INT8 models itself, from an FP32 one; an FP32 manifest on a graph that
    is already quantized or FP16 would be a lie every later stage believes."""
    from onnx import TensorProto

    found = sorted({n.op_type for n in model.graph.node if n.op_type in QUANT_OPS})
    if found:
        raise ExportError(f"{src} is already quantized ({', '.join(found)} nodes); rtdeploy imports FP32 models and quantizes "
                          "them itself: import the FP32 model it was made from, then rtdeploy quantize --int8")
    if any(t.data_type == TensorProto.FLOAT16 for t in model.graph.initializer):
        raise ExportError(f"{src} holds float16 weights, so it is an FP16 model; import the FP32 model it was made from, "
                          "then rtdeploy quantize --fp16")


def _load(src: Path):
    """The model with its external data read in, and whether it had any."""
    import onnx

    model = load_onnx_graph(src)
    if model is None:
        raise ExportError(f"{src} is not an ONNX model (it does not parse as one); give an .onnx file")
    external = _load_external_data(model, src)
    try:
        onnx.checker.check_model(model)
    except (onnx.checker.ValidationError, ValueError) as e:
        raise ExportError(f"{src} fails onnx.checker: {first_line(e, 200)}; fix or re-export the model") from e
    return model, external


def _load_external_data(model, src: Path) -> bool:
    """Read external tensors into the model (they are written back inline) or refuse missing ones."""
    from onnx import external_data_helper as ext

    import onnx

    tensors = [t for t in ext._get_all_tensors(model) if ext.uses_external_data(t)]
    if not tensors:
        return False
    for t in tensors:
        _check_external_location(src, t.name, ext.ExternalDataInfo(t))
    try:
        ext.load_external_data_for_model(model, str(src.parent))
    except (OSError, ValueError, onnx.checker.ValidationError) as e:
        raise ExportError(f"cannot read the external data of {src}: {first_line(e)}; check the files beside it") from e
    return True


def _check_external_location(src: Path, tensor: str, info) -> None:
    """ONNX's rule: external data lies in files given relative to the model's folder, inside it
    (onnx also refuses links). The bytes the tensor names must be there."""
    import os
    from pathlib import PurePath

    location = PurePath(info.location)
    where = src.parent / location
    fix = "keep the model and its data files together in one folder (copies, not links), or re-export with the weights inside"
    if location.is_absolute() or ".." in location.parts or not info.location:
        raise ExportError(f"{src} keeps tensor {tensor!r} in {info.location!r}, outside the model's folder; ONNX external data "
                          f"lies beside the model: {fix}")
    if where.is_symlink():
        raise ExportError(f"{src} keeps tensor {tensor!r} in {info.location!r}, which is a link (onnx reads no links for "
                          f"external data): {fix}")
    if not where.is_file():
        raise ExportError(f"{src} keeps tensor {tensor!r} in the external file {info.location!r}, which is missing beside it; "
                          "copy that file next to the model (or re-export with the weights inside)")
    size, offset = os.stat(where).st_size, int(info.offset or 0)
    if offset + int(info.length or 0) > size:
        raise ExportError(f"{src} keeps tensor {tensor!r} at bytes {offset}..{offset + int(info.length or 0)} of {info.location!r}, "
                          f"which has {size} bytes; the data file is truncated or belongs to another model: {fix}")


def _opset(model) -> int:
    return next((int(i.version) for i in model.opset_import if i.domain in ("", "ai.onnx")), 0)


def _opset_fixed(model, src: Path) -> int | None:
    """Upgrade an opset below 13 in place; returns the old opset (None when unchanged)."""
    import onnx
    from onnx import version_converter

    opset = _opset(model)
    if opset > MAX_IMPORT_OPSET:
        raise ExportError(f"{src} uses opset {opset}; rtdeploy takes opsets {MIN_IMPORT_OPSET}..{MAX_IMPORT_OPSET} — re-export at opset 17")
    if opset >= MIN_IMPORT_OPSET:
        return None
    try:
        upgraded = version_converter.convert_version(model, MIN_IMPORT_OPSET)
        onnx.checker.check_model(upgraded)
    except Exception as e:  # the converter raises RuntimeError/ValidationError/ConvertError, untyped
        raise ExportError(f"{src} uses opset {opset}, older than {MIN_IMPORT_OPSET}, and onnx cannot upgrade it "
                          f"({first_line(e, 120)}); re-export it at opset {MIN_IMPORT_OPSET} or newer") from e
    model.CopyFrom(upgraded)
    return opset


def _real_inputs(model) -> list:
    inits = {i.name for i in model.graph.initializer}
    return [i for i in model.graph.input if i.name not in inits]


def _check_input(model, src: Path, cfg: ImportConfig) -> tuple[str, int | str, int, int]:
    """(input name, batch or "dynamic", channels, size)."""
    from onnx import TensorProto

    inputs = _real_inputs(model)
    if len(inputs) != 1:
        names = ", ".join(i.name for i in inputs) or "none"
        raise ExportError(f"{src} has {len(inputs)} inputs ({names}); rtdeploy takes image classifiers with exactly one image input")
    inp = inputs[0]
    t = inp.type.tensor_type
    if t.elem_type != TensorProto.FLOAT:
        raise ExportError(f"{src}'s input {inp.name!r} is {TensorProto.DataType.Name(t.elem_type).lower()}; rtdeploy takes a float32 "
                          "image input (N, C, H, W)")
    dims = _declared_dims(t, src, f"input {inp.name!r}")
    if len(dims) != 4:
        raise ExportError(f"{src}'s input {inp.name!r} has rank {len(dims)}; rtdeploy takes images, rank 4 (N, C, H, W)")
    _, c, h, w = dims
    if c is None:
        raise ExportError(f"{src}'s input {inp.name!r} has no fixed channel count (dim 1); re-export with a fixed number of channels")
    if cfg.size is not None and any(v is not None and v != cfg.size for v in (h, w)):
        raise ExportError(f"--size {cfg.size} contradicts {src}'s input {inp.name!r} of {h}x{w}; drop --size or give --size {h}")
    if h is not None and w is not None and h != w:
        raise ExportError(f"{src}'s input is {h}x{w}; rtdeploy takes square inputs (H = W) for now")
    size = cfg.size or h or w
    if size is None:
        raise ExportError(f"{src}'s input {inp.name!r} has no fixed height/width; give --size N")
    return inp.name, (dims[0] if dims[0] else "dynamic"), c, size


def _declared_dims(tensor_type, src: Path, what: str) -> list[int | None]:
    """A tensor's dims: a size, or None for a named (symbolic) or missing one. ONNX dims are
    positive or named; -1 or 0 (an exporter's way to say "dynamic") would become a size here."""
    dims = list(tensor_type.shape.dim) if tensor_type.HasField("shape") else []
    for i, d in enumerate(dims):
        if d.HasField("dim_value") and d.dim_value < 1:
            raise ExportError(f"{src}'s {what} declares dimension {i} as {d.dim_value}; ONNX dimensions are positive sizes or "
                              "names: re-export it with a named dynamic axis (e.g. 'batch') or a fixed size")
    return [d.dim_value if d.HasField("dim_value") else None for d in dims]


def _check_output(model, src: Path, cfg: ImportConfig) -> tuple[str, int]:
    """(first output name, classes), checked against ``--classes``."""
    import onnx

    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception as e:  # shape inference raises InferenceError and friends
        raise ExportError(f"{src} fails ONNX shape inference: {first_line(e, 160)}; fix or re-export the model") from e
    out = inferred.graph.output[0]
    dims = _declared_dims(out.type.tensor_type, src, f"output {out.name!r}")
    found = dims[-1] if dims else None
    if len(dims) != 2 and dims:
        raise ExportError(f"{src}'s output {out.name!r} has rank {len(dims)}; rtdeploy takes classifiers with (N, classes) logits")
    if cfg.classes is not None and found is not None and found != cfg.classes:
        raise ExportError(f"--classes {cfg.classes} contradicts {src}'s output {out.name!r} of size {found}; "
                          f"give --classes {found} or check the file")
    classes = cfg.classes or found
    if classes is None:
        raise ExportError(f"{src}'s output {out.name!r} has no fixed size; give --classes N")
    return out.name, classes


def _meta(cfg: ImportConfig, out: Path, inp: str, output: str, channels: int, size: int, classes: int) -> ModelMeta:
    preset = cfg.preprocess or "none"
    if preset == "none":
        mean, std, resize = (0.0,) * channels, (1.0,) * channels, None
    else:
        mean, std = IMAGENET_MEAN, IMAGENET_STD
        resize = round(size * 256 / 224) if preset == "imagenet" else None
    mean = tuple(float(v) for v in cfg.mean) if cfg.mean is not None else mean
    std = tuple(float(v) for v in cfg.std) if cfg.std is not None else std
    for label, values in (("--mean", mean), ("--std", std)):
        if len(values) not in (1, channels):
            raise ExportError(f"{label} has {len(values)} values but the model takes {channels} channels; give {channels} (or 1)")
    _check_std_in_float32(std)
    return ModelMeta(family=IMPORTED_FAMILY, depth=None, name=cfg.name or base_stem(out), num_classes=classes,
                     in_channels=channels, image_size=size, resize=resize, mean=mean, std=std, input_name=inp,
                     output_name=output, variant="", gmacs=None, layout=cfg.layout)


def _check_pixel_fractions(cfg: ImportConfig) -> None:
    """--mean in [0, 1] and --std in (0, 1], finite: both describe pixels scaled to [0, 1] (a value
    such as 123.7 was meant for 0..255 pixels, and NaN would make every input NaN)."""
    for label, values, low_ok in (("--mean", cfg.mean, lambda v: v >= 0), ("--std", cfg.std, lambda v: v > 0)):
        for v in values or ():
            if not (math.isfinite(v) and low_ok(v) and v <= 1):
                hint = f" (for 0..255 pixels divide by 255: {','.join(f'{x / 255:.3f}' for x in values)})" if math.isfinite(v) and 1 < v <= 255 else ""
                raise ExportError(f"{label} {','.join(map(str, values))} is not accepted; give values for pixels in [0, 1], "
                                  f"such as 0.485,0.456,0.406{hint}")


def _check_std_in_float32(std: tuple[float, ...]) -> None:
    """Inputs are normalised in float32: a std below float32's smallest normal number (1.2e-38)
    rounds to 0 or to a subnormal, whose inverse overflows, so every input would be Inf or NaN."""
    import numpy as np

    tiny = float(np.finfo(np.float32).tiny)
    low = [v for v in std if v < tiny]
    if low:
        raise ExportError(f"--std {','.join(map(str, std))} is not accepted: {low[0]:g} is "
                          f"{'0' if np.float32(low[0]) == 0 else 'a subnormal number'} in float32, in which inputs are "
                          f"normalised, so they would be Inf or NaN; give values of at least {tiny:.2g}, such as 0.229,0.224,0.225")

