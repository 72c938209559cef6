"""rtdeploy.validate: statistics, tolerances, reference selection, reports."""

from __future__ import annotations

import json
import math
import shutil
import sys

import numpy as np
import pytest

from manifest_fakes import write_derived_manifest, write_engine_manifest
from rtdeploy.artifacts import new_manifest, parent_entry, read_manifest, write_manifest
from rtdeploy.errors import ArtifactError, MissingDependency, RtDeployError, ValidationFailed
from rtdeploy.validate import DEFAULT_TOLERANCES, OutputStats, Tolerance, ValidateConfig, check, tolerance_for, validate_model


def _stats(ref, cand, labels=None):
    s = OutputStats()
    s.update(np.asarray(ref, np.float32), np.asarray(cand, np.float32), labels)
    return s.result()


# --- statistics ----------------------------------------------------------------------------

def test_identical_outputs_are_perfect():
    ref = np.random.default_rng(0).standard_normal((5, 10))
    r = _stats(ref, ref)
    assert r["max_abs_err"] == 0 and r["mean_abs_err"] == 0 and r["max_rel_err"] == 0
    assert r["cosine_mean"] == pytest.approx(1) and r["cosine_worst"] == pytest.approx(1)
    assert r["top1_agreement"] == r["top5_agreement"] == 1
    assert r["nonfinite"] == 0 and r["samples"] == 5


def test_errors_cosine_and_range_against_hand_computed_values():
    ref = np.array([[1.0, 2.0, 3.0], [0.0, -1.0, 4.0]])
    cand = np.array([[1.0, 2.5, 3.0], [0.0, -1.0, 3.0]])
    r = _stats(ref, cand)
    assert r["max_abs_err"] == pytest.approx(1.0)
    assert r["mean_abs_err"] == pytest.approx(1.5 / 6)
    assert r["reference_range"] == pytest.approx(5.0)
    assert r["max_abs_err_of_range"] == pytest.approx(0.2)
    assert r["max_rel_err"] == pytest.approx(0.25)  # 0.5/2 and 1/4
    cos0 = (1 + 5 + 9) / (math.sqrt(14) * math.sqrt(1 + 6.25 + 9))
    cos1 = (1 + 12) / (math.sqrt(17) * math.sqrt(10))
    assert r["cosine_mean"] == pytest.approx((cos0 + cos1) / 2)
    assert r["cosine_worst"] == pytest.approx(min(cos0, cos1))


def test_top1_and_top5_agreement():
    ref = np.tile(np.arange(10.0), (4, 1))  # reference top class: 9
    cand = ref.copy()
    cand[1, 8] = 20  # top-1 flips to 8, 9 still in the top 5
    cand[2, 9] = -5  # 9 falls out of the top 5
    cand[3, 0] = 30  # top-1 flips to 0, 9 still in the top 5
    r = _stats(ref, cand)
    assert r["top1_agreement"] == pytest.approx(1 / 4)
    assert r["top5_agreement"] == pytest.approx(3 / 4)


def test_accuracy_with_labels_over_batches():
    s = OutputStats()
    ref = np.eye(4)[[0, 1, 2, 3]] * 5
    cand = np.eye(4)[[0, 1, 1, 1]] * 5
    s.update(ref[:2], cand[:2], np.array([0, 1]))
    s.update(ref[2:], cand[2:], np.array([2, 0]))
    r = s.result()
    assert r["reference_accuracy"] == pytest.approx(0.75)
    assert r["candidate_accuracy"] == pytest.approx(0.5)
    assert r["accuracy_drop_points"] == pytest.approx(25.0)


def test_nonfinite_values_are_counted_and_always_fail():
    ref = np.ones((2, 4))
    cand = ref.copy()
    cand[0, 1], cand[1, 2] = np.nan, np.inf
    r = _stats(ref, cand)
    assert r["nonfinite"] == 2
    assert math.isfinite(r["max_abs_err"])
    failures = check(r, Tolerance(), output="logits", input_set="random")
    assert [f.statistic for f in failures] == ["nonfinite"] and failures[0].excess == math.inf


def test_check_names_each_violation_and_ranks_by_excess():
    r = _stats(np.eye(3), np.eye(3))
    # 100 samples: half agreeing is far below 0.99 beyond chance (counted statistics are tested as samples)
    r.update(samples=100, cosine_mean=0.999, top1_agreement=0.5, max_abs_err_of_range=2e-4)
    failures = check(r, DEFAULT_TOLERANCES["fp32"], output="logits", input_set="random")
    assert {f.statistic for f in failures} == {"cosine_mean", "top1_agreement", "max_abs_err_of_range"}
    worst = max(failures, key=lambda f: f.excess)
    assert worst.statistic == "cosine_mean"  # 100x its budget; top-1 is 50x, max abs 2x
    assert "cosine_mean 0.999 < 0.99999" in worst.describe()


def test_tolerances_by_precision_and_overrides():
    fp32, fp16, int8 = (tolerance_for(p) for p in ("fp32", "fp16", "int8"))
    assert fp32.cosine > fp16.cosine > int8.cosine
    assert fp32.top1 >= fp16.top1 >= int8.top1
    assert tolerance_for("fp32", {"top1": 0.5, "cosine": None}).top1 == 0.5
    assert tolerance_for("fp32", {"cosine": None}).cosine == fp32.cosine  # None keeps the default
    with pytest.raises(RtDeployError, match="unknown tolerance 'cosin'"):
        tolerance_for("fp32", {"cosin": 0.9})
    with pytest.raises(RtDeployError, match="fp64"):
        tolerance_for("fp64")


# --- end to end on exported models -----------------------------------------------------------

def test_validate_report_and_json(exported):
    result = exported(20)
    report = validate_model(ValidateConfig(model=result.path, samples=6, batch=4))
    assert report.passed and report.precision == "fp32"
    assert report.sets[0].name == "random" and report.sets[0].samples == 6
    d = json.loads(json.dumps(report.to_dict()))
    assert d["passed"] is True and d["worst"] is None
    assert d["sets"][0]["outputs"]["logits"]["cosine_mean"] > 0.99999
    assert len(d["sets"][0]["fingerprint"]) == 64


@pytest.mark.slow
def test_real_images_give_accuracy(exported, cifar_root):
    result = exported(20)
    report = validate_model(ValidateConfig(model=result.path, images=cifar_root / "dev", samples=40, batch=20))
    images = report.sets[1]
    assert images.name == "images" and images.samples == 40
    assert images.outputs["logits"]["reference_accuracy"] is not None


def test_a_different_model_fails_naming_the_worst_statistic(tmp_path, exported):
    import torch

    base = exported(20)
    # Same architecture, other weights: the candidate disagrees with the reference.
    other = tmp_path / "other.pth"
    from rtdeploy.models import build_model, model_meta

    torch.manual_seed(5)
    torch.save(build_model(model_meta(20)).state_dict(), other)
    from rtdeploy.export import ExportConfig, export_onnx

    cand = export_onnx(ExportConfig(depth=20, output=tmp_path / "cand.onnx", weights=other))
    report = validate_model(ValidateConfig(model=cand.path, reference=str(base.path), samples=8))
    assert not report.passed
    assert report.worst.excess >= max(f.excess for f in report.failures)
    with pytest.raises(ValidationFailed, match=r"worst \w+") as e:
        report.raise_for_failure()
    assert e.value.exit_code == 3


def _child(tmp_path, parent, precision="fp16", name="child.onnx"):
    """A model made from ``parent`` (a copy stands in for an FP16/INT8 conversion)."""
    child = tmp_path / name
    shutil.copy(parent, child)
    if precision in ("fp16", "int8"):
        write_derived_manifest(child, parent, precision)
    else:  # a manifest no rtdeploy writer makes
        meta = read_manifest(parent)["model"]
        write_manifest(child, new_manifest("onnx-fp16", child, precision=precision, model=meta, parent=parent_entry(parent)))
    return child


def test_reference_of_a_derived_model_is_its_parent_onnx(tmp_path, exported):
    parent = tmp_path / "p.onnx"
    src = exported(20).path
    shutil.copy(src, parent)
    shutil.copy(src.with_name(src.name + ".json"), parent.with_name("p.onnx.json"))
    child = _child(tmp_path, parent)
    report = validate_model(ValidateConfig(model=child, samples=4))
    assert report.precision == "fp16" and report.reference.startswith("onnxruntime") and "p.onnx" in report.reference
    assert report.tolerance == DEFAULT_TOLERANCES["fp16"]
    # --reference torch follows the parent chain to the weights of the export.
    assert validate_model(ValidateConfig(model=child, samples=4, reference="torch")).reference.startswith("torch")
    parent.write_bytes(parent.read_bytes() + b"\0")
    with pytest.raises(ArtifactError, match="changed since"):
        validate_model(ValidateConfig(model=child, samples=4))
    parent.unlink()
    with pytest.raises(ArtifactError, match="is gone"):
        validate_model(ValidateConfig(model=child, samples=4))


def test_reference_onnx_needs_a_parent(exported):
    with pytest.raises(ArtifactError, match="no parent ONNX"):
        validate_model(ValidateConfig(model=exported(20).path, reference="onnx", samples=2))
    with pytest.raises(ArtifactError, match="neither 'torch', 'onnx'"):
        validate_model(ValidateConfig(model=exported(20).path, reference="nothing.onnx", samples=2))


def test_engine_without_tensorrt_is_a_missing_dependency(tmp_path, exported, monkeypatch):
    parent = exported(20).path
    engine = tmp_path / "r20.fp16.engine"
    engine.write_bytes(b"plan bytes")
    write_engine_manifest(engine, parent, precision="fp16", model=read_manifest(parent)["model"])
    for name in ("tensorrt", "tensorrt_bindings"):  # import tensorrt fails, as on a machine without it
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(MissingDependency, match="rtdeploy\\[gpu\\]") as e:
        validate_model(ValidateConfig(model=engine, samples=2))
    assert e.value.exit_code == 4


def test_unknown_precision_in_manifest(tmp_path, exported):
    child = _child(tmp_path, exported(20).path, precision="fp8", name="odd.onnx")
    with pytest.raises(ArtifactError, match="'precision' should be one of 'fp16', found 'fp8'"):
        validate_model(ValidateConfig(model=child, samples=2))
