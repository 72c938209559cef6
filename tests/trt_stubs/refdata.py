"""The real engine-inspector JSONs in ../shared/reference/trt-engine-graphs, and forms derived from them.

Source of the files and of every rule used here: that folder's README.md (real outputs of
``trtexec --exportLayerInfo`` from NVIDIA's TREx examples, TensorRT 8.4/8.5 era). Nothing is
copied into the repository: tests that need the folder skip when it is absent.

- :func:`to_trt11_form` rewrites a file into TensorRT 11's documented form: ``Bindings`` replaced by
  ``"I/O Tensors"`` objects (keys ``Name, IOMode, DataType, Dimensions, Location,
  IsShapeInferenceIO, ProfileInfo[{MinShape, OptShape, MaxShape, Format}]`` — confirmed by NVIDIA's
  10.x -> 11.x IEngineInspector migration page), and each layer tensor's ``Format/Datatype`` split
  into ``Format`` + a data-type key. The split's key names are NOT confirmed (README: "Not
  confirmed"), so ``dtype_key`` produces either spelling (``Datatype`` as NVIDIA's own 11.x
  analysis scripts read it, or ``DataType`` as ``I/O Tensors`` spells it), and the ``Format`` value
  carries no data-type word, so a parser can only pass by reading the data-type key.
- :func:`with_fallback` makes the "fell back" copies the README says no real file shows: the
  named compute layers get FP16 (or FP32) weights and inputs, as TensorRT reports a layer it ran
  in that precision.
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def graphs_dir() -> Path:
    """``$RTDEPLOY_TRT_GRAPHS`` or ``../shared/reference/trt-engine-graphs`` beside the repository."""
    return Path(os.environ.get("RTDEPLOY_TRT_GRAPHS") or REPO.parent / "shared" / "reference" / "trt-engine-graphs")


def stems() -> list[str]:
    """The file stems listed in expected-counts.json (empty when the folder is absent)."""
    path = graphs_dir() / "expected-counts.json"
    return list(json.loads(path.read_text())) if path.is_file() else []


def load(stem: str) -> dict:
    return json.loads((graphs_dir() / f"{stem}.graph.json").read_text())


def expected(stem: str) -> dict:
    return json.loads((graphs_dir() / "expected-counts.json").read_text())[stem]


_SHORT = (("Int8", "Int8"), ("FP16", "Half"), ("FP32", "Float"))
_LAYOUT = (("Thirty-two wide", "kCHW32"), ("Sixteen wide", "kCHW16"), ("Four wide", "kCHW4"), ("Two wide", "kCHW2"),
           ("Channel major", "kHWC8"), ("Row major", "kLINEAR"))


def _split(fmt: str) -> tuple[str, str]:
    dtype = next((short for word, short in _SHORT if word in fmt), "Float" if fmt == "Float" else "Unknown")
    layout = next((code for word, code in _LAYOUT if word in fmt), "kLINEAR")
    return layout, dtype


def to_trt11_form(data: dict, dtype_key: str = "Datatype") -> dict:
    """``data`` (8.x/10.x form) in TensorRT 11's form; see the module docstring."""
    out = copy.deepcopy(data)
    tensors: dict[tuple[str, str], dict] = {}
    for layer in out["Layers"]:
        for side in ("Inputs", "Outputs"):
            for t in layer.get(side, []):
                tensors.setdefault((t["Name"], side), dict(t))
                layout, dtype = _split(t.pop("Format/Datatype"))
                t["Format"], t[dtype_key] = layout, dtype
    io = []
    for name in out.pop("Bindings"):
        side = "Inputs" if (name, "Inputs") in tensors else "Outputs"
        t = tensors[(name, side)]
        dims = t.get("Dimensions", [])
        io.append({"Name": name, "IOMode": "Input" if side == "Inputs" else "Output", "DataType": _split(t["Format/Datatype"])[1],
                   "Dimensions": dims, "Location": "Device", "IsShapeInferenceIO": False,
                   "ProfileInfo": [{"MinShape": dims, "OptShape": dims, "MaxShape": dims, "Format": "Row major linear FP32 format (kLINEAR)"}]})
    out["I/O Tensors"] = io
    return out


def with_fallback(data: dict, names: list[str], to: str = "fp16") -> dict:
    """A copy of ``data`` (8.x/10.x form) where the layers ``names`` ran in ``to`` (fp16 or fp32)."""
    weight, fmt = {"fp16": ("Half", "Channel major FP16 format where channel % 8 == 0"),
                   "fp32": ("Float", "Row major linear FP32")}[to]
    out = copy.deepcopy(data)
    hit = 0
    for layer in out["Layers"]:
        if layer.get("Name") in names:
            hit += 1
            for key in ("Weights", "ConvWeights"):
                if key in layer:
                    layer[key]["Type"] = weight
            for t in [*layer.get("Inputs", []), *layer.get("Outputs", [])]:
                t["Format/Datatype"] = fmt
    assert hit == len(names), f"not all of {names} are layers of this file"
    return out


def compute_layer_names(data: dict) -> list[str]:
    """Names of the layers with weights (Weights or ConvWeights), in file order."""
    return [layer["Name"] for layer in data["Layers"] if isinstance(layer, dict) and ("Weights" in layer or "ConvWeights" in layer)]
