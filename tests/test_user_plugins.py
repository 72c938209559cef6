"""Models and calibrators registered by user code, from outside the package.

A user module (written here to a temporary folder, never part of rtdeploy) registers an
architecture with ``register_model`` and a calibrator with ``register_calibrator``; a fresh Python
process that learns it from ``$RTDEPLOY_PLUGINS`` takes the model by name on every command that
takes a model (summary, export, validate, quantize, build-engine, bench, run, package), and offers
the calibrator in every ``--method`` choice. The ``rtdeploy.plugins`` entry point of an installed
package is found the same way.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

USER_MODULE = textwrap.dedent('''
    from torch import nn

    from rtdeploy.models import register_model
    from rtdeploy.precision.calibrators import register_calibrator


    @register_model("usernet", image_size=16, num_classes=10, preprocess="cifar", description="a user's CNN")
    def usernet(num_classes=10, in_channels=3):
        return nn.Sequential(nn.Conv2d(in_channels, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
                             nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, num_classes))


    @register_calibrator("half-max", needs=(), description="half the largest |x|")
    def half_max(stats, inputs):
        return {name: s.amax / 2 for name, s in stats.items()}
''')

# Each command as a user types it (run in one fresh interpreter, in the work folder W).
COMMANDS = {
    "summary": ["summary", "--model", "usernet", "--json", "summary.json"],
    "export": ["export", "--model", "usernet", "-o", "usernet.onnx"],
    "validate": ["validate", "usernet.onnx", "--samples", "4"],
    "quantize": ["quantize", "usernet.onnx", "--int8", "--calib-dir", "calib.npy", "--method", "half-max", "--no-stats-cache"],
    "build-engine": ["build-engine", "--model", "usernet", "--int8", "--calib-dir", "calib.npy", "--method", "half-max",
                     "--no-stats-cache", "-o", "usernet.engine"],
    "bench": ["bench", "--model", "usernet", "--backend", "onnxruntime,torch", "--warmup", "0", "--duration", "0",
              "--iterations", "2", "--repeats", "1", "--workdir", "benchwork", "--json", "bench.json"],
    "run": ["run", "--model", "usernet", "--precision", "fp32,int8", "--calib-dir", "calib.npy", "--method", "half-max",
            "--no-stats-cache", "--samples", "4", "--bench-duration", "0.01s", "-o", "runout"],
    "package": ["package", "usernet.onnx", "--triton", "repo", "--kind", "cpu"],
    "quantize --help": ["quantize", "--help"],
    "run --help": ["run", "--help"],
    "build-engine --help": ["build-engine", "--help"],
}

DRIVER = textwrap.dedent('''
    import json, sys
    from click.testing import CliRunner
    from rtdeploy.cli.main import _register, cli

    _register()
    results = {}
    for name, argv in json.loads(sys.argv[1]).items():
        r = CliRunner().invoke(cli, argv)
        results[name] = {"code": r.exit_code, "stdout": r.stdout, "stderr": r.stderr}
    print(json.dumps(results))
''')


@pytest.fixture(scope="module")
def user_session(tmp_path_factory):
    """Every command run once in a fresh process that knows the user module only as a plugin."""
    work = tmp_path_factory.mktemp("user")
    (work / "usernet.py").write_text(USER_MODULE)
    np.save(work / "calib.npy", np.random.default_rng(0).random((8, 3, 16, 16), dtype=np.float32))
    env = {**os.environ, "RTDEPLOY_PLUGINS": "usernet", "PYTHONPATH": str(work), "RTDEPLOY_CACHE_DIR": str(work / "cache")}
    proc = subprocess.run([sys.executable, "-c", DRIVER, json.dumps(COMMANDS)], cwd=work, env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return work, json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.slow
@pytest.mark.parametrize("command", ["summary", "export", "validate", "quantize", "bench", "run", "package"])
def test_a_user_model_goes_through_every_command_by_name(user_session, command):
    work, results = user_session
    r = results[command]
    assert r["code"] == 0, r["stderr"]
    if command == "summary":
        assert json.loads((work / "summary.json").read_text())["model"]["name"] == "usernet"
    if command == "quantize":
        q = json.loads((work / "usernet.int8.onnx.json").read_text())["quantization"]
        assert q["method"] == "half-max" and q["quantized_layers"] == 3
    if command == "bench":
        models = {r["model"] for r in json.loads((work / "bench.json").read_text())["results"]}
        backends = {r["backend"] for r in json.loads((work / "bench.json").read_text())["results"]}
        assert models == {"usernet"} and backends == {"onnxruntime", "torch"}  # keyed by name; torch rebuilt by name
    if command == "run":
        assert "[   made] export" in r["stdout"] and "FAILED" not in r["stdout"]
        assert json.loads((work / "runout" / "usernet.int8.onnx.json").read_text())["quantization"]["method"] == "half-max"
    if command == "package":
        assert (work / "repo" / "usernet" / "1" / "model.onnx").is_file()


@pytest.mark.slow
def test_build_engine_takes_a_user_model_and_calibrator(user_session):
    """Without TensorRT the command ends with exit 4, after exporting and calibrating the user's model."""
    work, results = user_session
    r = results["build-engine"]
    assert r["code"] in (0, 4), r["stderr"]
    assert json.loads((work / "usernet.int8.onnx.json").read_text())["model"]["name"] == "usernet"


@pytest.mark.slow
@pytest.mark.parametrize("command", ["quantize --help", "run --help", "build-engine --help"])
def test_a_user_calibrator_is_in_every_method_choice(user_session, command):
    out = user_session[1][command]["stdout"]
    choices = out[out.index("--method [") + len("--method ["):].split("]")[0]
    assert choices.split("|") == ["entropy", "max", "percentile", "mse", "consumer-mse", "half-max"]


def test_an_installed_package_entry_point_registers_its_model(tmp_path):
    dist = tmp_path / "epnet-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: epnet\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[rtdeploy.plugins]\nepnet = epnet_models\n")
    (tmp_path / "epnet_models.py").write_text(
        "from rtdeploy.models import register_model\n\n"
        "@register_model('epnet', image_size=8, num_classes=2, preprocess='none')\n"
        "def epnet(num_classes=2):\n    raise NotImplementedError\n")
    code = "from rtdeploy.models import get_model; m = get_model('epnet').meta(); print(m.name, m.image_size, m.mean)"
    proc = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(tmp_path)}, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["epnet", "8", "(0.0,", "0.0,", "0.0)"]


def test_a_broken_plugin_is_one_line(tmp_path):
    """A plugin that fails to import (while the command line reads the registries for its choices)
    ends the command with one line naming it, exit 1."""
    (tmp_path / "brokenplugin.py").write_text("raise ValueError('typo in the plugin')\n")
    env = {**os.environ, "RTDEPLOY_PLUGINS": "brokenplugin", "PYTHONPATH": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-m", "rtdeploy.cli.entry", "summary", "--model", "resnet20"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1, proc.stderr
    assert "plugin RTDEPLOY_PLUGINS module brokenplugin failed to load: ValueError: typo in the plugin" in proc.stderr


def test_a_model_aware_calibrator_gets_the_model_plan_and_images(tmp_path):
    """The calibrator protocol: a calibrator that declares it needs the model and images gets them
    (here: thresholds from the mean |x| of each observed tensor on the images), and its settings
    are recorded in the manifest under its name."""
    from rtdeploy import api
    from rtdeploy.precision import calibrators

    seen = {}

    @calibrators.register_calibrator("test-mean-abs", needs=("model", "images"), targets=("tensorrt",),
                                     settings=lambda: {"statistic": "mean |x| x 4"})
    def mean_abs(stats, inputs):
        from rtdeploy.precision.int8.collect import augment, make_session

        tensors = list(stats)
        session = make_session(augment(inputs.model, tensors))
        batch = next(iter(inputs.batches(4)))
        values = dict(zip(tensors, session.run(tensors, {inputs.model.graph.input[0].name: batch})))
        seen.update(units=len(inputs.plan.units), batch=batch.shape[0])
        return {t: float(np.abs(v).mean() * 4) or 1.0 for t, v in values.items()}

    try:
        fp32 = api.export(depth=20, output=tmp_path / "r20.onnx").path
        calib = tmp_path / "calib.npy"
        np.save(calib, np.random.default_rng(0).normal(size=(8, 3, 32, 32)).astype(np.float32))
        r = api.quantize(fp32, int8=True, calib_dir=calib, method="test-mean-abs", stats_cache=False)
        import jsonschema

        from rtdeploy.manifests import load_schema

        manifest = json.loads(Path(str(r.path) + ".json").read_text())
        jsonschema.validate(manifest, load_schema("onnx-int8"))  # a user calibrator's record keeps to the published schema
        q = manifest["quantization"]
        assert q["method"] == "test-mean-abs" and q["calibrator_settings"] == {"calibrator": "test-mean-abs", "statistic": "mean |x| x 4"}
        assert seen == {"units": 29, "batch": 4}
        with pytest.raises(Exception, match="calibrates tensorrt only, not --target onnxruntime-cpu|calibrates tensorrt only, not target"):
            api.quantize(fp32, int8=True, calib_dir=calib, method="test-mean-abs", target="onnxruntime-cpu", stats_cache=False)
    finally:
        calibrators._registry.pop("test-mean-abs", None)
