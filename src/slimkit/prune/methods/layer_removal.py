"""Layer pruning: remove whole blocks (residual blocks, shape-preserving stages) and keep the skip path.

Channel pruning keeps every layer, so at batch 1 the per-op dispatch cost stays; removing whole blocks cuts it
too. A candidate is any module with parameters whose output has its input's shape; removing it means
replacing it by ``nn.Identity`` (for a residual block ``x + f(x)`` that is the skip path alone). Each candidate
is tried alone on a copy (optionally with BatchNorm statistics re-estimated) and scored by validation accuracy;
blocks are then removed least-harmful first, never one inside another already removed, until ``count`` blocks are
gone or the MACs budget is met. A candidate that is not a residual block (``f(x)`` with no skip) scores badly
on its own, so it is not chosen before the blocks that really are removable.

Example:
    >>> report = slimkit.prune_layers(model, x, splits.val, count=2, recalibration_data=splits.train)
    >>> report.removed, report.macs_reduction
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from slimkit.core.errors import ConfigError
from slimkit.core.modules import label, matches_any, set_submodule
from slimkit.core.transaction import transaction
from slimkit.prune.methods._common import accuracy, as_tuple
from slimkit.train.evaluation import training_mode

REMOVED_ATTR = "slimkit_removed_layers"  # names replaced by nn.Identity, kept on the model for save_model


@dataclass
class LayerPruneReport:
    """Candidates with their accuracy when removed alone, what was removed, and MACs/params before and after."""

    baseline_accuracy: float
    candidates: dict[str, float]  # name -> accuracy with that block alone removed
    removed: list[str]
    macs_before: int
    macs_after: int
    params_before: int
    params_after: int
    accuracy_after: float | None = None
    candidate_macs: dict[str, int] = field(default_factory=dict)  # name -> MACs the block costs

    @property
    def macs_reduction(self) -> float:
        return self.macs_before / max(self.macs_after, 1)

    def table(self) -> str:
        rows = [f"{'block':<32} {'MACs':>12} {'acc alone':>10}  removed"]
        for name, acc in sorted(self.candidates.items(), key=lambda kv: -kv[1]):
            rows.append(f"{name:<32} {self.candidate_macs.get(name, 0):>12,} {acc:>10.4f}  "
                        f"{'yes' if name in self.removed else ''}")
        rows.append(f"baseline accuracy {self.baseline_accuracy:.4f}; MACs {self.macs_before:,} -> {self.macs_after:,} "
                    f"({self.macs_reduction:.2f}x); params {self.params_before:,} -> {self.params_after:,}")
        return "\n".join(rows)


def removable_blocks(model: nn.Module, example_inputs: Any) -> list[str]:
    """Names of modules with parameters, not leaves, whose (single tensor) output has their input's shape."""
    inputs = as_tuple(example_inputs)
    shapes: dict[str, bool] = {}
    handles = []
    for name, module in model.named_modules():
        if not name or not list(module.children()) or not any(True for _ in module.parameters()):
            continue

        def hook(mod: nn.Module, args: tuple, out: Any, name: str = name) -> None:
            same = (len(args) == 1 and isinstance(args[0], torch.Tensor) and isinstance(out, torch.Tensor)
                    and args[0].shape == out.shape)
            shapes[name] = shapes.get(name, True) and same

        handles.append(module.register_forward_hook(hook))
    try:
        with training_mode(model, False), torch.no_grad():
            model(*inputs)
    finally:
        for h in handles:
            h.remove()
    return [name for name, same in shapes.items() if same]


def _nested(a: str, b: str) -> bool:
    return a == b or a.startswith(b + ".") or b.startswith(a + ".")


def remove_layers(model: nn.Module, names: list[str]) -> None:
    """Replace each named module by ``nn.Identity`` and record it on the model (so ``save_model`` rebuilds it)."""
    for name in names:
        set_submodule(model, name, nn.Identity())
    done = list(getattr(model, REMOVED_ATTR, []))
    setattr(model, REMOVED_ATTR, done + [n for n in names if n not in done])


def restore_removed_layers(model: nn.Module, names: list[str]) -> None:
    """``load_model``'s restorer: the saved model had these blocks replaced by ``nn.Identity``."""
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ConfigError("removed_layers: expected a list of module names")
    remove_layers(model, names)


def prune_layers(model: nn.Module, example_inputs: Any, val_data: Any, *, count: int | None = None,
                 macs_reduction: float | None = None, candidates: list[str] | None = None,
                 recalibration_data: Any = None, recalibrate_batches: int = 20,
                 progress: bool = True) -> LayerPruneReport:
    """Remove whole blocks of ``model`` in place, least harmful first (all or nothing).

    Args:
        model: the trained model (changed in place).
        example_inputs: a tensor or tuple to run the model on (shapes, MACs).
        val_data: data to score candidates on (dataset, loader or list of ``(x, y)`` batches).
        count: remove this many blocks; or
        macs_reduction: remove blocks until MACs fall by this factor.
        candidates: module names or globs to consider (default: :func:`removable_blocks`).
        recalibration_data: training data; when given, each trial and the result re-estimate BatchNorm
            statistics on ``recalibrate_batches`` batches (``slimkit.recalibrate_bn``).
        progress: show a progress bar over the candidates.

    Returns:
        LayerPruneReport. Raises ConfigError when there is no candidate or the budget cannot be met.
    """
    from slimkit.profile import profile
    from slimkit.train.bn_recalibration import recalibrate_bn

    if (count is None) == (macs_reduction is None):
        raise ConfigError("prune_layers: give exactly one of count, macs_reduction")
    if count is not None and count < 1:
        raise ConfigError(f"prune_layers: count must be >= 1, got {count}")
    if macs_reduction is not None and macs_reduction <= 1:
        raise ConfigError(f"prune_layers: macs_reduction must be > 1, got {macs_reduction}")
    inputs = as_tuple(example_inputs)
    blocks = removable_blocks(model, inputs)
    if candidates is not None:
        blocks = [b for b in blocks if matches_any(b, candidates)]
    if not blocks:
        raise ConfigError("prune_layers: no removable block (a module with parameters whose output has its "
                          "input's shape)" + (f" matches {candidates}" if candidates else ""))

    def settle(m: nn.Module) -> nn.Module:
        if recalibration_data is not None:
            recalibrate_bn(m, recalibration_data, batches=recalibrate_batches)
        return m

    before = profile(model, inputs)
    baseline = accuracy(model, val_data)
    scores: dict[str, float] = {}
    block_macs: dict[str, int] = {}
    for name in tqdm(blocks, desc="layer trials", disable=not progress, leave=False):
        trial = copy.deepcopy(model)
        remove_layers(trial, [name])
        block_macs[name] = before.macs - profile(trial, inputs).macs
        scores[name] = accuracy(settle(trial), val_data)
    target = before.macs / macs_reduction if macs_reduction is not None else None
    chosen: list[str] = []
    macs = before.macs
    for name in sorted(blocks, key=lambda n: (-scores[n], -block_macs[n])):
        if (count is not None and len(chosen) >= count) or (target is not None and macs <= target):
            break
        if any(_nested(name, c) for c in chosen):
            continue
        chosen.append(name)
        macs -= block_macs[name]
    if count is not None and len(chosen) < count:
        raise ConfigError(f"prune_layers: only {len(chosen)} non-nested blocks can be removed, asked for {count}")
    with transaction(model):
        remove_layers(model, chosen)
        settle(model)
        after = profile(model, inputs)
        if target is not None and after.macs > target:
            raise ConfigError(f"prune_layers: removing every candidate block leaves {after.macs:,} MACs, above the "
                              f"target {target:,.0f} ({label('', model)})")
    return LayerPruneReport(baseline, scores, chosen, before.macs, after.macs, before.params, after.params,
                            accuracy(model, val_data), block_macs)
