import dataclasses
from typing import Literal

import pytest
import torch
from torch import nn

from slimkit.core import ConfigError, GraphError, Registry, parse_config, transaction
from slimkit.core.config import config_to_dict
from slimkit.core.io import atomic_write_bytes
from slimkit.core.modules import count_params, iter_modules, label, matches_any, set_submodule
from slimkit.core.shapes import resize_to_state_dict


@dataclasses.dataclass(frozen=True)
class _Cfg:
    ratio: float = 0.5
    importance: Literal["l1", "l2"] = "l1"
    ignore: tuple[str, ...] = ()

    def __post_init__(self):
        if not 0 <= self.ratio < 1:
            raise ValueError(f"ratio must be in [0, 1), got {self.ratio}")


def test_parse_config_types_and_round_trip():
    cfg = parse_config(_Cfg, {"ratio": 0.25, "ignore": ["fc"]})
    assert cfg == _Cfg(ratio=0.25, ignore=("fc",))
    assert parse_config(_Cfg, config_to_dict(cfg)) == cfg


@pytest.mark.parametrize(
    "data, fragment",
    [
        ({"ratio": "lots"}, "stage.ratio"),
        ({"importance": "l9"}, "stage.importance"),
        ({"ratoi": 0.1}, "stage.ratoi: unknown option"),
        ({"ratio": 1.5}, "ratio must be in [0, 1)"),
    ],
)
def test_parse_config_names_bad_field(data, fragment):
    with pytest.raises(ConfigError, match=fragment.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        parse_config(_Cfg, data, where="stage")


def test_registry_lists_choices_on_unknown_name():
    reg: Registry[int] = Registry("criterion")
    reg.add("l1", 1)
    assert reg.get("L1") == 1 and "l1" in reg
    with pytest.raises(ConfigError, match="unknown criterion 'x'; choose one of: l1"):
        reg.get("x")
    with pytest.raises(ConfigError):
        reg.add("l1", 2)


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Flatten(), nn.LazyLinear(4))


def test_transaction_restores_everything_on_error():
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU())
    x = torch.randn(2, 3, 8, 8)
    model.eval()
    before = model(x)
    conv = model[0]
    with pytest.raises(RuntimeError, match="boom"):
        with transaction(model):
            conv.weight = nn.Parameter(conv.weight[:4].clone())
            conv.out_channels = 4
            model[1].running_mean.mul_(3.0)
            model[2] = nn.Identity()
            raise RuntimeError("boom")
    assert model[0] is conv and conv.out_channels == 8 and conv.weight.shape[0] == 8
    assert isinstance(model[2], nn.ReLU)
    assert torch.equal(model(x), before)


def test_transaction_that_only_replaces_keeps_references_not_copies():
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8))
    conv, weight, mean = model[0], model[0].weight, model[1].running_mean
    reference = weight.detach().clone()
    with pytest.raises(RuntimeError, match="boom"):
        with transaction(model, replaces_only=True):
            conv.weight = nn.Parameter(weight[:4].clone())
            model[1].running_mean = mean[:4].clone()
            conv.out_channels = 4
            raise RuntimeError("boom")
    assert conv.weight is weight and model[1].running_mean is mean and conv.out_channels == 8
    assert torch.equal(conv.weight, reference)


def test_module_helpers():
    model = nn.Sequential(nn.Linear(4, 4), nn.Sequential(nn.Linear(4, 2)))
    assert label("1.0", model[1][0]) == "1.0 (Linear)"
    assert [f for f, _ in iter_modules(model, nn.Linear, ignore=["1"])] == ["0"]
    assert matches_any("layer1.conv2", ["layer*.conv2"]) and not matches_any("layer10", ["layer1"])
    set_submodule(model, "1.0", nn.Identity())
    assert isinstance(model[1][0], nn.Identity)
    with pytest.raises(GraphError, match="nope"):
        set_submodule(model, "nope.x", nn.Identity())
    assert count_params(model) == 20


def test_count_params_counts_tied_weights_once():
    emb = nn.Embedding(10, 4)
    head = nn.Linear(4, 10, bias=False)
    head.weight = emb.weight
    assert count_params(nn.ModuleList([emb, head])) == 40


def test_resize_to_state_dict_makes_pruned_shapes():
    big = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.Conv2d(8, 5, 1), nn.Flatten(), nn.Linear(5 * 36, 2))
    small = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Conv2d(4, 5, 1), nn.Flatten(), nn.Linear(5 * 36, 2))
    resize_to_state_dict(big, small.state_dict())
    big.load_state_dict(small.state_dict())
    assert big[0].out_channels == 4 and big[1].num_features == 4 and big[2].in_channels == 4
    x = torch.randn(1, 3, 8, 8)
    big.eval(), small.eval()
    assert torch.equal(big(x), small(x))


def test_atomic_write_leaves_no_partial_file(tmp_path):
    target = tmp_path / "a.bin"
    atomic_write_bytes(target, b"hello")
    assert target.read_bytes() == b"hello"
    assert [p.name for p in tmp_path.iterdir()] == ["a.bin"]
