"""How each traced op moves, couples or consumes channel ids (the rules of the dependency graph).

A handler receives the tracer, the op's canonical name, the function, its arguments and its result, and sets the
fields of the result. Ops with no handler here are *not understood*: every channel reaching them is blocked with a
reason naming the op, so the engine never guesses. Users extend the table with :func:`register_op`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import torch

from slimkit.core.registry import Registry
from slimkit.graph.fields import Fields, merge_into, shift_fields

if TYPE_CHECKING:
    from slimkit.graph.tracer import Tracer

OpHandler = Callable[["Tracer", str, Callable, tuple, dict, Any], None]
OP_HANDLERS: Registry[OpHandler] = Registry("op handler", casefold=False)


def register_op(*names: str) -> Callable[[OpHandler], OpHandler]:
    """Register ``handler(tracer, name, func, args, kwargs, out)`` for ops with these canonical names."""

    def add(fn: OpHandler) -> OpHandler:
        for n in names:
            OP_HANDLERS[n] = fn
        return fn

    return add


def _tensors(obj: Any) -> list[torch.Tensor]:
    """Every tensor inside nested tuples/lists/dicts (and other pytrees), in order."""
    if isinstance(obj, torch.Tensor):
        return [obj]
    if isinstance(obj, (tuple, list)) and type(obj) in (tuple, list):
        return [t for item in obj for t in _tensors(item)]
    if type(obj) is dict:
        return [t for item in obj.values() for t in _tensors(item)]
    if obj is None or isinstance(obj, (int, float, bool, str)):
        return []
    leaves, _ = torch.utils._pytree.tree_flatten(obj)
    return [t for t in leaves if isinstance(t, torch.Tensor)]


def _arg(args: tuple, kwargs: dict, i: int, name: str, default: Any = None) -> Any:
    if len(args) > i:
        return args[i]
    return kwargs.get(name, default)


def _dims(value: Any, ndim: int) -> list[int] | None:
    if value is None:
        return None
    if isinstance(value, int):
        value = [value]
    return sorted({int(v) % max(ndim, 1) for v in value})


def couple(tr: Tracer, a: torch.Tensor | None, b: torch.Tensor | None, why: str) -> None:
    """Unify two fields; a field meeting an unlabelled (fixed) dim is blocked."""
    if a is None and b is None:
        return
    if a is None or b is None:
        tr.rec.block(a if a is not None else b, why)
        return
    tr.rec.unify(a, b, why)


def broadcast_fields(tr: Tracer, operands: Sequence[tuple[Fields, Sequence[int]]], shape: Sequence[int], why: str) -> Fields:
    """Couple the fields of broadcast operands dim by dim and return the result's fields."""
    n = len(shape)
    out: Fields = {}
    aligned = [(shift_fields(f, len(s), n), (1,) * (n - len(s)) + tuple(s)) for f, s in operands]
    for d in range(n):
        labelled = [f[d] for f, s in aligned if d in f]
        if not labelled:
            continue
        fixed = any(d not in f and s[d] == shape[d] and shape[d] > 1 for f, s in aligned)
        spread = [f[d] for f, s in aligned if d in f and s[d] != shape[d]]
        if fixed or spread:
            for ids in labelled:
                tr.rec.block(ids, f"{why}: dim {d} meets a fixed or broadcast operand")
            continue
        base = labelled[0]
        for other in labelled[1:]:
            tr.rec.unify(base, other)
            base = torch.where(base >= 0, base, other)
        out[d] = base
    return out


# ---------------------------------------------------------------------------------------------- elementwise

ELEMENTWISE = (
    "add sub rsub mul div true_divide floor_divide truediv relu relu6 gelu silu sigmoid tanh hardswish hardsigmoid "
    "hardtanh leaky_relu elu selu celu mish softplus softsign logsigmoid glu_ dropout dropout1d dropout2d dropout3d "
    "alpha_dropout feature_alpha_dropout neg abs exp log log1p sqrt rsqrt square pow clamp clip clamp_min clamp_max "
    "maximum minimum where masked_fill erf sin cos sign reciprocal threshold tanhshrink hardshrink softshrink "
    "silu_ mul_ add_ nan_to_num addcmul addcdiv lerp fmod remainder ge gt le lt eq ne logical_not bitwise_not"
).split()


@register_op(*ELEMENTWISE)
def elementwise(tr: Tracer, name: str, func: Callable, args: tuple, kwargs: dict, out: Any) -> None:
    if not isinstance(out, torch.Tensor):
        return unknown(tr, name, func, args, kwargs, out)
    operands = [(tr.fields(t), tuple(t.shape)) for t in _tensors((args, kwargs))]
    fields = broadcast_fields(tr, operands, tuple(out.shape), name)
    tr.set(out, fields)
    if tr.record_activity and name in ("relu", "relu6", "hardtanh"):
        for d, ids in fields.items():
            other = tuple(e for e in range(out.ndim) if e != d)
            tr.rec.activity.append((ids, ((out == 0).float().mean(other) if other else (out == 0).float()).cpu()))


IDENTITY = (
    "to type type_as float half double bfloat16 contiguous clone detach cpu cuda requires_grad_ detach_ "
    "zeros_like ones_like empty_like full_like rand_like randn_like data identity align_as zero fill"
).split()


@register_op(*IDENTITY)
def identity(tr: Tracer, name: str, func: Callable, args: tuple, kwargs: dict, out: Any) -> None:
    src = _tensors(args[:1])
    if isinstance(out, torch.Tensor) and src and tuple(src[0].shape) == tuple(out.shape):
        tr.set(out, dict(tr.fields(src[0])))
    else:
        unknown(tr, name, func, args, kwargs, out)


# ---------------------------------------------------------------------------------------------- shape ops

SHAPE_OPS = (
    "view reshape flatten unflatten permute transpose t T mT swapaxes swapdims movedim moveaxis squeeze unsqueeze "
    "expand expand_as view_as reshape_as repeat __getitem__ narrow select flip fliplr flipud repeat_interleave "
    "tile broadcast_to"
).split()


def _adaptive_dim(name: str, args: tuple, kwargs: dict, ndim: int) -> int | None:
    """The output dim a view/reshape leaves free to shrink (the ``-1`` in its shape), if any."""
    if name in ("view", "reshape"):
        shape = args[1:]
        if len(shape) == 1 and isinstance(shape[0], (list, tuple, torch.Size)):
            shape = tuple(shape[0])
        shape = tuple(kwargs.get("shape", shape))
        for i, s in enumerate(shape):
            if isinstance(s, int) and s == -1:
                return i
    if name == "unflatten":
        dim, sizes = _arg(args, kwargs, 1, "dim"), _arg(args, kwargs, 2, "sizes")
        for j, s in enumerate(sizes or ()):
            if s == -1:
                return int(dim) % ndim + j
    return None


def _collapse(tr: Tracer, labels: torch.Tensor, adaptive: int | None
              ) -> tuple[int, torch.Tensor, torch.Tensor, list[int]] | None:
    """Reduce a full-shape label tensor to one channel dim; a channel dim split in several is coupled first.

    When a view splits a channel dim into several dims (heads x head_dim, groups x channels), removing a channel
    must keep the split rectangular, so ids are unified along every split dim except the adaptive one (the ``-1``,
    or else the innermost): whole columns of the free dim are removed together. Returns the free dim, its ids,
    the ids over the split dims, and the split dims.
    """
    if labels.numel() == 0:
        return None
    varies = [e for e in range(labels.ndim) if labels.shape[e] > 1 and bool((labels != labels.narrow(e, 0, 1)).any())]
    if not varies:
        tr.rec.block(labels.reshape(-1)[:1], "a single channel reshaped")
        return None
    index = tuple(slice(None) if e in varies else 0 for e in range(labels.ndim))
    grid = labels[index]
    if len(varies) == 1:
        return varies[0], grid, grid, varies
    free = adaptive if adaptive in varies else varies[-1]
    rows = grid.movedim(varies.index(free), -1).reshape(-1, labels.shape[free])
    tr.rec.unify(rows, rows[:1].expand_as(rows), "channel dim split unevenly")
    return free, rows.max(dim=0).values, grid, varies


def _same_ids(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and bool(torch.equal(a, b))


def _literal_count(tr: Tracer, name: str, width: int, ids: torch.Tensor, labels: torch.Tensor,
                   got: tuple[int, torch.Tensor, torch.Tensor, list[int]]) -> bool:
    """A view whose channel dim is given as a number (not ``-1``): does that number follow the pruned width?

    In order: the code read this tensor's own width (``C // heads`` of ``x.shape``); the number is an int
    attribute of the running module (``self.head_dim``, ``self.hidden_dim``: linked, it follows the width); it
    is the width of another tensor the running module read (``B, N, C = x.shape`` then
    ``qkv.reshape(B, N, 3, heads, C // heads)`` or ``.reshape(B, N, C)``: that width is tied to these channels,
    ``C`` losing ``heads`` positions per head dim removed); some tensor's width was read somewhere. Each is
    verified by the check forward after pruning (``Tracer.check_shape``). False: nothing explains the number
    (the caller blocks the channels).
    """
    dim, free, grid, varies = got
    size = int(labels.shape[dim])
    live = ids[ids >= 0]
    for n in {width, size}:  # the width of these very channels, maybe reordered (a channel shuffle's .view(b, c, h, w))
        if any(bool(torch.isin(r, live).any()) for r in tr.read_channels(n) or []):
            tr.assumptions.add(f"{tr.rec.where}: {name} to {size} channels read from .shape")
            return True
    others = [int(labels.shape[e]) for e in varies if e != dim]
    found = tr.value_attribute(size) if size not in others else None  # heads == head_dim: which one is it?
    if found is not None:
        tr.link(found, free, f"{name} to {size} channels")
        return True
    shares = set(others) | {math.prod(others)} if others else {1}
    for level in reversed(tr.reads):  # the innermost call that read a fitting width decides
        matches: list[torch.Tensor] = []
        for n, read in level:
            if n % size == 0 and n // size in shares and not bool(torch.isin(read, live).any()):
                if not any(_same_ids(read, m) for m in matches):
                    matches.append(read)
        if len(matches) > 1:  # a read of this tensor's own width (a bias's numel) needs no tie: the other decides
            matches = [m for m in matches if m.numel() != width]
        if len(matches) > 1:
            break  # two widths could explain the number: never guess
        if matches:
            # the number is (a share of) another width the module read: removing a channel here removes the
            # matching positions there, so both counts stay in step
            total = matches[0].numel()
            tr.rec.unify(matches[0].view(total // size, size), free.view(1, size), f"{name} count tied to a read width")
            tr.assumptions.add(f"{tr.rec.where}: {name} to {size} channels tied to a width of {total} read from .shape")
            return True
    if size in tr.read_sizes or width in tr.read_sizes:
        tr.assumptions.add(f"{tr.rec.where}: {name} to {size} channels read from .shape")
        return True
    return False


def _equal_part(tr: Tracer, ids: torch.Tensor, kept: torch.Tensor) -> bool:
    """``x[length : 2 * length]`` with ``length = x.numel() // 3`` (Swin V2 zeroing the key bias): a slice that is
    one of equal parts of a channel dim whose width the code read. The parts then lose the same offsets, so the
    bounds computed from the width still cut at the part; the check forward verifies the slice."""
    width, size = int(ids.numel()), int(kept.numel())
    if not size or width % size or bool((ids < 0).any()) or torch.unique(ids).numel() != width:
        return False
    start = int((ids == kept[0]).nonzero()[0, 0])
    if start % size or not _same_ids(ids[start:start + size], kept):
        return False
    if not any(_same_ids(r, ids) for r in tr.read_channels(width) or []):
        return False
    rows = ids.view(width // size, size)
    tr.rec.unify(rows, rows[:1].expand_as(rows), "equal parts of a channel dim")
    tr.assumptions.add(f"{tr.rec.where}: slice [{start}:{start + size}] of {width} channels read from .shape")
    return True


@register_op(*SHAPE_OPS)
def shape_op(tr: Tracer, name: str, func: Callable, args: tuple, kwargs: dict, out: Any) -> None:
    """Move ids exactly as the op moves elements, by running the same op on a tensor of ids."""
    x = args[0]
    outs = list(out) if isinstance(out, (tuple, list)) else [out]
    results: list[Fields] = [{} for _ in outs]
    verify = [False for _ in outs]
    for d, ids in tr.fields(x).items():
        view = [1] * x.ndim
        view[d] = -1
        full = ids.view(view).expand(tuple(x.shape)).contiguous()
        moved = func(full, *args[1:], **kwargs)
        moved = list(moved) if isinstance(moved, (tuple, list)) else [moved]
        kept = []
        for k, labels in enumerate(moved):
            if not isinstance(labels, torch.Tensor) or labels.dtype != torch.int64:
                continue
            adaptive = _adaptive_dim(name, args, kwargs, labels.ndim)
            got = _collapse(tr, labels, adaptive)
            if got is not None and name in ("view", "reshape", "unflatten") and got[0] != adaptive:
                if _literal_count(tr, name, int(x.shape[d]), ids, labels, got):
                    verify[k] = True
                else:
                    size = int(labels.shape[got[0]])
                    tr.rec.block(ids, f"{name} with a literal channel count {size} (write -1 or read it from .shape)")
                    got = None
            if got is not None:
                merge_into(results[k], got[0], got[1], tr.rec, same_tensor=True)
                kept.append(got[2].reshape(-1))
        live = ids[ids >= 0]
        if not kept or not bool(torch.isin(live, torch.cat(kept)).all()):
            if name == "__getitem__" and len(kept) == 1 and _equal_part(tr, ids, kept[0]):
                verify[0] = True
            else:
                tr.rec.block(ids, f"{name} keeps only part of a channel dim")
    for k, (o, f) in enumerate(zip(outs, results)):
        if isinstance(o, torch.Tensor):
            tr.set(o, f)
            if verify[k]:
                tr.check_shape(o, k, f, name)


@register_op("cat", "concat", "concatenate")
def cat(tr: Tracer, name: str, func: Callable, args: tuple, kwargs: dict, out: Any) -> None:
    tensors = list(_arg(args, kwargs, 0, "tensors"))
    tensors = [t for t in tensors if t.numel() or t.ndim == out.ndim]
    dim = int(_arg(args, kwargs, 1, "dim", 0)) % out.ndim
    fields = [tr.fields(t) for t in tensors]
    result: Fields = {}
    for d in range(out.ndim):
        if d == dim:
            parts = [f.get(d, torch.full((t.shape[d],), -1, dtype=torch.long)) for f, t in zip(fields, tensors)]
            joined = torch.cat(parts)
            if bool((joined >= 0).any()):
                result[d] = joined
            continue
        sub = broadcast_fields(tr, [({0: f[d]} if d in f else {}, (t.shape[d],)) for f, t in zip(fields, tensors)],
                               (out.shape[d],), name)
        if 0 in sub:
            result[d] = sub[0]
    tr.set(out, result)


@register_op("stack")
def stack(tr: Tracer, name: str, func: Callable, args: tuple, kwargs: dict, out: Any) -> None:
    tensors = list(_arg(args, kwargs, 0, "tensors"))
    dim = int(_arg(args, kwargs, 1, "dim", 0)) % out.ndim
    merged = broadcast_fields(tr, [(tr.fields(t), tuple(t.shape)) for t in tensors], tuple(tensors[0].shape), name)
    tr.set(out, {(d if d < dim else d + 1): ids for d, ids in merged.items()})


def _split_size_follows(tr: Tracer, ids: torch.Tensor, rows: torch.Tensor, size: int) -> bool:
    """``x.split(size)`` into equal parts of a channel dim: does ``size`` follow the pruned width?

    Yes when the code read the width (``x.shape[1] // 2``), or ``size`` or the whole width is an int attribute
    of the running module (CSPDarkNet's ``x.split(self.expand_chs // 2)``, selective kernel's
    ``self.in_channels // self.num_paths``): the attribute is linked and follows the width. The check forward
    after pruning verifies the parts.
    """
    width = int(ids.numel())
    if any(_same_ids(r, ids) for r in tr.read_channels(width) or []):
        tr.assumptions.add(f"{tr.rec.where}: split size {size} read from .shape")
        return True
    part, whole = tr.value_attribute(size), tr.value_attribute(width)
    if part is not None and part != whole:
        tr.link(part, rows[0], f"split into parts of {size}")
    if whole is not None:
        tr.link(whole, ids, f"split of {width} channels")
    return part is not None or whole is not None


@register_op("chunk", "split", "tensor_split", "unbind", "split_with_sizes")
def split(tr: Tracer, name: str, func: Callable, args: tuple, kwargs: dict, out: Any) -> None:
    """Equal parts of a channel dim lose the same offsets (so ``chunk`` still splits right); an int part size
    must follow the width (read from ``.shape`` or an attribute, see ``_split_size_follows``); other sized
    splits block."""
    x = args[0]
    if name == "unbind":
        dim = int(_arg(args, kwargs, 1, "dim", 0)) % x.ndim
    else:
        dim = int(_arg(args, kwargs, 2, "dim", 0)) % x.ndim
    fx = tr.fields(x)
    outs = list(out)
    lens = [o.shape[dim] if name != "unbind" else 1 for o in outs]
    rows = None
    parts: list[torch.Tensor] | None = None
    verify = False
    if dim in fx:
        equal = name in ("chunk", "split", "tensor_split") and len(set(lens)) == 1 and isinstance(args[1], int)
        sizes = args[1] if len(args) > 1 else kwargs.get("split_size_or_sections", kwargs.get("split_sizes"))
        listed = None
        if name in ("split", "split_with_sizes") and isinstance(sizes, (list, tuple)):
            listed = tr.value_attribute([int(n) for n in sizes])
        if listed is not None:
            # sizes kept in a list attribute (MixNet's x.split(self.splits, 1)): each part is its own channel
            # set, and element i of the list follows part i
            parts = list(torch.split(fx[dim], [int(n) for n in sizes]))
            for i, part in enumerate(parts):
                tr.link((listed[0], f"{listed[1]}[{i}]"), part, f"split into parts of .{listed[1]}")
            verify = True
        elif equal and name != "unbind":
            rows = fx[dim].view(len(outs), lens[0])
            tr.rec.unify(rows, rows[:1].expand_as(rows), f"{name} into equal parts")
            if name == "split" and len(outs) > 1:
                verify = _split_size_follows(tr, fx[dim], rows, int(args[1]))
                if not verify:
                    tr.rec.block(fx[dim], f"split into parts of a literal size {args[1]} (use chunk, or read it "
                                          "from .shape)")
        else:
            tr.rec.block(fx[dim], f"{name} of a channel dim into fixed sizes")
    for k, o in enumerate(outs):
        f: Fields = {}
        for d, ids in fx.items():
            if d == dim:
                if rows is not None:
                    f[d] = rows[k]
                elif parts is not None:
                    f[d] = parts[k]
                continue
            f[d if (name != "unbind" or d < dim) else d - 1] = ids
        tr.set(o, f)
        if verify:
            tr.check_shape(o, k, f, name)


# ---------------------------------------------------------------------------------------------- reductions

REDUCTIONS = (
    "sum mean amax amin max min std var norm logsumexp prod nansum nanmean median var_mean std_mean "
    "count_nonzero all any argmax argmin"
).split()


@register_op(*REDUCTIONS)
def reduction(tr: Tracer, name: str, func: Callable, args: tuple, kwargs: dict, out: Any) -> None:
    """Channels reduced over are consumed without weights: removable, but not exactly (``inexact``)."""
    x = args[0]
    outs = [o for o in (out if isinstance(out, (tuple, list)) else [out]) if isinstance(o, torch.Tensor)]
    if name in ("max", "min") and len(args) > 1 and isinstance(args[1], torch.Tensor):
        return elementwise(tr, name, func, args, kwargs, out)
    dim_arg = _arg(args, kwargs, 1, "dim")
    if name == "norm":
        dim_arg = _arg(args, kwargs, 2, "dim")
    dims = _dims(dim_arg, x.ndim)
    if dims is None:
        dims = list(range(x.ndim))
    keep = bool(_arg(args, kwargs, 3 if name == "norm" else 2, "keepdim", False)) if outs and outs[0].ndim == x.ndim else False
    f: Fields = {}
    for d, ids in tr.fields(x).items():
        if d in dims:
            if name in ("argmax", "argmin", "median", "max", "min", "all", "any"):
                tr.rec.block(ids, f"{name} over a channel dim")
            else:
                tr.rec.mark_inexact(ids)
            continue
        f[d if keep else d - sum(r < d for r in dims)] = ids
    for o in outs:
        tr.set(o, dict(f))


@register_op("normalize")
def normalize(tr: Tracer, name: str, func: Callable, args: tuple, kwargs: dict, out: Any) -> None:
    """``F.normalize(x, p, dim)``: channels along ``dim`` share the norm (inexact, like a LayerNorm's statistics)."""
    x = args[0]
    dim = int(_arg(args, kwargs, 2, "dim", 1)) % max(x.ndim, 1)
    fx = tr.fields(x)
    if dim in fx:
        tr.rec.mark_inexact(fx[dim])
    tr.set(out, dict(fx))


@register_op("softmax", "log_softmax", "cumsum", "cumprod", "logcumsumexp", "sort", "argsort", "topk", "roll")
def along_dim(tr: Tracer, name: str, func: Callable, args: tuple, kwargs: dict, out: Any) -> None:
    """Ops whose result along ``dim`` depends on every position: a channel dim there is blocked."""
    x = args[0]
    dim_arg = _arg(args, kwargs, 2 if name in ("roll", "topk") else 1, "dims" if name == "roll" else "dim")
    dims = _dims(dim_arg, x.ndim) if dim_arg is not None else list(range(x.ndim))
    if name == "roll" and dims is None:
        dims = list(range(x.ndim))
    f: Fields = {}
    for d, ids in tr.fields(x).items():
        if d in dims and name in ("softmax", "log_softmax"):
            # a distribution over channels (XCiT's cross-covariance attention over key channels): removing one
            # renormalizes over the rest, like removing a key token; positions stay, so the removal is inexact
            tr.rec.mark_inexact(ids)
            f[d] = ids
        elif d in dims or name == "topk":
            tr.rec.block(ids, f"{name} along a channel dim")
        else:
            f[d] = ids
    for o in out if isinstance(out, (tuple, list)) else [out]:
        if isinstance(o, torch.Tensor) and o.ndim == x.ndim:
            tr.set(o, dict(f))


SPATIAL = (
    "max_pool1d max_pool2d max_pool3d avg_pool1d avg_pool2d avg_pool3d adaptive_avg_pool1d adaptive_avg_pool2d "
    "adaptive_avg_pool3d adaptive_max_pool1d adaptive_max_pool2d adaptive_max_pool3d lp_pool1d lp_pool2d interpolate "
    "upsample upsample_nearest upsample_bilinear max_pool1d_with_indices max_pool2d_with_indices pad"
).split()


@register_op(*SPATIAL)
def spatial(tr: Tracer, name: str, func: Callable, args: tuple, kwargs: dict, out: Any) -> None:
    """Pooling, resizing and padding act on dims 2+: batch and channel fields pass, fields on spatial dims block."""
    x = args[0]
    touched = set(range(2, x.ndim))
    if name == "pad":  # (left, right) per dim from the last: a dim padded by (0, 0) is untouched
        pad = list(_arg(args, kwargs, 1, "pad"))
        touched = {x.ndim - 1 - i for i in range(len(pad) // 2) if pad[2 * i] or pad[2 * i + 1]}
    f: Fields = {}
    for d, ids in tr.fields(x).items():
        if d in touched:
            tr.rec.block(ids, f"{name} over a channel dim")
        else:
            f[d] = ids
    for o in out if isinstance(out, (tuple, list)) else [out]:
        if isinstance(o, torch.Tensor) and o.ndim == x.ndim:
            tr.set(o, dict(f))


@register_op("pixel_shuffle", "pixel_unshuffle")
def pixel_shuffle(tr: Tracer, name: str, func: Callable, args: tuple, kwargs: dict, out: Any) -> None:
    """Sub-pixel moves between channels and space: ``pixel_shuffle`` folds each run of r*r input channels into
    one output channel (the run is one unit, removed whole); ``pixel_unshuffle`` spreads input channel c over
    output channels c*r*r .. c*r*r + r*r - 1 (removing c removes all of them)."""
    x = args[0]
    r = int(_arg(args, kwargs, 1, "upscale_factor" if name == "pixel_shuffle" else "downscale_factor"))
    cdim = x.ndim - 3
    result: Fields = {}
    for d, ids in tr.fields(x).items():
        if d < cdim:
            result[d] = ids
        elif d > cdim:
            tr.rec.block(ids, f"{name} over a channel dim")
        elif name == "pixel_shuffle":
            runs = ids.view(-1, r * r)
            tr.rec.unify(runs, runs[:, :1].expand_as(runs), f"{name} folds {r * r} channels into one")
            result[d] = runs.max(dim=1).values
        else:
            result[d] = ids.repeat_interleave(r * r)
    tr.set(out, result)


@register_op("index_select")
def index_select(tr: Tracer, name: str, func: Callable, args: tuple, kwargs: dict, out: Any) -> None:
    """Picking rows along ``dim`` (e.g. sorting a batch by length): other dims pass; a channel dim there blocks."""
    x = args[0]
    dim = _dims(_arg(args, kwargs, 1, "dim"), x.ndim)[0]
    f: Fields = {}
    for d, ids in tr.fields(x).items():
        if d == dim:
            tr.rec.block(ids, "index_select along a channel dim")
        else:
            f[d] = ids
    tr.set(out, f)


@register_op("pack_padded_sequence")
def pack_padded_sequence(tr: Tracer, name: str, func: Callable, args: tuple, kwargs: dict, out: Any) -> None:
    """``(T, B, *F)`` (or batch first) becomes packed ``data`` of shape ``(tokens, *F)``: feature dims move up by one,
    channel fields on the time or batch dims block."""
    x, data = args[0], out[0]
    f: Fields = {}
    for d, ids in tr.fields(x).items():
        if d < 2:
            tr.rec.block(ids, "pack_padded_sequence over a channel dim")
        else:
            f[d - 1] = ids
    tr.set(data, f)


@register_op("pad_packed_sequence")
def pad_packed_sequence(tr: Tracer, name: str, func: Callable, args: tuple, kwargs: dict, out: Any) -> None:
    """Packed ``data`` ``(tokens, *F)`` back to ``(T, B, *F)`` (or batch first): feature dims move down by one."""
    data, padded = args[0], out[0]
    f: Fields = {}
    for d, ids in tr.fields(data).items():
        if d == 0:
            tr.rec.block(ids, "pad_packed_sequence over a channel dim")
        else:
            f[d + 1] = ids
    tr.set(padded, f)


def unknown(tr: Tracer, name: str, func: Callable, args: tuple, kwargs: dict, out: Any) -> None:
    """An op the engine does not understand: block every channel that reaches it."""
    for t in _tensors((args, kwargs)):
        tr.rec.block_fields(tr.fields(t), f"op {name!r} is not understood")
    tr.unknown_ops.add(f"{tr.rec.where}: {name}")
