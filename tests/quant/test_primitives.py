"""Uniform quantizer arithmetic: error bounds, ranges, STE and LSQ gradients."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from slimkit.quant.fake_quant import FakeQuantize
from slimkit.quant.primitives import (
    choose_qparams,
    dequantize_tensor,
    fake_quantize,
    lsq_quantize,
    quant_range,
    quantize_tensor,
)


def test_quant_range_values() -> None:
    assert quant_range(8, True) == (-127, 127)
    assert quant_range(8, False) == (0, 255)
    assert quant_range(2, True) == (-1, 1)
    assert quant_range(4, False) == (0, 15)


@settings(max_examples=40, deadline=None)
@given(bits=st.integers(2, 8), symmetric=st.booleans(), seed=st.integers(0, 10_000), per_channel=st.booleans())
def test_error_bounded_by_half_step_for_in_range_values(bits: int, symmetric: bool, seed: int, per_channel: bool) -> None:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(6, 50, generator=g) * torch.rand(6, 1, generator=g) * 5 + torch.randn(6, 1, generator=g)
    axis = 0 if per_channel else None
    if per_channel:
        lo, hi = x.min(dim=1).values, x.max(dim=1).values
    else:
        lo, hi = x.min(), x.max()
    scale, zp = choose_qparams(lo, hi, bits, symmetric)
    qmin, qmax = quant_range(bits, symmetric)
    out = fake_quantize(x, scale, zp, qmin, qmax, axis)
    step = scale.reshape(-1, 1) if per_channel else scale
    assert torch.all((out - x).abs() <= step / 2 + 1e-5 * step)


def test_zero_is_exact_and_codes_in_range() -> None:
    x = torch.tensor([0.3, 1.7, 2.5, 0.0])
    scale, zp = choose_qparams(x.min(), x.max(), 8, False)
    q = quantize_tensor(x, scale, zp, 0, 255)
    assert q.min() >= 0 and q.max() <= 255
    assert float(dequantize_tensor(q, scale, zp)[3]) == 0.0


def test_per_channel_beats_per_tensor_on_skewed_channels() -> None:
    g = torch.Generator().manual_seed(0)
    w = torch.randn(8, 64, generator=g) * torch.logspace(-3, 1, 8).reshape(8, 1)  # channel ranges differ 10^4x
    qmin, qmax = quant_range(8, True)
    s_t, z_t = choose_qparams(w.min(), w.max(), 8, True)
    s_c, z_c = choose_qparams(w.min(dim=1).values, w.max(dim=1).values, 8, True)
    power = w.pow(2).mean(dim=1)
    # relative error per channel: per-tensor scales flatten the small channels to zero
    err_tensor = ((fake_quantize(w, s_t, z_t, qmin, qmax) - w).pow(2).mean(dim=1) / power).mean()
    err_channel = ((fake_quantize(w, s_c, z_c, qmin, qmax, axis=0) - w).pow(2).mean(dim=1) / power).mean()
    assert err_channel < err_tensor / 100


def test_ste_gradient_passes_inside_and_stops_outside() -> None:
    x = torch.tensor([-3.0, -0.4, 0.2, 0.9, 5.0], requires_grad=True)
    scale, zp = torch.tensor(1.0 / 127), torch.tensor(0)
    fake_quantize(x, scale, zp, -127, 127).sum().backward()
    assert x.grad.tolist() == [0.0, 1.0, 1.0, 1.0, 0.0]


def test_lsq_step_gradient_matches_formula() -> None:
    x = torch.tensor([0.26, -0.74, 3.0, -3.0])
    step = torch.tensor(0.5, requires_grad=True)
    lsq_quantize(x, step, torch.tensor(0), -3, 3).sum().backward()
    v = x / 0.5
    inside = v.abs() < 3
    expected = torch.where(inside, torch.round(v) - v, torch.sign(v) * 3).sum()
    g = 1.0 / (4 * 3) ** 0.5
    assert step.grad is not None
    assert step.grad.item() == pytest.approx(float(expected) * g, rel=1e-5)


def test_lsq_step_is_learned_by_an_optimizer() -> None:
    torch.manual_seed(0)
    fq = FakeQuantize(4, symmetric=True, learn_step=True)
    x = torch.randn(256) * 3
    x[0] = 40.0  # an outlier makes the min-max step far too coarse
    fq.calibrate_from(x)
    assert fq.step is not None
    before = fq.step.item()
    opt = torch.optim.SGD([fq.step], lr=0.05)
    for _ in range(30):
        opt.zero_grad()
        (fq(x) - x).pow(2).mean().backward()
        opt.step()
    assert fq.step.item() < before  # the step shrank towards the bulk of the values
    scale, _ = fq.qparams()
    assert scale.item() == pytest.approx(fq.step.item())
