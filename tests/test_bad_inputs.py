"""The bad-input matrix: every failure a user can reach, across all commands.

Each row runs the real command line and asserts three things: one actionable line on stderr
(``error: ...``, no traceback), the exit code, and that no partial or stray file is left in the
output folder. Process-level failures (Ctrl-C, a full disk, two runs writing one path) run the CLI
in a subprocess.
"""

from __future__ import annotations

import atexit
import functools
import hashlib
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pytest
from click.testing import CliRunner

from rtdeploy.files import manifest_path, sha256_file
from rtdeploy.cli.main import _register, cli
from conftest import message_lines

REPO = Path(__file__).resolve().parents[1]


@dataclass
class Case:
    id: str
    argv: Callable[[Path], list[str]]
    needle: str
    exit_code: int | None = None  # None: any non-zero
    setup: Callable[[Path], None] = lambda d: None
    env: dict = field(default_factory=dict)
    stdout_clean: bool = True  # False: the failure comes after the result was printed (a write at the end)


def _write(name: str, data: bytes) -> Callable[[Path], None]:
    def setup(d: Path) -> None:
        (d / name).write_bytes(data)
    return setup


def _checkpoint(depth: int, name: str, *, truncate: bool = False, num_classes: int | None = None) -> Callable[[Path], None]:
    def setup(d: Path) -> None:
        import torch

        from rtdeploy.models import build_model, model_meta

        path = d / name
        torch.save(build_model(model_meta(depth, num_classes=num_classes)).state_dict(), path)
        if truncate:
            path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return setup


@functools.lru_cache(maxsize=None)
def _template_export(depth: int) -> Path:
    """One export per depth per test process, copied into each case's folder (exporting takes seconds)."""
    from rtdeploy import api

    folder = Path(tempfile.mkdtemp(prefix="rtdeploy-matrix-"))
    atexit.register(shutil.rmtree, folder, True)
    api.export(depth=depth, output=folder / "m.onnx")
    return folder / "m.onnx"


def _exported(name: str = "m.onnx", depth: int = 20, corrupt: bool = False) -> Callable[[Path], None]:
    def setup(d: Path) -> None:
        src = _template_export(depth)
        shutil.copyfile(src, d / name)
        shutil.copyfile(manifest_path(src), manifest_path(d / name))  # names no path: valid beside any copy
        if corrupt:
            (d / name).write_bytes(b"\x08\x07garbage, not protobuf" * 50)
    return setup


def _unlink(name: str) -> Callable[[Path], None]:
    return lambda d: (d / name).unlink()


def _both(*setups: Callable[[Path], None]) -> Callable[[Path], None]:
    def setup(d: Path) -> None:
        for s in setups:
            s(d)
    return setup


def _images(folder: str, bad: str | None = None, good: int = 0) -> Callable[[Path], None]:
    def setup(d: Path) -> None:
        import numpy as np
        from PIL import Image

        root = d / folder
        root.mkdir()
        for i in range(good):
            Image.fromarray(np.full((40, 40, 3), 30 * i, np.uint8)).save(root / f"ok{i}.png")
        if bad:
            (root / bad).write_bytes(b"this is not a jpeg")
    return setup


def _npy(name: str, shape: tuple) -> Callable[[Path], None]:
    """A float32 .npy of zeros of ``shape``."""
    def setup(d: Path) -> None:
        import numpy as np

        np.save(d / name, np.zeros(shape, np.float32))
    return setup


def _nan_npy(d: Path) -> None:
    import numpy as np

    a = np.zeros((4, 3, 32, 32), np.float32)
    a[2, 0, 0, 0] = np.nan
    np.save(d / "nan.npy", a)


def _quantized(d: Path) -> None:
    from rtdeploy import api

    api.quantize(d / "m.onnx", int8=True, calib_dir=None, output=d / "m.int8.onnx")


def _fake_engine(d: Path) -> None:
    _exported()(d)
    (d / "m.plan").write_bytes(b"plan bytes")
    from manifest_fakes import write_engine_manifest
    from rtdeploy.artifacts import read_manifest

    write_engine_manifest(d / "m.plan", d / "m.onnx", precision="fp32", model=read_manifest(d / "m.onnx")["model"], profile=(1, 1, 4))


CASES = [
    # export
    Case("export-unknown-depth", lambda d: ["export", "--depth", "7", "-o", str(d / "x.onnx")], "valid depths: ImageNet ResNet 18/34/50/101/152"),
    Case("export-weights-missing", lambda d: ["export", "--depth", "20", "--weights", str(d / "none.pth"), "-o", str(d / "x.onnx")], "does not exist"),
    Case("export-weights-not-checkpoint", lambda d: ["export", "--depth", "20", "--weights", str(d / "w.pth"), "-o", str(d / "x.onnx")],
         "cannot read weights", setup=_write("w.pth", b"hello, I am text")),
    Case("export-weights-truncated", lambda d: ["export", "--depth", "20", "--weights", str(d / "w.pth"), "-o", str(d / "x.onnx")],
         "cannot read weights", setup=_checkpoint(20, "w.pth", truncate=True)),
    Case("export-weights-wrong-keys", lambda d: ["export", "--depth", "32", "--weights", str(d / "w.pth"), "-o", str(d / "x.onnx")],
         "missing key 'layer1.3.conv1.weight'", setup=_checkpoint(20, "w.pth")),
    Case("export-weights-wrong-shape", lambda d: ["export", "--depth", "20", "--weights", str(d / "w.pth"), "-o", str(d / "x.onnx")],
         "'linear.weight' has shape (100, 64), expected (10, 64)", setup=_checkpoint(20, "w.pth", num_classes=100)),
    Case("export-outdir-missing", lambda d: ["export", "--depth", "20", "-o", str(d / "no" / "x.onnx")], "does not exist"),
    Case("export-output-is-dir", lambda d: ["export", "--depth", "20", "-o", str(d)], "is a directory"),
    Case("export-bad-batch", lambda d: ["export", "--depth", "20", "--batch", "zero", "-o", str(d / "x.onnx")], "'dynamic' or a positive integer"),
    Case("export-bad-opset", lambda d: ["export", "--depth", "20", "--opset", "9", "-o", str(d / "x.onnx")], "accepted: 13..20"),
    # validate
    Case("validate-missing-file", lambda d: ["validate", str(d / "none.onnx")], "none.onnx"),
    Case("validate-not-onnx", lambda d: ["validate", str(d / "m.onnx")], "m.onnx", setup=_exported(corrupt=True)),
    Case("validate-text-file", lambda d: ["validate", str(d / "t.onnx")], "is not an ONNX model", setup=_write("t.onnx", b"text")),
    Case("validate-no-manifest", lambda d: ["validate", str(d / "m.onnx")], "no manifest", setup=_both(_exported(), _unlink("m.onnx.json"))),
    Case("validate-empty-images", lambda d: ["validate", str(d / "m.onnx"), "--images", str(d / "imgs")], "imgs",
         setup=_both(_exported(), _images("imgs"))),
    Case("validate-unreadable-image", lambda d: ["validate", str(d / "m.onnx"), "--images", str(d / "imgs")], "broken.jpg",
         setup=_both(_exported(), _images("imgs", bad="broken.jpg", good=2))),
    # quantize
    Case("quantize-calib-dir-missing", lambda d: ["quantize", str(d / "m.onnx"), "--int8", "--calib-dir", str(d / "none")], "does not exist", setup=_exported()),
    Case("quantize-calib-dir-empty", lambda d: ["quantize", str(d / "m.onnx"), "--int8", "--calib-dir", str(d / "imgs")], "holds no images",
         setup=_both(_exported(), _images("imgs"))),
    Case("quantize-corrupt-image", lambda d: ["quantize", str(d / "m.onnx"), "--int8", "--calib-dir", str(d / "imgs")], "broken.png",
         setup=_both(_exported(), _images("imgs", bad="broken.png", good=2))),
    Case("quantize-more-images-than-exist", lambda d: ["quantize", str(d / "m.onnx"), "--int8", "--calib-dir", str(d / "imgs"), "--calib-size", "5"],
         "asked for 5 images", setup=_both(_exported(), _images("imgs", good=2))),
    Case("quantize-percentile-out-of-range", lambda d: ["quantize", str(d / "m.onnx"), "--int8", "--method", "percentile", "--percentile", "150"],
         "outside (0, 100]", setup=_exported()),
    Case("quantize-nan-tensors", lambda d: ["quantize", str(d / "m.onnx"), "--int8", "--calib-dir", str(d / "nan.npy")], "NaN or Inf",
         setup=_both(_exported(), _nan_npy)),
    Case("quantize-already-quantized", lambda d: ["quantize", str(d / "m.int8.onnx"), "--int8"], "already", setup=_both(_exported(), _quantized)),
    Case("quantize-cache-for-another-model", lambda d: ["quantize", str(d / "m.onnx"), "--int8", "--from-trt-cache", str(d / "other.cache")],
         "made for another model", setup=_both(_exported(), _write("other.cache", b"TRT-8601-EntropyCalibration2\nfoo: 3c010a14\n"))),
    # summary
    Case("summary-unknown-depth", lambda d: ["summary", "--depth", "51"], "unknown depth 51"),
    # bench
    Case("bench-unknown-backend", lambda d: ["bench", "--depth", "20", "--backend", "tflite"], "tflite"),
    Case("bench-unknown-precision", lambda d: ["bench", "--depth", "20", "--precision", "int4"], "int4"),
    Case("bench-zero-iterations", lambda d: ["bench", "--depth", "20", "--iterations", "0"], "--iterations"),
    Case("bench-negative-duration", lambda d: ["bench", "--depth", "20", "--duration", "-1s"], "--duration"),
    Case("bench-json-missing-dir", lambda d: ["bench", "--depth", "20", "--iterations", "2", "--json", str(d / "no" / "b.json")], "does not exist"),
    # build-engine
    Case("build-engine-profile-min-gt-max", lambda d: ["build-engine", "--onnx", str(d / "m.onnx"), "--batch", "8:4:2", "-o", str(d / "m.engine")],
         "8:4:2", setup=_exported()),
    # package
    Case("package-engine-on-cpu", lambda d: ["package", str(d / "m.plan"), "--triton", str(d / "repo"), "--kind", "cpu"], "runs only on a GPU", setup=_fake_engine),
    Case("package-max-batch-over-profile", lambda d: ["package", str(d / "m.plan"), "--triton", str(d / "repo"), "--max-batch", "64"],
         "profile maximum 4", setup=_fake_engine),
    # run
    Case("run-unknown-precision", lambda d: ["run", "--depth", "20", "--precision", "fp8", "-o", str(d / "out")], "fp8"),
    Case("run-unknown-depth", lambda d: ["run", "--depth", "21", "-o", str(d / "out")], "unknown depth 21"),
]


# --- the matrix grown by issue 11: each class of failure on every command it applies to -----------

def _mkdir(*names: str) -> Callable[[Path], None]:
    def setup(d: Path) -> None:
        for n in names:
            (d / n).mkdir(parents=True)
    return setup


def _bad_weights(kind: str) -> Callable[[Path], None]:
    def setup(d: Path) -> None:
        import torch

        from rtdeploy.models import build_model, model_meta

        state = build_model(model_meta(20)).state_dict()
        if kind == "nan":
            state["layer1.0.conv1.weight"][0, 0, 0, 0] = float("nan")
        elif kind == "inf":
            state["linear.bias"][3] = float("inf")
        else:
            state["layer2.1.bn2.running_var"][5] = -0.5
        torch.save(state, d / "w.pth")
    return setup


def _class_folders(n: int) -> Callable[[Path], None]:
    def setup(d: Path) -> None:
        import numpy as np
        from PIL import Image

        for i in range(n):
            (d / "imgs" / f"c{i:02d}").mkdir(parents=True)
            Image.fromarray(np.full((32, 32, 3), 20 * (i % 12), np.uint8)).save(d / "imgs" / f"c{i:02d}" / "a.png")
    return setup


def _labelled_npz(label: int) -> Callable[[Path], None]:
    def setup(d: Path) -> None:
        import numpy as np

        np.savez(d / "t.npz", images=np.zeros((2, 3, 32, 32), np.float32), labels=np.array([0, label]))
    return setup


def _broken_link(folder: str, name: str) -> Callable[[Path], None]:
    return lambda d: os.symlink(d / "gone.png", d / folder / name)


def _edited(name: str) -> Callable[[Path], None]:
    def setup(d: Path) -> None:
        with open(d / name, "ab") as f:
            f.write(b"\0")
    return setup


def _dev_link(name: str, device: str) -> Callable[[Path], None]:
    """A link in the case folder to a device. The cases write to the link, never to /dev itself: run
    against code that renames over its output (as rtdeploy did before issue 11), a test on
    ``/dev/null`` itself would replace the machine's /dev/null with a regular file."""
    return lambda d: os.symlink(device, d / name)


M = lambda d: str(d / "m.onnx")  # noqa: E731
EXPORT = lambda d, *a: ["export", "--depth", "20", "-o", str(d / "x.onnx"), *a]  # noqa: E731
USAGE = 2

GROWN = [
    # class 1: outputs that are not regular files, and writes that fail
    Case("export-output-is-device", lambda d: ["export", "--depth", "20", "-o", str(d / "null.onnx")], "not a regular file",
         setup=_dev_link("null.onnx", "/dev/null")),
    Case("quantize-output-is-device", lambda d: ["quantize", M(d), "--fp16", "-o", str(d / "null.onnx")], "not a regular file",
         setup=_both(_exported(), _dev_link("null.onnx", "/dev/null"))),
    Case("build-engine-output-is-device", lambda d: ["build-engine", "--onnx", M(d), "-o", str(d / "null.engine")], "not a regular file",
         setup=_both(_exported(), _dev_link("null.engine", "/dev/null"))),
    Case("validate-json-to-full-device", lambda d: ["validate", M(d), "--samples", "2", "--json", str(d / "full.json")], "No space left",
         setup=_both(_exported(), _dev_link("full.json", "/dev/full")), stdout_clean=False),
    Case("summary-json-to-full-device", lambda d: ["summary", "--depth", "20", "--json", str(d / "full.json")], "No space left",
         setup=_dev_link("full.json", "/dev/full"), stdout_clean=False),
    Case("doctor-json-to-full-device", lambda d: ["doctor", "--json", str(d / "full.json")], "No space left", setup=_dev_link("full.json", "/dev/full")),
    Case("bench-json-to-full-device", lambda d: ["bench", "--model", M(d), "--iterations", "1", "--repeats", "1", "--warmup", "0",
                                                 "--json", str(d / "full.json")], "No space left",
         setup=_both(_exported(), _dev_link("full.json", "/dev/full"))),
    Case("package-repo-is-device", lambda d: ["package", M(d), "--triton", str(d / "null")], "not a folder",
         setup=_both(_exported(), _dev_link("null", "/dev/null"))),
    Case("package-artifact-is-device", lambda d: ["package", "/dev/null", "--triton", str(d / "repo")], "not a regular file"),
    Case("run-outdir-is-device", lambda d: ["run", "--depth", "20", "-o", "/dev/null"], "is a file"),
    # class 2: options checked before any work (a model written before the failure would show in the listing)
    Case("export-manifest-path-is-folder", lambda d: EXPORT(d), "is a folder", setup=_mkdir("x.onnx.json")),
    Case("export-json-missing-dir", lambda d: EXPORT(d, "--json", str(d / "no" / "m.json")), "does not exist"),
    Case("export-json-is-folder", lambda d: EXPORT(d, "--json", str(d)), "is a directory"),
    Case("quantize-manifest-path-is-folder", lambda d: ["quantize", M(d), "--fp16", "-o", str(d / "q.onnx")], "is a folder",
         setup=_both(_exported(), _mkdir("q.onnx.json"))),
    Case("quantize-json-missing-dir", lambda d: ["quantize", M(d), "--fp16", "--json", str(d / "no" / "q.json")], "does not exist", setup=_exported()),
    Case("quantize-bad-trt-version", lambda d: ["quantize", M(d), "--int8", "--trt-version", "8.6"], "--trt-version '8.6'", setup=_exported()),
    Case("validate-json-missing-dir", lambda d: ["validate", M(d), "--json", str(d / "no" / "v.json")], "does not exist", setup=_exported()),
    Case("summary-json-missing-dir", lambda d: ["summary", "--depth", "20", "--json", str(d / "no" / "s.json")], "does not exist"),
    Case("doctor-json-missing-dir", lambda d: ["doctor", "--json", str(d / "no" / "d.json")], "does not exist"),
    Case("build-engine-manifest-path-is-folder", lambda d: ["build-engine", "--onnx", M(d), "-o", str(d / "e.engine")], "is a folder",
         setup=_both(_exported(), _mkdir("e.engine.json"))),
    Case("build-engine-json-missing-dir", lambda d: ["build-engine", "--onnx", M(d), "--json", str(d / "no" / "e.json")], "does not exist",
         setup=_exported()),
    Case("build-engine-bad-workspace", lambda d: ["build-engine", "--onnx", M(d), "--workspace", "lots"], "is not a size", setup=_exported()),
    Case("run-json-missing-dir", lambda d: ["run", "--depth", "20", "-o", str(d / "out"), "--json", str(d / "no" / "r.json")], "does not exist"),
    Case("run-bad-bench-duration", lambda d: ["run", "--depth", "20", "-o", str(d / "out"), "--bench-duration", "abc"], "--bench-duration 'abc'"),
    Case("run-bad-bench-batch", lambda d: ["run", "--depth", "20", "-o", str(d / "out"), "--bench-batch", "1,x"], "--bench-batch '1,x'"),
    Case("bench-bad-duration", lambda d: ["bench", "--depth", "20", "--duration", "abc"], "--duration 'abc' is not a duration"),
    Case("package-bad-preferred-batch", lambda d: ["package", M(d), "--triton", str(d / "repo"), "--preferred-batch", "4,x"], "--preferred-batch '4,x'",
         setup=_exported()),
    # class 3: numbers that are not sane
    Case("export-nan-weights", lambda d: EXPORT(d, "--weights", str(d / "w.pth")), "NaN or Inf", setup=_bad_weights("nan")),
    Case("export-inf-weights", lambda d: EXPORT(d, "--weights", str(d / "w.pth")), "'linear.bias' holds NaN or Inf", setup=_bad_weights("inf")),
    Case("export-negative-bn-variance", lambda d: EXPORT(d, "--weights", str(d / "w.pth")), "'layer2.1.bn2.running_var' has negative values",
         setup=_bad_weights("negvar")),
    Case("validate-tolerance-percent", lambda d: ["validate", M(d), "--tol-top1", "95"], "if you meant 95 %, give 0.95", setup=_exported()),
    Case("validate-tolerance-nan", lambda d: ["validate", M(d), "--tol-cosine", "nan"], "--tol-cosine", setup=_exported()),
    Case("validate-tolerance-negative", lambda d: ["validate", M(d), "--tol-max-abs", "-1"], "--tol-max-abs -1.0 is negative" , setup=_exported()),
    Case("validate-tolerance-inf-drop", lambda d: ["validate", M(d), "--tol-accuracy-drop", "inf"], "--tol-accuracy-drop", setup=_exported()),
    Case("validate-negative-seed", lambda d: ["validate", M(d), "--seed", "-1"], "--seed -1", setup=_exported()),
    Case("validate-zero-samples", lambda d: ["validate", M(d), "--samples", "0"], "--samples 0", setup=_exported()),
    Case("quantize-negative-seed", lambda d: ["quantize", M(d), "--int8", "--seed", "-3"], "--seed -3", setup=_exported()),
    Case("quantize-calib-size-zero", lambda d: ["quantize", M(d), "--int8", "--calib-size", "0"], "--calib-size 0", setup=_exported()),
    Case("quantize-target-agreement-percent", lambda d: ["quantize", M(d), "--int8", "--target-agreement", "99"], "if you meant 99 %, give 0.99", setup=_exported()),
    Case("quantize-target-agreement-nan", lambda d: ["quantize", M(d), "--int8", "--target-agreement", "nan"], "--target-agreement", setup=_exported()),
    Case("quantize-percentile-nan", lambda d: ["quantize", M(d), "--int8", "--method", "percentile", "--percentile", "nan"], "outside (0, 100]",
         setup=_exported()),
    Case("quantize-negative-keep-fp", lambda d: ["quantize", M(d), "--int8", "--keep-fp", "-1"], "--keep-fp -1", setup=_exported()),
    Case("run-calib-size-zero", lambda d: ["run", "--depth", "20", "-o", str(d / "out"), "--calib-size", "0"], "--calib-size 0"),
    Case("run-negative-keep-fp", lambda d: ["run", "--depth", "20", "-o", str(d / "out"), "--keep-fp", "-2"], "--keep-fp -2"),
    Case("run-empty-precision", lambda d: ["run", "--depth", "20", "-o", str(d / "out"), "--precision", ","], "--precision is empty"),
    Case("run-zero-samples", lambda d: ["run", "--depth", "20", "-o", str(d / "out"), "--samples", "0"], "--samples 0"),
    Case("bench-negative-threads", lambda d: ["bench", "--depth", "20", "--threads", "-1"], "--threads"),
    Case("bench-zero-repeats", lambda d: ["bench", "--depth", "20", "--repeats", "0"], "--repeats"),
    Case("bench-negative-warmup", lambda d: ["bench", "--depth", "20", "--warmup", "-1s"], "--warmup"),
    Case("bench-zero-batch", lambda d: ["bench", "--depth", "20", "--batch", "0"], "--batch"),
    Case("bench-repeats-superscript-digit", lambda d: ["bench", "--depth", "20", "--repeats", "²"], "--repeats '²'"),
    Case("bench-infinite-duration", lambda d: ["bench", "--depth", "20", "--duration", "1e999s"], "--duration '1e999s' is not accepted"),
    Case("export-batch-superscript-digit", lambda d: EXPORT(d, "--batch", "²"), "--batch '²' is not accepted"),
    Case("build-engine-batch-superscript-digit", lambda d: ["build-engine", "--onnx", M(d), "--batch", "1:²:8"], "--batch '1:²:8'", setup=_exported()),
    Case("package-negative-queue-delay", lambda d: ["package", M(d), "--triton", str(d / "repo"), "--max-queue-delay-us", "-5"],
         "--max-queue-delay-us -5", setup=_exported()),
    Case("package-zero-instances", lambda d: ["package", M(d), "--triton", str(d / "repo"), "--instances", "0"], "--instances 0", setup=_exported()),
    Case("package-zero-version", lambda d: ["package", M(d), "--triton", str(d / "repo"), "--version", "0"], "--version 0", setup=_exported()),
    Case("package-negative-max-batch", lambda d: ["package", M(d), "--triton", str(d / "repo"), "--max-batch", "-1"], "--max-batch -1", setup=_exported()),
    Case("package-zero-preferred-batch", lambda d: ["package", M(d), "--triton", str(d / "repo"), "--preferred-batch", "0"], "--preferred-batch '0'",
         setup=_exported()),
    Case("build-engine-optimization-level", lambda d: ["build-engine", "--onnx", M(d), "--builder-optimization-level", "9"], "give 0..5", setup=_exported()),
    Case("build-engine-negative-dla-core", lambda d: ["build-engine", "--onnx", M(d), "--dla-core", "-1", "--int8", "--batch", "8"], "--dla-core -1",
         setup=_exported()),
    Case("build-engine-zero-workspace", lambda d: ["build-engine", "--onnx", M(d), "--workspace", "0"], "larger than 0", setup=_exported()),
    Case("summary-zero-classes", lambda d: ["summary", "--depth", "20", "--num-classes", "0"], "num_classes must be a positive integer"),
    # class 4: data that does not match the model
    Case("validate-more-class-folders-than-classes", lambda d: ["validate", M(d), "--images", str(d / "imgs")], "11 class folders, the model has 10",
         setup=_both(_exported(), _class_folders(11))),
    Case("validate-label-beyond-classes", lambda d: ["validate", M(d), "--images", str(d / "t.npz")], "holds label 10", setup=_both(_exported(), _labelled_npz(10))),
    Case("validate-negative-label", lambda d: ["validate", M(d), "--images", str(d / "t.npz")], "holds label -1", setup=_both(_exported(), _labelled_npz(-1))),
    Case("validate-broken-image-link", lambda d: ["validate", M(d), "--images", str(d / "imgs")], "x.png cannot be read",
         setup=_both(_exported(), _images("imgs", good=2), _broken_link("imgs", "x.png"))),
    Case("quantize-broken-image-link", lambda d: ["quantize", M(d), "--int8", "--calib-dir", str(d / "imgs")], "x.png cannot be read",
         setup=_both(_exported(), _images("imgs", good=2), _broken_link("imgs", "x.png"))),
    Case("package-artifact-edited-after-export", lambda d: ["package", M(d), "--triton", str(d / "repo"), "--kind", "cpu"], "does not match its manifest",
         setup=_both(_exported(), _edited("m.onnx"))),
    # class 5: resource limits, estimated before allocating
    Case("export-huge-batch", lambda d: EXPORT(d, "--batch", "99999999"), "GiB of memory"),
    Case("export-huge-image-size", lambda d: EXPORT(d, "--image-size", "100000"), "GiB of memory"),
    Case("validate-huge-batch", lambda d: ["validate", M(d), "--batch", "99999999"], "GiB of memory", setup=_exported()),
    Case("bench-huge-batch", lambda d: ["bench", "--depth", "20", "--batch", "99999999"], "GiB of memory"),
    Case("bench-huge-image-size", lambda d: ["bench", "--depth", "20", "--image-size", "100000"], "GiB of memory"),
    # class 8: names that become paths or configs
    Case("package-name-with-quote", lambda d: ["package", M(d), "--triton", str(d / "repo"), "--name", 'a"b'], "is not accepted", setup=_exported()),
    Case("package-name-parent-dir", lambda d: ["package", M(d), "--triton", str(d / "repo"), "--name", "../x"], "is not accepted", setup=_exported()),
    Case("package-name-hidden", lambda d: ["package", M(d), "--triton", str(d / "repo"), "--name", ".x"], "not starting with '.'", setup=_exported()),
    Case("package-name-empty", lambda d: ["package", M(d), "--triton", str(d / "repo"), "--name", ""], "is not accepted", setup=_exported()),
    Case("package-name-slash", lambda d: ["package", M(d), "--triton", str(d / "repo"), "--name", "a/b"], "is not accepted", setup=_exported()),
    # class 9: usage errors: exit 2, one `error:` line naming the accepted values or a near name
    Case("usage-mistyped-command", lambda d: ["exprt", "--depth", "20"], "Did you mean 'export'", exit_code=USAGE),
    Case("usage-export-bad-variant", lambda d: ["export", "--variant", "v3"], "'v1.5', 'v1'", exit_code=USAGE),
    Case("usage-export-unknown-option", lambda d: ["export", "--dept", "20"], "--depth", exit_code=USAGE),
    Case("usage-validate-missing-model", lambda d: ["validate"], "Missing argument 'MODEL'", exit_code=USAGE),
    Case("usage-validate-batch-not-int", lambda d: ["validate", "m.onnx", "--batch", "abc"], "'abc' is not a valid integer", exit_code=USAGE),
    Case("usage-quantize-bad-method", lambda d: ["quantize", "m.onnx", "--method", "foo"], "'entropy', 'max', 'percentile', 'mse'", exit_code=USAGE),
    Case("usage-build-engine-bad-compatibility", lambda d: ["build-engine", "--hardware-compatibility", "x"], "'ampere+', 'same-cc'", exit_code=USAGE),
    Case("usage-build-engine-depth-and-onnx", lambda d: ["build-engine", "--depth", "20", "--onnx", M(d)], "give --depth or --onnx, not both",
         exit_code=USAGE, setup=_exported()),
    Case("usage-build-engine-two-precisions", lambda d: ["build-engine", "--depth", "20", "--fp16", "--int8"],
         "give one of --fp32, --fp16 or --int8, not --fp16 and --int8", exit_code=USAGE),
    Case("usage-package-bad-kind", lambda d: ["package", "m.onnx", "--triton", "r", "--kind", "tpu"], "'gpu', 'cpu'", exit_code=USAGE),
    Case("usage-package-missing-triton", lambda d: ["package", "m.onnx"], "Missing option '--triton'", exit_code=USAGE),
    Case("usage-run-bad-method", lambda d: ["run", "--method", "foo"], "'entropy', 'max', 'percentile', 'mse'", exit_code=USAGE),
    Case("usage-summary-bad-variant", lambda d: ["summary", "--variant", "v9"], "'v1.5', 'v1'", exit_code=USAGE),
    Case("usage-bench-unknown-option", lambda d: ["bench", "--bogus"], "No such option '--bogus'", exit_code=USAGE),
    Case("usage-doctor-unknown-option", lambda d: ["doctor", "--bogus"], "No such option '--bogus'", exit_code=USAGE),
    # the adversarial sweep: --json onto a model file, weights too large to allocate, unsafe pickles
    Case("export-json-is-output", lambda d: EXPORT(d, "--json", str(d / "x.onnx")), "would overwrite"),
    Case("quantize-json-default-output-name", lambda d: ["quantize", M(d), "--fp16", "--json", "m.fp16.onnx"], "named like a model file", setup=_exported()),
    Case("quantize-json-is-input", lambda d: ["quantize", M(d), "--fp16", "--json", str(d / "m.onnx")], "would overwrite", setup=_exported()),
    Case("validate-json-is-input-manifest", lambda d: ["validate", M(d), "--json", str(d / "m.onnx.json")], "would overwrite", setup=_exported()),
    Case("build-engine-json-is-timing-cache", lambda d: ["build-engine", "--onnx", M(d), "--timing-cache", str(d / "t.bin"), "--json", str(d / "t.bin")],
         "would overwrite", setup=_both(_exported(), _write("t.bin", b"cache"))),
    Case("export-huge-num-classes", lambda d: EXPORT(d, "--num-classes", "2000000000"), "GiB of memory for its weights"),
    Case("export-weights-unsafe-pickle", lambda d: EXPORT(d, "--weights", str(d / "w.pth")), "safe loading (weights_only=True) refuses",
         setup=_write("w.pth", b"\x80\x04\x95\x1a\x00\x00\x00\x00\x00\x00\x00\x8c\x05posix\x94\x8c\x06getcwd\x94\x93\x94)R\x94.")),
    Case("validate-reference-is-the-model", lambda d: ["validate", M(d), "--reference", str(d / "m.onnx")], "is the model itself", setup=_exported()),
    Case("validate-reference-is-a-copy", lambda d: ["validate", M(d), "--reference", str(d / "c.onnx")], "is the model itself",
         setup=_both(_exported(), _exported("c.onnx"))),
    Case("validate-empty-tensor-file", lambda d: ["validate", M(d), "--images", str(d / "e.npy")], "holds no samples",
         setup=_both(_exported(), _npy("e.npy", (0, 3, 32, 32)))),
    Case("quantize-percentile-without-its-method", lambda d: ["quantize", M(d), "--int8", "--percentile", "99.9"], "applies to --method percentile only",
         setup=_exported()),
    Case("quantize-fp16-with-method", lambda d: ["quantize", M(d), "--fp16", "--method", "max"], "--method max applies to --int8 only", setup=_exported()),
    Case("quantize-constant-calibration-tensors", lambda d: ["quantize", M(d), "--int8", "--no-stats-cache", "--calib-dir", str(d / "z.npy")],
         "hold the single value 0 throughout", setup=_both(_exported(), _npy("z.npy", (4, 3, 32, 32)))),
    Case("export-manifest-path-is-fifo", lambda d: EXPORT(d), "is not a regular file", setup=lambda d: os.mkfifo(d / "x.onnx.json")),
    Case("bench-empty-list-item", lambda d: ["bench", "--depth", "20", "--batch", "1,,8"], "--batch '1,,8' has an empty item"),
    Case("bench-duplicate-depth", lambda d: ["bench", "--depth", "20,20"], "names '20' twice"),
    Case("bench-duplicate-precision", lambda d: ["bench", "--depth", "20", "--precision", "fp32,fp32"], "names 'fp32' twice"),
    Case("bench-huge-threads", lambda d: ["bench", "--depth", "20", "--threads", "100000"], "--threads 100000 is not accepted"),
    Case("bench-huge-streams", lambda d: ["bench", "--depth", "20", "--streams", "100000"], "--streams 100000 is not accepted"),
    Case("run-duplicate-precision", lambda d: ["run", "--depth", "20", "-o", str(d / "out"), "--precision", "fp16,fp16"], "names 'fp16' twice"),
    Case("run-precision-empty-item", lambda d: ["run", "--depth", "20", "-o", str(d / "out"), "--precision", "fp16,,int8"], "has an empty item"),
    Case("package-duplicate-preferred-batch", lambda d: ["package", M(d), "--triton", str(d / "repo"), "--preferred-batch", "4,4"], "names '4' twice",
         setup=_exported()),
    Case("package-version-beyond-int64", lambda d: ["package", M(d), "--triton", str(d / "repo"), "--version", "99999999999999999999"],
         "--version 99999999999999999999 is not accepted", setup=_exported()),
    Case("package-huge-instances", lambda d: ["package", M(d), "--triton", str(d / "repo"), "--instances", "100000000"], "--instances 100000000",
         setup=_exported()),
    Case("package-queue-delay-beyond-uint64", lambda d: ["package", M(d), "--triton", str(d / "repo"), "--max-queue-delay-us", str(2**64)],
         "--max-queue-delay-us", setup=_exported()),
    Case("inspect-empty-layer-list", lambda d: ["inspect", str(d / "l.json")], "lists no layers", setup=_write("l.json", b'{"Layers": []}')),
    Case("import-mean-nan", lambda d: ["import", M(d), "--mean", "nan,0,0", "--std", "0.2,0.2,0.2", "-o", str(d / "i.onnx")], "--mean nan",
         setup=_exported()),
    Case("import-mean-in-pixels", lambda d: ["import", M(d), "--mean", "123.7,116.3,103.5", "--std", "58,57,57", "-o", str(d / "i.onnx")],
         "divide by 255", setup=_exported()),
    Case("import-name-parent-dir", lambda d: ["import", M(d), "--preprocess", "cifar", "--name", "../x", "-o", str(d / "i.onnx")], "--name '../x'",
         setup=_exported()),
    Case("import-output-is-input-manifest", lambda d: ["import", M(d), "--preprocess", "cifar", "-o", str(d / "m.onnx.json")],
         "would overwrite the manifest of m.onnx", setup=_both(_exported(), _unlink("m.onnx.json"))),  # a foreign file: an export is not imported
    Case("run-images-missing", lambda d: ["run", "--depth", "20", "-o", str(d / "out"), "--images", str(d / "none")], "--images"),
    Case("run-calib-dir-missing", lambda d: ["run", "--depth", "20", "-o", str(d / "out"), "--calib-dir", str(d / "none")], "--calib-dir"),
    Case("run-weights-missing", lambda d: ["run", "--depth", "20", "-o", str(d / "out"), "--weights", str(d / "none.pth")], "--weights"),
    Case("run-zero-num-classes", lambda d: ["run", "--depth", "20", "-o", str(d / "out"), "--num-classes", "0"], "--num-classes 0"),
    Case("quantize-output-is-input-manifest", lambda d: ["quantize", M(d), "--fp16", "-o", str(d / "m.onnx.json")], "would overwrite the manifest of m.onnx",
         setup=_exported()),
]


def _rewritten(name: str) -> Callable[[Path], None]:
    """A still valid ONNX whose bytes no longer match its manifest (edited by another tool after export)."""
    def setup(d: Path) -> None:
        import onnx

        model = onnx.load(str(d / name))
        model.doc_string = "edited after export"
        onnx.save(model, str(d / name))
    return setup


R20_QUANTIZABLE = 29  # 19 convolutions, the classifier and 9 residual Adds (the units of precision/int8/qdq.plan_qdq)

# The class-3 and class-4 rows that closed issue 11: "--keep-fp at least the number of quantizable
# layers" and "a parent edited after export accepted by quantize", on every command they reach.
CLOSING = [
    Case("quantize-keep-fp-all-layers", lambda d: ["quantize", M(d), "--int8", "--keep-fp", str(R20_QUANTIZABLE)],
         f"would keep all {R20_QUANTIZABLE} quantizable layers", setup=_exported()),
    Case("quantize-keep-fp-beyond-layers", lambda d: ["quantize", M(d), "--int8", "--keep-fp", "1000"],
         f"give --keep-fp 0 to {R20_QUANTIZABLE - 1}", setup=_exported()),
    Case("quantize-int8-parent-rewritten", lambda d: ["quantize", M(d), "--int8"], "does not match its manifest",
         setup=_both(_exported(), _rewritten("m.onnx"))),
    Case("quantize-fp16-parent-rewritten", lambda d: ["quantize", M(d), "--fp16"], "does not match its manifest",
         setup=_both(_exported(), _rewritten("m.onnx"))),
    Case("quantize-parent-edited", lambda d: ["quantize", M(d), "--int8"], "does not match its manifest",
         setup=_both(_exported(), _edited("m.onnx"))),
    Case("build-engine-onnx-rewritten", lambda d: ["build-engine", "--onnx", M(d), "--fp32"], "does not match its manifest",
         setup=_both(_exported(), _rewritten("m.onnx"))),
    Case("build-engine-int8-from-rewritten-fp32", lambda d: ["build-engine", "--onnx", M(d), "--int8"], "does not match its manifest",
         setup=_both(_exported(), _rewritten("m.onnx"))),
    Case("validate-onnx-rewritten", lambda d: ["validate", M(d)], "does not match its manifest",
         setup=_both(_exported(), _rewritten("m.onnx"))),
    Case("package-onnx-rewritten", lambda d: ["package", M(d), "--triton", str(d / "repo"), "--kind", "cpu"], "does not match its manifest",
         setup=_both(_exported(), _rewritten("m.onnx"))),
    Case("run-given-onnx-rewritten", lambda d: ["run", "--onnx", M(d), "-o", str(d / "out")], "does not match its manifest",
         setup=_both(_exported(), _rewritten("m.onnx"))),
    Case("bench-onnx-rewritten", lambda d: ["bench", "--model", M(d), "--duration", "0", "--iterations", "1", "--repeats", "1"],
         "does not match its manifest", setup=_both(_exported(), _rewritten("m.onnx"))),
    # an input that exists but is no file: named for what it is, never opened (a FIFO would block the reader)
    Case("validate-model-is-fifo", lambda d: ["validate", str(d / "m.onnx")], "m.onnx is not a regular file",
         setup=lambda d: os.mkfifo(d / "m.onnx")),
    Case("quantize-model-is-folder", lambda d: ["quantize", str(d / "m.onnx"), "--int8"], "m.onnx is a folder", setup=_mkdir("m.onnx")),
    Case("build-engine-onnx-is-fifo", lambda d: ["build-engine", "--onnx", str(d / "m.onnx")], "m.onnx is not a regular file",
         setup=lambda d: os.mkfifo(d / "m.onnx")),
    Case("bench-model-is-fifo", lambda d: ["bench", "--model", str(d / "m.onnx")], "m.onnx is not a regular file",
         setup=lambda d: os.mkfifo(d / "m.onnx")),
    Case("inspect-file-is-folder", lambda d: ["inspect", str(d / "e.engine")], "e.engine is a folder", setup=_mkdir("e.engine")),
    Case("package-artifact-broken-link", lambda d: ["package", str(d / "m.onnx"), "--triton", str(d / "repo")], "m.onnx is a broken link",
         setup=lambda d: os.symlink(d / "gone.onnx", d / "m.onnx")),
    Case("run-given-onnx-is-folder", lambda d: ["run", "--onnx", str(d / "m.onnx"), "-o", str(d / "out")], "m.onnx is a folder",
         setup=_mkdir("m.onnx")),
    Case("run-keep-fp-without-int8", lambda d: ["run", "--depth", "20", "--precision", "fp32,fp16", "--keep-fp", "2", "-o", str(d / "out")],
         "--keep-fp applies to INT8 only"),
]

def _link(name: str, target: str, *, hard: bool = False) -> Callable[[Path], None]:
    def setup(d: Path) -> None:
        (d / "sub").mkdir(exist_ok=True)
        (os.link if hard else os.symlink)(d / target, d / "sub" / name)
    return setup


def _foreign_onnx(d: Path) -> None:
    """An ONNX classifier rtdeploy did not write (no manifest)."""
    import onnx
    from tiny_graphs import huge_activation_model

    onnx.save(huge_activation_model(), str(d / "f.onnx"))


def _packaged(d: Path) -> None:
    _exported()(d)
    from rtdeploy import api

    api.package(d / "m.onnx", triton=d / "repo", kind="cpu")


def _empty_checkpoint(d: Path) -> None:
    (d / "w.pth").write_bytes(b"checkpoint")


# Issue 22: outputs onto inputs through every path (the output guard), and options that would be
# ignored (the mode rule). Each failed on the code before: exit 0 and a file overwritten, or the option
# ignored. tests/test_adversarial_properties.py draws more of both from generators.
GUARDED = [
    Case("bench-markdown-onto-the-timed-model", lambda d: ["bench", "--model", M(d), "--markdown", M(d)], "named like a model file",
         setup=_exported()),
    Case("bench-markdown-onto-the-model-manifest", lambda d: ["bench", "--model", M(d), "--markdown", M(d) + ".json"],
         "named like a model file or its manifest", setup=_exported()),
    Case("bench-json-onto-the-parent-manifest", lambda d: ["bench", "--model", str(d / "m.int8.onnx"), "--json", M(d) + ".json"],
         "or its manifest", setup=_both(_exported(), _quantized)),
    Case("bench-markdown-onto-a-link-to-the-model", lambda d: ["bench", "--model", M(d), "--markdown", str(d / "sub" / "report.md")],
         "would overwrite the input itself", setup=_both(_exported(), _link("report.md", "m.onnx"))),
    Case("quantize-output-onto-a-calibration-image", lambda d: ["quantize", M(d), "--int8", "--calib-dir", str(d / "imgs"),
                                                                  "-o", str(d / "imgs" / "ok0.png")],
         "would overwrite ok0.png in the input folder", setup=_both(_exported(), _images("imgs", good=2))),
    Case("quantize-trt-cache-onto-a-calibration-image", lambda d: ["quantize", M(d), "--int8", "--calib-dir", str(d / "imgs"),
                                                                     "--trt-cache", str(d / "imgs" / "ok1.png")],
         "would overwrite ok1.png in the input folder", setup=_both(_exported(), _images("imgs", good=2))),
    Case("quantize-output-through-a-hard-link", lambda d: ["quantize", M(d), "--fp16", "-o", str(d / "sub" / "h.onnx")],
         "would overwrite the input itself", setup=_both(_exported(), _link("h.onnx", "m.onnx", hard=True))),
    Case("quantize-output-through-dotdot", lambda d: ["quantize", M(d), "--fp16", "-o", str(d / "imgs" / ".." / "m.onnx")],
         "would overwrite the input itself", setup=_both(_exported(), _mkdir("imgs"))),
    Case("quantize-output-and-trt-cache-one-file", lambda d: ["quantize", M(d), "--int8", "-o", str(d / "q.onnx"),
                                                               "--trt-cache", str(d / "q.onnx")],
         "which --trt-cache also writes", setup=_exported()),
    Case("validate-json-through-a-link-to-the-ancestor-manifest", lambda d: ["validate", str(d / "m.int8.onnx"), "--json",
                                                                              str(d / "sub" / "r.json")],
         "would overwrite the manifest of m.onnx", setup=_both(_exported(), _quantized, _link("r.json", "m.onnx.json"))),
    Case("import-output-onto-another-artifact-manifest", lambda d: ["import", str(d / "f.onnx"), "--preprocess", "none",
                                                                     "-o", M(d) + ".json"],
         "would overwrite the manifest of m.onnx", setup=_both(_exported(), _foreign_onnx)),
    Case("build-engine-timing-cache-onto-the-onnx", lambda d: ["build-engine", "--onnx", M(d), "--fp32", "--timing-cache", M(d)],
         "would overwrite the input itself", setup=_exported()),
    Case("package-force-deletes-another-version", lambda d: ["package", M(d), "--triton", str(d / "repo"), "--kind", "cpu", "--force",
                                                             "--version", "2"],
         "would replace", setup=_packaged),
    Case("run-no-bench-rebench", lambda d: ["run", "--depth", "20", "-o", str(d / "out"), "--no-bench", "--rebench"],
         "--rebench does nothing with --no-bench", exit_code=1),
    Case("run-no-bench-force-bench", lambda d: ["run", "--depth", "20", "-o", str(d / "out"), "--no-bench", "--force", "bench"],
         "--force bench does nothing with --no-bench"),
    Case("run-force-a-stage-twice", lambda d: ["run", "--depth", "20", "-o", str(d / "out"), "--force", "export,export"],
         "names 'export' twice"),
    Case("run-onnx-with-weights", lambda d: ["run", "--onnx", M(d), "--weights", str(d / "w.pth"), "-o", str(d / "out")],
         "--weights", setup=_both(_exported(), _empty_checkpoint)),
    Case("run-onnx-with-num-classes", lambda d: ["run", "--onnx", M(d), "--num-classes", "100", "-o", str(d / "out")],
         "--num-classes 100 does nothing with --onnx", setup=_exported()),
    Case("bench-given-model-with-image-size", lambda d: ["bench", "--model", M(d), "--image-size", "64"],
         "--image-size 64 does nothing with --model m.onnx", setup=_exported()),
    Case("bench-given-model-with-precision", lambda d: ["bench", "--model", M(d), "--precision", "int8"],
         "does nothing with --model m.onnx", setup=_exported()),
    Case("quantize-trt-version-without-trt-cache", lambda d: ["quantize", M(d), "--int8", "--trt-version", "10030"],
         "--trt-version 10030 does nothing without --trt-cache", setup=_exported()),
    Case("quantize-method-with-from-trt-cache", lambda d: ["quantize", M(d), "--int8", "--from-trt-cache", str(d / "c.cache"),
                                                           "--method", "max"],
         "--method max does nothing with --from-trt-cache", setup=_both(_exported(), _write("c.cache", b"TRT-8601-EntropyCalibration2\n"))),
    Case("quantize-consumer-mse-for-the-cpu-target", lambda d: ["quantize", M(d), "--int8", "--target", "onnxruntime-cpu",
                                                                "--method", "consumer-mse"],
         "calibrates tensorrt only, not --target onnxruntime-cpu", setup=_exported()),
    Case("validate-engine-with-provider", lambda d: ["validate", str(d / "m.plan"), "--provider", "cuda"],
         "--provider cuda does nothing with", setup=_fake_engine),
]

def _imported(make_model: str, *, calib: tuple | None = None) -> Callable[[Path], None]:
    """m.onnx built by ``tiny_graphs.<make_model>()``, adopted with ``rtdeploy import`` (and a
    calibration tensor file c.npy of random pixels of shape ``calib``)."""
    def setup(d: Path) -> None:
        import tiny_graphs
        from rtdeploy import api

        tiny_graphs.save(getattr(tiny_graphs, make_model)(), d / "m.onnx")
        api.import_model(d / "m.onnx", preprocess="none")
        if calib is not None:
            import numpy as np

            np.save(d / "c.npy", np.random.default_rng(0).random(calib, dtype=np.float32))
    return setup


def _saved(make_model: str, name: str) -> Callable[[Path], None]:
    """``tiny_graphs.<make_model>()`` saved as ``name`` (no manifest)."""
    def setup(d: Path) -> None:
        import tiny_graphs

        tiny_graphs.save(getattr(tiny_graphs, make_model)(), d / name)
    return setup


def _huge_input(d: Path) -> None:
    """A classifier declaring a 1x3x100000x100000 input (120 GB): bench used to allocate it ("Unable to allocate")."""
    import tiny_graphs
    from rtdeploy import api

    tiny_graphs.save(tiny_graphs.classifier(batch=1, size=100_000), d / "m.onnx")
    api.import_model(d / "m.onnx", preprocess="none")


def _named_size_imported_at(size: int) -> Callable[[Path], None]:
    """A classifier whose H and W are named ('H'), imported with ``--size size``."""
    def setup(d: Path) -> None:
        import tiny_graphs
        from rtdeploy import api

        tiny_graphs.save(tiny_graphs.classifier(size="H"), d / "m.onnx")
        api.import_model(d / "m.onnx", preprocess="none", size=size)
    return setup


def _fp16_child(d: Path) -> None:
    from rtdeploy import api

    api.quantize(d / "m.onnx", fp16=True, output=d / "m.fp16.onnx")


def _linked_folder_twice(d: Path) -> None:
    """calib/a holds an image; calib/b is a link to calib/a (its images would be read twice)."""
    (d / "calib").mkdir()
    _images("calib/a", good=2)(d)
    os.symlink(d / "calib" / "a", d / "calib" / "b")


# Issue 22: import adopts only foreign files; library errors and declared sizes end in one line at the stage;
# a calibration folder reached twice through a link is refused.
ISSUE22 = [
    Case("import-rtdeploy-export", lambda d: ["import", M(d), "--preprocess", "cifar"], "m.onnx is rtdeploy's own FP32 export of resnet20",
         setup=_exported()),
    Case("import-rtdeploy-fp16-child", lambda d: ["import", str(d / "m.fp16.onnx"), "--preprocess", "cifar"],
         "m.fp16.onnx is rtdeploy's own FP16 model", setup=_both(_exported(), _fp16_child)),
    Case("import-rtdeploy-fp16-child-without-manifest", lambda d: ["import", str(d / "m.fp16.onnx"), "--preprocess", "cifar"],
         "holds float16 weights, so it is an FP16 model", setup=_both(_exported(), _fp16_child, _unlink("m.fp16.onnx.json"))),
    Case("quantize-int8-custom-domain-op", lambda d: ["quantize", M(d), "--int8", "--calib-dir", str(d / "c.npy"), "--no-stats-cache"],
         "quantize stopped in onnxruntime", setup=_imported("custom_domain_classifier", calib=(4, 3, 8, 8))),
    Case("quantize-fp16-custom-domain-op", lambda d: ["quantize", M(d), "--fp16", "--calib-dir", str(d / "c.npy")],
         "quantize stopped in onnxruntime", setup=_imported("custom_domain_classifier", calib=(4, 3, 8, 8))),
    Case("validate-declared-activation-too-large", lambda d: ["validate", M(d), "--batch", "2"], "by the shapes its graph declares",
         setup=_imported("wide_activation_model")),
    Case("quantize-declared-activation-too-large", lambda d: ["quantize", M(d), "--fp16"], "by the shapes its graph declares",
         setup=_imported("wide_activation_model")),
    Case("bench-declared-activation-too-large", lambda d: ["bench", "--model", M(d), "--iterations", "1", "--repeats", "1", "--warmup", "0"],
         "by the shapes its graph declares", setup=_imported("wide_activation_model")),
    Case("bench-declared-input-too-large", lambda d: ["bench", "--model", M(d), "--iterations", "1", "--repeats", "1", "--warmup", "0"],
         "by the shapes its graph declares", setup=_huge_input),
    Case("quantize-named-size-imported-too-large", lambda d: ["quantize", M(d), "--int8", "--no-stats-cache"],
         "for 3x100000x100000 inputs", setup=_named_size_imported_at(100_000)),
    Case("bench-named-size-imported-too-large", lambda d: ["bench", "--model", M(d), "--iterations", "1", "--repeats", "1", "--warmup", "0"],
         "for 3x100000x100000 inputs", setup=_named_size_imported_at(100_000)),
    Case("validate-reference-declares-too-much", lambda d: ["validate", M(d), "--reference", str(d / "w.onnx")],
         "against w.onnx needs at least", setup=_both(_imported("classifier"), _saved("wide_activation_model", "w.onnx"))),
    Case("quantize-calib-folder-linked-twice", lambda d: ["quantize", M(d), "--int8", "--calib-dir", str(d / "calib"), "--no-stats-cache"],
         "through a link, so", setup=_both(_exported(), _linked_folder_twice)),
]

ALL_CASES = CASES + GROWN + CLOSING + ISSUE22 + GUARDED


def _snapshot(d: Path) -> dict[str, str]:
    """Every path under ``d`` with a hash of its bytes (folders, links, FIFOs by kind), so a file
    that was changed in place shows as well as one left behind."""
    out = {}
    for p in sorted(d.rglob("*")):
        key = str(p.relative_to(d))
        if p.is_symlink():
            out[key] = "link->" + os.readlink(p)
        elif p.is_dir():
            out[key] = "dir"
        elif not p.is_file():  # a FIFO or socket: reading it would block the test
            out[key] = "special"
        else:
            out[key] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


@pytest.fixture(scope="module")
def cli_runner():
    _register()
    return CliRunner()


@pytest.mark.parametrize("case", ALL_CASES, ids=[c.id for c in ALL_CASES])
def test_bad_input(case: Case, tmp_path: Path, cli_runner, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a default output path would land here, and show in the snapshot
    case.setup(tmp_path)
    before = _snapshot(tmp_path)
    result = cli_runner.invoke(cli, case.argv(tmp_path), catch_exceptions=False)
    stderr = result.stderr.strip()
    assert result.exit_code != 0, f"exit 0 for a bad input; stdout: {result.stdout}"
    if case.exit_code is not None:
        assert result.exit_code == case.exit_code, result.stderr
    else:
        assert result.exit_code != USAGE, f"a library check exited as a usage error: {result.stderr}"
    assert "Traceback" not in result.output
    if case.stdout_clean:
        assert result.stdout == "", f"stdout is not clean: {result.stdout!r}"
    lines = message_lines(stderr)  # the phase lines of a pipe are progress, not messages
    assert len(lines) == 1, f"expected one line on stderr, got: {stderr!r}"
    assert lines[0].startswith(("error:", "Error:")), lines[0]
    assert case.needle in lines[0], lines[0]
    assert _snapshot(tmp_path) == before, "the failed command left files behind"


# Cases per command when issue 11 was filed; the grown matrix must at least double each.
CASES_BEFORE = {"export": 10, "validate": 6, "quantize": 8, "summary": 1, "bench": 5, "build-engine": 1, "package": 2, "run": 2}


def _command_of(case: Case) -> str:
    argv = case.argv(Path("/nonexistent"))
    return "usage" if argv[0] not in CASES_BEFORE and argv[0] != "doctor" else argv[0]


def test_matrix_is_large_enough():
    counts = {}
    for case in ALL_CASES:
        counts[_command_of(case)] = counts.get(_command_of(case), 0) + 1
    for command, before in CASES_BEFORE.items():
        assert counts.get(command, 0) >= 2 * before, f"{command}: {counts.get(command, 0)} cases, fewer than twice {before}"
    assert counts.get("doctor", 0) >= 2
    assert len(ALL_CASES) >= 2 * len(CASES)


# --- process-level failures --------------------------------------------------------------------

def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "rtdeploy.cli.main", *args]


def _no_partials(d: Path) -> list[str]:
    return [p.name for p in d.iterdir() if p.name.endswith(".part") or p.name.startswith(".")]


def _held(args: tuple[str, ...], point: str, cwd: Path) -> subprocess.Popen:
    """Start the CLI and return once it says it waits at ``point`` (``RTDEPLOY_TEST_HOLD``): the
    signal sent next lands there whatever the machine's load, never before or after the step."""
    proc = subprocess.Popen(_cli(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=cwd,
                            env={**os.environ, "RTDEPLOY_TEST_HOLD": point})
    for line in proc.stderr:
        if line.startswith("rtdeploy-test-hold: "):
            return proc
    proc.wait(timeout=60)
    pytest.fail(f"the command ended (rc {proc.returncode}) before it reached {point!r}")


@pytest.mark.slow
def test_sigint_during_export_leaves_nothing(tmp_path):
    proc = _held(("export", "--depth", "20", "-o", str(tmp_path / "r20.onnx")), "write", tmp_path)
    assert _no_partials(tmp_path), "the export is inside its write: a .part file exists"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert err.strip().splitlines()[-1].startswith("error: interrupted")
    assert "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_sigint_during_quantize_leaves_nothing(tmp_path):
    from rtdeploy import api

    api.export(depth=20, output=tmp_path / "m.onnx")
    before = sorted(p.name for p in tmp_path.iterdir())
    proc = _held(("quantize", str(tmp_path / "m.onnx"), "--int8", "--no-stats-cache", "-o", str(tmp_path / "q.onnx")), "write", tmp_path)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def _limit_file_size(limit: int):
    def apply():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit then fails with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


@pytest.mark.slow
def test_disk_full_during_export_leaves_nothing(tmp_path):
    out = tmp_path / "r20.onnx"
    proc = subprocess.run(_cli("export", "--depth", "20", "-o", str(out)), capture_output=True, text=True,
                          preexec_fn=_limit_file_size(200_000), timeout=300)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error:") and ("space" in last or "too large" in last or "write" in last), last
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_two_exports_to_one_path_leave_a_consistent_pair(tmp_path):
    out = tmp_path / "m.onnx"
    procs = [subprocess.Popen(_cli("export", "--depth", "20", "--num-classes", str(n), "-o", str(out)),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for n in (10, 7)]
    for p in procs:
        p.communicate(timeout=300)
        assert p.returncode == 0
    manifest = json.loads(manifest_path(out).read_text())
    assert manifest["sha256"] == sha256_file(out), "the ONNX and its manifest come from different runs"
    import onnx

    model = onnx.load(str(out))
    classes = model.graph.output[0].type.tensor_type.shape.dim[1].dim_value
    assert classes == manifest["model"]["num_classes"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx", "m.onnx.json"]


@pytest.mark.slow
def test_fixed_batch_models_validate_and_quantize_in_batches_of_their_own_size(tmp_path, cli_runner):
    # Issue 10 lifted the old refusal: calibration now feeds a fixed-batch model chunks of its own
    # size (tests/test_foreign_models.py checks the statistics equal the dynamic export's).
    import onnx

    from rtdeploy import api

    api.export(depth=20, batch=3, output=tmp_path / "b3.onnx")
    ok = cli_runner.invoke(cli, ["validate", str(tmp_path / "b3.onnx"), "--samples", "8"])
    assert ok.exit_code == 0, ok.output  # 8 samples through a batch-3 model: chunks of 3, last one padded
    q = cli_runner.invoke(cli, ["quantize", str(tmp_path / "b3.onnx"), "--int8", "--no-stats-cache"])
    assert q.exit_code == 0, q.output
    dims = onnx.load(str(tmp_path / "b3.int8.onnx")).graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_value == 3


def test_reference_of_another_input_size_is_one_line(tmp_path, cli_runner):
    from rtdeploy import api

    api.export(depth=20, output=tmp_path / "a.onnx")
    api.export(depth=20, image_size=40, output=tmp_path / "b.onnx")
    bad = cli_runner.invoke(cli, ["validate", str(tmp_path / "a.onnx"), "--reference", str(tmp_path / "b.onnx")])
    assert bad.exit_code != 0 and "Traceback" not in bad.output
    (line,) = message_lines(bad.stderr)
    assert line.startswith("error: onnxruntime could not run b.onnx")


def test_first_line_of_an_error_with_no_message_is_its_type():
    from rtdeploy.errors import first_line

    assert first_line(ValueError("")) == "ValueError"
    assert first_line(RuntimeError("  one\ntwo")) == "one"
    assert first_line(RuntimeError("x" * 300), 10) == "x" * 10
