"""Truncated SVD of Linear layers (Denton et al. 2014) and of convolutions unfolded as (out, in*kh*kw) matrices.

``W ~ U_r S_r V_r^T`` becomes two thin layers: ``x -> sqrt(S_r) V_r^T x`` (no bias) then ``-> U_r sqrt(S_r)``
(with the original bias). Splitting ``sqrt(S)`` evenly keeps both factors at the same scale, which fine-tuning
prefers. For a convolution the first factor is a kxk conv with the original stride/padding/dilation into ``r``
channels and the second a 1x1 conv; grouped convs are factored per group with grouped factors.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from slimkit.lowrank._base import (
    Factorized,
    Geometry,
    conv_bias_count,
    energy_spectrum,
    mean_spectrum,
    register_method,
)
from slimkit.lowrank.vbmf import evbmf


def _group_matrices(module: nn.Module) -> torch.Tensor:
    """The weight as (groups, out/groups, in/groups * kh * kw) float64 matrices (groups = 1 for Linear)."""
    w = module.weight.detach().double()
    groups = getattr(module, "groups", 1)
    return w.reshape(groups, w.shape[0] // groups, -1)  # (G, o, i*k)


class SVDMethod:
    name = "svd"
    num_modes = 1

    def skip_reason(self, module: nn.Module) -> str | None:
        if isinstance(module, nn.Linear):
            return None
        if isinstance(module, nn.Conv2d):
            if module.groups > 1 and module.in_channels // module.groups == 1 and module.kernel_size == (1, 1):
                return "depthwise 1x1 conv: a per-channel scale, nothing to factor"
            return None
        return f"svd factors Linear and Conv2d, not {type(module).__name__}"

    def max_ranks(self, module: nn.Module) -> tuple[int, ...]:
        _, o, ik = _group_matrices(module).shape
        return (min(o, ik),)

    def spectra(self, module: nn.Module) -> list[np.ndarray]:
        s = torch.linalg.svdvals(_group_matrices(module))  # (G, r)
        return [mean_spectrum([energy_spectrum(row) for row in s])]

    def vbmf_ranks(self, module: nn.Module) -> tuple[int, ...]:
        return (max(evbmf(m.cpu().numpy()).rank for m in _group_matrices(module)),)

    def cost(self, module: nn.Module, ranks: tuple[int, ...], geometry: Geometry) -> tuple[int, int]:
        (r,) = ranks
        groups, o, ik = _group_matrices(module).shape
        per_position = groups * r * (ik + o)
        positions = geometry.out_positions
        return per_position + conv_bias_count(module), per_position * positions

    def build(self, module: nn.Module, ranks: tuple[int, ...]) -> Factorized:
        (r,) = ranks
        kw = {"device": module.weight.device, "dtype": module.weight.dtype}
        bias = module.bias is not None
        if isinstance(module, nn.Linear):
            first = nn.Linear(module.in_features, r, bias=False, **kw)
            second = nn.Linear(r, module.out_features, bias=bias, **kw)
        else:
            g = module.groups
            first = nn.Conv2d(
                module.in_channels, g * r, module.kernel_size, stride=module.stride, padding=module.padding,
                dilation=module.dilation, groups=g, bias=False, padding_mode=module.padding_mode, **kw,
            )
            second = nn.Conv2d(g * r, module.out_channels, 1, groups=g, bias=bias, **kw)
        return Factorized(first, second, method=self.name, ranks=(r,))

    @torch.no_grad()
    def fill(self, module: nn.Module, factors: Factorized) -> torch.Tensor:
        (r,) = factors.ranks
        U, S, Vh = torch.linalg.svd(_group_matrices(module), full_matrices=False)  # (G,o,m) (G,m) (G,m,ik)
        root = S[:, :r].sqrt()
        left = U[:, :, :r] * root[:, None, :]  # (G, o, r)
        right = root[:, :, None] * Vh[:, :r, :]  # (G, r, i*k)
        first, second = factors[0], factors[1]
        first.weight.copy_(right.reshape(first.weight.shape))
        second.weight.copy_(left.reshape(second.weight.shape))
        if module.bias is not None:
            second.bias.copy_(module.bias)
        return (left @ right).reshape(module.weight.shape).to(module.weight.dtype)


SVD = register_method(SVDMethod())
