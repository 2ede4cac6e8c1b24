"""Tucker-2 decomposition of convolutions (Kim et al. 2015).

The kernel ``W (C_out, C_in, kh, kw)`` is approximated by a core ``G (R_out, R_in, kh, kw)`` multiplied along
its two channel modes by ``U_out (C_out, R_out)`` and ``U_in (C_in, R_in)``. As layers that is a 1x1 conv
``C_in -> R_in``, a kxk conv ``R_in -> R_out`` with the original stride/padding/dilation, and a 1x1 conv
``R_out -> C_out`` with the original bias: the expensive kxk work then happens between few channels. The
factors come from ``tensorly.decomposition.partial_tucker`` (HOSVD initialization + HOOI), so full ranks
reproduce the kernel exactly. Grouped convs are factored per group with grouped 1x1/core convs.
"""

from __future__ import annotations

import warnings

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


def _groups(conv: nn.Conv2d) -> np.ndarray:
    """Kernel as (groups, out/groups, in/groups, kh, kw) float64."""
    w = conv.weight.detach().double().cpu().numpy()
    return w.reshape(conv.groups, w.shape[0] // conv.groups, *w.shape[1:])


def _unfold(kernel: np.ndarray, mode: int) -> np.ndarray:
    """Mode-``mode`` unfolding of a (o, i, kh, kw) kernel: (dim_mode, rest)."""
    return np.moveaxis(kernel, mode, 0).reshape(kernel.shape[mode], -1)


class TuckerMethod:
    name = "tucker"
    num_modes = 2  # ranks are (R_in, R_out)

    def skip_reason(self, module: nn.Module) -> str | None:
        if not isinstance(module, nn.Conv2d):
            return f"tucker factors Conv2d, not {type(module).__name__}"
        if module.kernel_size == (1, 1):
            return "1x1 conv: Tucker-2 degenerates to a matrix SVD; use method='svd' (or 'auto')"
        if module.in_channels // module.groups == 1:
            return "depthwise conv: each filter sees one input channel, there is no channel mode to factor"
        return None

    def max_ranks(self, module: nn.Module) -> tuple[int, ...]:
        _, o, i, kh, kw = _groups(module).shape
        return (min(i, o * kh * kw), min(o, i * kh * kw))

    def spectra(self, module: nn.Module) -> list[np.ndarray]:
        kernels = _groups(module)
        spectra = []
        for mode in (1, 0):  # R_in from the input-channel mode, R_out from the output-channel mode
            per_group = [energy_spectrum(np.linalg.svd(_unfold(k, mode), compute_uv=False)) for k in kernels]
            spectra.append(mean_spectrum(per_group))
        return spectra

    def vbmf_ranks(self, module: nn.Module) -> tuple[int, ...]:
        kernels = _groups(module)
        return tuple(max(evbmf(_unfold(k, mode)).rank for k in kernels) for mode in (1, 0))

    def cost(self, module: nn.Module, ranks: tuple[int, ...], geometry: Geometry) -> tuple[int, int]:
        r_in, r_out = ranks
        g, o, i, kh, kw = _groups(module).shape
        first, core, last = g * i * r_in, g * r_in * r_out * kh * kw, g * r_out * o
        macs = geometry.in_positions * first + geometry.out_positions * (core + last)
        return first + core + last + conv_bias_count(module), macs

    def build(self, module: nn.Module, ranks: tuple[int, ...]) -> Factorized:
        r_in, r_out = ranks
        g = module.groups
        kw = {"device": module.weight.device, "dtype": module.weight.dtype}
        first = nn.Conv2d(module.in_channels, g * r_in, 1, groups=g, bias=False, **kw)
        core = nn.Conv2d(
            g * r_in, g * r_out, module.kernel_size, stride=module.stride, padding=module.padding,
            dilation=module.dilation, groups=g, bias=False, padding_mode=module.padding_mode, **kw,
        )
        last = nn.Conv2d(g * r_out, module.out_channels, 1, groups=g, bias=module.bias is not None, **kw)
        return Factorized(first, core, last, method=self.name, ranks=(r_in, r_out))

    @torch.no_grad()
    def fill(self, module: nn.Module, factors: Factorized) -> torch.Tensor:
        from tensorly.decomposition import (
            partial_tucker,  # here: tensorly (and scipy) cost a second to import
        )

        r_in, r_out = factors.ranks
        firsts, cores, lasts, approx = [], [], [], []
        for kernel in _groups(module):  # one Tucker-2 per group (usually a single group)
            with warnings.catch_warnings():  # tensorly warns when a rank exceeds a small unfolding
                warnings.simplefilter("ignore", UserWarning)
                (core, (u_out, u_in)), _ = partial_tucker(kernel, rank=[r_out, r_in], modes=[0, 1], init="svd")
            firsts.append(u_in.T[:, :, None, None])  # (R_in, i, 1, 1)
            cores.append(core)  # (R_out, R_in, kh, kw)
            lasts.append(u_out[:, :, None, None])  # (o, R_out, 1, 1)
            approx.append(np.einsum("abhw,oa,ib->oihw", core, u_out, u_in, optimize=True))
        first, core_conv, last = factors[0], factors[1], factors[2]
        for layer, parts in ((first, firsts), (core_conv, cores), (last, lasts)):
            layer.weight.copy_(torch.from_numpy(np.concatenate(parts)).to(layer.weight))
        if module.bias is not None:
            last.bias.copy_(module.bias)
        return torch.from_numpy(np.concatenate(approx)).to(module.weight)


TUCKER = register_method(TuckerMethod())
