"""The proximal L1 step on normalization scales, and removing the channels it zeroed."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import slimkit
from slimkit.gan import norm_scales, proximal_l1_, remove_channels
from slimkit.gan.sparsity import choose_threshold
from slimkit.prune.engine import build_graph


def test_proximal_step_zeroes_small_scales_and_shrinks_the_rest():
    g = torch.tensor([0.5, -0.05, 0.1, -0.3, 0.0, 0.0999, -0.1001, 2.0])
    threshold = 0.1
    out = g.clone()
    proximal_l1_([out], threshold)
    small = g.abs() <= threshold
    assert torch.equal(out[small], torch.zeros(int(small.sum())))
    assert torch.allclose(out[~small], g[~small] - threshold * torch.sign(g[~small]))
    assert torch.equal(torch.sign(out[~small]), torch.sign(g[~small]))


def test_proximal_step_zero_threshold_is_identity():
    g = torch.randn(16)
    out = g.clone()
    proximal_l1_([out], 0.0)
    assert torch.equal(out, g)


class UserGenerator(nn.Module):
    """A user's own generator: transposed conv, upsample + conv, BN, affine InstanceNorm, a residual block, tanh."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, 8, 3, padding=1)
        self.norm0 = nn.InstanceNorm2d(8, affine=True)
        self.block_conv = nn.Conv2d(8, 6, 3, padding=1)
        self.block_norm = nn.InstanceNorm2d(6, affine=True)
        self.block_out = nn.Conv2d(6, 8, 3, padding=1)
        self.block_out_norm = nn.InstanceNorm2d(8, affine=True)
        self.down = nn.Conv2d(8, 12, 4, stride=2, padding=1)
        self.bn1 = nn.BatchNorm2d(12)
        self.up_t = nn.ConvTranspose2d(12, 10, 4, stride=2, padding=1)
        self.bn2 = nn.BatchNorm2d(10)
        self.up = nn.Upsample(scale_factor=2)
        self.conv = nn.Conv2d(10, 6, 3, padding=1)
        self.bn3 = nn.BatchNorm2d(6)
        self.pool = nn.AvgPool2d(2)
        self.out = nn.Conv2d(6, 1, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.norm0(self.stem(x)))
        h = h + self.block_out_norm(self.block_out(torch.relu(self.block_norm(self.block_conv(h)))))
        h = torch.relu(self.bn1(self.down(h)))
        h = torch.relu(self.bn2(self.up_t(h)))
        h = torch.relu(self.bn3(self.conv(self.up(h))))
        return torch.tanh(self.out(self.pool(h)))


def _zoo(name: str, **kw):
    return slimkit.create_model(name, **kw)


GENERATORS = {
    "dcgan_g": (lambda: _zoo("dcgan_g", width=0.125, noise_dim=8, num_classes=3),
                lambda: (torch.randn(3, 8), torch.tensor([0, 1, 2]))),
    "dcgan_g_transpose": (lambda: _zoo("dcgan_g", width=0.125, noise_dim=8, num_classes=3, upsample="transpose"),
                          lambda: (torch.randn(3, 8), torch.tensor([0, 1, 2]))),
    "resnet_g": (lambda: _zoo("resnet_g", width=0.25, blocks=2), lambda: (torch.randn(3, 1, 16, 16),)),
    "user": (UserGenerator, lambda: (torch.randn(3, 1, 16, 16),)),
}


def _randomize_norms(model: nn.Module) -> None:
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.BatchNorm2d, nn.InstanceNorm2d)) and m.weight is not None:
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)


def _zero_half_the_channels(model: nn.Module) -> int:
    """Zero the scale and shift of every other channel of each normalization layer; returns how many."""
    zeroed = 0
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.BatchNorm2d, nn.InstanceNorm2d)) and m.weight is not None:
                m.weight[::2] = 0
                m.bias[::2] = 0
                zeroed += len(range(0, m.num_features, 2))
    return zeroed


@pytest.mark.parametrize("name", GENERATORS)
def test_removing_zero_scale_zero_shift_channels_keeps_outputs(name):
    torch.manual_seed(0)
    make, inputs = GENERATORS[name]
    model = make().eval()
    _randomize_norms(model)
    _zero_half_the_channels(model)
    x = inputs()
    with torch.no_grad():
        before = model(*x)
    macs_before = slimkit.profile(model, x).macs
    removal = remove_channels(model, x, None)
    assert removal.threshold == 0.0 and removal.zero_channels > 0
    assert removal.channels_after < removal.channels_before
    with torch.no_grad():
        after = model(*x)
    assert after.shape == before.shape
    assert torch.allclose(after, before, atol=1e-6, rtol=0)
    assert slimkit.profile(model, x).macs < macs_before


@pytest.mark.parametrize("name", GENERATORS)
def test_nothing_zero_nothing_removed(name):
    torch.manual_seed(0)
    make, inputs = GENERATORS[name]
    model = make().eval()
    _randomize_norms(model)
    x = inputs()
    with torch.no_grad():
        before = model(*x)
    removal = remove_channels(model, x, None)
    assert removal.channels_after == removal.channels_before and removal.macs_after == removal.macs_before
    with torch.no_grad():
        assert torch.equal(model(*x), before)


@pytest.mark.parametrize("target", [1.5, 3.0])
def test_threshold_rises_until_the_macs_target_is_met(target):
    torch.manual_seed(0)
    model = _zoo("dcgan_g", width=0.25, noise_dim=8, num_classes=3).eval()
    _randomize_norms(model)
    x = (torch.randn(1, 8), torch.tensor([1]))
    graph = build_graph(model, x)
    threshold, removed = choose_threshold(graph, target)
    assert threshold > 0
    assert graph.macs() / graph.macs(removed) >= target
    # the smallest such threshold: one scale lower does not meet the target
    from slimkit.gan.sparsity import channel_scales, removal_mask

    scale, has = channel_scales(graph)
    lower = scale[has & (scale < threshold)]
    if lower.numel():
        assert graph.macs() / graph.macs(removal_mask(graph, float(lower.max()))) < target
    removal = remove_channels(model, x, target)
    assert removal.macs_before / removal.macs_after >= target


def test_norm_scales_finds_batch_and_instance_norms():
    model = UserGenerator()
    assert len(norm_scales(model)) == 6
    assert all(isinstance(s, nn.Parameter) for s in norm_scales(model))


def test_params_and_macs_targets_are_both_met():
    torch.manual_seed(0)
    model = _zoo("dcgan_g", width=0.25, noise_dim=8, num_classes=3).eval()
    _randomize_norms(model)
    x = (torch.randn(1, 8), torch.tensor([1]))
    graph = build_graph(model, x)
    _, removed = choose_threshold(graph, 1.2, 4.0)
    assert graph.params() / graph.params(removed) >= 4.0 and graph.macs() / graph.macs(removed) >= 1.2
