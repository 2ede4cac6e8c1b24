"""prune_channels / plan_pruning: options, selection, criteria, atomicity, optimizer state."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import slimkit
from slimkit.core.errors import ConfigError, GraphError
from slimkit.graph import build_graph, register_leaf
from slimkit.prune import PruneConfig, prune_in_channels, prune_out_channels
from slimkit.prune.apply import keep_indices
from slimkit.prune.importance import CRITERIA, normalize_scores
from slimkit.testing import build_arch


def state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def same_state(model, saved):
    now = model.state_dict()
    return now.keys() == saved.keys() and all(torch.equal(now[k], saved[k]) for k in saved)


def test_plan_is_a_dry_run_then_applies():
    model, x = build_arch("resnet")
    saved = state(model)
    plan = slimkit.plan_pruning(model, x, ratio=0.5)
    assert same_state(model, saved)
    assert plan.report.macs_after < plan.report.macs_before
    table = plan.table()
    assert "stem" in table and "untouched" in table and "MACs" in table
    report = plan.apply()
    assert report.applied and not same_state(model, saved)
    assert build_graph(model, x).macs() == report.macs_after  # the cost model is exact for this model


@pytest.mark.parametrize("name", ["resnet", "mobilenet_v2", "vit"])
def test_macs_budget_is_met(name):
    model, x = build_arch(name)
    report = slimkit.prune_channels(model, x, macs_reduction=2.0)
    assert report.macs_reduction >= 2.0
    assert report.macs_reduction < 2.6  # not far past the budget
    assert build_graph(model, x).macs() == report.macs_after


def test_params_budget_and_target_macs():
    model, x = build_arch("resnet")
    total = sum(p.numel() for p in model.parameters())
    report = slimkit.prune_channels(copy.deepcopy(model), x, target_params=total // 2)
    assert report.params_after <= total // 2
    plan = slimkit.plan_pruning(model, x, ratio=0.0)
    report = slimkit.prune_channels(model, x, target_macs=plan.report.macs_before * 0.6)
    assert report.macs_after <= plan.report.macs_before * 0.6


def test_round_to_multiples():
    model, x = build_arch("mobilenet_v2")
    report = slimkit.prune_channels(model, x, ratio=0.4, round_to=4)
    changed = [g for g in report.groups if g.channels_after != g.channels_before]
    assert changed
    assert all(g.channels_after % 4 == 0 for g in changed)


@pytest.mark.parametrize("round_to", [8, 16])
def test_budget_with_rounding_lands_close_to_the_target(round_to):
    # each group moves in whole steps of round_to: the first plan under the budget overshoots it (2.07x asked as
    # 2x on ResNet-20 at 16); giving steps back while the budget holds lands within a percent
    torch.manual_seed(0)  # how close the steps can land depends on the ranking; before: 2.044 (8), 2.072 (16)
    model = slimkit.create_model("resnet20", in_channels=3).eval()
    report = slimkit.prune_channels(model, torch.randn(1, 3, 32, 32), macs_reduction=2.0, round_to=round_to)
    assert 2.0 <= report.macs_reduction < 2.02
    changed = [g for g in report.groups if g.channels_after != g.channels_before]
    assert changed and all(g.channels_after % round_to == 0 for g in changed)


@pytest.mark.parametrize("capability, device, expected", [
    ("AVX512", "cpu", 16), ("AVX2", "cpu", 8), ("DEFAULT", "cpu", 8), ("AVX512", "cuda", 8)])
def test_round_to_auto_follows_the_latency_device(monkeypatch, capability, device, expected):
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: capability)
    assert PruneConfig(round_to="auto", latency_device=device).round_to == expected
    with pytest.raises(ValueError, match="round_to"):
        PruneConfig(round_to="fast")


def test_local_scope_prunes_every_group_uniformly():
    model, x = build_arch("conv_bn_relu")
    report = slimkit.prune_channels(model, x, ratio=0.5, scope="local")
    assert [(g.channels_before, g.channels_after) for g in report.groups] == [(8, 4), (16, 8), (16, 8)]


def test_ignore_and_overrides():
    model, x = build_arch("resnet")
    report = slimkit.prune_channels(model, x, ratio=0.5, scope="local", ignore=("blocks.2.*",),
                                    ratios={"blocks.0.conv1.0": 0.0})
    assert model.blocks[2].conv1[0].in_channels == 8 and model.blocks[2].conv1[0].out_channels == 16
    assert model.blocks[0].conv1[0].out_channels == 8
    assert model.blocks[1].conv1[0].out_channels == 4
    assert any("ignore" in s.reason for s in report.skipped)


def test_floor_of_one_channel_and_max_group_ratio():
    model, x = build_arch("mlp")
    slimkit.prune_channels(model, x, ratio=0.99, scope="local")
    assert model[1].out_features == 1 and model[3].out_features == 1
    model, x = build_arch("mlp")
    slimkit.prune_channels(model, x, ratio=0.95, max_group_ratio=0.5)
    assert model[1].out_features >= 16 and model[3].out_features >= 12


@pytest.mark.parametrize("criterion", sorted(CRITERIA.names()))
def test_every_criterion_prunes(criterion):
    model, x = build_arch("resnet")
    data = [(torch.randn(4, 3, 8, 8), torch.randint(0, 5, (4,))) for _ in range(2)]
    report = slimkit.prune_channels(model, x, ratio=0.3, importance=criterion, importance_data=data)
    assert report.macs_after < report.macs_before
    assert model(x[0]).shape == (2, 5)


def test_taylor_without_data_is_a_config_error():
    model, x = build_arch("mlp")
    with pytest.raises(ConfigError, match="taylor"):
        slimkit.plan_pruning(model, x, importance="taylor")


def test_l1_removes_the_smallest_filters():
    model = nn.Sequential(nn.Conv2d(3, 6, 1), nn.ReLU(), nn.Conv2d(6, 2, 1))
    with torch.no_grad():
        model[0].weight.copy_(torch.arange(1.0, 7.0).view(6, 1, 1, 1).expand(6, 3, 1, 1))
        model[0].bias.zero_()
        model[2].weight.fill_(1.0)
    slimkit.prune_channels(model, torch.randn(1, 3, 2, 2), ratio=0.5, scope="local")
    assert model[0].weight[:, 0, 0, 0].tolist() == [4.0, 5.0, 6.0]


def test_normalization():
    scores = torch.tensor([1.0, 3.0, 10.0, 30.0])
    member = torch.tensor([0, 0, 1, 1])
    assert torch.allclose(normalize_scores(scores, member, 2, "mean"), torch.tensor([0.5, 1.5, 0.5, 1.5]))
    assert torch.allclose(normalize_scores(scores, member, 2, "max"), torch.tensor([1 / 3, 1.0, 1 / 3, 1.0]))
    assert torch.equal(normalize_scores(scores, member, 2, "none"), scores)


def test_optimizer_state_is_sliced():
    model, x = build_arch("conv_bn_relu")
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model.train()
    model(x[0]).sum().backward()
    opt.step()
    old_w = model[1][0].weight
    momentum = opt.state[old_w]["momentum_buffer"].clone()
    plan = slimkit.plan_pruning(model, x, ratio=0.5, scope="local")
    keep = keep_indices(plan.graph, plan.removed)[[id(t) for t in plan.graph.tensors].index(id(old_w))]
    plan.apply(optimizer=opt)
    w = model[1][0].weight
    expected = momentum.index_select(0, keep[0]).index_select(1, keep[1])
    assert torch.equal(opt.state[w]["momentum_buffer"], expected)
    assert old_w not in opt.state
    assert set(map(id, opt.param_groups[0]["params"])) == set(map(id, model.parameters()))
    model.train()
    opt.zero_grad()
    model(x[0]).sum().backward()
    opt.step()


class Offset(nn.Module):
    """A leaf whose handler wrongly claims channels pass through: pruning must fail and roll back."""

    def __init__(self):
        super().__init__()
        self.register_buffer("offset", torch.ones(1, 8, 1, 1))

    def forward(self, x):
        return x + self.offset


@register_leaf(Offset)
def _offset_leaf(tr, module, args, kwargs, out):
    tr.set(out, dict(tr.fields(args[0])))


def test_breaking_group_is_excluded_naming_the_module():
    """The only group's cut breaks the forward: it is left alone with the failing module as the reason."""
    model = nn.Sequential(nn.Conv2d(3, 8, 1), Offset(), nn.ReLU(), nn.Conv2d(8, 2, 1))
    x = torch.randn(1, 3, 4, 4)
    saved = state(model)
    params = list(model.parameters())
    report = slimkit.prune_channels(model, x, ratio=0.5)
    assert report.macs_reduction == 1.0
    assert any(r"1 (Offset)" in s.reason and "breaks the model" in s.reason for s in report.skipped)
    assert same_state(model, saved)
    assert all(a is b for a, b in zip(params, model.parameters()))
    assert model[0].out_channels == 8
    slimkit.prune_channels(model, x, ratio=0.5, verify="never")  # opting out: the failure is the user's
    with pytest.raises(RuntimeError, match="size of tensor"):
        model(x)


def test_strict_raises_naming_module_and_op():
    class Rolled(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Conv2d(3, 8, 1)
            self.b = nn.Conv2d(8, 4, 1)

        def forward(self, x):
            return self.b(torch.roll(self.a(x), 1, dims=1))

    model = Rolled()
    saved = state(model)
    with pytest.raises(GraphError, match=r"Rolled.*roll"):
        slimkit.prune_channels(model, torch.randn(1, 3, 4, 4), ratio=0.5, strict=True)
    assert same_state(model, saved)


def test_config_errors_name_the_field():
    model, x = build_arch("mlp")
    with pytest.raises(ConfigError, match="ratio"):
        slimkit.prune_channels(model, x, ratio=1.5)
    with pytest.raises(ConfigError, match="ratioo"):
        slimkit.prune_channels(model, x, ratioo=0.5)
    with pytest.raises(ConfigError, match="unknown importance"):
        slimkit.prune_channels(model, x, importance="magic")
    with pytest.raises(ValueError, match="at most one"):
        PruneConfig(macs_reduction=2.0, target_params=10)


def test_report_to_dict():
    model, x = build_arch("mlp")
    d = slimkit.prune_channels(model, x, ratio=0.5).to_dict()
    assert d["macs_reduction"] > 1 and d["groups"][0]["channels_after"] < d["groups"][0]["channels_before"]


def test_layer_functions():
    conv = nn.Conv2d(4, 6, 3)
    prune_out_channels(conv, [0, 5])
    prune_in_channels(conv, [1])
    assert conv.weight.shape == (4, 3, 3, 3) and conv.bias.shape == (4,)
    assert (conv.in_channels, conv.out_channels) == (3, 4)
    bn = nn.BatchNorm2d(6)
    prune_out_channels(bn, torch.tensor([2]))
    assert bn.num_features == 5 and bn.running_var.shape == (5,)
    with pytest.raises(GraphError, match="out of range"):
        prune_out_channels(nn.Linear(3, 2), [4])


def test_target_latency_prunes_until_measured_latency_is_met():
    from slimkit.profile import measure_latency

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 64, 3, padding=1), nn.ReLU(), nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(),
                          nn.Conv2d(64, 8, 1)).eval()
    x = torch.randn(1, 3, 32, 32)
    dense_ms = measure_latency(model, x, warmup=3, repeats=15).median_ms
    saved = state(model)
    plan = slimkit.plan_pruning(model, x, target_latency_ms=dense_ms * 0.6, latency_batch_size=2)
    assert same_state(model, saved)  # every candidate was timed and rolled back
    trail = plan.report.latency_trail
    assert len(trail) >= 2 and trail[0][0] == 0.0
    report = plan.apply()
    assert report.macs_reduction > 1.2
    met = [ms for ratio, ms in trail if ms <= dense_ms * 0.6]
    assert met, trail


def test_plan_indices_name_the_removed_filters():
    model = nn.Sequential(nn.Conv2d(3, 6, 1), nn.ReLU(), nn.Conv2d(6, 2, 1))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([5.0, 1.0, 6.0, 2.0, 4.0, 3.0]).view(6, 1, 1, 1).expand(6, 3, 1, 1))
        model[2].weight.fill_(1.0)
    plan = slimkit.plan_pruning(model, torch.randn(1, 3, 2, 2), ratio=0.5, scope="local")
    assert plan.indices("0").tolist() == [1, 3, 5]
    with pytest.raises(ConfigError, match="no prunable group"):
        plan.indices("nope")


def test_latency_aware_ranking_uses_measured_per_layer_costs():
    from slimkit.prune.latency import latency_per_channel

    model, x = build_arch("resnet")
    plan = slimkit.plan_pruning(model, x, macs_reduction=1.5, latency_weight=1.0)
    assert plan.report.macs_reduction >= 1.5
    cost = latency_per_channel(plan.graph, x, plan.config)
    assert bool((cost[plan.graph.candidate] > 0).all())
    plan.apply()
    assert model(x[0]).shape == (2, 5)


def test_latency_of_weightless_modules_goes_to_the_channels_they_produce():
    from slimkit.prune.latency import latency_per_channel

    model = nn.Sequential(nn.Conv2d(3, 6, 1), nn.ReLU(), nn.Conv2d(6, 2, 1))
    x = torch.randn(1, 3, 4, 4)
    plan = slimkit.plan_pruning(model, x, ratio=0.5, latency_weight=1.0)
    graph = plan.graph
    graph.module_ms = {id(model[1]): 3.0}  # only the activation took time
    cost = latency_per_channel(graph, (x,), plan.config)
    (hidden,) = [g for g in graph.groups if "0" in g.modules]
    torch.testing.assert_close(cost[hidden.channels], torch.full((6,), 0.5))
    assert float(cost.sum()) == pytest.approx(3.0)


def test_under_a_macs_budget_latency_weight_cuts_where_time_per_mac_is_highest(monkeypatch):
    import slimkit.prune.latency as latency

    # two hidden layers of equal width: "0" feeds a 1x1 conv, "2" a wide 3x3 conv (about 5x the MACs per channel)
    model = nn.Sequential(nn.Conv2d(3, 16, 1), nn.ReLU(), nn.Conv2d(16, 16, 1), nn.ReLU(), nn.Conv2d(16, 16, 3))
    x = torch.randn(1, 3, 8, 8)
    graph = build_graph(model, x)
    macs, _ = graph.savings_per_channel()
    hidden = {name: [g for g in graph.groups if g.modules[0] == name][0] for name in ("0", "2")}
    assert float(macs[hidden["2"].channels[0]]) > 2 * float(macs[hidden["0"].channels[0]])

    # every channel saves the same time, and the channels of "2" matter half as much as those of "0"
    def scores(g, *args):
        out = torch.ones(g.num_channels)
        out[[grp for grp in g.groups if grp.modules[0] == "0"][0].channels] = 2.0
        return out

    monkeypatch.setattr("slimkit.prune.structured.channel_scores", scores)
    monkeypatch.setattr(latency, "latency_per_channel", lambda g, *a: torch.ones(g.num_channels))
    removed = {}
    for weight in (0.0, 1.0):
        plan = slimkit.plan_pruning(model, x, macs_reduction=1.2, latency_weight=weight, normalize="none",
                                    max_group_ratio=1.0)
        assert plan.report.macs_reduction >= 1.2
        removed[weight] = {name: len(plan.indices(name)) for name in ("0", "2")}
    assert removed[0.0]["0"] == 0 < removed[0.0]["2"]  # by importance alone, "2" goes first
    assert removed[1.0]["0"] > 0 == removed[1.0]["2"]  # per MAC saved, "0" buys 5x the time: it goes first
    density = latency.latency_per_budget_unit(graph, torch.ones(graph.num_channels), "macs")
    assert float(density[hidden["0"].channels].min()) > 4 * float(density[hidden["2"].channels].max())


def test_plan_group_costs_add_up_for_independent_groups():
    model, x = build_arch("conv_bn_relu")
    plan = slimkit.plan_pruning(model, x, ratio=0.5, scope="local")
    rows = plan.group_costs()
    assert [r["channels_after"] for r in rows] == [4, 8, 8]
    assert all(r["macs_after"] < r["macs_before"] and r["params_after"] < r["params_before"] for r in rows)
    # params saved by each group alone: conv rows/cols and BN entries of that group only
    saved = [r["params_before"] - r["params_after"] for r in rows]
    assert saved[0] == 4 * 3 * 9 + 4 * 2 + 16 * 4 * 9  # conv0 rows, BN weight+bias, conv1 input columns
