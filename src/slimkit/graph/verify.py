"""Check, while the pruned model runs, that the ops whose channel counts the graph inferred have the planned shapes.

Some counts in a forward are numbers, not ``.shape`` reads: ``reshape(B, N, 3, self.num_heads, C // self.num_heads)``
with ``C`` read from another tensor, ``x.split(self.expand_chs // 2)``, ``F.conv2d(..., groups=self.channels)``.
The tracer explains each (a read width tied to these channels, an int attribute linked to the width) and records
the op (``Tracer.check_shape``). The check forward after pruning names ops as the tracer did (module call, op name and
rank among that call's ops of the name; leaf modules' insides are not counted) and compares each recorded output with the shape the plan predicts, so an explanation
that does not hold fails the check (and bisection leaves the group alone) instead of passing silently, e.g. a
split into 8 + 4 channels where the plan removed 2 of 16 evenly.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from slimkit.core.errors import GraphError
from slimkit.core.forward import module_hooks
from slimkit.graph.groups import ChannelGraph
from slimkit.graph.tracer import OpKey, OpKeys, Tracer, canonical

Expected = dict[OpKey, list[tuple[int, tuple[int, ...], str]]]


def expected_shapes(graph: ChannelGraph, removed: torch.Tensor) -> Expected:
    """Per recorded op: (output index, shape after removing ``removed``, what the op is)."""
    out: Expected = {}
    for key, k, shape, fields, what in graph.shape_checks:
        new = list(shape)
        for d, ids in fields.items():
            live = ids[ids >= 0]
            new[d] -= int(removed[graph.comp[live]].sum())
        out.setdefault(key, []).append((k, tuple(new), what))
    return out


class _Checker(TorchFunctionMode):
    def __init__(self, expected: Expected) -> None:
        super().__init__()
        self.expected = expected
        self.keys = OpKeys()
        self.leaf_depth = 0

    def __torch_function__(self, func: Callable, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        out = func(*args, **(kwargs or {}))
        if not self.leaf_depth:
            for k, shape, what in self.expected.get(self.keys.next(canonical(func)), ()):
                outs = list(out) if isinstance(out, (tuple, list)) else [out]
                got = tuple(outs[k].shape) if k < len(outs) and isinstance(outs[k], torch.Tensor) else None
                if got != shape:
                    raise GraphError(f"{what} gives shape {got}, the plan expects {shape}")
        return out


@contextmanager
def planned_shapes(model: nn.Module, expected: Expected) -> Iterator[None]:
    """Within this context, a forward of ``model`` raises GraphError at the first recorded op whose output shape
    differs from ``expected`` (see :func:`expected_shapes`). Does nothing when nothing was recorded."""
    if not expected:
        yield
        return
    checker = _Checker(expected)

    def enter(fqn: str, module: nn.Module, *_: Any) -> None:
        checker.keys.enter(fqn)
        if checker.leaf_depth or Tracer._leaf(module) is not None:  # the tracer's own rule for leaves
            checker.leaf_depth += 1

    def leave(*_: Any) -> None:
        checker.keys.exit()
        if checker.leaf_depth:
            checker.leaf_depth -= 1

    with module_hooks(model, enter, leave), checker:
        yield
