"""Permanent masks, sparse state dicts and checkpoints keep the pruned model's zeros and outputs."""

from __future__ import annotations

import copy
import io
from pathlib import Path

import pytest
import torch
from torch import nn

from slimkit import make_permanent, prune_weights
from slimkit.core.errors import CheckpointError
from slimkit.models import create_model
from slimkit.models._registry import MODELS
from slimkit.prune.unstructured import (
    from_sparse_state_dict,
    get_masks,
    has_masks,
    load_sparse_state_dict,
    masks_from_zeros,
    sparse_size_bytes,
    sparsity_report,
    to_sparse_state_dict,
)
from slimkit.state import load_model, save_model


def _tiny(*, in_channels: int = 1, num_classes: int = 3, width: float = 1.0) -> nn.Module:
    hidden = int(24 * width)
    return nn.Sequential(nn.Flatten(), nn.Linear(in_channels * 16, hidden), nn.ReLU(), nn.Linear(hidden, num_classes))


@pytest.fixture(autouse=True)
def _registered_tiny_model():
    """Registered only while this file's tests run, so zoo-wide tests never see it."""
    MODELS.add("unstructured_test_tiny", _tiny, overwrite=True)
    yield
    MODELS.remove("unstructured_test_tiny")


def test_masks_stay_out_of_the_state_dict(convnet: nn.Module) -> None:
    keys = list(convnet.state_dict())
    prune_weights(convnet, sparsity=0.5)
    assert list(convnet.state_dict()) == keys
    assert has_masks(convnet) and all(m.dtype == torch.bool for m in get_masks(convnet).values())
    moved = copy.deepcopy(convnet).to(torch.float64)
    assert torch.equal(get_masks(moved)["fc1.weight"], get_masks(convnet)["fc1.weight"])


def test_make_permanent_keeps_outputs(convnet: nn.Module) -> None:
    convnet.eval()
    x = torch.randn(5, 1, 8, 8)
    prune_weights(convnet, sparsity=0.8, scope="layer")
    out = convnet(x)
    nonzero = sparsity_report(convnet).nonzero
    assert make_permanent(convnet) == 3
    assert not has_masks(convnet) and get_masks(convnet) == {}
    assert torch.equal(convnet(x), out)
    assert sparsity_report(convnet).nonzero == nonzero
    assert not any(name.endswith("_mask") for name, _ in convnet.named_buffers())


@pytest.mark.parametrize("layout", ["coo", "csr"])
def test_sparse_state_dict_round_trip(convnet: nn.Module, layout: str) -> None:
    convnet.eval()
    prune_weights(convnet, sparsity=0.9, scope="global")
    masks = {k: v.clone() for k, v in get_masks(convnet).items()}
    sparse = to_sparse_state_dict(convnet, layout=layout)
    assert "conv.weight" not in sparse and "conv.weight.values" in sparse
    assert sparse["fc1.weight.values"].numel() == int(masks["fc1.weight"].sum())
    dense_bytes = sum(t.numel() * t.element_size() for t in convnet.state_dict().values())
    assert sparse_size_bytes(sparse) < dense_bytes / 2
    buffer = io.BytesIO()
    torch.save(sparse, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=True)
    dense, got_masks = from_sparse_state_dict(loaded)
    for k, v in convnet.state_dict().items():
        assert torch.equal(dense[k], v), k
    assert all(torch.equal(got_masks[k], masks[k]) for k in masks)
    fresh = type(convnet)().eval()
    load_sparse_state_dict(fresh, loaded)
    x = torch.randn(3, 1, 8, 8)
    assert torch.equal(fresh(x), convnet(x))
    assert all(torch.equal(get_masks(fresh)[k], masks[k]) for k in masks)


def test_sparse_entry_inconsistency_is_reported(mlp: nn.Module) -> None:
    prune_weights(mlp, sparsity=0.5)
    sparse = to_sparse_state_dict(mlp, layout="coo")
    sparse["0.weight.values"] = sparse["0.weight.values"][:-1]
    with pytest.raises(CheckpointError, match=r"0\.weight"):
        from_sparse_state_dict(sparse)


def test_save_load_preserves_zeros(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = create_model("unstructured_test_tiny", in_channels=1, num_classes=3)
    model.eval()
    prune_weights(model, sparsity=0.85)
    zeros = {k: (v == 0) for k, v in model.state_dict().items()}
    path = save_model(model, tmp_path / "pruned.pt")
    loaded = load_model(path).eval()
    x = torch.randn(4, 1, 4, 4)
    assert torch.equal(loaded(x), model(x))
    for k, v in loaded.state_dict().items():
        assert torch.equal(v == 0, zeros[k]), k
    # masks are rebuilt from the zeros when training should go on
    assert masks_from_zeros(loaded) == sparsity_report(model).numel - sparsity_report(model).nonzero
    assert all(torch.equal(get_masks(loaded)[k], m) for k, m in get_masks(model).items())
