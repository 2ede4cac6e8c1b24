"""A small synthetic image set with learnable, class-dependent patterns, for tests and smoke runs.

Each class has a smooth random prototype image (low-resolution noise upsampled); a sample is its class prototype
plus Gaussian pixel noise and a random brightness change. A linear classifier separates the classes well, so a
test can show that training works in seconds without any files.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from slimkit.core.errors import ConfigError
from slimkit.data._registry import RawData, register_dataset


def _samples(prototypes: torch.Tensor, count: int, noise: float, generator: torch.Generator) -> tuple:
    num_classes = prototypes.shape[0]
    labels = torch.arange(count) % num_classes  # balanced classes
    labels = labels[torch.randperm(count, generator=generator)]
    images = prototypes[labels]  # (N, C, H, W) in [0, 1]
    brightness = 0.8 + 0.4 * torch.rand(count, 1, 1, 1, generator=generator)
    images = images * brightness + noise * torch.randn(images.shape, generator=generator)
    images = (images.clamp(0, 1) * 255).round().to(torch.uint8)
    return images, labels


@register_dataset("synthetic")
def synthetic(
    *,
    root: object = None,
    num_samples: int = 1000,
    num_test: int | None = None,
    in_channels: int = 1,
    num_classes: int = 10,
    image_size: int | tuple[int, int] = (28, 28),
    noise: float = 0.3,
    data_seed: int = 0,
) -> RawData:
    """Synthetic class patterns.

    Args:
        root: unused (no files).
        num_samples: training samples (before the validation split).
        num_test: test samples (default ``num_samples // 5``).
        in_channels: image channels.
        num_classes: classes.
        image_size: ``H`` or ``(H, W)``.
        noise: std of the pixel noise on the [0, 1] scale (0 gives exactly the prototypes, up to brightness).
        data_seed: seeds the prototypes and samples (the split is seeded separately by ``load_dataset``).
    """
    size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    num_test = max(1, num_samples // 5) if num_test is None else num_test
    if num_samples < 1 or num_test < 1 or in_channels < 1 or num_classes < 2 or min(size) < 1 or noise < 0:
        raise ConfigError(
            "synthetic: need num_samples >= 1, num_test >= 1, in_channels >= 1, num_classes >= 2, a positive "
            f"image_size and noise >= 0; got {num_samples}, {num_test}, {in_channels}, {num_classes}, {size}, {noise}"
        )
    generator = torch.Generator().manual_seed(data_seed)
    coarse = torch.rand(num_classes, in_channels, 4, 4, generator=generator)
    prototypes = F.interpolate(coarse, size=size, mode="bilinear", align_corners=False)  # (K, C, H, W)
    train_x, train_y = _samples(prototypes, num_samples, noise, generator)
    test_x, test_y = _samples(prototypes, num_test, noise, generator)
    return RawData(train_x, train_y, test_x, test_y, tuple(f"class_{k}" for k in range(num_classes)))
