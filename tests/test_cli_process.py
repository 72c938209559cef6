"""Process-level behaviour of the ``rtdeploy`` command: signals, stdout, and outputs that are not files.

These run the real command in a subprocess. None of them depends on timing: a signal is sent only
once the process has said, on stderr, that it is waiting at the point under test
(``RTDEPLOY_TEST_HOLD``, see ``rtdeploy.files._hold_for_test``), so it always lands there.
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

from rtdeploy.files import manifest_path, sha256_file
from conftest import message_lines

HOLD = "rtdeploy-test-hold: "


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "rtdeploy.cli.main", *args]


def _listing(d: Path) -> dict[str, str]:
    return {str(p.relative_to(d)): ("dir" if p.is_dir() else sha256_file(p)) for p in sorted(d.rglob("*"))}


def _held(args: list[str], point: str, cwd: Path) -> subprocess.Popen:
    """Start the command and return once it waits at ``point``."""
    env = {**os.environ, "RTDEPLOY_TEST_HOLD": point}
    return _at_hold(subprocess.Popen(_cli(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=cwd), point)


def _at_hold(proc: subprocess.Popen, point: str) -> subprocess.Popen:
    """``proc`` once it has said it waits at ``point``; what it wrote to stderr before is kept in
    ``proc.stderr_before_hold``."""
    seen = []
    while True:
        line = proc.stderr.readline()
        if not line:
            out, err = proc.communicate(timeout=60)
            pytest.fail(f"the command ended before reaching {point!r}: rc {proc.returncode}, stderr {''.join(seen) + err!r}")
        if line.startswith(HOLD):
            assert line.strip() == HOLD + point
            proc.stderr_before_hold = "".join(seen)
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


# --- issue 22: one signal policy from the first line to the exit ----------------------------------
# These run the command the way its console script does: the entry point is read from pyproject.toml,
# so the test holds whatever the installed `rtdeploy` runs, before and after the policy existed. A
# launcher holds the process inside the import of one module, or in an exit handler, and prints a
# line when it is there; the signal is sent after that line and before the hold is released (a
# newline on its stdin), so it always lands inside the hold. A command that would otherwise go on
# also waits in its write until a signal ends it (RTDEPLOY_TEST_HOLD=write), so it cannot finish
# before a held signal is acted on: the outcome never depends on timing.

REPO = Path(__file__).resolve().parents[1]

_LAUNCHER = r"""
import atexit, importlib, sys
entry, where, point, *argv = sys.argv[1:]

def hold():
    print("rtdeploy-test-hold: " + point, file=sys.stderr, flush=True)
    sys.stdin.readline()

class HoldAtImport:
    def find_spec(self, name, path=None, target=None):
        if name == point:
            sys.meta_path.remove(self)
            hold()
        return None

if where == "import":
    sys.meta_path.insert(0, HoldAtImport())
else:
    atexit.register(hold)  # registered first, so it runs last: after every library's own exit handler
sys.argv = ["rtdeploy", *argv]
module, _, function = entry.partition(":")
sys.exit(getattr(importlib.import_module(module), function)())
"""


def _console_entry() -> str:
    import re

    text = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    return re.search(r'^rtdeploy = "([\w.]+:\w+)"$', text, re.M).group(1)


def _launched(where: str, point: str, args: list[str], cwd: Path, *, hold_write: bool) -> subprocess.Popen:
    """Start the command under the launcher; return once it waits at ``point``."""
    env = {**os.environ, **({"RTDEPLOY_TEST_HOLD": "write"} if hold_write else {})}
    proc = subprocess.Popen([sys.executable, "-c", _LAUNCHER, _console_entry(), where, point, *args], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=cwd)
    return _at_hold(proc, point)


def _signalled(proc: subprocess.Popen, sig: int) -> tuple[str, str]:
    """Send ``sig`` inside the hold, then release it; the command's stdout and whole stderr."""
    proc.send_signal(sig)
    try:
        stdout, err = proc.communicate("\n", timeout=120)
        return stdout, proc.stderr_before_hold + err
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        pytest.fail(f"{signal.Signals(sig).name} was lost: the command went on (it waits in its write until a signal ends it)")


def _tiny_onnx(d: Path) -> Path:
    from tiny_graphs import classifier, save

    return save(classifier(), d / "m.onnx")


@pytest.mark.parametrize("point,sig,command", [
    ("click", signal.SIGTERM, "import"),                  # start-up: the command line's own modules are imported
    ("rtdeploy.cli.bench_cmd", signal.SIGHUP, "import"),  # start-up: the commands are registered
    pytest.param("numpy", signal.SIGINT, "export", marks=pytest.mark.slow),  # work: torch's C initialisation imports numpy (and swallowed the error)
], ids=["startup-click", "registering-commands", "numpy-under-torch"])
def test_signal_inside_an_import_is_one_line_and_128_plus_signal(tmp_path, point, sig, command):
    out = tmp_path / "out"
    out.mkdir()
    args = (["import", str(_tiny_onnx(out)), "--preprocess", "none"] if command == "import"
            else ["export", "--depth", "20", "-o", str(out / "r20.onnx")])
    before = _listing(out)
    proc = _launched("import", point, args, tmp_path, hold_write=True)
    stdout, err = _signalled(proc, sig)
    assert proc.returncode == 128 + sig, (proc.returncode, err)
    assert "Traceback" not in err and "Exception ignored" not in err, err
    assert _error_lines(err) == [f"error: interrupted ({sig.name}); no partial output was kept"], err
    assert stdout == "" and _listing(out) == before


@pytest.mark.parametrize("model,status,sig", [("m.onnx", 0, signal.SIGTERM), ("missing.onnx", 1, signal.SIGINT)],
                         ids=["finished", "refused"])
def test_signal_during_shutdown_keeps_the_commands_outcome(tmp_path, model, status, sig):
    """Once the command's exit status is decided its outputs are complete: a signal in the
    interpreter's exit handlers is ignored (it used to raise there: a traceback, and exit 0)."""
    _tiny_onnx(tmp_path)
    proc = _launched("exit", "exit", ["import", model, "--preprocess", "none"], tmp_path, hold_write=False)
    stdout, err = _signalled(proc, sig)
    assert proc.returncode == status, err
    assert "Traceback" not in err and "Exception ignored" not in err, err
    assert len(_error_lines(err)) == (0 if status == 0 else 1), err
    assert ("imported m.onnx" in stdout) == (status == 0)
    assert manifest_path(tmp_path / "m.onnx").is_file() == (status == 0)


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
