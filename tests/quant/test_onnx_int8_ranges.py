"""What slimkit decided reaches the int8 ONNX model: weight scales per channel, activation ranges per layer.

``export_onnx_int8`` hands ONNX Runtime the ranges slimkit's observers computed (percentile, MSE, LSQ steps) instead
of letting ORT calibrate; these tests read the written initializers back with ``onnx`` and compare them, layer by
layer, with the quantized torch model.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper
from torch import nn

from slimkit.quant import (
    Int8Config,
    PerTensor,
    QuantConfig,
    export_onnx_int8,
    make_observer,
    quantize,
)
from slimkit.quant.modules import is_quant_layer

LAYERS = ("0", "4", "8", "10")  # conv on the input, conv after MaxPool, linear after GAP + Flatten, last linear


def make_net() -> nn.Module:
    """Every way a layer input reaches ORT: graph input, through MaxPool, through GlobalAveragePool + Flatten, ReLU."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 10),
    )
    bn = model[1]
    with torch.no_grad():  # BatchNorm that folds into something other than the identity
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 2.0)
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-0.2, 0.2)
    return model.eval()


@pytest.fixture
def net() -> nn.Module:
    return make_net()


@pytest.fixture
def data() -> list[torch.Tensor]:
    """Two batches with rare large outliers: percentile/MSE ranges land well inside min/max."""
    g = torch.Generator().manual_seed(3)
    x = torch.randn(64, 1, 12, 12, generator=g)
    outliers = torch.rand(x.shape, generator=g) < 0.003
    x = torch.where(outliers, 12 * x.sign(), x)
    return [x[:32], x[32:]]


def onnx_layers(path: Path) -> dict[str, dict[str, np.ndarray]]:
    """fqn -> the scales and zero points of a quantized Conv/Gemm's input activation and weight in a QDQ model."""
    graph = onnx.load(str(path)).graph
    inits = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    producers = {out: node for node in graph.node for out in node.output}
    layers = {}
    for node in graph.node:
        if node.op_type not in ("Conv", "Gemm", "MatMul"):
            continue
        act, weight = producers.get(node.input[0]), producers.get(node.input[1])
        if act is None or weight is None or "DequantizeLinear" not in (act.op_type, weight.op_type):
            continue  # a float layer
        assert act.op_type == weight.op_type == "DequantizeLinear", node.name
        assert weight.input[0] in inits, f"{node.name}: weight is not a quantized initializer"
        fqn = weight.input[0].removesuffix("_quantized").removesuffix(".weight")
        layers[fqn] = {
            "input_scale": inits[act.input[1]], "input_zero_point": inits[act.input[2]],
            "weight_scale": inits[weight.input[1]], "weight_zero_point": inits[weight.input[2]],
            "weight_shape": np.array(inits[weight.input[0]].shape),
        }
    return layers


def torch_layers(model: nn.Module) -> dict[str, nn.Module]:
    return {fqn: m for fqn, m in model.named_modules() if is_quant_layer(m)}


def layer_inputs(model: nn.Module, batches: list[torch.Tensor]) -> dict[str, list[torch.Tensor]]:
    """The input of every conv/linear of a float model, batch by batch."""
    seen: dict[str, list[torch.Tensor]] = {}
    hooks = [m.register_forward_pre_hook(lambda _m, args, fqn=fqn: seen.setdefault(fqn, []).append(args[0]))
             for fqn, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    with torch.no_grad():
        for x in batches:
            model(x)
    for h in hooks:
        h.remove()
    return seen


def observed_qparams(inputs: list[torch.Tensor], kind: str, percentile: float = 99.99) -> tuple[float, int]:
    """uint8 per-tensor (scale, zero point) a slimkit observer proposes for these batches."""
    obs = make_observer(kind, bits=8, symmetric=False, axis=None, percentile=percentile)
    for x in inputs:
        obs.update(x)
    scale, zero_point = obs.qparams()
    return float(scale), int(zero_point)


def assert_input_qparams(onnx_layer: dict[str, np.ndarray], scale: float, zero_point: int, fqn: str) -> None:
    got_scale, got_zp = float(onnx_layer["input_scale"]), int(onnx_layer["input_zero_point"])
    assert got_scale == pytest.approx(scale, rel=1e-5), f"{fqn}: ONNX input scale {got_scale} != slimkit {scale}"
    assert got_zp == zero_point, f"{fqn}: ONNX input zero point {got_zp} != slimkit {zero_point}"


# (a) weight scales ------------------------------------------------------------------------------------------


def test_per_channel_weight_scales_reach_onnx(net: nn.Module, data: list[torch.Tensor], tmp_path: Path) -> None:
    quantize(net, Int8Config(), calibration_data=data)  # per output channel, symmetric
    path = export_onnx_int8(net, (data[0][:1],), tmp_path / "pc.onnx", calibration_data=data)  # per_channel=True
    layers = onnx_layers(path)
    assert sorted(layers) == sorted(LAYERS)
    for fqn, layer in torch_layers(net).items():
        scales = layers[fqn]["weight_scale"]
        out_channels = layer.weight.shape[0]
        assert scales.shape == (out_channels,), f"{fqn}: {scales.shape} weight scales for {out_channels} channels"
        assert layers[fqn]["weight_shape"][0] == out_channels
        assert np.unique(scales).size > out_channels // 2, f"{fqn}: per-channel scales are (nearly) all equal"
        assert not layers[fqn]["weight_zero_point"].any()  # symmetric int8
        expected = layer.weight_quant.qparams()[0].numpy()
        np.testing.assert_allclose(scales, expected, rtol=1e-5, err_msg=f"{fqn}: ONNX weight scales != slimkit's")


def test_per_tensor_weight_scale_is_one_scale(net: nn.Module, data: list[torch.Tensor], tmp_path: Path) -> None:
    quantize(net, QuantConfig(granularity=PerTensor()), calibration_data=data)
    path = export_onnx_int8(net, (data[0][:1],), tmp_path / "pt.onnx", calibration_data=data, per_channel=False)
    layers = onnx_layers(path)
    assert sorted(layers) == sorted(LAYERS)
    for fqn, layer in torch_layers(net).items():
        scales = layers[fqn]["weight_scale"]
        assert scales.size == 1, f"{fqn}: {scales.size} weight scales, expected one per tensor"
        expected = float(layer.weight_quant.qparams()[0])
        assert float(scales) == pytest.approx(expected, rel=1e-5), f"{fqn}: ONNX weight scale != slimkit's"


# (b) activation ranges --------------------------------------------------------------------------------------


@pytest.mark.parametrize("observer", ["percentile", "mse"])
def test_calibrated_input_ranges_reach_onnx(
    observer: str, net: nn.Module, data: list[torch.Tensor], tmp_path: Path
) -> None:
    minmax = {fqn: observed_qparams(xs, "minmax") for fqn, xs in layer_inputs(copy.deepcopy(net), data).items()}
    quantize(net, Int8Config(observer=observer, percentile=99.0), calibration_data=data)
    # the export's own observer stays min/max: only slimkit's calibrated ranges can give the expected scales
    layers = onnx_layers(export_onnx_int8(net, (data[0][:1],), tmp_path / "c.onnx", calibration_data=data))
    assert sorted(layers) == sorted(LAYERS)
    narrower = {}
    for fqn, layer in torch_layers(net).items():
        scale, zero_point = layer.input_quant.qparams()
        assert_input_qparams(layers[fqn], float(scale), int(zero_point), fqn)
        narrower[fqn] = float(scale) / minmax[fqn][0]
    # the check has teeth: slimkit's ranges are not min/max (the percentile's are far narrower at every layer;
    # MSE keeps most of these outliers at 8 bits but still clips one layer by a few percent)
    if observer == "percentile":
        assert max(narrower.values()) < 0.8, narrower
    else:
        assert min(narrower.values()) < 0.99, narrower


def test_lsq_learned_steps_reach_onnx(net: nn.Module, data: list[torch.Tensor], tmp_path: Path) -> None:
    quantize(net, Int8Config(mode="qat", learn_step=True), calibration_data=data)
    layers_t = torch_layers(net)
    calibrated = {fqn: float(layer.input_quant.qparams()[0]) for fqn, layer in layers_t.items()}
    steps = [layer.input_quant.step for layer in layers_t.values()]
    assert all(isinstance(step, nn.Parameter) for step in steps)
    net.train()
    opt = torch.optim.Adam(steps, lr=0.05)  # only the activation steps move, far enough to tell them apart
    labels = torch.arange(len(data[0])) % 10
    for _ in range(5):
        for x in data:
            opt.zero_grad()
            nn.functional.cross_entropy(net(x), labels).backward()
            opt.step()
    net.eval()
    layers = onnx_layers(export_onnx_int8(net, (data[0][:1],), tmp_path / "lsq.onnx", calibration_data=data))
    assert sorted(layers) == sorted(LAYERS)
    for fqn, layer in layers_t.items():
        step, zero_point = layer.input_quant.qparams()
        assert abs(float(step) / calibrated[fqn] - 1) > 0.02, f"{fqn}: the step did not move; the test has no teeth"
        assert_input_qparams(layers[fqn], float(step), int(zero_point), fqn)


def test_export_observer_measures_each_layer_input(net: nn.Module, data: list[torch.Tensor], tmp_path: Path) -> None:
    """A float model: every range comes from the export's own observer, measured on each layer's own input."""
    expected = {fqn: observed_qparams(xs, "percentile", 99.0)
                for fqn, xs in layer_inputs(copy.deepcopy(net), data).items()}
    path = export_onnx_int8(net, (data[0][:1],), tmp_path / "f.onnx", calibration_data=data,
                            observer="percentile", percentile=99.0)
    layers = onnx_layers(path)
    assert sorted(layers) == sorted(LAYERS)
    for fqn, (scale, zero_point) in expected.items():
        assert_input_qparams(layers[fqn], scale, zero_point, fqn)

