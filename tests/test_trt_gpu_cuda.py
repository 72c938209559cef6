"""CUDA without TensorRT, for real: the cuda-python device-memory layer, the torch CUDA runner and the
CUDA-event timer. Marked ``gpu``; on a machine without an NVIDIA GPU (and driver, and cuda-python /
a CUDA build of torch) every test skips with the reason. benchmarks/gpu/run.sh runs them.

CUDA rules used (CUDA Runtime API, "Graph Management" / "Stream Management"): work enqueued on a
stream under ``cudaStreamBeginCapture`` is recorded, not run, until the instantiated graph is
launched; memcpy nodes from page-locked host memory read that memory at launch time; a stream
synchronization during capture is not permitted and invalidates the capture
(``cudaErrorStreamCaptureInvalidated`` from ``cudaStreamEndCapture``).
"""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def mem():
    from rtdeploy.errors import RtDeployError
    from rtdeploy.trt.device_memory import open_device_memory

    try:
        m = open_device_memory(0)
    except RtDeployError as e:
        pytest.skip(f"needs cuda-python and an NVIDIA GPU: {e}")
    yield m
    m.close()


@pytest.fixture(scope="module")
def torch_cuda():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip(f"needs a CUDA build of torch and an NVIDIA GPU (torch {torch.__version__}, cuda available: False)")
    return torch


def test_device_info_is_real(mem):
    info = mem.device_info()
    assert info.total_bytes > info.free_bytes > 0 and info.name and int(info.compute_capability.split(".")[0]) >= 5


def test_pinned_and_device_buffers_round_trip(mem):
    n = 1 << 20
    host_in, host_out = mem.pinned_empty((n,), np.float32), mem.pinned_empty((n,), np.float32)
    dev = mem.malloc(n * 4)
    stream = mem.stream()
    events = [mem.event() for _ in range(3)]
    try:
        host_in[:] = np.arange(n, dtype=np.float32)
        host_out[:] = -1
        mem.record(events[0], stream)
        mem.copy_htod(dev, host_in, n * 4, stream)
        mem.record(events[1], stream)
        mem.copy_dtoh(host_out, dev, n * 4, stream)
        mem.record(events[2], stream)
        mem.synchronize(stream)
        np.testing.assert_array_equal(host_out, host_in)
        assert mem.elapsed_ms(events[0], events[1]) > 0 and mem.elapsed_ms(events[1], events[2]) > 0
    finally:
        for e in events:
            mem.destroy_event(e)
        mem.destroy_stream(stream)
        mem.free(dev)
        mem.pinned_free(host_in)
        mem.pinned_free(host_out)


def _capture_copy(mem, stream, dev, host_in, host_out, nbytes):
    mem.begin_capture(stream)
    mem.copy_htod(dev, host_in, nbytes, stream)
    mem.copy_dtoh(host_out, dev, nbytes, stream)
    return mem.end_capture(stream)


def test_graph_capture_replays_real_work_and_is_recaptured_for_another_size(mem):
    n = 4096
    host_in, host_out = mem.pinned_empty((n,), np.float32), mem.pinned_empty((n,), np.float32)
    dev = mem.malloc(n * 4)
    stream = mem.stream()
    graphs = []
    try:
        host_out[:] = 0
        graphs.append(_capture_copy(mem, stream, dev, host_in, host_out, 1024 * 4))
        assert not host_out.any(), "capture must record, not run"
        for value in (1.0, 2.0):  # the graph reads the pinned input at each launch
            host_in[:] = value
            mem.launch(graphs[-1], stream)
            mem.synchronize(stream)
            assert (host_out[:1024] == value).all() and not host_out[1024:].any()
        # another "shape": the old graph copies 1024 floats only, so a new one is captured
        graphs.append(_capture_copy(mem, stream, dev, host_in, host_out, n * 4))
        host_in[:] = 3.0
        mem.launch(graphs[-1], stream)
        mem.synchronize(stream)
        assert (host_out == 3.0).all()
    finally:
        for g in graphs:
            mem.destroy_graph(g)
        mem.destroy_stream(stream)
        mem.free(dev)
        mem.pinned_free(host_in)
        mem.pinned_free(host_out)


def test_a_failed_capture_is_ended_and_cleared(mem):
    """What the runner does when TensorRT cannot enqueue under capture (trtexec's endCaptureOnError)."""
    stream = mem.stream()
    try:
        mem.begin_capture(stream)
        err = mem.rt.cudaStreamSynchronize(stream)[0]  # not permitted under capture: invalidates it
        assert err != mem.rt.cudaError_t.cudaSuccess
        mem.end_capture_on_error(stream)
        assert mem.rt.cudaGetLastError()[0] == mem.rt.cudaError_t.cudaSuccess
        mem.synchronize(stream)  # the stream works again
    finally:
        mem.destroy_stream(stream)


def test_torch_cuda_runner_matches_cpu(torch_cuda):
    from rtdeploy.models import model_meta
    from rtdeploy.models.resnet import build_model
    from rtdeploy.runners.torch_runner import TorchRunner

    torch_cuda.manual_seed(0)
    model = build_model(model_meta(20)).eval()
    x = np.random.default_rng(0).standard_normal((8, 3, 32, 32)).astype(np.float32)
    with TorchRunner(model, device="cpu") as cpu:
        ref = cpu.infer({"input": x})["logits"]
    for kw in ({}, {"channels_last": True}, {"autocast_fp16": True}):
        with TorchRunner(model, device="cuda", **kw) as gpu:  # the runner moves the same weights to the GPU
            got = gpu.infer({"input": x})["logits"]
        tol = 5e-2 if kw.get("autocast_fp16") else 1e-3  # TF32/FP16 kernels on the GPU
        np.testing.assert_allclose(got, ref, rtol=tol, atol=tol)


def test_cuda_event_timer_splits_the_call(torch_cuda):
    from rtdeploy.bench.harness import TorchCudaTimer
    from rtdeploy.models import model_meta
    from rtdeploy.models.resnet import build_model
    from rtdeploy.runners.torch_runner import TorchRunner

    x = np.zeros((4, 3, 32, 32), np.float32)
    with TorchRunner(build_model(model_meta(20)), device="cuda") as r:
        timer = TorchCudaTimer(r, {"input": x})
        for _ in range(3):
            parts = timer.step()()
        assert set(parts) == {"h2d", "compute", "d2h"} and all(v > 0 for v in parts.values())
