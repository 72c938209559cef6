"""The TensorRT-buildability rules release by release (rtdeploy/precision/trt_buildable.py, each rule
with its source there: onnx-tensorrt's docs/operators.md per release and its Q/DQ importer)."""

from __future__ import annotations

import pytest
from onnx import TensorProto

from rtdeploy.precision.trt_buildable import Release, opset_note, opset_verdict, qdq_problems, release_to_judge
from tiny_graphs import qdq_classifier


@pytest.mark.parametrize("release,opset,documented", [
    ("8.6", 17, True), ("8.6", 18, False), ("8.6.1", 19, False),   # onnx-tensorrt 8.6-GA: up to Opset 17
    ("10.0", 20, True), ("10.1", 21, False),                        # 10.0-GA/10.1-GA: opset 9 to 20
    ("10.3", 20, True), ("10.3", 22, None), ("10.3", 25, False),    # between 10.1 (20) and 10.15 (24): unknown, never above 24
    ("10.15", 24, True), ("10.15", 25, False),
    ("11.4", 25, True), ("11.4", 26, False),                        # NVIDIA's 11.x opset guide: maximum 25
])
def test_opset_verdicts(release, opset, documented):
    assert opset_verdict(Release.parse(release), opset).documented is documented


def test_scale_types_per_release():
    half = qdq_classifier(opset=19, scale_type=TensorProto.FLOAT16)
    assert any("FLOAT16 scale" in p for p in qdq_problems(half, Release(8, 6)))
    assert qdq_problems(half, Release(10, 0)) == []
    # 8.x requires the zero-point input on every INT8 Q/DQ; 10.x does not (but a Q without one is UINT8 anywhere).
    assert any("requires on INT8 Q/DQ" in p for p in qdq_problems(qdq_classifier(with_zero_point=False), Release(8, 6)))


@pytest.mark.parametrize("text,release", [("8.6", (8, 6)), ("8.6.1.6", (8, 6)), ("8601", (8, 6)), ("100300", (10, 3)),
                                          ("11.4.0.106", (11, 4))])
def test_release_forms(text, release):
    assert Release.parse(text) == Release(*release)


def test_release_to_judge():
    assert release_to_judge(None, None) is None
    assert release_to_judge("8.6", None) == Release(8, 6)
    assert release_to_judge(None, "10.3.0") == release_to_judge("10.3", "10.3.0") == Release(10, 3)


def test_opset_note_only_above_what_8_6_documents():
    assert opset_note(17) is None
    assert "TensorRT 10.0 or later" in opset_note(19) and "8.5 and 8.6 (JetPack 5.1, 6.0)" in opset_note(19)
