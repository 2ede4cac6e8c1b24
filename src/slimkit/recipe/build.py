"""Turn a recipe's model and data sections into objects, filling shape arguments from the dataset."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import torch
from torch import nn

from slimkit.core.errors import ConfigError, DataError, SlimkitError
from slimkit.core.forward import training_mode
from slimkit.recipe.schema import DataSection, ModelSection, model_factory_name


def build_data(section: DataSection, *, seed: int) -> Any:
    from slimkit.data import load_dataset
    from slimkit.data.text import TEXT_SOURCES, load_text_data

    if section.name in TEXT_SOURCES:  # sentences, not images (slimkit.data.text)
        try:
            return load_text_data(section.name, val_fraction=section.val_fraction, subset=section.subset, seed=seed,
                                  **section.options)
        except TypeError as err:
            raise ConfigError(f"data.options: {err}") from None

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
    """Create the model; zoo-style arguments (in_channels, num_classes, image_size) come from the data.

    Raises:
        ConfigError: naming ``model.name``, ``model.kwargs``, ``model.factory`` or ``model.file``: an unknown zoo
            name, a factory that cannot be imported, arguments the factory refuses, a missing model file.
        CheckpointError / FormatError: the model file is damaged or does not fit (message prefixed ``model.file``).
    """
    from slimkit.models._registry import instantiate, resolve_factory
    from slimkit.state import load_model

    if section.file is not None:
        factory = model_factory(section)
        if not Path(section.file).is_file():
            raise ConfigError(f"model.file: {section.file}: no such model file")
        try:
            return load_model(section.file, factory=factory)
        except SlimkitError as err:
            raise type(err)(f"model.file: {err}") from None
        except OSError as err:
            raise ConfigError(f"model.file: {section.file}: cannot read ({err.strerror or err})") from None
    assert section.name is not None
    try:
        factory = resolve_factory(section.name)
    except ConfigError as err:
        raise ConfigError(f"model.name: {err}") from None
    kwargs = dict(section.kwargs)
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        params = {}
    accepts_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    defaults = {} if getattr(data, "task", None) == "embed" else {
        "in_channels": data.in_channels, "num_classes": data.num_classes, "image_size": tuple(data.image_size)}
    for key, value in defaults.items():
        if key not in kwargs and (key in params or (accepts_any and key != "image_size")):
            kwargs[key] = value
    unknown = [key for key in section.kwargs if params and not accepts_any and key not in params]
    if unknown:
        raise ConfigError(f"model.kwargs.{unknown[0]}: {section.name} takes no argument {unknown[0]!r}; it takes "
                          f"{', '.join(params) or 'none'}")
    try:
        return instantiate(factory, section.name, kwargs)
    except ConfigError as err:
        raise ConfigError(f"model.kwargs: {err}") from None
    except Exception as err:  # noqa: BLE001 - the factory is the user's (or the zoo's) code refusing its arguments
        raise ConfigError(f"model.kwargs: building {section.name!r} with {kwargs} failed: "
                          f"{type(err).__name__}: {_first_line(err)}") from None


def model_factory(section: ModelSection) -> Any:
    """The factory the recipe names for the user's own architecture (``model.name: pkg.mod:fn`` or
    ``model.factory``), used to rebuild saved files; ``None`` for zoo models."""
    from slimkit.models._registry import resolve_factory

    name = model_factory_name(section)
    if name is None:
        return None
    try:
        return resolve_factory(name)
    except ConfigError as err:
        raise ConfigError(f"model.{'factory' if section.factory else 'name'}: {err}") from None


def check_model_runs(model: nn.Module, inputs: tuple[torch.Tensor, ...], *, where: str) -> None:
    """Run ``model`` once on ``inputs`` (eval mode, no grad, on the CPU copy it lives on), so a model that does
    not fit its input fails here, before any work, as a ConfigError naming ``where``."""
    from slimkit.core.modules import model_device

    device = model_device(model)
    shapes = ", ".join("x".join(map(str, x.shape)) for x in inputs if isinstance(x, torch.Tensor))
    try:
        with torch.no_grad(), training_mode(model, False):
            model(*(x.to(device) if isinstance(x, torch.Tensor) else x for x in inputs))
    except Exception as err:  # noqa: BLE001 - any failure of the forward pass is the input not fitting the model
        raise ConfigError(f"{where}: the model does not run on a {shapes} input: "
                          f"{type(err).__name__}: {_first_line(err)}") from None


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def example_inputs_for(data: Any) -> tuple[torch.Tensor, ...]:
    if getattr(data, "task", None) == "embed":  # text data (slimkit.data.text): one tokenized sentence
        return (data.example_inputs(),)
    x, _ = data.train[0]
    return (x.unsqueeze(0),)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device: 'cuda' asked for but CUDA is not available")
    return torch.device(name)
