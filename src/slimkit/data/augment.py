"""Batch-level training augmentation: random crops with zero padding and horizontal flips, vectorized.

The standard CIFAR recipe (He et al. 2016: pad 4, random 32x32 crop, random flip) applied to a whole uint8 batch
with one gather, so augmentation costs about as much as the indexing that builds the batch. Randomness comes
from torch's global generator, which the training engine seeds.
"""

from __future__ import annotations

from typing import Literal

import torch

Augment = Literal["none", "flip", "crop", "crop_flip"]
AUGMENTS: tuple[str, ...] = ("none", "flip", "crop", "crop_flip")


def random_crop(images: torch.Tensor, padding: int) -> torch.Tensor:
    """Each image of ``(B, C, H, W)`` shifted by a random offset in [-padding, padding] (zeros fill the border)."""
    if padding <= 0:
        return images
    b, c, h, w = images.shape
    padded_w = w + 2 * padding
    padded = images.new_zeros(b, c, h + 2 * padding, padded_w)  # (B, C, H + 2p, W + 2p)
    padded[:, :, padding : padding + h, padding : padding + w] = images
    top = torch.randint(0, 2 * padding + 1, (b, 1, 1))
    left = torch.randint(0, 2 * padding + 1, (b, 1, 1))
    rows = top + torch.arange(h).view(1, h, 1)  # (B, H, 1)
    cols = left + torch.arange(w).view(1, 1, w)  # (B, 1, W)
    flat = (rows * padded_w + cols).view(b, 1, h * w).expand(b, c, h * w)  # (B, C, H*W) source positions
    return padded.view(b, c, -1).gather(2, flat).view(b, c, h, w)


def random_flip(images: torch.Tensor) -> torch.Tensor:
    """Each image of ``(B, C, H, W)`` mirrored left-right with probability 1/2."""
    flip = torch.rand(images.shape[0]) < 0.5
    return torch.where(flip.view(-1, 1, 1, 1), images.flip(3), images)


def augment_batch(images: torch.Tensor, augment: str, padding: int) -> torch.Tensor:
    """Apply ``augment`` (one of :data:`AUGMENTS`) to a batch of images."""
    if augment in ("crop", "crop_flip"):
        images = random_crop(images, padding)
    if augment in ("flip", "crop_flip"):
        images = random_flip(images)
    return images
