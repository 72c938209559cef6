"""The ResNet family: ImageNet ResNet-18/34/50/101/152 and the paper's CIFAR-10 ResNet-20..110."""

from rtdeploy.models.metadata import ModelMeta
from rtdeploy.models.registry import (
    CIFAR_DEPTHS,
    IMAGENET_DEPTHS,
    build_model,
    family_of,
    model_meta,
    valid_depths_text,
)
from rtdeploy.models.weights import load_weights, read_state_dict

__all__ = [
    "CIFAR_DEPTHS", "IMAGENET_DEPTHS", "ModelMeta", "build_model", "family_of", "load_weights",
    "model_meta", "read_state_dict", "valid_depths_text",
]
