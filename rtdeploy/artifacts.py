"""Artifacts and their manifests.

Every stage reads one artifact and writes the next. Beside each artifact ``X`` lies ``X.json``, its
manifest: what kind of artifact it is, its sha256, which model it holds, which artifact it was made
from (with that one's sha256), the versions of the tools that made it, and stage-specific details.

Writes are atomic: content goes to a temporary file in the destination folder and is renamed over
the destination only when complete, so an interrupted run never leaves a partial file. Only regular
files are replaced so: devices, FIFOs and descriptor aliases (``/dev/null``, ``/dev/stdout``) are
written through as a shell redirection does, a symbolic link keeps pointing at the (replaced)
target, and a failed write (a full disk or ``/dev/full``) is an :class:`OutputError`.
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
import stat
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rtdeploy.errors import ArtifactError, OutputError, RtDeployError

log = logging.getLogger(__name__)

MANIFEST_FORMAT = 1

# File suffixes of a TensorRT engine (a serialized plan).
ENGINE_SUFFIXES = (".engine", ".plan")

# Write failures that mean "no room here" (disk or quota full, file-size limit, read-only
# filesystem): reported as an OutputError naming the destination.
_NO_ROOM = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT, errno.EROFS}

# Links into these name an open descriptor (``/dev/stdout`` -> ``/proc/self/fd/1``): written through.
_DESCRIPTOR_DIRS = ("/dev/", "/proc/")


def manifest_path(artifact: str | os.PathLike) -> Path:
    """The manifest path of an artifact: ``model.onnx`` -> ``model.onnx.json``."""
    p = Path(artifact)
    return p.with_name(p.name + ".json")


def load_onnx_graph(path: str | os.PathLike):
    """The ONNX model at ``path`` without its external data, or None when the bytes are not an ONNX
    model (not a protobuf, or one with no IR version or no nodes)."""
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as e:  # protobuf raises DecodeError and friends for non-ONNX bytes
        log.debug("onnx.load(%s): %s", path, e)
        return None
    return model if model.ir_version > 0 and len(model.graph.node) > 0 else None


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def check_matches_manifest(path: str | os.PathLike, recorded_sha256: str | None, *, remedy: str,
                           error: type[RtDeployError] = ArtifactError) -> str:
    """The sha256 of ``path``, after checking that it is the one its manifest recorded.

    A file edited, truncated or replaced after the stage that made it no longer holds what its
    manifest describes (model, preprocessing, precision), so every stage that trusts a manifest
    checks this before using the file.

    Raises:
        error: the bytes differ; the message ends with ``remedy``.
    """
    actual = sha256_file(path)
    if recorded_sha256 != actual:
        raise error(f"{path} does not match its manifest (sha256 differs): it was changed, truncated or replaced after "
                    f"the stage that made it; {remedy}")
    return actual


def not_a_file(path: str | os.PathLike) -> str:
    """Why ``path`` cannot be read as a file, for a message: ``does not exist``, ``is a broken link``,
    ``is a folder``, or ``is not a regular file (...)``; a FIFO or device named as a model would
    otherwise be reported as missing, or block a reader forever."""
    p = Path(path)
    if p.is_symlink() and not p.exists():
        return f"is a broken link (to {os.readlink(p)})"
    if not p.exists():
        return "does not exist"
    if p.is_dir():
        return "is a folder"
    return "is not a regular file (a FIFO, device or socket)"


def is_special_file(path: str | os.PathLike) -> bool:
    """True when ``path`` (after following links) exists and is neither a regular file nor a folder:
    a character or block device (``/dev/null``, ``/dev/full``), a FIFO, a socket."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


def writes_through(path: str | os.PathLike) -> bool:
    """True when ``path`` is written in place, as a shell redirection does, instead of atomically:
    a device, FIFO or socket, or a descriptor alias (``/dev/stdout``, ``/dev/fd/N``, ``/proc/self/fd/N``),
    whose link must never be replaced by a regular file."""
    p = Path(path)
    if is_special_file(p):
        return True
    if not p.is_symlink():
        return False
    real = os.path.realpath(p)
    return real.startswith(_DESCRIPTOR_DIRS) or str(p).startswith(_DESCRIPTOR_DIRS)


def _link_target(p: Path) -> Path:
    """Where a write to ``p`` lands: ``p`` itself, or the final target of a symbolic link (which
    then stays a link, as with a shell redirection)."""
    return Path(os.path.realpath(p)) if p.is_symlink() else p


def check_output_path(path: str | os.PathLike) -> Path:
    """Check that ``path`` can be written (its folder exists and is writable) before any work.

    Devices, FIFOs and descriptor aliases (``/dev/null``, ``/dev/stdout``) are written through and
    only need to be writable themselves; a symbolic link is checked at its target.

    Raises:
        OutputError: the folder is missing, is not a folder, or is not writable, or ``path`` is a folder.
    """
    p = Path(path)
    if p.is_dir():
        raise OutputError(f"output {p} is a directory; give a file path such as {p / 'model.onnx'}")
    if writes_through(p):
        if not os.access(p, os.W_OK):
            raise OutputError(f"output {p} is not writable; choose another path or fix its permissions")
        return p
    target = _link_target(p)
    folder = target.parent if str(target.parent) else Path(".")
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
    A symbolic link is kept: the file lands at its target. A device, FIFO or descriptor alias
    (``/dev/stdout``) is written through once the file is complete, as a shell redirection does.

    Args:
        path: the destination.
        manifest: called with the finished temporary file to make the artifact's manifest. The
            artifact and its manifest are then put in place together under a lock on the folder,
            with SIGINT/SIGTERM/SIGHUP held back, so neither two runs writing the same path at once
            nor an interrupt ever leaves a file without its own manifest.

    Raises:
        OutputError: the destination cannot be written, or is not a regular file but needs a manifest.
    """
    dest = check_output_path(path)
    through = writes_through(dest)
    if through and manifest is not None:
        raise OutputError(f"output {dest} is not a regular file; an artifact and its manifest need a file path such as model.onnx")
    target = _link_target(dest)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=None if through else target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        _hold_for_test("write")
        yield tmp_path
        if through:
            _copy_through(tmp_path, dest)
            tmp_path.unlink()
            return
        _fsync(tmp_path)
        os.chmod(tmp_path, 0o666 & ~_umask())
        if manifest is None:
            os.replace(tmp_path, target)
        else:
            data = manifest(tmp_path)
            data["artifact"] = dest.name
            with _signals_held() as deferred, _folder_lock(target.parent):
                _hold_for_test("commit", until=lambda: bool(deferred))
                os.replace(tmp_path, target)
                write_json_atomic(manifest_path(dest), data)
    except BaseException as e:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        if isinstance(e, OSError) and (e.errno in _NO_ROOM or e.errno == errno.EPIPE):
            raise write_failure(dest, e, target.parent) from e
        raise


def write_failure(dest: str | os.PathLike, e: OSError, folder: Path | None = None) -> OutputError:
    """The one-line error of a failed write to ``dest``: no room (in ``folder``), or a pipe or FIFO
    whose reader has gone, or another OS error."""
    if e.errno == errno.EPIPE:
        return OutputError(f"could not write {dest}: nothing reads it any more (broken pipe); start its reader first, or give a file path")
    where = f" in {folder}" if folder is not None else ""
    return OutputError(f"could not write {dest}: {e.strerror or e}; free space{where} or choose another output path")


def _copy_through(src: Path, dest: Path) -> None:
    with open(src, "rb") as f, open(dest, "wb") as out:
        for block in iter(lambda: f.read(1 << 20), b""):
            out.write(block)


@contextlib.contextmanager
def _signals_held() -> Iterator[list[int]]:
    """Defer SIGINT, SIGTERM and SIGHUP until the block ends (main thread only); one that arrived
    meanwhile is re-raised then, to the handler that was in place.

    Done with Python handlers, not the signal mask: a process-directed signal goes to any thread
    that does not block it (onnxruntime and torch run their own), and Python always runs its
    handlers in the main thread.
    """
    import signal
    import threading

    caught: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield caught
        return
    previous = {s: signal.signal(s, lambda signum, frame: caught.append(signum))
                for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        yield caught
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        if caught:
            signal.raise_signal(caught[0])


def _hold_for_test(point: str, until: Callable[[], bool] | None = None) -> None:
    """A deterministic hook for the signal tests: with ``RTDEPLOY_TEST_HOLD=<point>`` the process
    says so on stderr and waits there: until a signal interrupts it, or, given ``until``, until
    that returns True (``commit``: a signal was caught and deferred)."""
    if os.environ.get("RTDEPLOY_TEST_HOLD") != point:
        return
    import sys
    import time

    print(f"rtdeploy-test-hold: {point}", file=sys.stderr, flush=True)
    while until is None or not until():
        time.sleep(0.01)


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
    """Write ``data`` to ``path`` atomically (a device, FIFO or ``/dev/stdout`` is written through).

    Raises:
        OutputError: the path cannot be written, or the write failed (a full disk or device).
    """
    try:
        if writes_through(path):
            check_output_path(path)
            with open(path, "wb") as f:
                f.write(data)
        else:
            with atomic_path(path) as tmp:
                tmp.write_bytes(data)
    except OSError as e:
        raise write_failure(path, e) from e
    return Path(path)


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    return write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str | os.PathLike, data: Any) -> Path:
    """Write ``data`` as indented JSON to ``path`` atomically."""
    return write_text_atomic(path, json.dumps(data, indent=2, sort_keys=False, default=json_default) + "\n")


def json_default(obj: Any) -> Any:
    """``json.dumps``'s ``default`` for what stages hold: paths as strings, numpy values as numbers and lists."""
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
                "keep the manifest beside the file, re-export with `rtdeploy export`, or adopt an ONNX made elsewhere "
                "with `rtdeploy import FILE --preprocess imagenet|cifar|none`"
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


# -- lineage: one naming rule, one reuse rule, ancestors, folder locks ------------------------------
# File-name tags of derived models: the precision, or the INT8 form for onnxruntime's CPU kernels.
PRECISION_TAGS = ("fp32", "fp16", "int8", "int8-cpu")


def base_stem(path: str | os.PathLike) -> str:
    """The model's stem without suffix and precision tag: ``resnet50.int8.onnx`` -> ``resnet50``."""
    stem = Path(path).name
    for suffix in (".onnx", *ENGINE_SUFFIXES):
        if stem.endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    head, _, tag = stem.rpartition(".")
    return head if head and tag in PRECISION_TAGS else stem


# The INT8 form made for onnxruntime's CPU kernels (``quantize --int8 --target onnxruntime-cpu``).
CPU_TARGET = "onnxruntime-cpu"


def precision_tag(precision: str, target: str | None = None) -> str:
    """The file-name tag of a precision model: ``fp16``, ``int8``, or ``int8-cpu`` for the INT8 form
    placed for ``target`` onnxruntime-cpu, so that the two INT8 forms never share a name."""
    return "int8-cpu" if precision == "int8" and target == CPU_TARGET else precision


def derived_path(source: str | os.PathLike, precision: str, suffix: str = ".onnx") -> Path:
    """The one naming rule for derived files, beside ``source``.

    ``resnet50.onnx`` -> ``resnet50.int8.onnx``, ``resnet50.fp16.onnx``, ``resnet50.int8-cpu.onnx``
    (the INT8 form for onnxruntime's CPU kernels: ``precision`` is then :func:`precision_tag`'s
    ``int8-cpu``); engines always carry their
    precision: ``resnet50.onnx`` -> ``resnet50.fp32.engine``, ``resnet50.int8.onnx`` -> ``resnet50.int8.engine``.
    The FP32 ONNX of ``resnet50.onnx`` is the file itself.
    """
    src = Path(source)
    if suffix == ".onnx" and precision == "fp32":
        return src.with_name(f"{base_stem(src)}.onnx")
    return src.with_name(f"{base_stem(src)}.{precision}{suffix}")


def derivation(stage: str, config: dict[str, Any], inputs: dict[str, str]) -> dict[str, Any]:
    """The manifest's ``derivation`` record: what decides an artifact's bytes.

    Args:
        stage: the stage that made it (``export``, ``quantize``, ``build-engine``, ``validate``, ``bench``).
        config: the stage's options that change its output (paths of inputs excluded: their content
            is in ``inputs``), JSON-normalised.
        inputs: a fingerprint per input read (``parent``: the parent's sha256; ``calibration``: the
            calibration data's content fingerprint; ``weights``: the checkpoint's sha256 ...).
    """
    return {"stage": stage, "config": json.loads(json.dumps(config, sort_keys=True, default=json_default)),
            "inputs": dict(sorted(inputs.items()))}


def parent_inputs(parent: str | os.PathLike, parent_sha256: str) -> dict[str, str]:
    """The inputs a derivation records of its parent: its bytes (``parent``) and, when its manifest
    has one, its ``model`` record (preprocessing, input, classes). ``rtdeploy import`` again with
    other preprocessing changes the manifest, not the bytes, and what was made from the old record
    (and carries it on in its own manifest) must not be reused."""
    inputs = {"parent": parent_sha256}
    try:
        model = (read_manifest(parent, required=False) or {}).get("model")
    except ArtifactError:
        model = None
    if isinstance(model, dict):
        inputs["model"] = hashlib.sha256(json.dumps(model, sort_keys=True, default=json_default).encode()).hexdigest()
    return inputs


def config_fields(cfg: Any, *, exclude: frozenset[str] | set[str]) -> dict[str, Any]:
    """A config dataclass's fields that decide the output: all but ``exclude`` (paths, progress ...)."""
    import dataclasses

    return {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg) if f.name not in exclude}



def reuse_verdict(path: str | os.PathLike, wanted: dict[str, Any], recorded: dict[str, Any] | None = None) -> tuple[bool, str]:
    """The reuse rule, the same for every stage: may ``path`` stand for what ``wanted`` would make?

    Yes only when ``path`` is intact and its recorded derivation (its manifest's ``derivation``, or
    ``recorded`` — a derivation plus ``output_sha256`` — for a report without a manifest) has the
    same stage, the same normalised options
    and the same fingerprint for every input — the parent's sha256 and the calibration data's
    content among them.

    Returns:
        (reusable, why): ``why`` is one short phrase, for the user.
    """
    p = Path(path)
    if not p.is_file():
        return False, "not made yet"
    if recorded is None:
        try:
            manifest = read_manifest(p, required=False)
        except ArtifactError:
            return False, "its manifest is unreadable"
        if manifest is None:
            return False, "it has no manifest"
        if manifest.get("sha256") != sha256_file(p):
            return False, "the file changed since its manifest was written"
        recorded = manifest.get("derivation")
    elif recorded.get("output_sha256") != sha256_file(p):
        return False, "the file changed since it was recorded"
    if not isinstance(recorded, dict):
        return False, "it records no derivation (made by an older rtdeploy)"
    if recorded.get("stage") != wanted["stage"]:
        return False, f"it was made by {recorded.get('stage')}, not {wanted['stage']}"
    for name, value in wanted["inputs"].items():
        if (recorded.get("inputs") or {}).get(name) != value:
            return False, f"its {name} changed"
    old, new = recorded.get("config") or {}, wanted["config"]
    changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    if changed:
        return False, "options changed: " + ", ".join(f"{k} {old.get(k)!r} -> {new.get(k)!r}" for k in changed[:3])
    return True, "same " + ", ".join(["options", *sorted(wanted["inputs"])])


# How many parent links the ancestor walk follows (export -> quantize -> engine is two).
_MAX_CHAIN = 8


def ancestors(path: str | os.PathLike) -> list[Path]:
    """``path`` and every artifact its manifest chain says it was made from, resolved (nearest first)."""
    chain = [Path(path).resolve()]
    for _ in range(_MAX_CHAIN):
        try:
            m = read_manifest(chain[-1], required=False)
        except ArtifactError:
            break
        parent = (m or {}).get("parent")
        if not isinstance(parent, dict) or not parent.get("path") or Path(parent["path"]).resolve() in chain:
            break
        chain.append(Path(parent["path"]).resolve())
    return chain


def refuse_overwriting_inputs(output: str | os.PathLike, *inputs: str | os.PathLike | None, option: str = "-o") -> None:
    """Refuse an output path that is one of the inputs or an ancestor of one, or the manifest of
    one of those (before any work).

    Raises:
        OutputError: ``output`` would overwrite what it is made from, or that file's manifest.
    """
    out = Path(output).resolve()
    for given in inputs:
        if given is None:
            continue
        chain = ancestors(given)
        if out in chain:
            what = "the input itself" if out == chain[0] else f"an ancestor of {Path(given).name} (its manifest chain)"
            raise OutputError(f"{option} {output} would overwrite {what}; write the result to another path")
        manifests = [manifest_path(p).resolve() for p in chain]
        if out in manifests:
            raise OutputError(f"{option} {output} would overwrite the manifest of {chain[manifests.index(out)].name}; "
                              "write the result to another path")


@dataclass(frozen=True)
class ArtifactKind:
    """What an artifact is, as far as replacing it goes: its manifest ``kind``, its ``precision``,
    and for INT8 models the ``target`` the Q/DQ was placed for (TensorRT or onnxruntime's CPU kernels)."""

    kind: str
    precision: str | None = None
    target: str | None = None

    @classmethod
    def of_manifest(cls, manifest: dict[str, Any]) -> "ArtifactKind":
        """The kind a manifest describes (an INT8 model without a recorded target is TensorRT's)."""
        kind = str(manifest.get("kind"))
        target = None
        if kind == "onnx-int8":
            target = (manifest.get("quantization") or {}).get("target") or "tensorrt"
        return cls(kind, manifest.get("precision"), target)

    def describe(self) -> str:
        """``an INT8 model placed for TensorRT``, ``the INT8 form for onnxruntime's CPU kernels`` ..."""
        if self.kind == "onnx-int8":
            return "the INT8 form for onnxruntime's CPU kernels" if self.target == CPU_TARGET else "an INT8 model placed for TensorRT"
        if self.kind == "engine":
            return f"an {self.precision.upper()} TensorRT engine" if self.precision else "a TensorRT engine"
        if self.kind in ("onnx", "onnx-fp16"):
            return f"an {(self.precision or 'fp32').upper()} ONNX model"
        return f"a {self.kind} artifact"


def refuse_replacing_another_kind(output: str | os.PathLike, writes: ArtifactKind, *, option: str = "-o") -> None:
    """Refuse, before any work, an output path that holds an artifact of another kind, precision or
    INT8 target than the one the command writes (per the manifest beside it): replacing a
    TensorRT-placed INT8 model by the CPU form, an FP16 model by an export, an engine by one of
    another precision loses the first with exit 0. A file without a readable manifest is not judged.

    Raises:
        OutputError: ``output`` holds an artifact of another kind.
    """
    p = Path(output)
    if not p.is_file():
        return
    try:
        manifest = read_manifest(p, required=False)
    except ArtifactError:
        return
    if manifest is None:
        return
    have = ArtifactKind.of_manifest(manifest)
    if have != writes:
        raise OutputError(f"{option} {output} would replace {have.describe()} with {writes.describe()}; write it to another "
                          f"path, or move {p.name} and its manifest away first")


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike, *, what: str = "folder") -> Iterator[None]:
    """Hold ``folder``'s writer lock for the duration; nothing is left in the folder afterwards.

    The lock is a ``.rtdeploy.lock`` file holding the holder's pid and command; it is removed on
    release (before unlocking, and a taker checks that the file it locked is still the one in
    place, so removal cannot let two holders in). A second writer does not wait and never
    interleaves: it gets one line naming the holder.

    Raises:
        OutputError: another process holds the lock.
    """
    import fcntl
    import sys

    lock = Path(folder) / ".rtdeploy.lock"
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666 & ~_umask())
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 400, 0).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise OutputError(f"{what} {folder} is in use by {holder}; wait for it to finish or choose another {what}") from None
        with contextlib.suppress(FileNotFoundError):
            if os.stat(lock).st_ino == os.fstat(fd).st_ino:
                break
        os.close(fd)  # the previous holder removed the file between our open and our lock: take the new one
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}: {' '.join(Path(sys.argv[0]).name.split() + sys.argv[1:])[:300]}".encode(), 0)
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            lock.unlink()
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
