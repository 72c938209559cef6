"""Install lines that work on today's fleets: one extra per CUDA major, and doctor saying which fits the driver.

Unbounded ``tensorrt>=8.6`` resolves to TensorRT 11.4 for CUDA 13 and ``cuda-python>=12.0`` to 13.x (PyPI:
tensorrt 11.4.0.106 is the CUDA 13 metapackage; cuda-python 13.x binds CUDA 13), which do not run on the
CUDA 12 drivers of most H100/H200 fleets: a driver runs builds for its CUDA version and earlier only
(CUDA Compatibility guide; cuda-python 13 on a 12.x driver: cudaErrorInsufficientDriver).
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from rtdeploy.trt.driver import EXTRAS, advise

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def extras() -> dict[str, list[str]]:
    return tomllib.loads(PYPROJECT.read_text())["project"]["optional-dependencies"]


def bounds(requirement: str) -> tuple[str, int, int]:
    """``"tensorrt-cu12>=10.0.1,<12"`` -> (name, lowest major allowed, first major excluded)."""
    m = re.fullmatch(r"([A-Za-z0-9_.-]+)>=(\d+)[\d.]*,<(\d+)", requirement.replace(" ", ""))
    assert m, f"{requirement}: needs a lower and an upper bound"
    return m.group(1), int(m.group(2)), int(m.group(3))


@pytest.mark.parametrize("cuda", sorted(EXTRAS))
def test_each_cuda_major_has_an_extra_bounded_to_it(cuda):
    deps = {bounds(r)[0]: bounds(r)[1:] for r in extras()[EXTRAS[cuda]]}
    assert set(deps) == {f"tensorrt-cu{cuda}", "cuda-python"}
    assert deps["cuda-python"] == (cuda, cuda + 1), "cuda-python's major is the CUDA major it binds"
    low, high = deps[f"tensorrt-cu{cuda}"]
    assert low >= 10 and high <= 12, "TensorRT majors this rtdeploy speaks (10.x and 11.x on PyPI), and no later"


def test_the_plain_gpu_extra_is_the_one_every_recent_driver_runs():
    assert extras()["gpu"] == ["rtdeploy[gpu-cu12]"]


@pytest.mark.parametrize("driver, extra, words", [
    (12020, "gpu-cu12", "CUDA 12.2: pip install \"rtdeploy[gpu-cu12]\""),
    (12090, "gpu-cu12", "gpu-cu13 needs a CUDA 13 driver (R580+)"),
    (13000, "gpu-cu13", "CUDA 13.0: pip install \"rtdeploy[gpu-cu13]\""),
    (11040, None, "CUDA 11.4 only; TensorRT's pip wheels need CUDA 12 or later: update the driver (R525+)"),
    (None, None, "no NVIDIA driver found"),
])
def test_advice_follows_the_drivers_cuda_version(driver, extra, words):
    advice = advise(driver)
    assert advice.extra == extra and words in advice.line
    if extra is not None:
        assert extra in extras()


def test_jetson_gets_jetpacks_tensorrt_not_a_pip_extra():
    advice = advise(11040, jetson=True)
    assert advice.extra is None and "JetPack's TensorRT" in advice.line and "cuda-python 11.8" in advice.line


def test_doctor_says_which_extra_fits(monkeypatch):
    from click.testing import CliRunner

    from rtdeploy.cli.main import _register, cli

    monkeypatch.setattr("rtdeploy.trt.driver.driver_cuda_version", lambda: 12040)
    monkeypatch.setattr("rtdeploy.trt.driver.is_jetson", lambda: False)
    _register()
    out = CliRunner().invoke(cli, ["doctor"])
    assert out.exit_code == 0 and 'TensorRT install: the driver supports CUDA 12.4: pip install "rtdeploy[gpu-cu12]"' in out.output
    import json

    data = json.loads(CliRunner().invoke(cli, ["doctor", "--json"]).output)
    assert data["gpu_extra"] == {"driver_cuda": "12.4", "extra": "gpu-cu12", "line": advise(12040).line}


def test_the_driver_is_read_without_cuda_python_or_tensorrt():
    """libcuda answers itself (None where it does not load, as on the CPU machines): nothing is imported to ask it."""
    import sys

    from rtdeploy.trt.driver import driver_cuda_version

    before = set(sys.modules)
    version = driver_cuda_version()
    assert version is None or version >= 1000
    assert not {m for m in set(sys.modules) - before if m.startswith(("cuda", "tensorrt"))}
