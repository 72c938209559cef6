"""Machine-readable output and the progress policy, the same for every command.

- ``--json -``: stdout is the JSON alone (it parses whole); the human lines go to stderr.
- progress bars go to stderr, by default only when stderr is a terminal; ``--progress`` and
  ``--no-progress`` force them on or off, on every long command.
"""

from __future__ import annotations

import json
import shutil

import pytest
from click.testing import CliRunner

from rtdeploy.files import manifest_path
from rtdeploy.cli.main import _register, cli

LONG_COMMANDS = ("export", "validate", "quantize", "bench", "run")


@pytest.fixture(scope="module")
def runner():
    _register()
    return CliRunner()


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    from rtdeploy import api

    d = tmp_path_factory.mktemp("exported")
    api.export(depth=20, output=d / "m.onnx")
    return d / "m.onnx"


@pytest.fixture
def model(exported, tmp_path):
    shutil.copyfile(exported, tmp_path / "m.onnx")
    shutil.copyfile(manifest_path(exported), manifest_path(tmp_path / "m.onnx"))
    return tmp_path / "m.onnx"


def _json_alone(result) -> dict:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)  # fails on any human line before or after the JSON


def test_export_json_stdout_is_the_json_alone(runner, tmp_path):
    data = _json_alone(runner.invoke(cli, ["export", "--depth", "20", "-o", str(tmp_path / "x.onnx"), "--json", "-"]))
    assert data["kind"] == "onnx" and data["artifact"] == "x.onnx"


def test_validate_json_stdout_is_the_json_alone(runner, model):
    result = runner.invoke(cli, ["validate", str(model), "--samples", "2", "--json", "-"])
    data = _json_alone(result)
    assert data["precision"] == "fp32"
    assert "PASS: within tolerance" in result.stderr


def test_quantize_json_stdout_is_the_json_alone(runner, model):
    result = runner.invoke(cli, ["quantize", str(model), "--fp16", "--calib-size", "4", "--no-stats-cache", "--json", "-"])
    data = _json_alone(result)
    assert data["precision"] == "fp16"
    # stderr: the phase lines a pipe gets (time of day, then the phase), then the summary line
    assert result.stderr.splitlines()[-1].startswith("wrote ")
    assert all(line[:2].isdigit() and line[2] == ":" for line in result.stderr.splitlines()[:-1]), result.stderr


def test_run_json_stdout_is_the_json_alone(runner, tmp_path):
    result = runner.invoke(cli, ["run", "--depth", "20", "--precision", "fp32", "--no-bench", "--no-engines", "--samples", "2",
                                 "-o", str(tmp_path / "out"), "--json", "-"])
    data = _json_alone(result)
    assert [s["name"] for s in data["stages"]][:2] == ["export", "validate-fp32"]
    assert "report:" in result.stderr


@pytest.mark.parametrize("command", LONG_COMMANDS)
def test_every_long_command_has_progress_on_and_off(command):
    _register()
    opts = {o for p in cli.commands[command].params for o in (*p.opts, *p.secondary_opts)}
    assert {"--progress", "--no-progress"} <= opts


def _bar_shown(stderr: str) -> bool:
    return "img/s" in stderr or "img]" in stderr  # tqdm's rate / count with unit "img"


@pytest.mark.parametrize("terminal,flag,shown", [
    (False, [], False), (False, ["--progress"], True), (True, [], True), (True, ["--no-progress"], False),
], ids=["pipe-default", "pipe-forced", "terminal-default", "terminal-off"])
def test_validate_progress_policy(runner, model, monkeypatch, terminal, flag, shown):
    monkeypatch.setattr("rtdeploy.cli.common.stderr_is_terminal", lambda: terminal)
    result = runner.invoke(cli, ["validate", str(model), "--samples", "4", "--batch", "2", *flag])
    assert result.exit_code == 0, result.output
    assert _bar_shown(result.stderr) is shown, result.stderr
    assert not _bar_shown(result.stdout)


@pytest.mark.parametrize("terminal,flag,shown", [(False, [], False), (True, [], True)], ids=["pipe-default", "terminal-default"])
def test_quantize_progress_policy(runner, model, monkeypatch, terminal, flag, shown):
    monkeypatch.setattr("rtdeploy.cli.common.stderr_is_terminal", lambda: terminal)
    result = runner.invoke(cli, ["quantize", str(model), "--fp16", "--calib-size", "4", "--no-stats-cache", *flag])
    assert result.exit_code == 0, result.output
    assert _bar_shown(result.stderr) is shown, result.stderr
