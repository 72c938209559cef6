"""rtdeploy: take a PyTorch ResNet to ONNX, FP16/INT8, TensorRT engines and benchmarks.

The stage functions live in :mod:`rtdeploy.api`; nothing heavy is imported here.
"""

__version__ = "0.1.0"
