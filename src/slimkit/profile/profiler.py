"""``slimkit.profile(model, example_inputs)``: params, MACs, FLOPs, size and activation memory of one forward pass."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

import torch
from torch import nn
from torch.utils._pytree import tree_leaves

from slimkit.core.errors import ConfigError
from slimkit.profile.report import LayerRow, ProfileReport
from slimkit.profile.tracing import ModuleStats, Trace, trace_forward


def as_call_args(example_inputs: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """``(args, kwargs)`` for ``model(*args, **kwargs)`` from a tensor, a tuple/list of inputs, or a mapping."""
    if isinstance(example_inputs, Mapping):
        return (), dict(example_inputs)
    if isinstance(example_inputs, (tuple, list)):
        return tuple(example_inputs), {}
    return (example_inputs,), {}


@contextlib.contextmanager
def _below_autograd() -> Iterator[None]:
    """No grad, and dispatch starting below the autograd keys.

    Below autograd, composite ops reach the dispatch mode whole instead of being split by the autograd kernel, so
    e.g. a global ``adaptive_avg_pool2d`` is counted as pooling rather than as the ``mean`` it becomes. Unlike
    ``torch.inference_mode`` the tensors made here are ordinary ones, so a module that caches a tensor on its
    first forward (rotary tables, masks) can still be trained after being profiled.
    """
    guard = getattr(torch._C, "_AutoDispatchBelowAutograd", None)
    with torch.no_grad(), (guard() if guard is not None else torch.inference_mode()):
        yield


def _unique_tensors(tensors: Any) -> list[torch.Tensor]:
    seen: set[int] = set()
    unique = []
    for t in tensors:
        if t is not None and id(t) not in seen:
            seen.add(id(t))
            unique.append(t)
    return unique


def _param_owner_rows(model: nn.Module, row_fqns: set[str]) -> dict[str, int]:
    """Parameters per row: each unique parameter goes to the nearest enclosing module that has a row."""
    counts: dict[str, int] = {}
    for name, param in model.named_parameters():  # named_parameters drops duplicates (tied weights once)
        owner = name.rpartition(".")[0]
        while owner not in row_fqns and owner:
            owner = owner.rpartition(".")[0]
        counts[owner] = counts.get(owner, 0) + param.numel()
    return counts


def _rows(model: nn.Module, trace: Trace) -> tuple[LayerRow, ...]:
    """Leaf modules that ran, plus any module that did arithmetic itself (functional ops in its forward)."""
    modules = dict(model.named_modules())
    leaves = {fqn for fqn, m in modules.items() if next(iter(m.children()), None) is None}
    chosen: dict[str, ModuleStats] = {}
    for fqn, stats in trace.modules.items():
        if fqn in leaves or stats.macs or stats.flops:
            chosen[fqn] = stats
    params = _param_owner_rows(model, set(chosen))
    for fqn in params:  # parameters of modules that never ran and have no running ancestor
        if fqn not in chosen:
            module = modules.get(fqn, model)
            chosen[fqn] = ModuleStats(fqn, type(module).__name__, len(trace.modules) + len(chosen))
    ordered = sorted(chosen.values(), key=lambda s: s.order)
    return tuple(
        LayerRow(
            fqn=s.fqn or "<root>",
            type=s.type,
            params=params.get(s.fqn, 0),
            macs=s.macs,
            flops=s.flops,
            output_shape=s.output_shape,
            calls=s.calls,
        )
        for s in ordered
    )


def profile(model: nn.Module, example_inputs: Any) -> ProfileReport:
    """Count params, MACs, FLOPs, storage and peak activation memory of one inference forward pass.

    The model runs once, in eval mode without autograd, on ``example_inputs`` (wherever model and inputs
    live; no symbolic tracing, so any Python control flow works). Every ATen operator is counted, so functional
    matmuls and attention in ``forward`` are included, and per-layer rows add up to the totals. The model's
    train/eval flags are restored afterwards; nothing else is changed.

    Args:
        model: any ``nn.Module``.
        example_inputs: a tensor, a tuple/list of positional inputs, or a mapping of keyword inputs.

    Returns:
        A :class:`ProfileReport`.

    Raises:
        ConfigError: when ``example_inputs`` holds no tensor.

    Example:
        >>> report = slimkit.profile(model, torch.randn(1, 3, 32, 32))
        >>> print(report.table()); report.macs, report.size_at(bits=8, sparsity=0.9)
    """
    args, kwargs = as_call_args(example_inputs)
    tensors = [t for t in tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)]
    if not tensors:
        raise ConfigError("example_inputs: expected at least one tensor (a tensor, a tuple of them, or a dict)")
    training = {m: m.training for m in model.modules()}
    model.eval()
    try:
        with _below_autograd():
            trace, _ = trace_forward(model, args, kwargs)
    finally:
        for module, flag in training.items():
            module.training = flag

    params = _unique_tensors(model.parameters())
    with torch.no_grad():
        nonzero = sum(int(torch.count_nonzero(p)) for p in params)
    buffers = _unique_tensors(model.buffers())
    param_bytes = sum(p.numel() * p.element_size() for p in params)
    buffer_bytes = sum(b.numel() * b.element_size() for b in buffers)
    layers = _rows(model, trace)
    return ProfileReport(
        params=sum(p.numel() for p in params),
        nonzero_params=nonzero,
        macs=sum(s.macs for s in trace.modules.values()),
        flops=sum(s.flops for s in trace.modules.values()),
        size_bytes=param_bytes + buffer_bytes,
        param_bytes=param_bytes,
        buffer_bytes=buffer_bytes,
        peak_activation_bytes=trace.peak_activation_bytes,
        layers=layers,
        ops={name: {"calls": op.calls, "macs": op.macs, "flops": op.flops} for name, op in sorted(trace.ops.items())},
        uncounted_ops=dict(sorted(trace.uncounted.items())),
        input_shapes=tuple(tuple(t.shape) for t in tensors),
    )
