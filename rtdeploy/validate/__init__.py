"""Compare a candidate (ONNX, FP16, INT8, TensorRT) with its reference on the same inputs."""

from rtdeploy.validate.compare import Failure, OutputStats, check
from rtdeploy.validate.report import SetReport, ValidationReport
from rtdeploy.validate.outputs import OutputStore
from rtdeploy.validate.run import ValidateConfig, compare_outputs, validate_model
from rtdeploy.validate.tolerances import DEFAULT_TOLERANCES, Tolerance, tolerance_for

__all__ = [
    "DEFAULT_TOLERANCES", "Failure", "OutputStats", "OutputStore", "SetReport", "Tolerance", "ValidateConfig", "ValidationReport",
    "check", "compare_outputs", "tolerance_for", "validate_model",
]
