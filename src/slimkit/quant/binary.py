"""Binary and ternary weight quantizers (modules plugged in as a quantized layer's ``weight_quant``).

The float weight is kept as a latent parameter that the optimizer updates; the forward pass uses its binary or
ternary image, and gradients reach the latent weight through a straight-through estimator.

- BinaryConnect (Courbariaux et al. 2015): ``sign(W)``, gradient passed where ``|W| <= 1`` (hard-tanh clip).
- BWN (Rastegari et al. 2016): ``alpha * sign(W)`` with ``alpha = mean |W|`` per output filter.
- XNOR: BWN weights and :class:`SignActivation` inputs ``m + beta * sign(x - m)`` (``m`` the sample mean,
  ``beta = mean |x - m|``; ``beta * sign(x)`` for zero-centred inputs).
- TWN (Li et al. 2016): ``alpha * sign(W) * [|W| > delta]``, ``delta = 0.7 * mean |W|`` and ``alpha`` the mean
  of the kept ``|W|``, per filter.
- TTQ (Zhu et al. 2017): ``+Wp`` above ``t * max|W|``, ``-Wn`` below its negative, learned ``Wp, Wn`` per layer.
"""

from __future__ import annotations

import torch
from torch import nn


def _filter_mean(x: torch.Tensor) -> torch.Tensor:
    """Mean over everything but dim 0, kept broadcastable: ``(C_out, 1, 1, ...)``."""
    return x.reshape(x.shape[0], -1).mean(dim=1).reshape((-1,) + (1,) * (x.dim() - 1))


def _sign(x: torch.Tensor) -> torch.Tensor:
    """Sign with sign(0) = +1, so every weight is one of two values."""
    return torch.where(x >= 0, torch.ones_like(x), -torch.ones_like(x))


def _ste(x: torch.Tensor, value: torch.Tensor, grad_mask: torch.Tensor | float = 1.0) -> torch.Tensor:
    """``value`` in the forward pass, ``grad * grad_mask`` to ``x`` in the backward pass."""
    return value.detach() + (x - x.detach()) * grad_mask


class BinaryWeight(nn.Module):
    """``sign(W)`` (BinaryConnect) or ``mean|W| * sign(W)`` per filter (BWN/XNOR), hard-tanh STE."""

    bits = 1

    def __init__(self, scaled: bool = True) -> None:
        super().__init__()
        self.scaled = scaled

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        value = _sign(w)
        mask = (w.abs() <= 1).to(w.dtype)
        if self.scaled:
            alpha = _filter_mean(w.abs())
            # alpha is a function of w: let its gradient through too, as in XNOR-Net's derivation
            return _ste(w, value, mask) * alpha.detach() + value.detach() * (alpha - alpha.detach())
        return _ste(w, value, mask)

    def extra_repr(self) -> str:
        return "bwn" if self.scaled else "binaryconnect"


class SignActivation(nn.Module):
    """XNOR input binarization: ``m + beta * sign(x - m)`` per sample, hard-tanh STE.

    ``m`` is the sample's mean and ``beta = mean |x - m|``. For zero-centred inputs (XNOR-Net's BN -> binarize
    -> conv order) ``m ~ 0`` and this is XNOR-Net's ``beta * sign(x)``; after a ReLU, where every input is >= 0
    and ``sign(x)`` would be constant, the offset keeps one bit of information per value. The conv of the offset
    is a per-sample constant, so the product is still an XNOR-popcount plus a bias.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.detach().reshape(x.shape[0], -1)
        shape = (-1,) + (1,) * (x.dim() - 1)
        m = flat.mean(dim=1).reshape(shape)
        beta = (flat - flat.mean(dim=1, keepdim=True)).abs().mean(dim=1).reshape(shape)
        centred = x - m
        return m + _ste(centred, _sign(centred), (centred.abs() <= 1).to(x.dtype)) * beta


class TernaryWeight(nn.Module):
    """TWN: ``alpha * sign(W) * [|W| > delta]`` per filter, ``delta = threshold * mean |W|``; identity STE."""

    bits = 2

    def __init__(self, threshold: float = 0.7) -> None:
        super().__init__()
        self.threshold = threshold

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        a = w.detach().abs()
        delta = self.threshold * _filter_mean(a)
        keep = (a > delta).to(w.dtype)
        kept = keep.reshape(w.shape[0], -1).sum(dim=1).clamp_min(1)
        alpha = ((a * keep).reshape(w.shape[0], -1).sum(dim=1) / kept).reshape(delta.shape)
        return _ste(w, alpha * _sign(w) * keep)

    def extra_repr(self) -> str:
        return f"twn, threshold={self.threshold}"


class TTQWeight(nn.Module):
    """TTQ: learned scales ``Wp`` (positive) and ``Wn`` (negative) for one layer.

    Gradients: ``Wp`` gets the sum of gradients over positive positions, ``Wn`` minus the sum over negative ones;
    the latent weight gets ``Wp * g``, ``g`` and ``Wn * g`` in the positive, zero and negative regions (the paper's
    scaled STE).
    """

    bits = 2

    def __init__(self, weight: torch.Tensor, threshold: float = 0.05) -> None:
        super().__init__()
        self.threshold = threshold
        with torch.no_grad():
            a = weight.abs()
            delta = threshold * a.max()
            pos, neg = weight > delta, weight < -delta
            init_p = a[pos].mean() if pos.any() else a.mean()
            init_n = a[neg].mean() if neg.any() else a.mean()
        self.w_pos = nn.Parameter(init_p.reshape(()).clone())
        self.w_neg = nn.Parameter(init_n.reshape(()).clone())

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        delta = self.threshold * w.detach().abs().max()
        pos = (w.detach() > delta).to(w.dtype)
        neg = (w.detach() < -delta).to(w.dtype)
        mid = 1 - pos - neg
        value = self.w_pos * pos - self.w_neg * neg  # gradients reach w_pos / w_neg
        grad_scale = self.w_pos.detach() * pos + mid + self.w_neg.detach() * neg
        return value + (w - w.detach()) * grad_scale

    def extra_repr(self) -> str:
        return f"ttq, threshold={self.threshold}"


def clip_latent_weights(model: nn.Module, bound: float = 1.0) -> None:
    """Clip latent weights of binary layers to ``[-bound, bound]`` after an optimizer step (BinaryConnect).

    Outside that range the hard-tanh STE passes no gradient, so unclipped weights could stay stuck there.
    """
    with torch.no_grad():
        for module in model.modules():
            quant = getattr(module, "weight_quant", None)
            if isinstance(quant, BinaryWeight):
                module.weight.clamp_(-bound, bound)
