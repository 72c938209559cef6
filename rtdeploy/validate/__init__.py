"""Compare a candidate (ONNX, FP16, INT8, TensorRT) with its reference on the same inputs."""

from rtdeploy.faces import lazy_face

__getattr__ = lazy_face(__name__, {
    "Failure": "rtdeploy.validate.compare", "OutputStats": "rtdeploy.validate.compare", "check": "rtdeploy.validate.compare",
    "SetReport": "rtdeploy.validate.report", "ValidationReport": "rtdeploy.validate.report",
    "OutputStore": "rtdeploy.validate.outputs",
    "ValidateConfig": "rtdeploy.validate.options", "compare_outputs": "rtdeploy.validate.run", "validate_model": "rtdeploy.validate.run",
    "DEFAULT_TOLERANCES": "rtdeploy.validate.tolerances", "Tolerance": "rtdeploy.validate.tolerances",
    "tolerance_for": "rtdeploy.validate.tolerances",
})
__all__ = [
    "DEFAULT_TOLERANCES", "Failure", "OutputStats", "OutputStore", "SetReport", "Tolerance", "ValidateConfig", "ValidationReport",
    "check", "compare_outputs", "tolerance_for", "validate_model",
]
