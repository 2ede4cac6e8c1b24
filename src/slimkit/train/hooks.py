"""Hook points of the training loop, where compression methods plug in without a loop of their own.

One step of :func:`slimkit.train.fit` runs, in order::

    outputs = model(inputs); teacher_outputs = teacher(inputs)        # teacher under no_grad, eval mode
    loss = task/distillation loss + sum(hook.extra_loss(state, outputs, targets))
    loss.backward()                     # under DDP: gradients are averaged across ranks here
    hook.after_backward(state)          # edit gradients: slimming subgradient, gradient masks
    clip gradients; optimizer.step(); scheduler.step()
    hook.after_step(state)              # edit weights: re-apply pruning masks, projections

and around the loop: ``on_train_start`` (after the optimizer exists, before a checkpoint is restored),
``on_epoch_end`` (after validation, before the epoch's checkpoint), ``on_train_end``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from slimkit.train.config import TrainConfig


@dataclass
class TrainState:
    """What hooks see and may change. Updated in place as training runs.

    Attributes:
        model: the module being trained, unwrapped (never the DDP wrapper), on ``device``.
        optimizer: the torch optimizer; its per-parameter state is ``optimizer.state[param]`` (slice it
            together with a parameter when channels are removed mid-training).
        scheduler: the learning-rate scheduler (stepped once per optimizer step).
        config: the :class:`TrainConfig` of this run.
        device: where the model and batches live.
        epoch: index of the current epoch (0-based); after an epoch, the number of epochs finished is
            ``epoch + 1``.
        step: optimizer steps taken so far in the whole run (across epochs, resumes included).
        steps_per_epoch: steps each epoch takes.
        teacher: the distillation teacher (eval mode, no grad) or None.
        inputs / targets: the current batch, on ``device``.
        outputs: the student's outputs on the current batch (with grad during the step).
        teacher_outputs: the teacher's outputs on the current batch (None without a teacher).
        loss: the loss of the current step (set after it is computed, before backward).
        history: per-epoch metrics finished so far.
        rank / world_size: this process' place under DDP (0 / 1 otherwise).
        extras: free space for hooks to share data (e.g. captured intermediate features).
    """

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    config: TrainConfig
    device: torch.device
    epoch: int = 0
    step: int = 0
    steps_per_epoch: int = 0
    teacher: nn.Module | None = None
    inputs: Any = None
    targets: torch.Tensor | None = None
    outputs: Any = None
    teacher_outputs: Any = None
    loss: torch.Tensor | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    rank: int = 0
    world_size: int = 1
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def is_main(self) -> bool:
        """True on the process that writes files and prints (rank 0)."""
        return self.rank == 0


class Hook:
    """Base class of training hooks; every method is an optional no-op.

    A hook that keeps state across epochs (a sparsity schedule, masks) should return it from ``state_dict`` so an
    interrupted run resumes exactly; it must hold tensors and plain Python values only.

    Example:
        >>> class L1OnBatchNormScales(Hook):          # network slimming's sparsity term
        ...     def __init__(self, strength): self.strength = strength
        ...     def extra_loss(self, state, outputs, targets):
        ...         scales = [m.weight for m in state.model.modules() if isinstance(m, nn.BatchNorm2d)]
        ...         return self.strength * sum(s.abs().sum() for s in scales)
    """

    def trainable_parameters(self, state: TrainState) -> Iterable[nn.Parameter]:
        """Extra parameters the hook trains with the model (e.g. a FitNets regressor), already on ``state.device``.

        Called once, before the optimizer is built (``state.optimizer`` is None then). Their gradients are
        averaged across DDP ranks and they are saved in checkpoints.
        """
        return ()

    def on_train_start(self, state: TrainState) -> None:
        """Called once after the optimizer exists and before a checkpoint is restored."""

    def extra_loss(self, state: TrainState, outputs: Any, targets: torch.Tensor) -> torch.Tensor | None:
        """A term added to the loss of this step (e.g. L1 on BN scales, a feature-hint loss), or None."""
        return None

    def after_backward(self, state: TrainState) -> None:
        """Edit gradients in place (subgradients, gradient masks) before clipping and the optimizer step."""

    def after_step(self, state: TrainState) -> None:
        """Edit weights in place after the optimizer step (e.g. re-apply pruning masks)."""

    def on_epoch_end(self, state: TrainState) -> None:
        """Called after validation of each epoch and before its checkpoint (schedules, soft pruning)."""

    def on_train_end(self, state: TrainState) -> None:
        """Called once when training finished (not when it was interrupted)."""

    def state_dict(self) -> dict[str, Any]:
        """State to checkpoint (tensors and plain values only)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
