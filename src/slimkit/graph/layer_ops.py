"""Op rules for layers with weights and for products: conv, linear, norms, embedding, matmul, attention.

Each rule says which parameter dims produce channels (``out``), consume them (``in``) or follow them (``norm``),
couples the input's channel dim to the consumer dim, and records the op's MACs as a function of kept channels.
"""

from __future__ import annotations

import math
import string
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import torch

from slimkit.core.shapes import has_syncer
from slimkit.graph.fields import Fields, MacsTerm
from slimkit.graph.ops import _arg, broadcast_fields, couple, register_op, unknown

if TYPE_CHECKING:
    from slimkit.graph.tracer import Tracer


def _all_channels(ids: torch.Tensor | None) -> bool:
    return ids is not None and bool((ids >= 0).all())


def _bias(tr: Tracer, bias: Any, ids: torch.Tensor | None, why: str) -> None:
    if isinstance(bias, torch.Tensor) and bias.numel() > 1:
        own = tr.param_fields(bias, {0: "out"}, {0: ids} if _all_channels(ids) else None).get(0)
        if own is not ids:
            couple(tr, ids, own, why)


def _pass_batch(tr: Tracer, fx: Fields, result: Fields, name: str, channel_dims: set[int]) -> None:
    for d, ids in fx.items():
        if d == 0:
            result[0] = ids
        elif d not in channel_dims:
            tr.rec.block(ids, f"{name} over a channel dim")


@register_op("conv1d", "conv2d", "conv3d")
def conv(tr: Tracer, name: str, func: Callable, args: tuple, kwargs: dict, out: Any) -> None:
    """Group-aware convolution: depthwise-like convs couple input channel c with its outputs (whole groups go);
    other grouped convs lose the same in-group offsets in every group, so ``groups`` is kept."""
    x, w = args[0], args[1]
    bias = _arg(args, kwargs, 2, "bias")
    groups = int(_arg(args, kwargs, 6, "groups", 1))
    fx = tr.fields(x)
    in_ids = fx.get(1)
    adopt = {1: in_ids} if groups == 1 and _all_channels(in_ids) else None
    fw = tr.param_fields(w, {0: "out", 1: "in"}, adopt, dims=(0, 1))  # kernel dims are never channels
    out_ids, w_in = fw.get(0), fw.get(1)
    for d, ids in fw.items():
        if d >= 2:  # a weight computed in forward (a blur filter expanded per channel): kernel dims stay
            tr.rec.block(ids, f"{name} kernel dims")
    n_out, per_group = w.shape[0], w.shape[1]
    why = f"{name} input channels"
    verify = False
    if groups > 1 and per_group == 1 and in_ids is not None:
        verify = _groups_follow(tr, name, w, in_ids, groups)
        if verify is None:
            tr.rec.block(in_ids, f"{name} with groups={groups} fixed in code (read it from .shape)")
            in_ids = None
    if groups == 1:
        if w_in is not in_ids:
            couple(tr, in_ids, w_in, why)
    elif per_group == 1:
        mult = n_out // groups
        if out_ids is None and in_ids is not None and mult == 1 and verify:
            out_ids = in_ids  # one filter broadcast to every channel (``filt.expand(x.shape[1], 1, k, k)``)
        elif out_ids is None or in_ids is None:
            couple(tr, in_ids, out_ids, why)
        else:
            tr.rec.unify(out_ids.view(groups, mult), in_ids.view(groups, 1), why)
    else:
        if in_ids is None:
            if w_in is not None:
                tr.rec.block(w_in, why)
        else:
            couple(tr, in_ids.view(groups, per_group), None if w_in is None else w_in.view(1, per_group), why)
        if out_ids is not None:
            rows = out_ids.view(groups, n_out // groups)
            tr.rec.unify(rows, rows[:1].expand_as(rows), "grouped conv output offsets")
    _bias(tr, bias, out_ids, f"{name} bias")
    result: Fields = {1: out_ids} if out_ids is not None else {}
    _pass_batch(tr, fx, result, name, {1})
    tr.set(out, result)
    if verify:
        tr.check_shape(out, 0, result, f"{name} groups={groups}")
    tr.rec.macs.append(MacsTerm(int(w.numel() * out[0, 0].numel() * out.shape[0]),
                                [i for i in (out_ids, w_in) if i is not None]))


def _groups_follow(tr: Tracer, name: str, w: torch.Tensor, in_ids: torch.Tensor, groups: int) -> bool | None:
    """A depthwise-like conv loses whole groups: does its ``groups`` follow? True when the code read it from
    ``.shape`` or from an int attribute of the running module (timm's ``BlurPool2d``: ``groups=self.channels``,
    linked so it follows the width); False for a layer whose LayerRule keeps its attributes in sync with its
    weight (``nn.Conv2d``, a subclass such as timm's ``Conv2dSame``, a registered conv-like type); None when the
    number is fixed in code."""
    k = tr.tensor_index(w)
    owners = [m for _, m, _, _ in tr.locations[k]] if k is not None else []
    if any(has_syncer(type(m)) for m in owners) or not tr.module_objs \
            or type(tr.module_objs[-1]).__module__.startswith("torch."):
        return False  # the owner's rule (core/shapes.py) keeps groups/in_channels true to the weight
    if any(r.shape == in_ids.shape and bool(torch.equal(r, in_ids)) for r in tr.read_channels(groups) or []):
        tr.assumptions.add(f"{tr.rec.where}: {name} groups={groups} read from .shape")
        return True
    found = tr.value_attribute(groups)
    if found is None:
        return None
    tr.link(found, in_ids, f"{name} groups={groups}")
    return True


@register_op("conv_transpose1d", "conv_transpose2d", "conv_transpose3d")
def conv_transpose(tr: Tracer, name: str, func: Callable, args: tuple, kwargs: dict, out: Any) -> None:
    """Transposed conv, weight ``(C_in, C_out / groups, k...)``. Grouped: a depthwise-like one (one input channel
    per group) removes whole groups (input c with its outputs); others lose the same in-group offsets of inputs
    in every group, and the same output offsets in every group (they share the weight's columns)."""
    x, w = args[0], args[1]
    bias = _arg(args, kwargs, 2, "bias")
    groups = int(_arg(args, kwargs, 6, "groups", 1))
    fx = tr.fields(x)
    in_ids = fx.get(1)
    why = f"{name} input channels"
    per_group_in, per_group_out = w.shape[0] // groups, w.shape[1]
    if groups > 1 and per_group_in == 1:  # depthwise-like: group c is input c and its per_group_out outputs
        fw = tr.param_fields(w, {0: "in"}, {0: in_ids} if _all_channels(in_ids) else None, dims=(0,))
        w_in = fw.get(0)
        if w_in is not in_ids:
            couple(tr, in_ids, w_in, why)
        out_ids = None if w_in is None else w_in.repeat_interleave(per_group_out)
        if w_in is None:
            tr.rec.block_fields(fx, why)
    else:
        adopt = {0: in_ids} if groups == 1 and _all_channels(in_ids) else None
        fw = tr.param_fields(w, {0: "in", 1: "out"}, adopt, dims=(0, 1))
        w_in, w_out = fw.get(0), fw.get(1)
        if groups == 1:
            if w_in is not in_ids:
                couple(tr, in_ids, w_in, why)
        elif in_ids is None:
            if w_in is not None:
                tr.rec.block(w_in, why)
        else:
            rows = in_ids.view(groups, per_group_in)
            tr.rec.unify(rows, rows[:1].expand_as(rows), f"grouped {name} input offsets")
            couple(tr, in_ids, w_in, why)
        out_ids = None if w_out is None else w_out.repeat(groups)
    _bias(tr, bias, out_ids, f"{name} bias")
    result: Fields = {1: out_ids} if out_ids is not None else {}
    _pass_batch(tr, fx, result, name, {1})
    tr.set(out, result)
    tr.rec.macs.append(MacsTerm(int(w.numel() * x[0, 0].numel() * x.shape[0]),
                                [i for i in (fw.get(1), fw.get(0)) if i is not None]))


@register_op("linear")
def linear(tr: Tracer, name: str, func: Callable, args: tuple, kwargs: dict, out: Any) -> None:
    x, w = args[0], args[1]
    bias = _arg(args, kwargs, 2, "bias")
    fx, fw = tr.fields(x), tr.param_fields(w, {0: "out", 1: "in"})
    last = x.ndim - 1
    couple(tr, fx.get(last), fw.get(1), "linear input features")
    _bias(tr, bias, fw.get(0), "linear bias")
    result = {d: ids for d, ids in fx.items() if d != last}
    if 0 in fw:
        result[out.ndim - 1] = fw[0]
    tr.set(out, result)
    tr.rec.macs.append(MacsTerm(int(w.numel() * (out.numel() // max(out.shape[-1], 1))),
                                [i for i in (fw.get(0), fw.get(1)) if i is not None]))


def _norm_params(tr: Tracer, ids: torch.Tensor | None, tensors: Sequence[Any], why: str) -> None:
    adopt = {0: ids} if ids is not None and bool((ids >= 0).all()) else None  # one check for all four vectors
    for t in tensors:
        if isinstance(t, torch.Tensor) and t.numel() > 1:
            own = tr.param_fields(t, {0: "norm"}, adopt).get(0)
            if own is not ids:
                couple(tr, ids, own, why)


@register_op("batch_norm", "instance_norm")
def batch_norm(tr: Tracer, name: str, func: Callable, args: tuple, kwargs: dict, out: Any) -> None:
    x = args[0]
    fx = tr.fields(x)
    keys = ("running_mean", "running_var", "weight", "bias")
    _norm_params(tr, fx.get(1), [_arg(args, kwargs, i + 1, k) for i, k in enumerate(keys)], f"{name} channels")
    batch_stats = name == "instance_norm" or bool(_arg(args, kwargs, 5, "training", False))
    for d, ids in fx.items():  # statistics of the data run over every dim but 1 (over all but 0 and 1 per sample)
        if batch_stats and d != 1 and (d > 1 or name == "batch_norm"):
            tr.rec.mark_inexact(ids)  # e.g. NFNet's weight standardization: a filter's mean over its inputs
    tr.set(out, dict(fx))


@register_op("layer_norm", "rms_norm")
def layer_norm(tr: Tracer, name: str, func: Callable, args: tuple, kwargs: dict, out: Any) -> None:
    """Channels in the normalized dims share statistics: their params couple, and removal is inexact."""
    x = args[0]
    shape = _arg(args, kwargs, 1, "normalized_shape")
    k = len(shape) if isinstance(shape, (list, tuple, torch.Size)) else 1
    fx = tr.fields(x)
    params = [_arg(args, kwargs, 2, "weight"), _arg(args, kwargs, 3, "bias") if name == "layer_norm" else None]
    for t in params:
        if isinstance(t, torch.Tensor):
            fp = tr.param_fields(t, {j: "norm" for j in range(t.ndim)})
            for j in range(t.ndim):
                if t.shape[j] > 1:
                    couple(tr, fx.get(x.ndim - k + j), fp.get(j), f"{name} normalized dims")
    for d in range(x.ndim - k, x.ndim):
        if d in fx:
            tr.rec.mark_inexact(fx[d])
    tr.set(out, dict(fx))


@register_op("group_norm")
def group_norm(tr: Tracer, name: str, func: Callable, args: tuple, kwargs: dict, out: Any) -> None:
    """Whole GroupNorm groups are removed (the other groups' statistics are untouched, so removal is exact)."""
    x = args[0]
    groups = int(_arg(args, kwargs, 1, "num_groups"))
    fx = tr.fields(x)
    ids = fx.get(1)
    if ids is not None:
        rows = ids.view(groups, -1)
        tr.rec.unify(rows, rows[:, :1].expand_as(rows), "group_norm groups")
    _norm_params(tr, ids, [_arg(args, kwargs, 2, "weight"), _arg(args, kwargs, 3, "bias")], "group_norm channels")
    for d, i in fx.items():
        if d >= 2:
            tr.rec.mark_inexact(i)
    tr.set(out, dict(fx))


@register_op("prelu")
def prelu(tr: Tracer, name: str, func: Callable, args: tuple, kwargs: dict, out: Any) -> None:
    x, w = args[0], args[1]
    fx = tr.fields(x)
    if w.numel() > 1:
        couple(tr, fx.get(1), tr.param_fields(w, {0: "aux"}).get(0), "prelu channels")
    tr.set(out, dict(fx))


@register_op("embedding")
def embedding(tr: Tracer, name: str, func: Callable, args: tuple, kwargs: dict, out: Any) -> None:
    w = args[1]
    fw = tr.param_fields(w, {0: "aux", 1: "out"})
    if 0 in fw:
        tr.rec.block(fw[0], "embedding rows are vocabulary entries")
    result = {d: ids for d, ids in tr.fields(args[0]).items()}
    if 1 in fw:
        result[out.ndim - 1] = fw[1]
    tr.set(out, result)


# ---------------------------------------------------------------------------------------------- products


def _matmul_fields(tr: Tracer, a: torch.Tensor, b: torch.Tensor, out: torch.Tensor, name: str) -> None:
    fa, fb = tr.fields(a), tr.fields(b)
    ka, kb = fa.get(a.ndim - 1), fb.get(b.ndim - 2)
    couple(tr, ka, kb, f"{name} contraction")
    for ids in (ka, kb):
        if ids is not None:
            tr.rec.contracted.append(ids[ids >= 0])
    batch = broadcast_fields(
        tr,
        [({d: i for d, i in fa.items() if d < a.ndim - 2}, tuple(a.shape[:-2])),
         ({d: i for d, i in fb.items() if d < b.ndim - 2}, tuple(b.shape[:-2]))],
        tuple(out.shape[:-2]), name,
    )
    if a.ndim - 2 in fa:
        batch[out.ndim - 2] = fa[a.ndim - 2]
    if b.ndim - 1 in fb:
        batch[out.ndim - 1] = fb[b.ndim - 1]
    tr.set(out, batch)
    contraction = [ka if ka is not None else kb] if (ka is not None or kb is not None) else []
    tr.rec.macs.append(MacsTerm(int(a.shape[-1] * out.numel()), contraction + list(batch.values())))


@register_op("matmul", "bmm", "mm")
def matmul(tr: Tracer, name: str, func: Callable, args: tuple, kwargs: dict, out: Any) -> None:
    a, b = args[0], args[1]
    if a.ndim < 2 or b.ndim < 2:
        return unknown(tr, name, func, args, kwargs, out)
    _matmul_fields(tr, a, b, out, name)


@register_op("addmm")
def addmm(tr: Tracer, name: str, func: Callable, args: tuple, kwargs: dict, out: Any) -> None:
    """``beta * bias + alpha * (x @ w)``: Hugging Face's ``Conv1D`` (GPT-2), a Linear whose weight is (in, out)."""
    bias, x, w = args[0], args[1], args[2]
    if not all(isinstance(t, torch.Tensor) for t in (x, w)) or x.ndim != 2 or w.ndim != 2:
        return unknown(tr, name, func, args, kwargs, out)
    fx, fw = tr.fields(x), tr.param_fields(w, {0: "in", 1: "out"})
    couple(tr, fx.get(1), fw.get(0), "addmm contraction")
    if fx.get(1) is not None:
        tr.rec.contracted.append(fx[1][fx[1] >= 0])
    if isinstance(bias, torch.Tensor) and bias.ndim == 2:
        fb = tr.fields(bias)
        couple(tr, fb.get(1), fw.get(1), "addmm bias")
        couple(tr, fb.get(0), fx.get(0), "addmm bias rows")
    else:
        _bias(tr, bias, fw.get(1), "addmm bias")
    result: Fields = {}
    if 0 in fx:
        result[0] = fx[0]
    if 1 in fw:
        result[1] = fw[1]
    tr.set(out, result)
    tr.rec.macs.append(MacsTerm(int(w.numel() * x.shape[0]), [i for i in (fw.get(1), fw.get(0)) if i is not None]))


@register_op("rmatmul")
def rmatmul(tr: Tracer, name: str, func: Callable, args: tuple, kwargs: dict, out: Any) -> None:
    return matmul(tr, "matmul", func, (args[1], args[0]), kwargs, out)


def _einsum_terms(equation: str, operands: list[Any]) -> tuple[list[str], str] | None:
    """Operand terms and output term of ``equation`` with every ``...`` spelled out as letters of its own.

    The dims an ellipsis covers are right-aligned across operands (broadcasting), so operand ``i`` gets the
    last ``k_i`` of the placeholder letters; the output gets all of them. An implicit output is the ellipsis
    dims followed by the letters used once, in alphabetical order. None when the equation does not fit.
    """
    lhs, arrow, rhs = equation.replace(" ", "").partition("->")
    terms = lhs.split(",")
    if len(terms) != len(operands) or not all(isinstance(o, torch.Tensor) for o in operands):
        return None
    if not arrow:
        named = lhs.replace("...", "").replace(",", "")
        rhs = ("..." if "..." in lhs else "") + "".join(sorted(c for c in set(named) if named.count(c) == 1))
    spans = [o.ndim - (len(t) - 3) if "..." in t else 0 for t, o in zip(terms, operands)]
    free = [c for c in string.ascii_letters if c not in equation]
    k = max(spans, default=0)
    if min(spans, default=0) < 0 or k > len(free) or ("..." in rhs and "..." not in lhs):
        return None
    letters = "".join(free[:k])
    terms = [t.replace("...", letters[k - n:]) for t, n in zip(terms, spans)]
    rhs = rhs.replace("...", letters)
    if any(len(t) != o.ndim for t, o in zip(terms, operands)):
        return None
    return terms, rhs


@register_op("einsum")
def einsum(tr: Tracer, name: str, func: Callable, args: tuple, kwargs: dict, out: Any) -> None:
    """Dims that share a letter are one channel set (coupled across operands); a letter kept in the output names
    that output dim's channels, a letter summed away is contracted (as in matmul). ``...`` stands for letters of
    its own, right-aligned across operands as broadcasting does."""
    equation = args[0] if args else kwargs.get("equation")
    operands = list(args[1]) if len(args) == 2 and isinstance(args[1], (list, tuple)) else list(args[1:])
    parsed = _einsum_terms(equation, operands) if isinstance(equation, str) else None
    if parsed is None or not isinstance(out, torch.Tensor):
        return unknown(tr, name, func, args, kwargs, out)
    terms, rhs = parsed
    uses: dict[str, list[tuple[torch.Tensor | None, int]]] = {}
    for term, operand in zip(terms, operands):
        if tr.tensor_index(operand) is not None:  # a weight: dims kept in the output produce, summed dims consume
            tr.param_fields(operand, {d: "out" if c in rhs else "in" for d, c in enumerate(term)})
        f = tr.fields(operand)
        for d, letter in enumerate(term):
            uses.setdefault(letter, []).append((f.get(d), int(operand.shape[d])))
    result: Fields = {}
    merged: list[torch.Tensor] = []
    for letter, seen in uses.items():
        size = max(s for _, s in seen)
        labelled = [ids for ids, _ in seen if ids is not None]
        if not labelled:
            continue
        if any((ids is None and s == size and size > 1) or (ids is not None and s != size) for ids, s in seen):
            for ids in labelled:
                tr.rec.block(ids, f"einsum {equation!r}: letter {letter!r} meets a fixed or broadcast operand")
            continue
        base = labelled[0]
        for other in labelled[1:]:
            tr.rec.unify(base, other, f"einsum letter {letter!r}")
            base = torch.where(base >= 0, base, other)
        if letter in rhs:
            result[rhs.index(letter)] = base
        else:
            tr.rec.contracted.append(base[base >= 0])
        merged.append(base)
    tr.set(out, result)
    if len(operands) > 1 and set(uses) - set(rhs):  # a product with a sum (not elementwise): MACs, as profiled
        tr.rec.macs.append(MacsTerm(math.prod(max(s for _, s in seen) for seen in uses.values()), merged))


@register_op("scaled_dot_product_attention")
def sdpa(tr: Tracer, name: str, func: Callable, args: tuple, kwargs: dict, out: Any) -> None:
    """q.k contracts the per-head dims (coupled; inexact without an explicit ``scale``, which depends on them)."""
    q, k, v = args[0], args[1], args[2]
    fq, fk, fv = tr.fields(q), tr.fields(k), tr.fields(v)
    n = q.ndim
    qk = fq.get(n - 1), fk.get(n - 1)
    couple(tr, qk[0], qk[1], "attention q.k dims")
    for ids in qk:
        if ids is not None:
            tr.rec.contracted.append(ids[ids >= 0])
            if _arg(args, kwargs, 6, "scale") is None:
                tr.rec.mark_inexact(ids)
    couple(tr, fk.get(n - 2), fv.get(n - 2), "attention key/value tokens")
    mask = _arg(args, kwargs, 3, "attn_mask")
    if isinstance(mask, torch.Tensor):
        tr.rec.block_fields(tr.fields(mask), "attention mask")
    shapes = [tuple(t.shape[:-2]) for t in (q, k, v)]
    heads, groups = (q.shape[-3], k.shape[-3]) if n >= 3 else (1, 1)
    if _arg(args, kwargs, 7, "enable_gqa") and n >= 3 and groups != heads and groups and heads % groups == 0:
        # grouped-query attention: query head h reads key/value head h // (heads / groups). Spreading each
        # key/value head's ids over its query heads couples a KV group with its query heads (removed together)
        rep = heads // groups
        fk, fv = ({d: (i.repeat_interleave(rep) if d == n - 3 else i) for d, i in f.items()} for f in (fk, fv))
        shapes = [shapes[0]] + [sh[:-1] + (heads,) for sh in shapes[1:]]
    strip = [({d: i for d, i in f.items() if d < n - 2}, sh) for f, sh in zip((fq, fk, fv), shapes)]
    result = broadcast_fields(tr, strip, tuple(out.shape[:-2]), name)
    if n - 2 in fq:
        result[n - 2] = fq[n - 2]
    if n - 1 in fv:
        result[n - 1] = fv[n - 1]
    tr.set(out, result)
    tokens = q.shape[-2] * k.shape[-2] * math.prod(q.shape[:-2])
    # both products run once per query head: removing whole heads (the head axis) shrinks them as head dims do
    per_head = [fq[n - 3]] if n >= 3 and n - 3 in fq else []
    tr.rec.macs.append(MacsTerm(int(tokens * q.shape[-1]), [i for i in qk if i is not None][:1] + per_head))
    tr.rec.macs.append(MacsTerm(int(tokens * v.shape[-1]), ([fv[n - 1]] if n - 1 in fv else []) + per_head))


