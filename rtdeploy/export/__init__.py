"""torch -> ONNX export (TorchScript exporter, dynamic batch, checked, with a manifest)."""

from rtdeploy.export.onnx_export import ExportConfig, ExportResult, export_onnx, parse_batch

__all__ = ["ExportConfig", "ExportResult", "export_onnx", "parse_batch"]
