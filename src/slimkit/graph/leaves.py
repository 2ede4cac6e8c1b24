"""Modules traced as single nodes: ``nn.MultiheadAttention`` (per-head dims or whole heads) and recurrent layers
(input features and hidden units).

Register your own with :func:`slimkit.graph.register_leaf` (a handler) or :func:`register_untouched` (a type the
engine must leave alone: channels reaching it are blocked and reported).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence

from slimkit.graph.fields import MacsTerm
from slimkit.graph.ops import _arg, _tensors, couple
from slimkit.graph.tracer import Tracer, opaque_leaf, register_leaf


def register_untouched(*types: type) -> None:
    """Leave modules of these types exactly as they are (their input channels are blocked)."""
    register_leaf(*types)(opaque_leaf)


_GATES = {nn.LSTM: 4, nn.LSTMCell: 4, nn.GRU: 3, nn.GRUCell: 3, nn.RNN: 1, nn.RNNCell: 1}


def gates_of(m: nn.Module) -> int:
    """Gate blocks stacked in a recurrent layer's weights (LSTM 4, GRU 3, RNN 1)."""
    return next(g for cls, g in _GATES.items() if isinstance(m, cls))


@register_leaf(nn.LSTM, nn.GRU, nn.RNN, nn.LSTMCell, nn.GRUCell, nn.RNNCell)
def recurrent(tr: Tracer, m: nn.Module, args: tuple, kwargs: dict, out: Any) -> None:
    """Input features and hidden units of LSTM / GRU / RNN layers and cells.

    Input feature ``i`` is column ``i`` of the first layer's input weights (both directions). Hidden unit ``k`` is
    row ``k`` of every gate block of every weight and bias, column ``k`` of the recurrent weights and of the next
    layer's input weights, and feature ``k`` of the outputs and states. The module has one ``hidden_size``, so
    every layer and direction loses the same units (one channel set). A unit whose outgoing weights are zero is
    removed exactly: gates and cell state are per unit. With a projection (``proj_size``) the hidden units are the
    columns of ``weight_hr`` and the cell state, and the projected features (its rows, the outputs, ``h``, the
    recurrent weights' columns) are a second channel set.
    A ``PackedSequence`` input is traced through its ``data`` (``pack_padded_sequence`` / ``pad_packed_sequence``
    keep the feature dim).
    """
    x = _arg(args, kwargs, 0, "input")
    cell = isinstance(m, nn.RNNCellBase)
    kind = type(m).__name__
    packed = isinstance(x, PackedSequence)
    if packed:  # its data is (tokens, features): the features are the input channels, tokens the real ones
        x = x.data
        out = (out[0].data, out[1]) if isinstance(out, tuple) and isinstance(out[0], PackedSequence) else out
    if not isinstance(x, torch.Tensor):
        opaque_leaf(tr, m, args, kwargs, out)
        return
    fx = tr.fields(x)
    last = x.ndim - 1
    for d, ids in fx.items():
        if d != last:
            tr.rec.block(ids, f"{kind} batch/time dims")
    gates = gates_of(m)
    layers = 1 if cell else m.num_layers
    suffixes = [""] if cell else ["", "_reverse"][: 1 + int(m.bidirectional)]
    projected = not cell and getattr(m, "proj_size", 0) > 0
    if projected:  # hidden units are the columns of weight_hr; the layer emits its rows (proj_size)
        f_hr0 = tr.param_fields(m.weight_hr_l0, {0: "out", 1: "in"})
        units, emitted = f_hr0[1], f_hr0[0]
    else:
        units = emitted = tr.param_fields(m.weight_hh if cell else m.weight_hh_l0, {0: "out", 1: "in"})[1]
    rows = units.repeat(gates)
    tokens = x.numel() // max(x.shape[-1], 1)
    in_ids = fx.get(last)
    for layer in range(layers):
        for sfx in suffixes:
            def name(base: str, layer: int = layer, sfx: str = sfx) -> str:
                return base if cell else f"{base}_l{layer}{sfx}"

            w_ih, w_hh = getattr(m, name("weight_ih")), getattr(m, name("weight_hh"))
            f_ih = tr.param_fields(w_ih, {0: "out", 1: "in"})
            f_hh = tr.param_fields(w_hh, {0: "out", 1: "in"})
            if layer == 0:
                couple(tr, in_ids, f_ih.get(1), f"{kind} input features")
            else:
                couple(tr, emitted.repeat(len(suffixes)), f_ih.get(1), f"{kind} layer inputs")
            tr.rec.unify(f_ih[0], rows, f"{kind} hidden units")
            tr.rec.unify(f_hh[0], rows, f"{kind} hidden units")
            tr.rec.unify(f_hh[1], emitted, f"{kind} recurrent inputs")
            for bias in (getattr(m, name("bias_ih"), None), getattr(m, name("bias_hh"), None)):
                if isinstance(bias, torch.Tensor):
                    tr.rec.unify(tr.param_fields(bias, {0: "out"})[0], rows, f"{kind} hidden units")
            ids_in = [i for i in (f_ih.get(1),) if i is not None]
            tr.rec.macs.append(MacsTerm(int(tokens * w_ih.numel()), [units, *ids_in]))
            tr.rec.macs.append(MacsTerm(int(tokens * w_hh.numel()), [units, emitted]))
            if projected:
                w_hr = getattr(m, name("weight_hr"))
                f_hr = tr.param_fields(w_hr, {0: "out", 1: "in"})
                tr.rec.unify(f_hr[0], emitted, f"{kind} projection")
                tr.rec.unify(f_hr[1], units, f"{kind} hidden units")
                tr.rec.macs.append(MacsTerm(int(tokens * w_hr.numel()), [emitted, units]))
    # given initial states: h0 is as wide as what the layer emits, an LSTM's c0 as its hidden units
    hx = args[1] if len(args) > 1 else kwargs.get("hx")
    for i, t in enumerate(_tensors(hx)):
        target = units if (isinstance(hx, tuple) and i == 1) else emitted
        ft = tr.fields(t)
        fits = t.ndim > 0 and t.shape[-1] == target.numel()
        for d, ids in ft.items():
            if d != t.ndim - 1 or not fits:
                tr.rec.block(ids, f"{kind} initial state")
        if fits:
            state = ft.get(t.ndim - 1)
            if state is None:  # e.g. torch.zeros(B, 6): a width fixed in code cannot follow the pruned units
                tr.rec.block(target, f"{kind} initial state of fixed width {t.shape[-1]}")
            else:
                tr.rec.unify(state, target, f"{kind} initial state")
    if cell:  # h (and an LSTMCell's c): one per hidden unit
        for o in _tensors(out):
            tr.set(o, {o.ndim - 1: units})
        return
    output, state = out
    tr.set(output, {output.ndim - 1: emitted.repeat(len(suffixes))})
    for i, o in enumerate(state if isinstance(state, tuple) else (state,)):
        tr.set(o, {o.ndim - 1: emitted if i == 0 else units})


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
