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
    result = api.bench(depth="20,32", backend="torch,onnxruntime", precision="fp32", iterations=5, duration=0, repeats=2,
                       warmup="0", threads=1, workdir=out / "work", json=out / "r.json", markdown=out / "r.md", plot=out / "r.png")
    return result, out


def test_sweep_times_every_supported_combination(sweep):
    result, _ = sweep
    rep = result.report
    ids = [r["id"] for r in rep["results"]]
    assert {"resnet20/torch/fp32/b1", "resnet20/onnxruntime/fp32/b1", "resnet32/torch/fp32/b1", "resnet32/onnxruntime/fp32/b1"} <= set(ids)
    for r in rep["results"]:
        assert len(r["repeats"]) == 2 and all(x["count"] == 5 for x in r["repeats"])
        assert r["host_ms"]["count"] == 10 and r["host_ms"]["tail_counts"] == {"p90": 1, "p95": 0, "p99": 0}
        assert r["host_ms"]["p90"] is None and r["streams"] == 1 and len(r["per_stream"]) == 1
        assert (r["settings"]["min_iterations"], r["settings"]["min_duration_s"]) == (5, 0.0)
        assert r["throughput_window"]["images"] == 10
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
    assert "| resnet32 fp32 | onnxruntime[CPU] | 1 | 10 |" in md and "## Latency against GMACs" in md
    assert "| n/a | n/a | n/a |" in md, "10 samples: no tail percentile may be shown as a number"
    assert (out / "r.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(out.glob(".*.part")), "no temporary files may be left behind"
    table = terminal_table(result.report)
    assert "median ms" in table and "resnet20" in table and "device ms" not in table and "streams" not in table


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
        lambda d: d["results"][0]["host_ms"].pop("tail_counts"),
        lambda d: d["results"][0].pop("streams"),
        lambda d: d["results"][0].pop("throughput_window"),
        lambda d: d["results"][0]["throughput_window"].pop("wall_ms"),
        lambda d: d["settings"].pop("streams"),
        lambda d: d.pop("measured"),
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

    def no_export(cfg):
        raise AssertionError("a matching export must be reused")

    monkeypatch.setattr("rtdeploy.make_or_reuse.export_onnx", no_export)
    api.bench(depth="20", iterations=1, duration=0, repeats=1, warmup="0", workdir=work)
    assert onnx.stat().st_mtime_ns == before
    monkeypatch.undo()
    onnx.write_bytes(onnx.read_bytes() + b"\0")  # bytes no longer match the manifest's sha256
    api.bench(depth="20", iterations=1, duration=0, repeats=1, warmup="0", workdir=work)
    assert onnx.stat().st_mtime_ns != before


@pytest.mark.slow
def test_unsupported_and_unavailable_precisions_are_skipped_with_notes(tmp_path, monkeypatch):
    from rtdeploy.errors import MissingDependency

    def quantize(cfg):  # as when a library the precision stage needs is not installed
        raise MissingDependency("the quantize stage needs a missing library; install it")

    monkeypatch.setattr("rtdeploy.make_or_reuse.quantize", quantize)
    rep = api.bench(depth="20", backend="torch,onnxruntime", precision="fp32,int8", iterations=1, duration=0, repeats=1, warmup="0",
                    workdir=tmp_path).report
    assert sorted(r["id"] for r in rep["results"]) == ["resnet20/onnxruntime/fp32/b1", "resnet20/torch/fp32/b1"]
    reasons = {(s["backend"], s["precision"]): s["reason"] for s in rep["skipped"]}
    assert "INT8" in reasons[("torch", "int8")] and "quantize stage needs a missing library" in reasons[("onnxruntime", "int8")]
    assert "## Skipped" in markdown(rep)


@pytest.mark.slow
def test_int8_and_fp16_onnx_through_the_precision_stage(tmp_path):
    rep = api.bench(depth="20", precision="fp32,fp16,int8", iterations=2, duration=0, repeats=1, warmup="0", workdir=tmp_path).report
    validate(rep)
    by_precision = {r["precision"]: r for r in rep["results"]}
    assert set(by_precision) == {"fp32", "fp16", "int8"}
    for p in ("fp16", "int8"):
        assert by_precision[p]["artifact"]["path"].endswith(f"resnet20_32px.{p}.onnx")
    assert (tmp_path / "calib_synthetic_3x32px_16.npy").is_file(), "the sweep calibrates on its own synthetic inputs"


def test_cli_json_to_stdout(tmp_path):
    from rtdeploy.cli.main import _register, cli

    _register()
    res = CliRunner().invoke(cli, ["bench", "--depth", "20", "--iterations", "2", "--duration", "0", "--repeats", "1", "--warmup", "0",
                                   "--workdir", str(tmp_path), "--json", "-", "--no-progress"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    validate(data)
    assert data["command"].startswith("rtdeploy ") and "median ms" in res.stderr


class FakeTrtRunner:
    """Stands in for rtdeploy.trt.runner.TrtRunner on a CPU: onnxruntime underneath, fixed 'CUDA event' times."""

    def __init__(self, engine, cuda_graph=False, scratch=None):
        from rtdeploy.runners.base import Runner

        class _Fake(Runner):
            def _activate(inner):
                from types import SimpleNamespace

                from rtdeploy.artifacts import read_manifest
                from rtdeploy.runners.ort_runner import OrtRunner

                m = read_manifest(engine)
                inner.profile = SimpleNamespace(**{k: m["profile"][k] for k in ("min", "opt", "max")})
                inner.ort = OrtRunner(m["parent"]["path"]).activate()
                inner.input_names, inner.output_names = inner.ort.input_names, inner.ort.output_names

            def _infer(inner, feed):
                inner.last_timings = {"h2d_ms": 0.25, "compute_ms": 1.5, "d2h_ms": 0.05, "total_ms": 1.8}
                return inner.ort.infer(feed)

        self.runner = _Fake()
        self.runner.name = "tensorrt[graph]" if cuda_graph else "tensorrt"
        self.runner.last_timings = {}
        self.runner.scratch = scratch


class FakeScratchPool:
    """Stands in for rtdeploy.trt.runner.ScratchPool: records which lane got which buffer."""

    def __init__(self):
        self.given, self.closed = [], False

    def get(self, lane, size):
        self.given.append((lane, size))
        return ("scratch", lane, max(s for ln, s in self.given if ln == lane))

    def close(self):
        self.closed = True


class BuildLog(list):
    """The engines the fake build stage wrote, and (``pools``) the scratch pools the sweeps opened."""


@pytest.fixture
def fake_tensorrt(monkeypatch):
    """TensorRT 'installed' and 'on a GPU': engines are manifests over the ONNX, run by onnxruntime."""
    from types import SimpleNamespace

    from manifest_fakes import write_engine_manifest
    from rtdeploy.artifacts import read_manifest

    builds = BuildLog()
    pools, loads = [], []

    def build_engine(opts):  # the build stage's signature; records what the real stage records
        from rtdeploy.make_or_reuse import engine_wanted
        from rtdeploy.trt.options import BatchProfile

        onnx, output, profile = opts.onnx, opts.output, BatchProfile.parse(opts.batch)
        builds.append(output)
        output.write_bytes(b"plan of " + onnx.name.encode())
        write_engine_manifest(output, onnx, precision=opts.precision, model=read_manifest(onnx)["model"],
                              profile=(profile.min, profile.opt, profile.max), derivation=engine_wanted(opts, opts.precision))
        return SimpleNamespace(path=output)

    monkeypatch.setattr("rtdeploy.bench.backends.check_installed", lambda backend: None)
    monkeypatch.setattr("rtdeploy.bench.backends.check_device", lambda backends, device: None)
    monkeypatch.setattr("rtdeploy.bench.backends.trt_runner",
                        lambda engine, cuda_graph, shared=None, scratch=None: FakeTrtRunner(engine, cuda_graph, scratch).runner)
    monkeypatch.setattr("rtdeploy.bench.backends.trt_shared_engine", lambda engine: loads.append(engine) or SimpleNamespace(path=engine))
    monkeypatch.setattr("rtdeploy.bench.backends.trt_scratch_pool", lambda shared: pools.append(FakeScratchPool()) or pools[-1])
    # a context's scratch memory grows with the batch its engine was built for (stand-in figure)
    monkeypatch.setattr("rtdeploy.bench.backends.trt_scratch_size", lambda shared: 1000 * read_manifest(shared.path)["profile"]["max"])
    monkeypatch.setattr("rtdeploy.trt.build_engine", build_engine)
    monkeypatch.setattr("rtdeploy.trt.stage.target_here", lambda hardware_compatibility=None: "TensorRT 10.3.0, compute 8.6, linux-x86_64")
    builds.pools, builds.loads = pools, loads
    return builds


@pytest.mark.slow
def test_tensorrt_path_records_device_split_and_reuses_engines(tmp_path, fake_tensorrt):
    kw = dict(depth="20", backend="tensorrt", device="cuda", batch="1,2", iterations=3, duration=0, repeats=2, warmup="0",
              cuda_graph=True, workdir=tmp_path)
    rep = api.bench(**kw).report
    validate(rep)
    assert [r["id"] for r in rep["results"]] == ["resnet20/tensorrt/fp32/b1", "resnet20/tensorrt/fp32/b2"]
    for r in rep["results"]:
        assert r["runner"] == "tensorrt[graph]" and r["device"] == "cuda"
        b = r["batch"]
        assert r["settings"] == {"timer": "tensorrt-cuda-events", "threads": None, "cuda_graph": True, "spin_wait": None,
                                 "data_transfers": True, "channels_last": False, "compile": False, "warmup_s": 0.0,
                                 "min_iterations": 3, "min_duration_s": 0.0, "streams": 1, "profile": f"{b}:{b}:{b}",
                                 "streams_mode": "one execution context and CUDA stream per stream, each run from its own thread"}
        assert r["artifact"]["path"].endswith(f"resnet20_32px.fp32.b{b}.engine")
        assert r["device_ms"]["median"] == 1.5 and r["device_ms"]["count"] == 6
        assert r["split_ms"]["h2d"]["median"] == 0.25 and r["split_ms"]["d2h"]["max"] == 0.05
    assert "device ms" in terminal_table(rep) and "tuned for" not in terminal_table(rep)
    # finding 8 of issue 19: one static engine per batch (trtexec --shapes), not every batch on a 1:min(8,max):max profile
    assert [p.name for p in fake_tensorrt] == ["resnet20_32px.fp32.b1.engine", "resnet20_32px.fp32.b2.engine"]
    # contexts of every batch share one scratch buffer per stream, sized for the largest engine
    (pool,) = fake_tensorrt.pools
    assert pool.given == [(0, 2000)] and pool.closed
    api.bench(**kw)
    assert len(fake_tensorrt) == 2, "engines whose manifests match must be reused"
    api.bench(**{**kw, "batch": "4"})
    assert [p.name for p in fake_tensorrt[2:]] == ["resnet20_32px.fp32.b4.engine"], "a batch without its engine gets one"


def test_given_engine_batch_outside_its_profile(tmp_path, fake_tensorrt):
    from rtdeploy.bench.report import markdown
    from rtdeploy.make_or_reuse import engine
    from rtdeploy.errors import BenchmarkError
    from rtdeploy.trt import BuildOptions

    api.bench(depth="20", backend="tensorrt", device="cuda", batch="2", iterations=1, duration=0, repeats=1, warmup="0", workdir=tmp_path)
    given = engine(BuildOptions(onnx=tmp_path / "resnet20_32px.onnx", precision="fp32", batch="1:2:2")).path
    with pytest.raises(BenchmarkError, match="larger than engine resnet20_32px.fp32.engine's optimization profile"):
        api.bench(model=given, device="cuda", batch="4", iterations=1, duration=0, workdir=tmp_path)
    del fake_tensorrt.loads[:]
    rep = api.bench(model=given, device="cuda", batch="1,2", iterations=1, duration=0, repeats=1, warmup="0", workdir=tmp_path).report
    assert [r["batch"] for r in rep["results"]] == [1, 2] and all(r["backend"] == "tensorrt" for r in rep["results"])
    assert fake_tensorrt.loads == [given]
    # one given engine, deserialized once for both batches; timed on its own profile, and where its OPT is not the
    # batch timed, every such row says so
    assert [r["settings"]["profile"] for r in rep["results"]] == ["1:2:2", "1:2:2"]
    assert "tuned for" in terminal_table(rep) and "| batch 2 |" in markdown(rep)
    assert any("timed on an engine tuned for another batch" in n for n in rep["notes"])


def test_given_onnx_files_of_one_model_get_distinct_ids(tmp_path, exported):
    import shutil

    first = exported(20).path
    second = tmp_path / "copy.onnx"
    shutil.copy(first, second)
    shutil.copy(str(first) + ".json", str(second) + ".json")
    rep = api.bench(model=f"{first},{second}", iterations=1, duration=0, repeats=1, warmup="0", workdir=tmp_path).report
    ids = [r["id"] for r in rep["results"]]
    assert len(set(ids)) == 2 and all(i.startswith("resnet20[") for i in ids) and any("copy.onnx" in i for i in ids)


# -- streams, exports, artifact names -----------------------------------------------------------------------------


def test_streams_on_onnxruntime_cpu(tmp_path):
    """--streams 1,2 on onnxruntime CPU: a configuration per stream count, one session per stream, per-stream
    latencies and the aggregate throughput, in every rendering."""
    out = tmp_path / "r"
    res = api.bench(depth="20", streams="1,2", iterations=3, duration=0, repeats=2, warmup="0", threads=1, workdir=tmp_path,
                    markdown=out.with_suffix(".md"), plot=out.with_suffix(".png"))
    rep = res.report
    validate(rep)
    assert [r["id"] for r in rep["results"]] == ["resnet20/onnxruntime/fp32/b1", "resnet20/onnxruntime/fp32/b1/s2"]
    one, two = rep["results"]
    assert (one["streams"], two["streams"]) == (1, 2) and rep["settings"]["streams"] == [1, 2]
    assert [p["count"] for p in two["per_stream"]] == [6, 6] and two["host_ms"]["count"] == 12
    assert all(r["count"] == 6 for r in two["repeats"])
    assert two["throughput_window"]["images"] == 12
    assert "session per stream" in two["settings"]["streams_mode"]
    md = out.with_suffix(".md").read_text()
    assert "## Throughput against streams" in md and "session per stream" in md
    assert "streams" in terminal_table(rep)
    assert out.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"


def test_tensorrt_streams_open_one_runner_per_stream(tmp_path, fake_tensorrt, monkeypatch):
    made = []
    real = __import__("rtdeploy.bench.backends", fromlist=["trt_runner"]).trt_runner

    def counting(engine, cuda_graph, shared=None, scratch=None):
        made.append((engine, shared, scratch))
        return real(engine, cuda_graph=cuda_graph, shared=shared, scratch=scratch)

    monkeypatch.setattr("rtdeploy.bench.backends.trt_runner", counting)
    rep = api.bench(depth="20", backend="tensorrt", device="cuda", streams="1,3", iterations=2, duration=0, repeats=1,
                    warmup="0", workdir=tmp_path).report
    validate(rep)
    assert len(made) == 3, "one execution context (runner) per stream"
    assert len({id(s) for _, s, _ in made}) == 1 and made[0][1].path == made[0][0], "every context runs on the one deserialized engine"
    assert [lane for _, _, (_, lane, _) in made] == [0, 1, 2], "streams run at once: each its own scratch buffer"
    s3 = rep["results"][1]
    assert s3["streams"] == 3 and len(s3["per_stream"]) == 3 and s3["split_ms"]["compute"]["count"] == 6


@pytest.mark.slow
def test_tensorrt_batches_get_their_own_contexts_sharing_scratch_memory(tmp_path, fake_tensorrt, monkeypatch):
    # A captured CUDA graph belongs to one input shape (TensorRT #3798, see docs/tensorrt.md): interleaving
    # batch sizes on one execution context would re-capture inside the timed windows. The contexts are timed
    # one at a time, so they share one scratch buffer instead of one each (Jetson's unified memory ran out).
    made = []
    real = __import__("rtdeploy.bench.backends", fromlist=["trt_runner"]).trt_runner

    def counting(engine, cuda_graph, shared=None, scratch=None):
        runner = real(engine, cuda_graph=cuda_graph, shared=shared, scratch=scratch)
        made.append(runner)
        return runner

    monkeypatch.setattr("rtdeploy.bench.backends.trt_runner", counting)
    api.bench(depth="20", backend="tensorrt", device="cuda", batch="1,2", cuda_graph=True, iterations=2, duration=0,
              repeats=2, warmup="0", workdir=tmp_path)
    assert len(made) == 2 and made[0] is not made[1], "one context per batch size"
    assert made[0].scratch == made[1].scratch == ("scratch", 0, 2000), "one buffer, as large as the largest engine needs"


class ProfiledFake:
    """A TensorRT runner stand-in whose execution context reports to an attached IProfiler once per layer per
    inference, in engine order (TensorRT Python API, tensorrt.IProfiler; see tests/test_trt_profiler.py)."""

    LAYERS = ("conv1 + relu", "layer1.0", "fc")

    def __init__(self, profiler):
        self.profiler, self.calls, self.last_timings = profiler, 0, {}
        self.input_names = ["input"]

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def infer(self, feed):
        self.calls += 1
        for i, name in enumerate(self.LAYERS):
            self.profiler.report_layer_time(name, 0.5 * (i + 1))
        self.last_timings = {"h2d_ms": 0.1, "compute_ms": 3.0, "d2h_ms": 0.01}
        return {}


def test_export_profile_and_times_in_trtexecs_formats(tmp_path, fake_tensorrt, monkeypatch):
    from rtdeploy.trt.profiler import TIMES_KEYS, read_profile

    runners = []

    def profiled(engine, times):
        runners.append(ProfiledFake(times))
        return runners[-1]

    monkeypatch.setattr("rtdeploy.bench.backends.trt_profiled_runner", profiled)
    prof, times = tmp_path / "prof.json", tmp_path / "times.json"
    res = api.bench(depth="20", backend="tensorrt", device="cuda", iterations=4, duration=0, repeats=1, warmup="0",
                    workdir=tmp_path, export_profile=prof, export_times=times)
    rep = res.report
    validate(rep)
    assert prof in res.written and times in res.written
    p = read_profile(prof)
    assert p.count == 4 == rep["exports"]["profile_count"], "warm-up excluded, the window's 4 inferences counted"
    assert [lp.name for lp in p.layers] == list(ProfiledFake.LAYERS)
    assert [lp.average_ms for lp in p.layers] == [0.5, 1.0, 1.5] and p.layers[2].percentage == pytest.approx(50.0)
    recs = json.loads(times.read_text())
    assert len(recs) == 4 == rep["exports"]["times_count"] and list(recs[0]) == list(TIMES_KEYS)
    assert all(r["computeMs"] == 1.5 and r["h2dMs"] == 0.25 for r in recs)  # the fake engine's CUDA-event times
    assert recs[0]["startEnqMs"] == 0 and all(b["startEnqMs"] >= a["endEnqMs"] for a, b in zip(recs, recs[1:]))


@pytest.mark.slow
def test_two_int8_models_of_one_network_get_distinct_rows(tmp_path):
    """Different calibrators (and kept layers) come from each INT8 model's manifest into its label."""
    import shutil

    from rtdeploy.artifacts import read_manifest, write_manifest

    api.bench(depth="20", precision="int8", iterations=1, duration=0, repeats=1, warmup="0", workdir=tmp_path)
    first = tmp_path / "resnet20_32px.int8.onnx"
    second = tmp_path / "other" / "resnet20_32px.int8.onnx"
    second.parent.mkdir()
    shutil.copy(first, second)
    m = read_manifest(first)
    m["quantization"] = {**m["quantization"], "method": "entropy", "kept_fp": [{"node": "/conv1/Conv", "op_type": "Conv"}]}
    write_manifest(second, m)
    rep = api.bench(model=f"{first},{second}", iterations=1, duration=0, repeats=1, warmup="0", workdir=tmp_path).report
    validate(rep)
    labels = [r["label"] for r in rep["results"]]
    assert labels == ["resnet20 int8 max", "resnet20 int8 entropy, 1 kept in float (/conv1/Conv)"]
    assert rep["results"][1]["quantization"] == {"calibrator": "entropy", "kept_fp": ["/conv1/Conv"], "target": "tensorrt"}
    rows: list[str] = []  # a row is its line and the continuation lines of its wrapped label (tables fit 100 columns)
    for line in terminal_table(rep).splitlines()[2:]:
        if line.startswith("note:"):
            break
        rows.append(line) if "onnxruntime[" in line else rows.__setitem__(-1, rows[-1] + " " + line.strip())
    assert len(rows) == 2 and rows[0] != rows[1] and "max" in rows[0] and "entropy" in rows[1], rows


@pytest.mark.parametrize("name", ["sweep_cpu.json", "sweep_cpu.streams.json"])
def test_recorded_sweeps_follow_the_schema(name):
    """The reports committed under benchmarks/results/ are what this version writes."""
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / name
    rep = json.loads(path.read_text(encoding="utf-8"))
    validate(rep)
    assert all(r["host_ms"]["count"] >= r["settings"]["min_iterations"] * r["streams"] * len(r["repeats"]) for r in rep["results"])
