"""LeNet-300-100 and LeNet-5 (LeCun et al. 1998), as the pruning literature uses them (Han et al. 2015).

LeNet-5 here is the Caffe variant (20 and 50 filters, 500 hidden units, 431K params on 28x28), the one Deep
Compression and most pruning papers report on.
"""

from __future__ import annotations

import torch
from torch import nn

from slimkit.models._registry import register_model
from slimkit.models._scaling import check_width, init_weights, scale_channels


class LeNet300(nn.Module):
    """A 3-layer MLP on flattened pixels: in -> 300 -> 100 -> classes."""

    def __init__(self, in_features: int, num_classes: int, hidden: tuple[int, int] = (300, 100)) -> None:
        super().__init__()
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(in_features, hidden[0])
        self.relu1 = nn.ReLU(inplace=True)
        self.fc2 = nn.Linear(hidden[0], hidden[1])
        self.relu2 = nn.ReLU(inplace=True)
        self.fc3 = nn.Linear(hidden[1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.flatten(x)  # (B, C*H*W)
        x = self.relu1(self.fc1(x))  # (B, 300)
        x = self.relu2(self.fc2(x))  # (B, 100)
        return self.fc3(x)  # (B, classes)


class LeNet5(nn.Module):
    """conv5(20) -> pool -> conv5(50) -> pool -> fc(500) -> fc(classes)."""

    def __init__(self, in_channels: int, num_classes: int, channels: tuple[int, int, int] = (20, 50, 500)) -> None:
        super().__init__()
        c1, c2, hidden = channels
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, c1, 5),  # (B, 20, 24, 24) on 28x28
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),  # (B, 20, 12, 12)
            nn.Conv2d(c1, c2, 5),  # (B, 50, 8, 8)
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),  # (B, 50, 4, 4)
        )
        self.pool = nn.AdaptiveAvgPool2d(4)  # identity on 28x28; 5x5 -> 4x4 on 32x32
        self.flatten = nn.Flatten()
        self.classifier = nn.Sequential(
            nn.Linear(c2 * 16, hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.features(x))  # (B, 50, 4, 4)
        return self.classifier(self.flatten(x))  # (B, classes)


@register_model("lenet300")
def lenet300(
    *,
    in_channels: int = 1,
    num_classes: int = 10,
    width: float = 1.0,
    image_size: tuple[int, int] = (28, 28),
    input_size: int | None = None,
) -> LeNet300:
    """LeNet-300-100 (266,610 params on 28x28x1, 10 classes).

    Args:
        in_channels: input channels.
        num_classes: output classes.
        width: multiplier on the two hidden layers (300, 100).
        image_size: (H, W) of the input; the first layer sees ``in_channels * H * W`` features.
        input_size: the number of input features, overriding ``in_channels * H * W``.
    """
    width = check_width(width)
    features = input_size if input_size is not None else in_channels * image_size[0] * image_size[1]
    hidden = (scale_channels(300, width), scale_channels(100, width))
    return init_weights(LeNet300(features, num_classes, hidden))


@register_model("lenet5")
def lenet5(
    *,
    in_channels: int = 1,
    num_classes: int = 10,
    width: float = 1.0,
    image_size: tuple[int, int] | None = None,
) -> LeNet5:
    """LeNet-5, Caffe variant (431,080 params on 28x28x1, 10 classes). ``image_size`` is unused (adaptive pool)."""
    width = check_width(width)
    channels = (scale_channels(20, width), scale_channels(50, width), scale_channels(500, width))
    return init_weights(LeNet5(in_channels, num_classes, channels))
