"""Artifacts and their manifests.

Every stage reads one artifact and writes the next. Beside each artifact ``X`` lies ``X.json``, its
manifest: what kind of artifact it is, its sha256, which model it holds, which artifact it was made
from (with that one's sha256), the versions of the tools that made it, and stage-specific details.

Writes are atomic: content goes to a temporary file in the destination folder and is renamed over
the destination only when complete, so an interrupted run never leaves a partial file.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import hashlib
import json
import logging
import os
import platform
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from rtdeploy.errors import ArtifactError, OutputError

log = logging.getLogger(__name__)

MANIFEST_FORMAT = 1

# File suffixes of a TensorRT engine (a serialized plan).
ENGINE_SUFFIXES = (".engine", ".plan")

# Write failures that mean "no room here" (disk or quota full, file-size limit, read-only
# filesystem): reported as an OutputError naming the destination.
_NO_ROOM = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT, errno.EROFS}


def manifest_path(artifact: str | os.PathLike) -> Path:
    """The manifest path of an artifact: ``model.onnx`` -> ``model.onnx.json``."""
    p = Path(artifact)
    return p.with_name(p.name + ".json")


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def check_output_path(path: str | os.PathLike) -> Path:
    """Check that ``path`` can be written (its folder exists and is writable) before any work.

    Raises:
        OutputError: the folder is missing, is not a folder, or is not writable, or ``path`` is a folder.
    """
    p = Path(path)
    folder = p.parent if str(p.parent) else Path(".")
    if p.is_dir():
        raise OutputError(f"output {p} is a directory; give a file path such as {p / 'model.onnx'}")
    if not folder.exists():
        raise OutputError(f"output directory {folder} does not exist; create it (mkdir -p {folder}) or choose another -o path")
    if not folder.is_dir():
        raise OutputError(f"output directory {folder} is not a directory; choose another -o path")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"output directory {folder} is not writable; choose another -o path or fix its permissions")
    return p


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, manifest: Callable[[Path], dict] | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it over ``path``, on failure remove it.

    The caller writes the complete file to the yielded path (by any means, e.g. ``onnx.save``).

    Args:
        path: the destination.
        manifest: called with the finished temporary file to make the artifact's manifest. The
            artifact and its manifest are then put in place together under a lock on the folder,
            so two runs writing the same path at once never leave one's file beside the other's
            manifest.
    """
    dest = check_output_path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        _fsync(tmp_path)
        os.chmod(tmp_path, 0o666 & ~_umask())
        if manifest is None:
            os.replace(tmp_path, dest)
        else:
            data = manifest(tmp_path)
            data["artifact"] = dest.name
            with _folder_lock(dest.parent):
                os.replace(tmp_path, dest)
                write_json_atomic(manifest_path(dest), data)
    except BaseException as e:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        if isinstance(e, OSError) and e.errno in _NO_ROOM:
            raise OutputError(f"could not write {dest}: {os.strerror(e.errno)}; free space in {dest.parent} or choose another output path") from e
        raise


@contextlib.contextmanager
def _folder_lock(folder: Path) -> Iterator[None]:
    import fcntl

    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; a full disk surfaces as an :class:`OutputError`."""
    try:
        with atomic_path(path) as tmp:
            tmp.write_bytes(data)
    except OSError as e:
        raise OutputError(f"could not write {path}: {e.strerror or e}; free space or choose another output path") from e
    return Path(path)


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    return write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str | os.PathLike, data: Any) -> Path:
    """Write ``data`` as indented JSON to ``path`` atomically."""
    return write_text_atomic(path, json.dumps(data, indent=2, sort_keys=False, default=_json_default) + "\n")


def _json_default(obj: Any) -> Any:
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if hasattr(obj, "item"):
        return obj.item()
    raise TypeError(f"not JSON serializable: {type(obj).__name__}")


def tool_versions(*extra: str) -> dict[str, str]:
    """Versions of Python, rtdeploy and the libraries that shaped an artifact.

    Only modules already imported by the caller's stage, or named in ``extra``, are looked up, so
    writing a manifest never imports a heavy library on its own.
    """
    import importlib.metadata as md
    import sys

    from rtdeploy import __version__

    versions = {"python": platform.python_version(), "rtdeploy": __version__}
    for name in ("torch", "onnx", "onnxruntime", "numpy", "tensorrt", *extra):
        if name in versions:
            continue
        mod = sys.modules.get(name)
        if mod is not None and getattr(mod, "__version__", None):
            versions[name] = str(mod.__version__)
        elif name in extra:
            with contextlib.suppress(md.PackageNotFoundError):
                versions[name] = md.version(name)
    return versions


def new_manifest(kind: str, artifact: str | os.PathLike, **fields: Any) -> dict[str, Any]:
    """A manifest dict for ``artifact`` (which must already be complete on disk).

    Args:
        kind: what the artifact is: ``onnx``, ``onnx-fp16``, ``onnx-int8``, ``engine``, ``report``.
        artifact: the artifact's path; its sha256 and size are recorded.
        **fields: stage-specific entries (``model``, ``parent``, ``export``, ``checks`` ...).
    """
    p = Path(artifact)
    return {
        "format": MANIFEST_FORMAT,
        "kind": kind,
        "artifact": p.name,
        "sha256": sha256_file(p),
        "bytes": p.stat().st_size,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "versions": tool_versions(),
        **fields,
    }


def parent_entry(path: str | os.PathLike) -> dict[str, str]:
    """The ``parent`` entry of a manifest: the artifact a stage read, by name and sha256."""
    p = Path(path)
    return {"path": str(p.resolve()), "sha256": sha256_file(p)}


def write_manifest(artifact: str | os.PathLike, manifest: dict[str, Any]) -> Path:
    """Write ``manifest`` beside ``artifact`` atomically and return its path."""
    return write_json_atomic(manifest_path(artifact), manifest)


def read_manifest(artifact: str | os.PathLike, *, required: bool = True) -> dict[str, Any] | None:
    """Read the manifest beside ``artifact``.

    Raises:
        ArtifactError: it is missing (when ``required``) or is not a valid rtdeploy manifest.
    """
    mp = manifest_path(artifact)
    if not mp.exists():
        if required:
            raise ArtifactError(
                f"{artifact} has no manifest ({mp.name} beside it); rtdeploy needs it to know the model — "
                "keep the manifest beside the file, or re-export with `rtdeploy export`"
            )
        return None
    try:
        data = json.loads(mp.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ArtifactError(f"manifest {mp} is not valid JSON ({e}); delete it and re-run the stage that made {Path(artifact).name}") from e
    if not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT or "kind" not in data:
        raise ArtifactError(f"{mp} is not an rtdeploy manifest (format {MANIFEST_FORMAT}); re-run the stage that made {Path(artifact).name}")
    return data


def manifest_matches(artifact: str | os.PathLike, **expected: Any) -> bool:
    """True when ``artifact`` exists, its manifest's sha256 matches its bytes, and each expected
    top-level field equals the manifest's. Used to reuse an artifact instead of rebuilding it."""
    p = Path(artifact)
    if not p.exists():
        return False
    try:
        m = read_manifest(p, required=False)
    except ArtifactError:
        return False
    if m is None or m.get("sha256") != sha256_file(p):
        return False
    return all(m.get(k) == v for k, v in expected.items())


def default_cache_dir() -> Path:
    """Where rtdeploy caches what it can remake: ``$RTDEPLOY_CACHE_DIR``, else ``$XDG_CACHE_HOME/rtdeploy``,
    else ``~/.cache/rtdeploy``."""
    if os.environ.get("RTDEPLOY_CACHE_DIR"):
        return Path(os.environ["RTDEPLOY_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "rtdeploy"
