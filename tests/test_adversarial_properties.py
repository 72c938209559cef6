"""The adversarial matrix, grown by generators (hypothesis) instead of listed cases only.

Three generators, each over the space a listed case samples one point of:

- **paths**: every command output (``-o``, ``--json``, ``--markdown``, ``--trt-cache``,
  ``--timing-cache``) aimed at every kind of input (the model, its manifest, an ancestor and its
  manifest, a calibration image, another artifact's manifest), spelled every way (plainly, through
  ``..``, a symbolic link, a hard link). Property: refused in one line before any work, nothing in
  the folder changed (the output guard);
- **option combinations**: a command in one of its modes with any subset of its options (the
  samples and modes of tests/test_option_modes.py). Property: either accepted, or one line; and
  refused whenever the subset holds an option that mode ignores (the mode rule);
- **signal timings**: SIGINT, SIGTERM or SIGHUP delivered while a command writes its output, or
  while it commits the output and its manifest. Property: exit 128 + signal, one ``interrupted``
  line, no partial file, and an artifact never without its manifest.

The profile is derandomized with small example counts, so CI runs the same examples every time in
a few seconds each (the signal generator, which starts processes, is marked slow).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rtdeploy.errors import RtDeployError

settings.register_profile("adversarial", derandomize=True, deadline=None, database=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


def _snapshot(d: Path) -> dict[str, str]:
    out = {}
    for p in sorted(d.rglob("*")):
        key = str(p.relative_to(d))
        if p.is_symlink():
            out[key] = "link->" + os.readlink(p)
        elif p.is_file():
            out[key] = hashlib.sha256(p.read_bytes()).hexdigest()
        else:
            out[key] = "dir"
    return out


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """An export, its INT8 child, calibration images and another artifact, made once."""
    from PIL import Image

    from rtdeploy import api

    d = tmp_path_factory.mktemp("adversarial")
    api.export(depth=20, output=d / "m.onnx")
    api.export(depth=20, output=d / "other.onnx", num_classes=5)
    (d / "calib").mkdir()
    for i in range(3):
        Image.fromarray(np.full((36, 36, 3), 40 * i, np.uint8)).save(d / "calib" / f"img{i}.png")
    npy = d / "c.npy"
    np.save(npy, np.random.default_rng(0).random((4, 3, 32, 32), dtype=np.float32))
    api.quantize(d / "m.onnx", int8=True, calib_dir=npy, method="max", stats_cache=False)
    npy.unlink()
    return d


# (command line with OUT where the output goes, the input kinds it reads)
COMMANDS = [
    (["quantize", "{m}", "--int8", "--calib-dir", "{calib}", "-o", "OUT"], ("model", "manifest", "image")),
    (["quantize", "{m}", "--int8", "--calib-dir", "{calib}", "--trt-cache", "OUT"], ("model", "manifest", "image")),
    (["quantize", "{m}", "--fp16", "--calib-dir", "{calib}", "--json", "OUT"], ("model", "manifest", "image")),
    (["validate", "{int8}", "--json", "OUT"], ("model", "manifest", "int8", "int8 manifest")),
    (["bench", "--model", "{int8}", "--markdown", "OUT"], ("model", "manifest", "int8", "int8 manifest")),
    (["bench", "--model", "{m}", "--json", "OUT"], ("model", "manifest")),
    (["build-engine", "--onnx", "{m}", "--fp32", "-o", "OUT"], ("model", "manifest")),
    (["build-engine", "--onnx", "{m}", "--fp32", "--timing-cache", "OUT"], ("model", "manifest")),
    (["export", "--depth", "20", "-o", "OUT"], ("other manifest",)),
]
TARGETS = {"model": "m.onnx", "manifest": "m.onnx.json", "int8": "m.int8.onnx", "int8 manifest": "m.int8.onnx.json",
           "image": "calib/img1.png", "other manifest": "other.onnx.json"}
SPELLINGS = ("plain", "dotdot", "symlink", "hardlink")


def _spell(folder: Path, target: str, how: str, scratch: Path) -> Path:
    t = folder / target
    if how == "plain":
        return t
    if how == "dotdot":
        return folder / "calib" / ".." / target
    link = scratch / f"{how}-{t.name}"
    if how == "symlink":
        link.symlink_to(t)
    else:
        os.link(t, link)
    return link


@settings(settings.get_profile("adversarial"), max_examples=36)
@given(st.sampled_from(COMMANDS), st.data())
def test_no_output_lands_on_an_input_however_spelled(folder, command, data):
    argv, kinds = command
    kind = data.draw(st.sampled_from(kinds), label="input kind")
    # A hard link to another artifact's manifest is a name of its own: the atomic write replaces the
    # link, not that manifest, so it is not drawn for that target.
    how = data.draw(st.sampled_from([h for h in SPELLINGS if not (kind == "other manifest" and h == "hardlink")]), label="spelling")
    from rtdeploy.cli.main import _register, cli

    _register()
    scratch = folder.parent / f"{folder.name}-scratch"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir()
    try:
        out = _spell(folder, TARGETS[kind], how, scratch)
        before = _snapshot(folder)
        words = [w.format(m=folder / "m.onnx", int8=folder / "m.int8.onnx", calib=folder / "calib") for w in argv]
        result = CliRunner().invoke(cli, [str(out) if w == "OUT" else w for w in words])
        lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
        assert result.exit_code == 1, (result.exit_code, result.output)
        assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
        assert "would overwrite" in lines[0] or "named like a model file" in lines[0], lines[0]
        assert _snapshot(folder) == before, "an input changed"
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


@settings(settings.get_profile("adversarial"), max_examples=60)
@given(st.data())
def test_any_option_combination_is_accepted_or_refused_in_one_line(tmp_path_factory, data):
    from test_option_modes import IGNORED, MODES, _commands, _value

    from rtdeploy.options import check_modes, declared, flag_of

    files = _mode_files(tmp_path_factory)
    name = data.draw(st.sampled_from(sorted(MODES)), label="command")
    mode = data.draw(st.sampled_from(sorted(MODES[name])), label="mode")
    cls = _commands()[name].config_class
    base = {k: (files / v if isinstance(v, str) and (files / v).exists() else v) for k, v in MODES[name][mode].items()}
    free = sorted(f.name for f, _ in declared(cls) if f.name not in base)
    chosen = data.draw(st.lists(st.sampled_from(free), max_size=4, unique=True), label="options") if free else []
    ignored = [o for o in chosen if o in IGNORED.get(name, {}).get(mode, {})]
    # An option that itself decides a mode may make another apply (--trt-cache makes --trt-version do
    # something): the spec's modes hold only when no such option is drawn.
    axes = {d for m in IGNORED.get(name, {}).values() for d in m.values()} | {k for m in MODES[name].values() for k in m}
    try:
        cfg = cls(**base, **{o: _value(name, o, files) for o in chosen})
        check_modes(cfg)
    except RtDeployError as e:
        line = e.render(lambda field: flag_of(cls, field))
        assert "\n" not in line and line.strip()
        return
    if not axes & set(chosen):
        assert not ignored, f"`rtdeploy {name}` in mode {mode!r} accepted {ignored}, which that mode ignores"


_FILES: dict = {}


def _mode_files(factory) -> Path:
    if "d" not in _FILES:
        from test_option_modes import mode_files

        _FILES["d"] = mode_files(factory.mktemp("combinations"))
    return _FILES["d"]


# --- signal timings: a subprocess held at a step, then signalled ------------------------------------

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
HOLDS = ("write", "commit")
# Cheap commands that write an artifact with a manifest (export) or a report (summary --json).
WRITERS = {
    "export": (["export", "--depth", "20", "-o", "x.onnx"], "x.onnx"),
    "summary": (["summary", "--depth", "20", "--json", "s.json"], "s.json"),
}


@pytest.mark.slow
@settings(settings.get_profile("adversarial"), max_examples=3)
@given(st.sampled_from(SIGNALS), st.sampled_from(HOLDS), st.sampled_from(sorted(WRITERS)))
def test_a_signal_at_any_step_leaves_no_partial_file(tmp_path_factory, sig, hold, writer):
    d = tmp_path_factory.mktemp("signal")
    argv, out = WRITERS[writer]
    proc = subprocess.Popen([sys.executable, "-m", "rtdeploy.cli.main", *argv], cwd=d, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "RTDEPLOY_TEST_HOLD": hold})
    reached = False
    for line in proc.stderr:
        if line.startswith("rtdeploy-test-hold: "):
            reached = True
            break
    if not reached:  # the command has no such step (a report is committed without a manifest)
        proc.wait(timeout=120)
        assert proc.returncode == 0
        return
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + sig, err
    assert err.strip().splitlines()[-1].startswith(f"error: interrupted ({signal.Signals(sig).name})"), err
    assert not [p.name for p in d.iterdir() if p.name.endswith(".part")], "a partial file was left"
    written = (d / out).exists()
    manifest = (d / (out + ".json")).exists()
    if writer == "export":
        assert written == manifest, "an artifact without its manifest, or a manifest without its artifact"
