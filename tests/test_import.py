"""``rtdeploy import``: adopting ONNX models rtdeploy did not write, and every refusal in one line.

The models here are built with ``onnx.helper`` (milliseconds, no torch export), each shaped like
a case a user meets: a good classifier (dynamic or fixed batch, old opset), two inputs, a rank-2
input, an int input, an output that contradicts ``--classes``, missing external data, an opset
the converter cannot upgrade.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from rtdeploy.files import manifest_path, sha256_file
from rtdeploy.cli.main import _register, cli
from tiny_graphs import classifier, save


@pytest.fixture(scope="module")
def runner():
    _register()
    return CliRunner()


def _snapshot(d: Path) -> dict[str, str]:
    """Every path under ``d`` with its bytes' sha256 (links by target), so a file changed in place shows too."""
    return {str(p.relative_to(d)): (f"link->{p.readlink()}" if p.is_symlink() else sha256_file(p) if p.is_file() else "dir")
            for p in d.rglob("*")}


def test_import_adopts_a_dynamic_batch_model_in_place(tmp_path, runner):
    path = save(classifier(), tmp_path / "net.onnx")
    digest = sha256_file(path)
    res = runner.invoke(cli, ["import", str(path), "--preprocess", "imagenet", "--classes", "10"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert sha256_file(path) == digest  # the user's file is not touched, only its manifest is written
    m = json.loads(manifest_path(path).read_text())
    assert m["kind"] == "onnx" and m["precision"] == "fp32" and m["sha256"] == digest
    model = m["model"]
    assert (model["family"], model["depth"], model["name"]) == ("imported", None, "net")
    assert (model["input_name"], model["output_name"], model["num_classes"], model["image_size"]) == ("pixels", "probs", 10, 8)
    assert model["resize"] == round(8 * 256 / 224) and model["layout"] == "NCHW"
    assert m["imported"]["batch"] == "dynamic" and m["imported"]["opset"] == 13
    assert "imported net.onnx" in res.output.replace(str(tmp_path) + "/", "")


def test_import_reads_a_fixed_batch_and_explicit_normalisation(tmp_path):
    from rtdeploy import api

    path = save(classifier(batch=4, channels=1), tmp_path / "gray.onnx")
    r = api.import_model(path, mean="0.5", std="0.25", name="gray-net")
    assert r.manifest["imported"]["batch"] == 4
    assert (r.meta.name, r.meta.mean, r.meta.std, r.meta.resize, r.meta.in_channels) == ("gray-net", (0.5,), (0.25,), None, 1)


def test_old_opset_is_upgraded_into_a_new_file(tmp_path):
    import onnx

    from rtdeploy import api

    path = save(classifier(opset=9), tmp_path / "old.onnx")
    r = api.import_model(path, preprocess="none")
    assert r.path == tmp_path / "old.imported.onnx"
    assert r.manifest["imported"]["opset_upgraded_from"] == 9 and r.manifest["imported"]["opset"] == 13
    assert next(i.version for i in onnx.load(str(r.path)).opset_import if i.domain == "") == 13
    assert not manifest_path(path).exists()  # the original stays as it was


def test_external_data_is_inlined(tmp_path):
    import onnx

    from rtdeploy import api

    path = tmp_path / "ext.onnx"
    onnx.save_model(classifier(), str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                    location="ext.weights", size_threshold=0)
    r = api.import_model(path, preprocess="cifar")
    assert r.path.name == "ext.imported.onnx" and r.manifest["imported"]["inlined_external_data"]
    (tmp_path / "ext.weights").unlink()
    model = onnx.load(str(r.path))  # self-contained now
    assert len(model.graph.initializer) == 4


def test_imported_model_validates_against_itself_and_quantizes(tmp_path):
    from rtdeploy import api

    path = save(classifier(), tmp_path / "net.onnx")
    api.import_model(path, preprocess="none")
    rep = api.validate(path, samples=4)
    assert rep.passed and "net.onnx" in rep.reference
    calib = tmp_path / "calib.npy"
    np.save(calib, np.random.default_rng(1).random((16, 3, 8, 8), dtype=np.float32))
    q = api.quantize(path, int8=True, calib_dir=calib, stats_cache=False)
    assert q.report["quantized_layers"] == q.report["layers"] == 2  # the Conv and the Gemm
    assert api.validate(q.path, samples=4).reference.endswith("net.onnx")
    f = api.quantize(path, fp16=True, calib_dir=calib)
    assert api.validate(f.path, samples=4).passed


def test_run_takes_an_imported_onnx(tmp_path):
    from rtdeploy import api

    path = save(classifier(), tmp_path / "net.onnx")
    api.import_model(path, preprocess="none")
    calib = tmp_path / "calib.npy"
    np.save(calib, np.random.default_rng(1).random((16, 3, 8, 8), dtype=np.float32))
    out = tmp_path / "run"
    report = api.run(onnx=path, calib_dir=calib, precision="fp32,int8", engines=False, bench=False, outdir=out, samples=4)
    statuses = {s.name: s.status for s in report.stages}
    assert statuses["export"] == "made" and statuses["quantize-int8"] == "made", report.stages
    assert (out / "net.onnx").is_file() and (out / "net.int8.onnx").is_file()
    assert "net.onnx" in report.report_md.read_text()
    again = api.run(onnx=path, calib_dir=calib, precision="fp32,int8", engines=False, bench=False, outdir=out, samples=4)
    assert {s.name: s.status for s in again.stages}["export"] == "reused"


def test_reimport_with_other_preprocessing_renews_what_run_derived(tmp_path):
    """The run folder's copy of the given ONNX was judged by its bytes alone: after `rtdeploy import`
    again with other preprocessing (same bytes, new manifest) every stage was reused with the old one."""
    from rtdeploy import api

    path = save(classifier(), tmp_path / "net.onnx")
    api.import_model(path, preprocess="none")
    out = tmp_path / "run"
    kw = dict(onnx=path, calib_dir=_random_calibration(tmp_path / "c.npy"), precision="fp32,int8", engines=False, bench=False,
              outdir=out, samples=4)
    api.run(**kw)
    api.import_model(path, preprocess="imagenet")
    stages = {s.name: s for s in api.run(**kw).stages}
    assert stages["export"].status == "made" and "manifest changed" in stages["export"].detail, stages["export"]
    assert stages["quantize-int8"].status == "made", stages["quantize-int8"]
    for name in ("net.onnx", "net.int8.onnx"):
        assert json.loads(manifest_path(out / name).read_text())["model"]["mean"] == [0.485, 0.456, 0.406], name
    assert {s.status for s in api.run(**kw).stages} == {"reused"}


def test_reimport_changes_what_an_engine_or_a_cache_made_int8_records(tmp_path):
    """An engine (and an INT8 model quantized from a TensorRT cache) reads no images, so no calibration
    fingerprint carried the preprocessing: the parent's model record is an input of its derivation."""
    from rtdeploy import api
    from rtdeploy.trt import BuildOptions
    from rtdeploy.trt.options import build_derivation

    path = save(classifier(), tmp_path / "net.onnx")
    api.import_model(path, preprocess="none")
    opts = BuildOptions(onnx=path, precision="fp32")

    def engine_record() -> dict:  # what build-engine records, and derive.engine_wanted compares, on one machine
        return build_derivation(opts, "fp32", sha256_file(path), None, "TensorRT 10.3.0, compute 8.6, linux-x86_64")

    before = engine_record()
    api.import_model(path, preprocess="none")
    assert engine_record() == before  # the same record: reused
    api.import_model(path, preprocess="imagenet")
    after = engine_record()
    assert after["inputs"]["parent"] == before["inputs"]["parent"] and after != before


def test_a_custom_domain_op_ends_each_stage_in_one_line(tmp_path, runner):
    from tiny_graphs import custom_domain_classifier

    path = save(custom_domain_classifier(), tmp_path / "net.onnx")
    assert runner.invoke(cli, ["import", str(path), "--preprocess", "none"]).exit_code == 0
    calib = _random_calibration(tmp_path / "c.npy")
    res = runner.invoke(cli, ["run", "--onnx", str(path), "--calib-dir", str(calib), "--precision", "fp32,int8", "--no-engines",
                              "--no-bench", "-o", str(tmp_path / "out")])
    assert res.exit_code == 1 and "Traceback" not in res.output, res.output
    failed = [ln for ln in res.output.splitlines() if "FAILED" in ln]
    assert failed and all("onnxruntime" in ln and "com.example" in ln for ln in failed), res.output
    assert any("quantize-int8" in ln and "quantize stopped in onnxruntime" in ln for ln in failed), res.output


def test_unquantizable_ops_are_listed_not_guessed(tmp_path):
    from onnx import helper

    from rtdeploy import api

    # An Add of a conv output with itself squared (Mul of two activations): no Q/DQ rule covers the Mul.
    extra = helper.make_node("Mul", ["c", "c"], ["sq"])
    path = save(classifier(extra_node=extra), tmp_path / "mul.onnx")
    api.import_model(path, preprocess="none")
    calib = tmp_path / "calib.npy"
    np.save(calib, np.random.default_rng(1).random((8, 3, 8, 8), dtype=np.float32))
    q = api.quantize(path, int8=True, calib_dir=calib, stats_cache=False)
    assert [(f["op_type"]) for f in q.report["left_in_float"]] == ["Mul"]
    assert q.manifest["quantization"]["left_in_float"][0]["why"] == "the Q/DQ placement has no rule for this op"


# --- bad input: one line, exit 1, no manifest left -------------------------------------------------

def _two_inputs(d):
    save(classifier(extra_input=True), d / "m.onnx")


def _rank2(d):
    save(classifier(rank=2), d / "m.onnx")


def _int_input(d):
    from onnx import TensorProto

    save(classifier(in_type=TensorProto.INT64), d / "m.onnx")


def _good(d):
    save(classifier(classes=10), d / "m.onnx")


def _missing_external(d):
    import onnx

    onnx.save_model(classifier(), str(d / "m.onnx"), save_as_external_data=True, location="m.weights", size_threshold=0)
    (d / "m.weights").unlink()


def _too_old(d):
    from onnx import helper

    # ImageScaler (an experimental op of old opsets) has no adapter in onnx's version converter.
    save(classifier(opset=9, extra_node=helper.make_node("ImageScaler", ["c"], ["s"], scale=1.0)), d / "m.onnx")


def _text(d):
    (d / "m.onnx").write_text("not a model")


# --- issue 22: only foreign FP32 files, with shapes, statistics and data locations that hold ----------

def _external(location: str, *, link: bool = False, truncate: bool = False):
    """m.onnx whose weights lie in an external file, its location in the graph rewritten to ``location``
    (onnx itself refuses to save such paths; other tools and hand edits do not)."""
    def setup(d):
        import onnx

        onnx.save_model(classifier(), str(d / "w.onnx"), save_as_external_data=True, location="w.bin", size_threshold=0,
                        all_tensors_to_one_file=True)
        model = onnx.load(str(d / "w.onnx"), load_external_data=False)
        (d / "w.onnx").unlink()
        for t in model.graph.initializer:
            for entry in t.external_data:
                if entry.key == "location":
                    entry.value = location.format(d=d)
        save(model, d / "m.onnx")
        target = (d / location.format(d=d)) if not link else d / "elsewhere.bin"
        (d / "w.bin").rename(target)
        if link:
            (d / location).symlink_to(target)
        if truncate:
            target.write_bytes(target.read_bytes()[:100])
    return setup


def _output_dim(model, value: int):
    model.graph.output[0].type.tensor_type.shape.dim[1].dim_value = value
    return model


def _quantized_graph(d):
    from onnx import helper, numpy_helper

    # A foreign Q/DQ model: a QuantizeLinear/DequantizeLinear pair between the Conv and the Relu.
    model = classifier()
    graph = model.graph
    graph.initializer.append(numpy_helper.from_array(np.array(0.1, np.float32), "qs"))
    relu = next(i for i, n in enumerate(graph.node) if n.op_type == "Relu")
    graph.node[relu].input[0] = "cdq"
    graph.node.insert(relu, helper.make_node("DequantizeLinear", ["cq", "qs"], ["cdq"]))
    graph.node.insert(relu, helper.make_node("QuantizeLinear", ["c", "qs"], ["cq"]))
    save(model, d / "m.onnx")


def _fp16_weights(d):
    import numpy as np
    from onnx import numpy_helper

    model = classifier()
    w = numpy_helper.to_array(model.graph.initializer[0]).astype(np.float16)
    model.graph.initializer[0].CopyFrom(numpy_helper.from_array(w, "w1"))
    save(model, d / "m.onnx")


def _foreign_json(d):
    _good(d)
    (d / "m.onnx.json").write_text('{"labels": ["cat", "dog"]}')


BAD = [
    ("not-onnx", _text, [], "is not an ONNX model"),
    ("two-inputs", _two_inputs, [], "has 2 inputs (pixels, mask)"),
    ("rank-2", _rank2, [], "has rank 2; rtdeploy takes images, rank 4"),
    ("int-input", _int_input, [], "is int64; rtdeploy takes a float32 image input"),
    ("classes-contradict", _good, ["--classes", "5"], "--classes 5 contradicts"),
    ("missing-external-data", _missing_external, [], "which is missing beside it"),
    ("opset-too-old", _too_old, [], "onnx cannot upgrade it"),
    ("missing-file", lambda d: None, [], "does not exist"),
    # issue 22
    ("batch-minus-one", lambda d: save(classifier(batch=-1), d / "m.onnx"), [], "declares dimension 0 as -1"),
    ("size-minus-one", lambda d: save(classifier(size=-1), d / "m.onnx"), ["--size", "8"], "declares dimension 2 as -1"),
    ("classes-minus-one", lambda d: save(_output_dim(classifier(), -1), d / "m.onnx"), [], "output 'probs' declares dimension 1 as -1"),
    ("std-underflows-to-zero", _good, ["--mean", "0", "--std", "1e-50"], "1e-50 is 0 in float32"),
    ("std-subnormal", _good, ["--mean", "0.5", "--std", "0.5,0.5,1e-40"], "1e-40 is a subnormal number in float32"),
    ("external-data-outside-folder", _external("../{d.name}-outside.bin"), [], "-outside.bin', outside the model's folder"),
    ("external-data-absolute", _external("{d}/abs.bin"), [], "outside the model's folder"),
    ("external-data-link", _external("w.bin", link=True), [], "'w.bin', which is a link"),
    ("external-data-truncated", _external("w.bin", truncate=True), [], "the data file is truncated"),
    ("already-quantized-graph", _quantized_graph, [], "is already quantized (DequantizeLinear, QuantizeLinear nodes)"),
    ("fp16-weights", _fp16_weights, [], "holds float16 weights, so it is an FP16 model"),
    ("manifest-path-taken", _foreign_json, [], "m.onnx.json exists but is not an rtdeploy manifest"),
]


@pytest.mark.parametrize("setup,extra,needle", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_import_is_one_line_exit_1_and_leaves_nothing(tmp_path, runner, setup, extra, needle):
    setup(tmp_path)
    before = _snapshot(tmp_path)
    argv = ["import", str(tmp_path / "m.onnx"), "--preprocess", "cifar", *extra]
    res = runner.invoke(cli, argv, catch_exceptions=False)
    lines = [ln for ln in res.stderr.strip().splitlines() if ln.strip()]
    assert res.exit_code == 1, res.output
    assert len(lines) == 1 and lines[0].startswith("error:") and needle in lines[0], lines
    assert "Traceback" not in res.output
    assert _snapshot(tmp_path) == before  # nothing written, nothing changed (a manifest already there included)


def test_import_needs_to_be_told_the_preprocessing(tmp_path, runner):
    _good(tmp_path)
    res = runner.invoke(cli, ["import", str(tmp_path / "m.onnx")])
    assert res.exit_code == 1 and "--preprocess imagenet|cifar|none" in res.stderr
    assert not manifest_path(tmp_path / "m.onnx").exists()


def test_commands_point_a_foreign_onnx_to_import(tmp_path, runner):
    _good(tmp_path)
    res = runner.invoke(cli, ["run", "--onnx", str(tmp_path / "m.onnx"), "-o", str(tmp_path / "out")])
    assert res.exit_code == 1 and "rtdeploy import" in res.stderr
    assert not (tmp_path / "out").exists()


def test_bench_package_and_build_engine_take_an_imported_model(tmp_path, runner):
    path = save(classifier(batch=2), tmp_path / "tiny.onnx")
    assert runner.invoke(cli, ["import", str(path), "--preprocess", "none"]).exit_code == 0
    calib = _random_calibration(tmp_path / "c.npy")
    res = runner.invoke(cli, ["bench", "--model", str(path), "--batch", "2", "--duration", "20ms", "--repeats", "1",
                              "--warmup", "0", "--json", str(tmp_path / "b.json"), "--no-progress"])
    assert res.exit_code == 0, res.output
    rows = json.loads((tmp_path / "b.json").read_text())["results"]
    assert [(r["model"], r["family"], r["depth"]) for r in rows] == [("tiny", "imported", None)]
    res = runner.invoke(cli, ["package", str(path), "--triton", str(tmp_path / "repo"), "--kind", "cpu"])
    assert res.exit_code == 0, res.output
    assert "max_batch_size: 0" in (tmp_path / "repo" / "tiny" / "config.pbtxt").read_text()  # fixed batch: dims carry it
    # build-engine makes the FP16 graph from the imported FP32 model, then needs TensorRT (exit 4 here).
    res = runner.invoke(cli, ["build-engine", "--onnx", str(path), "--fp16", "--calib-dir", str(calib)])
    assert res.exit_code in (0, 4), res.output
    assert (tmp_path / "tiny.fp16.onnx").is_file() and manifest_path(tmp_path / "tiny.fp16.onnx").is_file()


def _random_calibration(path: Path) -> Path:
    np.save(path, np.random.default_rng(1).random((8, 3, 8, 8), dtype=np.float32))
    return path


def test_a_foreign_onnx_without_manifest_is_pointed_to_import(tmp_path, runner):
    _good(tmp_path)
    for argv in (["validate", str(tmp_path / "m.onnx")], ["quantize", str(tmp_path / "m.onnx"), "--int8"]):
        res = runner.invoke(cli, argv)
        assert res.exit_code == 1 and "rtdeploy import" in res.stderr and res.stderr.count("\n") == 1, res.stderr


def test_bench_plots_imported_models_beside_an_export(tmp_path):
    # Imported models have no depth: the plot shows bars per model instead of lines against depth
    # (with an exported ResNet beside them, the lines plot used to get None depths).
    from rtdeploy import api

    paths = [save(classifier(), tmp_path / f"{n}.onnx") for n in ("net_a", "net_b")]
    for p in paths:
        api.import_model(p, preprocess="none")
    paths.append(api.export(model="resnet20", output=tmp_path / "r20.onnx").path)
    res = api.bench(model=",".join(map(str, paths)), duration="20ms", repeats=1, warmup="0", plot=tmp_path / "b.png")
    assert (tmp_path / "b.png").stat().st_size > 0
    assert sorted(r["model"] for r in res.report["results"]) == ["net_a", "net_b", "resnet20"]
