"""Bring a pruned Hugging Face model's config and module attributes in line with its weights, so that
``save_pretrained`` / ``from_pretrained`` rebuild exactly the pruned shapes.

The check is by construction: a model built from the synced config (on the meta device, no memory) must have every
parameter and buffer shape of the pruned one. A config that cannot say what the weights are (per-layer widths, or a
size the config derives from others) raises :class:`HFConfigError` and leaves the config as it was.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator

import torch
from torch import nn

from slimkit.core.errors import SlimkitError
from slimkit.hf.modules import HIDDEN_ATTRS, HIDDEN_FIELDS, PARTS

#: what every error ends with: the way out that stores any widths
_OWN_FORMAT = ("slimkit.save_model / slimkit.load_model store any per-layer widths (they rebuild the pruned "
               "modules, no config needed)")


class HFConfigError(SlimkitError):
    """A pruned Hugging Face model's widths cannot be written to its config; the message names the fields and
    layers."""


def layer_widths(model: nn.Module) -> dict[str, dict[str, int]]:
    """``{config field: {module name: value}}`` read from the weights; sets each module's size attributes on
    the way (``num_attention_heads``, ``all_head_size``, ``num_key_value_groups``, ``split_size``...)."""
    widths: dict[str, dict[str, int]] = {}
    for name, module in model.named_modules():
        part = PARTS.get(type(module).__name__)
        if part is not None:
            for field, value in part.sync(module, name).items():
                widths.setdefault(field, {})[name] = value
    hidden = _hidden_width(model)
    if hidden is not None:
        widths[HIDDEN_FIELDS.get(model.config.model_type, "hidden_size")] = {"(embeddings)": hidden}
        for module in model.modules():
            attr = HIDDEN_ATTRS.get(type(module).__name__)
            if attr is not None and hasattr(module, attr):
                setattr(module, attr, hidden)
    return widths


def _hidden_width(model: nn.Module) -> int | None:
    try:
        embed = model.get_input_embeddings()
    except (AttributeError, NotImplementedError):
        return None
    return int(embed.weight.shape[1]) if isinstance(embed, nn.Embedding) else None


def _configs(model: nn.Module) -> Iterator[object]:
    """The model's config and every distinct config a submodule holds (T5 stacks keep their own copies)."""
    seen: set[int] = set()
    for module in model.modules():
        config = getattr(module, "config", None)
        if config is not None and hasattr(config, "to_dict") and id(config) not in seen:
            seen.add(id(config))
            yield config


def _nonuniform(widths: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
    return {f: by_layer for f, by_layer in widths.items() if len(set(by_layer.values())) > 1}


def nonuniform_message(model: nn.Module, differ: dict[str, dict[str, int]]) -> str:
    parts = []
    for field, by_layer in differ.items():
        shown = ", ".join(f"{name}: {value}" for name, value in list(by_layer.items())[:6])
        parts.append(f"{field} differs across layers ({shown})")
    return (f"{type(model.config).__name__} holds one value per field, but " + "; ".join(parts) + ". Prune with "
            "slimkit.hf.prune_pretrained(..., scope='uniform') to keep layers equal, or: " + _OWN_FORMAT)


def sync_config(model: nn.Module) -> dict[str, int]:
    """Write the pruned widths of a Hugging Face ``model`` to its config(s) and module attributes.

    Called by :func:`slimkit.hf.prune_pretrained`; call it yourself after :func:`slimkit.prune_channels` on a
    Hugging Face model. Idempotent. Returns the config fields it set.

    Raises:
        HFConfigError: per-layer widths differ, or the config class derives a size from others (BERT's head size
            is ``hidden_size / num_attention_heads``), so no config describes the pruned shapes. Module attributes
            are synced anyway (the model runs as before); the config is left as it was.
    """
    widths = layer_widths(model)
    differ = _nonuniform(widths)
    if differ:
        raise HFConfigError(nonuniform_message(model, differ))
    fields = {field: next(iter(by_layer.values())) for field, by_layer in widths.items()}
    configs = list(_configs(model))
    saved = [copy.deepcopy(c.__dict__) for c in configs]
    for config in configs:
        for field, value in fields.items():
            if field == "head_dim" or hasattr(config, field):
                setattr(config, field, value)
    try:
        check_rebuild(model)
    except HFConfigError:
        for config, state in zip(configs, saved):
            config.__dict__.clear()
            config.__dict__.update(state)
        raise
    return fields


def check_rebuild(model: nn.Module) -> None:
    """A model built from ``model.config`` must have ``model``'s every parameter and buffer shape.

    Raises:
        HFConfigError: naming the first tensors whose shapes differ.
    """
    with torch.device("meta"):
        fresh = type(model)(copy.deepcopy(model.config))
    want = {k: tuple(v.shape) for k, v in fresh.state_dict().items()}
    have = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    wrong = [f"{k} {have[k]} in the model, {want[k]} from the config" for k in have if k in want and have[k] != want[k]]
    if wrong:
        more = f" (+{len(wrong) - 3} more)" if len(wrong) > 3 else ""
        raise HFConfigError(
            f"{type(model.config).__name__} cannot describe the pruned shapes: " + "; ".join(wrong[:3]) + more
            + ". It derives some sizes from others (BERT, RoBERTa, DistilBERT, GPT-2 and Whisper take the head "
            "size from the hidden size / the head count, so their heads can only go with hidden width): prune "
            "units the config can store (units=('ffn',)), or: " + _OWN_FORMAT)
