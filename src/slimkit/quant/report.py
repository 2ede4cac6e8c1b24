"""What ``quantize`` reports: per-layer bit widths and the storage size before and after."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class LayerQuant:
    """One quantized layer: its fqn, type, bit widths and storage."""

    fqn: str
    type: str
    weight_bits: int
    activation_bits: int | None
    params: int
    size_bytes: int  # weights at weight_bits + their scales/zero points + the layer's fp32 bias


@dataclass
class QuantReport:
    """Result of :func:`slimkit.quantize`.

    Attributes:
        method: ``ptq`` | ``qat`` | ``binaryconnect`` | ``bwn`` | ``xnor`` | ``twn`` | ``ttq``.
        layers: the quantized layers.
        skipped: layers left in floating point (fqn -> why).
        folded_bn: BatchNorms folded into their producers.
        size_bytes_fp32: every parameter at 32 bits, before the transform.
        size_bytes: quantized layers at their widths, everything else at 32 bits.
        calibration_batches: batches the observers saw.
        sensitivity: (mixed precision) relative output error of quantizing each layer alone at each width.
    """

    method: str
    layers: list[LayerQuant] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    folded_bn: list[str] = field(default_factory=list)
    size_bytes_fp32: int = 0
    size_bytes: int = 0
    calibration_batches: int = 0
    sensitivity: dict[str, dict[int, float]] = field(default_factory=dict)  # mixed precision: fqn -> bits -> error

    @property
    def size_ratio(self) -> float:
        """fp32 size / quantized size (> 1 means smaller)."""
        return self.size_bytes_fp32 / max(self.size_bytes, 1)

    @property
    def layer_bits(self) -> dict[str, int]:
        return {layer.fqn: layer.weight_bits for layer in self.layers}

    def table(self) -> str:
        rows = [f"{'layer':<32} {'type':<12} {'w bits':>6} {'a bits':>6} {'params':>10} {'bytes':>10}"]
        for layer in self.layers:
            a = "-" if layer.activation_bits is None else str(layer.activation_bits)
            rows.append(
                f"{layer.fqn:<32} {layer.type:<12} {layer.weight_bits:>6} {a:>6} {layer.params:>10} {layer.size_bytes:>10}"
            )
        for fqn, why in self.skipped.items():
            rows.append(f"{fqn:<32} {'(fp32)':<12} {why}")
        rows.append(
            f"{self.method}: {self.size_bytes_fp32} -> {self.size_bytes} bytes ({self.size_ratio:.2f}x smaller), "
            f"{len(self.folded_bn)} BatchNorms folded"
        )
        return "\n".join(rows)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["size_ratio"] = self.size_ratio
        return out
