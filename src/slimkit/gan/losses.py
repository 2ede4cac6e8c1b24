"""The two data terms of GAN Slimming: the adversarial loss and the distillation distance to the teacher."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

FeatureFn = Callable[[torch.Tensor], "torch.Tensor | Sequence[torch.Tensor]"]


def d_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Discriminator: real -> 1, fake -> 0 (binary cross entropy on logits of any shape, e.g. PatchGAN maps)."""
    return 0.5 * (F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
                  + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits)))


def g_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """Generator, non-saturating: ``-log D(G(z))``."""
    return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))


def _as_list(features: torch.Tensor | Sequence[torch.Tensor]) -> list[torch.Tensor]:
    return [features] if isinstance(features, torch.Tensor) else list(features)


def distill_loss(student: torch.Tensor, teacher: torch.Tensor, feature_fn: FeatureFn | None = None) -> torch.Tensor:
    """Pixel L1 between student and teacher images, plus the mean squared distance of their features.

    ``feature_fn(images)`` returns one feature tensor or a sequence of them (e.g. a frozen classifier's
    penultimate features, :func:`slimkit.gan.fid.classifier_features`); the teacher's side carries no gradient.
    """
    loss = F.l1_loss(student, teacher)
    if feature_fn is not None:
        with torch.no_grad():
            target = _as_list(feature_fn(teacher))
        mine = _as_list(feature_fn(student))
        loss = loss + sum(F.mse_loss(a, b) for a, b in zip(mine, target)) / max(len(mine), 1)
    return loss
