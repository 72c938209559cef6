"""Per-layer TensorRT profiles and trtexec's --exportProfile / --exportTimes formats.

The format oracle is real trtexec output: ../shared/reference/trt-engine-graphs/*.profile.json
(10 files written by `trtexec --exportProfile`; see that folder's README). Our writer, fed the
parsed numbers of each file, must give back the file byte for byte.

The stand-in execution context below encodes TensorRT's documented IProfiler contract (TensorRT
Python API, tensorrt.IProfiler — the docstring of the real bindings, also at
https://docs.nvidia.com/deeplearning/tensorrt/latest/_static/python-api/infer/Core/Profiler.html):
"the profiler will be called once per layer for each invocation of IExecutionContext.execute_v2()",
through ``report_layer_time(layer_name: str, ms: float)``, "the time in milliseconds to execute the
layer", layers named as in the network. trtexec's own collector (NVIDIA/TensorRT
samples/common/sampleReporting.cpp, Profiler::reportLayerTime) relies on the same order.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from rtdeploy.trt.profiler import (PROFILE_KEYS, TIMES_KEYS, LayerTimes, parse_profile, profile_text, read_profile,
                                   times_text, trace_records, write_profile, write_times)

sys.path.insert(0, str(Path(__file__).resolve().parent / "trt_stubs"))
import refdata  # noqa: E402

REF = refdata.graphs_dir()  # $RTDEPLOY_TRT_GRAPHS or ../shared beside the checkout, as every reference-data test
PROFILES = sorted(REF.glob("*.profile.json")) if REF.is_dir() else []
needs_ref = pytest.mark.skipif(not PROFILES, reason=f"real trtexec profiles not found in {REF} (../shared/reference)")


class StandInContext:
    """Runs 'inferences' of a fixed list of layers, reporting each layer's time to an attached profiler,
    once per layer per inference, in engine order (the documented IProfiler contract above)."""

    def __init__(self, layers: list[str], times_ms):
        self.layers = layers
        self.times_ms = times_ms  # callable (inference index, layer index) -> ms
        self.profiler = None
        self.runs = 0

    def execute(self):
        for j, name in enumerate(self.layers):
            if self.profiler is not None:
                self.profiler.report_layer_time(name, self.times_ms(self.runs, j))
        self.runs += 1
        return True


@needs_ref
@pytest.mark.parametrize("path", PROFILES, ids=lambda p: p.name)
def test_writer_reproduces_real_trtexec_profiles_byte_for_byte(path):
    raw = path.read_text(encoding="utf-8")
    prof = parse_profile(json.loads(raw))
    assert prof.count >= 1 and len(prof.layers) == len(json.loads(raw)) - 1
    rows = [{"name": lp.name, "timeMs": lp.time_ms, "averageMs": lp.average_ms, "medianMs": lp.median_ms,
             "percentage": lp.percentage} for lp in prof.layers]
    ours = profile_text(prof.count, rows)
    assert ours == raw
    theirs, again = json.loads(raw), json.loads(ours)
    assert [list(e) for e in again] == [list(e) for e in theirs]  # same keys, same order
    assert list(again[1]) == list(PROFILE_KEYS)


@needs_ref
def test_read_profile_gives_per_layer_times_to_join_with_a_layer_table():
    path = REF / "titanrtx-mobilenetv1-qat.profile.json"
    prof = read_profile(path)
    assert prof.count == 6610
    avg = prof.average_ms()
    assert avg["QuantizeLinear_2"] == pytest.approx(0.00474854)
    graph = json.loads((REF / "titanrtx-mobilenetv1-qat.graph.json").read_text(encoding="utf-8"))
    names = [layer["Name"] for layer in graph["Layers"]]
    assert names == [lp.name for lp in prof.layers]  # the README: profile names equal the graph's layer names, in order


def test_collector_over_a_stand_in_context_matches_trtexec_arithmetic(tmp_path):
    layers = ["conv1 + relu", "pool", "fc"]
    times = {0: [1.0, 2.0, 4.0, 3.0], 1: [0.5, 0.5, 0.5, 0.5], 2: [0.25, 0.25, 0.75, 0.25]}
    ctx = StandInContext(layers, lambda run, j: times[j][run])
    lt = LayerTimes()
    ctx.profiler = lt
    for _ in range(4):
        ctx.execute()
    assert lt.count == 4 and lt.names == layers
    rows = {r["name"]: r for r in lt.rows()}
    assert rows["conv1 + relu"]["timeMs"] == 10.0 and rows["conv1 + relu"]["averageMs"] == 2.5
    assert rows["conv1 + relu"]["medianMs"] == 2.5  # sorted 1 2 3 4: mean of the middle two, as trtexec
    assert rows["fc"]["medianMs"] == 0.25
    total = 10.0 + 2.0 + 1.5
    assert rows["pool"]["percentage"] == pytest.approx(2.0 / total * 100)
    out = write_profile(tmp_path / "p.json", lt)
    back = read_profile(out)
    assert back.count == 4 and [lp.name for lp in back.layers] == layers
    assert back.layers[0].time_ms == 10.0 and back.layers[2].percentage == pytest.approx(1.5 / total * 100, rel=1e-5)


def test_collector_reset_drops_warm_up_inferences():
    ctx = StandInContext(["a", "b"], lambda run, j: 100.0 if run < 2 else 1.0)
    lt = LayerTimes()
    ctx.profiler = lt
    ctx.execute(), ctx.execute()
    lt.reset()
    for _ in range(3):
        ctx.execute()
    assert lt.count == 3 and all(r["timeMs"] == 3.0 for r in lt.rows())


def test_times_format_is_trtexecs():
    split = {"h2d": [0.1, 0.1], "compute": [1.0, 2.0], "d2h": [0.05, 0.05]}
    recs = trace_records([10.0, 12.0], [11.5, 14.5], split)
    assert recs[0]["startEnqMs"] == 0.0 and recs[1]["startEnqMs"] == 2.0
    assert recs[1]["startComputeMs"] == pytest.approx(2.1) and recs[1]["endComputeMs"] == pytest.approx(4.1)
    assert recs[1]["endD2hMs"] == pytest.approx(4.15) and recs[1]["latencyMs"] == pytest.approx(2.15)
    text = times_text(recs)
    lines = text.splitlines()
    assert lines[0] == "[" and lines[1].startswith('  { "startEnqMs" : 0, ') and lines[2].startswith(', { ')
    assert lines[-1] == "]" and text.endswith("]\n")
    parsed = json.loads(text)
    assert [list(r) for r in parsed] == [list(TIMES_KEYS)] * 2


def test_times_file_is_written(tmp_path):
    out = write_times(tmp_path / "t.json", trace_records([0.0], [1.0], {"h2d": [0.1], "compute": [0.5], "d2h": [0.1]}))
    assert json.loads(out.read_text())[0]["computeMs"] == 0.5


@pytest.mark.parametrize("data, words", [({"count": 1}, "JSON list"), ([{"n": 1}], "count"),
                                         ([{"count": 1}, {"name": "a"}], "lacks timeMs")])
def test_parse_profile_rejects_what_is_not_a_profile(data, words):
    with pytest.raises(ValueError, match=words):
        parse_profile(data)


def test_read_profile_names_the_file_when_not_json(tmp_path):
    bad = tmp_path / "x.json"
    bad.write_text("[{", encoding="utf-8")
    with pytest.raises(ValueError, match="x.json is not JSON"):
        read_profile(bad)


def test_names_with_quotes_stay_valid_json():
    text = profile_text(1, [{"name": 'a "b"\\c', "timeMs": 1.0, "averageMs": 1.0, "medianMs": 1.0, "percentage": 100.0}])
    assert json.loads(text)[1]["name"] == 'a "b"\\c'


# -- the real bindings: our IProfiler subclass is accepted by each release's tensorrt.IProfiler ----------------------

sys.path.insert(0, str(Path(__file__).resolve().parent / "trt_stubs"))
import harness  # noqa: E402

SCRIPT = textwrap.dedent("""
    import tensorrt_bindings as trt
    from rtdeploy.trt.profiler import LayerTimes, make_trt_profiler
    lt = LayerTimes()
    p = make_trt_profiler(trt, lt)
    assert isinstance(p, trt.IProfiler)
    for _ in range(2):
        for name, ms in (("conv", 1.0), ("fc", 0.5)):
            p.report_layer_time(name, ms)
    assert lt.count == 2 and lt.names == ["conv", "fc"], (lt.count, lt.names)
    print("ok")
""")


@pytest.mark.parametrize("version", list(harness.RELEASES))
@pytest.mark.slow
def test_profiler_subclasses_the_real_iprofiler(version, tmp_path):
    try:
        env = harness.prepare(harness.RELEASES[version])
    except harness.Unavailable as e:
        pytest.skip(f"TensorRT {version} bindings unavailable: {e}")
    env = {**env, "PYTHONPATH": os.pathsep.join([env.get("PYTHONPATH", ""), str(Path(__file__).resolve().parents[1])])}
    proc = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-2000:]
