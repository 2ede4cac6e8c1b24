"""One forward pass under a ``TorchDispatchMode`` that counts every ATen operator and tracks live activations.

Two jobs, both done at the operator level so that functional code in ``forward`` (``torch.matmul``,
``F.scaled_dot_product_attention``, ``einsum``) is seen as well as leaf modules:

* attribution: (process-wide) forward pre/post hooks keep a stack of the modules being run; each operator's MACs and FLOPs go to
  the innermost one (its *exclusive* cost), so per-layer rows add up exactly to the totals;
* activation memory: every tensor an operator returns is tracked by its storage with a ``weakref.finalize``;
  the live byte count rises when a new storage appears and falls when its last tracked tensor is freed, and the
  peak is kept. Parameters and buffers are excluded; the example inputs count from the start (the caller holds
  them for the whole pass). Kernel-internal scratch memory (workspaces) is invisible at this level.
"""

from __future__ import annotations

import weakref
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.nn.modules.module import register_module_forward_hook, register_module_forward_pre_hook
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from slimkit.profile.counters import OP_COUNTERS, count_op

StorageKey = tuple[str, int]


def _storage_of(tensor: torch.Tensor) -> tuple[StorageKey, int] | None:
    """``((device, data_ptr), nbytes)`` of the tensor's storage, or None for storage-less / empty tensors."""
    try:
        storage = tensor.untyped_storage()
        ptr, nbytes = storage.data_ptr(), storage.nbytes()
    except (RuntimeError, NotImplementedError, TypeError):
        return None
    if ptr == 0 or nbytes == 0:
        return None
    return (str(tensor.device), ptr), nbytes


class LiveMemory:
    """Bytes held by activation storages right now, and the peak so far."""

    def __init__(self, static: Iterable[torch.Tensor]) -> None:
        self.static: set[StorageKey] = set()
        for tensor in static:
            found = _storage_of(tensor)
            if found is not None:
                self.static.add(found[0])
        self._tracked: dict[int, StorageKey] = {}
        self._refs: dict[StorageKey, int] = {}
        self._sizes: dict[StorageKey, int] = {}
        self.live_bytes = 0
        self.peak_bytes = 0

    def track(self, tensor: torch.Tensor) -> None:
        if id(tensor) in self._tracked:
            return
        found = _storage_of(tensor)
        if found is None or found[0] in self.static:
            return
        key, nbytes = found
        self._tracked[id(tensor)] = key
        if key in self._refs:
            self._refs[key] += 1
        else:
            self._refs[key] = 1
            self._sizes[key] = nbytes
            self.live_bytes += nbytes
            self.peak_bytes = max(self.peak_bytes, self.live_bytes)
        finalizer = weakref.finalize(tensor, self._release, id(tensor), key)
        finalizer.atexit = False

    def _release(self, tensor_id: int, key: StorageKey) -> None:
        self._tracked.pop(tensor_id, None)
        refs = self._refs.get(key)
        if refs is None:
            return
        if refs > 1:
            self._refs[key] = refs - 1
        else:
            del self._refs[key]
            self.live_bytes -= self._sizes.pop(key)


@dataclass
class ModuleStats:
    """What happened inside one module (exclusive of its children), summed over its calls."""

    fqn: str
    type: str
    order: int
    calls: int = 0
    macs: int = 0
    flops: int = 0
    output_shape: tuple[int, ...] | None = None


@dataclass
class OpStats:
    calls: int = 0
    macs: int = 0
    flops: int = 0


@dataclass
class Trace:
    """The raw result of one traced forward pass."""

    modules: dict[str, ModuleStats] = field(default_factory=dict)
    ops: dict[str, OpStats] = field(default_factory=lambda: defaultdict(OpStats))
    uncounted: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    peak_activation_bytes: int = 0


def _shape_of(output: Any) -> tuple[int, ...] | None:
    for leaf in tree_leaves(output):
        if isinstance(leaf, torch.Tensor):
            return tuple(leaf.shape)
    return None


class CountingMode(TorchDispatchMode):
    """Counts each operator against the innermost running module and feeds outputs to :class:`LiveMemory`."""

    def __init__(self, trace: Trace, memory: LiveMemory, stack: list[str]) -> None:
        super().__init__()
        self.trace = trace
        self.memory = memory
        self.stack = stack

    def __torch_dispatch__(
        self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None
    ) -> Any:
        kwargs = kwargs or {}
        if func.overloadpacket not in OP_COUNTERS:
            # split composites (linear, matmul, einsum, sdpa, conv2d, ...) into the ops that do the arithmetic
            with self:
                result = func.decompose(*args, **kwargs)
            if result is not NotImplemented:
                return result
        out = func(*args, **kwargs)
        for leaf in tree_leaves(out):
            if isinstance(leaf, torch.Tensor):
                self.memory.track(leaf)
        cost = count_op(func, args, kwargs, out)
        name = str(func.overloadpacket.__name__)
        if cost is None:
            self.trace.uncounted[name] += 1
            return out
        op = self.trace.ops[name]
        op.calls += 1
        op.macs += cost.macs
        op.flops += cost.flops
        owner = self.trace.modules[self.stack[-1]]
        owner.macs += cost.macs
        owner.flops += cost.flops
        return out


def trace_forward(model: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Trace, Any]:
    """Run ``model(*args, **kwargs)`` once, counting operators per module and tracking activation memory.

    The caller chooses the grad and train/eval mode; hooks are always removed afterwards.
    """
    trace = Trace()
    stack: list[str] = []
    names = {id(module): fqn for fqn, module in reversed(list(model.named_modules()))}  # shared: first name

    # process-wide hooks (two registrations instead of two per module); modules of other models are ignored
    def pre_hook(module: nn.Module, inputs: Any) -> None:
        fqn = names.get(id(module))
        if fqn is None:
            return
        stats = trace.modules.get(fqn)
        if stats is None:
            stats = trace.modules[fqn] = ModuleStats(fqn, type(module).__name__, len(trace.modules))
        stats.calls += 1
        stack.append(fqn)

    def post_hook(module: nn.Module, inputs: Any, output: Any) -> None:
        fqn = names.get(id(module))
        if fqn is None:
            return
        stats = trace.modules[fqn]
        if stats.output_shape is None:
            stats.output_shape = _shape_of(output)
        if stack and stack[-1] == fqn:
            stack.pop()

    handles = [
        register_module_forward_pre_hook(pre_hook),
        register_module_forward_hook(post_hook, always_call=True),
    ]

    static = list(model.parameters()) + list(model.buffers())
    memory = LiveMemory(static)
    for leaf in tree_leaves((args, kwargs)):
        if isinstance(leaf, torch.Tensor):
            memory.track(leaf)
    trace.modules["<outside>"] = ModuleStats("<outside>", "", -1)
    stack.append("<outside>")
    try:
        with CountingMode(trace, memory, stack):
            output = model(*args, **kwargs)
        trace.peak_activation_bytes = memory.peak_bytes
    finally:
        for handle in handles:
            handle.remove()
    return trace, output
