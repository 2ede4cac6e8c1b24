"""Turn a recipe's model and data sections into objects, filling shape arguments from the dataset."""

from __future__ import annotations

import inspect
from typing import Any

import torch
from torch import nn

from slimkit.core.errors import ConfigError, DataError
from slimkit.recipe.schema import DataSection, ModelSection


def build_data(section: DataSection, *, seed: int) -> Any:
    from slimkit.data import load_dataset

    try:
        return load_dataset(
            section.name,
            root=section.root,
            val_fraction=section.val_fraction,
            seed=seed,
            subset=section.subset,
            **section.options,
        )
    except DataError as err:
        raise DataError(f"data: {err}") from None


def build_model(section: ModelSection, data: Any) -> nn.Module:
    """Create the model; zoo-style arguments (in_channels, num_classes, image_size) come from the data."""
    from slimkit.models import create_model
    from slimkit.models._registry import resolve_factory
    from slimkit.state import load_model

    if section.file is not None:
        return load_model(section.file, factory=model_factory(section))
    assert section.name is not None
    factory = resolve_factory(section.name)
    kwargs = dict(section.kwargs)
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        params = {}
    accepts_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    defaults = {"in_channels": data.in_channels, "num_classes": data.num_classes, "image_size": tuple(data.image_size)}
    for key, value in defaults.items():
        if key not in kwargs and (key in params or (accepts_any and key != "image_size")):
            kwargs[key] = value
    try:
        return create_model(section.name, **kwargs)
    except ConfigError as err:
        raise ConfigError(f"model: {err}") from None


def model_factory(section: ModelSection) -> Any:
    """The factory the recipe names for the user's own architecture (``model.name: pkg.mod:fn`` or
    ``model.factory``), used to rebuild saved files; ``None`` for zoo models."""
    from slimkit.models._registry import resolve_factory

    name = section.factory or (section.name if section.name and ":" in section.name else None)
    return resolve_factory(name) if name else None


def example_inputs_for(data: Any) -> tuple[torch.Tensor, ...]:
    x, _ = data.train[0]
    return (x.unsqueeze(0),)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device: 'cuda' asked for but CUDA is not available")
    return torch.device(name)
