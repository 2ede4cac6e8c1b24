"""The stage registry: adding a recipe stage type is one registered function.

A stage is ``run(ctx: StageContext, config: SomeConfig) -> dict`` (the metrics it wants recorded). Put it in a file
under ``slimkit/recipe/stages/`` and decorate it; the runner imports every file there, so no list needs editing::

    @dataclass(frozen=True)
    class PruneStageConfig:
        ratio: float = 0.5

    @register_stage("prune", PruneStageConfig)
    def prune_stage(ctx: StageContext, config: PruneStageConfig) -> dict:
        report = prune_channels(ctx.model, ctx.example_inputs, ratio=config.ratio)
        return {"macs_reduction": report.macs_reduction}
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from slimkit.core.registry import Registry

if TYPE_CHECKING:
    from slimkit.recipe.context import StageContext


@dataclass(frozen=True)
class StageType:
    name: str
    config_cls: type
    run: Callable[[StageContext, Any], dict[str, Any]]
    compresses: bool  # True for stages that change the model (its result is compared against the reference)
    adds_modules: bool = False  # True for stages that put new named modules in the model (e.g. decompose's factors)


STAGES: Registry[StageType] = Registry("stage")
_loaded = False


def register_stage(name: str, config_cls: type, *, compresses: bool = False, adds_modules: bool = False) -> Callable:
    """Register ``run(ctx, config) -> metrics`` as recipe stage ``name`` with options ``config_cls``.

    ``adds_modules``: the stage puts modules with new names in the model, so module names in later stages are
    checked when those stages start rather than before the run (see :mod:`slimkit.recipe.check`).
    """

    def add(fn: Callable[[StageContext, Any], dict[str, Any]]) -> Callable:
        STAGES.add(name, StageType(name, config_cls, fn, compresses, adds_modules))
        return fn

    return add


def load_stages() -> Registry[StageType]:
    """Import every module of ``slimkit.recipe.stages`` once (each registers its stages)."""
    global _loaded
    if not _loaded:
        import slimkit.recipe.stages as package

        for info in pkgutil.iter_modules(package.__path__):
            importlib.import_module(f"{package.__name__}.{info.name}")
        _loaded = True
    return STAGES
