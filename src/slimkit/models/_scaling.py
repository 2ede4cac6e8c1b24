"""Width multipliers and weight init shared by every zoo family.

A width multiplier makes a "compact family" (Zagoruyko & Komodakis; Howard et al.): the same topology with every
hidden channel count scaled, the from-scratch baseline any pruning result should beat ("Rethinking the Value of
Network Pruning", Liu et al. 2019).
"""

from __future__ import annotations

from torch import nn

from slimkit.core.errors import ConfigError


def check_width(width: float) -> float:
    """Return ``width`` as a float, or raise :class:`ConfigError` when it is not a positive number."""
    if isinstance(width, bool) or not isinstance(width, (int, float)) or not width > 0:
        raise ConfigError(f"width: must be a positive number (1.0 = the published model), got {width!r}")
    return float(width)


def scale_channels(channels: int, width: float) -> int:
    """``channels * width`` rounded to the nearest integer, at least 1."""
    return max(1, int(round(channels * width)))


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round ``value`` to a multiple of ``divisor`` (MobileNet's rule: never drop more than 10% below ``value``)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


def init_weights(model: nn.Module) -> nn.Module:
    """Kaiming-normal convolutions and linears (He et al. 2015), BatchNorm as the identity, zero biases."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Linear):
            nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")
            nn.init.zeros_(module.bias)
        elif isinstance(module, (nn.BatchNorm2d, nn.BatchNorm1d)):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
    return model
