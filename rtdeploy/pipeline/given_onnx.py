"""``rtdeploy run --onnx FILE``: a given FP32 ONNX takes the export stage's place.

The file must carry its manifest (``rtdeploy export`` or ``rtdeploy import`` wrote it). It is
copied into the run folder with its manifest, so every derived file (``X.int8.onnx``, engines)
lands in the run folder and the user's own folder is left untouched; a copy is reused only when
both its bytes and its manifest are the given file's: after ``rtdeploy import`` again with other
preprocessing (same bytes, new manifest) the copy is renewed, and every stage derived from it
sees the new model record (:func:`rtdeploy.lineage.parent_inputs`).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from rtdeploy.artifacts import check_matches_manifest, read_manifest
from rtdeploy.files import atomic_path, manifest_path, not_a_file, sha256_file
from rtdeploy.lineage import base_stem
from rtdeploy.errors import ArtifactError


def check_given_onnx(cfg) -> None:
    """Refuse a ``--onnx`` that is missing, has no manifest, is not FP32 or changed since its manifest.

    Raises:
        ArtifactError: one line naming the file and the fix.
    """
    p = Path(cfg.onnx)
    if not p.is_file():
        raise ArtifactError(f"--onnx {p} {not_a_file(p)}; give an .onnx file (run `rtdeploy import {p.name}` first for one made elsewhere)")
    if not manifest_path(p).exists():
        raise ArtifactError(f"--onnx {p} has no manifest ({manifest_path(p).name}); adopt it first with "
                            f"`rtdeploy import {p} --preprocess imagenet|cifar|none`, then run again")
    from rtdeploy.manifests import read_artifact

    manifest = read_artifact(p)
    if manifest.precision != "fp32" or manifest.kind != "onnx":
        raise ArtifactError(f"--onnx {p} is a {manifest.precision} model (kind {manifest.kind}); give the FP32 ONNX it was made from")
    check_matches_manifest(p, manifest.sha256, remedy="re-import or re-export it, then give the new file as --onnx")


def adopt_given_onnx(src: Path, outdir: Path, *, force: bool = False):
    """``src`` and its manifest, copied into ``outdir`` as ``<stem>.onnx`` (reused when identical).

    Returns:
        :class:`rtdeploy.make_or_reuse.Derived` for the copy.
    """
    from rtdeploy.make_or_reuse import Derived

    src = Path(src)
    dest = outdir / f"{base_stem(src)}.onnx"
    if dest.resolve() == src.resolve():
        return Derived(dest, False, "it is the given file")
    wanted = read_manifest(src)
    why = "forced" if force else "not made yet"
    if not force and dest.is_file() and manifest_path(dest).exists():
        try:
            copy = read_manifest(dest)
        except ArtifactError:
            copy = {}
        if not copy.get("sha256") == wanted["sha256"] == sha256_file(dest):
            why = "the given ONNX's bytes changed"
        elif _record(copy) != _record(wanted):
            why = "the given ONNX's manifest changed (imported again?)"
        else:
            return Derived(dest, False, "same bytes and manifest as the given ONNX")

    def manifest(tmp: Path) -> dict:
        return json.loads(json.dumps(wanted)) | {"copied_from": str(src.resolve())}

    with atomic_path(dest, manifest=manifest) as tmp:
        shutil.copyfile(src, tmp)
    return Derived(dest, True, why)


def _record(manifest: dict) -> dict:
    """A manifest without what differs between a file and its copy (its name, where it came from)."""
    return {k: v for k, v in manifest.items() if k not in ("artifact", "copied_from")}
