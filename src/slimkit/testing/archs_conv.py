"""Tiny convolutional architectures that exercise every graph edge case of a CNN (for tests, yours included)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from slimkit.testing.registry import register_arch


def cbr(cin: int, cout: int, k: int = 3, stride: int = 1, groups: int = 1, act: type = nn.ReLU) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout), act())


@register_arch("conv_bn_relu")
def conv_bn_relu() -> tuple[nn.Module, tuple]:
    model = nn.Sequential(cbr(3, 8), cbr(8, 16, stride=2), cbr(16, 16), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 5))
    return model, (torch.randn(2, 3, 8, 8),)


@register_arch("flatten_linear")
def flatten_linear() -> tuple[nn.Module, tuple]:
    """Conv features flattened into a Linear: one channel is a C*H*W block of its input."""
    model = nn.Sequential(cbr(3, 6), nn.MaxPool2d(2), cbr(6, 8), nn.Flatten(), nn.Linear(8 * 4 * 4, 12), nn.ReLU(),
                          nn.Linear(12, 4))
    return model, (torch.randn(2, 3, 8, 8),)


class _Basic(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = cbr(cin, cout, stride=stride)
        self.conv2 = nn.Sequential(nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout))
        self.short = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
                      if stride != 1 or cin != cout else nn.Identity())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.conv2(self.conv1(x)) + self.short(x))


class ResNet(nn.Module):
    def __init__(self, widths: tuple[int, ...] = (8, 16), num_classes: int = 5) -> None:
        super().__init__()
        self.stem = cbr(3, widths[0])
        blocks, cin = [], widths[0]
        for i, w in enumerate(widths):
            blocks += [_Basic(cin, w, 1 if i == 0 else 2), _Basic(w, w)]
            cin = w
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.blocks(self.stem(x)).mean((2, 3)))


@register_arch("resnet")
def resnet() -> tuple[nn.Module, tuple]:
    return ResNet(), (torch.randn(2, 3, 8, 8),)


class _NeXt(nn.Module):
    def __init__(self, c: int, width: int, groups: int) -> None:
        super().__init__()
        self.a = cbr(c, width, 1)
        self.b = cbr(width, width, 3, groups=groups)
        self.c = nn.Sequential(nn.Conv2d(width, c, 1, bias=False), nn.BatchNorm2d(c))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x + self.c(self.b(self.a(x))))


@register_arch("resnext")
def resnext() -> tuple[nn.Module, tuple]:
    """Grouped 3x3 convs (cardinality 4): every group loses the same in-group offsets."""
    model = nn.Sequential(cbr(3, 16), _NeXt(16, 16, 4), _NeXt(16, 16, 4), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(16, 5))
    return model, (torch.randn(2, 3, 8, 8),)


class _Dense(nn.Module):
    def __init__(self, cin: int, growth: int, layers: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            nn.Sequential(nn.BatchNorm2d(cin + i * growth), nn.ReLU(), nn.Conv2d(cin + i * growth, growth, 3, 1, 1))
            for i in range(layers)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = [x]
        for layer in self.layers:
            feats.append(layer(torch.cat(feats, 1)))
        return torch.cat(feats, 1)


@register_arch("densenet")
def densenet() -> tuple[nn.Module, tuple]:
    """Dense concatenation: each layer's channels sit at an offset in every later layer's input."""
    model = nn.Sequential(nn.Conv2d(3, 8, 3, 1, 1), _Dense(8, 4, 3), nn.BatchNorm2d(20), nn.ReLU(),
                          nn.Conv2d(20, 8, 1), nn.AvgPool2d(2), _Dense(8, 4, 2), nn.AdaptiveAvgPool2d(1),
                          nn.Flatten(), nn.Linear(16, 5))
    return model, (torch.randn(2, 3, 8, 8),)


class _SE(nn.Module):
    def __init__(self, c: int, r: int = 4, gate: type = nn.Sigmoid) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(c, max(c // r, 2), 1)
        self.fc2 = nn.Conv2d(max(c // r, 2), c, 1)
        self.gate = gate()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = F.adaptive_avg_pool2d(x, 1)  # (B, C, 1, 1) broadcast over H, W
        return x * self.gate(self.fc2(F.relu(self.fc1(s))))


class _Inverted(nn.Module):
    def __init__(self, cin: int, cout: int, expand: int, stride: int, se: bool, act: type) -> None:
        super().__init__()
        hidden = cin * expand
        self.expand = cbr(cin, hidden, 1, act=act)
        self.dw = cbr(hidden, hidden, 3, stride, groups=hidden, act=act)
        self.se = _SE(hidden, gate=nn.Hardsigmoid) if se else nn.Identity()
        self.project = nn.Sequential(nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout))
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(self.se(self.dw(self.expand(x))))
        return x + y if self.residual else y


@register_arch("mobilenet_v2")
def mobilenet_v2() -> tuple[nn.Module, tuple]:
    """Inverted residuals: depthwise convs (whole groups removed) between 1x1 expand/project, ReLU6."""
    model = nn.Sequential(cbr(3, 8, stride=1, act=nn.ReLU6), _Inverted(8, 8, 3, 1, False, nn.ReLU6),
                          _Inverted(8, 12, 3, 2, False, nn.ReLU6), _Inverted(12, 12, 3, 1, False, nn.ReLU6),
                          cbr(12, 24, 1, act=nn.ReLU6), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.2),
                          nn.Linear(24, 5))
    return model, (torch.randn(2, 3, 8, 8),)


@register_arch("mobilenet_v3")
def mobilenet_v3() -> tuple[nn.Module, tuple]:
    """Hard-swish, squeeze-and-excitation with hard-sigmoid gates broadcast over H x W."""
    model = nn.Sequential(cbr(3, 8, act=nn.Hardswish), _Inverted(8, 8, 2, 1, True, nn.ReLU),
                          _Inverted(8, 12, 3, 2, True, nn.Hardswish), _Inverted(12, 12, 3, 1, True, nn.Hardswish),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(12, 16), nn.Hardswish(), nn.Linear(16, 5))
    return model, (torch.randn(2, 3, 8, 8),)


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    b, c, h, w = x.shape
    x = x.view(b, groups, c // groups, h, w).transpose(1, 2).contiguous()  # (B, C/g, g, H, W)
    return x.view(b, c, h, w)


class _Shuffle(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        half = c // 2
        self.branch = nn.Sequential(cbr(half, half, 1), cbr(half, half, 3, groups=half, act=nn.Identity),
                                    cbr(half, half, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = x.chunk(2, dim=1)
        return channel_shuffle(torch.cat([a, self.branch(b)], 1), 2)


@register_arch("shufflenet")
def shufflenet() -> tuple[nn.Module, tuple]:
    """ShuffleNetV2 units: chunk, concat and channel shuffle (view-transpose-view)."""
    model = nn.Sequential(cbr(3, 16), _Shuffle(16), _Shuffle(16), cbr(16, 24, 1), nn.AdaptiveAvgPool2d(1),
                          nn.Flatten(), nn.Linear(24, 5))
    return model, (torch.randn(2, 3, 8, 8),)


class _Inception(nn.Module):
    def __init__(self, cin: int) -> None:
        super().__init__()
        self.b1 = cbr(cin, 4, 1)
        self.b3 = nn.Sequential(cbr(cin, 4, 1), cbr(4, 6, 3))
        self.b5 = nn.Sequential(cbr(cin, 2, 1), cbr(2, 4, 5))
        self.pool = nn.Sequential(nn.MaxPool2d(3, 1, 1), cbr(cin, 4, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.b1(x), self.b3(x), self.b5(x), self.pool(x)], 1)


@register_arch("inception")
def inception() -> tuple[nn.Module, tuple]:
    """Parallel branches concatenated: each branch's channels at their offset in the consumer."""
    model = nn.Sequential(cbr(3, 8), _Inception(8), _Inception(18), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(18, 5))
    return model, (torch.randn(2, 3, 8, 8),)


class UNet(nn.Module):
    """Encoder-decoder with skip concatenations, a transposed conv and a bilinear upsample."""

    def __init__(self, c: int = 4, classes: int = 2) -> None:
        super().__init__()
        self.enc1 = nn.Sequential(cbr(3, c), cbr(c, c))
        self.enc2 = nn.Sequential(nn.MaxPool2d(2), cbr(c, 2 * c), cbr(2 * c, 2 * c))
        self.mid = nn.Sequential(nn.MaxPool2d(2), cbr(2 * c, 4 * c))
        self.up2 = nn.ConvTranspose2d(4 * c, 2 * c, 2, 2)
        self.dec2 = cbr(4 * c, 2 * c)
        self.dec1 = cbr(3 * c, c)
        self.head = nn.Conv2d(c, classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e1 = self.enc1(x)
        e2 = self.enc2(e1)
        d2 = self.dec2(torch.cat([self.up2(self.mid(e2)), e2], 1))
        d1 = F.interpolate(d2, scale_factor=2.0, mode="bilinear", align_corners=False)
        return self.head(self.dec1(torch.cat([d1, e1], 1)))


@register_arch("unet")
def unet() -> tuple[nn.Module, tuple]:
    return UNet(), (torch.randn(2, 3, 8, 8),)


@register_arch("depthwise_separable")
def depthwise_separable() -> tuple[nn.Module, tuple]:
    """Depthwise convs with a channel multiplier of 2 (each input channel owns two outputs)."""
    model = nn.Sequential(cbr(3, 8), nn.Conv2d(8, 16, 3, 1, 1, groups=8), nn.BatchNorm2d(16), nn.ReLU(),
                          cbr(16, 12, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(12, 5))
    return model, (torch.randn(2, 3, 8, 8),)


class GroupNormNet(nn.Module):
    """GroupNorm (whole groups removed), PReLU per channel, InstanceNorm, SiLU."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(3, 8, 3, 1, 1)
        self.gn = nn.GroupNorm(4, 8)
        self.act = nn.PReLU(8)
        self.c2 = nn.Conv2d(8, 12, 3, 1, 1)
        self.inorm = nn.InstanceNorm2d(12, affine=True)
        self.fc = nn.Linear(12, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.gn(self.c1(x)))
        x = F.silu(self.inorm(self.c2(x)))
        return self.fc(x.amax((2, 3)))


@register_arch("groupnorm_prelu")
def groupnorm_prelu() -> tuple[nn.Module, tuple]:
    return GroupNormNet(), (torch.randn(2, 3, 8, 8),)


class AudioNet(nn.Module):
    """1-D conv audio classifier on (B, 1, samples)."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv1d(1, 8, 9, 4, 4), nn.BatchNorm1d(8), nn.ReLU(), nn.MaxPool1d(2),
            nn.Conv1d(8, 16, 5, 1, 2), nn.BatchNorm1d(16), nn.ReLU(), nn.Conv1d(16, 16, 3, 1, 1, groups=16),
            nn.BatchNorm1d(16), nn.ReLU(), nn.AdaptiveAvgPool1d(1),
        )
        self.fc = nn.Linear(16, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x).squeeze(-1))


@register_arch("audio_conv1d")
def audio_conv1d() -> tuple[nn.Module, tuple]:
    return AudioNet(), (torch.randn(2, 1, 64),)


@register_arch("conv3d_video")
def conv3d_video() -> tuple[nn.Module, tuple]:
    model = nn.Sequential(nn.Conv3d(3, 6, 3, 1, 1), nn.BatchNorm3d(6), nn.ReLU(), nn.Conv3d(6, 8, 3, 2, 1),
                          nn.ReLU(), nn.AdaptiveAvgPool3d(1), nn.Flatten(), nn.Linear(8, 4))
    return model, (torch.randn(1, 3, 4, 6, 6),)


class SubPixelNet(nn.Module):
    """Super-resolution style: conv -> pixel_shuffle (x2 up) -> conv -> pixel_unshuffle (x2 down) -> conv."""

    def __init__(self) -> None:
        super().__init__()
        self.expand = nn.Conv2d(3, 16, 3, 1, 1)
        self.mix = nn.Conv2d(4, 6, 3, 1, 1)
        self.down = nn.Conv2d(24, 8, 1)
        self.fc = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.pixel_shuffle(torch.relu(self.expand(x)), 2)  # (B, 4, 2H, 2W)
        h = F.pixel_unshuffle(torch.relu(self.mix(h)), 2)  # (B, 24, H, W)
        return self.fc(self.down(h).mean((2, 3)))


@register_arch("subpixel")
def subpixel() -> tuple[nn.Module, tuple]:
    return SubPixelNet(), (torch.randn(2, 3, 6, 6),)


class GroupedDecoder(nn.Module):
    """Decoder upsampling with a grouped ConvTranspose (4 groups) and a depthwise one (one input per group)."""

    def __init__(self) -> None:
        super().__init__()
        self.enc = nn.Conv2d(3, 16, 3, 2, 1)
        self.up = nn.ConvTranspose2d(16, 8, 2, 2, groups=4)
        self.dw_up = nn.ConvTranspose2d(8, 16, 3, 1, 1, groups=8)
        self.head = nn.Conv2d(16, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.up(torch.relu(self.enc(x))))
        return self.head(torch.relu(self.dw_up(h))).mean((2, 3))


@register_arch("grouped_conv_transpose")
def grouped_conv_transpose() -> tuple[nn.Module, tuple]:
    return GroupedDecoder(), (torch.randn(2, 3, 8, 8),)
