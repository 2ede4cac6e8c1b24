"""Quantization inside GAN Slimming: slimkit's QAT with LSQ learned steps, on generators of any arity.

``slimkit.quantize`` calibrates activation ranges by calling ``model(x)`` on single tensors; a conditional
generator takes ``(noise, labels)``. :func:`quantize_generator` quantizes through a thin wrapper that replays the
recorded generator inputs by index, so the generator's own layers are swapped in place (the wrapper only holds it).
BatchNorm is not folded: its scales are what the L1 penalty sparsifies.
"""

from __future__ import annotations

import torch
from torch import nn

from slimkit.quant import QuantConfig, quantize
from slimkit.quant.api import storage_bytes
from slimkit.quant.fake_quant import FakeQuantize
from slimkit.quant.modules import is_quant_layer
from slimkit.quant.report import QuantReport


class _Replay(nn.Module):
    """``forward(i)`` runs the held generator on the ``i``-th recorded input tuple."""

    def __init__(self, generator: nn.Module, inputs: list[tuple[torch.Tensor, ...]]) -> None:
        super().__init__()
        self.generator = generator
        self.recorded = inputs

    def forward(self, index: torch.Tensor) -> torch.Tensor:
        return self.generator(*self.recorded[int(index)])


def qat_config(weight_bits: int, activation_bits: int | None) -> QuantConfig:
    """QAT with LSQ steps, per-channel symmetric weights, BatchNorm kept (not folded)."""
    return QuantConfig(weight_bits=weight_bits, activation_bits=activation_bits, mode="qat", learn_step=True,
                       fold_bn=False)


def quantize_generator(generator: nn.Module, config: QuantConfig,
                       calibration: list[tuple[torch.Tensor, ...]]) -> QuantReport:
    """Quantize ``generator``'s conv/linear layers in place, calibrating on ``calibration`` input tuples."""
    wrapper = _Replay(generator, calibration)
    indices = [torch.tensor(i) for i in range(len(calibration))]
    report = quantize(wrapper, config, calibration_data=indices if config.activation_bits is not None else None)
    for layer in report.layers:
        layer.fqn = layer.fqn.removeprefix("generator.")
    report.skipped = {k.removeprefix("generator."): v for k, v in report.skipped.items()}
    return report


def stored_bytes(model: nn.Module) -> int:
    """Bytes of ``model``'s parameters with quantized weights at their width (plus scales), the rest at 32 bits."""
    quantized: dict[str, tuple[int, int]] = {}
    for fqn, m in model.named_modules():
        if not is_quant_layer(m) or not isinstance(m.weight_quant, FakeQuantize):
            continue
        wq, iq = m.weight_quant, m.input_quant
        extra = wq.scale.numel() * (4 + (0 if wq.symmetric else 1)) + (5 if iq is not None else 0)
        quantized[fqn] = (wq.bits, extra)
    return storage_bytes(model, quantized)
