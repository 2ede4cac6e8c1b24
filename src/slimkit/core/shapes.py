"""Keep module attributes (``in_channels``, ``num_features``, ...) true to their tensors' shapes.

Structured pruning slices tensors and loading a pruned checkpoint resizes them; both then call
:func:`sync_attributes` so the module prints, exports and fine-tunes like a normally built smaller one.
Each layer type has one :class:`LayerRule` in :data:`LAYER_RULES`: where its output and input channels live in its
tensors (read by the single-layer pruners of ``prune/layers.py``) and how its shape attributes follow them (read by
:func:`sync_attributes` and by the tracer, which then needs no link for a count such a layer reads). Conv is
described here once. Users register their own layer types with :func:`register_layer_rule` (or its two halves,
``register_syncer`` and ``slimkit.prune.register_layer_pruner``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

import torch
from torch import nn

from slimkit.core.errors import CheckpointError
from slimkit.core.modules import label
from slimkit.core.registry import Registry

Syncer = Callable[[nn.Module], None]
Pairs = tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class LayerRule:
    """What slimkit knows of one layer type.

    Attributes:
        sync: sets the shape attributes (``in_channels``, ...) from the tensors; None: the type has none to keep.
        out: (tensor attribute, dim) pairs holding its output channels; None: no single-layer pruner.
        in_: (tensor attribute, dim) pairs holding its input channels.
    """

    sync: Syncer | None = None
    out: Pairs | None = None
    in_: Pairs | None = None


LAYER_RULES: Registry[LayerRule] = Registry("layer rule")
#: the same table under the name the syncers were registered in before rules were one object
attribute_syncers = LAYER_RULES


def register_layer_rule(*types: type, sync: Syncer | None = None, out: Sequence[tuple[str, int]] | None = None,
                        in_: Sequence[tuple[str, int]] | None = None) -> None:
    """Describe each of ``types`` (what is given replaces that part of an existing rule for the type itself)."""
    for t in types:
        rule = LAYER_RULES.get(t, None) or LayerRule()
        if sync is not None:
            rule = replace(rule, sync=sync)
        if out is not None or in_ is not None:
            rule = replace(rule, out=tuple(out or ()), in_=tuple(in_ or ()))
        LAYER_RULES[t] = rule


def register_syncer(*types: type) -> Callable[[Syncer], Syncer]:
    """Decorator: ``fn(module)`` keeps the shape attributes of ``types`` true to their tensors."""

    def add(fn: Syncer) -> Syncer:
        register_layer_rule(*types, sync=fn)
        return fn

    return add


def has_syncer(cls: type) -> bool:
    """Whether layers of ``cls`` (or a base) keep their shape attributes in sync with their tensors."""
    rule = LAYER_RULES.for_type(cls)
    return rule is not None and rule.sync is not None


def channel_dims(cls: type, attr: str) -> tuple[int, ...] | None:
    """The dims of tensor ``attr`` that the rule of ``cls`` (or a base) says hold channels (a conv weight: 0 and 1,
    never its kernel dims); None when no rule of the type names that tensor."""
    rule = LAYER_RULES.for_type(cls)
    if rule is None or rule.out is None:
        return None
    dims = sorted({d for name, d in (*rule.out, *(rule.in_ or ())) if name == attr})
    return tuple(dims) or None


def _conv(m: nn.Module) -> None:
    # a depthwise-like conv (one input channel per group) loses whole groups: its multiplier stays
    if m.groups > 1 and m.weight.shape[1] == 1 and m.in_channels == m.groups:
        multiplier = max(m.out_channels // m.groups, 1)
        m.groups = max(m.weight.shape[0] // multiplier, 1)
    m.out_channels = m.weight.shape[0]
    m.in_channels = m.weight.shape[1] * m.groups


def _conv_transpose(m: nn.Module) -> None:
    # a depthwise-like transposed conv (one input channel per group) loses whole groups
    if m.groups > 1 and m.in_channels == m.groups:
        m.groups = m.weight.shape[0]
    m.in_channels = m.weight.shape[0]
    m.out_channels = m.weight.shape[1] * m.groups


def _linear(m: nn.Module) -> None:
    m.out_features, m.in_features = m.weight.shape


register_layer_rule(nn.Conv1d, nn.Conv2d, nn.Conv3d, sync=_conv, out=[("weight", 0), ("bias", 0)], in_=[("weight", 1)])
register_layer_rule(nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d, sync=_conv_transpose,
                    out=[("weight", 1), ("bias", 0)], in_=[("weight", 0)])
register_layer_rule(nn.Linear, sync=_linear, out=[("weight", 0), ("bias", 0)], in_=[("weight", 1)])


@register_syncer(nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d)
def _batchnorm(m: nn.Module) -> None:
    tensor = m.weight if m.weight is not None else m.running_mean
    if tensor is not None:
        m.num_features = tensor.shape[0]


@register_syncer(nn.GroupNorm)
def _groupnorm(m: nn.Module) -> None:
    # whole groups are removed: channels per group stay
    if m.weight is not None and m.weight.shape[0] != m.num_channels:
        per_group = max(m.num_channels // m.num_groups, 1)
        m.num_channels = m.weight.shape[0]
        m.num_groups = max(m.num_channels // per_group, 1)


@register_syncer(nn.MultiheadAttention)
def _multihead_attention(m: nn.Module) -> None:
    # num_heads is set first by whoever removed whole heads (the pruner, or load_model from the saved count);
    # otherwise every head lost the same per-head dims: num_heads stays, head_dim shrinks
    if m.in_proj_weight is not None:
        m.embed_dim = m.kdim = m.vdim = m.in_proj_weight.shape[1]
        m.head_dim = m.embed_dim // m.num_heads


def restore_attention_heads(model: nn.Module, heads: Mapping[str, int]) -> None:
    """Set the saved ``num_heads`` of each ``nn.MultiheadAttention`` (before its weights are resized and loaded)."""
    for name, count in heads.items():
        try:
            module = model.get_submodule(name) if name else model
        except AttributeError:
            raise CheckpointError(f"attention_heads: the model has no module {name!r}") from None
        if not isinstance(module, nn.MultiheadAttention) or not isinstance(count, int) or count < 1:
            raise CheckpointError(f"attention_heads: {name!r} is not an attention layer with a positive head count")
        module.num_heads = count


@register_syncer(nn.LSTM, nn.GRU, nn.RNN)
def _recurrent(m: nn.Module) -> None:
    m.input_size = m.weight_ih_l0.shape[1]
    if getattr(m, "proj_size", 0):
        m.proj_size, m.hidden_size = m.weight_hr_l0.shape
    else:
        m.hidden_size = m.weight_hh_l0.shape[1]
    m._init_flat_weights()  # the kernel reads this cached list of the parameters, not the attributes


@register_syncer(nn.LSTMCell, nn.GRUCell, nn.RNNCell)
def _recurrent_cell(m: nn.Module) -> None:
    m.input_size = m.weight_ih.shape[1]
    m.hidden_size = m.weight_hh.shape[1]


@register_syncer(nn.LayerNorm)
def _layernorm(m: nn.Module) -> None:
    if m.weight is not None:
        m.normalized_shape = tuple(m.weight.shape)


@register_syncer(nn.Embedding)
def _embedding(m: nn.Module) -> None:
    m.num_embeddings, m.embedding_dim = m.weight.shape


@register_syncer(nn.PReLU)
def _prelu(m: nn.Module) -> None:
    m.num_parameters = m.weight.numel()


# one channel per entry of each per-channel tensor; an embedding's channels are its vectors' entries
_PER_CHANNEL = (("weight", 0), ("bias", 0), ("running_mean", 0), ("running_var", 0))
register_layer_rule(nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.InstanceNorm1d, nn.InstanceNorm2d,
                    nn.InstanceNorm3d, nn.LayerNorm, nn.PReLU, out=_PER_CHANNEL, in_=_PER_CHANNEL)
register_layer_rule(nn.Embedding, out=[("weight", 1)], in_=[])


def sync_attributes(module: nn.Module) -> None:
    """Update the shape attributes of ``module`` from its tensors (no-op for unknown types)."""
    rule = LAYER_RULES.for_type(type(module))
    if rule is not None and rule.sync is not None:
        rule.sync(module)


def resize_to_state_dict(model: nn.Module, state_dict: Mapping[str, torch.Tensor]) -> None:
    """Give every parameter/buffer of ``model`` the shape it has in ``state_dict`` (for pruned checkpoints).

    Raises:
        CheckpointError: naming the tensor when the state dict has keys the model lacks or vice versa.
    """
    own = dict(model.state_dict(keep_vars=True))
    for name in set(state_dict) - set(own):
        # a tensor a transform added where the architecture has an empty slot (a conv that got a bias from
        # BatchNorm folding): create it, the loop below gives it the saved shape
        fqn, _, attr = name.rpartition(".")
        try:
            module = model.get_submodule(fqn) if fqn else model
        except AttributeError:
            continue
        if attr in module._parameters and module._parameters[attr] is None:
            module._parameters[attr] = nn.Parameter(torch.empty(0, dtype=state_dict[name].dtype))
            own[name] = module._parameters[attr]
        elif attr in module._buffers and module._buffers[attr] is None:
            module._buffers[attr] = torch.empty(0, dtype=state_dict[name].dtype)
            own[name] = module._buffers[attr]
    missing = sorted(set(own) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(own))
    if missing or unexpected:
        raise CheckpointError(
            f"checkpoint does not match {type(model).__name__}: missing {missing[:5]}, unexpected {unexpected[:5]}"
        )
    for name, saved in state_dict.items():
        current = own[name]
        if current is None or tuple(current.shape) == tuple(saved.shape):
            continue
        fqn, _, attr = name.rpartition(".")
        module = model.get_submodule(fqn) if fqn else model
        new = torch.empty(saved.shape, dtype=current.dtype, device=current.device)
        if attr in module._parameters:
            module._parameters[attr] = nn.Parameter(new, requires_grad=current.requires_grad)
        elif attr in module._buffers:
            module._buffers[attr] = new
        else:
            raise CheckpointError(f"{label(fqn, module)}: cannot resize {attr!r}")
        sync_attributes(module)
