"""Process-level behaviour of the ``rtdeploy`` command: signals, stdout, and outputs that are not files.

These run the real command in a subprocess. None of them depends on timing: a signal is sent only
once the process has said, on stderr, that it is waiting at the point under test
(``RTDEPLOY_TEST_HOLD``, see ``rtdeploy.artifacts._hold_for_test``), so it always lands there.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from rtdeploy.artifacts import manifest_path, sha256_file
from conftest import message_lines

HOLD = "rtdeploy-test-hold: "


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "rtdeploy.cli.main", *args]


def _listing(d: Path) -> dict[str, str]:
    return {str(p.relative_to(d)): ("dir" if p.is_dir() else sha256_file(p)) for p in sorted(d.rglob("*"))}


def _held(args: list[str], point: str, cwd: Path) -> subprocess.Popen:
    """Start the command and return once it waits at ``point``."""
    env = {**os.environ, "RTDEPLOY_TEST_HOLD": point}
    proc = subprocess.Popen(_cli(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=cwd)
    seen = []
    while True:
        line = proc.stderr.readline()
        if not line:
            out, err = proc.communicate(timeout=60)
            pytest.fail(f"the command ended before reaching {point!r}: rc {proc.returncode}, stderr {''.join(seen) + err!r}")
        if line.startswith(HOLD):
            assert line.strip() == HOLD + point
            return proc
        seen.append(line)


def _error_lines(err: str) -> list[str]:
    return [ln for ln in err.splitlines() if ln.strip() and not ln.startswith(("INFO", "WARNING", "DEBUG"))]


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Path:
    from rtdeploy import api

    d = tmp_path_factory.mktemp("exported")
    api.export(depth=20, output=d / "m.onnx")
    return d / "m.onnx"


def _copy_model(src: Path, d: Path) -> Path:
    import shutil

    shutil.copyfile(src, d / "m.onnx")
    shutil.copyfile(manifest_path(src), manifest_path(d / "m.onnx"))
    return d / "m.onnx"


# --- class 7 and 11: signals, deterministic ------------------------------------------------------

@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=lambda s: s.name)
@pytest.mark.slow
def test_signal_during_export_leaves_nothing(tmp_path, sig):
    proc = _held(["export", "--depth", "20", "-o", str(tmp_path / "r20.onnx")], "write", tmp_path)
    assert any(p.name.endswith(".part") for p in tmp_path.iterdir()), "held inside the write, a .part file exists"
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + sig, err
    assert "Traceback" not in err
    lines = _error_lines(err)
    assert lines == [f"error: interrupted ({sig.name}); no partial output was kept"], err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_second_ctrl_c_prints_no_traceback(tmp_path):
    proc = _held(["export", "--depth", "20", "-o", str(tmp_path / "r20.onnx")], "write", tmp_path)
    proc.send_signal(signal.SIGINT)
    proc.send_signal(signal.SIGINT)  # during the cleanup, or after the exit: either way ignored
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "Exception ignored" not in err
    assert len(_error_lines(err)) == 1, err
    assert list(tmp_path.iterdir()) == []


def test_sigterm_while_quantize_writes_leaves_nothing(tmp_path, exported):
    _copy_model(exported, tmp_path)
    before = _listing(tmp_path)
    proc = _held(["quantize", "m.onnx", "--fp16", "--no-stats-cache", "-o", "q.onnx"], "write", tmp_path)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143 and "Traceback" not in err, err
    assert _listing(tmp_path) == before


def test_signal_between_model_and_manifest_never_splits_the_pair(tmp_path, exported):
    """The model and its manifest are put in place with signals held back: a SIGHUP that arrives
    then is acted on only after both are written, so the model never lies there without its manifest."""
    _copy_model(exported, tmp_path)
    proc = _held(["quantize", "m.onnx", "--fp16", "--no-stats-cache", "-o", "q.onnx"], "commit", tmp_path)
    proc.send_signal(signal.SIGHUP)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 129 and "Traceback" not in err, err
    q = tmp_path / "q.onnx"
    assert q.is_file() and manifest_path(q).is_file(), sorted(p.name for p in tmp_path.iterdir())
    assert json.loads(manifest_path(q).read_text())["sha256"] == sha256_file(q)
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".part")]


# --- class 1: outputs that are not regular files ------------------------------------------------

# The tests write to links to the devices, never to /dev itself: run against code that renames over
# its output (rtdeploy before issue 11), /dev/stdout or /dev/full themselves would be replaced by
# regular files on the machine. A link resolves exactly as /dev/stdout does (to /proc/self/fd/1).

@pytest.mark.slow
def test_json_to_dev_stdout_writes_through(tmp_path):
    (tmp_path / "stdout.json").symlink_to("/dev/stdout")
    proc = subprocess.run(_cli("summary", "--depth", "20", "--blocks-only", "--json", str(tmp_path / "stdout.json")), capture_output=True,
                          text=True, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr
    start = proc.stdout.index("{")
    assert json.loads(proc.stdout[start:])["total_params"] == 269722  # ResNet-20's published 0.27 M
    assert os.readlink(tmp_path / "stdout.json") == "/dev/stdout"
    assert [p.name for p in tmp_path.iterdir()] == ["stdout.json"]


@pytest.mark.slow
def test_json_to_fifo_writes_through(tmp_path):
    fifo = tmp_path / "report.fifo"
    os.mkfifo(fifo)
    got = {}
    reader = threading.Thread(target=lambda: got.setdefault("data", fifo.read_text()), daemon=True)
    reader.start()
    proc = subprocess.run(_cli("summary", "--depth", "20", "--json", str(fifo)), capture_output=True, text=True, timeout=300)
    reader.join(timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(got["data"])["total_params"] == 269722
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode), "the FIFO was replaced by a regular file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.fifo"]


def test_json_to_a_symlink_keeps_the_link(tmp_path):
    from click.testing import CliRunner

    from rtdeploy.cli.main import _register, cli

    _register()
    (tmp_path / "store").mkdir()
    (tmp_path / "store" / "summary.json").write_text("old")
    (tmp_path / "latest.json").symlink_to(tmp_path / "store" / "summary.json")
    result = CliRunner().invoke(cli, ["summary", "--depth", "20", "--json", str(tmp_path / "latest.json")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "latest.json").is_symlink()
    assert json.loads((tmp_path / "store" / "summary.json").read_text())["total_params"] == 269722
    assert sorted(p.name for p in (tmp_path / "store").iterdir()) == ["summary.json"]


def test_failed_json_write_after_export_is_an_error_and_the_model_pair_is_whole(tmp_path):
    from click.testing import CliRunner

    from rtdeploy.cli.main import _register, cli

    _register()
    (tmp_path / "full.json").symlink_to("/dev/full")
    result = CliRunner().invoke(cli, ["export", "--depth", "20", "-o", str(tmp_path / "m.onnx"), "--json", str(tmp_path / "full.json")])
    assert result.exit_code == 1, result.output
    assert message_lines(result.stderr) == [
        f"error: could not write {tmp_path / 'full.json'}: No space left on device; free space or choose another output path"]
    m = tmp_path / "m.onnx"
    assert json.loads(manifest_path(m).read_text())["sha256"] == sha256_file(m)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["full.json", "m.onnx", "m.onnx.json"]
    assert (tmp_path / "full.json").is_symlink()


@pytest.mark.parametrize("args", [("doctor",), ("summary", "--depth", "20"), ("summary", "--depth", "20", "--json", "-"), ("--help",)])
@pytest.mark.slow
def test_stdout_reader_gone_is_a_quiet_sigpipe_exit(args):
    """`rtdeploy doctor | head -1`: once the reader has gone there is nobody to report to. A shell tool
    stops quietly with 128 + SIGPIPE; here too, not with an error line or a traceback. The pipe's
    read end is closed before the command starts, so its first write always meets a gone reader."""
    r, w = os.pipe()
    os.close(r)
    try:
        proc = subprocess.run(_cli(*args), stdout=w, stderr=subprocess.PIPE, text=True, timeout=300)
    finally:
        os.close(w)
    assert proc.returncode == 128 + signal.SIGPIPE, proc.stderr
    assert proc.stderr == ""
