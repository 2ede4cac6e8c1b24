"""Soft filter pruning (He et al., 2018): zero the lowest-norm filters every epoch but keep training them.

Zeroed filters still receive gradients, so a filter zeroed early can grow back and another takes its place; the
capacity of the model is kept during training. At the end the filters zeroed by the last epoch are removed
physically by the engine. Zeroing covers a channel's whole output (the producing rows and biases and the
normalization scale and shift), so for exact groups the removal leaves the outputs of the soft-pruned model equal.

Example:
    >>> report = soft_filter_prune(model, (x,), splits.train, ratio=0.3, train={"epochs": 10}, val_data=splits.val)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from slimkit.core.config import check_ratio
from slimkit.prune.engine import (
    ChannelGraph,
    Importance,
    ImportanceContext,
    PruneConfig,
    Scores,
    build_graph,
    channel_scores,
    eligible_groups,
    make_plan,
    per_slice_scores,
    register_importance,
    select_channels,
    slice_norms,
)
from slimkit.prune.methods._common import accuracy, as_tuple, on_device
from slimkit.train.hooks import Hook, TrainState


@register_importance("filter_l2")
@dataclass(frozen=True)
class FilterL2(Importance):
    """L2 norm of the producing filters only (rows of conv/linear weights and their biases), as soft filter
    pruning ranks them; the consumer's columns are not counted, so a zeroed filter scores 0 until it regrows."""

    def scores(self, graph: ChannelGraph, ctx: ImportanceContext) -> Scores:
        return per_slice_scores(graph, slice_norms(2), ctx, roles=("out",))


def zero_channels(graph: ChannelGraph, removed: torch.Tensor) -> int:
    """Zero every produced slice (``out`` rows, biases) and normalization affine of the ``removed`` channels.

    Returns the number of tensor slices written. Running statistics are left alone: with scale and shift zero,
    a BatchNorm channel outputs exactly 0 whatever they are.
    """
    written = 0
    with torch.no_grad():
        for o in graph.occurrences:
            if o.role not in ("out", "norm"):
                continue
            if not any(p for *_, p in graph.locations[o.tensor]):
                continue  # buffers (running statistics)
            drop = removed[graph.comp[o.ids]].nonzero().squeeze(1)
            if drop.numel():
                t = graph.tensors[o.tensor]
                t.index_fill_(o.dim, drop.to(t.device), 0.0)
                written += 1
    return written


class SoftFilterHook(Hook):
    """At every epoch end, zero the ``ratio`` lowest-scored channels of each layer (scores of the current weights).

    ``mask`` holds the channels zeroed last (over ``graph``'s channels); training keeps updating them.
    """

    def __init__(self, example_inputs: Any, ratio: float = 0.3, *, importance: str = "filter_l2",
                 round_to: int | None = None, ignore: tuple[str, ...] = ()) -> None:
        check_ratio("ratio", ratio)
        self.inputs = as_tuple(example_inputs)
        self.config = PruneConfig(ratio=ratio, importance=importance, scope="local", round_to=round_to,
                                  ignore=tuple(ignore))
        self.graph: ChannelGraph | None = None
        self.mask: torch.Tensor | None = None
        self.history: list[int] = []  # channels zeroed at each epoch

    def on_train_start(self, state: TrainState) -> None:
        self.graph = build_graph(state.model, on_device(self.inputs, state.model))

    def select(self) -> torch.Tensor:
        assert self.graph is not None
        scores = channel_scores(self.graph, self.config.importance, ImportanceContext(example_inputs=self.inputs))
        groups, _ = eligible_groups(self.graph, scores, self.config)
        return select_channels(self.graph, scores, groups, self.config, self.config.ratio)

    def on_epoch_end(self, state: TrainState) -> None:
        self.mask = self.select()
        zero_channels(self.graph, self.mask)  # type: ignore[arg-type]
        self.history.append(int(self.mask.sum()))

    def state_dict(self) -> dict[str, Any]:
        return {"mask": self.mask, "history": list(self.history)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.mask = state.get("mask")
        self.history = list(state.get("history", []))


@dataclass
class SoftFilterReport:
    channels_removed: int
    macs_before: int
    macs_after: int
    params_before: int
    params_after: int
    zeroed_per_epoch: list[int]
    accuracy_soft: float | None  # the soft-pruned model (zeroed filters still in place)
    accuracy_after: float | None  # after physical removal

    @property
    def macs_reduction(self) -> float:
        return self.macs_before / max(self.macs_after, 1)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "macs_reduction": self.macs_reduction}


def soft_filter_prune(model: nn.Module, example_inputs: Any, train_data: Any, *, ratio: float = 0.3,
                      train: dict[str, Any] | None = None, val_data: Any = None, importance: str = "filter_l2",
                      round_to: int | None = None, ignore: tuple[str, ...] = ()) -> SoftFilterReport:
    """Train ``model`` with soft filter pruning, then remove the filters zeroed at the last epoch (in place).

    Args:
        model: the model (trained and pruned in place).
        example_inputs: a tensor or tuple to trace with.
        train_data: training data for :func:`slimkit.fit`.
        ratio: fraction of each layer's channels zeroed every epoch and removed at the end.
        train: :class:`slimkit.TrainConfig` fields (default 10 epochs); at least one epoch.
        val_data: evaluated on the soft-pruned and on the pruned model.
        importance: criterion ranking filters each epoch (``filter_l2``: the filter's own norm, as in the paper).
        round_to, ignore: as in :class:`slimkit.PruneConfig`.
    """
    from slimkit.core.errors import ConfigError
    from slimkit.train import fit

    train = {"epochs": 10, **(train or {})}
    if int(train["epochs"]) < 1:
        raise ConfigError("soft_filter_prune: train.epochs must be >= 1 (filters are zeroed at epoch ends)")
    hook = SoftFilterHook(example_inputs, ratio, importance=importance, round_to=round_to, ignore=ignore)
    fit(model, train_data, train, val_data=val_data, hooks=[hook])
    acc_soft = accuracy(model, val_data) if val_data is not None else None
    assert hook.graph is not None and hook.mask is not None
    plan = make_plan(hook.graph, hook.mask, on_device(as_tuple(example_inputs), model), hook.config)
    report = plan.apply()
    acc = accuracy(model, val_data) if val_data is not None else None
    return SoftFilterReport(int(hook.mask.sum()), report.macs_before, report.macs_after, report.params_before,
                            report.params_after, hook.history, acc_soft, acc)
