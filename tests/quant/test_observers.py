"""Observers: min-max, moving average, percentile, MSE-optimal."""

from __future__ import annotations

import pytest
import torch

from slimkit.core.errors import ConfigError
from slimkit.quant.observers import OBSERVERS, make_observer
from slimkit.quant.primitives import fake_quantize, quant_range


def test_minmax_tracks_extremes_per_channel() -> None:
    obs = make_observer("minmax", bits=8, symmetric=False, axis=1)
    a = torch.tensor([[1.0, -2.0, 3.0], [0.5, 4.0, -1.0]])
    obs.update(a)
    obs.update(a * 2)
    lo, hi = obs.range()
    assert lo.tolist() == [0.5, -4.0, -2.0]
    assert hi.tolist() == [2.0, 8.0, 6.0]


def test_moving_average_follows_momentum() -> None:
    obs = make_observer("moving_average", bits=8, symmetric=False, axis=None)
    obs.update(torch.tensor([0.0, 10.0]))
    obs.update(torch.tensor([0.0, 20.0]))
    lo, hi = obs.range()
    assert hi.item() == pytest.approx(0.9 * 10 + 0.1 * 20)
    assert lo.shape == ()


def test_percentile_clips_outliers() -> None:
    x = torch.randn(10_000, generator=torch.Generator().manual_seed(0))
    x[:3] = 1000.0
    obs = make_observer("percentile", bits=8, symmetric=False, axis=None, percentile=99.9)
    obs.update(x)
    _, hi = obs.range()
    assert 2.0 < hi.item() < 5.0


def test_mse_observer_beats_minmax_with_outliers() -> None:
    x = torch.randn(4, 4096, generator=torch.Generator().manual_seed(0))
    x[:, 0] = 30.0
    qmin, qmax = quant_range(4, True)
    errors = {}
    for kind in ("minmax", "mse"):
        obs = make_observer(kind, bits=4, symmetric=True, axis=0)
        obs.update(x)
        scale, zp = obs.qparams()
        errors[kind] = (fake_quantize(x, scale, zp, qmin, qmax, axis=0) - x).pow(2).mean().item()
        assert scale.shape == (4,)
    assert errors["mse"] < 0.5 * errors["minmax"]


def test_registry_names_and_unknown() -> None:
    assert OBSERVERS.names() == ["minmax", "moving_average", "mse", "percentile"]
    with pytest.raises(ConfigError, match="unknown observer 'kl'"):
        OBSERVERS.get("kl")


def test_empty_observer_raises() -> None:
    with pytest.raises(ValueError, match="no data"):
        make_observer("minmax", bits=8, symmetric=True, axis=None).range()
