"""Training-engine hooks that keep masks through training, prune gradually (AGP) and save rewind points.

They work with :func:`slimkit.train.fit` (pass ``hooks=[MaskHook()]``) and with a hand-written loop: call
``hook.after_backward(state)`` between ``loss.backward()`` and ``optimizer.step()``, and ``hook.after_step(state)``
after it, where ``state`` has ``model`` and ``optimizer``.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from slimkit.core.config import check_ratio
from slimkit.core.errors import ConfigError
from slimkit.core.modules import FilterFn
from slimkit.prune.unstructured.magnitude import WeightPruneConfig, apply_pruning
from slimkit.prune.unstructured.masks import (
    PRUNABLE_TYPES,
    apply_masks,
    get_masks,
    mask_gradients,
    mask_optimizer_state,
    set_masks,
)
from slimkit.train import Hook


class MaskHook(Hook):
    """Keeps pruned weights at exactly zero: masks gradients before the step, re-zeros weights after it.

    It also zeroes momentum and Adam moments at pruned positions, so neither momentum nor weight decay can move a
    pruned weight away from zero. Its checkpoint state holds the masks, so a resumed run keeps them.
    """

    def __init__(self) -> None:
        self._model: nn.Module | None = None
        self._pending: dict[str, torch.Tensor] | None = None

    def _restore(self, model: nn.Module) -> None:
        if self._pending is not None:
            set_masks(model, self._pending)
            self._pending = None

    def on_train_start(self, state: Any) -> None:
        self._model = state.model

    def after_backward(self, state: Any) -> None:
        self._restore(state.model)
        mask_gradients(state.model)

    def after_step(self, state: Any) -> None:
        self._restore(state.model)
        apply_masks(state.model)
        optimizer = getattr(state, "optimizer", None)
        if optimizer is not None:
            mask_optimizer_state(state.model, optimizer)

    def on_train_end(self, state: Any) -> None:
        self._restore(state.model)  # a resumed run that had already finished takes no step

    def state_dict(self) -> dict[str, Any]:
        if self._model is None:
            return {}
        return {"masks": {k: v.detach().cpu().clone() for k, v in get_masks(self._model).items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("masks"):
            self._pending = dict(state["masks"])


def agp_sparsity(step: int, *, initial: float, final: float, start_step: int, num_steps: int, frequency: int) -> float:
    """The sparsity of Zhu & Gupta 2017 ("To prune, or not to prune") at training step ``step``.

    ``s_t = s_f + (s_i - s_f) * (1 - (t - t0) / (n * dt))**3`` for ``t`` in ``{t0, t0 + dt, ..., t0 + n*dt}``;
    between pruning steps the sparsity stays at the last one's value, before ``t0`` it is 0 and after
    ``t0 + n*dt`` it is ``s_f``.

    Args:
        step: training steps done so far.
        initial: ``s_i``; final: ``s_f``; start_step: ``t0``; num_steps: ``n`` (pruning events after the first);
        frequency: ``dt`` (steps between pruning events).
    """
    if step < start_step:
        return 0.0
    events = min((step - start_step) // frequency, num_steps)  # last pruning event reached
    progress = events / num_steps if num_steps else 1.0
    return final + (initial - final) * (1.0 - progress) ** 3


class AGPHook(MaskHook):
    """Automated gradual pruning: raises sparsity along the cubic AGP schedule while training.

    Pruning events happen when the optimizer steps done (``state.step``) equal ``start_step + j * frequency`` for ``j = 0..num_steps``; each
    recomputes masks on the current weights at the scheduled sparsity (already pruned weights stay pruned). Between
    events it behaves as :class:`MaskHook`. If training ends before the last event, the end of training prunes
    to the final sparsity, so the target is always met.

    Args:
        sparsity: final sparsity ``s_f``.
        initial_sparsity: ``s_i`` (the first event's sparsity).
        start_step: ``t0``; num_steps: ``n``; frequency: ``dt`` (in optimizer steps).
        scope, criterion, per_layer, ignore, filter_fn, types: as in :func:`prune_weights` (``per_layer`` values
            are final sparsities, scaled along the same schedule).
    """

    def __init__(
        self,
        *,
        sparsity: float,
        initial_sparsity: float = 0.0,
        start_step: int = 0,
        num_steps: int = 10,
        frequency: int = 100,
        scope: str = "global",
        criterion: str = "magnitude",
        per_layer: dict[str, float] | None = None,
        ignore: tuple[str, ...] = (),
        filter_fn: FilterFn | None = None,
        types: tuple[type[nn.Module], ...] = PRUNABLE_TYPES,
    ) -> None:
        super().__init__()
        for name, value in (("sparsity", sparsity), ("initial_sparsity", initial_sparsity)):
            try:
                check_ratio(name, value)
            except ValueError as err:
                raise ConfigError(str(err).replace(f"{name} must", f"{name}: must")) from None
        if initial_sparsity > sparsity:
            raise ConfigError(f"initial_sparsity: {initial_sparsity} exceeds the final sparsity {sparsity}")
        for name, value, low in (("start_step", start_step, 0), ("num_steps", num_steps, 0), ("frequency", frequency, 1)):
            if not isinstance(value, int) or value < low:
                raise ConfigError(f"{name}: expected an integer >= {low}, got {value!r}")
        self.final = sparsity
        self.initial = initial_sparsity
        self.start_step, self.num_steps, self.frequency = start_step, num_steps, frequency
        self.base = WeightPruneConfig(sparsity=sparsity, scope=scope, criterion=criterion,
                                      per_layer=dict(per_layer or {}), ignore=tuple(ignore))
        self.filter_fn, self.types = filter_fn, types
        self.history: list[tuple[int, float]] = []  # (step, sparsity) of each pruning event

    @property
    def end_step(self) -> int:
        return self.start_step + self.num_steps * self.frequency

    def sparsity_at(self, step: int) -> float:
        return agp_sparsity(step, initial=self.initial, final=self.final, start_step=self.start_step,
                            num_steps=self.num_steps, frequency=self.frequency)

    def _maybe_prune(self, model: nn.Module, t: int) -> None:
        if t < self.start_step or t > self.end_step or (t - self.start_step) % self.frequency:
            return
        self._prune_to(model, self.sparsity_at(t))
        self.history.append((t, self.sparsity_at(t)))

    def _prune_to(self, model: nn.Module, target: float) -> None:
        scale = target / self.final if self.final else 0.0
        config = WeightPruneConfig(
            sparsity=target, scope=self.base.scope, criterion=self.base.criterion,
            per_layer={k: v * scale for k, v in self.base.per_layer.items()}, ignore=self.base.ignore,
        )
        apply_pruning(model, config, filter_fn=self.filter_fn, types=self.types)

    def on_train_start(self, state: Any) -> None:
        super().on_train_start(state)
        self._maybe_prune(state.model, int(state.step))

    def after_step(self, state: Any) -> None:
        self._restore(state.model)
        self._maybe_prune(state.model, int(state.step))  # state.step = optimizer steps done, resumes included
        super().after_step(state)  # zero weights and optimizer state under the (new) masks

    def on_train_end(self, state: Any) -> None:
        super().on_train_end(state)
        if not self.history or self.history[-1][1] < self.final:  # training ended before the last event
            self._prune_to(state.model, self.final)
            self.history.append((int(state.step), self.final))

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "history": [list(e) for e in self.history]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.history = [(int(t), float(s)) for t, s in state.get("history", [])]


class RewindHook(Hook):
    """Saves a copy of the model's state after ``step`` optimizer steps: the rewind point of a lottery ticket.

    ``step=0`` saves the state at the start of training (the initialization). ``snapshot`` holds the copy.
    """

    def __init__(self, step: int = 0) -> None:
        if not isinstance(step, int) or step < 0:
            raise ConfigError(f"rewind_step: expected an integer >= 0, got {step!r}")
        self.step = step
        self.steps_done = 0
        self.snapshot: dict[str, torch.Tensor] | None = None

    def _capture(self, model: nn.Module, step: int) -> None:
        self.steps_done = step
        if self.snapshot is None and step == self.step:
            self.snapshot = {k: v.detach().clone() for k, v in model.state_dict().items()}

    def on_train_start(self, state: Any) -> None:
        self._capture(state.model, int(state.step))

    def after_step(self, state: Any) -> None:
        self._capture(state.model, int(state.step))

    def state_dict(self) -> dict[str, Any]:
        return {"snapshot": self.snapshot, "steps_done": self.steps_done}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.snapshot = state.get("snapshot")
        self.steps_done = int(state.get("steps_done", 0))


def agp_plan(total_steps: int, *, start_fraction: float = 0.0, end_fraction: float = 0.75,
                events: int = 20) -> tuple[int, int, int]:
    """``(start_step, num_steps, frequency)`` spreading ``events`` AGP events over a share of ``total_steps``.

    Zhu & Gupta prune during the early part of training and fine-tune at the final sparsity after; the defaults
    prune during the first 75% of the steps.
    """
    start = int(total_steps * start_fraction)
    span = max(1, int(total_steps * end_fraction) - start)
    frequency = max(1, math.floor(span / max(1, events)))
    return start, max(0, min(events, span // frequency)), frequency

