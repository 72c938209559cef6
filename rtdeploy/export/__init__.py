"""torch -> ONNX export (TorchScript exporter, dynamic batch, checked, with a manifest), and the
adoption of an ONNX made elsewhere (``rtdeploy import``)."""

from rtdeploy.faces import lazy_face

__getattr__ = lazy_face(__name__, {
    "ExportConfig": "rtdeploy.export.options", "parse_batch": "rtdeploy.export.options",
    "ExportResult": "rtdeploy.export.onnx_export", "export_onnx": "rtdeploy.export.onnx_export",
})
__all__ = ["ExportConfig", "ExportResult", "export_onnx", "parse_batch"]
