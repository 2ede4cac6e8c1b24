"""The model zoo registry: ``create_model("resnet20", in_channels=1, num_classes=10, width=0.5)``.

A name is either a registered zoo name or ``package.module:factory`` for a user's own model. Every model built
here remembers how it was built (``model.slimkit_spec``) so checkpoints can rebuild it without pickled code.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from torch import nn

from slimkit.core.errors import ConfigError
from slimkit.core.registry import Registry

ModelFactory = Callable[..., nn.Module]
MODELS: Registry[ModelFactory] = Registry("model")
SPEC_ATTR = "slimkit_spec"
CLASSIFICATION = "classification"
_TASKS: dict[str, str] = {}  # model name -> task, for names registered with a task other than classification


def register_model(name: str, *, task: str = CLASSIFICATION) -> Callable[[ModelFactory], ModelFactory]:
    """Decorator adding a factory ``f(*, in_channels, num_classes, width, **kw) -> nn.Module`` to the zoo.

    ``task`` groups models whose inputs and outputs differ from an image classifier's (``"gan"``: generators and
    discriminators, :mod:`slimkit.models.gan`); :func:`list_models` lists one task at a time.
    """
    if task != CLASSIFICATION:
        _TASKS[name.lower()] = task
    return MODELS.register(name)


def list_models(task: str | None = CLASSIFICATION) -> list[str]:
    """Registered names of ``task`` (default: image classifiers, ``(B, C, H, W) -> (B, classes)``); None: all."""
    return [n for n in MODELS.names() if task is None or _TASKS.get(n, CLASSIFICATION) == task]


def resolve_factory(name: str) -> ModelFactory:
    if ":" in name:
        module_name, _, attr = name.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as err:
            raise ConfigError(f"model {name!r}: cannot import {module_name!r} ({err})") from None
        factory = getattr(module, attr, None)
        if not callable(factory):
            raise ConfigError(f"model {name!r}: {module_name} has no callable {attr!r}")
        return factory
    return MODELS.get(name)


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """Build a zoo model (or ``package.module:factory``) and record its spec on it.

    Args:
        name: zoo name (see :func:`list_models`) or ``package.module:factory``.
        **kwargs: passed to the factory; zoo models take ``in_channels``, ``num_classes``, ``width``.
    """
    return instantiate(resolve_factory(name), name, kwargs)


def instantiate(factory: ModelFactory, name: str | None, kwargs: dict[str, Any]) -> nn.Module:
    """``factory(**kwargs)``, checked to be a module; its spec is recorded when ``name`` is given.

    Raises:
        ConfigError: the factory rejects the arguments or returns something else than an ``nn.Module``.
    """
    label = name or getattr(factory, "__name__", "factory")
    try:
        model = factory(**kwargs)
    except TypeError as err:
        raise ConfigError(f"model {label!r}: bad arguments {kwargs} ({err})") from None
    if not isinstance(model, nn.Module):
        raise ConfigError(f"model {label!r}: factory returned {type(model).__name__}, not an nn.Module")
    if name is not None:
        setattr(model, SPEC_ATTR, {"name": name, "kwargs": _as_json(dict(kwargs))})
    return model


def _as_json(value: Any) -> Any:
    """Tuples as lists: the spec is what a file stores, so a rebuilt model's spec equals the original's."""
    if isinstance(value, dict):
        return {k: _as_json(v) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return [_as_json(v) for v in value]
    return value


def model_spec(model: nn.Module) -> dict[str, Any] | None:
    return getattr(model, SPEC_ATTR, None)
