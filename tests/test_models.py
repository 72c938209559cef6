"""The ResNet family: parameter counts, torchvision key layout, v1/v1.5 strides, CIFAR checkpoints."""

from __future__ import annotations

import pytest
import torch

from rtdeploy.errors import ModelError
from rtdeploy.models import CIFAR_DEPTHS, IMAGENET_DEPTHS, build_model, family_of, load_weights, model_meta

# From the issue (torchvision's published counts, and the CIFAR paper models' trained checkpoints).
PARAMS = {18: 11_689_512, 34: 21_797_672, 50: 25_557_032, 101: 44_549_160, 152: 60_192_808,
          20: 269_722, 32: 464_154, 44: 658_586, 56: 853_018}
STAGES = {18: ("basic", (2, 2, 2, 2)), 34: ("basic", (3, 4, 6, 3)), 50: ("bottleneck", (3, 4, 6, 3)),
          101: ("bottleneck", (3, 4, 23, 3)), 152: ("bottleneck", (3, 8, 36, 3))}
BN = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def _count(model) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("depth", sorted(PARAMS))
def test_parameter_counts(depth):
    assert _count(build_model(model_meta(depth))) == PARAMS[depth]


def test_cifar_resnet110_parameter_count_follows_the_paper_formula():
    # conv1 + bn1, then per block two 3x3 convs and two BNs, option-A shortcuts have no weights.
    n, total, cin = (110 - 2) // 6, 3 * 16 * 9 + 2 * 16, 16
    for width in (16, 32, 64):
        for _ in range(n):
            total += 9 * cin * width + 9 * width * width + 4 * width
            cin = width
    total += 64 * 10 + 10
    assert _count(build_model(model_meta(110))) == total


def _torchvision_keys(depth: int) -> set[str]:
    """The state-dict keys of torchvision's resnet<depth>, written from its architecture."""
    kind, counts = STAGES[depth]
    convs = 2 if kind == "basic" else 3
    keys = {"conv1.weight", "fc.weight", "fc.bias"} | {f"bn1.{s}" for s in BN}
    for stage, count in enumerate(counts, start=1):
        for block in range(count):
            prefix = f"layer{stage}.{block}"
            for c in range(1, convs + 1):
                keys.add(f"{prefix}.conv{c}.weight")
                keys |= {f"{prefix}.bn{c}.{s}" for s in BN}
            if block == 0 and (stage > 1 or kind == "bottleneck"):
                keys.add(f"{prefix}.downsample.0.weight")
                keys |= {f"{prefix}.downsample.1.{s}" for s in BN}
    return keys


@pytest.mark.parametrize("depth", IMAGENET_DEPTHS)
def test_imagenet_keys_match_torchvision_layout(depth):
    assert set(build_model(model_meta(depth)).state_dict()) == _torchvision_keys(depth)


def test_resnet50_shapes_match_torchvision():
    sd = build_model(model_meta(50)).state_dict()
    assert sd["conv1.weight"].shape == (64, 3, 7, 7)
    assert sd["layer1.0.conv2.weight"].shape == (64, 64, 3, 3)
    assert sd["layer1.0.downsample.0.weight"].shape == (256, 64, 1, 1)
    assert sd["layer4.2.conv3.weight"].shape == (2048, 512, 1, 1)
    assert sd["fc.weight"].shape == (1000, 2048)


def test_torchvision_style_checkpoint_loads_strict(tmp_path):
    # A checkpoint with torchvision's keys, saved the way torchvision publishes them.
    donor = build_model(model_meta(18))
    state = {k: torch.randn_like(v.float()).to(v.dtype) if v.is_floating_point() else v for k, v in donor.state_dict().items()}
    assert set(state) == _torchvision_keys(18)
    torch.save(state, tmp_path / "resnet18-f37072fd.pth")
    model = build_model(model_meta(18))
    load_weights(model, tmp_path / "resnet18-f37072fd.pth")
    assert torch.equal(model.layer3[1].conv2.weight, state["layer3.1.conv2.weight"])


@pytest.mark.parametrize("variant,conv1_stride,conv2_stride", [("v1.5", (1, 1), (2, 2)), ("v1", (2, 2), (1, 1))])
def test_v1_and_v15_stride_placement(variant, conv1_stride, conv2_stride):
    model = build_model(model_meta(50, variant=variant))
    for stage in (model.layer2, model.layer3, model.layer4):
        assert stage[0].conv1.stride == conv1_stride
        assert stage[0].conv2.stride == conv2_stride
        assert stage[0].downsample[0].stride == (2, 2)
        assert stage[1].conv1.stride == stage[1].conv2.stride == (1, 1)
    assert _count(model) == PARAMS[50]
    with torch.no_grad():
        assert model(torch.zeros(1, 3, 64, 64)).shape == (1, 1000)


def test_v1_and_v15_differ_in_output():
    x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    a, b = build_model(model_meta(50, variant="v1")), build_model(model_meta(50, variant="v1.5"))
    b.load_state_dict(a.state_dict())
    with torch.no_grad():
        assert not torch.allclose(a(x), b(x))


def test_num_classes_and_in_channels():
    model = build_model(model_meta(18, num_classes=7, in_channels=1))
    with torch.no_grad():
        assert model(torch.zeros(2, 1, 64, 64)).shape == (2, 7)
    with torch.no_grad():
        assert build_model(model_meta(20, num_classes=3))(torch.zeros(1, 3, 32, 32)).shape == (1, 3)


@pytest.mark.parametrize("depth", [20, 32, 44, 56])
def test_cifar_checkpoints_load_strict(depth, cifar_weights):
    model = build_model(model_meta(depth))
    load_weights(model, cifar_weights(depth))
    assert not any(p.numel() for p in model.layer2[0].shortcut.parameters())


def test_unknown_depth_lists_valid_depths():
    with pytest.raises(ModelError) as e:
        family_of(19)
    msg = str(e.value)
    assert "19" in msg and all(str(d) in msg for d in IMAGENET_DEPTHS + CIFAR_DEPTHS)


def test_bad_options_are_model_errors():
    with pytest.raises(ModelError, match="variant"):
        model_meta(50, variant="v2")
    with pytest.raises(ModelError, match="option-a"):
        model_meta(56, variant="v1")
    with pytest.raises(ModelError, match="num_classes"):
        model_meta(50, num_classes=0)


def test_metadata_defaults():
    m = model_meta(50)
    assert (m.family, m.image_size, m.resize, m.num_classes, m.input_shape(4)) == ("imagenet", 224, 256, 1000, (4, 3, 224, 224))
    c = model_meta(56)
    assert (c.family, c.image_size, c.resize, c.num_classes) == ("cifar", 32, None, 10)
    assert type(m).from_dict(m.to_dict()) == m
