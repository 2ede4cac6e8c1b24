"""Trace a model by running it: every torch op and leaf module call moves channel ids (see ``ops``).

Running the real forward (under a ``TorchFunctionMode`` plus module hooks) instead of symbolic tracing means Python
control flow, data-dependent branches and arbitrary user modules just work: the tracer sees exactly the ops this
input takes. Tensors are tracked by identity, kept alive for the duration of the trace so ids are never reused.
"""

from __future__ import annotations

import inspect
import re
import time
import weakref
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

import slimkit.graph.layer_ops  # noqa: E402, F401  (registers the conv/linear/norm/matmul rules)
from slimkit.core.errors import GraphError
from slimkit.core.forward import module_hooks, training_mode
from slimkit.core.modules import label
from slimkit.core.registry import Registry
from slimkit.core.shapes import channel_dims, has_syncer
from slimkit.graph.fields import Fields, Recorder
from slimkit.graph.ops import OP_HANDLERS, _tensors, unknown

LeafHandler = Callable[["Tracer", nn.Module, tuple, dict, Any], None]
LEAF_HANDLERS: Registry[LeafHandler] = Registry("leaf handler")

_ARITH = {"radd": "add", "iadd": "add", "rsub": "rsub", "isub": "sub", "rmul": "mul", "imul": "mul",
          "rtruediv": "div", "itruediv": "div", "truediv": "div", "rdiv": "div", "idiv": "div", "rpow": "pow",
          "ipow": "pow", "imatmul": "matmul", "rmatmul": "rmatmul", "neg": "neg", "pos": "identity",
          "and": "logical_not", "or": "logical_not"}
_IGNORED = {"size", "dim", "numel", "shape", "ndim", "dtype", "device", "is_cuda", "requires_grad", "grad_fn",
            "__len__", "item", "tolist", "is_floating_point", "__bool__", "__format__", "stride", "element_size",
            "is_contiguous", "storage_offset", "data_ptr", "names", "layout", "is_sparse", "is_quantized", "_version",
            "__repr__", "__hash__", "__eq__", "nelement", "get_device", "__iter__", "untyped_storage", "__reduce_ex__"}


def register_leaf(*types: type) -> Callable[[LeafHandler], LeafHandler]:
    """Treat modules of these types as single nodes, with ``handler(tracer, module, args, kwargs, out)``."""

    def add(fn: LeafHandler) -> LeafHandler:
        for t in types:
            LEAF_HANDLERS[t] = fn
        return fn

    return add


def opaque_leaf(tr: Tracer, module: nn.Module, args: tuple, kwargs: dict, out: Any) -> None:
    """A module left untouched: channels reaching it are blocked, its outputs carry none."""
    for t in _tensors((args, kwargs)):
        tr.rec.block_fields(tr.fields(t), f"{type(module).__name__} is left untouched")


_USED: weakref.WeakKeyDictionary[type, set[str] | None] = weakref.WeakKeyDictionary()


def _used_attributes(cls: type) -> set[str] | None:
    """Names ``self.<name>`` the methods of ``cls`` (and its bases outside torch) mention outside ``__init__``;
    None when the source is not available."""
    if cls not in _USED:
        names: set[str] | None = set()
        for base in cls.__mro__:
            if base is object or base.__module__.startswith("torch."):
                continue
            for attr, fn in vars(base).items():
                if attr == "__init__" or not inspect.isfunction(fn):
                    continue
                try:
                    source = inspect.getsource(fn)
                except (OSError, TypeError):
                    names = None
                    break
                names.update(re.findall(r"self\.([A-Za-z_]\w*)", source))
            if names is None:
                break
        _USED[cls] = names
    return _USED[cls]


def canonical(func: Callable) -> str:
    name = getattr(func, "__name__", str(func))
    if name == "__get__":
        name = getattr(getattr(func, "__self__", None), "__name__", name)
    if name.startswith("__") and name.endswith("__") and name not in ("__getitem__", "__setitem__"):
        name = name[2:-2]
        name = _ARITH.get(name, name)
    if name.startswith("_") and not name.startswith("__"):
        name = name.lstrip("_")
    if name.endswith("_") and not name.endswith("__") and name[:-1] in OP_HANDLERS:
        name = name[:-1]
    return name


OpKey = tuple[str, int, str, int]  # (module, its call number, op name, occurrence of that op in the call)


class OpKeys:
    """Names each op run outside leaf modules by its module call and its rank among that call's ops of the same
    name, so the check forward after pruning finds the ops the trace recorded (``graph/verify.py``)."""

    def __init__(self) -> None:
        self.calls: dict[str, int] = {}
        self.frames: list[tuple[str, int, dict[str, int]]] = [("", 0, {})]

    def enter(self, fqn: str) -> None:
        n = self.calls.get(fqn, 0)
        self.calls[fqn] = n + 1
        self.frames.append((fqn, n, {}))

    def exit(self) -> None:
        self.frames.pop()

    def next(self, name: str) -> OpKey:
        fqn, call, counts = self.frames[-1]
        rank = counts.get(name, 0)
        counts[name] = rank + 1
        return fqn, call, name, rank


class _Mode(TorchFunctionMode):
    def __init__(self, tracer: Tracer) -> None:
        super().__init__()
        self.tracer = tracer

    def __torch_function__(self, func: Callable, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        tr = self.tracer
        # CPU time, not wall time: on a busy machine wall time also counts the waits for a core, which land on
        # random ops and would make the per-layer latency table (``latency_weight``) noise
        t0 = time.process_time()
        out = func(*args, **kwargs)
        if tr.module_ids and not tr.busy:  # compute time of the op, charged to the module running it
            key = tr.module_ids[-1]
            tr.module_ms[key] = tr.module_ms.get(key, 0.0) + (time.process_time() - t0) * 1e3
        if not tr.busy and not tr.leaf_depth:
            tr.op_key = tr.keys.next(canonical(func))  # named alike by the check forward (graph/verify.py)
            tr.busy = True
            try:
                tr.record(func, args, kwargs, out)
                if tr.module_ids:
                    tr.note_module_output(out)
            finally:
                tr.busy = False
        return out


class Tracer:
    """Runs the model once and records channel ids, couplings, blocks and parameter occurrences."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.rec = Recorder()
        self._fields: dict[int, Fields] = {}
        self._alive: list[torch.Tensor] = []
        self.tensors: list[torch.Tensor] = []  # every parameter/buffer, by index
        self.locations: list[list[tuple[str, nn.Module, str, bool]]] = []  # (fqn, module, attr, is_param)
        self._index: dict[int, int] = {}
        self._param_done: set[int] = set()
        self.busy = False
        self.leaf_depth = 0
        self.stack: list[str] = []
        self.unknown_ops: set[str] = set()
        self.read_sizes: set[int] = set()
        # per running module call: (size, channel ids) of every channel dim whose size the code read (.shape, .size())
        self.reads: list[list[tuple[int, torch.Tensor]]] = [[]]
        self.keys = OpKeys()
        self.op_key: OpKey = ("", 0, "", 0)  # the op being recorded
        # (op, output index, traced shape, fields, what): outputs whose channel counts come from a number the graph
        # explains (a size read from .shape, an int attribute, a count tied to another width); the check forward
        # after pruning verifies each has the shape the plan predicts
        self.shape_checks: list[tuple[OpKey, int, tuple[int, ...], Fields, str]] = []
        self._linked: dict[tuple[int, str], torch.Tensor] = {}
        self.assumptions: set[str] = set()  # rules the graph relies on that a verification forward should check
        self.module_ids: list[int] = []
        self.module_objs: list[nn.Module] = []  # the running modules, outermost first
        # (module, attribute, channel ids): an int attribute a forward used as a channel count (a view's size)
        self.int_links: list[tuple[nn.Module, str, torch.Tensor]] = []
        self.module_ms: dict[int, float] = {}  # compute time of each module's own ops during the trace
        self.module_channels: dict[int, list[torch.Tensor]] = {}  # channel ids produced by each module's own ops
        self.record_activity = False  # per-channel zero fractions after ReLUs (for APoZ)
        self.attention = "head_dims"  # nn.MultiheadAttention: remove the same dims in every head, or whole heads
        self.whole_heads: list[nn.Module] = []  # attention modules traced with whole heads as their unit
        for fqn, module in model.named_modules(remove_duplicate=False):
            for table, is_param in ((module._parameters, True), (module._buffers, False)):
                for attr, t in table.items():
                    if t is None:
                        continue
                    k = self._index.get(id(t))
                    if k is None:
                        k = self._index[id(t)] = len(self.tensors)
                        self.tensors.append(t)
                        self.locations.append([])
                    if (module, attr) not in [(m, a) for _, m, a, _ in self.locations[k]]:
                        self.locations[k].append((fqn, module, attr, is_param))

    # -- fields ------------------------------------------------------------------------------------
    def tensor_index(self, t: torch.Tensor) -> int | None:
        return self._index.get(id(t))

    def param_fields(self, t: torch.Tensor, roles: dict[int, str], adopt: Fields | None = None,
                     dims: Sequence[int] | None = None) -> Fields:
        """Fields of a parameter/buffer: fresh ids per dim (size > 1), each registered as an occurrence.

        ``adopt`` gives ids (all channels, no fixed position) that a dim is coupled to anyway, e.g. a BatchNorm
        vector and its input's channels: on the tensor's first use they become its ids directly, which saves
        making fresh ids and a coupling edge per vector (tracing cost, graph size). ``dims`` limits labelling to
        those dims (a conv kernel's spatial dims are never channels, so they get no ids at all).
        """
        k = self._index.get(id(t))
        if k is None:
            return self._fields.get(id(t), {})
        if k not in self._param_done:
            self._param_done.add(k)
            fields: Fields = {}
            for d, n in enumerate(t.shape):
                if n > 1 and (dims is None or d in dims):
                    given = adopt.get(d) if adopt else None
                    fields[d] = given if given is not None and given.shape == (n,) else self.rec.fresh(n)
                    self.rec.occur(k, d, fields[d], roles.get(d, "aux"))
            self._fields[id(t)] = fields
        elif "in" in roles.values():  # a tied tensor also consumed here: zeroing it as a consumer is what's safe
            for occ in self.rec.occurrences:
                if occ.tensor == k and roles.get(occ.dim) == "in":
                    occ.role = "in"
        return self._fields[id(t)]

    def fields(self, t: torch.Tensor) -> Fields:
        k = self._index.get(id(t))
        if k is not None:
            # a layer's tensor of more than two dims used directly (NFNet's standardized conv weight): only the
            # dims its LayerRule names hold channels (a conv weight's kernel dims never do)
            named = [channel_dims(type(m), a) for _, m, a, _ in self.locations[k]]
            dims = next((d for d in named if d is not None and t.ndim > 2), None)
            return self.param_fields(t, {}, dims=dims)
        return self._fields.get(id(t), {})

    def set(self, t: torch.Tensor, fields: Fields) -> None:
        if id(t) in self._index:
            return
        fields = {d: ids for d, ids in fields.items() if ids is not None and bool((ids >= 0).any())}
        self._fields[id(t)] = fields
        self._alive.append(t)
        self.rec.mark_flow(fields)

    def note_module_output(self, out: Any) -> None:
        """Remember which channels the running module's op produced (to share its time among them)."""
        if isinstance(out, torch.Tensor):
            fields = self._fields.get(id(out))
            if fields:
                self.module_channels.setdefault(self.module_ids[-1], []).extend(fields.values())

    # -- recording ---------------------------------------------------------------------------------
    def record(self, func: Callable, args: tuple, kwargs: dict, out: Any) -> None:
        name = canonical(func)
        if name in ("size", "shape") and args and isinstance(args[0], torch.Tensor):
            fields = self._fields.get(id(args[0]), {})
            dims = list(fields)
            if name == "size" and len(args) > 1 and isinstance(args[1], int) and args[0].ndim:
                dims = [d for d in dims if d == args[1] % args[0].ndim]  # x.size(d) reads one dim
            for d in dims:  # the code reads a channel count from the tensor
                self.read_sizes.add(int(args[0].shape[d]))
                self.reads[-1].append((int(args[0].shape[d]), fields[d]))
        elif name == "numel" and args and isinstance(args[0], torch.Tensor) and args[0].ndim == 1:
            ids = self._fields.get(id(args[0]), {}).get(0)
            if ids is not None:  # a vector's numel is its width (Swin V2: qkv_bias.numel() // 3)
                self.reads[-1].append((int(args[0].shape[0]), ids))
        if name in _IGNORED:
            return
        outs = _tensors(out)
        ins = _tensors((args, kwargs))
        if not any(id(t) in self._fields or id(t) in self._index for t in ins):
            return
        self.rec.where = self.stack[-1] if self.stack else ""
        if name == "__setitem__":
            for t in ins:
                self.rec.block_fields(self.fields(t), "in-place write into a slice")
            return
        if not outs:
            return
        handler = OP_HANDLERS.get(name, unknown)
        if getattr(handler, "__module__", "") not in ("slimkit.graph.ops", "slimkit.graph.layer_ops"):
            self.assumptions.add(f"{self.rec.where}: op {name!r} handled by {handler.__module__}")
        try:
            handler(self, name, func, args, kwargs, out)
        except (RuntimeError, TypeError, ValueError, IndexError) as err:
            unknown(self, name, func, args, kwargs, out)
            self.unknown_ops.add(f"{self.rec.where}: {name} ({type(err).__name__}: {err})")

    def _enter(self, fqn: str, module: nn.Module, args: tuple, kwargs: dict) -> None:
        self.stack.append(label(fqn, module))
        self.keys.enter(fqn)
        self.reads.append([])
        self.module_ids.append(id(module))
        self.module_objs.append(module)
        if self.leaf_depth or self._leaf(module) is not None:
            self.leaf_depth += 1

    def _leave(self, fqn: str, module: nn.Module, args: tuple, kwargs: dict, out: Any) -> None:
        handler = self._leaf(module)
        if self.leaf_depth:
            self.leaf_depth -= 1
        if handler is not None and not self.leaf_depth and not self.busy:
            if getattr(handler, "__module__", "") not in ("slimkit.graph.tracer", "slimkit.graph.leaves"):
                self.assumptions.add(f"{label(fqn, module)}: handled by {handler.__module__}")
            self.busy = True
            self.rec.where = label(fqn, module)
            try:
                handler(self, module, args, kwargs, out)
            finally:
                self.busy = False
        self.stack.pop()
        self.keys.exit()
        self.reads.pop()
        self.module_ids.pop()
        self.module_objs.pop()

    def value_attribute(self, value: int | list[int]) -> tuple[nn.Module, str] | None:
        """The one attribute equal to ``value`` (an int, or a list of ints like ``self.splits`` of timm's
        ``MixedConv2d``) of the innermost running module (not torch's) that has any: the count a forward like
        Hugging Face's ``Conv1D`` (``x.view(..., self.nf)``) reads. Attributes the class's methods never mention
        (``self.name`` outside ``__init__``) are not candidates. None when there is none or it is ambiguous (two
        attributes with that value)."""
        for module in reversed(self.module_objs):
            if type(module).__module__.startswith("torch."):
                continue
            used = _used_attributes(type(module))
            names = [k for k, v in vars(module).items() if not k.startswith("_") and (used is None or k in used)
                     and (type(v) is int and v == value if isinstance(value, int) else
                          isinstance(v, (list, tuple)) and all(type(e) is int for e in v) and list(v) == value)]
            if names:
                return (module, names[0]) if len(names) == 1 else None
        return None

    def link(self, found: tuple[nn.Module, str], ids: torch.Tensor, why: str) -> None:
        """An int attribute used as a count follows the width: it loses one per removed position of ``ids``.

        One attribute linked by several ops (``self.head_dim`` for q, k and v) must lose the same amount in each,
        so their ids are coupled position by position (or blocked when the counts differ)."""
        module, attr = found
        if has_syncer(type(module)):
            # a layer subclass (timm's ScaledStdConv2d reading self.out_channels): its shape attributes are
            # kept true to its tensors after pruning, so the count follows without a link
            self.assumptions.add(f"{self.rec.where}: {why} follows .{attr} (kept in sync with the weights)")
            return
        key = (id(module), attr)
        first = self._linked.get(key)
        if first is None:
            self._linked[key] = ids
            self.int_links.append((module, attr, ids))
        elif first.shape == ids.shape:
            self.rec.unify(first, ids, f"{why}: .{attr} is one count")
        else:
            self.rec.block(torch.cat([first, ids]), f"{why}: .{attr} counts channel dims of different widths")
        self.assumptions.add(f"{self.rec.where}: {why} follows .{attr}")

    def read_channels(self, size: int) -> list[torch.Tensor] | None:
        """The channel ids of the dims of width ``size`` whose size the innermost running call that read any
        read (``B, N, C = x.shape``); distinct sets only. None when nothing of that width was read."""
        for level in reversed(self.reads):
            found: list[torch.Tensor] = []
            for n, ids in level:
                if n == size and not any(f.shape == ids.shape and bool(torch.equal(f, ids)) for f in found):
                    found.append(ids)
            if found:
                return found
        return None

    def check_shape(self, out: torch.Tensor, k: int, fields: Fields, what: str) -> None:
        """Have the check forward after pruning verify output ``k`` of the current op (see ``shape_checks``)."""
        self.shape_checks.append((self.op_key, k, tuple(out.shape), dict(fields), f"{self.rec.where}: {what}"))

    @staticmethod
    def _leaf(module: nn.Module) -> LeafHandler | None:
        return LEAF_HANDLERS.for_type(type(module))

    def run(self, example_inputs: Any) -> Any:
        inputs = example_inputs if isinstance(example_inputs, tuple) else (example_inputs,)
        try:
            with training_mode(self.model, False), module_hooks(self.model, self._enter, self._leave), _Mode(self):
                out = self.model(*inputs)
            self.rec.where = "model output"
            for t in _tensors(out):
                self.rec.block_fields(self.fields(t), "reaches the model output")
            return out
        except GraphError:
            raise
        except Exception as err:
            where = self.stack[-1] if self.stack else label("", self.model)
            raise GraphError(f"{where}: forward on example_inputs failed while tracing ({type(err).__name__}: {err})") from err
