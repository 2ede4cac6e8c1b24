"""Granularity value classes: over which slice of a tensor one scale (and zero point) is shared.

Small frozen values, as in torchao (``PerTensor()``, ``PerChannel(axis=0)``), so a config reads like what it means
and serializes to a plain dict.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Union


@dataclass(frozen=True)
class PerTensor:
    """One scale for the whole tensor (the only choice ONNX Runtime accepts for activations)."""

    kind: str = "per_tensor"

    def __post_init__(self) -> None:
        if self.kind != "per_tensor":
            raise ValueError(f"PerTensor.kind must be 'per_tensor', got {self.kind!r}")


@dataclass(frozen=True)
class PerChannel:
    """One scale per slice along ``axis`` (output channels of a conv/linear weight by default).

    Per-channel scales follow channels whose ranges differ by orders of magnitude, which per-tensor scales cannot.
    """

    axis: int = 0
    kind: str = "per_channel"

    def __post_init__(self) -> None:
        if self.kind != "per_channel":
            raise ValueError(f"PerChannel.kind must be 'per_channel', got {self.kind!r}")


Granularity = Union[PerTensor, PerChannel]


def as_granularity(value: Any) -> Granularity:
    """Accept a granularity object, its name (``"per_tensor"``/``"per_channel"``) or its dict form."""
    if isinstance(value, (PerTensor, PerChannel)):
        return value
    if isinstance(value, str):
        value = {"kind": value}
    if isinstance(value, dict):
        kind = value.get("kind")
        if kind == "per_tensor":
            return PerTensor()
        if kind == "per_channel":
            return PerChannel(axis=int(value.get("axis", 0)))
    raise ValueError(f"granularity must be PerTensor(), PerChannel(axis) or 'per_tensor'/'per_channel', got {value!r}")
