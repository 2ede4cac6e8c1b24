"""CP decomposition of convolutions (Lebedev et al. 2015, "Speeding-up convolutional neural networks using
fine-tuned CP-decomposition").

The kernel is a sum of ``R`` rank-one terms ``W[t, s, y, x] ~ sum_r a[t, r] b[s, r] k_y[y, r] k_x[x, r]``, i.e. a
1x1 conv ``C_in -> R``, a depthwise ``kh x 1`` conv (vertical stride/padding/dilation), a depthwise ``1 x kw`` conv
(horizontal ones) and a 1x1 conv ``R -> C_out`` with the bias: four cheap separable layers. Zero padding commutes
with the channel mixing, so the chain computes exactly the conv with the reconstructed kernel. Factors come from
``tensorly.decomposition.parafac`` (ALS, SVD initialization). CP is not nested like SVD: even a rank that could
represent the kernel may leave ALS with some error, so CP is usually followed by fine-tuning (as Lebedev et al. do).
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from torch import nn

from slimkit.lowrank._base import Factorized, Geometry, conv_bias_count, register_method
from slimkit.lowrank.tucker import TUCKER


def _split(value: int | tuple[int, int] | str, axis: int, empty: int) -> tuple[int, int] | str:
    """The vertical (axis 0) or horizontal (axis 1) part of a 2-D conv argument; ``empty`` for the other axis."""
    if isinstance(value, str):
        return value
    pair = (value, value) if isinstance(value, int) else value
    return (pair[0], empty) if axis == 0 else (empty, pair[1])


class CPMethod:
    name = "cp"
    num_modes = 1
    n_iter_max = 300

    def skip_reason(self, module: nn.Module) -> str | None:
        if not isinstance(module, nn.Conv2d):
            return f"cp factors Conv2d, not {type(module).__name__}"
        if module.kernel_size == (1, 1):
            return "1x1 conv: a matrix, CP equals SVD there; use method='svd' (or 'auto')"
        if module.groups != 1:
            return f"grouped conv (groups={module.groups}): CP across groups would mix channels the layer keeps apart"
        if module.padding_mode != "zeros":
            return f"padding_mode={module.padding_mode!r}: only zero padding splits into vertical/horizontal passes"
        return None

    def max_ranks(self, module: nn.Module) -> tuple[int, ...]:
        return (max(module.in_channels, module.out_channels),)

    def spectra(self, module: nn.Module) -> list[np.ndarray]:
        # CP components are not ordered; the channel-mode SVD spectra are the usual proxy for how many matter
        s_in, s_out = TUCKER.spectra(module)
        length = max(len(s_in), len(s_out))
        return [np.maximum(np.pad(s_in, (0, length - len(s_in))), np.pad(s_out, (0, length - len(s_out))))]

    def vbmf_ranks(self, module: nn.Module) -> tuple[int, ...]:
        return (max(TUCKER.vbmf_ranks(module)),)

    def cost(self, module: nn.Module, ranks: tuple[int, ...], geometry: Geometry) -> tuple[int, int]:
        (r,) = ranks
        kh, kw = module.kernel_size
        c_in, c_out = module.in_channels, module.out_channels
        params = r * (c_in + kh + kw + c_out)
        out_h, out_w = geometry.out_shape[1:]
        in_w = geometry.in_shape[2]
        macs = geometry.in_positions * c_in * r + out_h * in_w * r * kh + out_h * out_w * r * (kw + c_out)
        return params + conv_bias_count(module), macs

    def build(self, module: nn.Module, ranks: tuple[int, ...]) -> Factorized:
        (r,) = ranks
        kh, kw = module.kernel_size
        dev = {"device": module.weight.device, "dtype": module.weight.dtype}
        first = nn.Conv2d(module.in_channels, r, 1, bias=False, **dev)
        vertical = nn.Conv2d(
            r, r, (kh, 1), stride=_split(module.stride, 0, 1), padding=_split(module.padding, 0, 0),
            dilation=_split(module.dilation, 0, 1), groups=r, bias=False, **dev,
        )
        horizontal = nn.Conv2d(
            r, r, (1, kw), stride=_split(module.stride, 1, 1), padding=_split(module.padding, 1, 0),
            dilation=_split(module.dilation, 1, 1), groups=r, bias=False, **dev,
        )
        last = nn.Conv2d(r, module.out_channels, 1, bias=module.bias is not None, **dev)
        return Factorized(first, vertical, horizontal, last, method=self.name, ranks=(r,))

    @torch.no_grad()
    def fill(self, module: nn.Module, factors: Factorized) -> torch.Tensor:
        from tensorly.decomposition import parafac  # here: tensorly (and scipy) cost a second to import

        (r,) = factors.ranks
        kernel = module.weight.detach().double().cpu().numpy()
        with warnings.catch_warnings():  # tensorly warns when a rank exceeds a small unfolding
            warnings.simplefilter("ignore", UserWarning)
            cp = parafac(kernel, rank=r, init="svd", n_iter_max=self.n_iter_max, tol=1e-10, random_state=0)
        a, b, k_y, k_x = cp.factors
        a = a * cp.weights[None, :]  # fold the component weights into the output factor
        first, vertical, horizontal, last = factors
        weights = (b.T[:, :, None, None], k_y.T[:, None, :, None], k_x.T[:, None, None, :], a[:, :, None, None])
        for layer, w in zip((first, vertical, horizontal, last), weights):
            layer.weight.copy_(torch.from_numpy(np.ascontiguousarray(w)).to(layer.weight))
        if module.bias is not None:
            last.bias.copy_(module.bias)
        return torch.from_numpy(np.einsum("tr,sr,yr,xr->tsyx", a, b, k_y, k_x, optimize=True)).to(module.weight)


CP = register_method(CPMethod())
