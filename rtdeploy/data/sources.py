"""Input sources: image folders, tensor files and synthetic data, behind one small protocol.

    source = open_source("dev/", meta, limit=500)
    for images, labels in source.batches(32, progress=True):
        ...                                   # images: float32 (N, C, H, W); labels: int64 (N,) or None

Sources stream: an image folder decodes one batch at a time and a ``.npy`` file is memory-mapped,
so a large set never sits in memory whole. ``fingerprint()`` identifies exactly the samples a
source yields (and how they are preprocessed), so caches keyed by it are safe to reuse.
"""

from __future__ import annotations

import copy
import hashlib
import os
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple, Protocol, runtime_checkable

import numpy as np

from rtdeploy.data.preprocess import IMAGE_SUFFIXES, check_image_channels, load_image
from rtdeploy.files import not_a_file
from rtdeploy.errors import DataError, first_line
from rtdeploy.models.metadata import ModelMeta

DEFAULT_SYNTHETIC_SAMPLES = 32
TENSOR_SUFFIXES = (".npy", ".npz")
_IMAGE_KEYS, _LABEL_KEYS = ("images", "x"), ("labels", "y")


class Batch(NamedTuple):
    """One batch: float32 NCHW ``images`` and int64 ``labels`` (None when the source has none)."""

    images: np.ndarray
    labels: np.ndarray | None


@runtime_checkable
class Source(Protocol):
    """What every input source offers.

    Attributes:
        description: a one-line human label, e.g. ``images in dev/ (3,000, 10 classes)``.
    """

    description: str

    def __len__(self) -> int: ...

    def batches(self, batch_size: int, *, progress: bool = False) -> Iterator[Batch]:
        """Yield the samples in order, ``batch_size`` at a time (the last batch may be smaller)."""
        ...

    def fingerprint(self) -> str:
        """sha256 hex over the samples' identities and bytes; stable across runs."""
        ...


def open_source(path: str | os.PathLike | None, meta: ModelMeta, *, limit: int | None = None, seed: int = 0) -> Source:
    """The source for ``path``: a folder of images, a ``.npy``/``.npz`` tensor file, or synthetic data.

    Args:
        path: a folder, a tensor file, or None for :class:`SyntheticSource` (``limit`` samples,
            default ``DEFAULT_SYNTHETIC_SAMPLES``).
        meta: the model the samples are for (shape and preprocessing).
        limit: use at most this many samples (a deterministic subset chosen with ``seed``).
        seed: seed for the subset (and the synthetic data).

    Raises:
        DataError: the path is missing or of an unsupported kind, or the data is unusable.
    """
    if path is None:
        return SyntheticSource(meta, DEFAULT_SYNTHETIC_SAMPLES if limit is None else limit, seed=seed)
    p = Path(path)
    if p.is_dir():
        return ImageFolderSource(p, meta, limit=limit, seed=seed)
    if p.suffix.lower() in TENSOR_SUFFIXES:
        return TensorFileSource(p, meta, limit=limit, seed=seed)
    if not p.exists():
        raise DataError(f"input {p} does not exist; give a folder of images or a .npy/.npz tensor file")
    raise DataError(f"input {p} is neither a folder of images nor a .npy/.npz tensor file; give one of those")


class ImageFolderSource:
    """Images under a folder (recursively), decoded and preprocessed per batch.

    Files ending in .jpg/.jpeg/.png/.bmp (any case) are taken in sorted order. When every image
    lies inside a first-level subfolder, the subfolder is its class: class index = position of the
    subfolder's name in sorted order (for CIFAR-10 that is the canonical class order). Images lying
    directly in ``root`` make an unlabelled source.

    Args:
        root: the folder.
        meta: the model's metadata (preprocessing).
        limit: use a deterministic random subset of this many images (kept in sorted order).
        seed: seed of that subset.

    Raises:
        DataError: the folder is missing or holds no images, or ``limit`` exceeds the image count.
    """

    def __init__(self, root: str | os.PathLike, meta: ModelMeta, *, limit: int | None = None, seed: int = 0):
        check_image_channels(meta)
        self.root, self.meta, self.seed = Path(root), meta, seed
        if not self.root.is_dir():
            raise DataError(f"images folder {self.root} does not exist or is not a folder; give a folder of .jpg/.png/.bmp images")
        files = list_images(self.root)
        if not files:
            raise DataError(f"images folder {self.root} holds no images ({'/'.join(IMAGE_SUFFIXES)}); put images in it or in one subfolder per class")
        self.classes, labels = _class_labels(self.root, files)
        keep = select_subset(len(files), limit, seed, what=str(self.root), unit="images")
        self.files = [files[i] for i in keep]
        self.labels = None if labels is None else labels[keep]
        self._describe(len(files))

    def _describe(self, total: int, note: str = "") -> None:
        self.description = f"images in {self.root} ({len(self.files):,}" + (
            f" of {total:,}" if len(self.files) < total else "") + (f", {note}" if note else "") + (
            f", {len(self.classes)} classes)" if self.classes else ", unlabelled)")

    def __len__(self) -> int:
        return len(self.files)

    def subset(self, positions: np.ndarray, note: str = "") -> "ImageFolderSource":
        """A source of the samples at ``positions`` (sorted) of this one; ``note`` says which part it is."""
        part = copy.copy(self)
        part.files = [self.files[i] for i in positions]
        part.labels = None if self.labels is None else self.labels[positions]
        part._describe(len(self.files), note)
        return part

    def batches(self, batch_size: int, *, progress: bool = False) -> Iterator[Batch]:
        """Decode and yield ``batch_size`` images at a time (raises DataError naming a bad file)."""
        _check_batch_size(batch_size)
        with _progress(len(self), progress, self.root.name) as bar:
            for start in range(0, len(self), batch_size):
                chunk = self.files[start:start + batch_size]
                images = np.stack([load_image(f, self.meta) for f in chunk])
                labels = None if self.labels is None else self.labels[start:start + batch_size]
                bar.update(len(chunk))
                yield Batch(images, labels)

    def fingerprint(self) -> str:
        """sha256 over preprocessing, and each image's relative path, label and bytes."""
        h = _hasher("image-folder", self.meta)
        for i, f in enumerate(self.files):
            label = -1 if self.labels is None else int(self.labels[i])
            h.update(f"{f.relative_to(self.root).as_posix()}\0{label}\0".encode())
            h.update(hashlib.sha256(f.read_bytes()).digest())
        return h.hexdigest()


def list_images(root: Path) -> list[Path]:
    """Every image file under ``root`` (recursively), sorted.

    Links to folders are followed, as torchvision's ``ImageFolder`` does: a calibration set made of
    links to class folders elsewhere is a common way to pick images without copying them, and
    skipping the links silently calibrated on fewer images than given. Each folder is read once: a
    link back to a folder already included (a loop, or the same folder twice) is refused.

    Raises:
        DataError: a folder that cannot be listed, a link to a folder already included, or an image
            name that cannot be read (a broken link): its images would otherwise be silently left
            out, or counted twice.
    """
    def refuse(e: OSError) -> None:
        raise DataError(f"cannot read folder {e.filename}: {e.strerror or e}; fix its permissions or move it out of {root} "
                        "(its images would be silently left out)")

    files = []
    seen = {os.path.realpath(root): Path(root)}
    for folder, subfolders, names in os.walk(root, onerror=refuse, followlinks=True):
        for sub in subfolders:
            path = Path(folder) / sub
            real = os.path.realpath(path)
            if real in seen:
                raise DataError(f"{seen[real]} and {path} are one folder ({real}) through a link, so {root} would read its "
                                "images twice or loop forever; remove the link so each image is read once")
            seen[real] = path
        for name in names:
            p = Path(folder) / name
            if p.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            if not p.is_file():
                raise DataError(f"image {p} cannot be read (a broken link or not a file); fix or remove it")
            files.append(p)
    return sorted(files)


def check_labels(source, num_classes: int) -> None:
    """Refuse labels the model cannot output: a class folder or label index at or beyond
    ``num_classes`` would score as always wrong, and the accuracy would be meaningless.

    Raises:
        DataError: more class folders than classes, or a label outside 0..num_classes-1.
    """
    classes = getattr(source, "classes", None)
    where = getattr(source, "root", None) or getattr(source, "path", "the data")
    if classes and len(classes) > num_classes:
        raise DataError(f"{where} has {len(classes)} class folders, the model has {num_classes} classes; "
                        f"give images of the model's classes only (one folder per class, sorted in class order)")
    labels = getattr(source, "labels", None)
    if labels is None:
        labels = getattr(source, "_labels", None)
    if labels is not None and len(labels):
        low, high = int(np.min(labels)), int(np.max(labels))
        if low < 0 or high >= num_classes:
            bad = low if low < 0 else high
            raise DataError(f"{where} holds label {bad}, the model has {num_classes} classes (labels 0..{num_classes - 1}); "
                            "fix the labels or give the model's --num-classes at export")


def _class_labels(root: Path, files: list[Path]) -> tuple[list[str], np.ndarray | None]:
    parts = [f.relative_to(root).parts for f in files]
    if any(len(p) == 1 for p in parts):
        return [], None
    classes = sorted({p[0] for p in parts})
    index = {c: i for i, c in enumerate(classes)}
    return classes, np.array([index[p[0]] for p in parts], dtype=np.int64)


class TensorFileSource:
    """Preprocessed samples from a ``.npy`` (N, C, H, W) array or a ``.npz`` archive.

    A ``.npy`` file is memory-mapped. A ``.npz`` holds the images under ``images`` or ``x`` (or as its
    only array) and optional integer labels under ``labels`` or ``y``. Pickled objects are refused.

    Raises:
        DataError: unreadable file, missing array, a shape that is not the model's input shape,
            non-float data, labels that do not fit, or NaN/Inf (naming the first bad sample).
    """

    def __init__(self, path: str | os.PathLike, meta: ModelMeta, *, limit: int | None = None, seed: int = 0):
        self.path, self.meta, self.seed = Path(path), meta, seed
        self._images, self._labels = _load_tensor_file(self.path)
        _check_tensor_shape(self._images, meta, self.path)
        if len(self._images) == 0:
            raise DataError(f"{self.path} holds no samples (shape {tuple(self._images.shape)}); give a file with at least one")
        self.indices = select_subset(len(self._images), limit, seed, what=str(self.path), unit="samples")
        _check_finite(self._images, self.indices, self.path)
        self._describe()

    def _describe(self, note: str = "") -> None:
        self.description = f"tensors in {self.path} ({len(self.indices):,} of {len(self._images):,}" + (
            f", {note}" if note else "") + (", labelled)" if self._labels is not None else ", unlabelled)")

    def __len__(self) -> int:
        return len(self.indices)

    def subset(self, positions: np.ndarray, note: str = "") -> "TensorFileSource":
        """A source of the samples at ``positions`` (sorted) of this one; ``note`` says which part it is."""
        part = copy.copy(self)
        part.indices = self.indices[positions]
        part._describe(note)
        return part

    def batches(self, batch_size: int, *, progress: bool = False) -> Iterator[Batch]:
        """Yield ``batch_size`` samples at a time as float32 copies."""
        _check_batch_size(batch_size)
        with _progress(len(self), progress, self.path.name) as bar:
            for start in range(0, len(self), batch_size):
                idx = self.indices[start:start + batch_size]
                images = np.ascontiguousarray(self._images[idx], dtype=np.float32)
                labels = None if self._labels is None else self._labels[idx].astype(np.int64)
                bar.update(len(idx))
                yield Batch(images, labels)

    def fingerprint(self) -> str:
        """sha256 over the file's bytes and the chosen sample indices."""
        h = _hasher("tensor-file", self.meta)
        with open(self.path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        h.update(np.asarray(self.indices, dtype=np.int64).tobytes())
        return h.hexdigest()


def _load_tensor_file(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    if not path.is_file():
        raise DataError(f"tensor file {path} {not_a_file(path)}; give a .npy or .npz file")
    try:
        if path.suffix.lower() == ".npy":
            return np.load(path, mmap_mode="r", allow_pickle=False), None
        with np.load(path, allow_pickle=False) as archive:
            return _pick_arrays(archive, path)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        reason = first_line(e, 120)
        raise DataError(f"cannot read tensor file {path}: {reason}; save it with numpy.save / numpy.savez") from e


def _pick_arrays(archive, path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    keys = list(archive.files)
    image_key = next((k for k in _IMAGE_KEYS if k in keys), keys[0] if len(keys) == 1 else None)
    if image_key is None:
        raise DataError(f"{path} holds arrays {keys}; name the images 'images' (or 'x') and the labels 'labels' (or 'y')")
    label_key = next((k for k in _LABEL_KEYS if k in keys), None)
    images = archive[image_key]
    labels = None if label_key is None else archive[label_key]
    if labels is not None and (labels.shape != (len(images),) or not np.issubdtype(labels.dtype, np.integer)):
        raise DataError(f"labels {label_key!r} in {path} must be {len(images)} integers (shape ({len(images)},)), found {labels.dtype} {labels.shape}")
    return images, labels


def _check_tensor_shape(images: np.ndarray, meta: ModelMeta, path: Path) -> None:
    expected = meta.input_shape("N")
    if images.ndim != 4 or tuple(images.shape[1:]) != tuple(expected[1:]):
        raise DataError(f"{path} holds shape {tuple(images.shape)}, {meta.name} expects {expected} (NCHW, preprocessed); re-save it in that shape")
    if not np.issubdtype(images.dtype, np.floating):
        raise DataError(f"{path} holds {images.dtype} data; give normalized float tensors (as the model's preprocessing makes them)")


def _check_finite(images: np.ndarray, indices: np.ndarray, path: Path, chunk: int = 256) -> None:
    for start in range(0, len(indices), chunk):
        idx = indices[start:start + chunk]
        ok = np.isfinite(images[idx]).reshape(len(idx), -1).all(axis=1)
        if not ok.all():
            raise DataError(f"{path} sample {int(idx[np.argmin(ok)])} holds NaN or Inf; fix or drop that sample")


class SyntheticSource:
    """Deterministic standard-normal inputs (no labels), for tests and validation without images.

    Sample ``i`` depends only on ``(seed, i)``, so it is the same whatever the batch size.
    """

    def __init__(self, meta: ModelMeta, n: int, *, seed: int = 0):
        if not isinstance(n, int) or n < 1:
            raise DataError(f"synthetic source needs a positive sample count, got {n!r}")
        self.meta, self.n, self.seed = meta, n, seed
        self.description = f"random normal inputs ({n:,}, seed {seed})"

    def __len__(self) -> int:
        return self.n

    def batches(self, batch_size: int, *, progress: bool = False) -> Iterator[Batch]:
        """Yield ``batch_size`` generated samples at a time."""
        _check_batch_size(batch_size)
        shape = self.meta.input_shape(1)[1:]
        with _progress(self.n, progress, "synthetic") as bar:
            for start in range(0, self.n, batch_size):
                stop = min(start + batch_size, self.n)
                images = np.stack([self._sample(i, shape) for i in range(start, stop)])
                bar.update(stop - start)
                yield Batch(images, None)

    def _sample(self, i: int, shape: tuple) -> np.ndarray:
        return np.random.default_rng([self.seed, i]).standard_normal(shape, dtype=np.float32)

    def fingerprint(self) -> str:
        """sha256 over the generator's parameters."""
        h = _hasher("synthetic", self.meta)
        h.update(f"{self.n}\0{self.seed}".encode())
        return h.hexdigest()


def select_subset(total: int, limit: int | None, seed: int, *, what: str, unit: str) -> np.ndarray:
    """Sorted indices of a deterministic random subset of ``limit`` out of ``total`` (all when None).

    Raises:
        DataError: ``limit`` is not positive or exceeds ``total``.
    """
    if limit is None or limit == total:
        return np.arange(total)
    if limit < 1:
        raise DataError(f"asked for {limit} {unit}; give a positive number")
    if limit > total:
        raise DataError(f"asked for {limit:,} {unit}, {what} holds {total:,}; ask for at most {total:,} or add more")
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(total, size=limit, replace=False))


def _hasher(kind: str, meta: ModelMeta):
    h = hashlib.sha256()
    shape = meta.input_shape("N")
    h.update(f"{kind}\0{shape}\0{meta.resize}\0{tuple(meta.mean)}\0{tuple(meta.std)}\0".encode())
    return h


def _check_batch_size(batch_size: int) -> None:
    if not isinstance(batch_size, int) or batch_size < 1:
        raise DataError(f"batch size must be a positive integer, got {batch_size!r}")


def _progress(total: int, enabled: bool, desc: str):
    from rtdeploy.progress import bar

    return bar(total, enabled, desc)
