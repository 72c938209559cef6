"""A tiny real sweep on the CPU (CIFAR ResNet-20/32, torch and onnxruntime) and its reports.

Only structure and consistency are checked; no timing value is asserted.
"""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from rtdeploy import api
from rtdeploy.bench import schema_path
from rtdeploy.bench.report import markdown, terminal_table

jsonschema = pytest.importorskip("jsonschema", reason="jsonschema is a dev dependency (pip install -e '.[dev]')")


def validate(report: dict) -> None:
    schema = json.loads(schema_path().read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.Draft202012Validator(schema).validate(report)


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """One real sweep: 2 depths x 2 backends, 2 interleaved repeats of 5 iterations, all three reports."""
    out = tmp_path_factory.mktemp("bench")
    result = api.bench(depth="20,32", backend="torch,onnxruntime", precision="fp32", iterations=5, repeats=2,
                       warmup="0", threads=1, workdir=out / "work", json=out / "r.json", markdown=out / "r.md", plot=out / "r.png")
    return result, out


def test_sweep_times_every_supported_combination(sweep):
    result, _ = sweep
    rep = result.report
    ids = [r["id"] for r in rep["results"]]
    assert {"resnet20/torch/fp32/b1", "resnet20/onnxruntime/fp32/b1", "resnet32/torch/fp32/b1", "resnet32/onnxruntime/fp32/b1"} <= set(ids)
    for r in rep["results"]:
        assert len(r["repeats"]) == 2 and all(x["count"] == 5 for x in r["repeats"])
        assert r["host_ms"]["count"] == 10
        assert r["host_ms"]["min"] <= r["repeat_low_ms"] <= r["latency_ms"] <= r["repeat_high_ms"] <= r["host_ms"]["max"]
        assert r["settings"]["threads"] == 1 and r["settings"]["timer"] == "host" and r["settings"]["data_transfers"] is False
        assert r["device_ms"] is None
    onnx = [r for r in rep["results"] if r["backend"] == "onnxruntime"]
    assert all(r["artifact"] and len(r["artifact"]["sha256"]) == 64 for r in onnx)
    assert rep["settings"]["interleaved"] and rep["settings"]["torch_threads"] == 1
    assert rep["environment"]["load_average_start"] is not None and rep["environment"]["load_average_end"] is not None


def test_sweep_scaling_pairs_each_series(sweep):
    rep = sweep[0].report
    fp32 = [s for s in rep["scaling"] if s["precision"] == "fp32"]
    assert sorted((s["backend"], s["depth"]) for s in fp32) == [("onnxruntime", 20), ("onnxruntime", 32), ("torch", 20), ("torch", 32)]
    for s in fp32:
        expected = 1.0 if s["depth"] == 20 else 0.069 / 0.041
        assert s["gmacs_ratio"] == pytest.approx(expected, abs=1e-3)


def test_reports_are_written_and_valid(sweep):
    result, out = sweep
    assert set(result.written) == {out / "r.json", out / "r.md", out / "r.png"}
    data = json.loads((out / "r.json").read_text())
    validate(data)
    assert data["results"] == json.loads(json.dumps(result.report["results"]))
    md = (out / "r.md").read_text()
    assert md == markdown(result.report) + "\n"
    assert "| resnet32 | onnxruntime[CPU] | fp32 | 1 |" in md and "## Latency against GMACs" in md
    assert (out / "r.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(out.glob(".*.part")), "no temporary files may be left behind"
    table = terminal_table(result.report)
    assert "median ms" in table and "resnet20" in table and "device ms" not in table


def test_schema_rejects_broken_reports(sweep):
    rep = json.loads(json.dumps(sweep[0].report))
    validate(rep)
    broken = [
        lambda d: d.pop("environment"),
        lambda d: d["results"][0].pop("latency_ms"),
        lambda d: d["results"][0]["host_ms"].update(p99="slow"),
        lambda d: d["results"][0].update(backend="tflite"),
        lambda d: d["settings"].update(repeats=0),
        lambda d: d["environment"].update(load_average_start=[1.0]),
    ]
    for breaker in broken:
        d = json.loads(json.dumps(rep))
        breaker(d)
        with pytest.raises(jsonschema.ValidationError):
            validate(d)


def test_artifacts_are_reused_while_manifests_match(sweep, monkeypatch):
    _, out = sweep
    work = out / "work"
    onnx = work / "resnet20_32px.onnx"
    before = onnx.stat().st_mtime_ns

    def no_export(**kw):
        raise AssertionError("a matching export must be reused")

    monkeypatch.setattr(api, "export", no_export)
    api.bench(depth="20", iterations=1, repeats=1, warmup="0", workdir=work)
    assert onnx.stat().st_mtime_ns == before
    monkeypatch.undo()
    onnx.write_bytes(onnx.read_bytes() + b"\0")  # bytes no longer match the manifest's sha256
    api.bench(depth="20", iterations=1, repeats=1, warmup="0", workdir=work)
    assert onnx.stat().st_mtime_ns != before


def test_unsupported_and_unavailable_precisions_are_skipped_with_notes(tmp_path, monkeypatch):
    monkeypatch.delattr(api, "quantize", raising=False)
    rep = api.bench(depth="20", backend="torch,onnxruntime", precision="fp32,int8", iterations=1, repeats=1, warmup="0",
                    workdir=tmp_path).report
    assert sorted(r["id"] for r in rep["results"]) == ["resnet20/onnxruntime/fp32/b1", "resnet20/torch/fp32/b1"]
    reasons = {(s["backend"], s["precision"]): s["reason"] for s in rep["skipped"]}
    assert "INT8" in reasons[("torch", "int8")] and "api.quantize" in reasons[("onnxruntime", "int8")]
    assert "## Skipped" in markdown(rep)


@pytest.mark.slow
def test_int8_and_fp16_onnx_through_the_precision_stage(tmp_path):
    if not hasattr(api, "quantize"):
        pytest.skip("the precision stage (api.quantize) is not in this install")
    rep = api.bench(depth="20", precision="fp32,fp16,int8", iterations=2, repeats=1, warmup="0", workdir=tmp_path).report
    validate(rep)
    by_precision = {r["precision"]: r for r in rep["results"]}
    assert set(by_precision) == {"fp32", "fp16", "int8"}
    for p in ("fp16", "int8"):
        assert by_precision[p]["artifact"]["path"].endswith(f"resnet20_32px.{p}.onnx")


def test_cli_json_to_stdout(tmp_path):
    from rtdeploy.cli.main import _register, cli

    _register()
    res = CliRunner().invoke(cli, ["bench", "--depth", "20", "--iterations", "2", "--repeats", "1", "--warmup", "0",
                                   "--workdir", str(tmp_path), "--json", "-", "--no-progress"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    validate(data)
    assert data["command"].startswith("rtdeploy ") and "median ms" in res.stderr
