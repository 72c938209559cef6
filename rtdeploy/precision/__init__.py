"""Precision in the graph: FP16 ONNX and calibrated INT8 ONNX with explicit Q/DQ for TensorRT."""
