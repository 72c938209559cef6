"""Models rtdeploy did not make, for the import tests: written here, exported with plain
``torch.onnx.export``, BatchNorm left in the graph, other tensor and parameter names.

- :class:`PaperCifarResNet`: the paper's CIFAR ResNet (section 4.2) written independently of
  ``rtdeploy.models.cifar``: other module names, option-A shortcut, a Flatten or a Reshape head.
  :func:`load_cifar_checkpoint` maps the published checkpoints' keys onto it.
- :class:`PlainConvNet` and :class:`DepthwiseNet`: small non-ResNet CNNs (a plain conv stack; a
  MobileNet-like stack with depthwise 3x3 and pointwise 1x1 convolutions).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn


class _Block(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.n1 = nn.BatchNorm2d(cout)
        self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.n2 = nn.BatchNorm2d(cout)
        self.pad = (cout - cin) // 2 if stride != 1 or cin != cout else None

    def forward(self, x):
        y = F.relu(self.n1(self.c1(x)))
        y = self.n2(self.c2(y))
        skip = x if self.pad is None else F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad))
        return F.relu(y + skip)


class PaperCifarResNet(nn.Module):
    """ResNet-(6n+2) for 32x32 CIFAR images; ``head`` is ``flatten`` (an ONNX Flatten) or ``view``
    (``x.view(x.size(0), -1)``: a Reshape, whose batch becomes a constant in a fixed-batch export)."""

    def __init__(self, depth: int, head: str = "flatten"):
        super().__init__()
        n = (depth - 2) // 6
        self.stem_conv = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.stem_bn = nn.BatchNorm2d(16)
        widths = [(16, 16, 1), (16, 32, 2), (32, 64, 2)]
        self.stages = nn.ModuleList(
            nn.Sequential(*[_Block(cin if i == 0 else cout, cout, s if i == 0 else 1) for i in range(n)])
            for cin, cout, s in widths
        )
        self.classifier = nn.Linear(64, 10)
        self.head = head

    def forward(self, x):
        x = F.relu(self.stem_bn(self.stem_conv(x)))
        for stage in self.stages:
            x = stage(x)
        x = F.adaptive_avg_pool2d(x, 1)
        x = torch.flatten(x, 1) if self.head == "flatten" else x.view(x.size(0), -1)
        return self.classifier(x)


def load_cifar_checkpoint(model: PaperCifarResNet, path: Path) -> PaperCifarResNet:
    """Load a published CIFAR ResNet checkpoint (``module.layer2.0.conv1.weight`` ...) into ``model``."""
    from rtdeploy.models import read_state_dict

    src = read_state_dict(path)  # weights_only=True, DataParallel prefix stripped
    renamed = {}
    for key, value in src.items():
        parts = key.split(".")
        if parts[0] == "conv1":
            new = "stem_conv." + ".".join(parts[1:])
        elif parts[0] == "bn1":
            new = "stem_bn." + ".".join(parts[1:])
        elif parts[0] == "linear":
            new = "classifier." + ".".join(parts[1:])
        else:  # layer{s}.{i}.conv{k}/bn{k}.x
            stage, block, layer = int(parts[0][5:]) - 1, parts[1], parts[2]
            layer = {"conv1": "c1", "bn1": "n1", "conv2": "c2", "bn2": "n2"}[layer]
            new = f"stages.{stage}.{block}.{layer}." + ".".join(parts[3:])
        renamed[new] = value
    model.load_state_dict(renamed, strict=True)
    return model.eval()


class PlainConvNet(nn.Module):
    """conv-bn-relu x3 with max pooling, then a linear head: no residuals."""

    def __init__(self, classes: int = 10):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(),
        )
        self.fc = nn.Linear(64, classes)

    def forward(self, x):
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(self.features(x), 1), 1))


class DepthwiseNet(nn.Module):
    """A MobileNet-like stack: depthwise 3x3 (groups = channels) then pointwise 1x1 convolutions."""

    def __init__(self, classes: int = 10):
        super().__init__()

        def dw_pw(cin, cout, stride):
            return [nn.Conv2d(cin, cin, 3, stride, 1, groups=cin, bias=False), nn.BatchNorm2d(cin), nn.ReLU6(),
                    nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU6()]

        self.body = nn.Sequential(nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU6(),
                                  *dw_pw(16, 32, 2), *dw_pw(32, 64, 2))
        self.fc = nn.Linear(64, classes)

    def forward(self, x):
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(self.body(x), 1), 1))


def trained_briefly(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give BatchNorm non-trivial running statistics (a few forward passes in train mode on noise),
    so an unfolded BatchNorm is not the identity; weights stay as initialised with ``seed``."""
    torch.manual_seed(seed)
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(16, 3, 32, 32))
    return model.eval()


def export_plain(model: nn.Module, path: Path, *, opset: int = 13, batch: int | None = None,
                 input_name: str = "images", output_name: str = "scores", size: int = 32) -> Path:
    """``torch.onnx.export`` as training code would call it: BatchNorm kept (not folded), the
    given tensor names, ``batch`` fixed or (None) a dynamic batch axis."""
    example = torch.zeros((batch or 2, 3, size, size))
    axes = None if batch else {input_name: {0: "n"}, output_name: {0: "n"}}
    import warnings

    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's deprecation and constant-folding notes
        torch.onnx.export(model.eval(), (example,), str(path), dynamo=False, opset_version=opset,
                          training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=True,
                          input_names=[input_name], output_names=[output_name], dynamic_axes=axes)
    return path


def agreement_pair(depth: int, cifar_root: Path, work: Path, *, batch: int | None, opset: int = 13,
                   head: str = "flatten", samples: int | None = None) -> dict:
    """INT8 vs FP32 top-1 agreement on CIFAR-10 dev of ResNet-``depth``, two ways from the same
    trained weights: rtdeploy's own export, and a plain ``torch.onnx.export`` of the definition
    above imported with ``rtdeploy import``. Both are calibrated on ``calib/`` (entropy, all 1,000)."""
    from rtdeploy import api

    weights = sorted((cifar_root / "weights").glob(f"resnet{depth}-*.th"))[0]
    calib, dev = cifar_root / "calib", cifar_root / "dev"
    work.mkdir(parents=True, exist_ok=True)
    own = api.export(model=f"resnet{depth}", weights=weights, output=work / f"own{depth}.onnx",
                     batch=batch or "dynamic", opset=opset).path
    foreign = export_plain(load_cifar_checkpoint(PaperCifarResNet(depth, head=head), weights),
                           work / f"foreign{depth}.onnx", opset=opset, batch=batch)
    api.import_model(foreign, preprocess="cifar", classes=10)
    row = {"model": f"resnet{depth}", "batch": batch or "dynamic", "opset": opset, "head": head}
    for label, path in (("own", own), ("imported", foreign)):
        q = api.quantize(path, int8=True, calib_dir=calib, stats_cache=False)
        rep = api.validate(q.path, images=dev, samples=samples)
        stats = next(iter(rep.sets[-1].outputs.values()))  # the images set; its one output
        row[f"{label}_agreement"] = stats["top1_agreement"]
        row[f"{label}_fp32_accuracy"] = stats["reference_accuracy"]
        row[f"{label}_int8_accuracy"] = stats["candidate_accuracy"]
        row[f"{label}_int8_layers"] = q.report["quantized_layers"]
    return row
