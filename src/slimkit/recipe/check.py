"""What a recipe run could fail on, checked before its first stage: ``slimkit compress --check`` and every run.

:func:`check_stages` resolves each stage's names against the real model: importance criteria, module names and
globs (``ignore``, ``candidates``, the keys of ``ratios``/``per_layer``/``layer_bits``, both sides of ``hints``), the
training options nested in ``finetune``/``train``/``sparsity_train``, and devices. So a run never fails after an
hour of training because a later stage says ``importance: foo``.

Module names are checked against the model the first pending stage receives. After a stage that adds modules
(``decompose`` puts factor modules under each replaced layer) later names may be new, and are left to that stage.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch import nn

from slimkit.core.config import parse_config
from slimkit.core.errors import ConfigError
from slimkit.core.modules import module_names
from slimkit.recipe._registry import load_stages
from slimkit.recipe.schema import Recipe

NAME_LIST_FIELDS = ("ignore", "candidates")  # module names or globs
NAME_KEY_FIELDS = ("ratios", "per_layer", "layer_bits", "hints")  # mappings keyed by module names or globs
NAME_VALUE_FIELDS = ("hints",)  # mappings whose values are module names too (the teacher's)
TRAIN_FIELDS = ("train", "finetune", "sparsity_train")  # mappings of TrainConfig options


def check_stages(recipe: Recipe, model: nn.Module, *, start: int = 0) -> None:
    """Check every stage from ``start`` on against ``model`` (the model stage ``start`` will receive).

    Raises:
        ConfigError: naming the stage and field, e.g. ``stages[1] (prune).importance: unknown importance 'foo'``.
    """
    registry = load_stages()
    names_known = True
    for index in range(start, len(recipe.stages)):
        spec = recipe.stages[index]
        where = f"stages[{index}] ({spec.type})"
        options = {f.name: getattr(spec.config, f.name) for f in dataclasses.fields(spec.config)}
        _check_importance(options.get("importance"), where)
        if names_known:
            _check_names(model, options, where)
        _check_training(spec.config, options, where)
        if registry.get(spec.type).adds_modules:
            names_known = False


def _check_importance(spec: Any, where: str) -> None:
    """A name or ``{name: ..., **options}`` must resolve to a registered criterion with valid options."""
    if spec is None:
        return
    from slimkit.prune.importance import resolve_importance

    resolve_importance(spec, where=f"{where}.importance")


def _check_names(model: nn.Module, options: Mapping[str, Any], where: str) -> None:
    def check(field: str, entries: Iterable[Any]) -> None:
        names = [entry for entry in entries if isinstance(entry, str)]
        if names:
            module_names(model, names, field=f"{where}.{field}")

    for field in NAME_LIST_FIELDS:
        value = options.get(field)
        if isinstance(value, str):
            check(field, [value])
        elif isinstance(value, (list, tuple)):
            check(field, value)
    for field in NAME_KEY_FIELDS:
        value = options.get(field)
        if isinstance(value, Mapping):
            check(field, value.keys())
            if field in NAME_VALUE_FIELDS:
                check(field, value.values())


def _check_training(config: Any, options: Mapping[str, Any], where: str) -> None:
    from slimkit.train import TrainConfig

    if isinstance(config, TrainConfig):
        _check_device(config, where)
    for field in TRAIN_FIELDS:
        value = options.get(field)
        if isinstance(value, TrainConfig):
            _check_device(value, f"{where}.{field}")
        elif isinstance(value, Mapping):
            _check_device(parse_config(TrainConfig, dict(value), where=f"{where}.{field}"), f"{where}.{field}")


def _check_device(config: Any, where: str) -> None:
    """``device: cuda`` and ``amp: fp16`` need CUDA: say so now rather than when the stage starts."""
    cuda = torch.cuda.is_available()
    if config.device.startswith("cuda") and not cuda:
        raise ConfigError(f"{where}.device: {config.device!r} asked for but CUDA is not available")
    if config.amp == "fp16" and (config.device == "cpu" or not cuda):
        raise ConfigError(f"{where}.amp: 'fp16' needs CUDA; use 'bf16' or 'off' on the CPU")
