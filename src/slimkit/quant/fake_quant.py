"""``FakeQuantize``: the module that simulates a uniform integer code on a tensor (weights or activations).

Three phases, switched by :meth:`FakeQuantize.observe` and :meth:`FakeQuantize.freeze`:
observing (pass values through, feed the observer), quantizing with frozen parameters (PTQ / eval), and for
QAT either re-deriving weight parameters from the current weights each training step or learning the step (LSQ).
"""

from __future__ import annotations

import torch
from torch import nn

from slimkit.quant.observers import Observer, ObserverKind, make_observer
from slimkit.quant.primitives import fake_quantize, lsq_quantize, quant_range


class FakeQuantize(nn.Module):
    """Quantize-dequantize ``x`` to ``bits`` bits (STE backward), per tensor or per channel along ``axis``.

    Args:
        bits: code width, 2 to 8.
        symmetric: signed restricted code with zero point 0 (weights) vs unsigned with a zero point (activations).
        axis: channel axis for per-channel parameters, ``None`` for per-tensor.
        observer: how ranges are estimated (:class:`ObserverKind` name).
        learn_step: make the step size a trainable parameter (LSQ); its initial value comes from the observer.
        track_weights: for weights in QAT without LSQ, re-estimate the range from the current tensor every
            training forward so the grid follows the weights as they move.
        percentile: used by the percentile observer.
    """

    def __init__(
        self,
        bits: int = 8,
        *,
        symmetric: bool = False,
        axis: int | None = None,
        observer: str | ObserverKind = ObserverKind.MINMAX,
        learn_step: bool = False,
        track_weights: bool = False,
        percentile: float = 99.99,
    ) -> None:
        super().__init__()
        if not 2 <= bits <= 8:
            raise ValueError(f"bits must be in [2, 8], got {bits}")
        self.bits = bits
        self.symmetric = symmetric
        self.axis = axis
        self.observer_kind = ObserverKind(observer)
        self.percentile = percentile
        self.learn_step = learn_step
        self.track_weights = track_weights
        self.qmin, self.qmax = quant_range(bits, symmetric)
        self.register_buffer("scale", torch.ones(()))
        self.register_buffer("zero_point", torch.zeros((), dtype=torch.int64))
        self.step: nn.Parameter | None = None
        self.observer: Observer | None = None
        self.enabled = False

    def new_observer(self) -> Observer:
        return make_observer(
            self.observer_kind, bits=self.bits, symmetric=self.symmetric, axis=self.axis, percentile=self.percentile
        )

    def observe(self) -> None:
        """Start a calibration pass: values pass through unchanged while the observer watches them."""
        self.observer = self.new_observer()
        self.enabled = False

    def freeze(self) -> None:
        """End calibration: set scale/zero point from the observer and start quantizing."""
        if self.observer is None:
            raise ValueError("freeze() called before any observation")
        self.set_qparams(*self.observer.qparams())
        self.observer = None
        self.enabled = True

    def calibrate_from(self, x: torch.Tensor) -> None:
        """Observe one tensor (a weight) and freeze at once."""
        self.observe()
        assert self.observer is not None
        self.observer.update(x)
        self.freeze()

    def set_qparams(self, scale: torch.Tensor, zero_point: torch.Tensor) -> None:
        self.scale = scale.detach().to(self.scale.device)
        self.zero_point = zero_point.detach().to(self.scale.device)
        if self.learn_step:
            self.step = nn.Parameter(self.scale.clone())

    def qparams(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Current ``(scale, zero_point)``; with LSQ the learned step (``scale`` lags it until the next forward)."""
        scale = self.step.detach().clamp_min(1e-8) if self.step is not None else self.scale
        return scale, self.zero_point

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.observer is not None:
            self.observer.update(x)
            return x
        if not self.enabled:
            return x
        if self.step is not None:
            with torch.no_grad():
                self.step.clamp_(min=1e-8)
                self.scale.copy_(self.step)
            return lsq_quantize(x, self.step, self.zero_point, self.qmin, self.qmax, self.axis)
        if self.track_weights and self.training:
            self.calibrate_from(x)
        return fake_quantize(x, self.scale, self.zero_point, self.qmin, self.qmax, self.axis)

    def extra_repr(self) -> str:
        gran = "per_tensor" if self.axis is None else f"per_channel(axis={self.axis})"
        kind = "lsq" if self.learn_step else self.observer_kind.value
        return f"bits={self.bits}, symmetric={self.symmetric}, {gran}, {kind}"
