"""The bad-input matrix: every failure a user can reach, across all commands.

Each row runs the real command line and asserts three things: one actionable line on stderr
(``error: ...``, no traceback), the exit code, and that no partial or stray file is left in the
output folder. Process-level failures (Ctrl-C, a full disk, two runs writing one path) run the CLI
in a subprocess.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pytest
from click.testing import CliRunner

from rtdeploy.artifacts import manifest_path, sha256_file
from rtdeploy.cli.main import _register, cli

REPO = Path(__file__).resolve().parents[1]


@dataclass
class Case:
    id: str
    argv: Callable[[Path], list[str]]
    needle: str
    exit_code: int | None = None  # None: any non-zero
    setup: Callable[[Path], None] = lambda d: None
    env: dict = field(default_factory=dict)


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


def _exported(name: str = "m.onnx", depth: int = 20, corrupt: bool = False) -> Callable[[Path], None]:
    def setup(d: Path) -> None:
        from rtdeploy import api

        api.export(depth=depth, output=d / name)
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
    manifest_path(d / "m.plan").write_text(json.dumps(
        {"format": 1, "kind": "engine", "sha256": sha256_file(d / "m.plan"), "parent": {"path": str(d / "m.onnx")},
         "profile": {"min": 1, "opt": 1, "max": 4}}))


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


def _snapshot(d: Path) -> set[str]:
    return {str(p.relative_to(d)) for p in d.rglob("*")}


@pytest.fixture(scope="module")
def cli_runner():
    _register()
    return CliRunner()


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Case, tmp_path: Path, cli_runner):
    case.setup(tmp_path)
    before = _snapshot(tmp_path)
    result = cli_runner.invoke(cli, case.argv(tmp_path), catch_exceptions=False)
    stderr = result.stderr.strip()
    assert result.exit_code != 0, f"exit 0 for a bad input; stdout: {result.stdout}"
    if case.exit_code is not None:
        assert result.exit_code == case.exit_code
    assert "Traceback" not in result.output
    lines = [ln for ln in stderr.splitlines() if ln.strip() and not ln.startswith(("INFO", "WARNING", "DEBUG"))]
    assert len(lines) == 1, f"expected one line on stderr, got: {stderr!r}"
    assert lines[0].startswith(("error:", "Error:")), lines[0]
    assert case.needle in lines[0], lines[0]
    assert _snapshot(tmp_path) == before, "the failed command left files behind"


def test_matrix_is_large_enough():
    assert len(CASES) + 5 >= 25  # five process-level cases below


# --- process-level failures --------------------------------------------------------------------

def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "rtdeploy.cli.main", *args]


def _no_partials(d: Path) -> list[str]:
    return [p.name for p in d.iterdir() if p.name.endswith(".part") or p.name.startswith(".")]


@pytest.mark.slow
def test_sigint_during_export_leaves_nothing(tmp_path):
    out = tmp_path / "r152.onnx"
    proc = subprocess.Popen(_cli("export", "--depth", "152", "-o", str(out)), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not _no_partials(tmp_path) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)  # wait until the export has started writing
    assert proc.poll() is None, "export finished before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130
    assert err.strip().splitlines()[-1].startswith("error: interrupted")
    assert "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_sigint_during_quantize_leaves_nothing(tmp_path):
    from rtdeploy import api

    api.export(depth=152, image_size=96, output=tmp_path / "m.onnx")
    before = sorted(p.name for p in tmp_path.iterdir())
    proc = subprocess.Popen(_cli("quantize", str(tmp_path / "m.onnx"), "--int8", "--no-stats-cache", "-o", str(tmp_path / "q.onnx")),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(4.0)  # imports, then calibration has started
    assert proc.poll() is None, "quantize finished before it could be interrupted"
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


def test_disk_full_during_export_leaves_nothing(tmp_path):
    out = tmp_path / "r20.onnx"
    proc = subprocess.run(_cli("export", "--depth", "20", "-o", str(out)), capture_output=True, text=True,
                          preexec_fn=_limit_file_size(200_000), timeout=300)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error:") and ("space" in last or "too large" in last or "write" in last), last
    assert list(tmp_path.iterdir()) == []


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
    assert bad.stderr.startswith("error: onnxruntime could not run b.onnx") and bad.stderr.strip().count("\n") == 0


def test_first_line_of_an_error_with_no_message_is_its_type():
    from rtdeploy.errors import first_line

    assert first_line(ValueError("")) == "ValueError"
    assert first_line(RuntimeError("  one\ntwo")) == "one"
    assert first_line(RuntimeError("x" * 300), 10) == "x" * 10
