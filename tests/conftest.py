"""Shared fixtures: the real CIFAR-10 data beside the project, small exported models."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CIFAR_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


# rtdeploy.progress's line per phase, which a command prints on stderr when it is not a terminal
# (a pipe, CliRunner): progress, not a message; the one-line-error checks leave these out.
PHASE_LINE = re.compile(r"\d\d:\d\d:\d\d ")


def message_lines(stderr: str) -> list[str]:
    """The non-empty lines of ``stderr`` less phase lines and log lines (INFO/WARNING/DEBUG)."""
    return [ln for ln in stderr.splitlines()
            if ln.strip() and not PHASE_LINE.match(ln) and not ln.startswith(("INFO", "WARNING", "DEBUG"))]


# Fixtures that reach ../shared/data/cifar10; every test using one (directly or through another
# fixture) is a data test.
DATA_FIXTURES = {"cifar_root", "cifar_weights"}


@pytest.hookimpl(tryfirst=True)  # before -m selects: `-m "not shared_data"` must see the marks
def pytest_collection_modifyitems(config, items):
    """Mark every data test ``shared_data``: those using the CIFAR-10 fixtures and those that skip
    when ../shared (the data and the TensorRT reference outputs beside the repository) is absent."""
    for item in items:
        skips_without_shared = any("../shared" in str(m.kwargs.get("reason", "")) for m in item.iter_markers("skipif"))
        if DATA_FIXTURES & set(getattr(item, "fixturenames", ())) or skips_without_shared:
            item.add_marker(pytest.mark.shared_data)


def _cifar_root() -> Path:
    return Path(os.environ.get("RTDEPLOY_CIFAR10", REPO.parent / "shared" / "data" / "cifar10"))


@pytest.fixture(scope="session")
def cifar_root() -> Path:
    """../shared/data/cifar10 (or $RTDEPLOY_CIFAR10); skips the test when it is absent."""
    root = _cifar_root()
    if not (root / "weights").is_dir() or not (root / "dev").is_dir():
        pytest.skip(f"real CIFAR-10 data not found at {root} (set RTDEPLOY_CIFAR10 or place ../shared/data/cifar10)")
    return root


@pytest.fixture(scope="session")
def cifar_weights(cifar_root: Path):
    """A function depth -> path of the trained CIFAR ResNet checkpoint of that depth."""

    def find(depth: int) -> Path:
        hits = sorted((cifar_root / "weights").glob(f"resnet{depth}-*.th"))
        if not hits:
            pytest.skip(f"no trained ResNet-{depth} weights in {cifar_root / 'weights'}")
        return hits[0]

    return find


@pytest.fixture(scope="session")
def exported(tmp_path_factory):
    """A function (depth, image_size=None, **kw) -> ExportResult, cached per session."""
    from rtdeploy.export import ExportConfig, export_onnx

    cache: dict = {}
    base = tmp_path_factory.mktemp("exported")

    def get(depth: int, image_size: int | None = None, **kw):
        key = (depth, image_size, tuple(sorted(kw.items())))
        if key not in cache:
            out = base / f"r{depth}_{image_size}_{len(cache)}.onnx"
            cache[key] = export_onnx(ExportConfig(depth=depth, output=out, image_size=image_size, **kw))
        return cache[key]

    return get
