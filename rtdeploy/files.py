"""Files and locks: atomic writes, outputs that are devices or links, folder locks, hashes.

Writes are atomic: content goes to a temporary file in the destination folder and is renamed over
the destination only when complete, so an interrupted run never leaves a partial file. Only regular
files are replaced so: devices, FIFOs and descriptor aliases (``/dev/null``, ``/dev/stdout``) are
written through as a shell redirection does, a symbolic link keeps pointing at the (replaced)
target, and a failed write (a full disk or ``/dev/full``) is an :class:`OutputError`. An artifact
and its manifest (``X.json`` beside ``X``) are put in place together (:func:`atomic_path`).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import stat
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from rtdeploy.errors import OutputError

log = logging.getLogger(__name__)

# Write failures that mean "no room here" (disk or quota full, file-size limit, read-only
# filesystem): reported as an OutputError naming the destination.
_NO_ROOM = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT, errno.EROFS}

# Links into these name an open descriptor (``/dev/stdout`` -> ``/proc/self/fd/1``): written through.

# Links into these name an open descriptor (``/dev/stdout`` -> ``/proc/self/fd/1``): written through.
_DESCRIPTOR_DIRS = ("/dev/", "/proc/")


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


def default_cache_dir() -> Path:
    """Where rtdeploy caches what it can remake: ``$RTDEPLOY_CACHE_DIR``, else ``$XDG_CACHE_HOME/rtdeploy``,
    else ``~/.cache/rtdeploy``."""
    if os.environ.get("RTDEPLOY_CACHE_DIR"):
        return Path(os.environ["RTDEPLOY_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "rtdeploy"


# -- lineage: one naming rule, one reuse rule, ancestors, folder locks ------------------------------
# File-name tags of derived models: the precision, or the INT8 form for onnxruntime's CPU kernels.


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
