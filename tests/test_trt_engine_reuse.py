"""Engine reuse (rtdeploy.make_or_reuse.engine) follows TensorRT's portability rule, not only the ONNX and options.

TensorRT: a plan loads only on the release that built it (a version-compatible one also on later ones),
on GPUs of the compute capability it was built for (unless hardware-compatible) and on the platform that
built it (engine-compatibility page of the 11.1 developer guide,
https://docs.nvidia.com/deeplearning/tensorrt/11.1.0/inference-library/engine-compatibility.html; support
matrix: plans are not portable across platforms; ../shared/reference/trt-engine-graphs/README.md rule (e)).
So after ``pip install -U tensorrt``, on another GPU or in a folder shared with another machine, the plan
must be rebuilt: the old code reused it (same ONNX, same options) and ``run``/``bench`` then stopped with
"rebuild it here". No TensorRT is needed: the build stage and this machine's target are stand-ins.
"""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import pytest

from manifest_fakes import write_engine_manifest
from rtdeploy.artifacts import read_manifest
from rtdeploy.trt.options import BuildOptions, build_derivation, engine_target
from tiny_graphs import huge_activation_model, write_fp32_artifact

HERE = engine_target("10.3.0", "8.7", "linux-aarch64")


@pytest.fixture
def machine(monkeypatch, tmp_path):
    """This machine's TensorRT/GPU/platform (``machine.target``) and a build stage that records what it built."""
    state = SimpleNamespace(target=HERE, builds=[])

    def build_engine(opts):
        from rtdeploy.make_or_reuse import engine_wanted

        state.builds.append(opts.output)
        opts.output.write_bytes(b"plan for " + state.target.encode())
        write_engine_manifest(opts.output, opts.onnx, precision=opts.precision, model=read_manifest(opts.onnx)["model"],
                              derivation=engine_wanted(opts, opts.precision))
        return SimpleNamespace(path=opts.output)

    monkeypatch.setattr("rtdeploy.trt.stage.target_here", lambda hardware_compatibility=None: state.target)
    monkeypatch.setattr("rtdeploy.trt.build_engine", build_engine)
    state.onnx = write_fp32_artifact(huge_activation_model(), tmp_path / "m.onnx")
    return state


@pytest.mark.parametrize("elsewhere", [engine_target("10.13.3.9", "8.7", "linux-aarch64"),  # pip install -U tensorrt
                                       engine_target("10.3.0", "9.0", "linux-aarch64"),     # another GPU
                                       engine_target("10.3.0", "8.7", "linux-x86_64")])     # a shared folder, another platform
def test_a_plan_built_for_another_target_is_rebuilt_not_reused(machine, elsewhere):
    from rtdeploy.make_or_reuse import engine

    opts = BuildOptions(onnx=machine.onnx, precision="fp32")
    first = engine(opts)
    assert first.made and engine(opts).made is False  # same machine: reused
    machine.target = elsewhere
    again = engine(opts)
    assert again.made, "a plan built for another TensorRT, GPU or platform was reused"
    assert again.why == f"it was built for {HERE}; this machine is {elsewhere}"
    assert read_manifest(again.path)["derivation"]["inputs"]["target"] == elsewhere
    assert len(machine.builds) == 2


def test_a_plan_from_an_rtdeploy_that_recorded_no_target_is_rebuilt(machine):
    from rtdeploy.files import sha256_file
    from rtdeploy.make_or_reuse import engine

    opts = BuildOptions(onnx=machine.onnx, precision="fp32")
    out = engine(opts).path
    old = build_derivation(dataclasses.replace(opts, output=out), "fp32", sha256_file(machine.onnx), None, HERE)
    del old["inputs"]["target"]
    write_engine_manifest(out, machine.onnx, precision="fp32", model=read_manifest(machine.onnx)["model"], derivation=old)
    again = engine(opts)
    assert again.made and "an unrecorded TensorRT, GPU and platform" in again.why


def test_the_target_names_what_ties_a_plan():
    assert engine_target("11.4.0.106", "9.0", "linux-x86_64") == "TensorRT 11.4.0.106, compute 9.0, linux-x86_64"
    # an ampere+ plan runs on any Ampere or newer GPU: the build GPU is not part of what ties it
    assert engine_target("10.13.3.9", "8.0", "linux-x86_64", "ampere+") == engine_target("10.13.3.9", "9.0", "linux-x86_64", "ampere+")
    assert engine_target("10.13.3.9", "8.0", "linux-x86_64", "same-cc") != engine_target("10.13.3.9", "9.0", "linux-x86_64", "same-cc")
