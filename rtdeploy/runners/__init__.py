"""Runners: one protocol for torch, onnxruntime and TensorRT (``rtdeploy.trt.runner``)."""

from rtdeploy.runners.base import Runner

__all__ = ["Runner"]
