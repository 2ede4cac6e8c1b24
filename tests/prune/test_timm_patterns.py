"""Patterns of timm and torchvision models (replicas in slimkit.testing.archs_timm): what ratio=0.5 removes.

Per pattern: the pruned model runs with its output shapes, removing zero-effect channels keeps the outputs, and the
MACs fall by at least a floor measured on the replica (comments say why a floor is lower than 2x). Then the
mechanisms each pattern relies on: counts tied to a width the module read, int attributes that follow the width,
split sizes, blur filters, relative position tables sliced with whole heads, and the check forward that catches an
explanation that does not hold.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import slimkit
from slimkit.graph import build_graph
from slimkit.testing import build_arch, check_prune_equivalence
from slimkit.testing.archs_timm import BlurPool2d, WindowAttention, relative_position_index

FLOORS = {  # measured on the replica (seed 0) less ~5%; before this suite's engine changes in brackets
    "sk_resnet": 3.6,  # (1.92x) x.split(self.in_channels // self.num_paths) follows in_channels
    "xcit": 3.35,  # (3.54x) XCA's softmax over key channels: removing one renormalizes over the rest (inexact)
    "cait": 2.4,  # (1.36x) C // num_heads ties head dims to the residual; talking heads keep the head count
    "timm_vit": 3.0,  # (2.40x) self.head_dim and self.attn_dim follow the pruned head dims
    "torchvision_vit": 3.4,  # (3.62x) nn.MultiheadAttention slots and the embedding width (self.hidden_dim)
    "swin": 3.7,  # (3.90x)
    "torchvision_swin": 5.8,  # (1.42x) pad by (0, 0) on channels; C // num_heads of the input width
    "torchvision_swin_v2": 4.1,  # (1.44x) and qkv_bias[length:2 * length].zero_() with length = numel // 3
    "cspdarknet": 3.0,  # (2.55x) x.split(self.expand_chs // 2) follows expand_chs
    "blurpool_resnet": 4.2,  # (2.43x) groups=self.channels follows, the blur buffer is sliced per channel
    "efficientnet": 2.7,  # (2.88x)
    "convnext_timm": 2.7,  # (2.93x)
    "regnet": 2.9,  # (3.11x)
    "res2net": 2.65,  # (1.79x) torch.split(out, self.width, 1) follows width
    "mixnet": 2.45,  # (1.00x) x.split(self.splits, 1): each part its own channels, self.splits[i] follows part i
}


def _outputs(model: nn.Module, inputs: tuple) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(*inputs)


@pytest.mark.parametrize("name", list(FLOORS))
def test_pattern_is_cut_and_still_runs(name):
    model, inputs = build_arch(name)
    shape = _outputs(model, inputs).shape
    report = slimkit.prune_channels(model, inputs, ratio=0.5)
    out = _outputs(model, inputs)
    assert out.shape == shape and bool(torch.isfinite(out).all())
    assert not [s for s in report.skipped if "breaks the model" in s.reason], report.table()
    assert report.macs_reduction >= FLOORS[name], report.table()


@pytest.mark.parametrize("name", list(FLOORS))
def test_zero_effect_channels_are_removed_exactly(name):
    model, inputs = build_arch(name)
    assert check_prune_equivalence(model, inputs, fraction=0.4, seed=2) > 0


def test_class_attention_ties_head_dims_to_the_residual_width():
    """``q.reshape(B, 1, heads, C // heads)`` with C read from the input: the residual loses `heads` positions per
    head dim removed, so the count still divides (CaiT, XCiT, CrossViT, torchvision's Swin)."""
    model, x = build_arch("cait")
    slimkit.prune_channels(model, x, ratio=0.5)
    attn = model.blocks_token_only[0].attn
    width = model.patch_embed.out_channels
    assert width < 16 and attn.q.out_features == width == attn.k.out_features == attn.v.out_features
    assert model.blocks[0].attn.qkv.out_features == 3 * width


def test_attributes_used_as_counts_follow_the_width():
    model, x = build_arch("timm_vit")
    slimkit.prune_channels(model, x, ratio=0.5)
    attn = model.blocks[0].attn
    assert attn.head_dim < 8 and attn.num_heads == 2
    assert attn.attn_dim == attn.num_heads * attn.head_dim and attn.qkv.out_features == 3 * attn.attn_dim

    model, x = build_arch("torchvision_vit")
    slimkit.prune_channels(model, x, ratio=0.5)
    assert model.hidden_dim == model.conv_proj.out_channels < 32


def test_split_sizes_follow_their_attribute():
    model, x = build_arch("cspdarknet")
    slimkit.prune_channels(model, x, ratio=0.5)
    stage = model[1]
    assert stage.expand_chs == stage.conv_exp[0].out_channels < 16
    model, x = build_arch("sk_resnet")
    slimkit.prune_channels(model, x, ratio=0.5)
    sk = model[1].conv1
    assert sk.in_channels == 2 * sk.paths[0][0].in_channels < 16
    model, x = build_arch("res2net")
    slimkit.prune_channels(model, x, ratio=0.5)
    assert model[2].width == model[2].convs[0].in_channels and model[2].conv1.out_channels == 4 * model[2].width < 16
    model, x = build_arch("mixnet")
    slimkit.prune_channels(model, x, ratio=0.5)
    for mixed in (model[1].conv_pw, model[1].conv_dw, model[2].conv_dw):
        assert mixed.splits == [conv.in_channels for conv in mixed.values()]
    assert sum(model[1].conv_dw.splits) < 26


def test_blur_filter_is_sliced_per_channel_and_keeps_its_kernel():
    model, x = build_arch("blurpool_resnet")
    slimkit.prune_channels(model, x, ratio=0.5)
    for block in (model[1], model[2]):
        assert block.aa.channels == block.aa.filt.shape[0] == block.conv1[0].out_channels
        assert block.aa.filt.shape[1:] == (1, 3, 3)


def test_broadcast_blur_filter_follows_the_width_read_from_the_input():
    """``channels=None``: one filter expanded to ``x.shape[1]`` and ``groups=x.shape[1]``."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), BlurPool2d(None), nn.Conv2d(8, 6, 1),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 3))
    x = torch.randn(2, 3, 8, 8)
    report = slimkit.prune_channels(model, x, ratio=0.5)
    assert model[0].out_channels < 8 and model[2].filt.shape == (1, 1, 3, 3)
    assert _outputs(model, (x,)).shape == (2, 3) and report.macs_reduction > 1.5


class HeadWindowAttention(WindowAttention):
    """Window attention whose head count adapts: ``reshape(B_, N, 3, -1, self.head_dim)``, so whole heads are
    the unit; the relative position bias table and ``self.num_heads`` (in the shifted-window mask view) follow."""

    def __init__(self, dim: int, num_heads: int, window_size: tuple[int, int]) -> None:
        super().__init__(dim, num_heads, window_size)
        self.head_dim = dim // num_heads

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        B_, N, C = x.shape
        q, k, v = self.qkv(x).reshape(B_, N, 3, -1, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        attn = (q * self.scale) @ k.transpose(-2, -1) + self._get_rel_pos_bias()
        if mask is not None:
            num_win = mask.shape[0]
            attn = attn.view(-1, num_win, self.num_heads, N, N) + mask.unsqueeze(1).unsqueeze(0)
            attn = attn.view(-1, self.num_heads, N, N)
        x = (self.softmax(attn) @ v).transpose(1, 2).reshape(B_, N, -1)
        return self.proj(x)


class Windows(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Linear(4, 12)
        self.attn = HeadWindowAttention(12, 3, (2, 2))
        self.head = nn.Linear(12, 3)
        ids = relative_position_index(2, 2).view(-1)
        self.register_buffer("mask", (ids.view(4, 4) % 3 == 0).float().expand(2, 4, 4) * -100.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B * windows, N, 4)
        return self.head(self.attn(self.embed(x), self.mask).mean(1))


def test_relative_position_table_is_sliced_with_whole_heads():
    torch.manual_seed(0)
    model, x = Windows(), torch.randn(4, 4, 4)
    graph = build_graph(model, (x,))
    heads = [g for g in graph.groups if "attn" in g.name and g.width == 4 * 3]  # a head: 3 x head_dim q/k/v rows
    assert heads and heads[0].size == 3
    assert "attn" in heads[0].modules  # the bias table is sliced with its head
    reference = copy.deepcopy(model)
    check_prune_equivalence(model, (x,), fraction=0.4, seed=0)
    attn = model.attn
    assert attn.num_heads == attn.relative_position_bias_table.shape[1] == 2 and attn.head_dim == 4
    assert reference.attn.relative_position_bias_table.shape[1] == 3


class SplitNotFromAttribute(nn.Module):
    """An attribute equal to the width is mentioned in forward, but the split size is a literal: linking the
    attribute would split 16 - 2k channels into 8 + (8 - 2k), which runs and is wrong."""

    def __init__(self) -> None:
        super().__init__()
        self.expand_chs = 16
        self.conv_in = nn.Conv2d(3, 16, 1)
        self.head = nn.Conv2d(16, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert self.expand_chs > 0
        a, b = self.conv_in(x).split(8, dim=1)
        return self.head(torch.cat([b, F.relu(a)], dim=1))


def test_check_forward_catches_an_explanation_that_does_not_hold():
    torch.manual_seed(0)
    model, x = SplitNotFromAttribute(), torch.randn(1, 3, 4, 4)
    before = _outputs(model, (x,))
    report = slimkit.prune_channels(model, x, ratio=0.5)
    broken = [s for s in report.skipped if "breaks the model" in s.reason]
    assert broken and "plan expects" in broken[0].reason
    assert model.conv_in.out_channels == 16 and model.expand_chs == 16
    assert torch.equal(_outputs(model, (x,)), before)


def test_literal_split_without_explanation_is_blocked_up_front():
    class Literal(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv_in = nn.Conv2d(3, 16, 1)
            self.head = nn.Conv2d(16, 4, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            a, b = self.conv_in(x).split(8, dim=1)
            return self.head(torch.cat([b, a], dim=1))

    graph = build_graph(Literal(), (torch.randn(1, 3, 4, 4),))
    assert any("literal size 8" in g.reason for g in graph.skipped)


def test_pad_by_zero_leaves_the_channel_dim_alone():
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    torch.manual_seed(0)

    class Padded(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = model

        def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, H, W, C), torchvision Swin's padding
            h = F.pad(self.net[1](self.net[0](x)), (0, 0, 0, 1, 0, 1))
            return self.net[2](h).mean((1, 2))

    graph = build_graph(Padded(), (torch.randn(2, 3, 3, 4),))
    assert any(g.name == "net.0" for g in graph.groups)


class ScaledStdConv2d(nn.Conv2d):
    """timm's NFNet conv: the weight is standardized per filter in forward (``F.batch_norm`` with training=True on
    ``self.weight.reshape(1, self.out_channels, -1)``)."""

    def __init__(self, cin: int, cout: int, k: int, padding: int = 0, groups: int = 1) -> None:
        super().__init__(cin, cout, k, padding=padding, groups=groups)
        self.gain = nn.Parameter(torch.ones(self.out_channels, 1, 1, 1))
        self.scale = self.weight[0].numel() ** -0.5
        self.eps = 1e-6

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = F.batch_norm(self.weight.reshape(1, self.out_channels, -1), None, None,
                              weight=(self.gain * self.scale).view(-1), training=True, momentum=0.0,
                              eps=self.eps).reshape_as(self.weight)
        return F.conv2d(x, weight, self.bias, self.stride, self.padding, self.dilation, self.groups)


def test_standardized_conv_weights_are_cut_and_inexact():
    """The filter statistics run over the input channels, so removing one changes the others (inexact); kernel
    dims of a conv module's weight are never channels, so 3x3 standardized convs keep their inputs prunable."""

    class NFBlock(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stem = ScaledStdConv2d(3, 16, 3, padding=1)
            self.c1 = ScaledStdConv2d(16, 24, 1)
            self.c2 = ScaledStdConv2d(24, 24, 3, padding=1, groups=4)
            self.c3 = ScaledStdConv2d(24, 16, 3, padding=1)
            self.fc = nn.Linear(16, 5)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = F.gelu(self.stem(x))
            x = x + 0.2 * self.c3(F.gelu(self.c2(F.gelu(self.c1(x)))))
            return self.fc(x.mean((2, 3)))

    torch.manual_seed(0)
    model, x = NFBlock(), torch.randn(2, 3, 8, 8)
    graph = build_graph(model, (x,))
    assert {g.name.split(" ")[0] for g in graph.groups} == {"stem", "c1", "c2"}
    assert not any(g.exact for g in graph.groups)
    report = slimkit.prune_channels(model, x, ratio=0.5)
    assert report.macs_reduction > 2.5 and model.c2.out_channels < 24 and model.c3.in_channels < 24
    assert _outputs(model, (x,)).shape == (2, 5)
