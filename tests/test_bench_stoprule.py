"""The stop rule, concurrent streams and the throughput/latency agreement — on synthetic clocks and
timers, so no assertion depends on how fast this machine is."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from rtdeploy.bench.harness import Case, HostTimer, run_interleaved, time_streams, time_window
from rtdeploy.bench.results import result_record
from rtdeploy.bench.stoprule import MIN_ITERATIONS, StopRule, default_rule

MS = 1_000_000  # ns


class FakeClock:
    """A nanosecond clock that moves only when told to, plus ``tick`` per read (the loop's own cost)."""

    def __init__(self, tick: int = 0):
        self.now = 0
        self.tick = tick

    def __call__(self) -> int:
        t = self.now
        self.now += self.tick
        return t


class SleepTimer(HostTimer):
    """An 'inference' that takes the next latency of a sequence on the fake clock."""

    kind = "host"

    def __init__(self, clock: FakeClock, latencies_ms):
        self.clock, self.latencies, self.calls = clock, list(latencies_ms), 0

    def step(self):
        self.clock.now += int(self.latencies[self.calls % len(self.latencies)] * MS)
        self.calls += 1
        return None


@pytest.mark.parametrize("iterations, duration_s, expected", [
    (5, 0.1, 10),    # the duration is the later bound: 10 x 10 ms
    (50, 0.1, 50),   # the iteration count is
    (1, 0.0, 1),     # at least one inference
    (3, 0.035, 4),   # stops at the first inference that ends at or after 35 ms
])
def test_window_runs_until_both_minima(iterations, duration_s, expected):
    clock = FakeClock()
    t = SleepTimer(clock, [10.0])
    w = time_window(t, iterations=iterations, duration_s=duration_s, clock=clock)
    assert t.calls == expected and w.count == expected
    assert w.elapsed_ms == pytest.approx(10.0 * expected)
    assert w.host_ms == [10.0] * expected


def test_default_rule_per_device_and_user_overrides():
    gpu, cpu = default_rule("cuda"), default_rule("cpu")
    assert (gpu.min_iterations, gpu.min_duration_s, gpu.warmup_s) == (200, 1.0, 0.2)
    assert (cpu.min_iterations, cpu.min_duration_s) == (20, 1.0)
    assert default_rule("cuda", iterations=7, duration_s=0.0, warmup_s=0.0) == StopRule(0.0, 7, 0.0)
    assert MIN_ITERATIONS["cuda"] * 1 >= 200  # one window alone already holds 200 GPU samples


def test_gpu_default_gives_two_hundred_samples_for_a_fast_and_a_slow_engine():
    """Batch 1 on a GPU: 0.3 ms engines are held by the 1 s minimum, 20 ms ones by the 200 iterations."""
    for latency_ms, expected in ((0.3, 3334), (20.0, 200)):
        rule = default_rule("cuda")
        clock = FakeClock()
        w = time_window(SleepTimer(clock, [latency_ms]), iterations=rule.min_iterations, duration_s=rule.min_duration_s,
                        clock=clock)
        assert w.count == expected and w.count >= 200


def test_case_rule_wins_over_the_sweep_rule():
    log: list = []
    clock = FakeClock()
    a = Case("a", SleepTimer(clock, [1.0]), batch=1, rule=StopRule(0.0, 4, 0.0))
    b = Case("b", SleepTimer(clock, [1.0]), batch=1)
    run_interleaved([a, b], rule=StopRule(0.0, 2, 0.0), repeats=1, clock=clock, on_window=lambda c, r: log.append(c.key))
    assert a.windows[0].count == 4 and b.windows[0].count == 2 and log == ["a", "b"]


def test_throughput_and_latency_agree_for_one_stream_within_their_spread():
    """Throughput is measured (images / window wall time), not 1000 / median latency; for one stream the
    time per image it implies lies within the spread of the windows' mean latencies (plus the loop's clock reads)."""
    rng = np.random.default_rng(3)
    tick = 2_000  # 2 us per clock read
    clock = FakeClock(tick)
    windows = []
    for _ in range(5):
        lat = rng.lognormal(np.log(10.0), 0.6, size=200).tolist()  # skewed: mean ~ 1.2 x median
        windows.append(time_window(SleepTimer(clock, lat), iterations=200, duration_s=0, clock=clock))
    rec, _ = result_record({"id": "x"}, 4, windows, {})
    implied = 4 * 1000.0 / rec["throughput_ips"]
    means = [r["mean_ms"] for r in rec["repeats"]]
    assert min(means) <= implied <= max(means) + 2 * tick / 1e6
    pooled = rec["throughput_window"]
    assert pooled["images"] == 4 * 1000 and pooled["wall_ms"] == pytest.approx(sum(w.elapsed_ms for w in windows))
    assert rec["host_ms"]["mean"] <= pooled["latency_equivalent_ms"] <= rec["host_ms"]["mean"] + 2 * tick / 1e6
    # and not the median's reciprocal, which a skewed distribution puts far off
    assert abs(4 * 1000.0 / rec["latency_ms"] - rec["throughput_ips"]) > 0.05 * rec["throughput_ips"]


class RendezvousTimer(HostTimer):
    """Each 'inference' waits at a barrier shared by all streams: it can only finish if the streams run at once."""

    kind = "host"

    def __init__(self, barrier: threading.Barrier):
        self.barrier, self.calls = barrier, 0

    def step(self):
        self.barrier.wait(timeout=20)
        self.calls += 1
        return None


def test_streams_run_concurrently_and_each_reaches_the_minimum():
    barrier = threading.Barrier(3)
    timers = [RendezvousTimer(barrier) for _ in range(3)]
    w = time_streams(timers, iterations=5, duration_s=0)
    assert w.stream_counts == [5, 5, 5] and w.count == 15
    assert [len(x) for x in w.stream_host_ms()] == [5, 5, 5]
    assert w.elapsed_ms >= max(max(x) for x in w.stream_host_ms())


def test_a_failing_stream_raises_its_error():
    class Boom(HostTimer):
        def __init__(self):
            pass

        def step(self):
            raise RuntimeError("stream 2 failed")

    ok = [HostTimer(type("R", (), {"infer": lambda self, f: None})(), {}) for _ in range(2)]
    with pytest.raises(RuntimeError, match="stream 2 failed"):
        time_streams([*ok, Boom()], iterations=3, duration_s=0)


def test_streams_record_per_stream_latency_and_aggregate_throughput():
    barrier = threading.Barrier(2)
    case = Case("c", [RendezvousTimer(barrier), RendezvousTimer(barrier)], batch=2)
    run_interleaved([case], rule=StopRule(0.0, 3, 0.0), repeats=2)
    rec, _ = result_record({"id": "c"}, 2, case.windows, {})
    assert rec["streams"] == 2 and [p["count"] for p in rec["per_stream"]] == [6, 6]
    assert rec["throughput_window"]["images"] == 2 * 12
    assert rec["repeats"][0]["count"] == 6
    assert rec["throughput_window"]["ips"] == pytest.approx(24 * 1000.0 / rec["throughput_window"]["wall_ms"])
