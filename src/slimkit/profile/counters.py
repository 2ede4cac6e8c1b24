"""How many MACs and FLOPs one ATen operator call costs: a registry of small functions keyed by operator.

The profiler runs the model once under a ``TorchDispatchMode`` and asks this table about every operator it sees.
Composite operators (``linear``, ``matmul``, ``einsum``, ``conv2d``, ``scaled_dot_product_attention``, ...) that
are not registered here are decomposed into the operators they are made of, so a counter is needed only for the
operators that do the arithmetic (``mm``, ``bmm``, ``convolution``, fused attention kernels, norms, pools).

Convention (also in docs/profiling.md):

* MACs: multiply-accumulates of conv / transposed conv / linear / matmul / attention (``q @ k^T`` and
  ``attn @ v``), normalization (1 per element: in inference a norm is the per-channel affine ``x * a + b``), and
  average pooling (1 per window element: a depthwise conv with weights ``1/k``). Bias adds are not MACs.
* FLOPs: ``2 x MACs`` plus: bias adds (1 per output element), statistics of norms computed at run time
  (layer/group/instance norm, training-mode BN: 4 per element), max pooling (1 comparison per window element),
  softmax (3 per element: exp, add, divide), every other pointwise op (1 per output element: activations, adds,
  multiplies, ...), reductions (1 per input element: sum, mean, max, ...). Data movement (views, copies, cat,
  indexing, padding) is free.

Users register counters for their own operators::

    @register_op_counter(torch.ops.mylib.fused_gemm)
    def _fused_gemm(args: Sequence[Any], kwargs: dict[str, Any], out: Any) -> OpCount:
        a, b = args[0], args[1]
        macs = a.shape[0] * a.shape[1] * b.shape[1]
        return OpCount(macs, 2 * macs)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import torch
from torch.utils._pytree import tree_leaves

from slimkit.core.registry import Registry

aten = torch.ops.aten


class OpCount(NamedTuple):
    """Cost of one operator call; ``flops`` already includes ``2 * macs``."""

    macs: int
    flops: int


OpCounter = Callable[[Sequence[Any], dict[str, Any], Any], OpCount]
OP_COUNTERS: Registry[OpCounter] = Registry("op counter")


def register_op_counter(*ops: Any) -> Callable[[OpCounter], OpCounter]:
    """Register ``fn(args, kwargs, out) -> OpCount`` for operator packets such as ``torch.ops.aten.mm``.

    A registered operator is counted as a whole and not decomposed further.
    """

    def add(fn: OpCounter) -> OpCounter:
        for op in ops:
            OP_COUNTERS[op] = fn
        return fn

    return add


def _optional(*names: str) -> list[Any]:
    """Operator packets that exist in this torch build (fused kernels differ across versions and devices)."""
    return [getattr(aten, n) for n in names if hasattr(aten, n)]


def _first_tensor(value: Any) -> torch.Tensor:
    for leaf in tree_leaves(value):
        if isinstance(leaf, torch.Tensor):
            return leaf
    raise TypeError("operator produced no tensor")


def _arg(args: Sequence[Any], kwargs: dict[str, Any], index: int, name: str, default: Any = None) -> Any:
    if len(args) > index:
        return args[index]
    return kwargs.get(name, default)


# ---------------------------------------------------------------- matrix products


@register_op_counter(aten.mm)
def _mm(args: Sequence[Any], kwargs: dict[str, Any], out: Any) -> OpCount:
    a, b = args[0], args[1]  # (M, K) @ (K, N)
    macs = a.shape[0] * a.shape[1] * b.shape[1]
    return OpCount(macs, 2 * macs)


@register_op_counter(aten.addmm)
def _addmm(args: Sequence[Any], kwargs: dict[str, Any], out: Any) -> OpCount:
    macs = _mm(args[1:], kwargs, out).macs
    return OpCount(macs, 2 * macs + out.numel())  # + bias add


@register_op_counter(aten.bmm)
def _bmm(args: Sequence[Any], kwargs: dict[str, Any], out: Any) -> OpCount:
    a, b = args[0], args[1]  # (B, M, K) @ (B, K, N)
    macs = a.shape[0] * a.shape[1] * a.shape[2] * b.shape[2]
    return OpCount(macs, 2 * macs)


@register_op_counter(aten.baddbmm)
def _baddbmm(args: Sequence[Any], kwargs: dict[str, Any], out: Any) -> OpCount:
    macs = _bmm(args[1:], kwargs, out).macs
    return OpCount(macs, 2 * macs + out.numel())


@register_op_counter(aten.mv, aten.dot, aten.vdot)
def _mv(args: Sequence[Any], kwargs: dict[str, Any], out: Any) -> OpCount:
    macs = args[0].numel()  # (M, K) @ (K,) or (K,) . (K,)
    return OpCount(macs, 2 * macs)


@register_op_counter(aten.addmv)
def _addmv(args: Sequence[Any], kwargs: dict[str, Any], out: Any) -> OpCount:
    macs = args[1].numel()
    return OpCount(macs, 2 * macs + out.numel())


# ---------------------------------------------------------------- convolution


@register_op_counter(*_optional("convolution", "_convolution"))
def _convolution(args: Sequence[Any], kwargs: dict[str, Any], out: Any) -> OpCount:
    """Every output position times a full kernel window (padding positions included, as thop and fvcore).

    Regular: ``N * C_out * prod(out_spatial) * (C_in / groups) * prod(kernel)``.
    Transposed (weight ``(C_in, C_out / groups, *kernel)``): each input element meets one kernel slice, so
    ``N * C_in * prod(in_spatial) * (C_out / groups) * prod(kernel)``.
    """
    x, weight, bias = args[0], args[1], _arg(args, kwargs, 2, "bias")
    transposed = bool(_arg(args, kwargs, 6, "transposed", False))
    per_position = weight.shape[1] * math.prod(weight.shape[2:])
    macs = (x.numel() if transposed else out.numel()) * per_position
    return OpCount(macs, 2 * macs + (out.numel() if bias is not None else 0))


# ---------------------------------------------------------------- attention


@register_op_counter(
    *_optional(
        "_scaled_dot_product_flash_attention_for_cpu",
        "_scaled_dot_product_flash_attention",
        "_scaled_dot_product_efficient_attention",
        "_scaled_dot_product_cudnn_attention",
        "_scaled_dot_product_fused_attention_overrideable",
    )
)
def _fused_attention(args: Sequence[Any], kwargs: dict[str, Any], out: Any) -> OpCount:
    """Fused kernels take ``q (..., L, E)``, ``k (..., S, E)``, ``v (..., S, Ev)``.

    MACs are those of ``q @ k^T`` and ``attn @ v`` over the full L x S score matrix (causal masking not
    subtracted); FLOPs add the score scaling (1) and softmax (3) per score element.
    """
    q, k, v = args[0], args[1], args[2]
    batch_heads = math.prod(q.shape[:-2])
    scores = batch_heads * q.shape[-2] * k.shape[-2]
    macs = scores * (q.shape[-1] + v.shape[-1])
    return OpCount(macs, 2 * macs + 4 * scores)


@register_op_counter(*_optional("_native_multi_head_attention"))
def _native_mha(args: Sequence[Any], kwargs: dict[str, Any], out: Any) -> OpCount:
    """The fast path of ``nn.MultiheadAttention`` (batch_first, eval): counted like its unfused slow path.

    MACs: q/k/v projections, ``q @ k^T``, ``attn @ v``, output projection. FLOPs add the bias adds, the scaling of q,
    softmax (3 per score) and, when attention weights are averaged for the caller, the mean over heads.
    """
    query, key = args[0], args[1]
    embed_dim, num_heads = int(args[3]), int(args[4])
    need_weights = bool(_arg(args, kwargs, 10, "need_weights", True))
    average = bool(_arg(args, kwargs, 11, "average_attn_weights", True))
    tokens_q = query.numel() // embed_dim  # B * L
    tokens_k = key.numel() // embed_dim  # B * S
    seq_k = key.shape[-2] if key.dim() == 3 else key.shape[0]
    scores = tokens_q * num_heads * seq_k  # B * H * L * S
    macs = (tokens_q + 2 * tokens_k) * embed_dim * embed_dim + 2 * tokens_q * seq_k * embed_dim
    macs += tokens_q * embed_dim * embed_dim
    extra = (2 * tokens_q + 2 * tokens_k) * embed_dim + tokens_q * embed_dim + 3 * scores
    if need_weights and average:
        extra += scores
    return OpCount(macs, 2 * macs + extra)


@register_op_counter(*_optional("mkldnn_rnn_layer"))
def _mkldnn_lstm_layer(args: Sequence[Any], kwargs: dict[str, Any], out: Any) -> OpCount:
    """One LSTM layer run by the oneDNN kernel (the CPU path of ``nn.LSTM``).

    MACs: ``tokens * (4H * I + 4H * H)``. FLOPs add per token and hidden unit 8 bias adds and 9 gate ops
    (3 sigmoids, 2 tanh, 3 multiplies, 1 add).
    """
    x, w_ih, w_hh = args[0], args[1], args[2]
    tokens = x.numel() // w_ih.shape[1]
    hidden = w_hh.shape[1]
    macs = tokens * (w_ih.numel() + w_hh.numel())
    return OpCount(macs, 2 * macs + tokens * hidden * 17)


# ---------------------------------------------------------------- normalization


@register_op_counter(aten.batch_norm)
def _batch_norm(args: Sequence[Any], kwargs: dict[str, Any], out: Any) -> OpCount:
    """Inference BN is the per-channel affine ``x * a + b``: 1 MAC per element; batch statistics add 4 FLOPs."""
    n = args[0].numel()
    training = bool(_arg(args, kwargs, 5, "training", False))
    return OpCount(n, 2 * n + (4 * n if training else 0))


@register_op_counter(*_optional("_native_batch_norm_legit_no_training", "_native_batch_norm_legit_functional"))
def _bn_no_training(args: Sequence[Any], kwargs: dict[str, Any], out: Any) -> OpCount:
    n = args[0].numel()
    return OpCount(n, 2 * n)


@register_op_counter(
    *_optional(
        "layer_norm", "group_norm", "instance_norm", "native_layer_norm", "native_group_norm",
        "_native_batch_norm_legit", "rms_norm", "_fused_rms_norm",
    )
)
def _norm_with_statistics(args: Sequence[Any], kwargs: dict[str, Any], out: Any) -> OpCount:
    """Norms that compute mean and variance at run time: 1 MAC per element plus 4 FLOPs per element for the
    statistics (mean: add; variance: subtract, multiply, add)."""
    n = args[0].numel()
    return OpCount(n, 6 * n)


@register_op_counter(aten.native_batch_norm, *_optional("cudnn_batch_norm", "miopen_batch_norm"))
def _native_batch_norm(args: Sequence[Any], kwargs: dict[str, Any], out: Any) -> OpCount:
    n = args[0].numel()
    training = bool(_arg(args, kwargs, 5, "training", False))
    return OpCount(n, 2 * n + (4 * n if training else 0))


# ---------------------------------------------------------------- pooling


def _kernel_elements(kernel_size: Any, spatial_dims: int) -> int:
    kernel = [int(k) for k in (kernel_size if isinstance(kernel_size, (list, tuple)) else [kernel_size])]
    if len(kernel) == 1:
        kernel = kernel * spatial_dims
    return math.prod(kernel)


def _pool_counter(spatial_dims: int, *, average: bool) -> OpCounter:
    def count(args: Sequence[Any], kwargs: dict[str, Any], out: Any) -> OpCount:
        window = _kernel_elements(_arg(args, kwargs, 1, "kernel_size"), spatial_dims)
        total = _first_tensor(out).numel() * window  # one per window element (padding included)
        return OpCount(total, 2 * total) if average else OpCount(0, total)

    return count


for _dims in (1, 2, 3):
    register_op_counter(*_optional(f"avg_pool{_dims}d"))(_pool_counter(_dims, average=True))
    register_op_counter(*_optional(f"max_pool{_dims}d", f"max_pool{_dims}d_with_indices"))(
        _pool_counter(_dims, average=False)
    )


def adaptive_window_elements(in_sizes: Sequence[int], out_sizes: Sequence[int]) -> int:
    """Sum over output positions of the adaptive pooling window size (exact, windows may overlap or differ).

    Along one axis output ``i`` covers ``[floor(i * In / Out), ceil((i + 1) * In / Out))``.
    """
    total = 1
    for size_in, size_out in zip(in_sizes, out_sizes):
        i = torch.arange(size_out, dtype=torch.int64)
        start = (i * size_in) // size_out
        end = ((i + 1) * size_in + size_out - 1) // size_out
        total *= int((end - start).sum())
    return total


def _adaptive_counter(spatial_dims: int, *, average: bool) -> OpCounter:
    def count(args: Sequence[Any], kwargs: dict[str, Any], out: Any) -> OpCount:
        x, y = args[0], _first_tensor(out)
        channels = math.prod(x.shape[:-spatial_dims])  # N * C (or C when unbatched)
        total = channels * adaptive_window_elements(x.shape[-spatial_dims:], y.shape[-spatial_dims:])
        return OpCount(total, 2 * total) if average else OpCount(0, total)

    return count


for _dims in (1, 2, 3):
    # the composite ops are registered so that a 1x1 output is not decomposed into ``mean`` (a reduction)
    register_op_counter(*_optional(f"adaptive_avg_pool{_dims}d", f"_adaptive_avg_pool{_dims}d"))(
        _adaptive_counter(_dims, average=True)
    )
    register_op_counter(*_optional(f"adaptive_max_pool{_dims}d"))(_adaptive_counter(_dims, average=False))


# ---------------------------------------------------------------- softmax and generic families


@register_op_counter(*_optional("_softmax", "_log_softmax", "_safe_softmax"))
def _softmax(args: Sequence[Any], kwargs: dict[str, Any], out: Any) -> OpCount:
    return OpCount(0, 3 * _first_tensor(out).numel())  # exp, add (normalizer), divide


# Data movement and tensor creation: no arithmetic. (Pointwise-tagged copies like ``clone`` are listed here so the
# generic pointwise rule does not count them.)
FREE_OPS: frozenset[str] = frozenset(
    """
    clone copy copy_ _to_copy contiguous _copy_from _copy_from_and_resize fill fill_ zero_ masked_fill masked_fill_
    lift_fresh lift_fresh_copy detach detach_ alias empty empty_like empty_strided zeros zeros_like ones ones_like
    full full_like new_empty new_empty_strided new_zeros new_ones new_full scalar_tensor arange linspace cat stack
    constant_pad_nd reflection_pad1d reflection_pad2d reflection_pad3d replication_pad1d replication_pad2d
    replication_pad3d index_select gather embedding index _unsafe_index index_put index_put_ _unsafe_index_put
    _unsafe_view slice_scatter select_scatter diagonal_scatter as_strided_scatter repeat roll flip tril triu
    randn rand randint normal_ uniform_ bernoulli_ random_ _local_scalar_dense split_with_sizes_copy unbind_copy
    set_ resize_ as_strided_ unfold_copy view_copy t_copy _reshape_alias_copy masked_select nonzero
    item _to_dense to_dense one_hot scatter scatter_ sort topk argmax argmin native_dropout dropout
    """.split()
)


_REDUCTION = getattr(torch.Tag, "reduction", None)  # absent in older torch builds


def count_op(func: Any, args: Sequence[Any], kwargs: dict[str, Any], out: Any) -> OpCount | None:
    """Cost of one call of ``func`` (an ``OpOverload``), or ``None`` when no rule covers it (reported as such).

    Order: a registered counter; free data movement and views; reductions (1 FLOP per input element); other
    pointwise ops (1 FLOP per output element).
    """
    packet = func.overloadpacket
    counter = OP_COUNTERS.get(packet, None)
    if counter is not None:
        return counter(args, kwargs, out)
    name = packet.__name__
    if name in FREE_OPS or func.is_view:
        return OpCount(0, 0)
    tags = func.tags
    if _REDUCTION is not None and _REDUCTION in tags:
        source = next((a for a in tree_leaves(args) if isinstance(a, torch.Tensor)), None)
        return OpCount(0, source.numel() if source is not None else 0)
    if torch.Tag.pointwise in tags:
        try:
            return OpCount(0, _first_tensor(out).numel())
        except TypeError:
            return OpCount(0, 0)
    if not any(isinstance(leaf, torch.Tensor) and leaf.numel() > 0 for leaf in tree_leaves(out)):
        return OpCount(0, 0)  # metadata queries, empty results
    return None
