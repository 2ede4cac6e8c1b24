"""Optimizers and per-step learning-rate schedules built from a :class:`TrainConfig`."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from slimkit.train.config import TrainConfig


def build_optimizer(params: Sequence[nn.Parameter], config: TrainConfig) -> torch.optim.Optimizer:
    """The optimizer of ``config`` over ``params`` (one parameter group)."""
    params = list(params)
    if config.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=config.lr, momentum=config.momentum, nesterov=config.nesterov, weight_decay=config.weight_decay
        )
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)


def lr_factor(step: int, *, config: TrainConfig, steps_per_epoch: int) -> float:
    """Multiplier of ``config.lr`` used for optimizer step ``step`` (0-based), warm-up included.

    Warm-up ramps linearly over ``warmup_epochs`` epochs; ``cosine`` then decays to 0 at the last step, ``step``
    multiplies by ``gamma`` every ``step_size`` epochs (counted from the start), ``constant`` keeps 1.
    """
    total = max(1, config.epochs * steps_per_epoch)
    warmup = int(round(config.warmup_epochs * steps_per_epoch))
    if step < warmup:
        return (step + 1) / warmup
    if config.schedule == "constant":
        return 1.0
    if config.schedule == "step":
        return config.gamma ** (step // steps_per_epoch // config.step_size)
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def build_scheduler(
    optimizer: torch.optim.Optimizer, config: TrainConfig, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """A per-step ``LambdaLR`` following :func:`lr_factor` (its state is plain numbers, safe to checkpoint)."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, config=config, steps_per_epoch=steps_per_epoch)
    )
