"""Each method at full rank reproduces its layer; error falls with rank; params are what the cost model says."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from slimkit.lowrank import METHODS, decompose
from slimkit.lowrank._measure import measure_layers

torch.manual_seed(0)

CONVS = {
    "plain": dict(in_channels=6, out_channels=8, kernel_size=3, padding=1),
    "stride2": dict(in_channels=6, out_channels=8, kernel_size=3, stride=2, padding=1),
    "dilation2": dict(in_channels=6, out_channels=8, kernel_size=3, dilation=2, padding=2),
    "rect_nopad": dict(in_channels=5, out_channels=7, kernel_size=(3, 5), stride=(2, 1)),
    "same": dict(in_channels=6, out_channels=8, kernel_size=3, padding="same", bias=False),
    "grouped": dict(in_channels=8, out_channels=12, kernel_size=3, padding=1, groups=2),
    "reflect": dict(in_channels=6, out_channels=8, kernel_size=3, padding=1, padding_mode="reflect"),
}


def _decompose_layer(layer: nn.Module, x: torch.Tensor, method: str, rank: int) -> tuple[nn.Module, object]:
    model = nn.Sequential(copy.deepcopy(layer))
    report = decompose(model, x, method=method, rank=rank)
    return model, report


def _full_rank(layer: nn.Module, method: str) -> int:
    return max(METHODS.get(method).max_ranks(layer))


@pytest.mark.parametrize("name", sorted(CONVS))
@pytest.mark.parametrize("method", ["svd", "tucker"])
def test_conv_full_rank_reproduces_output(name: str, method: str) -> None:
    conv = nn.Conv2d(**CONVS[name]).double()
    x = torch.randn(2, conv.in_channels, 11, 12, dtype=torch.float64)
    full = _full_rank(conv, method)
    factors = METHODS.get(method).build(conv, METHODS.get(method).max_ranks(conv))
    approx = METHODS.get(method).fill(conv, factors)
    assert torch.allclose(approx, conv.weight, atol=1e-8)
    assert torch.allclose(factors(x), conv(x), atol=1e-4)
    assert full >= 1


def test_linear_full_rank_reproduces_output() -> None:
    linear = nn.Linear(20, 12)
    x = torch.randn(4, 20)
    method = METHODS.get("svd")
    factors = method.build(linear, method.max_ranks(linear))
    method.fill(linear, factors)
    assert torch.allclose(factors(x), linear(x), atol=1e-4)
    # also on token inputs (B, T, C)
    xt = torch.randn(2, 3, 20)
    assert torch.allclose(factors(xt), linear(xt), atol=1e-4)


@pytest.mark.parametrize("name", ["plain", "stride2", "dilation2", "rect_nopad", "same"])
def test_cp_chain_computes_conv_with_reconstructed_kernel(name: str) -> None:
    """Whatever rank: the four-layer chain equals the conv with the CP kernel (the separable split is exact)."""
    conv = nn.Conv2d(**CONVS[name]).double()
    x = torch.randn(2, conv.in_channels, 11, 12, dtype=torch.float64)
    method = METHODS.get("cp")
    factors = method.build(conv, (5,))
    approx = method.fill(conv, factors)
    reference = nn.functional.conv2d(
        x, approx, conv.bias, conv.stride, conv.padding, conv.dilation, conv.groups
    )
    assert torch.allclose(factors(x), reference, atol=1e-8)


def test_cp_error_falls_as_rank_grows() -> None:
    conv = nn.Conv2d(8, 8, 3, padding=1)
    method = METHODS.get("cp")
    errors = []
    for rank in (1, 4, 16, 48):
        factors = method.build(conv, (rank,))
        approx = method.fill(conv, factors)
        errors.append(float((approx - conv.weight.detach()).norm() / conv.weight.detach().norm()))
    assert all(a > b for a, b in zip(errors, errors[1:])), errors
    assert errors[-1] < 0.5 * errors[0]


@pytest.mark.parametrize(
    ("layer", "method", "ranks"),
    [
        (nn.Linear(64, 48), "svd", [(r,) for r in (1, 2, 4, 8, 16, 32, 48)]),
        (nn.Conv2d(16, 24, 3, padding=1), "svd", [(r,) for r in (1, 4, 8, 16, 24)]),
        (nn.Conv2d(16, 24, 3, padding=1), "tucker", [(r, r * 3 // 2 or 1) for r in (1, 2, 4, 8, 16)]),
    ],
)
def test_error_decreases_monotonically_with_rank(layer: nn.Module, method: str, ranks: list) -> None:
    handler = METHODS.get(method)
    errors = []
    for r in ranks:
        approx = handler.fill(layer, handler.build(layer, r))
        errors.append(float((approx - layer.weight.detach()).norm() / layer.weight.detach().norm()))
    assert all(a > b - 1e-9 for a, b in zip(errors, errors[1:])), errors
    assert errors[-1] < 1e-5  # the last rank is full


def test_svd_error_equals_discarded_singular_values() -> None:
    linear = nn.Linear(30, 20)
    s = torch.linalg.svdvals(linear.weight.detach().double())
    handler = METHODS.get("svd")
    approx = handler.fill(linear, handler.build(linear, (7,)))
    expected = float(s[7:].square().sum().sqrt() / s.square().sum().sqrt())
    w = linear.weight.detach()
    assert float((approx - w).norm() / w.norm()) == pytest.approx(expected, rel=1e-4)


@pytest.mark.parametrize(
    ("layer", "method", "ranks", "shape"),
    [
        (nn.Linear(50, 40), "svd", (6,), (50,)),
        (nn.Conv2d(12, 16, 3, stride=2, padding=1), "svd", (5,), (12, 9, 9)),
        (nn.Conv2d(12, 16, 3, stride=2, padding=1), "tucker", (4, 6), (12, 9, 9)),
        (nn.Conv2d(8, 12, 3, padding=1, groups=2), "tucker", (3, 4), (8, 7, 7)),
        (nn.Conv2d(12, 16, (3, 5), stride=(2, 1), padding=(1, 2)), "cp", (7,), (12, 9, 10)),
    ],
)
def test_params_and_macs_match_cost_model(layer: nn.Module, method: str, ranks: tuple, shape: tuple) -> None:
    handler = METHODS.get(method)
    x = torch.randn(1, *shape)
    geometry = measure_layers(nn.Sequential(layer), (x,))["0"].geometry
    params, macs = handler.cost(layer, ranks, geometry)
    factors = handler.build(layer, ranks)
    assert sum(p.numel() for p in factors.parameters()) == params
    measured = measure_layers(factors, (x,))
    assert sum(s.macs for s in measured.values()) == macs
    if method == "svd" and isinstance(layer, nn.Linear):
        assert params == ranks[0] * (50 + 40) + 40
