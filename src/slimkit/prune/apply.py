"""Physically remove channels: slice every occurrence, fix module attributes, verify, update the optimizer.

The whole change runs inside :func:`slimkit.core.transaction`: the pruned model is run once on the example inputs
and must give outputs of the same shapes; on any error the model is restored exactly and a ``GraphError`` names
the module that failed. Shared (tied) tensors are sliced once and stay shared.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from slimkit.core.errors import GraphError
from slimkit.core.forward import module_stack, training_mode
from slimkit.core.modules import label
from slimkit.core.shapes import sync_attributes
from slimkit.core.transaction import transaction
from slimkit.graph.groups import ChannelGraph
from slimkit.graph.ops import _tensors
from slimkit.graph.verify import Expected, expected_shapes, planned_shapes


def keep_indices(graph: ChannelGraph, removed: torch.Tensor) -> dict[int, dict[int, torch.Tensor]]:
    """For every tensor that loses positions: ``{tensor index: {dim: indices to keep}}``."""
    plan: dict[int, dict[int, torch.Tensor]] = {}
    for o in graph.occurrences:
        drop = removed[graph.comp[o.ids]]
        if bool(drop.any()):
            plan.setdefault(o.tensor, {})[o.dim] = (~drop).nonzero().squeeze(1)
    return plan


def _slice(t: torch.Tensor, dims: dict[int, torch.Tensor]) -> torch.Tensor:
    out = t.detach()
    for d, idx in dims.items():
        out = out.index_select(d, idx.to(out.device))
    return out.contiguous()


def _check_unchanged(graph: ChannelGraph) -> None:
    for k, t in enumerate(graph.tensors):
        for fqn, module, attr, is_param in graph.locations[k]:
            table = module._parameters if is_param else module._buffers
            if table.get(attr) is not t or tuple(t.shape) != graph.shapes[k]:
                raise GraphError(f"{label(fqn, module)}: {attr} changed since the plan was made; plan again")


def _shapes(out: Any) -> list[tuple[int, ...]]:
    return [tuple(t.shape) for t in _tensors(out)]


def _forward(model: nn.Module, inputs: tuple, expected: Expected | None = None) -> Any:
    with module_stack(model) as stack, training_mode(model, False):
        try:
            with torch.no_grad(), planned_shapes(model, expected or {}):
                return model(*inputs)
        except Exception as err:
            where = stack[-1] if stack else label("", model)
            raise GraphError(f"{where}: forward fails after pruning ({type(err).__name__}: {err})") from err


def _finite(out: Any) -> list[bool]:
    return [bool(torch.isfinite(t).all()) if t.is_floating_point() else True for t in _tensors(out)]


def check_outputs(graph: ChannelGraph, inputs: tuple, removed: torch.Tensor | None = None) -> None:
    """Run the (pruned) model on the example inputs: it must run, keep every output shape, and keep finite
    outputs finite; with ``removed``, the ops whose counts the graph inferred must give the planned shapes
    (``slimkit.graph.verify``). Raises GraphError naming the failing module or output."""
    expected = expected_shapes(graph, removed) if removed is not None else None
    out = _forward(graph.model, inputs, expected)
    after = _shapes(out)
    if after != graph.output_shapes:
        raise GraphError(f"{label('', graph.model)}: pruning changed the output shapes {graph.output_shapes} -> {after}")
    was_finite = graph.output_finite or [True] * len(after)
    for i, (before, now) in enumerate(zip(was_finite, _finite(out))):
        if before and not now:
            raise GraphError(f"{label('', graph.model)}: pruning made output {i} NaN or infinite")


def _slice_model(graph: ChannelGraph, plan: dict[int, dict[int, torch.Tensor]],
                 removed: torch.Tensor) -> dict[int, torch.Tensor]:
    """Swap every planned tensor for its sliced copy and update the touched modules' attributes."""
    replaced: dict[int, torch.Tensor] = {}
    touched: dict[int, tuple[str, nn.Module]] = {}
    for k, dims in plan.items():
        old = graph.tensors[k]
        data = _slice(old, dims)
        if isinstance(old, nn.Parameter):
            new: torch.Tensor = nn.Parameter(data, requires_grad=old.requires_grad)
            if old.grad is not None:
                new.grad = _slice(old.grad, dims)
        else:
            new = data
        replaced[k] = new
        for fqn, module, attr, is_param in graph.locations[k]:
            (module._parameters if is_param else module._buffers)[attr] = new
            touched[id(module)] = (fqn, module)
    for module in graph.whole_heads:
        if id(module) in touched:  # whole heads went: head_dim stays, the head count follows the width
            module.num_heads = module.in_proj_weight.shape[1] // module.head_dim
    for fqn, module in touched.values():
        try:
            sync_attributes(module)
        except Exception as err:  # noqa: BLE001 - any failure must roll back and name the module
            raise GraphError(f"{label(fqn, module)}: cannot update attributes after pruning ({err})") from err
    for module, attr, ids in graph.int_links:  # counts a forward reads from an attribute (Conv1D's nf)
        live = ids[ids >= 0]  # the tracer links each attribute once (Tracer.link)
        gone = int(removed[graph.comp[live]].sum()) if live.numel() == ids.numel() else 0
        if gone:
            _decrement(module, attr, gone)
    return replaced


def _decrement(module: nn.Module, attr: str, gone: int) -> None:
    """``module.attr -= gone``; ``attr`` may name an element of a list or tuple attribute (``splits[1]``)."""
    if attr.endswith("]"):
        name, index = attr[:-1].split("[")
        seq = getattr(module, name)
        new = list(seq)
        new[int(index)] -= gone
        setattr(module, name, tuple(new) if isinstance(seq, tuple) else new)
    else:
        setattr(module, attr, int(getattr(module, attr)) - gone)


class _Rollback(Exception):
    pass


def trial(graph: ChannelGraph, removed: torch.Tensor, inputs: tuple) -> str | None:
    """Apply ``removed``, check the outputs, and undo it: ``None`` if the pruned model works, else the error."""
    plan = keep_indices(graph, removed)
    if not plan:
        return None
    try:
        with transaction(graph.model, replaces_only=True):
            _slice_model(graph, plan, removed)
            check_outputs(graph, inputs, removed)
            raise _Rollback
    except _Rollback:
        return None
    except GraphError as err:
        return str(err)


def breaking_groups(graph: ChannelGraph, removed: torch.Tensor, inputs: tuple) -> list[tuple[int, str]]:
    """The groups whose cut makes the forward fail, found by bisection over the plan's groups.

    Each trial re-applies a subset on the intact model and rolls it back. A group is blamed when adding it to a
    set already known to work breaks the model, so cuts that fail only together are caught too; the number of
    trials grows with (blamed groups) x log2(groups).
    """
    candidates = [i for i, g in enumerate(graph.groups) if bool(removed[g.channels].any())]

    def only(groups: list[int]) -> torch.Tensor:
        mask = torch.zeros_like(removed)
        for i in groups:
            ch = graph.groups[i].channels
            mask[ch] = removed[ch]
        return mask

    def find(base: list[int], cand: list[int]) -> list[tuple[int, str]]:
        if not cand:
            return []
        error = trial(graph, only(base + cand), inputs)
        if error is None:
            return []
        if len(cand) == 1:
            return [(cand[0], error)]
        half = len(cand) // 2
        bad_a = find(base, cand[:half])
        blamed = {i for i, _ in bad_a}
        good_a = [i for i in cand[:half] if i not in blamed]
        return bad_a + find(base + good_a, cand[half:])

    return find([], candidates)


def apply_removal(graph: ChannelGraph, removed: torch.Tensor, example_inputs: Any,
                  optimizer: torch.optim.Optimizer | None = None, *, verify: str = "auto") -> dict[int, dict[int, torch.Tensor]]:
    """Slice the model in place (atomically) and return what was kept per tensor.

    ``verify`` (``auto`` or ``always``; ``never`` skips it): run the pruned model on the example inputs; it must
    run, keep its output shapes, and keep finite outputs finite.

    Raises:
        GraphError: the model changed since tracing, or the pruned model fails the check (the model is then
            restored exactly).
    """
    model = graph.model
    inputs = example_inputs if isinstance(example_inputs, tuple) else (example_inputs,)
    _check_unchanged(graph)
    plan = keep_indices(graph, removed)
    if not plan:
        return plan
    with transaction(model, replaces_only=True):  # slicing makes new tensors; the old ones stay intact
        replaced = _slice_model(graph, plan, removed)
        if verify != "never":
            check_outputs(graph, inputs, removed)
    if optimizer is not None:
        _update_optimizer(optimizer, graph, plan, replaced)
    return plan


def _update_optimizer(optimizer: torch.optim.Optimizer, graph: ChannelGraph,
                      plan: dict[int, dict[int, torch.Tensor]], replaced: dict[int, torch.Tensor]) -> None:
    """Point the optimizer at the new parameters and slice its per-parameter state (momentum, Adam moments)."""
    by_id = {id(graph.tensors[k]): k for k in replaced}
    for group in optimizer.param_groups:
        for i, p in enumerate(group["params"]):
            k = by_id.get(id(p))
            if k is None:
                continue
            new = replaced[k]
            state = optimizer.state.pop(p, None)
            group["params"][i] = new
            if state is not None:
                for key, value in state.items():
                    if isinstance(value, torch.Tensor) and tuple(value.shape) == graph.shapes[k]:
                        state[key] = _slice(value, plan[k])
                optimizer.state[new] = state
