"""The stage boundary (issue 22): library errors as one line, and the memory a model's declared shapes need.

The end-to-end cases (a custom-domain op in quantize and run, models declaring a 1.2 TB activation
or a 120 GB input in validate, quantize and bench) are rows of tests/test_bad_inputs.py and
tests/test_import.py; these pin down the two rules themselves.
"""

from __future__ import annotations

import numpy as np
import pytest

from rtdeploy.errors import DataError, PrecisionError
from rtdeploy.footprint import check_model_memory, footprint
from rtdeploy.library_errors import stage_boundary, translate
from tiny_graphs import classifier, wide_activation_model


# --- the estimate ---------------------------------------------------------------------------------

def test_footprint_counts_weights_and_the_largest_step_per_sample():
    # pixels 3x8x8 float32 = 768 bytes; the Conv's output c, 8x8x8 = 2048 bytes, is the largest step
    # (Conv: 768 in, 2048 out; Relu: 2048 in and out); weights 8*3*3*3 + 8 + 10*8 + 10 = 314 floats.
    fp = footprint(classifier())
    assert fp.weights == 314 * 4 and fp.per_sample["pixels"] == 768 and fp.per_sample["c"] == 2048
    assert fp.peak_per_sample == 2048 and fp.fixed_batch is None
    assert fp.need(8) == 314 * 4 + 8 * 2048
    assert fp.need(8, copies=2) == 2 * fp.need(8)
    # a calibration session holds every observed tensor at once
    assert fp.need(1, holding=["pixels", "c", "r"]) == 314 * 4 + 768 + 2048 + 2048


def test_a_fixed_batch_model_always_runs_its_own_batch():
    fp = footprint(classifier(batch=4))
    assert fp.fixed_batch == 4 and fp.need(1) == fp.need(64) == fp.weights + 4 * fp.peak_per_sample


def test_unknown_shapes_count_as_nothing_so_the_estimate_stays_a_lower_bound():
    fp = footprint(classifier(size="H"))
    assert "pixels" not in fp.per_sample and fp.peak_per_sample < 2048


def test_the_input_size_the_stages_feed_stands_in_for_named_dims():
    # An import with --size 8 of a model whose H and W are named: the manifest's size completes them,
    # else every activation after the input counted as empty (and calibration picked its largest batch).
    assert footprint(classifier(size="H"), sample_shape=(3, 8, 8)) == footprint(classifier())
    assert footprint(classifier(size=8), sample_shape=(3, 99, 99)) == footprint(classifier())  # fixed dims stand


def test_declared_shapes_beyond_memory_are_refused_before_anything_runs():
    fp = footprint(wide_activation_model())
    assert fp.peak_per_sample == 300_000 * 1024 * 1024 * 4  # the Tile output
    with pytest.raises(DataError, match=r"validate m.onnx needs at least 1,171.9 GiB .* 1 sample\(s\) of 1,171.9 GiB each"):
        check_model_memory(fp, 1, what="validate m.onnx", error=DataError, available=16 << 30)
    assert check_model_memory(classifier(), 8, what="x", error=DataError, available=16 << 30) == footprint(classifier()).need(8)


# --- library errors -------------------------------------------------------------------------------

def _raise_inside_numpy():
    np.reshape(np.zeros(6), (4, 4))  # a ValueError raised from numpy's own Python frames


def test_an_exception_of_a_librarys_type_is_translated():
    ort_error = type("Fail", (RuntimeError,), {"__module__": "onnxruntime.capi.onnxruntime_pybind11_state"})
    e = translate(ort_error("[ONNXRuntimeError] : 1 : FAIL : com.example:MyRelu(-1) is not a registered function/op\nmore"),
                  "quantize", PrecisionError)
    assert isinstance(e, PrecisionError)
    assert str(e).startswith("quantize stopped in onnxruntime: [ONNXRuntimeError] : 1 : FAIL : com.example:MyRelu(-1)")
    assert "\n" not in str(e) and "more" not in str(e)


def test_a_builtin_exception_raised_inside_a_library_is_translated_one_raised_here_is_not():
    with pytest.raises(ValueError) as inside:
        _raise_inside_numpy()
    assert "stopped in numpy" in str(translate(inside.value, "validate", DataError))
    assert translate(ValueError("a bug of ours"), "validate", DataError) is None  # keeps its traceback
    assert translate(KeyError("x"), "validate", DataError) is None


def test_memory_errors_are_translated_from_anywhere():
    e = translate(MemoryError("Unable to allocate 112. GiB for an array"), "bench", DataError)
    assert str(e).startswith("bench ran out of memory (Unable to allocate 112. GiB")


def test_the_boundary_keeps_rtdeploy_errors_and_chains_the_library_error():
    @stage_boundary("quantize", PrecisionError)
    def stage(kind):
        if kind == "ours":
            raise DataError("ours")
        _raise_inside_numpy()

    with pytest.raises(DataError, match="^ours$"):
        stage("ours")
    with pytest.raises(PrecisionError, match="quantize stopped in numpy") as caught:
        stage("numpy")
    assert isinstance(caught.value.__cause__, ValueError)
