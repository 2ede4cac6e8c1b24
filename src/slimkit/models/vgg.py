"""VGG-11/16 with BatchNorm, CIFAR style (Simonyan & Zisserman 2015; the variant of Liu et al. 2017).

CIFAR style: 3x3 convs with BatchNorm, five max-pools, global average pooling and a single linear classifier.
The pools use ``ceil_mode`` so 28x28 inputs shrink 28 -> 14 -> 7 -> 4 -> 2 -> 1 instead of vanishing.
"""

from __future__ import annotations

import torch
from torch import nn

from slimkit.models._registry import register_model
from slimkit.models._scaling import check_width, init_weights, scale_channels

# channel counts; "M" is a 2x2 max-pool
CONFIGS: dict[str, list[int | str]] = {
    "vgg11": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
}


class VGG(nn.Module):
    """``features`` (conv-bn-relu and pools) -> global average pool -> ``classifier``."""

    def __init__(self, config: list[int | str], in_channels: int, num_classes: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = in_channels
        for item in config:
            if item == "M":
                layers.append(nn.MaxPool2d(2, ceil_mode=True))  # (B, C, ceil(H/2), ceil(W/2))
            else:
                assert isinstance(item, int)
                layers += [nn.Conv2d(channels, item, 3, padding=1, bias=False), nn.BatchNorm2d(item), nn.ReLU(inplace=True)]
                channels = item
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.classifier = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)  # (B, 512, 1, 1)
        x = self.flatten(self.pool(x))  # (B, 512)
        return self.classifier(x)  # (B, classes)


def _vgg(name: str, in_channels: int, num_classes: int, width: float) -> VGG:
    width = check_width(width)
    config = [c if c == "M" else scale_channels(int(c), width) for c in CONFIGS[name]]
    return init_weights(VGG(config, in_channels, num_classes))


@register_model("vgg11_bn")
def vgg11_bn(
    *, in_channels: int = 3, num_classes: int = 10, width: float = 1.0, image_size: tuple[int, int] | None = None
) -> VGG:
    """VGG-11 with BatchNorm, CIFAR style. ``image_size`` is unused (adaptive pooling)."""
    return _vgg("vgg11", in_channels, num_classes, width)


@register_model("vgg16_bn")
def vgg16_bn(
    *, in_channels: int = 3, num_classes: int = 10, width: float = 1.0, image_size: tuple[int, int] | None = None
) -> VGG:
    """VGG-16 with BatchNorm, CIFAR style. ``image_size`` is unused (adaptive pooling)."""
    return _vgg("vgg16", in_channels, num_classes, width)
