"""Export a (compressed) model for deployment: ONNX, checked against the PyTorch model with ONNX Runtime."""

from slimkit.export.onnx import export_onnx, onnx_session

__all__ = ["export_onnx", "onnx_session"]
