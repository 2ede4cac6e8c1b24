"""The dependency graph: which channels are coupled, blocked, and why."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import slimkit
from slimkit.core.errors import GraphError
from slimkit.graph import build_graph
from slimkit.testing import build_arch


def group_of(graph, module_name):
    return [g for g in graph.groups if module_name in g.modules]


def test_residual_stream_is_one_group():
    model, x = build_arch("resnet")
    graph = build_graph(model, x)
    stem = [g for g in graph.groups if g.name.startswith("stem")]
    assert len(stem) == 1
    # stem, the first stage's two residual branches and the next stage's consumers share one group
    assert {"stem.0", "blocks.0.conv2.0", "blocks.1.conv2.0", "blocks.0.conv1.0", "blocks.2.short.0"} <= set(stem[0].modules)
    assert stem[0].size == 8


def test_flatten_into_linear_maps_channel_to_spatial_block():
    model, x = build_arch("flatten_linear")
    graph = build_graph(model, x)
    fc = next(o for o in graph.occurrences if graph.locations[o.tensor][0][0] == "4" and o.dim == 1)
    comps = graph.comp[fc.ids]
    assert comps.numel() == 8 * 16
    # each conv channel owns a contiguous block of H*W = 16 input features
    assert torch.equal(comps.view(8, 16), comps.view(8, 16)[:, :1].expand(8, 16))
    assert torch.unique(comps).numel() == 8


def test_concat_offsets_in_densenet():
    model, x = build_arch("densenet")
    graph = build_graph(model, x)
    consumer = next(o for o in graph.occurrences if graph.locations[o.tensor][0][0] == "1.layers.2.2" and o.dim == 1)
    groups = {int(graph.comp[i]) for i in consumer.ids}
    assert len(groups) == 16  # 8 stem channels + 4 + 4 from the two earlier dense layers, each its own channel
    owners = [next(g.name for g in graph.groups if bool((g.channels == c).any())) for c in graph.comp[consumer.ids].tolist()]
    assert owners[:8] == ["0 +1"] * 8 or owners[0].startswith("0")
    assert owners[8].startswith("1.layers.0.2") and owners[12].startswith("1.layers.1.2")


def test_grouped_conv_keeps_groups_by_removing_offsets():
    model, x = build_arch("resnext")
    graph = build_graph(model, x)
    inner = [g for g in graph.groups if g.name.startswith("1.a")]
    assert inner and inner[0].width == 4  # one channel = the same offset in each of the 4 groups
    assert inner[0].size == 4


def test_depthwise_couples_input_and_output():
    model, x = build_arch("mobilenet_v2")
    graph = build_graph(model, x)
    g = next(g for g in graph.groups if g.name.startswith("1.expand"))
    assert {"1.expand.0", "1.dw.0", "1.dw.1", "1.project.0"} <= set(g.modules)


def test_channel_shuffle_is_prunable():
    model, x = build_arch("shufflenet")
    graph = build_graph(model, x)
    assert not [g for g in graph.skipped if "model output" not in g.reason]


def test_model_outputs_are_left_untouched_and_lstm_inputs_and_hidden_units_pruned():
    model, x = build_arch("lstm_head")
    graph = build_graph(model, x)
    reasons = {g.name: g.reason for g in graph.skipped}
    assert "model output" in reasons["fc"]
    assert [g.name for g in graph.groups] == ["conv1", "conv2", "lstm"]
    assert "lstm" in graph.groups[1].modules and "fc" in graph.groups[2].modules
    slimkit.prune_channels(model, x, ratio=0.5, scope="local")
    assert (model.conv2.out_channels, model.lstm.input_size, model.lstm.hidden_size) == (4, 4, 5)
    assert model.lstm.weight_ih_l0.shape == (20, 4) and model.lstm.weight_hh_l0.shape == (20, 5)
    assert model.fc.in_features == 5 and model(*x).shape == (2, 3)


def test_bidirectional_stacked_gru_loses_the_same_units_everywhere():
    model, x = build_arch("bigru_tagger")
    slimkit.prune_channels(model, x, ratio=0.4, scope="local")
    gru = model.gru
    assert gru.hidden_size == 3 and gru.weight_ih_l1.shape == (9, 6) and gru.weight_hh_l1_reverse.shape == (9, 3)
    assert model.cell.input_size == 6 and model.cell.hidden_size == 2 and model.fc.in_features == 2
    assert model(*x).shape == (2, 3)


def test_recurrent_macs_match_the_profiler():
    from slimkit.profile import profile

    model, x = build_arch("bigru_tagger")
    graph = build_graph(model, x)
    assert graph.macs() == profile(model, x).macs
    packed = nn.utils.rnn.pack_sequence([torch.randn(3, 4), torch.randn(2, 4)])
    lstm = nn.LSTM(4, 3)
    wrapped = nn.Sequential(lstm)
    assert not build_graph(wrapped, (packed,)).groups  # a packed sequence is left alone


class Rolled(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 8, 1)
        self.b = nn.Conv2d(8, 4, 1)

    def forward(self, x):
        return self.b(torch.roll(self.a(x), 1, dims=1))


class SizedSplit(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(4, 10)
        self.b = nn.Linear(6, 2)

    def forward(self, x):
        left, right = torch.split(self.a(x), [6, 4], dim=-1)
        return self.b(left) + right.sum(-1, keepdim=True)


class LiteralView(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 8, 1)
        self.fc = nn.Linear(8, 2)

    def forward(self, x):
        return self.fc(self.a(x).view(2, 8, 16).mean(-1))


@pytest.mark.parametrize("model,fragment", [
    (Rolled(), "roll along a channel dim"),
    (SizedSplit(), "split of a channel dim into fixed sizes"),
    (LiteralView(), "literal channel count 8"),
])
def test_not_understood_is_blocked_and_named(model, fragment):
    x = torch.randn(2, 3, 4, 4) if not isinstance(model, SizedSplit) else torch.randn(2, 4)
    graph = build_graph(model, x)
    reasons = [g.reason for g in graph.skipped]
    assert any(fragment in r for r in reasons), reasons
    assert not any(g.name == "a" for g in graph.groups)


def test_failing_forward_names_the_module():
    class Broken(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = nn.Linear(3, 3)

        def forward(self, x):
            return self.inner(x.view(7, -1))

    with pytest.raises(GraphError, match=r"Broken|inner"):
        build_graph(Broken(), torch.randn(2, 4))


def test_costs_are_exact_for_convs_and_linears():
    model, x = build_arch("conv_bn_relu")
    graph = build_graph(model, x)
    expected = 0
    h = 8
    for conv, stride in ((model[0][0], 1), (model[1][0], 2), (model[2][0], 1)):
        h = h // stride
        expected += conv.weight.numel() * h * h * 2
    expected += model[5].weight.numel() * 2
    assert graph.macs() == expected
    assert graph.params() == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("arch", ["conv_bn_relu", "resnet", "densenet"])
def test_savings_per_channel_are_what_removing_one_channel_saves(arch):
    model, x = build_arch(arch)
    graph = build_graph(model, x)
    macs, params = graph.savings_per_channel()
    for g in graph.groups:
        channel = int(g.channels[0])
        removed = torch.zeros(graph.num_channels, dtype=torch.bool)
        removed[channel] = True
        # terms are linear in each channel unless one term lists the channel twice (depthwise: in and out)
        assert graph.macs() - graph.macs(removed) == pytest.approx(float(macs[channel]), rel=0.05, abs=1), g.name
        assert graph.params() - graph.params(removed) == pytest.approx(float(params[channel]), rel=0.05, abs=1)
    assert bool((macs[graph.candidate] > 0).all()) and bool((params[graph.candidate] > 0).all())


def test_trace_leaves_model_unchanged_and_in_mode():
    model, x = build_arch("resnet")
    model.train()
    stats = model.stem[1].running_mean.clone()
    build_graph(model, x)
    assert model.training
    assert torch.equal(stats, model.stem[1].running_mean)
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


def test_sdpa_and_hand_written_heads_prune_same_per_head_dims():
    model, x = build_arch("vit")
    graph = build_graph(model, x)
    qkv = next(g for g in graph.groups if g.name.startswith("blocks.0.attn.qkv"))
    assert qkv.exact and qkv.size == 8 and qkv.width == 6  # 8 per-head dims, each in q, k, v of both heads


def test_functional_ops_used_directly():
    x = torch.randn(2, 8, 4, 4)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.c = nn.Conv2d(8, 8, 1)
            self.d = nn.Conv2d(8, 4, 1)

        def forward(self, x):
            h = F.relu(self.c(x))
            h = torch.cat([h[:, :4], h[:, 4:]], 1)  # slicing then concatenating a channel dim: blocked, not guessed
            return self.d(h)

    graph = build_graph(Net(), x)
    assert any("__getitem__" in g.reason or "part of a channel dim" in g.reason for g in graph.skipped)


def test_assumptions_are_recorded_for_verification():
    exact, x = build_arch("resnet")
    assert build_graph(exact, x).assumptions == []
    shuffle, x = build_arch("shufflenet")  # view(b, groups, c // groups, h, w) with c read from .shape
    assert any("read from .shape" in a for a in build_graph(shuffle, x).assumptions)


def test_pixel_shuffle_prunes_whole_runs_and_unshuffle_spreads_channels():
    model, x = build_arch("subpixel")
    graph = build_graph(model, x)
    assert {g.name for g in graph.groups} == {"expand", "mix", "down"}
    expand = next(g for g in graph.groups if g.name == "expand")
    assert expand.size == 4 and expand.width == 4  # 16 conv outputs = 4 runs of r*r = 4
    slimkit.prune_channels(model, x, ratio=0.5, scope="local")
    assert (model.expand.out_channels, model.mix.in_channels) == (8, 2)
    assert (model.mix.out_channels, model.down.in_channels) == (3, 12)
    assert model(*x).shape == (2, 3)


def test_grouped_and_depthwise_conv_transpose_keep_their_groups_rectangular():
    model, x = build_arch("grouped_conv_transpose")
    graph = build_graph(model, x)
    # enc: 4 in-group offsets shared by up's 4 groups; up's 2 output offsets (x 4 groups) are dw_up's groups,
    # each taking its 2 outputs along
    assert {g.name: g.size for g in graph.groups} == {"enc": 4, "up +1": 2}
    slimkit.prune_channels(model, x, ratio=0.5, scope="local")
    assert (model.enc.out_channels, model.up.in_channels, model.up.groups) == (8, 8, 4)
    assert (model.up.out_channels, model.dw_up.in_channels, model.dw_up.groups) == (4, 4, 4)
    assert (model.dw_up.out_channels, model.head.in_channels) == (8, 8)
    assert model(*x).shape == (2, 2)


def test_einsum_letters_couple_dims_and_macs_match_the_profiler():
    from slimkit.profile import profile

    model, x = build_arch("einsum_mixer")
    graph = build_graph(model, x)
    hidden = next(g for g in graph.groups if "gate" in g.modules)
    assert hidden.size == 10 and hidden.exact
    assert graph.macs() == profile(model, x).macs
    assert not graph.unknown_ops
    slimkit.prune_channels(model, x, ratio=0.5, scope="local")
    assert model.w1.shape == (6, 5) and model.w2.shape == (5, 4) and model.gate.out_features == 5
    assert model(*x).shape == (2, 3)


def test_einsum_ellipsis_is_spelled_out_and_broadcast_right_aligned():
    from slimkit.profile import profile

    model, x = build_arch("einsum_ellipsis")
    graph = build_graph(model, x)
    assert not graph.unknown_ops
    assert [g.reason for g in graph.skipped] == ["model output: reaches the model output"]
    assert sorted(g.size for g in graph.groups) == [8, 10]
    assert graph.macs() == profile(model, x).macs
    slimkit.prune_channels(model, x, ratio=0.5, scope="local")
    assert (model.w1.shape, model.scale.shape, model.w2.shape) == ((5, 6), (5,), (4, 5))
    assert model.fc.in_features == 4 and model(*x).shape == (2, 3)


@pytest.mark.parametrize("equation, shapes, expected", [
    ("...c,dc->...d", [(2, 5, 6), (4, 6)], (["abc", "dc"], "abd")),
    ("b...,b...->b", [(2, 3, 4), (2, 4)], (["bac", "bc"], "b")),
    ("ij,...j", [(3, 4), (7, 4)], (["ij", "aj"], "ai")),
    ("ij,jk", [(3, 4), (4, 5)], (["ij", "jk"], "ik")),
    ("ij,jk", [(3, 4)], None),
    ("...ij,jk", [(3,), (4, 5)], None),
])
def test_einsum_terms(equation, shapes, expected):
    from slimkit.graph.layer_ops import _einsum_terms

    assert _einsum_terms(equation, [torch.zeros(s) for s in shapes]) == expected


def test_packed_sequences_are_traced_through_their_data():
    model, x = build_arch("packed_lstm")
    graph = build_graph(model, x)
    assert not graph.unknown_ops
    assert sorted((g.name, g.size) for g in graph.groups) == [("embed", 8), ("lstm", 6)]
    expected = model(*x)
    slimkit.prune_channels(model, x, ratio=0.5, scope="local")
    assert (model.embed.out_features, model.lstm.input_size, model.lstm.hidden_size) == (4, 4, 3)
    assert model.head.in_features == 6 and model(*x).shape == expected.shape


def test_projected_lstm_prunes_hidden_units_and_projected_features_apart():
    from slimkit.profile import profile

    model, x = build_arch("projected_lstm")
    graph = build_graph(model, x)
    assert not graph.unknown_ops
    # embed -> input features; h0 + the projection rows -> projected features; c0 + weight_hr columns -> units
    assert sorted(g.size for g in graph.groups) == [4, 8, 10]
    assert graph.macs() == profile(model, x).macs
    slimkit.prune_channels(model, x, ratio=0.5, scope="local")
    lstm = model.lstm
    assert (lstm.input_size, lstm.hidden_size, lstm.proj_size) == (4, 5, 2)
    assert tuple(lstm.weight_hr_l1_reverse.shape) == (2, 5) and tuple(lstm.weight_ih_l1.shape) == (20, 4)
    assert model.head.in_features == 4 and model(*x).shape == (2, 3)


def test_recurrent_cell_with_an_initial_state_of_literal_width_keeps_its_hidden_units():
    class Loop(nn.Module):
        def __init__(self):
            super().__init__()
            self.inp, self.cell, self.fc = nn.Linear(3, 8), nn.LSTMCell(8, 6), nn.Linear(6, 2)

        def forward(self, x):
            h = c = torch.zeros(x.shape[1], 6)
            for t in range(x.shape[0]):
                h, c = self.cell(torch.relu(self.inp(x[t])), (h, c))
            return self.fc(h)

    model, x = Loop(), torch.randn(4, 2, 3)
    report = slimkit.prune_channels(model, x, ratio=0.5, scope="local")
    assert "initial state of fixed width 6" in report.table()
    assert (model.cell.input_size, model.cell.hidden_size) == (4, 6) and model(x).shape == (2, 2)
