"""Modules traced as single nodes: ``nn.MultiheadAttention`` (per-head dims or whole heads) and recurrent layers
(their input features are prunable; hidden sizes are kept).

Register your own with :func:`slimkit.graph.register_leaf` (a handler) or :func:`register_untouched` (a type the
engine must leave alone: channels reaching it are blocked and reported).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from slimkit.graph.fields import MacsTerm
from slimkit.graph.ops import _arg, _tensors, couple
from slimkit.graph.tracer import Tracer, opaque_leaf, register_leaf


def register_untouched(*types: type) -> None:
    """Leave modules of these types exactly as they are (their input channels are blocked)."""
    register_leaf(*types)(opaque_leaf)


@register_leaf(nn.LSTM, nn.GRU, nn.RNN, nn.LSTMCell, nn.GRUCell, nn.RNNCell)
def recurrent(tr: Tracer, m: nn.Module, args: tuple, kwargs: dict, out: Any) -> None:
    """Input feature ``i`` is column ``i`` of the first layer's input weights (both directions); nothing else
    changes: hidden and cell sizes stay, so outputs and states carry no channels. Packed sequences and given
    initial states are left as they are (their channels blocked)."""
    x = _arg(args, kwargs, 0, "input")
    cell = isinstance(m, nn.RNNCellBase)
    if not isinstance(x, torch.Tensor):  # a PackedSequence: its data layout is not traced
        opaque_leaf(tr, m, args, kwargs, out)
        return
    for t in _tensors((args[1:], kwargs)):
        tr.rec.block_fields(tr.fields(t), f"{type(m).__name__} initial state")
    fx = tr.fields(x)
    last = x.ndim - 1
    for d, ids in fx.items():
        if d != last:
            tr.rec.block(ids, f"{type(m).__name__} batch/time dims")
    names = ["weight_ih"] if cell else [f"weight_ih_l0{s}" for s in ("", "_reverse")[: 1 + int(m.bidirectional)]]
    first = [getattr(m, n) for n in names]
    in_ids = fx.get(last)
    for w in first:
        couple(tr, in_ids, tr.param_fields(w, {1: "in"}, dims=(1,)).get(1), f"{type(m).__name__} input features")
    tokens = x.numel() // max(x.shape[-1], 1)
    rest = sum(p.numel() for n, p in m.named_parameters() if n.startswith("weight") and n not in names)
    w_in = first[0] if first else None
    if w_in is not None and w_in.ndim == 2:
        fw = tr.fields(w_in).get(1)
        tr.rec.macs.append(MacsTerm(int(tokens * sum(w.numel() for w in first)), [fw] if fw is not None else []))
    tr.rec.macs.append(MacsTerm(int(tokens * rest), []))


@register_leaf(nn.MultiheadAttention)
def multihead_attention(tr: Tracer, m: nn.Module, args: tuple, kwargs: dict, out: Any) -> None:
    """Embedding slot ``i`` of q, k, v and the output are one channel; the unit removed is per-head dims or heads.

    ``nn.MultiheadAttention`` ties its input width, its per-head q/k/v widths and its output width to one
    ``embed_dim`` (``in_proj_weight`` is ``(3E, E)``), so slot ``i`` couples input column ``i``, q/k/v row ``i`` and
    output row ``i``. With ``tr.attention == "head_dims"`` every head loses the same per-head dims (``num_heads``
    stays, ``head_dim`` shrinks, and the softmax scale 1/sqrt(head_dim) changes, so the cut is inexact); with
    ``"heads"`` the ``head_dim`` slots of a head are one unit, removed whole (``head_dim`` and the scale stay, so
    a head with no effect is removed exactly). Because the module cannot give its input a width other than
    ``embed_dim``, the input channels at a removed head's slots go with it.
    """
    query, key, value = (_arg(args, kwargs, i, n) for i, n in enumerate(("query", "key", "value")))
    tensors = [t for t in (query, key, value) if isinstance(t, torch.Tensor)]
    supported = (m._qkv_same_embed_dim and m.bias_k is None and not m.add_zero_attn and m.in_proj_weight is not None)
    if not supported:
        opaque_leaf(tr, m, args, kwargs, out)
        return
    e, h = m.embed_dim, m.num_heads
    slots = tr.rec.fresh(e)
    grid = slots.view(h, e // h)
    whole = tr.attention == "heads"
    if whole:
        tr.rec.unify(grid, grid[:, :1].expand_as(grid), "a head is removed whole")
        tr.whole_heads.append(m)
    else:
        tr.rec.unify(grid, grid[:1].expand_as(grid), "attention heads keep equal widths")
    k_in = tr.tensor_index(m.in_proj_weight)
    tr.param_fields(m.in_proj_weight, {})  # make sure its ids exist, then pin them to the slots
    fw = tr.fields(m.in_proj_weight)
    tr.rec.unify(fw[0], slots.repeat(3))
    tr.rec.unify(fw[1], slots)
    if k_in is not None:
        for occ in tr.rec.occurrences:
            if occ.tensor == k_in:
                occ.role = "out" if occ.dim == 0 else "in"
    for t, roles in ((m.in_proj_bias, {0: "out"}), (m.out_proj.weight, {0: "out", 1: "in"}), (m.out_proj.bias, {0: "out"})):
        if t is None:
            continue
        f = tr.param_fields(t, roles)
        for d in f:
            tr.rec.unify(f[d], slots.repeat(t.shape[d] // e))
    if not whole:
        tr.rec.contracted.append(slots)
    for t in tensors:
        f = tr.fields(t)
        last = t.ndim - 1
        couple(tr, f.get(last), slots, "attention embed dim")
        for d, ids in f.items():
            if d != last:
                tr.rec.block(ids, "attention token/batch dims")
    attn_out = out[0] if isinstance(out, tuple) else out
    tr.set(attn_out, {attn_out.ndim - 1: slots})
    tokens = attn_out.numel() // e
    src_len = key.shape[1 if m.batch_first else 0] if key.ndim == 3 else key.shape[0]
    tr.rec.macs.append(MacsTerm(int(4 * e * e * tokens), [slots, slots]))
    tr.rec.macs.append(MacsTerm(int(2 * e * tokens * src_len), [slots]))
