"""The quantize stage end to end: manifest, statistics cache, fallback, bad inputs, real ResNet-20."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from click.testing import CliRunner

from rtdeploy import api
from rtdeploy.artifacts import read_manifest
from rtdeploy.cli.main import _register, cli
from rtdeploy.precision.int8.qdq import quantized_inputs
from conftest import message_lines


@pytest.fixture(autouse=True)
def _private_stats_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("RTDEPLOY_CACHE_DIR", str(tmp_path_factory.mktemp("stats-cache")))


def _npy(folder: Path, n: int = 16, size: int = 32, seed: int = 0, poison: float | None = None) -> Path:
    x = np.random.default_rng(seed).normal(0, 1, (n, 3, size, size)).astype(np.float32)
    if poison is not None:
        x[n // 2, 0, 0, 0] = poison
    path = folder / f"calib{seed}.npy"
    np.save(path, x)
    return path


def _image_dir(folder: Path, count: int, bad: str | None = None) -> Path:
    from PIL import Image

    folder.mkdir()
    for i in range(count):
        rgb = np.random.default_rng(i).integers(0, 255, (36, 40, 3), dtype=np.uint8)
        Image.fromarray(rgb).save(folder / f"img{i}.png")
    if bad:
        (folder / bad).write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    return folder


def test_int8_manifest_records_parent_data_and_scales(exported, tmp_path):
    fp32 = exported(20)
    calib = _image_dir(tmp_path / "imgs", 10)
    result = api.quantize(fp32.path, int8=True, calib_dir=calib, method="percentile", percentile=99.9,
                          output=tmp_path / "r20.int8.onnx")
    m = read_manifest(result.path)
    assert m["kind"] == "onnx-int8" and m["precision"] == "int8"
    assert m["parent"]["sha256"] == fp32.manifest["sha256"] and Path(m["parent"]["path"]) == fp32.path.resolve()
    assert m["model"] == fp32.manifest["model"]
    q, c = m["quantization"], m["calibration"]
    assert q["method"] == "percentile" and q["percentile"] == 99.9
    assert c["images"] == 10 and c["held_out"] == 0 and len(c["fingerprint"]) == 64
    assert c["dir"] == str(calib.resolve())
    assert q["layers"] == q["quantized_layers"] == 29 and q["kept_fp"] == []
    assert set(q["scales"]) >= {"input"} and all(s > 0 for s in q["scales"].values())
    assert q["qdq_nodes"]["QuantizeLinear"] == len(q["scales"]) + 2  # + the two option-A shortcut pairs
    model = onnx.load(str(result.path))
    assert any(n.op_type == "QuantizeLinear" for n in model.graph.node)


@pytest.mark.slow
def test_statistics_are_collected_once_for_all_methods(exported, tmp_path):
    fp32 = exported(20).path
    calib = _npy(tmp_path)
    states = {}
    for method in ("entropy", "mse", "percentile", "max"):
        r = api.quantize(fp32, int8=True, calib_dir=calib, method=method, output=tmp_path / f"{method}.onnx")
        states[method] = r.report["stats_cache"]
    assert states == {"entropy": "miss", "mse": "hit", "percentile": "hit", "max": "hit"}
    scales = {m: read_manifest(tmp_path / f"{m}.onnx")["quantization"]["scales"] for m in states}
    assert scales["max"]["input"] > scales["entropy"]["input"] * 0.999
    assert scales["mse"] != scales["max"], "different methods give different scales from the same statistics"
    # Other data -> another key -> collected again.
    other = api.quantize(fp32, int8=True, calib_dir=_npy(tmp_path, seed=1), method="mse", output=tmp_path / "o.onnx")
    assert other.report["stats_cache"] == "miss"


@pytest.mark.slow
def test_max_only_statistics_do_not_serve_histogram_methods(exported, tmp_path):
    fp32 = exported(20).path
    calib = _npy(tmp_path)
    assert api.quantize(fp32, int8=True, calib_dir=calib, method="max", output=tmp_path / "a.onnx").report["stats_cache"] == "miss"
    assert api.quantize(fp32, int8=True, calib_dir=calib, method="entropy", output=tmp_path / "b.onnx").report["stats_cache"] == "miss"


@pytest.mark.slow
def test_keep_fp_keeps_the_most_sensitive_layers_in_float(exported, tmp_path):
    fp32 = exported(20).path
    result = api.quantize(fp32, int8=True, calib_dir=_npy(tmp_path, n=20), keep_fp=3, output=tmp_path / "k.onnx")
    m = read_manifest(result.path)
    kept = [k["node"] for k in m["quantization"]["kept_fp"]]
    fb = m["quantization"]["fallback"]
    assert len(kept) == 3 and kept == [s["node"] for s in fb["sensitivity"][:3]]
    assert len(fb["sensitivity"]) == 29
    kls = [s["kl"] for s in fb["sensitivity"]]
    assert kls == sorted(kls, reverse=True)
    assert m["calibration"]["held_out"] == fb["held_out_images"] == 4 and m["calibration"]["images"] == 16
    qin = quantized_inputs(onnx.load(str(result.path)))
    assert not set(kept) & set(qin)
    assert m["quantization"]["quantized_layers"] == 26


@pytest.mark.slow
def test_target_agreement_adds_layers_until_met(exported, tmp_path):
    fp32 = exported(20).path
    result = api.quantize(fp32, int8=True, calib_dir=_npy(tmp_path, n=30), target_agreement=1.0, output=tmp_path / "t.onnx")
    fb = read_manifest(result.path)["quantization"]["fallback"]
    assert fb["trace"][-1]["agreement"] == 1.0
    assert [t["kept"] for t in fb["trace"]] == list(range(len(fb["trace"])))
    assert all(t["agreement"] < 1.0 for t in fb["trace"][:-1])
    assert result.report["held_out_agreement"] == 1.0


def test_switchable_graph_matches_the_qdq_model(exported):
    import onnxruntime as ort

    from rtdeploy.precision.int8.collect import collect_stats
    from rtdeploy.precision.int8.qdq import insert_qdq, plan_qdq, scale_from_amax
    from rtdeploy.precision.int8.sensitivity import MASK_INPUT, build_switchable

    model = onnx.load(str(exported(20).path))
    plan = plan_qdq(model)
    x = np.random.default_rng(0).normal(0, 1, (4, 3, 32, 32)).astype(np.float32)
    scales = {t: scale_from_amax(s.amax) for t, s in collect_stats(model, plan.observed(), [x], histogram=False).items()}
    keep = {plan.units[0].node, plan.units[5].node}
    mask = np.array([0.0 if u.node in keep else 1.0 for u in plan.units], np.float32)
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # no float re-association

    def run(m, feed):
        return ort.InferenceSession(m.SerializeToString(), opts, providers=["CPUExecutionProvider"]).run(None, feed)[0]

    qdq = run(insert_qdq(model, plan, scales, keep=keep), {"input": x})
    switch = run(build_switchable(model, plan, scales), {"input": x, MASK_INPUT: mask})
    fp32 = run(build_switchable(model, plan, scales), {"input": x, MASK_INPUT: np.zeros_like(mask)})
    np.testing.assert_allclose(switch, qdq, atol=1e-3 * np.abs(qdq).max())
    np.testing.assert_allclose(fp32, run(model, {"input": x}), rtol=1e-5, atol=1e-5)


# --- bad inputs: one line, non-zero exit, nothing left behind ---------------------------------------

def _snapshot(d: Path) -> set[str]:
    return {str(p.relative_to(d)) for p in d.rglob("*")}


BAD = [
    ("missing-calib-dir", lambda d, m: [m, "--int8", "--calib-dir", str(d / "nope")], None, "does not exist"),
    ("empty-calib-dir", lambda d, m: [m, "--int8", "--calib-dir", str(d / "empty")], lambda d: (d / "empty").mkdir(), "holds no images"),
    ("corrupt-image", lambda d, m: [m, "--int8", "--calib-dir", str(d / "imgs")], lambda d: _image_dir(d / "imgs", 3, bad="broken.jpg"), "broken.jpg"),
    ("too-many-images", lambda d, m: [m, "--int8", "--calib-dir", str(d / "imgs"), "--calib-size", "50"], lambda d: _image_dir(d / "imgs", 4),
     "asked for 50 images"),
    ("nan-in-tensors", lambda d, m: [m, "--int8", "--calib-dir", str(d / "calib0.npy")], lambda d: _npy(d, poison=float("nan")), "NaN or Inf"),
    ("inf-in-tensors", lambda d, m: [m, "--int8", "--calib-dir", str(d / "calib0.npy")], lambda d: _npy(d, poison=float("inf")), "NaN or Inf"),
    ("percentile-zero", lambda d, m: [m, "--int8", "--method", "percentile", "--percentile", "0"], None, "outside (0, 100]"),
    ("percentile-over-100", lambda d, m: [m, "--int8", "--method", "percentile", "--percentile", "100.5"], None, "outside (0, 100]"),
    ("neither-precision", lambda d, m: [m], None, "exactly one of --int8 or --fp16"),
    ("both-fallbacks", lambda d, m: [m, "--int8", "--keep-fp", "2", "--target-agreement", "0.99"], None, "not both"),
    ("bad-target", lambda d, m: [m, "--int8", "--target-agreement", "98.5"], None, "fraction in (0, 1]"),
    ("foreign-cache", lambda d, m: [m, "--int8", "--from-trt-cache", str(d / "x.calib")],
     lambda d: (d / "x.calib").write_text("TRT-8601-EntropyCalibration2\nsomething_else: 3c000000\n"), "made for another model"),
    ("missing-cache", lambda d, m: [m, "--int8", "--from-trt-cache", str(d / "none.calib")], None, "does not exist"),
    ("not-exported", lambda d, m: [str(d / "plain.onnx"), "--int8"], lambda d: (d / "plain.onnx").write_bytes(b"x"), "no manifest"),
    ("missing-model", lambda d, m: [str(d / "none.onnx"), "--int8"], None, "does not exist"),
]


@pytest.fixture(scope="module")
def runner():
    _register()
    return CliRunner()


@pytest.mark.parametrize("case", BAD, ids=[c[0] for c in BAD])
def test_bad_input(case, exported, tmp_path, runner):
    _, argv, setup, needle = case
    if setup:
        setup(tmp_path)
    before = _snapshot(tmp_path)
    out = tmp_path / "out.int8.onnx"
    result = runner.invoke(cli, ["quantize", *argv(tmp_path, str(exported(20).path)), "-o", str(out)], catch_exceptions=False)
    assert result.exit_code != 0
    lines = message_lines(result.stderr)  # the phase lines of a pipe are progress, not messages
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert needle in lines[0], lines[0]
    assert "Traceback" not in result.output
    assert _snapshot(tmp_path) == before, "a failed quantize left files behind"


@pytest.mark.slow
def test_already_quantized_model_is_refused(exported, tmp_path, runner):
    first = api.quantize(exported(20).path, int8=True, calib_dir=_npy(tmp_path), output=tmp_path / "a.int8.onnx")
    before = _snapshot(tmp_path)
    result = runner.invoke(cli, ["quantize", str(first.path), "--int8", "-o", str(tmp_path / "b.onnx")])
    assert result.exit_code != 0
    assert result.stderr.strip().startswith("error: ") and "already an INT8 model" in result.stderr
    assert _snapshot(tmp_path) == before


@pytest.mark.slow
def test_quantized_content_without_manifest_flag_is_refused(exported, tmp_path):
    from rtdeploy.files import manifest_path
    from rtdeploy.errors import PrecisionError

    first = api.quantize(exported(20).path, int8=True, calib_dir=_npy(tmp_path), output=tmp_path / "a.int8.onnx")
    m = read_manifest(first.path)
    m.update(precision="fp32", kind="onnx", checks={})  # a complete FP32 manifest that lies: the graph still has Q/DQ
    import json

    manifest_path(first.path).write_text(json.dumps(m))
    with pytest.raises(PrecisionError, match="already holds quantization nodes"):
        api.quantize(first.path, int8=True, calib_dir=_npy(tmp_path), output=tmp_path / "b.onnx")


@pytest.mark.slow
def test_cli_prints_a_summary_and_json(exported, tmp_path, runner):
    import json

    out = tmp_path / "r.int8.onnx"
    result = runner.invoke(cli, ["quantize", str(exported(20).path), "--int8", "--calib-dir", str(_npy(tmp_path)),
                                 "--method", "mse", "-o", str(out), "--json", str(tmp_path / "r.json")])
    assert result.exit_code == 0, result.output
    assert "INT8, mse on 16 images; 29/29 layers int8" in result.stdout
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["output"] == str(out) and report["quantized_layers"] == 29


# --- the real ResNet-20 --------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.shared_data
def test_real_resnet20_int8_agrees_with_fp32_on_dev_images(cifar_root, cifar_weights, tmp_path):
    """Calibrate on the 1,000 calib/ images, keep the 6 most sensitive of 29 layers in float, and
    compare with FP32 on all 3,000 dev/ images through `validate` (target: >= 98.5 % top-1 agreement)."""
    fp32 = api.export(depth=20, weights=cifar_weights(20), output=tmp_path / "r20.onnx")
    q = api.quantize(fp32.path, int8=True, calib_dir=cifar_root / "calib", keep_fp=6, output=tmp_path / "r20.int8.onnx")
    assert len(q.report["kept_fp"]) == 6
    report = api.validate(q.path, images=cifar_root / "dev", batch=100)
    images = next(s for s in report.to_dict()["sets"] if s["name"] == "images")
    stats = images["outputs"]["logits"]
    assert images["samples"] == 3000
    assert stats["top1_agreement"] >= 0.985, stats
    assert stats["accuracy_drop_points"] <= 0.5, stats


class _Evaluator:
    """A stand-in SwitchableEvaluator: units ``u0..u{n-1}`` (most sensitive first) and the held-out
    agreement for each number of units kept in float."""

    def __init__(self, agreement_by_kept: list[float]):
        from rtdeploy.precision.int8.sensitivity import LayerSensitivity

        self.table = agreement_by_kept
        self.ranking = [LayerSensitivity(f"u{i}", "Conv", 1.0 / (i + 1), 0.5) for i in range(len(agreement_by_kept) - 1)]
        self.images = [0] * 10

    def rank(self):
        return self.ranking

    def score(self, kept):
        return self.table[len(kept)], 0.0


def test_target_agreement_never_keeps_every_layer_in_float():
    from rtdeploy.errors import PrecisionError
    from rtdeploy.precision.int8.sensitivity import choose_fallback

    # three units; only all three in float would reach 1.0
    with pytest.raises(PrecisionError, match=r"not reached even with 2 of the 3 quantizable layers in float .held-out agreement 0.9000"):
        choose_fallback(_Evaluator([0.5, 0.8, 0.9, 1.0]), target_agreement=1.0)
    met = choose_fallback(_Evaluator([0.5, 0.8, 0.95, 1.0]), target_agreement=0.95)
    assert met.kept == ["u0", "u1"] and met.agreement == 0.95


def test_run_refuses_keep_fp_of_every_layer_before_any_precision_work(tmp_path):
    _register()
    res = CliRunner().invoke(cli, ["run", "--depth", "20", "--keep-fp", "29", "-o", str(tmp_path / "out")])
    assert res.exit_code == 1, res.output
    assert res.stderr.strip().splitlines()[-1] == ("error: --keep-fp 29 would keep all 29 quantizable layers of resnet20.onnx in float, "
                                                   "an INT8 model with no INT8 layer; give --keep-fp 0 to 28")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["resnet20.onnx", "resnet20.onnx.json"]
