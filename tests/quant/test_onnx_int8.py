"""Real int8 execution: QDQ ONNX export run by ONNX Runtime."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from torch import nn

from slimkit.core.errors import DataError
from slimkit.quant import Int8Config, IntegerModel, QuantConfig, export_onnx_int8, quantize


def test_int8_onnx_matches_torch_and_uses_integer_kernels(
    cnn: nn.Module, images: torch.Tensor, batches: list[torch.Tensor], tmp_path: Path
) -> None:
    ref = cnn(images).detach()
    quantize(cnn, Int8Config(), calibration_data=batches)
    simulated = cnn(images).detach()
    path = export_onnx_int8(cnn, (images[:1],), tmp_path / "m.int8.onnx", calibration_data=batches)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.int8.onnx"]  # no temporary files left behind
    int8 = IntegerModel(path, threads=1)
    out = int8(images)
    assert out.shape == ref.shape
    rel = float((out - ref).pow(2).sum() / ref.pow(2).sum())
    assert rel < 5e-3
    assert float((out - simulated).pow(2).sum() / simulated.pow(2).sum()) < 5e-3
    ops = int8.kernel_ops()
    assert ops.get("QLinearConv", 0) == 2  # ORT fused DQ -> Conv -> Q into integer convolutions
    assert ops.get("QGemm", 0) + ops.get("QLinearMatMul", 0) + ops.get("MatMulInteger", 0) >= 1
    labels = ref.argmax(1)
    acc = int8.evaluate([(images, labels)])
    assert acc["samples"] == 32 and acc["accuracy"] == float((out.argmax(1) == labels).float().mean())


def test_float_layers_stay_float(cnn: nn.Module, images: torch.Tensor, batches: list[torch.Tensor],
                                 tmp_path: Path) -> None:
    model = copy.deepcopy(cnn)
    quantize(model, QuantConfig(keep_first_last=True), calibration_data=batches)
    int8 = IntegerModel(export_onnx_int8(model, (images[:1],), tmp_path / "k.onnx", calibration_data=batches))
    ops = int8.kernel_ops()
    assert ops.get("QLinearConv", 0) == 1  # the first conv is left in float
    assert ops.get("Conv", 0) + ops.get("FusedConv", 0) + ops.get("NchwcConv", 0) >= 1


def test_export_needs_calibration(cnn: nn.Module, images: torch.Tensor, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="calibration_data gave no batches"):
        export_onnx_int8(cnn, (images[:1],), tmp_path / "x.onnx", calibration_data=[])
    assert not (tmp_path / "x.onnx").exists()
    with pytest.raises(DataError, match="no such ONNX file"):
        IntegerModel(tmp_path / "missing.onnx")


class _Block(nn.Module):
    def __init__(self, channels: int, groups: int = 1) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False, groups=groups)
        self.b1 = nn.BatchNorm2d(channels)
        self.c2 = nn.Conv2d(channels, channels, 1, bias=False)
        self.b2 = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.b2(self.c2(torch.relu(self.b1(self.c1(x))))) + x)


def test_residual_and_depthwise_blocks_fuse_fully(tmp_path: Path) -> None:
    torch.manual_seed(0)
    # default BatchNorms fold to identical zero biases, which the exporter de-duplicates: still fused
    model = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), _Block(16), _Block(16, groups=16),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10)).eval()
    x = torch.randn(16, 1, 16, 16)
    ref = model(x).detach()
    quantize(model, Int8Config(), calibration_data=[x])
    int8 = IntegerModel(export_onnx_int8(model, (x[:1],), tmp_path / "r.onnx", calibration_data=[x]))
    ops = int8.kernel_ops()
    assert ops.get("QLinearConv", 0) == 5 and ops.get("QLinearAdd", 0) == 2 and "Conv" not in ops
    out = int8(x)
    assert float((out - ref).pow(2).sum() / ref.pow(2).sum()) < 5e-3
