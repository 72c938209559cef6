"""INT8 calibration: statistics, calibrators, Q/DQ placement, sensitivity and TensorRT caches."""
