"""Network slimming (Liu et al., 2017): sparsify BatchNorm scales with an L1 penalty, cut channels under a global
|gamma| threshold, fine-tune, repeat.

The penalty is applied as a subgradient (``grad += strength * sign(gamma)`` after backward), exactly as the paper
does, through a training :class:`~slimkit.train.Hook`; the threshold is one value across every BN layer, chosen so
that ``ratio`` of all BN-scaled channels go; the removal is the engine's (coupled layers, residual partners,
optimizer state), so any model whose channels pass through BatchNorm can be slimmed.

Example:
    >>> report = network_slimming(model, (x,), splits.train, val_data=splits.val, ratio=0.5, strength=1e-4,
    ...                           sparsity_train={"epochs": 10}, finetune={"epochs": 5}, plot_dir="run/")
    >>> report.channels_pruned, report.accuracy_after
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from slimkit.core.config import check_ratio, parse_config
from slimkit.prune.engine import ChannelGraph, PruneConfig, build_graph, make_plan
from slimkit.prune.methods._common import accuracy, as_tuple, on_device
from slimkit.train.hooks import Hook, TrainState

_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


def bn_scales(model: nn.Module) -> list[nn.Parameter]:
    """The affine scale (gamma) of every BatchNorm layer."""
    return [m.weight for m in model.modules() if isinstance(m, _NORMS) and m.weight is not None]


def gamma_values(model: nn.Module) -> torch.Tensor:
    """All |gamma| of the model's BatchNorm layers, concatenated (for histograms and thresholds)."""
    scales = bn_scales(model)
    return torch.cat([s.detach().abs().flatten().cpu() for s in scales]) if scales else torch.zeros(0)


class BatchNormL1(Hook):
    """Sparsity training: add ``strength * sign(gamma)`` to every BN scale's gradient (L1 subgradient)."""

    def __init__(self, strength: float = 1e-4) -> None:
        if strength < 0:
            raise ValueError(f"strength must be >= 0, got {strength}")
        self.strength = strength

    def after_backward(self, state: TrainState) -> None:
        with torch.no_grad():
            for gamma in bn_scales(state.model):
                if gamma.grad is not None:
                    gamma.grad.add_(torch.sign(gamma), alpha=self.strength)


@dataclass(frozen=True)
class SlimmingConfig:
    """Options of :func:`network_slimming`.

    Attributes:
        ratio: fraction of the BN-scaled channels removed by each pass (global |gamma| threshold).
        strength: lambda of the L1 penalty on BN scales during sparsity training.
        passes: slimming passes (sparsity training, threshold, removal, fine-tuning); each removes ``ratio`` of
            the channels left.
        sparsity_train: :class:`slimkit.TrainConfig` fields of the sparsity training (None: no training, the
            model is taken as already sparsified).
        finetune: TrainConfig fields of the fine-tuning after each removal (None: no fine-tuning).
        max_group_ratio: never remove more than this fraction of one layer (keeps every layer alive).
        ignore: module names/globs never sliced.
    """

    ratio: float = 0.5
    strength: float = 1e-4
    passes: int = 1
    sparsity_train: dict[str, Any] | None = field(default_factory=lambda: {"epochs": 10})
    finetune: dict[str, Any] | None = field(default_factory=lambda: {"epochs": 5})
    max_group_ratio: float = 0.9
    ignore: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        check_ratio("ratio", self.ratio)
        check_ratio("max_group_ratio", self.max_group_ratio, allow_one=True)
        if self.strength < 0:
            raise ValueError(f"strength must be >= 0, got {self.strength}")
        if self.passes < 1:
            raise ValueError(f"passes must be >= 1, got {self.passes}")
        object.__setattr__(self, "ignore", tuple(self.ignore))


@dataclass
class SlimmingPass:
    threshold: float
    channels_before: int
    channels_after: int
    macs_before: int
    macs_after: int
    accuracy_pruned: float | None  # right after removal, before fine-tuning
    accuracy_finetuned: float | None


@dataclass
class SlimmingReport:
    """What slimming did. Channels are those of BN-scaled groups; accuracies on ``val_data`` (None without)."""

    channels_before: int
    channels_after: int
    macs_before: int
    macs_after: int
    params_before: int
    params_after: int
    accuracy_before: float | None
    accuracy_sparse: float | None
    accuracy_after: float | None
    passes: list[SlimmingPass]
    gammas_before: list[float] = field(repr=False, default_factory=list)
    gammas_sparse: list[float] = field(repr=False, default_factory=list)
    plots: list[str] = field(default_factory=list)

    @property
    def channels_pruned(self) -> float:
        return 1.0 - self.channels_after / max(self.channels_before, 1)

    @property
    def macs_reduction(self) -> float:
        return self.macs_before / max(self.macs_after, 1)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("gammas_before")
        d.pop("gammas_sparse")
        d["channels_pruned"] = self.channels_pruned
        d["macs_reduction"] = self.macs_reduction
        return d


def channel_scales(graph: ChannelGraph, norms: tuple[type, ...] = _NORMS) -> tuple[torch.Tensor, torch.Tensor]:
    """Per graph channel: the mean |gamma| of its coupled normalization layers (of types ``norms``), and
    whether it has one. Network slimming and GAN slimming rank channels by it."""
    scale = torch.zeros(graph.num_channels, dtype=torch.float64)
    count = torch.zeros(graph.num_channels, dtype=torch.float64)
    for o in graph.occurrences:
        if o.role != "norm":
            continue
        for _fqn, module, attr, is_param in graph.locations[o.tensor]:
            if is_param and attr == "weight" and isinstance(module, norms):
                comps = graph.comp[o.ids]
                scale.index_add_(0, comps, graph.tensors[o.tensor].detach().abs().double().cpu())
                count.index_add_(0, comps, torch.ones(len(comps), dtype=torch.float64))
                break
    has = count > 0
    return torch.where(has, scale / count.clamp_min(1), scale), has


def _bn_groups(graph: ChannelGraph, ignore: tuple[str, ...]) -> list[tuple[Any, torch.Tensor]]:
    """Prunable groups with a BN scale, each with the |gamma| of its channels (mean over coupled BNs)."""
    from slimkit.core.modules import matches_any

    scale, has = channel_scales(graph)
    out = []
    for g in graph.groups:
        if ignore and any(matches_any(m, ignore) for m in g.modules):
            continue
        if bool(has[g.channels].all()):
            out.append((g, scale[g.channels]))
    return out


def slimming_mask(graph: ChannelGraph, ratio: float, *, max_group_ratio: float = 0.9,
                  ignore: tuple[str, ...] = ()) -> tuple[torch.Tensor, float, int]:
    """Channels under one global |gamma| threshold removing ``ratio`` of the BN-scaled channels.

    Returns:
        (removal mask over the graph's channels, the threshold, number of BN-scaled channels considered).
    """
    groups = _bn_groups(graph, ignore)
    removed = torch.zeros(graph.num_channels, dtype=torch.bool)
    if not groups:
        return removed, 0.0, 0
    allg = torch.cat([s for _, s in groups])
    k = int(ratio * allg.numel())
    threshold = float(torch.sort(allg).values[k - 1]) if k > 0 else float("-inf")
    for g, s in groups:
        order = torch.argsort(s, stable=True)
        below = int((s <= threshold).sum()) if k > 0 else 0
        cap = min(int(max_group_ratio * g.size), g.size - 1)
        removed[g.channels[order[: min(below, cap)]]] = True
    total = sum(g.size for g, _ in groups)
    return removed, threshold, total


def network_slimming(model: nn.Module, example_inputs: Any, train_data: Any = None,
                     config: SlimmingConfig | dict | None = None, *, val_data: Any = None,
                     plot_dir: str | os.PathLike | None = None, **options: Any) -> SlimmingReport:
    """Slim ``model`` in place: sparsity training, global |gamma| threshold, physical removal, fine-tuning.

    Args:
        model: a model with BatchNorm after its prunable layers (changed in place).
        example_inputs: a tensor or tuple to trace with.
        train_data: dataset or loader for sparsity training and fine-tuning (may be None when both are off).
        config: a :class:`SlimmingConfig` or dict; its fields also work as keywords (``ratio=0.5``...).
        val_data: evaluated before, after sparsity training, after removal and after fine-tuning.
        plot_dir: where ``slimming_gammas.png`` (|gamma| before/after sparsity training) and
            ``slimming_channels.png`` (channels per layer) are written.

    Returns:
        SlimmingReport.

    Raises:
        ConfigError: a bad option, or training requested without ``train_data``.
    """
    from slimkit.core.errors import ConfigError
    from slimkit.train import fit

    config = parse_config(SlimmingConfig, {**(asdict(config) if isinstance(config, SlimmingConfig) else (config or {})),
                                           **options}, where="slimming")
    if train_data is None and (config.sparsity_train is not None or config.finetune is not None):
        raise ConfigError("network_slimming: sparsity_train/finetune need train_data (or set them to None)")
    inputs = as_tuple(example_inputs)
    acc = (lambda: accuracy(model, val_data)) if val_data is not None else (lambda: None)
    graph = build_graph(model, inputs)
    channels_before = sum(g.size for g, _ in _bn_groups(graph, config.ignore))
    macs_before, params_before = graph.macs(), graph.params()
    before_groups = {g.name: g.size for g in graph.groups}
    gammas_before = gamma_values(model).tolist()
    accuracy_before = acc()
    accuracy_sparse = accuracy_before
    gammas_sparse = gammas_before
    passes: list[SlimmingPass] = []
    for _ in range(config.passes):
        if config.sparsity_train is not None:
            fit(model, train_data, config.sparsity_train, val_data=val_data, hooks=[BatchNormL1(config.strength)])
            inputs = on_device(inputs, model)
            if not passes:
                gammas_sparse = gamma_values(model).tolist()
                accuracy_sparse = acc()
        graph = build_graph(model, inputs)
        removed, threshold, total = slimming_mask(graph, config.ratio, max_group_ratio=config.max_group_ratio,
                                                  ignore=config.ignore)
        plan = make_plan(graph, removed, inputs, _prune_config())
        plan.apply()
        acc_pruned = acc()
        acc_ft = acc_pruned
        if config.finetune is not None:
            fit(model, train_data, config.finetune, val_data=val_data)
            inputs = on_device(inputs, model)
            acc_ft = acc()
        passes.append(SlimmingPass(threshold, total, total - int(removed.sum()), plan.report.macs_before,
                                   plan.report.macs_after, acc_pruned, acc_ft))
    graph = build_graph(model, inputs)
    channels_after = sum(g.size for g, _ in _bn_groups(graph, config.ignore))
    report = SlimmingReport(channels_before, channels_after, macs_before, graph.macs(), params_before,
                            graph.params(), accuracy_before, accuracy_sparse, passes[-1].accuracy_finetuned,
                            passes, gammas_before, gammas_sparse)
    if plot_dir is not None:
        report.plots = _plots(report, before_groups, {g.name.split(" ")[0]: g.size for g in graph.groups},
                              Path(plot_dir))
    return report


def _prune_config() -> Any:

    return PruneConfig(importance="bn_scale", normalize="none")


def _plots(report: SlimmingReport, before: dict[str, int], after: dict[str, int], where: Path) -> list[str]:
    from slimkit.report.plots import plot_bars, plot_histogram

    hist = plot_histogram({"before sparsity training": report.gammas_before,
                           "after sparsity training": report.gammas_sparse}, where / "slimming_gammas.png",
                          xlabel="|gamma| of BatchNorm scales", title="network slimming: BN scales")
    names = list(before)
    bars = plot_bars({"before": [before[n] for n in names],
                      "after": [after.get(n.split(" ")[0], 0) for n in names]},
                     [n.split(" ")[0] for n in names], where / "slimming_channels.png", ylabel="channels",
                     title="channels per layer")
    return [str(hist), str(bars)]

