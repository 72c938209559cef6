"""rtdeploy run: stages, re-run reuse, --force, and the report on a CPU-only machine."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rtdeploy import api
from rtdeploy.files import sha256_file
from rtdeploy.lineage import derivation, reuse_verdict


def statuses(report):
    return {s.name: s.status for s in report.stages}


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "r20"
    report = api.run(depth=20, outdir=out, precision="fp32", bench_duration="0.05s", samples=8)
    return out, report


def test_run_writes_report_and_artifacts(first_run):
    out, report = first_run
    st = statuses(report)
    assert st["export"] == "made" and st["validate-fp32"] == "made" and st["bench"] == "made"
    for name in ("resnet20.onnx", "resnet20.onnx.json", "validate-fp32.json", "bench.json", "report.md", "report.json"):
        assert (out / name).is_file(), name
    data = json.loads((out / "report.json").read_text())
    assert data["validation"][0]["precision"] == "fp32" and data["validation"][0]["verdict"] == "pass"
    assert "## Validation" in (out / "report.md").read_text()


def test_cpu_only_machine_says_engines_need_tensorrt(first_run):
    pytest.importorskip("rtdeploy.trt.loader")
    from rtdeploy.trt.loader import availability

    if availability()["ok"]:
        pytest.skip("TensorRT and a GPU are present here; this test is about machines without them")
    _, report = first_run
    engine = next(s for s in report.stages if s.name == "build-engine")
    assert engine.status == "skipped" and "TensorRT" in engine.detail
    assert "## Not run here" in (report.outdir / "report.md").read_text()


def test_rerun_reuses_unchanged_stages_and_force_redoes(first_run):
    out, _ = first_run
    again = api.run(depth=20, outdir=out, precision="fp32", bench_duration="0.05s", samples=8)
    assert statuses(again)["export"] == "reused"
    assert statuses(again)["validate-fp32"] == "reused"
    forced = api.run(depth=20, outdir=out, precision="fp32", bench=False, samples=8, force=True)
    assert statuses(forced)["export"] == "made"


def test_changed_report_or_input_invalidates_its_record(tmp_path):
    a = tmp_path / "a.bin"
    a.write_bytes(b"one")
    out = tmp_path / "out.bin"
    out.write_bytes(b"result")
    wanted = derivation("s", {"x": 1}, {"parent": sha256_file(a)})
    recorded = {**wanted, "output_sha256": sha256_file(out)}
    assert reuse_verdict(out, wanted, recorded)[0]
    assert reuse_verdict(out, derivation("s", {"x": 2}, {"parent": sha256_file(a)}), recorded) == (False, "options changed: x 1 -> 2")
    out.write_bytes(b"tampered")
    assert reuse_verdict(out, wanted, recorded) == (False, "the file changed since it was recorded")
    out.write_bytes(b"result")
    a.write_bytes(b"two")
    assert reuse_verdict(out, derivation("s", {"x": 1}, {"parent": sha256_file(a)}), recorded) == (False, "its parent changed")


def test_default_and_nested_outdirs_are_created(tmp_path, monkeypatch):
    from rtdeploy.pipeline.options import RunConfig
    from rtdeploy.pipeline.run import _prepare_outdir

    monkeypatch.chdir(tmp_path)
    assert _prepare_outdir(RunConfig(depth=20)) == Path("rtdeploy-out/resnet20")
    assert (tmp_path / "rtdeploy-out" / "resnet20").is_dir()
    assert _prepare_outdir(RunConfig(depth=20, outdir=tmp_path / "a" / "b")).is_dir()


def test_outdir_under_a_file_is_refused(tmp_path):
    from rtdeploy.errors import OutputError
    from rtdeploy.pipeline.options import RunConfig
    from rtdeploy.pipeline.run import _prepare_outdir

    (tmp_path / "f").write_text("x")
    with pytest.raises(OutputError, match="is a file"):
        _prepare_outdir(RunConfig(depth=20, outdir=tmp_path / "f" / "out"))


def test_failed_validation_is_not_reused_on_rerun(tmp_path, monkeypatch):
    from rtdeploy.validate.report import ValidationReport

    monkeypatch.setattr(ValidationReport, "passed", property(lambda self: False))
    monkeypatch.setattr(ValidationReport, "failure_message", lambda self: "forced failure")
    for _ in range(2):
        report = api.run(depth=20, outdir=tmp_path / "r", precision="fp32", bench=False, samples=4)
        assert statuses(report)["validate-fp32"] == "failed"
        assert [s.name for s in report.failed] == ["validate-fp32"]


@pytest.mark.slow
def test_failed_stage_does_not_hand_a_stale_artifact_on(tmp_path):
    out = tmp_path / "r"
    api.run(depth=20, outdir=out, precision="fp32,int8", bench=False, samples=4, calib_size=4)
    assert (out / "resnet20.int8.onnx").exists()
    (tmp_path / "empty").mkdir()  # exists, so only the quantize stage finds it holds no images
    again = api.run(depth=20, outdir=out, precision="fp32,int8", bench=False, samples=4, calib_dir=tmp_path / "empty")
    st = statuses(again)
    assert st["quantize-int8"] == "failed"
    assert "validate-int8" not in st, "the previous run's INT8 model was validated as if the failed stage had made it"


def test_missing_weights_are_not_replaced_by_an_earlier_export(tmp_path):
    out = tmp_path / "r"
    api.run(depth=20, outdir=out, precision="fp32", bench=False, samples=4)
    (tmp_path / "nope.pth").write_bytes(b"not a checkpoint")  # a file, so only the export stage finds it unreadable
    again = api.run(depth=20, outdir=out, precision="fp32", bench=False, samples=4, weights=tmp_path / "nope.pth")
    assert statuses(again)["export"] == "failed"
    assert "nope.pth" in again.failed[0].detail


@pytest.mark.slow
def test_changing_calibration_options_keeps_the_export(tmp_path):
    out = tmp_path / "r"
    api.run(depth=20, outdir=out, precision="fp32,int8", bench=False, samples=4, calib_size=4)
    again = api.run(depth=20, outdir=out, precision="fp32,int8", bench=False, samples=4, calib_size=6)
    st = statuses(again)
    assert st["export"] == "reused" and st["validate-fp32"] == "reused"
    assert st["quantize-int8"] == "made"
