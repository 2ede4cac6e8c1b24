import copy

import pytest
import torch
from torch import nn

from slimkit.core.errors import ConfigError
from slimkit.prune.methods.reconstruction import (
    lasso_select,
    least_squares,
    reconstruct_prune,
    thinet_select,
)

X = torch.randn(1, 1, 8, 8)


def test_least_squares_is_exact_when_the_kept_columns_span_the_output():
    gen = torch.Generator().manual_seed(0)
    A = torch.randn(200, 5, generator=gen, dtype=torch.float64)
    W = torch.randn(3, 5, generator=gen, dtype=torch.float64)
    torch.testing.assert_close(least_squares(A, A @ W.T), W, atol=1e-6, rtol=0)


def test_thinet_and_lasso_find_the_redundant_columns():
    gen = torch.Generator().manual_seed(0)
    Z = torch.randn(500, 6, generator=gen, dtype=torch.float64)
    Z[:, 4] *= 0.2
    Z[:, 5] = -Z[:, 4]  # columns 4 and 5 cancel: removing both leaves the sum unchanged
    Z[:, 3] *= 1e-3  # a negligible column
    Z[:, 0] *= 0.3  # small, but not redundant
    target = Z.sum(1)
    assert sorted(thinet_select(Z, torch.zeros(500, dtype=torch.float64), 3).tolist()) == [3, 4, 5]
    assert sorted(lasso_select(Z, target, 3).tolist()) == [3, 4, 5]


def _duplicated(seed: int = 0) -> nn.Module:
    """conv1's channels 3..5 are exactly 0.5x channels 0..2 (ReLU is positively homogeneous)."""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Conv2d(1, 6, 3, padding=1), nn.ReLU(), nn.Conv2d(6, 5, 3, padding=1), nn.ReLU(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(5, 3)).double()
    with torch.no_grad():
        model[0].weight[3:] = 0.5 * model[0].weight[:3]
        model[0].bias[3:] = 0.5 * model[0].bias[:3]
        model[2].weight[:, 3:] *= 0.1
    return model.eval()


@pytest.mark.parametrize("method", ["l1", "thinet", "lasso"])
def test_refit_is_exact_when_the_removed_channels_are_combinations_of_kept_ones(method):
    model = _duplicated()
    x = torch.randn(6, 1, 8, 8, dtype=torch.float64)
    before = model(x)
    calib = [torch.randn(8, 1, 8, 8, dtype=torch.float64) for _ in range(2)]
    rep = reconstruct_prune(model, x[:1], calib, ratio=0.5, method=method, groups=["0"])
    assert model[0].out_channels == 3 and model[2].in_channels == 3
    (layer,) = rep.layers
    assert layer.refit and layer.error_refit < 1e-12
    if method == "l1":
        assert layer.error_selected > 1e-3  # without the refit the removed half is missing
    torch.testing.assert_close(model(x), before, atol=1e-8, rtol=1e-8)


def _layer_errors(trained, calib, method: str, refit: bool) -> float:
    model = copy.deepcopy(trained)
    rep = reconstruct_prune(model, X, calib, ratio=0.5, method=method, refit=refit, groups=["2.0"])
    return rep.layers[0].error_refit


def test_reconstruction_beats_l1_on_a_trained_layer(trained, splits, batches):
    calib = batches(splits.train, 2, 64)
    l1 = _layer_errors(trained, calib, "l1", refit=False)
    thinet = _layer_errors(trained, calib, "thinet", refit=False)
    lasso = _layer_errors(trained, calib, "lasso", refit=False)
    assert thinet <= l1 and lasso <= l1
    assert _layer_errors(trained, calib, "thinet", refit=True) <= thinet
    assert _layer_errors(trained, calib, "lasso", refit=True) <= lasso


def test_whole_model_and_skips(trained, splits, batches):
    from slimkit.testing import build_arch

    calib = batches(splits.train, 2, 32)
    model = copy.deepcopy(trained)
    rep = reconstruct_prune(model, X, calib, ratio=0.5, method="thinet")
    assert [r.group for r in rep.layers] == ["0.0", "2.0", "4.0"]
    assert rep.macs_reduction > 2.0
    assert model(X).shape == (1, 4)
    res, (x,) = build_arch("resnet")
    rep = reconstruct_prune(res.eval(), x, [x], ratio=0.5, method="l1")
    assert any("consumer" in why for _, why in rep.skipped)
    with pytest.raises(ConfigError, match="method"):
        reconstruct_prune(model, X, calib, method="magic")
    with pytest.raises(ConfigError, match="calibration"):
        reconstruct_prune(model, X, [])


def test_swap_refinement_never_worsens_the_greedy():
    gen = torch.Generator().manual_seed(3)
    Z = torch.randn(300, 10, generator=gen, dtype=torch.float64) @ torch.randn(10, 10, generator=gen,
                                                                              dtype=torch.float64)
    r = torch.zeros(300, dtype=torch.float64)

    def err(idx):
        return float(Z[:, idx].sum(1).square().sum())

    for remove in (1, 3, 5, 8):
        greedy = thinet_select(Z, r, remove, swaps=False)
        refined = thinet_select(Z, r, remove)
        assert len(refined) == len(greedy) == remove
        assert err(refined) <= err(greedy) + 1e-9
