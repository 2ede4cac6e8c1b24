"""The one config object of the training engine: what to optimize, how long, with what schedule."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Optimizer = Literal["sgd", "adam", "adamw"]
Schedule = Literal["cosine", "step", "constant"]
Amp = Literal["off", "bf16", "fp16"]
Distributed = Literal["auto", "off"]

# fields that may change between an interrupted run and its resumption without changing the result
RESUME_FREE_FIELDS = ("progress", "device")


@dataclass(frozen=True)
class TrainConfig:
    """Options of :func:`slimkit.train.fit`.

    Attributes:
        epochs: passes over the training set.
        batch_size: samples per step (per process under DDP).
        optimizer: ``sgd`` (with ``momentum``/``nesterov``), ``adam`` or ``adamw``.
        lr: peak learning rate (reached after warm-up).
        momentum: SGD momentum.
        nesterov: Nesterov momentum for SGD.
        weight_decay: L2 penalty (decoupled for ``adamw``).
        schedule: per-step learning-rate curve after warm-up: ``cosine`` (to 0 at the end), ``step``
            (times ``gamma`` every ``step_size`` epochs) or ``constant``.
        step_size: epochs between decays of the ``step`` schedule.
        gamma: decay factor of the ``step`` schedule.
        warmup_epochs: linear warm-up from ``lr / (warm-up steps)`` to ``lr`` (may be fractional).
        seed: seeds torch/numpy/random at the start and the data order of every epoch.
        label_smoothing: cross-entropy label smoothing in [0, 1).
        max_steps_per_epoch: cut every epoch short after this many steps (quick runs); None = full epochs.
        distill_alpha: weight of the soft-target loss when a teacher is given (0 = plain cross-entropy).
        distill_temperature: softmax temperature ``T`` of the soft targets.
        grad_clip: clip the global gradient norm to this value; None = no clipping.
        device: ``auto`` (CUDA when available), ``cpu``, ``cuda`` or ``cuda:N``.
        progress: show a progress bar on a terminal and print one line per epoch.
        amp: mixed precision: ``off``, ``bf16`` (autocast) or ``fp16`` (autocast + loss scaling, CUDA only).
        distributed: ``auto`` trains with DDP when torch.distributed is initialized or torchrun's environment
            says ``WORLD_SIZE > 1``; ``off`` never does.
    """

    epochs: int = 10
    batch_size: int = 128
    optimizer: Optimizer = "sgd"
    lr: float = 0.05
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 5e-4
    schedule: Schedule = "cosine"
    step_size: int = 30
    gamma: float = 0.1
    warmup_epochs: float = 0.0
    seed: int = 0
    label_smoothing: float = 0.0
    max_steps_per_epoch: int | None = None
    distill_alpha: float = 0.0
    distill_temperature: float = 4.0
    grad_clip: float | None = None
    device: str = "auto"
    progress: bool = True
    amp: Amp = "off"
    distributed: Distributed = "auto"

    def __post_init__(self) -> None:
        if self.epochs < 0:
            raise ValueError(f"epochs must be >= 0, got {self.epochs}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.optimizer not in ("sgd", "adam", "adamw"):
            raise ValueError(f"optimizer must be one of sgd, adam, adamw; got {self.optimizer!r}")
        if self.schedule not in ("cosine", "step", "constant"):
            raise ValueError(f"schedule must be one of cosine, step, constant; got {self.schedule!r}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if not 0.0 <= self.momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {self.momentum}")
        if self.nesterov and (self.optimizer != "sgd" or self.momentum == 0):
            raise ValueError("nesterov needs optimizer 'sgd' with momentum > 0")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay}")
        if self.step_size < 1:
            raise ValueError(f"step_size must be >= 1 epoch, got {self.step_size}")
        if not 0.0 < self.gamma <= 1.0:
            raise ValueError(f"gamma must be in (0, 1], got {self.gamma}")
        if self.warmup_epochs < 0:
            raise ValueError(f"warmup_epochs must be >= 0, got {self.warmup_epochs}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if self.max_steps_per_epoch is not None and self.max_steps_per_epoch < 1:
            raise ValueError(f"max_steps_per_epoch must be >= 1 or None, got {self.max_steps_per_epoch}")
        if not 0.0 <= self.distill_alpha <= 1.0:
            raise ValueError(f"distill_alpha must be in [0, 1], got {self.distill_alpha}")
        if not self.distill_temperature > 0:
            raise ValueError(f"distill_temperature must be > 0, got {self.distill_temperature}")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise ValueError(f"grad_clip must be > 0 or None, got {self.grad_clip}")
        if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", self.device):
            raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {self.device!r}")
        if self.amp not in ("off", "bf16", "fp16"):
            raise ValueError(f"amp must be one of off, bf16, fp16; got {self.amp!r}")
        if self.distributed not in ("auto", "off"):
            raise ValueError(f"distributed must be 'auto' or 'off', got {self.distributed!r}")
