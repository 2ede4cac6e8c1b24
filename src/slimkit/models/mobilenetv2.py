"""MobileNetV2 (Sandler et al. 2018): inverted residual blocks, CIFAR and ImageNet style.

The width multiplier rounds every channel count to a multiple of 8 (the paper's rule) and, as in the paper, never
shrinks the final 1280-channel layer below 1280. CIFAR style (as in the CIFAR pruning literature) keeps the stem
and the second stage at stride 1, so a 32x32 input reaches the classifier at 4x4.
"""

from __future__ import annotations

import torch
from torch import nn

from slimkit.models._registry import register_model
from slimkit.models._scaling import check_width, init_weights, make_divisible

# (expansion t, output channels c, repeats n, first stride s), the paper's Table 2
IMAGENET_CONFIG: list[tuple[int, int, int, int]] = [
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
]
CIFAR_CONFIG = [(t, c, n, 1 if i == 1 else s) for i, (t, c, n, s) in enumerate(IMAGENET_CONFIG)]


def conv_bn_relu6(in_channels: int, out_channels: int, kernel: int, stride: int = 1, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel, stride, kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU6(inplace=True),
    )


class InvertedResidual(nn.Module):
    """1x1 expand -> 3x3 depthwise (stride) -> 1x1 linear projection; residual when the shape is kept."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, expansion: int) -> None:
        super().__init__()
        hidden = in_channels * expansion
        self.use_residual = stride == 1 and in_channels == out_channels
        layers: list[nn.Module] = []
        if expansion != 1:
            layers.append(conv_bn_relu6(in_channels, hidden, 1))  # (B, tC, H, W)
        layers += [
            conv_bn_relu6(hidden, hidden, 3, stride, groups=hidden),  # (B, tC, H/s, W/s) depthwise
            nn.Conv2d(hidden, out_channels, 1, bias=False),  # (B, C', H/s, W/s)
            nn.BatchNorm2d(out_channels),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv(x)
        if self.use_residual:
            out = out + x
        return out


class MobileNetV2(nn.Module):
    """stem -> inverted residual stages -> 1x1 conv to 1280 -> global average pool -> dropout -> fc."""

    def __init__(
        self,
        config: list[tuple[int, int, int, int]],
        in_channels: int,
        num_classes: int,
        width: float,
        stem_stride: int,
        dropout: float,
    ) -> None:
        super().__init__()
        channels = make_divisible(32 * width)
        last_channels = make_divisible(1280 * max(1.0, width))
        layers: list[nn.Module] = [conv_bn_relu6(in_channels, channels, 3, stem_stride)]
        for t, c, n, s in config:
            out_channels = make_divisible(c * width)
            for i in range(n):
                layers.append(InvertedResidual(channels, out_channels, s if i == 0 else 1, t))
                channels = out_channels
        layers.append(conv_bn_relu6(channels, last_channels, 1))
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(last_channels, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)  # (B, 1280, 4, 4) CIFAR style on 32x32, (B, 1280, 7, 7) ImageNet style on 224x224
        x = self.flatten(self.pool(x))  # (B, 1280)
        return self.classifier(x)  # (B, classes)


def _init(model: MobileNetV2) -> MobileNetV2:
    init_weights(model)
    fc = model.classifier[1]
    nn.init.normal_(fc.weight, 0, 0.01)  # the paper's classifier init; Kaiming elsewhere
    return model


@register_model("mobilenetv2")
def mobilenetv2(
    *,
    in_channels: int = 3,
    num_classes: int = 10,
    width: float = 1.0,
    dropout: float = 0.0,
    image_size: tuple[int, int] | None = None,
) -> MobileNetV2:
    """MobileNetV2, CIFAR style (stride-1 stem and second stage). ``image_size`` is unused."""
    width = check_width(width)
    return _init(MobileNetV2(CIFAR_CONFIG, in_channels, num_classes, width, stem_stride=1, dropout=dropout))


@register_model("mobilenetv2_imagenet")
def mobilenetv2_imagenet(
    *,
    in_channels: int = 3,
    num_classes: int = 10,
    width: float = 1.0,
    dropout: float = 0.2,
    image_size: tuple[int, int] | None = None,
) -> MobileNetV2:
    """MobileNetV2, ImageNet style (3,504,872 params with 3 channels and 1000 classes). ``image_size`` is unused."""
    width = check_width(width)
    return _init(MobileNetV2(IMAGENET_CONFIG, in_channels, num_classes, width, stem_stride=2, dropout=dropout))
