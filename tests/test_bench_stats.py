"""Statistics and the timing harness on known, hand-made sequences (no real timing asserted)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rtdeploy.bench.harness import Case, HostTimer, TrtTimer, Window, run_interleaved, time_window, warm_up
from rtdeploy.bench.results import result_record, scaling_table
from rtdeploy.bench.stats import noise_warnings, percentile, summarize, summarize_repeats, throughput

ONE_TO_TEN = [float(i) for i in range(1, 11)]


@pytest.mark.parametrize("q, expected", [(0, 1.0), (50, 5.5), (90, 9.1), (95, 9.55), (99, 9.91), (100, 10.0), (25, 3.25)])
def test_percentile_interpolates_between_ranks(q, expected):
    assert percentile(ONE_TO_TEN, q) == pytest.approx(expected, abs=1e-12)


def test_percentile_agrees_with_numpy_linear_on_random_data():
    xs = sorted(np.random.default_rng(1).exponential(3.0, size=257).tolist())
    for q in (1, 37.5, 50, 90, 95, 99, 99.9):
        assert percentile(xs, q) == pytest.approx(float(np.percentile(xs, q)), rel=1e-12)


def test_percentile_rejects_empty_and_out_of_range():
    with pytest.raises(ValueError):
        percentile([], 50)
    with pytest.raises(ValueError):
        percentile([1.0], 101)


def test_summarize_known_sequence_unsorted():
    s = summarize([9, 2, 5, 4, 4, 7, 4, 5])  # sorted: 2 4 4 4 5 5 7 9
    assert (s.count, s.min, s.max, s.mean, s.median) == (8, 2.0, 9.0, 5.0, 4.5)
    assert (s.p90, s.p95, s.p99) == (None, None, None)  # 8 samples: no tail holds 10
    assert s.tail_counts == {"p90": 0, "p95": 0, "p99": 0}
    assert s.std == pytest.approx(math.sqrt(32 / 7))  # sample std, n - 1
    assert s.cv == pytest.approx(math.sqrt(32 / 7) / 5)


def test_tail_percentiles_interpolate_once_their_tail_holds_ten_samples():
    xs = [9, 2, 5, 4, 4, 7, 4, 5] * 25  # 200 samples: p90 and p95 tails hold 20 and 10
    s = summarize(xs)
    ref = sorted(float(x) for x in xs)
    assert s.p90 == pytest.approx(percentile(ref, 90)) and s.p95 == pytest.approx(percentile(ref, 95))
    assert s.p99 is None and s.tail_counts == {"p90": 20, "p95": 10, "p99": 2}


@pytest.mark.parametrize("q, n_min", [(90, 100), (95, 200), (99, 1000)])
def test_a_percentile_needs_ten_samples_beyond_it(q, n_min):
    from rtdeploy.bench.stats import min_samples_for, tail_count

    assert min_samples_for(q) == n_min
    assert tail_count(n_min, q) == 10 and tail_count(n_min - 1, q) == 9
    below, at = summarize([1.0] * (n_min - 1)), summarize([1.0] * n_min)
    assert getattr(below, f"p{q}") is None and getattr(at, f"p{q}") == 1.0


def test_summarize_single_value_has_no_spread():
    s = summarize([3.0])
    assert (s.min, s.median, s.p99, s.max, s.std, s.cv) == (3.0, 3.0, None, 3.0, 0.0, 0.0)


def test_summarize_empty_raises():
    with pytest.raises(ValueError):
        summarize([])


def test_throughput_images_per_second():
    assert throughput(8, 100, 2000.0) == pytest.approx(400.0)
    assert throughput(1, 10, 0.0) == 0.0


def test_median_of_repeats_with_spread():
    r = summarize_repeats([12.0, 10.0, 11.0], [80.0, 100.0, 90.0])
    assert (r.median_ms, r.low_ms, r.high_ms, r.throughput_ips) == (11.0, 10.0, 12.0, 90.0)
    assert r.spread == pytest.approx(2 / 11)
    with pytest.raises(ValueError):
        summarize_repeats([1.0], [])


def test_noise_warnings_flag_high_cv_and_spread_only():
    quiet = summarize([10.0, 10.1, 9.9, 10.0])
    assert noise_warnings("x", quiet, summarize_repeats([10.0, 10.2], [1, 1])) == []
    noisy = summarize([1.0, 10.0, 1.0, 10.0])
    warns = noise_warnings("x", noisy, summarize_repeats([10.0, 15.0], [1, 1]))
    assert len(warns) == 2 and "CV" in warns[0] and "spread" in warns[1]


class CountingTimer(HostTimer):
    """A timer whose 'inference' only records that it ran."""

    kind = "host"

    def __init__(self, name: str, log: list):
        self.name, self.log, self.calls = name, log, 0

    def step(self):
        self.calls += 1
        self.log.append(self.name)
        return None


def test_time_window_by_iterations_and_by_duration():
    t = CountingTimer("a", [])
    w = time_window(t, iterations=7, duration_s=0)
    assert t.calls == 7 and len(w.host_ms) == 7 and w.split_ms is None
    assert all(x >= 0 for x in w.host_ms) and w.elapsed_ms >= sum(w.host_ms) - 1e-6
    t2 = CountingTimer("b", [])
    w2 = time_window(t2, iterations=None, duration_s=1e-9)
    assert t2.calls == 1 and len(w2.host_ms) == 1  # at least one iteration, even for a tiny duration


def test_warm_up_runs_at_least_once_unless_zero():
    t = CountingTimer("a", [])
    assert warm_up(t, 0) == 0 and t.calls == 0
    assert warm_up(t, 1e-9) == 1


def test_run_interleaved_alternates_order_and_fills_windows():
    log: list[str] = []
    cases = [Case(k, CountingTimer(k, log), batch=1) for k in "abc"]
    seen = []
    run_interleaved(cases, warmup_s=0, iterations=2, duration_s=0, repeats=3, on_window=lambda c, r: seen.append((c.key, r)))
    assert [k for k, _ in seen] == list("abc" "cba" "abc")
    assert "".join(log) == "aabbcc" "ccbbaa" "aabbcc"
    assert all(len(c.windows) == 3 and all(len(w.host_ms) == 2 for w in c.windows) for c in cases)


class FakeTrtRunner:
    """Exposes per-call device timings like rtdeploy.trt.runner.TrtRunner."""

    def __init__(self):
        self.n = 0
        self.last_timings = None

    def infer(self, feed):
        self.n += 1
        self.last_timings = {"h2d_ms": 0.1 * self.n, "compute_ms": 1.0 * self.n, "d2h_ms": 0.01, "total_ms": 2.0}
        return {}


def test_trt_timer_collects_the_runners_split():
    w = time_window(TrtTimer(FakeTrtRunner(), {}), iterations=3, duration_s=0)
    assert w.split_ms["compute"] == [1.0, 2.0, 3.0]
    assert w.split_ms["h2d"] == pytest.approx([0.1, 0.2, 0.3]) and w.split_ms["d2h"] == [0.01] * 3


IDENTITY = {"id": "resnet18/onnxruntime/fp32/b4", "model": "resnet18", "depth": 18, "family": "imagenet", "image_size": 224,
            "gmacs": 1.81, "backend": "onnxruntime", "runner": "onnxruntime[CPU]", "precision": "fp32", "device": "cpu", "artifact": None}


def test_result_record_uses_median_of_repeat_medians():
    windows = [Window([1.0, 2.0, 3.0], 6.0), Window([2.0, 3.0, 4.0], 9.0), Window([10.0, 11.0, 12.0], 33.0)]
    rec, warns = result_record(IDENTITY, 4, windows, {})
    assert rec["latency_ms"] == 3.0  # medians 2, 3, 11
    assert (rec["repeat_low_ms"], rec["repeat_high_ms"]) == (2.0, 11.0)
    assert rec["repeat_spread"] == pytest.approx(3.0)
    assert [r["throughput_ips"] for r in rec["repeats"]] == pytest.approx([2000.0, 4000 / 3, 4000 / 11])
    assert rec["throughput_ips"] == pytest.approx(4000 / 3)
    assert rec["host_ms"]["count"] == 9 and rec["host_ms"]["median"] == 3.0  # pooled 1 2 2 3 3 4 10 11 12
    assert rec["device_ms"] is None and rec["split_ms"] is None
    assert any("spread" in w for w in warns) and rec["warnings"] == warns


def test_result_record_device_split():
    split = {"h2d": [0.1, 0.1], "compute": [1.0, 3.0], "d2h": [0.2, 0.2]}
    rec, _ = result_record(IDENTITY, 1, [Window([2.0, 4.0], 6.0, split)], {})
    assert rec["device_ms"]["median"] == 2.0 and rec["split_ms"]["h2d"]["mean"] == pytest.approx(0.1)


def test_scaling_table_ratios_against_smallest_model():
    def rec(depth, gmacs, lat, low, backend="onnxruntime"):
        return {**IDENTITY, "model": f"resnet{depth}", "depth": depth, "gmacs": gmacs, "latency_ms": lat, "repeat_low_ms": low,
                "backend": backend, "batch": 1}

    rows = scaling_table([rec(50, 4.09, 20.0, 12.0), rec(18, 1.81, 10.0, 4.0), rec(18, 1.81, 5.0, 5.0, backend="torch")])
    assert [r["depth"] for r in rows] == [18, 50]  # the lone torch point makes no series
    big = rows[1]
    assert big["gmacs_ratio"] == pytest.approx(4.09 / 1.81, abs=1e-4)
    assert big["latency_ratio"] == 2.0
    assert big["fastest_ms"] == 12.0 and big["fastest_ratio"] == 3.0
    assert big["per_gmac_ratio"] == pytest.approx(2.0 / (4.09 / 1.81), abs=1e-3)


def test_torch_cuda_timer_reads_its_events_in_order(monkeypatch):
    """The CUDA-event plumbing, on the CPU: fake events stamp 0, 1, 2, 3... as they are recorded."""
    import torch

    from rtdeploy.bench.harness import TorchCudaTimer
    from rtdeploy.runners.torch_runner import TorchRunner

    clock = iter(range(1000))

    class FakeEvent:
        def __init__(self, enable_timing=False):
            self.t = None

        def record(self):
            self.t = float(next(clock)) ** 2  # 0, 1, 4, 9: parts of 1, 3 and 5 "ms"

        def synchronize(self):
            pass

        def elapsed_time(self, end):
            return end.t - self.t

    monkeypatch.setattr(torch.cuda, "Event", FakeEvent)
    with TorchRunner(torch.nn.Flatten()) as runner:
        w = time_window(TorchCudaTimer(runner, {"input": np.zeros((1, 2, 3), np.float32)}), iterations=1, duration_s=0)
    assert w.split_ms == {"h2d": [1.0], "compute": [3.0], "d2h": [5.0]}


def test_torch_cuda_timer_on_its_own_stream(monkeypatch):
    """--streams on torch CUDA: each timer enqueues copies, forward pass and events inside its own CUDA stream."""
    import contextlib

    import torch

    from rtdeploy.bench.backends import make_timers
    from rtdeploy.runners.torch_runner import TorchRunner

    entered: list = []

    class FakeEvent:
        def __init__(self, enable_timing=False):
            self.t = 0.0

        def record(self):
            self.stream = entered[-1] if entered else None

        def synchronize(self):
            pass

        def elapsed_time(self, end):
            return 1.0

    class FakeStream:
        pass

    @contextlib.contextmanager
    def on(stream):
        entered.append(stream)
        yield

    monkeypatch.setattr(torch.cuda, "Event", FakeEvent)
    monkeypatch.setattr(torch.cuda, "Stream", FakeStream)
    monkeypatch.setattr(torch.cuda, "stream", on)
    with TorchRunner(torch.nn.Flatten()) as runner:
        timers = make_timers("torch", [runner], {"input": np.zeros((1, 2, 3), np.float32)}, "cuda", 2)
        for t in timers:
            t.step()
    assert len(entered) == 2 and entered[0] is not entered[1] and all(isinstance(s, FakeStream) for s in entered)
    assert all(e.stream is entered[i] for i, t in enumerate(timers) for e in t._events)
