"""``fit``: the training loop every method reuses through hooks, with distillation, DDP and exact resume.

A run is a pure function of (model, data, config, hooks): data order comes from ``(seed, epoch)``, every RNG is
seeded at the start and saved in the end-of-epoch checkpoint, so a run interrupted at any point and resumed from
``checkpoint_dir`` ends with the same weights, bit for bit, as one that never stopped.
"""

from __future__ import annotations

import contextlib
import itertools
import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from slimkit.core.config import config_to_dict, parse_config
from slimkit.core.errors import CheckpointError, ConfigError, DataError
from slimkit.train import distributed as ddp
from slimkit.train.checkpoint import (
    load_checkpoint,
    load_optimizer_state_by_name,
    optimizer_state_by_name,
    parameter_names,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from slimkit.train.config import RESUME_FREE_FIELDS, TrainConfig
from slimkit.train.evaluation import (
    as_loader,
    autocast,
    classification_sums,
    forward,
    to_device,
    training_mode,
)
from slimkit.train.hooks import Hook, TrainState
from slimkit.train.optim import build_optimizer, build_scheduler
from slimkit.train.progress import EpochProgress, log_epoch
from slimkit.train.soft_targets import distillation_loss

POSTFIX_EVERY = 10  # steps between progress-bar metric refreshes (each costs a device sync)


@dataclass
class TrainResult:
    """What :func:`fit` returns.

    Attributes:
        history: one dict per finished epoch (resumed ones included): ``epoch`` (1-based), ``loss``,
            ``train_accuracy``, ``val_accuracy``, ``val_loss`` (None without validation data), ``lr`` (at the
            epoch's start), ``images_per_s`` (training throughput, all ranks), ``seconds`` (epoch wall time).
        best_val_accuracy: the highest ``val_accuracy`` in ``history`` (None without validation data).
        final: the last entry of ``history`` ({} when no epoch ran).
        resumed_from_epoch: epochs taken from the checkpoint (0 for a fresh run).
        seconds: wall time of this call.
    """

    history: list[dict[str, Any]]
    best_val_accuracy: float | None
    final: dict[str, Any]
    resumed_from_epoch: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def seed_everything(seed: int) -> None:
    """Seed torch (CPU and CUDA), numpy and python's ``random``."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _check_resume_config(saved: Mapping[str, Any], config: TrainConfig, where: Path) -> None:
    current = config_to_dict(config)
    for name, value in current.items():
        if name in RESUME_FREE_FIELDS:
            continue
        if saved.get(name) != value:
            raise CheckpointError(
                f"{where}: checkpoint was written with {name}={saved.get(name)!r}, this run has {name}={value!r}; "
                "use another checkpoint_dir or resume=False to start over"
            )


def _step_loss(state: TrainState, hooks: Sequence[Hook], outputs: Any, targets: torch.Tensor) -> torch.Tensor:
    config = state.config
    if config.distill_alpha > 0:
        loss = distillation_loss(
            outputs, state.teacher_outputs, targets, alpha=config.distill_alpha,
            temperature=config.distill_temperature, label_smoothing=config.label_smoothing,
        )
    else:
        loss = F.cross_entropy(outputs, targets, label_smoothing=config.label_smoothing)
    for hook in hooks:
        extra = hook.extra_loss(state, outputs, targets)
        if extra is not None:
            loss = loss + extra
    return loss


def _payload(
    state: TrainState,
    epochs_done: int,
    hooks: Sequence[Hook],
    hook_params: Mapping[str, nn.Parameter],
    names: Mapping[int, str],
    scaler: torch.amp.GradScaler | None,
) -> dict[str, Any]:
    """Everything a resumed run needs, as tensors and plain values."""
    return {
        "epoch": epochs_done,
        "step": state.step,
        "config": config_to_dict(state.config),
        "model": {k: v.detach().cpu() for k, v in state.model.state_dict().items()},
        "optimizer": optimizer_state_by_name(state.optimizer, names),
        "scheduler": state.scheduler.state_dict(),
        "scaler": scaler.state_dict() if scaler is not None else None,
        "hooks": [hook.state_dict() for hook in hooks],
        "hook_params": {name: p.detach().cpu() for name, p in hook_params.items()},
        "history": state.history,
        "rng": rng_state(),
    }


def _restore(
    checkpoint: Mapping[str, Any],
    where: Path,
    state: TrainState,
    hooks: Sequence[Hook],
    hook_params: Mapping[str, nn.Parameter],
    names: Mapping[int, str],
    scaler: torch.amp.GradScaler | None,
) -> None:
    """Put model, optimizer, scheduler, scaler, hooks and RNGs back as :func:`_payload` saved them."""
    _check_resume_config(checkpoint["config"], state.config, where)
    try:
        state.model.load_state_dict(checkpoint["model"])
    except RuntimeError as err:
        raise CheckpointError(f"{where}: model state does not match {type(state.model).__name__}: {err}") from None
    with torch.no_grad():
        for name, p in hook_params.items():
            p.copy_(checkpoint["hook_params"][name])
    load_optimizer_state_by_name(state.optimizer, checkpoint["optimizer"], names)
    state.scheduler.load_state_dict(checkpoint["scheduler"])
    if scaler is not None and checkpoint.get("scaler"):
        scaler.load_state_dict(checkpoint["scaler"])
    for hook, hook_state in zip(hooks, checkpoint["hooks"]):
        hook.load_state_dict(hook_state)
    state.step = int(checkpoint["step"])
    set_rng_state(checkpoint["rng"])


def fit(
    model: nn.Module,
    train_data: Any,
    config: TrainConfig | Mapping[str, Any],
    *,
    val_data: Any = None,
    teacher: nn.Module | None = None,
    hooks: Sequence[Hook] = (),
    checkpoint_dir: str | Path | None = None,
    resume: bool = True,
) -> TrainResult:
    """Train ``model`` in place on ``train_data``, optionally distilling from ``teacher``.

    Args:
        model: a classifier returning ``(N, C)`` logits; trained in place and left on the training device.
        train_data: a dataset of ``(x, y)`` (batched with :func:`slimkit.data.make_loader`) or such a loader.
        config: a :class:`TrainConfig` or a mapping of its fields.
        val_data: evaluated after every epoch (``val_accuracy``, ``val_loss``).
        teacher: distillation teacher; run (eval mode, no grad) on every batch whenever given, so hooks can read
            its outputs and features; its soft targets enter the loss when ``config.distill_alpha > 0``.
        hooks: :class:`Hook` objects called at the loop's hook points, in order.
        checkpoint_dir: where ``last.pt`` is written atomically after every epoch (rank 0 only).
        resume: continue from the checkpoint in ``checkpoint_dir`` when there is one.

    Returns:
        A :class:`TrainResult` with the per-epoch history.

    Raises:
        ConfigError: a bad option (e.g. ``distill_alpha > 0`` without a teacher, fp16 without CUDA).
        DataError: an empty training set.
        CheckpointError: the checkpoint does not match the model or was written with another config.

    Example:
        >>> result = fit(model, splits.train, TrainConfig(epochs=3, lr=0.05), val_data=splits.val)
        >>> result.best_val_accuracy
    """
    started = time.perf_counter()
    config = parse_config(TrainConfig, config, where="train")
    hooks = list(hooks)
    if config.distill_alpha > 0 and teacher is None:
        raise ConfigError("distill_alpha > 0 needs a teacher model (fit(..., teacher=...))")
    wanted = config.device if config.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    distributed = ddp.setup(config.distributed, "cuda" if wanted.startswith("cuda") else "cpu")
    device = ddp.resolve_device(config.device, distributed)
    if config.amp == "fp16" and device.type != "cuda":
        raise ConfigError(f"amp: 'fp16' needs CUDA (device is {device}); use 'bf16' or 'off'")
    rank, world_size = ddp.rank_and_world_size() if distributed else (0, 1)
    seed_everything(config.seed)

    loader = as_loader(train_data, batch_size=config.batch_size, shuffle=True, seed=config.seed,
                       distributed=distributed)
    steps_per_epoch = min(len(loader), config.max_steps_per_epoch or len(loader))
    if steps_per_epoch == 0:
        raise DataError(f"train_data: no batch of {config.batch_size} samples (dataset has {loader.size})")
    val_loader = None
    if val_data is not None:
        val_loader = as_loader(val_data, batch_size=max(256, config.batch_size), distributed=distributed, pad=False)

    model.to(device)
    if teacher is not None:
        teacher.to(device)
    state = TrainState(model=model, optimizer=None, scheduler=None, config=config, device=device,  # type: ignore[arg-type]
                       steps_per_epoch=steps_per_epoch, teacher=teacher, rank=rank, world_size=world_size)
    hook_params = {
        f"hooks.{i}.{j}": p for i, hook in enumerate(hooks) for j, p in enumerate(hook.trainable_parameters(state))
    }
    names = parameter_names(model, hook_params)
    seen: set[int] = set()
    params = []
    for p in [*model.parameters(), *hook_params.values()]:
        if p.requires_grad and id(p) not in seen:
            seen.add(id(p))
            params.append(p)
    optimizer = build_optimizer(params, config)
    scheduler = build_scheduler(optimizer, config, steps_per_epoch)
    scaler = torch.amp.GradScaler("cuda") if config.amp == "fp16" else None
    state.optimizer, state.scheduler = optimizer, scheduler
    for hook in hooks:
        hook.on_train_start(state)

    start_epoch = 0
    history: list[dict[str, Any]] = []
    checkpoint = load_checkpoint(checkpoint_dir) if checkpoint_dir is not None and resume else None
    if checkpoint is not None:
        _restore(checkpoint, Path(checkpoint_dir) / "last.pt", state, hooks, hook_params, names, scaler)  # type: ignore[arg-type]
        history = list(checkpoint["history"])
        start_epoch = int(checkpoint["epoch"])
    state.history = history

    net: nn.Module = model
    if distributed:
        net = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    with contextlib.ExitStack() as modes:
        if teacher is not None:
            modes.enter_context(training_mode(teacher, False))
        with training_mode(model, True):
            for epoch in range(start_epoch, config.epochs):
                state.epoch = epoch
                record = _train_epoch(state, net, loader, hooks, hook_params, params, scaler, distributed)
                epoch_started = record.pop("_started")
                if val_loader is not None:
                    val_loss, val_correct, val_n = classification_sums(model, val_loader, device, amp=config.amp)
                    val_loss, val_correct, val_n = ddp.all_reduce_sum([val_loss, val_correct, val_n], device)
                    record["val_accuracy"] = val_correct / max(val_n, 1)
                    record["val_loss"] = val_loss / max(val_n, 1)
                else:
                    record["val_accuracy"] = record["val_loss"] = None
                record["seconds"] = time.perf_counter() - epoch_started
                history.append(record)
                for hook in hooks:
                    hook.on_epoch_end(state)
                if checkpoint_dir is not None and rank == 0:
                    save_checkpoint(checkpoint_dir, _payload(state, epoch + 1, hooks, hook_params, names, scaler))
                if checkpoint_dir is not None:
                    ddp.barrier()
                if rank == 0:
                    log_epoch(record, config.epochs, print_line=config.progress)
        for hook in hooks:
            hook.on_train_end(state)

    vals = [r["val_accuracy"] for r in history if r.get("val_accuracy") is not None]
    return TrainResult(
        history=history,
        best_val_accuracy=max(vals) if vals else None,
        final=dict(history[-1]) if history else {},
        resumed_from_epoch=start_epoch,
        seconds=time.perf_counter() - started,
    )


def _train_epoch(
    state: TrainState,
    net: nn.Module,
    loader: Any,
    hooks: Sequence[Hook],
    hook_params: Mapping[str, nn.Parameter],
    params: Sequence[nn.Parameter],
    scaler: torch.amp.GradScaler | None,
    distributed: bool,
) -> dict[str, Any]:
    """One epoch of optimizer steps; returns its training metrics (reduced over ranks)."""
    config, device, optimizer = state.config, state.device, state.optimizer
    loader.set_epoch(state.epoch)
    lr = optimizer.param_groups[0]["lr"]
    started = time.perf_counter()
    progress = EpochProgress(epoch=state.epoch + 1, epochs=config.epochs, total=state.steps_per_epoch,
                             enabled=config.progress and state.rank == 0)
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    samples = 0
    pending = 0
    for i, (inputs, targets) in enumerate(itertools.islice(loader, state.steps_per_epoch)):
        inputs, targets = to_device(inputs, device), targets.to(device, non_blocking=True)
        state.inputs, state.targets = inputs, targets
        with autocast(device, config.amp):
            if state.teacher is not None:
                with torch.no_grad():
                    state.teacher_outputs = forward(state.teacher, inputs)
            outputs = forward(net, inputs)
            state.outputs = outputs
            loss = _step_loss(state, hooks, outputs, targets)
        state.loss = loss
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
        else:
            loss.backward()
        if distributed and hook_params:
            ddp.average_gradients(hook_params.values())
        for hook in hooks:
            hook.after_backward(state)
        if config.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(params, config.grad_clip)
        if scaler is not None:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        state.scheduler.step()
        state.step += 1
        for hook in hooks:
            hook.after_step(state)

        n = int(targets.shape[0])
        loss_sum += loss.detach().double() * n
        correct += (outputs.detach().argmax(dim=1) == targets).sum()
        samples += n
        pending += 1
        if progress.active and (pending >= POSTFIX_EVERY or i + 1 == state.steps_per_epoch):
            elapsed = time.perf_counter() - started
            progress.update(pending, loss=float(loss_sum) / samples, accuracy=int(correct) / samples,
                            images_per_s=samples * state.world_size / max(elapsed, 1e-9))
            pending = 0
    progress.close()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - started
    total_loss, total_correct, total_samples = ddp.all_reduce_sum([float(loss_sum), int(correct), samples], device)
    return {
        "epoch": state.epoch + 1,
        "loss": total_loss / total_samples,
        "train_accuracy": total_correct / total_samples,
        "lr": lr,
        "images_per_s": total_samples / max(seconds, 1e-9),
        "_started": started,
    }
