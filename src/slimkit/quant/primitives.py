"""Uniform quantization arithmetic: integer ranges, scale/zero-point choice, fake quantization with STE and LSQ.

Everything is a vectorized tensor expression. ``axis`` selects per-channel parameters (one scale per slice along
``axis``); ``None`` means one scale for the whole tensor.
"""

from __future__ import annotations

import torch

_EPS = 1e-12


def quant_range(bits: int, symmetric: bool) -> tuple[int, int]:
    """Integer range of a ``bits``-wide code.

    Symmetric codes are signed and restricted (int8: [-127, 127]) so that zero sits exactly in the middle and the
    grid matches ONNX Runtime's symmetric int8 weights; asymmetric codes are unsigned (uint8: [0, 255]).
    """
    if not 1 <= bits <= 16:
        raise ValueError(f"bits must be in [1, 16], got {bits}")
    if symmetric:
        qmax = 2 ** (bits - 1) - 1 if bits > 1 else 1
        return -qmax, qmax
    return 0, 2**bits - 1


def _view(param: torch.Tensor, x: torch.Tensor, axis: int | None) -> torch.Tensor:
    """View a per-channel parameter along ``axis`` so it broadcasts against ``x``.

    With ``axis=None`` the parameter is used as given (a scalar, or any already-broadcastable shape).
    """
    if axis is None:
        return param
    shape = [1] * x.dim()
    shape[axis] = x.shape[axis]
    return param.reshape(shape)


def choose_qparams(
    lo: torch.Tensor, hi: torch.Tensor, bits: int, symmetric: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Scale and zero point that map the real range ``[lo, hi]`` (widened to contain 0) onto the integer range.

    Zero must be exactly representable (zero padding, ReLU outputs), hence the widening.

    Returns:
        ``(scale, zero_point)``, float32 and int64 tensors of the shape of ``lo``.
    """
    qmin, qmax = quant_range(bits, symmetric)
    lo = torch.minimum(lo.float(), torch.zeros_like(lo, dtype=torch.float32))
    hi = torch.maximum(hi.float(), torch.zeros_like(hi, dtype=torch.float32))
    if symmetric:
        scale = torch.maximum(-lo, hi) / qmax
        scale = scale.clamp_min(_EPS)
        zero_point = torch.zeros_like(scale, dtype=torch.int64)
    else:
        scale = ((hi - lo) / (qmax - qmin)).clamp_min(_EPS)
        zero_point = (qmin - torch.round(lo / scale)).clamp(qmin, qmax).to(torch.int64)
    return scale, zero_point


def quantize_tensor(
    x: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor, qmin: int, qmax: int, axis: int | None = None
) -> torch.Tensor:
    """Integer codes ``clamp(round(x / scale) + zero_point)`` (as float, for further arithmetic)."""
    s = _view(scale, x, axis)
    z = _view(zero_point, x, axis).to(x.dtype)
    return torch.clamp(torch.round(x / s) + z, qmin, qmax)


def dequantize_tensor(
    q: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor, axis: int | None = None
) -> torch.Tensor:
    return (q - _view(zero_point, q, axis).to(q.dtype)) * _view(scale, q, axis)


def fake_quantize(
    x: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor, qmin: int, qmax: int, axis: int | None = None
) -> torch.Tensor:
    """Quantize then dequantize; the backward pass is the straight-through estimator.

    The gradient is passed unchanged where ``x`` lies inside the representable range and is zero where it was
    clipped (the clipped value does not change when ``x`` moves), as in Bengio et al. and PyTorch's fake quant.
    """
    s = _view(scale, x, axis).to(x.dtype)
    z = _view(zero_point, x, axis).to(x.dtype)
    q = torch.round(x / s) + z
    inside = (q >= qmin) & (q <= qmax)
    out = (torch.clamp(q, qmin, qmax) - z) * s
    return out.detach() + (x - x.detach()) * inside.to(x.dtype)


def lsq_quantize(
    x: torch.Tensor, step: torch.Tensor, zero_point: torch.Tensor, qmin: int, qmax: int, axis: int | None = None
) -> torch.Tensor:
    """Fake quantization with a learned step size (LSQ, Esser et al. 2020).

    The step receives the LSQ gradient ``-x/s + round(x/s)`` inside the range and ``qmin``/``qmax`` outside,
    scaled by ``g = 1 / sqrt(N * qmax)`` (N elements per step) so that step and weight updates are balanced.
    """
    per_step = x.numel() // max(step.numel(), 1)
    g = 1.0 / (max(per_step, 1) * max(qmax, 1)) ** 0.5
    s = _view(step, x, axis)
    s = (s - s * g).detach() + s * g  # value s, gradient scaled by g
    z = _view(zero_point, x, axis).to(x.dtype).detach()
    v = torch.clamp(x / s + z, qmin, qmax)
    v = (torch.round(v) - v).detach() + v  # round with identity gradient
    return (v - z) * s
