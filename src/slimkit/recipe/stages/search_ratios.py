"""Stage ``search_ratios``: EagleEye-style per-layer ratio search under a MACs/params budget; prunes the model with
the best vector. Writes ``search.json``, ``candidates.png`` (accuracy after recalibration vs MACs) and
``ratios.png`` (chosen per-layer ratios vs uniform)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from slimkit.core.io import atomic_write_json
from slimkit.prune.config import Budget
from slimkit.prune.methods._common import on_device
from slimkit.prune.search import BUDGET_SHORTHANDS, SearchConfig, plot_search, search_ratios
from slimkit.recipe._registry import register_stage
from slimkit.recipe.context import StageContext


@dataclass(frozen=True)
class SearchStageConfig(SearchConfig):
    """:class:`slimkit.SearchConfig` (default budget: 2x fewer MACs) plus the top-k fine-tuning epochs.

    Attributes:
        finetune_epochs: epochs of the brief fine-tuning of each of the ``top_k`` candidates (0: off).
    """

    finetune_epochs: int = 1

    def __post_init__(self) -> None:
        if self.budget is None and all(getattr(self, name) is None for name in BUDGET_SHORTHANDS):
            object.__setattr__(self, "budget", DEFAULT_BUDGET)
        super().__post_init__()
        if self.finetune_epochs < 0:
            raise ValueError(f"finetune_epochs must be >= 0, got {self.finetune_epochs}")

    def search_config(self) -> SearchConfig:
        return SearchConfig(**{f.name: getattr(self, f.name) for f in fields(SearchConfig)})


DEFAULT_BUDGET = Budget("macs", 2.0, factor=True)


@register_stage("search_ratios", SearchStageConfig, compresses=True)
def search_ratios_stage(ctx: StageContext, config: SearchStageConfig) -> dict[str, Any]:
    """Search per-layer pruning ratios (sample, recalibrate BN, score held-out train data, fine-tune the top-k)."""
    from slimkit.train import fit
    from slimkit.train.evaluation import evaluate

    ctx.freeze_reference()
    ctx.stage_dir.mkdir(parents=True, exist_ok=True)
    search_config = config.search_config()
    finetune = None
    if config.finetune_epochs > 0 and ctx.data.val is not None:
        def finetune(model):
            fit(model, ctx.data.train, {"epochs": config.finetune_epochs, "progress": False}, val_data=None)
            return evaluate(model, ctx.data.val)["accuracy"]

    result = search_ratios(ctx.model, on_device(tuple(ctx.example_inputs), ctx.model), ctx.data.train,
                           search_config, finetune=finetune)
    atomic_write_json(ctx.stage_dir / "search.json", result.to_dict())
    plots = plot_search(result, ctx.stage_dir)
    return {"macs_reduction": result.report.macs_reduction, "best_score": result.best.score,
            "candidates": len(result.candidates), "search_s": result.search_s, "plots": plots}
