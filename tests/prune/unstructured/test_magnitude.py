"""Exact sparsity of magnitude pruning (global, per layer, ties), targeting, validation and atomicity."""

from __future__ import annotations

import copy

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from slimkit import ConfigError, prune_weights
from slimkit.core.errors import GraphError
from slimkit.prune.unstructured import WeightPruneConfig, get_masks, sparsity_report
from slimkit.prune.unstructured.magnitude import lowest_k


@pytest.mark.parametrize("sparsity", [0.0, 0.3, 0.5, 0.9, 0.99])
def test_global_sparsity_is_exact(mlp: nn.Module, sparsity: float) -> None:
    total = sum(m.weight.numel() for m in mlp if isinstance(m, nn.Linear))
    report = prune_weights(mlp, sparsity=sparsity, scope="global")
    pruned = sum(int((m.weight == 0).sum()) for m in mlp if isinstance(m, nn.Linear))
    assert pruned == round(sparsity * total)
    assert report.nonzero == total - pruned
    assert report.sparsity == pytest.approx(round(sparsity * total) / total)


def test_global_prunes_the_smallest_magnitudes(mlp: nn.Module) -> None:
    before = torch.cat([m.weight.detach().abs().flatten() for m in mlp if isinstance(m, nn.Linear)])
    prune_weights(mlp, sparsity=0.6, scope="global")
    masks = torch.cat([mask.flatten() for mask in get_masks(mlp).values()])
    assert before[~masks].max() <= before[masks].min()


@pytest.mark.parametrize("sparsity", [0.25, 0.8])
def test_layer_scope_is_exact_in_each_layer(convnet: nn.Module, sparsity: float) -> None:
    report = prune_weights(convnet, sparsity=sparsity, scope="layer")
    for layer in report.layers:
        weight = convnet.get_parameter(layer.name)
        assert int((weight == 0).sum()) == round(sparsity * weight.numel())
        assert layer.sparsity == pytest.approx(round(sparsity * weight.numel()) / weight.numel())
    assert set(report.per_layer) == {"conv.weight", "fc1.weight", "fc2.weight"}


def test_layer_scope_keeps_the_largest_per_layer() -> None:
    layer = nn.Linear(20, 10)
    before = layer.weight.detach().abs().clone()
    prune_weights(layer, sparsity=0.7, scope="layer")
    mask = get_masks(layer)["weight"]
    assert before[~mask].max() <= before[mask].min()


def test_ties_give_exact_counts() -> None:
    layer = nn.Linear(10, 10, bias=False)
    with torch.no_grad():
        layer.weight.fill_(1.0)  # every weight ties
    report = prune_weights(layer, sparsity=0.37, scope="layer")
    assert report.nonzero == 100 - 37
    assert int((layer.weight == 0).sum()) == 37
    scores = torch.tensor([3.0, 1.0, 1.0, 1.0, 2.0, 1.0])
    assert lowest_k(scores, 2).tolist() == [False, True, True, False, False, False]


def test_sparsity_zero_is_identity(convnet: nn.Module) -> None:
    x = torch.randn(4, 1, 8, 8)
    convnet.eval()
    before = copy.deepcopy(convnet.state_dict())
    out = convnet(x)
    report = prune_weights(convnet, sparsity=0.0)
    assert report.sparsity == 0.0
    for k, v in convnet.state_dict().items():
        assert torch.equal(v, before[k])
    assert torch.equal(convnet(x), out)


def test_raising_sparsity_keeps_earlier_pruning(mlp: nn.Module) -> None:
    prune_weights(mlp, sparsity=0.5)
    first = {k: v.clone() for k, v in get_masks(mlp).items()}
    prune_weights(mlp, sparsity=0.8)
    for name, mask in get_masks(mlp).items():
        assert not (mask & ~first[name]).any()  # nothing pruned before is revived


def test_per_layer_ignore_and_filter_fn(convnet: nn.Module) -> None:
    report = prune_weights(convnet, sparsity=0.5, scope="global", per_layer={"fc2": 0.25}, ignore=["conv"])
    assert "conv.weight" not in report.per_layer
    assert torch.count_nonzero(convnet.conv.weight) == convnet.conv.weight.numel()
    assert report.per_layer["fc2.weight"] == pytest.approx(round(0.25 * 48) / 48)
    assert int((convnet.fc1.weight == 0).sum()) == round(0.5 * convnet.fc1.weight.numel())
    other = copy.deepcopy(convnet)
    rep = prune_weights(other, sparsity=0.9, filter_fn=lambda m, fqn: isinstance(m, nn.Conv2d))
    assert list(rep.per_layer) == ["conv.weight"]


def test_sparsity_report_counts_zeros_without_masks() -> None:
    layer = nn.Linear(4, 5)
    with torch.no_grad():
        layer.weight[:2] = 0
    report = sparsity_report(layer)
    assert report.nonzero == 12 and report.sparsity == pytest.approx(0.4)
    assert report.compression == pytest.approx(20 / 12)
    assert "weight" in report.table() and report.to_dict()["per_layer"] == {"weight": pytest.approx(0.4)}


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"sparsity": 1.5}, "sparsity"),
        ({"sparsity": -0.1}, "sparsity"),
        ({"scope": "everywhere"}, "scope"),
        ({"criterion": "nope"}, "criterion"),
        ({"per_layer": {"fc1": 1.2}}, "per_layer"),
        ({"per_layer": {"nosuchlayer": 0.5}}, "per_layer"),
    ],
)
def test_bad_options_raise_config_error_naming_the_field(convnet: nn.Module, options: dict, field: str) -> None:
    before = copy.deepcopy(convnet.state_dict())
    with pytest.raises(ConfigError, match=field):
        prune_weights(convnet, **options)
    with pytest.raises(ConfigError, match=field):
        prune_weights(convnet, options)  # the same options as a config dict
    assert get_masks(convnet) == {}
    for k, v in convnet.state_dict().items():
        assert torch.equal(v, before[k])


def test_config_object_and_dict_agree(make_mlp) -> None:
    a, b = make_mlp(1), make_mlp(1)
    prune_weights(a, WeightPruneConfig(sparsity=0.7, scope="layer"))
    prune_weights(b, {"sparsity": 0.7, "scope": "layer"})
    for (ka, va), (kb, vb) in zip(get_masks(a).items(), get_masks(b).items()):
        assert ka == kb and torch.equal(va, vb)


def test_failed_call_leaves_model_untouched(convnet: nn.Module) -> None:
    convnet.fc2.weight_mask = "not a slimkit mask"  # a foreign attribute: fails after conv and fc1 are masked
    before = copy.deepcopy(convnet.state_dict())
    with pytest.raises(GraphError, match=r"fc2 \(Linear\)"):
        prune_weights(convnet, sparsity=0.8, scope="layer")
    for k, v in convnet.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert get_masks(convnet) == {}
    assert convnet.fc2.weight_mask == "not a slimkit mask"


@settings(max_examples=60, deadline=None)
@given(values=st.lists(st.integers(0, 5), min_size=1, max_size=40), fraction=st.floats(0.0, 1.0))
def test_lowest_k_is_exact_and_ordered(values: list[int], fraction: float) -> None:
    scores = torch.tensor(values, dtype=torch.float32)  # small integers: many ties
    k = round(fraction * len(values))
    pruned = lowest_k(scores, k)
    assert int(pruned.sum()) == k
    if 0 < k < len(values):
        assert scores[pruned].max() <= scores[~pruned].min()


@settings(max_examples=25, deadline=None)
@given(sparsity=st.floats(0.0, 0.99), scope=st.sampled_from(["global", "layer"]), seed=st.integers(0, 1000))
def test_pruning_hits_the_requested_count(sparsity: float, scope: str, seed: int) -> None:
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(7, 9), nn.ReLU(), nn.Conv1d(9, 5, 1))
    report = prune_weights(model, sparsity=sparsity, scope=scope)
    if scope == "global":
        assert report.numel - report.nonzero == round(sparsity * report.numel)
    else:
        assert [layer.numel - layer.nonzero for layer in report.layers] == [
            round(sparsity * layer.numel) for layer in report.layers
        ]
