"""prune_layers: residual blocks whose branch does nothing go first, the result saves and loads."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import slimkit
from slimkit.core.config import parse_config
from slimkit.core.errors import ConfigError
from slimkit.prune.methods.layer_removal import prune_layers, removable_blocks
from slimkit.recipe._registry import load_stages
from slimkit.recipe.context import StageContext

X = torch.randn(1, 1, 8, 8)


class Block(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv, self.bn = nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x + self.bn(self.conv(x)))


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 6, 3, padding=1), nn.ReLU())
        self.blocks = nn.Sequential(Block(6), Block(6), Block(6))
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(x)))


def _dead_middle(trained_net: nn.Module) -> nn.Module:
    model = copy.deepcopy(trained_net)
    with torch.no_grad():  # block 1's branch outputs exactly zero: removing it changes nothing
        model.blocks[1].bn.weight.zero_()
        model.blocks[1].bn.bias.zero_()
    return model


@pytest.fixture(scope="module")
def trained_net(splits):
    torch.manual_seed(0)
    model = Net()
    slimkit.fit(model, splits.train, {"epochs": 3, "batch_size": 32, "lr": 0.05, "progress": False, "device": "cpu"})
    return model.eval()


def test_candidates_are_shape_preserving_blocks_with_weights():
    names = removable_blocks(Net(), X)
    assert {"blocks.0", "blocks.1", "blocks.2", "blocks"} <= set(names)
    assert "stem" not in names and "head" not in names  # change the shape


def test_finding_candidates_keeps_every_train_eval_flag():
    model = Net().train()
    model.blocks[0].bn.eval()  # a frozen BatchNorm in a model being trained
    removable_blocks(model, X)
    assert model.training and model.blocks[1].bn.training and not model.blocks[0].bn.training


def test_a_block_with_a_dead_branch_is_removed_first_and_exactly(trained_net, splits, tmp_path):
    model = _dead_middle(trained_net)
    before = model(X)
    report = prune_layers(model, X, splits.val, count=1, progress=False)
    assert report.removed == ["blocks.1"] and isinstance(model.blocks[1], nn.Identity)
    torch.testing.assert_close(model(X), before)
    assert report.candidates["blocks.1"] == pytest.approx(report.baseline_accuracy)
    assert report.macs_after < report.macs_before and report.params_after < report.params_before
    assert "blocks.1" in report.table()


def test_removed_blocks_survive_save_and_load(tmp_path):
    model = slimkit.create_model("resnet20", in_channels=1, width=0.25).eval()
    x = torch.randn(1, 1, 28, 28)
    batches = [(torch.randn(8, 1, 28, 28), torch.randint(0, 10, (8,)))]
    report = prune_layers(model, x, batches, count=2, progress=False)
    assert len(report.removed) == 2 and all(n.startswith("layer") for n in report.removed)
    loaded = slimkit.load_model(slimkit.save_model(model, tmp_path / "m.pt"))
    torch.testing.assert_close(loaded.eval()(x), model(x))


def test_macs_budget_and_bad_requests(trained_net, splits):
    model = copy.deepcopy(trained_net)
    report = prune_layers(model, X, splits.val, macs_reduction=1.3, candidates=["blocks.*"], progress=False)
    assert report.macs_reduction >= 1.3 and all(n.startswith("blocks.") for n in report.removed)
    with pytest.raises(ConfigError, match="exactly one"):
        prune_layers(copy.deepcopy(trained_net), X, splits.val, progress=False)
    untouched = copy.deepcopy(trained_net)
    with pytest.raises(ConfigError, match="above the target"):
        prune_layers(untouched, X, splits.val, macs_reduction=50, candidates=["blocks.*"], progress=False)
    assert all(isinstance(b, Block) for b in untouched.blocks)  # all or nothing
    with pytest.raises(ConfigError, match="no removable block"):
        prune_layers(copy.deepcopy(trained_net), X, splits.val, count=1, candidates=["nope"], progress=False)


def test_stage_removes_blocks_with_recalibration(trained_net, splits, tmp_path):
    stage = load_stages().get("prune_layers")
    config = parse_config(stage.config_cls, {"count": 1, "candidates": ["blocks.*"], "recalibrate_batches": 2})
    ctx = StageContext(model=_dead_middle(trained_net), data=splits, example_inputs=(X,), run_dir=tmp_path,
                       stage_dir=tmp_path / "layers", device=torch.device("cpu"), batch_size=32)
    metrics = stage.run(ctx, config)
    assert metrics["removed"] == ["blocks.1"] and (tmp_path / "layers" / "prune_layers.json").is_file()
    with pytest.raises(ConfigError, match="exactly one"):
        parse_config(stage.config_cls, {})
