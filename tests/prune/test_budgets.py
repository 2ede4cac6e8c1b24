"""Budgets are honest (met within the tolerance, or refused naming the limit) and ``ignore`` takes names, globs
and module objects, refusing what matches nothing."""

from __future__ import annotations

import copy
import json
import re
import warnings

import pytest
import torch
from torch import nn

import slimkit
from slimkit.cli import main
from slimkit.core.config import config_to_dict, parse_config
from slimkit.core.errors import ConfigError
from slimkit.core.modules import module_names
from slimkit.prune.config import PruneConfig
from slimkit.prune.select import BUDGET_TOLERANCE, BudgetWarning
from slimkit.recipe._registry import load_stages
from slimkit.testing import build_arch, list_archs

LIMITS = ("is prunable", "allows at most", "cannot land within")


def resnet20() -> tuple[nn.Module, torch.Tensor]:
    return slimkit.create_model("resnet20", width=0.5, in_channels=1), torch.randn(1, 1, 28, 28)


def plan_quietly(model: nn.Module, x, **options) -> tuple[slimkit.PrunePlan, list[str]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        plan = slimkit.plan_pruning(model, x, **options)
    return plan, [str(w.message) for w in caught if issubclass(w.category, BudgetWarning)]


def reduction_in(message: str) -> float:
    return float(re.search(r"(?:at most|closest) (\d+\.\d\d)x", message).group(1))


# -- budgets -------------------------------------------------------------------------------------------------------

def test_nothing_prunable_is_refused_naming_why():
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))  # its only channels are the model's outputs
    x = torch.randn(2, 3, 2, 2)
    with pytest.raises(ConfigError, match=r"macs_reduction=2 cannot be met: nothing in Sequential is prunable.*"
                                          r"1: model output"):
        slimkit.plan_pruning(model, x, macs_reduction=2)
    plan, warned = plan_quietly(model, x, macs_reduction=2, allow_partial=True)
    assert plan.report.macs_reduction == 1.0 and len(warned) == 1 and "is prunable" in warned[0]
    assert slimkit.plan_pruning(model, x, macs_reduction=1.0).report.macs_reduction == 1.0  # asks for nothing


def test_a_budget_above_the_model_removes_nothing():
    model, x = resnet20()
    dense = slimkit.plan_pruning(model, x, ratio=0.0).report
    assert not slimkit.plan_pruning(model, x, target_macs=10 * dense.macs_before).removed.any()
    assert not slimkit.plan_pruning(model, x, target_params=dense.params_before, round_to=8).removed.any()


def test_ignoring_everything_is_named_in_the_refusal():
    model, x = build_arch("conv_bn_relu")
    with pytest.raises(ConfigError, match="in the ignore list"):
        slimkit.plan_pruning(model, x, target_params=10, ignore=["*"])


def test_round_to_wider_than_every_group_is_refused():
    model, x = build_arch("control_flow")  # one 8-channel group
    with pytest.raises(ConfigError, match=r"too small to lose a channel with round_to=16"):
        slimkit.plan_pruning(model, x, macs_reduction=2, round_to=16)


def test_budget_past_the_floor_is_refused_with_the_most_reachable():
    model, x = resnet20()
    with pytest.raises(ConfigError, match=r"floor of 1 channel per group.*allows at most \d+\.\d\dx") as err:
        slimkit.plan_pruning(model, x, macs_reduction=1000)
    most = reduction_in(str(err.value))
    assert 10 < most < 1000
    with pytest.raises(ConfigError, match=r"round_to=8\) allows at most 2\.\d\dx"):
        slimkit.plan_pruning(model, x, macs_reduction=3, round_to=8)


def test_allow_partial_warns_and_prunes_as_far_as_allowed():
    model, x = resnet20()
    with pytest.raises(ConfigError) as err:
        slimkit.plan_pruning(model, x, macs_reduction=1000)
    with pytest.warns(BudgetWarning, match="allows at most") as caught:
        report = slimkit.prune_channels(model, x, macs_reduction=1000, allow_partial=True)
    assert report.applied and abs(report.macs_reduction - reduction_in(str(err.value))) < 0.01
    assert str(caught[0].message).split("; keeping")[0] == str(err.value).split("; pass")[0]
    assert model(x).shape == (1, 10) and torch.isfinite(model(x)).all()


@pytest.mark.parametrize("budget", ["macs_reduction", "target_macs", "target_params"])
def test_round_to_8_lands_within_tolerance_on_resnet20(budget):
    model, x = resnet20()
    dense = slimkit.plan_pruning(model, x, ratio=0.0).report
    base = dense.params_before if budget == "target_params" else dense.macs_before
    value = 2.0 if budget == "macs_reduction" else base / 2
    report = slimkit.plan_pruning(model, x, round_to=8, **{budget: value}).report
    reduction = report.params_reduction if budget == "target_params" else report.macs_reduction
    assert 2.0 <= reduction <= 2.0 * (1 + BUDGET_TOLERANCE)
    assert all(g.channels_after % 8 == 0 or g.channels_after == g.channels_before for g in report.groups)


@pytest.mark.parametrize("name,kwargs", [("vgg11_bn", {"width": 0.25}), ("mobilenetv2", {"width": 0.5}),
                                         ("resnet56", {"width": 0.5})])
def test_round_to_8_lands_within_tolerance_on_the_zoo(name, kwargs):
    model = slimkit.create_model(name, in_channels=1, **kwargs)
    report = slimkit.plan_pruning(model, torch.randn(1, 1, 28, 28), macs_reduction=2, round_to=8).report
    assert 2.0 <= report.macs_reduction <= 2.0 * (1 + BUDGET_TOLERANCE)


def test_coarse_channels_land_by_passing_over_a_step():
    """Each embedding slot of this encoder carries a third of its MACs: the cut takes finer channels instead."""
    model, x = build_arch("mha_encoder")
    report = slimkit.plan_pruning(model, x, macs_reduction=2).report
    assert 2.0 <= report.macs_reduction <= 2.0 * (1 + BUDGET_TOLERANCE)


@pytest.mark.parametrize("options", [dict(macs_reduction=2.0, round_to=8), dict(macs_reduction=2.0),
                                     dict(macs_reduction=1.5, round_to=4)], ids=["r8", "fine", "r4"])
@pytest.mark.parametrize("arch", list_archs())
def test_every_budget_is_met_or_refused_naming_the_limit(arch, options):
    """Met: at most the budget, past it by at most the tolerance. Else ConfigError naming the limit, and with
    allow_partial the same message as a warning and the closest plan it names."""
    model, x = build_arch(arch)
    asked = options["macs_reduction"]
    try:
        plan = slimkit.plan_pruning(model, x, **options)
    except ConfigError as err:
        message = str(err)
        assert any(limit in message for limit in LIMITS), message
        partial, warned = plan_quietly(model, x, allow_partial=True, **options)
        assert len(warned) == 1 and warned[0].split("; keeping")[0] == message.split("; pass")[0]
        if "is prunable" in message:
            assert partial.report.macs_reduction == 1.0
        else:
            assert abs(partial.report.macs_reduction - reduction_in(message)) < 0.006
        if "cannot land" in message:
            assert partial.report.macs_reduction > asked * (1 + BUDGET_TOLERANCE)
        else:
            assert partial.report.macs_reduction < asked
        return
    assert asked <= plan.report.macs_reduction <= asked * (1 + BUDGET_TOLERANCE)
    again, warned = plan_quietly(model, x, allow_partial=True, **options)
    assert not warned and torch.equal(again.removed, plan.removed)


@pytest.mark.cli
def test_allow_partial_is_a_config_field_stage_option_and_cli_flag(tmp_path, capsys):
    assert config_to_dict(PruneConfig(allow_partial=True))["allow_partial"] is True
    stage = load_stages().get("prune")
    assert parse_config(stage.config_cls, {"macs_reduction": 9, "allow_partial": True}).allow_partial
    src = slimkit.save_model(slimkit.create_model("resnet20", width=0.5, in_channels=1), tmp_path / "m.pt")
    out = str(tmp_path / "o.pt")
    assert main(["prune", str(src), "--macs-reduction", "1000", "--out", out, "--dry-run"]) == 2
    assert "allows at most" in capsys.readouterr().err
    with pytest.warns(BudgetWarning):
        assert main(["prune", str(src), "--macs-reduction", "1000", "--allow-partial", "--out", out, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["macs_reduction"] > 10


# -- ignore --------------------------------------------------------------------------------------------------------

class Features(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1),
                                      nn.ReLU())
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def test_a_typo_in_ignore_is_refused_with_the_close_match():
    model = Features()
    with pytest.raises(ConfigError, match=r"ignore: 'featurs\.0' matches no module of Features; "
                                          r"did you mean 'features\.0'"):
        slimkit.plan_pruning(model, torch.randn(1, 1, 8, 8), ratio=0.5, ignore=["featurs.0"])
    with pytest.raises(ConfigError, match="'layer9.*' matches no module"):
        slimkit.plan_pruning(*resnet20(), ratio=0.5, ignore=["layer9.*"])
    with pytest.raises(ConfigError, match="did you mean 'features.0'"):  # a PruneConfig given whole is checked too
        slimkit.plan_pruning(model, torch.randn(1, 1, 8, 8), PruneConfig(ignore=("featurs.0",)))


def test_a_typo_in_ratios_keys_is_refused_with_the_close_match():
    model, x = Features(), torch.randn(1, 1, 8, 8)
    before = [p.clone() for p in model.parameters()]
    with pytest.raises(ConfigError, match=r"ratios: 'featurs\.0' matches no module of Features; "
                                          r"did you mean 'features\.0'"):
        slimkit.prune_channels(model, x, ratio=0.5, ratios={"featurs.0": 0.2})
    with pytest.raises(ConfigError, match="ratios: 'features.9' matches no module"):
        slimkit.plan_pruning(model, x, PruneConfig(ratios={"features.9": 0.2}))
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))  # nothing was pruned
    plan = slimkit.plan_pruning(model, x, ratio=0.5, ratios={"features.*": 0.25})  # globs still match
    assert plan.report.groups


def test_ignore_globs_still_match():
    model, x = resnet20()
    plan = slimkit.plan_pruning(model, x, ratio=0.5, ignore=["layer1.*"])
    assert all(not any(m.startswith("layer1.") for m in g.modules) or g.channels_after == g.channels_before
               for g in plan.report.groups)


def test_ignore_takes_module_objects_and_stores_their_names():
    model, x = resnet20()
    layer = model.layer2[0].conv1
    before = layer.weight.shape
    plan = slimkit.plan_pruning(model, x, ratio=0.5, ignore=[layer, "layer3.0.conv1"])
    assert plan.config.ignore == ("layer2.0.conv1", "layer3.0.conv1")
    json.dumps(config_to_dict(plan.config))  # names only: the config stays serializable
    report = plan.apply()
    assert report.macs_reduction > 1.2
    assert model.layer2[0].conv1.weight.shape == before
    assert model.layer3[0].conv1.weight.shape[0] == 32
    assert model(x).shape == (1, 10)
    other = copy.deepcopy(model)
    one = slimkit.plan_pruning(other, x, {"ratio": 0.5, "ignore": [other.layer1[0].conv1]})  # in a dict config
    assert one.config.ignore == ("layer1.0.conv1",)


def test_a_shared_module_is_ignored_under_every_name():
    shared = nn.Conv2d(4, 4, 1)
    model = nn.Sequential(nn.Conv2d(1, 4, 1), shared, nn.ReLU(), shared)
    assert module_names(model, [shared]) == ("1", "3")


def test_ignore_refuses_foreign_modules_the_model_itself_and_other_objects():
    model, x = resnet20()
    with pytest.raises(ConfigError, match=r"ignore: a Linear that is not a submodule of CifarResNet"):
        slimkit.plan_pruning(model, x, ratio=0.5, ignore=[nn.Linear(2, 2)])
    with pytest.raises(ConfigError, match="the model itself"):
        slimkit.plan_pruning(model, x, ratio=0.5, ignore=[model])
    with pytest.raises(ConfigError, match="got int"):
        slimkit.plan_pruning(model, x, ratio=0.5, ignore=[3])
    with pytest.raises(ValueError, match="module names or globs, got a Conv2d"):
        PruneConfig(ignore=(model.conv1,))
    assert PruneConfig(ignore="fc").ignore == ("fc",)
