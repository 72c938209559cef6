"""Per-layer summary of a ResNet: output shapes, parameters and multiply-accumulates (MACs).

Measured with forward hooks on a batch-1 input. The model is built on PyTorch's ``meta`` device,
so the forward pass computes shapes only: no weights are initialised and no arithmetic is done,
which keeps ``summary`` instant even for ResNet-152. MACs count convolutions and linear layers
only, the convention of the published GMACs figures (BatchNorm, ReLU, pooling and additions are
comparatively free and are left out).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

from rtdeploy.errors import ModelError
from rtdeploy.models.metadata import ModelMeta
from rtdeploy.models.options import ModelChoice
from rtdeploy.options import FLAG, JsonReport, Options, option

BLOCK_TYPES = ("BasicBlock", "Bottleneck", "CifarBasicBlock")


@dataclass(frozen=True)
class LayerRow:
    """One row of the summary.

    Attributes:
        name: dotted module name (``layer1.0.conv1``).
        type: module class name.
        kind: ``block`` (a residual block, totals of its layers) or ``layer`` (a leaf module).
        output_shape: output shape for a batch of 1.
        params: parameters (of the block, or of the layer itself).
        macs: multiply-accumulates per image (of the block, or of the layer).
    """

    name: str
    type: str
    kind: str
    output_shape: tuple[int, ...]
    params: int
    macs: int


@dataclass(frozen=True)
class ModelSummary:
    """The rows and totals of one model."""

    meta: ModelMeta
    rows: list[LayerRow] = field(default_factory=list)
    total_params: int = 0
    trainable_params: int = 0
    total_macs: int = 0
    input_shape: tuple[int, ...] = ()
    output_shape: tuple[int, ...] = ()

    @property
    def gmacs(self) -> float:
        """Total MACs in billions."""
        return self.total_macs / 1e9

    def to_dict(self) -> dict:
        """A JSON-ready dict."""
        return {
            "model": self.meta.to_dict(),
            "input_shape": list(self.input_shape),
            "output_shape": list(self.output_shape),
            "total_params": self.total_params,
            "trainable_params": self.trainable_params,
            "total_macs": self.total_macs,
            "gmacs": round(self.gmacs, 4),
            "param_megabytes_fp32": round(self.total_params * 4 / 1e6, 2),
            "layers": [asdict(r) | {"output_shape": list(r.output_shape)} for r in self.rows],
        }


@dataclass(frozen=True, kw_only=True)
class SummaryConfig(JsonReport, ModelChoice, Options):
    """``rtdeploy summary``'s options: the model (:class:`~rtdeploy.models.options.ModelChoice`) and which rows."""

    error = ModelError

    blocks_only: bool = option(False, "--blocks-only", kind=FLAG, changes_output=False,
                               help="List residual blocks and top-level layers only.")


def summary(cfg: SummaryConfig) -> ModelSummary:
    """The summary of the model ``cfg`` names (only blocks and top-level layers with ``blocks_only``;
    the totals always count every layer)."""
    cfg.check()
    s = summarize(cfg.meta())
    if cfg.blocks_only:
        s = replace(s, rows=[r for r in s.rows if r.kind == "block" or "." not in r.name])
    return s


def summarize(meta: ModelMeta) -> ModelSummary:
    """Build the model of ``meta`` by its registered name (shapes only) and measure every layer and
    block on one image."""
    import torch

    from rtdeploy.models.registry import build

    with torch.device("meta"):
        model = build(meta)
    records: dict[str, dict] = {}
    handles = []
    for name, module in model.named_modules():
        is_leaf = not any(True for _ in module.children())
        if name and (is_leaf or type(module).__name__ in BLOCK_TYPES):
            handles.append(module.register_forward_pre_hook(_pre_hook(records, name, module, is_leaf)))
            handles.append(module.register_forward_hook(_post_hook(records, name)))
    try:
        with torch.no_grad():
            out = model(torch.zeros(meta.input_shape(1), device="meta"))
    finally:
        for h in handles:
            h.remove()
    rows = _rows(records)
    params = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    macs = sum(r.macs for r in rows if r.kind == "layer")
    return ModelSummary(meta, rows, params, trainable, macs, tuple(meta.input_shape(1)), tuple(out.shape))


def _pre_hook(records: dict, name: str, module, is_leaf: bool):
    def hook(_module, _inputs):
        records.setdefault(name, {"module": module, "leaf": is_leaf, "shape": None})

    return hook


def _post_hook(records: dict, name: str):
    def hook(_module, _inputs, output):
        records[name]["shape"] = tuple(output.shape)

    return hook


def _rows(records: dict) -> list[LayerRow]:
    leaves = {}
    for name, rec in records.items():
        if rec["leaf"]:
            leaves[name] = (_own_params(rec["module"]), _layer_macs(rec["module"], rec["shape"]))
    rows = []
    for name, rec in records.items():
        if rec["leaf"]:
            params, macs = leaves[name]
        else:
            inside = [v for k, v in leaves.items() if k.startswith(name + ".")]
            params, macs = sum(p for p, _ in inside), sum(m for _, m in inside)
        kind = "layer" if rec["leaf"] else "block"
        rows.append(LayerRow(name, type(rec["module"]).__name__, kind, rec["shape"], params, macs))
    return rows


def _own_params(module) -> int:
    return sum(p.numel() for p in module.parameters(recurse=False))


def _layer_macs(module, out_shape: tuple[int, ...]) -> int:
    from torch import nn

    out_elements = 1
    for d in out_shape:
        out_elements *= d
    if isinstance(module, nn.Conv2d):
        kh, kw = module.kernel_size
        return out_elements * (module.in_channels // module.groups) * kh * kw
    if isinstance(module, nn.Linear):
        return out_elements * module.in_features
    return 0
