"""``save_model`` / ``load_model`` live in :mod:`slimkit.state` (one checked container for every state); these
names stay importable from :mod:`slimkit.models` for existing code."""

from __future__ import annotations

from typing import Any


def save_model(*args: Any, **kwargs: Any) -> Any:
    from slimkit.state import save_model as save

    return save(*args, **kwargs)


def load_model(*args: Any, **kwargs: Any) -> Any:
    from slimkit.state import load_model as load

    return load(*args, **kwargs)
