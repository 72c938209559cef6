"""Models by name: the registry (:func:`register_model`, :func:`list_models`), the ResNet family
registered in it, per-model metadata, weights loading and the summary."""

from rtdeploy.models.metadata import ModelMeta
from rtdeploy.models.registry import ModelEntry, get_model, list_models, register_model
from rtdeploy.models.resnet import CIFAR_DEPTHS, IMAGENET_DEPTHS, build_model, family_of, model_meta, valid_depths_text
from rtdeploy.models.weights import load_weights, read_state_dict

__all__ = [
    "CIFAR_DEPTHS", "IMAGENET_DEPTHS", "ModelEntry", "ModelMeta", "build_model", "family_of", "get_model", "list_models",
    "load_weights", "model_meta", "read_state_dict", "register_model", "valid_depths_text",
]
