import numpy as np
import pytest
import torch
from torch import nn

from slimkit.core.errors import ConfigError
from slimkit.quant.kmeans import (
    SharedWeight,
    codebook_parameters,
    kmeans_1d,
    share_weights,
    shared_weights,
    strip_sharing,
)


def _mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(40, 30), nn.ReLU(), nn.Linear(30, 10))


def test_kmeans_1d_linear_init_and_lloyd_fixed_point():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(-3, 0.1, 500), rng.normal(0, 0.1, 500), rng.normal(5, 0.1, 500)])
    centroids, labels = kmeans_1d(x, 3)
    assert np.allclose(centroids, [-3, 0, 5], atol=0.05)
    # at convergence every centroid is the mean of its members and every point sits at its nearest centroid
    for j in range(3):
        assert centroids[j] == pytest.approx(x[labels == j].mean())
    assert np.array_equal(labels, np.abs(x[:, None] - centroids[None]).argmin(1))
    start, _ = kmeans_1d(x, 4, iters=0)
    assert np.allclose(start, np.linspace(x.min(), x.max(), 4))  # linear initialization


def test_error_falls_with_bits():
    errors = []
    for bits in (1, 2, 3, 4, 6, 8):
        model = _mlp()
        dense = model[0].weight.detach().clone()
        share_weights(model, bits=bits)
        errors.append(float(((model[0].weight.detach() - dense) ** 2).mean()))
    assert all(a > b for a, b in zip(errors, errors[1:]))
    assert errors[-1] < 1e-3 * errors[0]  # ~4x less per extra bit


def test_zeros_stay_zero_and_weights_take_at_most_k_values():
    model = _mlp()
    with torch.no_grad():
        model[0].weight[model[0].weight.abs() < 0.1] = 0
    zeros = model[0].weight == 0
    report = share_weights(model, bits=2)
    w = model[0].weight.detach()
    assert torch.equal(w == 0, zeros)
    assert torch.unique(w[~zeros]).numel() <= 4
    assert report.layers[0].nonzero == int((~zeros).sum()) and report.layers[0].bits == 2


def test_centroid_gradient_is_exact_sum_of_member_gradients():
    model = _mlp()
    with torch.no_grad():
        model[0].weight[:, :5] = 0
    share_weights(model, bits=3)
    shared = shared_weights(model)["0.weight"]
    grad_out = torch.randint(-4, 5, model[0].weight.shape, dtype=torch.float32)  # integers: sums are exact
    (model[0].weight * grad_out).sum().backward()
    idx = shared.indices
    expected = torch.zeros(8).index_add_(0, idx[idx >= 0], grad_out[idx >= 0])
    assert torch.equal(shared.codebook.grad, expected)


def test_fine_tuning_moves_centroids_but_keeps_indices():
    model = _mlp()
    share_weights(model, bits=3)
    before = {k: v.indices.clone() for k, v in shared_weights(model).items()}
    opt = torch.optim.SGD(codebook_parameters(model), lr=0.1)
    x, y = torch.randn(64, 40), torch.randint(0, 10, (64,))
    losses = []
    for _ in range(20):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    for k, shared in shared_weights(model).items():
        assert torch.equal(shared.indices, before[k])
        assert torch.unique(model[0].weight.detach()).numel() <= 8


def test_per_layer_bits_ignore_and_strip():
    model = _mlp()
    report = share_weights(model, bits=4, layer_bits={"2": 2}, ignore=["0"])
    assert [(lay.name, lay.bits) for lay in report.layers] == [("2", 2)]
    assert isinstance(model[2].parametrizations.weight[0], SharedWeight)
    shared_value = model[2].weight.detach().clone()
    strip_sharing(model)
    assert isinstance(model[2].weight, nn.Parameter) and torch.equal(model[2].weight, shared_value)
    assert not shared_weights(model)


def test_bad_bits_leave_model_untouched():
    model = _mlp()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ConfigError, match="2: bits must be in"):
        share_weights(model, bits=4, layer_bits={"2": 0})
    assert not shared_weights(model)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_unstructured_keep_mask_is_absorbed_into_indices():
    model = _mlp()
    keep = torch.rand(30, 40) > 0.5
    with torch.no_grad():
        model[0].weight.mul_(keep)
    model[0].register_buffer("weight_mask", keep, persistent=False)
    share_weights(model, bits=3)
    assert not hasattr(model[0], "weight_mask")
    assert torch.equal(model[0].weight != 0, keep)
