"""Reuse a derived artifact while its manifest still matches, else make it through the api's stages.

build-engine (the ONNX it builds from) and the bench sweep (every artifact it times) both make
artifacts from other artifacts. An artifact is reused when it is intact (its bytes match its
manifest's sha256), was made from the current bytes of its parent, and its manifest records what
the caller asks for; otherwise the stage runs again. Callers pass their own stage options (which
calibration data, which calibrator): the rules for reuse are shared, the options are not.

:mod:`rtdeploy.api` sits above this module, so it is imported inside the functions that call it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rtdeploy.artifacts import manifest_matches, read_manifest, sha256_file

log = logging.getLogger(__name__)


def derived_path(source: Path, precision: str, suffix: str = ".onnx") -> Path:
    """``resnet50.onnx`` -> ``resnet50.int8.onnx`` (or ``resnet50.int8.engine`` with ``suffix=".engine"``)."""
    return source.with_name(f"{source.stem}.{precision}{suffix}")


def made_from(path: Path, parent: Path, *, accept: Callable[[dict], bool] | None = None, **expected: Any) -> bool:
    """True when ``path`` can be reused as the artifact made from ``parent``.

    Args:
        path: the derived artifact.
        parent: the artifact it must have been made from (its current bytes).
        accept: a further test on ``path``'s manifest (e.g. the calibration data it records).
        **expected: top-level manifest fields that must be equal.
    """
    if not manifest_matches(path, **expected):
        return False
    manifest = read_manifest(path)
    recorded = (manifest.get("parent") or {}).get("sha256")
    if recorded is None or recorded != sha256_file(parent):
        return False
    return accept is None or accept(manifest)


def reuse_or_make(path: Path, parent: Path, make: Callable[[Path], Any], *, accept: Callable[[dict], bool] | None = None,
                  **expected: Any) -> Path:
    """``path`` when :func:`made_from` says it can be reused, else ``make(path).path``.

    Args:
        make: runs the stage that writes ``path`` and returns its result (with a ``path``).
        accept, **expected: as for :func:`made_from`.
    """
    if made_from(path, parent, accept=accept, **expected):
        log.info("reusing %s", path)
        return path
    return Path(make(path).path)


def exported_onnx(path: Path, depth: int, *, image_size: int | None = None, **expected: Any) -> Path:
    """The dynamic-batch export of ResNet-``depth`` with seeded weights at ``path``: reused when its
    manifest says so (and has the ``expected`` top-level fields), else made by ``api.export``."""
    from rtdeploy import api

    if manifest_matches(path, kind="onnx", **expected):
        m = read_manifest(path)
        if (m.get("model") or {}).get("depth") == depth and (m.get("weights") or {}).get("path") is None \
                and (m.get("export") or {}).get("batch") == "dynamic":
            log.info("reusing %s", path)
            return path
    return Path(api.export(depth=depth, image_size=image_size, output=path).path)


def precision_onnx(onnx: Path, precision: str, *, accept: Callable[[dict], bool] | None = None, **options: Any) -> Path:
    """The ``precision`` (``fp16``/``int8``) model of ``onnx`` beside it (``X.int8.onnx``): reused when
    made from ``onnx``'s current bytes in that precision (and ``accept`` holds), else made by
    ``api.quantize(onnx, <precision>=True, **options)``."""
    from rtdeploy import api

    return reuse_or_make(derived_path(onnx, precision), onnx,
                         lambda out: api.quantize(onnx, **{precision: True}, output=out, **options),
                         accept=accept, precision=precision)
