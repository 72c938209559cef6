"""Which ONNX models a TensorRT release builds, judged from the file alone (no ``tensorrt`` import).

``build-engine`` refuses, before any work and whether or not TensorRT is installed, what the ONNX
parser of the TensorRT that will build it does not take. The rules are those of onnx-tensorrt's
importer and of its documentation per release (the TensorRT ONNX parser *is* onnx-tensorrt):

- **Q/DQ symmetry and types** (every release): a QuantizeLinear/DequantizeLinear zero point must be
  all zeros ("TensorRT only supports symmetric quantization", ``QuantDequantLinearHelper`` in
  ``builtin_op_importers.cpp`` of 8.6-GA and ``onnxOpImporters.cpp`` of 10.x), and no Q/DQ may be
  UINT8 (``notInvalidType(..., {"UINT8"})``, same functions; 10.x reads a UINT8 zero point as INT8,
  which changes the quantized values); scales must be positive ("Scale coefficients must all be
  positive"). The CPU form rtdeploy writes for onnxruntime (``X.int8-cpu.onnx``: uint8 activations
  with zero point 128) breaks both and is named as such.
- **Scale types**: 8.x reads a constant scale as float32 (``static_cast<float const*>`` in 8.6-GA),
  so float16 scales are misread; 10.0 and later read FLOAT, FLOAT16 and BFLOAT16 scales (10.1-GA).
  8.x also needs the zero-point input on every INT8 Q/DQ ("This version of TensorRT requires 3
  inputs for the INT8 QuantizeLinear/DequantizeLinear operator").
- **Opsets**: the highest ONNX opset each release documents (``docs/operators.md`` of each
  onnx-tensorrt release, and NVIDIA's ONNX opset guide for 11.x); see :data:`DOCUMENTED_OPSETS`.
  A release between two documented ones is judged by both: an opset the older one documents is
  taken, one above what the newer documents is refused, one in between is reported as unknown.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rtdeploy.errors import EngineError

log = logging.getLogger(__name__)

QDQ_OPS = ("QuantizeLinear", "DequantizeLinear")


@dataclass(frozen=True, order=True)
class Release:
    """A TensorRT release by major and minor number (patch and build do not change the parser's rules)."""

    major: int
    minor: int

    @classmethod
    def parse(cls, text: str, option: str = "--trt-version") -> "Release":
        """``8.6``, ``8.6.1``, ``10.3.0.26``, or TensorRT's integer form ``8601`` / ``100300``.

        Raises:
            EngineError: none of those forms.
        """
        value = str(text).strip()
        dotted = re.fullmatch(r"(\d{1,2})\.(\d{1,2})(?:\.\d+){0,2}", value)
        if dotted:
            return cls(int(dotted.group(1)), int(dotted.group(2)))
        packed = re.fullmatch(r"(\d)(\d)\d\d|(\d\d)(\d\d)\d\d", value)  # 8601 = 8.6.1, 100300 = 10.3.0
        if packed:
            major, minor = (packed.group(1), packed.group(2)) if packed.group(1) else (packed.group(3), packed.group(4))
            return cls(int(major), int(minor))
        raise EngineError(f"{option} {text!r} is not a TensorRT version; give it as 8.6, 10.3.0 or 8601 (= 8.6.1)")

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}"


@dataclass(frozen=True)
class DocumentedOpsets:
    """Releases ``first``..``last`` document ONNX opsets up to ``opset`` (``source`` says where)."""

    first: Release
    last: Release
    opset: int
    source: str


DOCUMENTED_OPSETS = (
    DocumentedOpsets(Release(8, 5), Release(8, 6), 17, "onnx-tensorrt 8.5-GA and 8.6-GA docs/operators.md: 'supports operators up to Opset 17'"),
    DocumentedOpsets(Release(10, 0), Release(10, 1), 20, "onnx-tensorrt 10.0-GA and 10.1-GA docs/operators.md: 'opset 9 to opset 20'"),
    DocumentedOpsets(Release(10, 15), Release(10, 15), 24, "onnx-tensorrt docs/operators.md of 10.15: 'opset 9 to opset 24'"),
    DocumentedOpsets(Release(11, 0), Release(11, 99), 25, "NVIDIA TensorRT 11.x ONNX opset guide: maximum opset 25"),
)

# Q/DQ scale types each release reads (ONNX TensorProto names).
_SCALES_8X = ("FLOAT",)
_SCALES_10X = ("FLOAT", "FLOAT16", "BFLOAT16")


def scale_types(release: Release) -> tuple[str, ...]:
    """The Q/DQ scale types ``release`` documents: FLOAT on 8.x, FLOAT/FLOAT16/BFLOAT16 from 10.0."""
    return _SCALES_8X if release.major < 10 else _SCALES_10X


@dataclass(frozen=True)
class OpsetVerdict:
    """What is known of ``opset`` on one release: ``documented`` True/False, or None (not known)."""

    documented: bool | None
    limit: int | None
    source: str


def opset_verdict(release: Release, opset: int) -> OpsetVerdict:
    """Whether ``release`` documents ``opset`` (see :data:`DOCUMENTED_OPSETS`)."""
    for row in DOCUMENTED_OPSETS:
        if row.first <= release <= row.last:
            return OpsetVerdict(opset <= row.opset, row.opset, row.source)
    below = [r for r in DOCUMENTED_OPSETS if r.last < release]
    above = [r for r in DOCUMENTED_OPSETS if r.first > release]
    if below and opset <= below[-1].opset:
        return OpsetVerdict(True, below[-1].opset, f"{below[-1].source} (an older release)")
    if above and opset > above[0].opset:
        return OpsetVerdict(False, above[0].opset, f"{above[0].source} (a newer release)")
    limit = below[-1].opset if below else None
    return OpsetVerdict(None, limit, below[-1].source if below else "no documentation known for it")


def first_release_documenting(opset: int) -> Release | None:
    """The oldest release whose documentation (as far as :data:`DOCUMENTED_OPSETS` goes) covers ``opset``."""
    return next((row.first for row in DOCUMENTED_OPSETS if opset <= row.opset), None)


# -- reading the model ------------------------------------------------------------------------------
def opset_of(model) -> int:
    """The default-domain opset of ``model`` (0 when it imports none)."""
    return next((int(i.version) for i in model.opset_import if i.domain in ("", "ai.onnx")), 0)


def _constants(graph) -> dict[str, np.ndarray]:
    from onnx import numpy_helper

    values = {t.name: t for t in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant":
            attr = next((a for a in node.attribute if a.name == "value"), None)
            if attr is not None and attr.t is not None:
                values[node.output[0]] = attr.t
    out = {}
    for name, tensor in values.items():
        try:
            out[name] = numpy_helper.to_array(tensor)
        except (ValueError, TypeError):  # external data not loaded, exotic types: not judged
            continue
    return out


def _elem_types(model) -> dict[str, int]:
    graph = model.graph
    types = {t.name: t.data_type for t in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant":
            attr = next((a for a in node.attribute if a.name == "value"), None)
            if attr is not None:
                types[node.output[0]] = attr.t.data_type
    for vi in [*graph.input, *graph.value_info, *graph.output]:
        if vi.type.HasField("tensor_type"):
            types.setdefault(vi.name, vi.type.tensor_type.elem_type)
    return types


def qdq_problems(model, release: Release | None) -> list[str]:
    """What TensorRT's ONNX parser refuses or misreads in the Q/DQ nodes of ``model``: asymmetric
    or UINT8 Q/DQ (a QuantizeLinear without a zero point is UINT8 by ONNX's default), non-positive
    scales (every release), and, for ``release`` (None: not judged), scale types it does not read
    and 8.x's required zero point. Each item names the node."""
    from onnx import TensorProto

    graph = model.graph
    consts, types = _constants(graph), _elem_types(model)
    uint8 = TensorProto.UINT8
    problems = []
    for node in graph.node:
        if node.op_type not in QDQ_OPS:
            continue
        name = node.name or node.output[0]
        scale = node.input[1] if len(node.input) > 1 else ""
        zero = node.input[2] if len(node.input) > 2 and node.input[2] else ""
        if types.get(node.input[0]) == uint8 or (zero and types.get(zero) == uint8):
            problems.append(f"{node.op_type} {name} is UINT8 (onnx-tensorrt takes INT8 Q/DQ only)")
        elif node.op_type == "QuantizeLinear" and not zero:
            problems.append(f"QuantizeLinear {name} has no zero point, so ONNX makes it UINT8 (onnx-tensorrt takes INT8 Q/DQ only)")
        elif zero in consts and np.any(consts[zero] != 0):
            problems.append(f"{node.op_type} {name} has a non-zero zero point (TensorRT only supports symmetric quantization)")
        elif scale in consts and not np.all(consts[scale].astype(np.float64) > 0):
            problems.append(f"{node.op_type} {name} has a scale that is not positive")
        elif release is not None:
            problems += _release_problems(node.op_type, name, types.get(scale), zero, release)
    return problems


def _release_problems(op: str, name: str, scale_type: int | None, zero: str, release: Release) -> list[str]:
    from onnx import TensorProto

    type_name = TensorProto.DataType.Name(scale_type) if scale_type else None
    if type_name is not None and type_name not in scale_types(release):
        return [f"{op} {name} has a {type_name} scale, which TensorRT {release} does not read "
                f"(it reads {', '.join(scale_types(release))}; FLOAT16 scales from TensorRT 10.0)"]
    if release.major < 10 and not zero:
        return [f"{op} {name} has no zero point, which TensorRT {release} requires on INT8 Q/DQ"]
    return []


# -- the verdict build-engine acts on ---------------------------------------------------------------
def _opset_problem(name: str, opset: int, release: Release) -> str | None:
    verdict = opset_verdict(release, opset)
    if verdict.documented is None:
        log.warning("%s uses ONNX opset %d; whether TensorRT %s documents it is not known here (%s documents up to %s); "
                    "if its parser refuses an op, re-export at a lower opset", name, opset, release, verdict.source, verdict.limit)
    if verdict.documented is not False:
        return None
    first = first_release_documenting(opset)
    instead = f"build it with TensorRT {first} or later (documented there), or " if first else ""
    return (f"{name} uses ONNX opset {opset}, but TensorRT {release} documents opsets up to {verdict.limit} "
            f"({verdict.source}); {instead}re-export it at opset {verdict.limit} or lower")


def check_buildable(path: str | Path, release: Release | None, *, manifest: dict | None = None) -> None:
    """Refuse, before any work, an ONNX that TensorRT ``release`` (None: not known here, judged by
    the rules of every release only) does not build as rtdeploy would label it.

    Args:
        path: the ONNX file.
        release: the TensorRT that will build it (the installed one, or ``--trt-version``).
        manifest: the file's manifest, when it has one (names rtdeploy's CPU form).

    Raises:
        EngineError: one line: what the file is or holds, what TensorRT takes, what to use instead.
    """
    from rtdeploy.artifacts import load_onnx_graph
    from rtdeploy.lineage import CPU_TARGET, derived_path

    p = Path(path)
    if not p.is_file():
        return  # missing, a folder or a FIFO (which would block a reader): read_graph_facts names it
    quantization = (manifest or {}).get("quantization") or {}
    if (manifest or {}).get("kind") == "onnx-int8" and quantization.get("target") == CPU_TARGET:
        parent = (manifest.get("parent") or {}).get("path") or "MODEL.onnx"
        raise EngineError(f"{p.name} is the INT8 form for onnxruntime's CPU kernels (uint8 Q/DQ with zero points), which TensorRT "
                          f"cannot build (onnx-tensorrt takes symmetric INT8 Q/DQ only); build {derived_path(parent, 'int8').name} "
                          f"instead (`rtdeploy quantize {parent} --int8`, or `rtdeploy build-engine --onnx {parent} --int8`)")
    model = load_onnx_graph(p)
    if model is None:
        return  # not an ONNX model: read_graph_facts names that
    opset = _opset_problem(p.name, opset_of(model), release) if release is not None else None
    if opset:
        raise EngineError(opset)
    problems = qdq_problems(model, release)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise EngineError(f"TensorRT {release or ''} cannot build {p.name}: {problems[0]}{more}; make the INT8 model with "
                          "`rtdeploy quantize MODEL.onnx --int8` (symmetric int8 Q/DQ, float32 scales), or re-quantize it that way")


def oldest_release_for(path: str | Path) -> Release | None:
    """The oldest documented release (of :data:`DOCUMENTED_OPSETS`) that builds ``path``: its opset
    and Q/DQ scale types; None when the file cannot be read or no documented release builds it."""
    from rtdeploy.artifacts import load_onnx_graph

    model = load_onnx_graph(path) if Path(path).is_file() else None
    if model is None:
        return None
    opset = opset_of(model)
    for release in (row.first for row in DOCUMENTED_OPSETS):
        if opset_verdict(release, opset).documented and not qdq_problems(model, release):
            return release
    return None


def release_to_judge(named: str | None, installed: str | None) -> Release | None:
    """The TensorRT release whose rules apply: the installed one, else the one ``--trt-version``
    names (None: neither is known, so only the rules of every release apply).

    Raises:
        EngineError: ``named`` is not a version, or names another release than the installed one.
    """
    wanted = Release.parse(named) if named is not None else None
    here = Release.parse(installed, option="the installed TensorRT") if installed else None
    if wanted is not None and here is not None and wanted != here:
        raise EngineError(f"--trt-version {named} names TensorRT {wanted}, but TensorRT {installed} is installed here and would "
                          "build it; drop --trt-version, or build where that release is")
    return here or wanted


# TensorRT 8.5 (JetPack 5.1) and 8.6 (JetPack 6.0), the oldest releases rtdeploy builds with, document the same opsets.
OLDEST_SUPPORTED = Release(8, 6)


def opset_note(opset: int) -> str | None:
    """One line for a model of ``opset`` that the oldest supported TensorRT does not document
    (None when it does): what ``build-engine`` will refuse, and where it builds."""
    problem = _opset_problem("the model", opset, OLDEST_SUPPORTED)
    return None if problem is None else f"`build-engine` refuses it for TensorRT 8.5 and 8.6 (JetPack 5.1, 6.0): {problem}"
