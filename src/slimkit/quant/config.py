"""Quantization configs: frozen, validated dataclasses, one per method; ``quantize`` dispatches on their type.

Targeting is the same everywhere: ``filter_fn(module, fqn)`` passed to :func:`slimkit.quantize`, plus ``ignore``
(fqn patterns) and ``keep_first_last`` in the config.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Union

from slimkit.quant.granularity import Granularity, PerChannel, PerTensor, as_granularity
from slimkit.quant.observers import ObserverKind


class QuantMode(str, Enum):
    PTQ = "ptq"  # calibrate ranges on a few batches, no training
    QAT = "qat"  # calibrate, then train through fake quantization (STE, optionally LSQ)


class BinaryMethod(str, Enum):
    BINARY_CONNECT = "binaryconnect"  # sign(W), no scale
    BWN = "bwn"  # alpha * sign(W), alpha = mean |W| per filter
    XNOR = "xnor"  # BWN weights and sign-binarized, scaled inputs


class TernaryMethod(str, Enum):
    TWN = "twn"  # threshold 0.7 * mean |W|, one scale per filter
    TTQ = "ttq"  # learned positive and negative scales per layer


def _check_bits(name: str, bits: int | None) -> None:
    if bits is not None and not 2 <= bits <= 8:
        raise ValueError(f"{name} must be in [2, 8], got {bits}")


@dataclass(frozen=True)
class QuantConfig:
    """Uniform integer quantization of conv/linear weights and their input activations.

    Attributes:
        weight_bits: weight code width (2..8).
        activation_bits: input activation width (2..8), or ``None`` for weight-only quantization.
        granularity: weight scale granularity, ``PerChannel()`` (default) or ``PerTensor()``; activations are
            always per tensor (what integer kernels accept).
        weight_symmetric / activation_symmetric: signed zero-centred code vs unsigned code with a zero point.
        observer: activation range estimator.
        weight_observer: weight range estimator.
        percentile: for the percentile observer.
        mode: ``ptq`` or ``qat`` (the model is left ready for training through fake quantization).
        learn_step: LSQ step sizes (QAT only).
        fold_bn: fold BatchNorm into the preceding conv/linear first.
        keep_first_last: leave the first and last quantizable layers in floating point.
        ignore: fqn patterns of layers to leave alone.
        layer_bits: per-layer weight bit width overrides (what mixed precision produces).
        calibration_batches: at most this many batches of ``calibration_data`` are used.
    """

    weight_bits: int = 8
    activation_bits: int | None = 8
    granularity: Union[PerChannel, PerTensor, str] = field(
        default_factory=PerChannel, metadata={"choices": ("per_channel", "per_tensor")})
    weight_symmetric: bool = True
    activation_symmetric: bool = False
    observer: ObserverKind = ObserverKind.MINMAX
    weight_observer: ObserverKind = ObserverKind.MINMAX
    percentile: float = 99.99
    mode: QuantMode = QuantMode.PTQ
    learn_step: bool = False
    fold_bn: bool = True
    keep_first_last: bool = False
    ignore: tuple[str, ...] = ()
    layer_bits: dict[str, int] = field(default_factory=dict)
    calibration_batches: int = 8

    def __post_init__(self) -> None:
        _check_bits("weight_bits", self.weight_bits)
        _check_bits("activation_bits", self.activation_bits)
        for fqn, bits in self.layer_bits.items():
            _check_bits(f"layer_bits[{fqn!r}]", bits)
        object.__setattr__(self, "granularity", as_granularity(self.granularity))
        object.__setattr__(self, "observer", ObserverKind(self.observer))
        object.__setattr__(self, "weight_observer", ObserverKind(self.weight_observer))
        object.__setattr__(self, "mode", QuantMode(self.mode))
        object.__setattr__(self, "ignore", tuple(self.ignore))
        if self.learn_step and self.mode is not QuantMode.QAT:
            raise ValueError("learn_step (LSQ) needs mode='qat': a learned step must be trained")
        if not 50.0 < self.percentile <= 100.0:
            raise ValueError(f"percentile must be in (50, 100], got {self.percentile}")
        if self.calibration_batches < 1:
            raise ValueError(f"calibration_batches must be >= 1, got {self.calibration_batches}")

    @property
    def weight_axis(self) -> int | None:
        g: Granularity = self.granularity  # type: ignore[assignment]
        return g.axis if isinstance(g, PerChannel) else None


@dataclass(frozen=True)
class Int8Config(QuantConfig):
    """8-bit weights (per channel, symmetric) and 8-bit activations (per tensor, asymmetric): the integer-kernel
    format of ONNX Runtime and most CPUs."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.weight_bits != 8 or self.activation_bits not in (8, None):
            raise ValueError("Int8Config is 8-bit; use QuantConfig for other widths")


@dataclass(frozen=True)
class BinaryConfig:
    """1-bit weights: BinaryConnect, BWN, or XNOR (BWN weights plus binarized inputs).

    Attributes:
        method: ``binaryconnect`` | ``bwn`` | ``xnor``.
        keep_first_last: first and last layers stay full precision (standard practice; on by default).
        ignore: fqn patterns of layers to leave alone.
        fold_bn: fold BatchNorm first (off: BN after a binary conv is what keeps its outputs well scaled).
    """

    method: BinaryMethod = BinaryMethod.BWN
    keep_first_last: bool = True
    ignore: tuple[str, ...] = ()
    fold_bn: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "method", BinaryMethod(self.method))
        object.__setattr__(self, "ignore", tuple(self.ignore))


@dataclass(frozen=True)
class TernaryConfig:
    """2-bit ternary weights {-a, 0, +a}: TWN (per-filter scale) or TTQ (learned positive/negative scales).

    Attributes:
        method: ``twn`` | ``ttq``.
        threshold: TWN threshold factor on mean |W| (0.7 in the paper); TTQ threshold factor on max |W| (0.05).
        keep_first_last, ignore, fold_bn: as for :class:`BinaryConfig`.
    """

    method: TernaryMethod = TernaryMethod.TWN
    threshold: float | None = None
    keep_first_last: bool = True
    ignore: tuple[str, ...] = ()
    fold_bn: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "method", TernaryMethod(self.method))
        object.__setattr__(self, "ignore", tuple(self.ignore))
        if self.threshold is None:
            object.__setattr__(self, "threshold", 0.7 if self.method is TernaryMethod.TWN else 0.05)
        assert self.threshold is not None
        if not 0.0 < self.threshold < 2.0:
            raise ValueError(f"threshold must be in (0, 2), got {self.threshold}")


def config_summary(config: Any) -> str:
    return type(config).__name__
