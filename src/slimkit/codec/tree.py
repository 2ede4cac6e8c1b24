"""Nested plain values and tensors to a JSON-ready tree plus a flat tensor dict, and back, with no pickle.

:func:`pack_tree` turns a structure of dict / list / tuple / str / int / float / bool / None / ``torch.Tensor`` /
``numpy.ndarray`` into JSON values, replacing each tensor by a reference to an entry of a flat ``{name: tensor}``
dict (which the ``.slim`` container stores as raw sections). What plain JSON cannot say is tagged by an object
whose single key starts with ``$``::

    {"$tensor": "model.0.weight"}                    a torch.Tensor (stored under that name)
    {"$parameter": "w", "requires_grad": true}       an nn.Parameter
    {"$ndarray": "rng.keys", "dtype": "<u4"}         a numpy array, restored with this exact dtype
    {"$tuple": [1, 2]}                               a tuple (a plain list stays a list)
    {"$dict": [[0, {...}], [1, {...}]]}              a dict whose keys are not all strings, or start with "$"
    {"$float": "nan"} / "inf" / "-inf"               a non-finite float ("bits": 16 hex digits for a NaN payload)
    {"$int": "-0x1f..."}                             an int outside the int64 range, in hex

:func:`unpack_tree` checks every node against this grammar and only ever builds these types: nothing named in a
tree is imported or called.

Example:
    >>> tree, tensors = pack_tree({"step": 3, "betas": (0.9, 0.999), "w": torch.zeros(2)})
    >>> tree
    {'step': 3, 'betas': {'$tuple': [0.9, 0.999]}, 'w': {'$tensor': 'w'}}
    >>> unpack_tree(tree, tensors)["betas"]
    (0.9, 0.999)
"""

from __future__ import annotations

import math
import re
import struct
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from slimkit.codec.tensor import DTYPES, dtype_name
from slimkit.core.errors import CheckpointError, FormatError

_INT64 = 1 << 63
_CANONICAL_NAN = struct.pack("<d", math.nan)
_HEX_INT = re.compile(r"-?0x[0-9a-f]+")
_HEX_BITS = re.compile(r"[0-9a-f]{16}")
# numpy dtype -> the (native) numpy dtype its bytes are stored as: unsigned ints wider than a byte as signed ones
_NDARRAY_STORAGE = {
    "b1": "?", "i1": "i1", "u1": "u1", "i2": "i2", "u2": "i2", "i4": "i4", "u4": "i4", "i8": "i8", "u8": "i8",
    "f2": "f2", "f4": "f4", "f8": "f8",
}
_NDARRAY_DTYPES = {np.dtype(order + code).str: code for code in _NDARRAY_STORAGE for order in "<>"}
_TAGS = {"$tensor": (), "$parameter": ("requires_grad",), "$ndarray": ("dtype",), "$tuple": (), "$dict": (),
         "$float": ("bits",), "$int": ()}


def _where(path: tuple[str, ...]) -> str:
    return "".join(path)


def _key_segment(key: Any) -> str:
    return f".{key}" if isinstance(key, str) else f"[{key!r}]"


class _Packer:
    def __init__(self, root: str) -> None:
        self.root = root
        self.tensors: dict[str, torch.Tensor] = {}
        self.names: dict[int, str] = {}  # id(tensor or array) -> name: one object is stored once
        self.open: set[int] = set()  # containers on the current path (a structure holding itself is refused)

    def fail(self, path: tuple[str, ...], what: str) -> CheckpointError:
        return CheckpointError(f"{self.root}{_where(path)}: {what}")

    def store(self, obj: torch.Tensor, path: tuple[str, ...], owner: object = None) -> str:
        """Name of ``obj`` in ``tensors`` (``owner``: the caller's object it stands for, if not ``obj`` itself)."""
        owner = obj if owner is None else owner
        if id(owner) in self.names:
            return self.names[id(owner)]
        if obj.layout != torch.strided or obj.is_quantized or dtype_name(obj.dtype) not in DTYPES:
            raise self.fail(path, f"cannot store a {obj.layout} tensor of dtype {obj.dtype} "
                                  f"(stored dtypes: {', '.join(DTYPES)})")
        base = _where(path).lstrip(".") or self.root
        name, n = base, 1
        while name in self.tensors:
            n += 1
            name = f"{base}#{n}"
        self.tensors[name] = obj.detach()
        self.names[id(owner)] = name  # owner lives in the packed structure: its id stays unique while we pack
        return name

    def pack(self, obj: Any, path: tuple[str, ...]) -> Any:
        kind = type(obj)
        if obj is None or kind in (bool, str):
            return obj
        if kind is int:
            return obj if -_INT64 <= obj < _INT64 else {"$int": hex(obj)}
        if kind is float:
            if math.isfinite(obj):
                return obj
            if math.isinf(obj):
                return {"$float": "inf" if obj > 0 else "-inf"}
            bits = struct.pack("<d", obj)
            return {"$float": "nan"} if bits == _CANONICAL_NAN else {"$float": "nan", "bits": bits[::-1].hex()}
        if kind is torch.Tensor:
            return {"$tensor": self.store(obj, path)}
        if kind is nn.Parameter:
            return {"$parameter": self.store(obj, path), "requires_grad": obj.requires_grad}
        if kind is np.ndarray:
            return self.pack_array(obj, path)
        if kind in (dict, OrderedDict, list, tuple):
            if id(obj) in self.open:
                raise self.fail(path, f"the {kind.__name__} contains itself")
            self.open.add(id(obj))
            try:
                return self.pack_container(obj, path)
            finally:
                self.open.discard(id(obj))
        raise self.fail(path, f"cannot store a {kind.__module__}.{kind.__qualname__} (only dict, list, tuple, str, "
                              "int, float, bool, None, torch.Tensor and numpy.ndarray)")

    def pack_container(self, obj: Any, path: tuple[str, ...]) -> Any:
        if type(obj) is list:
            return [self.pack(v, (*path, f"[{i}]")) for i, v in enumerate(obj)]
        if type(obj) is tuple:
            return {"$tuple": [self.pack(v, (*path, f"[{i}]")) for i, v in enumerate(obj)]}
        if all(type(k) is str and not k.startswith("$") for k in obj):
            return {k: self.pack(v, (*path, f".{k}")) for k, v in obj.items()}
        return {"$dict": [[self.pack_key(k, (*path, _key_segment(k))), self.pack(v, (*path, _key_segment(k)))]
                          for k, v in obj.items()]}

    def pack_key(self, key: Any, path: tuple[str, ...]) -> Any:
        if key is None or type(key) in (bool, str, int, float):
            return self.pack(key, path)
        if type(key) is tuple:
            return {"$tuple": [self.pack_key(k, (*path, f"[{i}]")) for i, k in enumerate(key)]}
        raise self.fail(path, f"a dict key must be a str, int, float, bool, None or tuple of those, "
                              f"not {type(key).__qualname__}")

    def pack_array(self, array: np.ndarray, path: tuple[str, ...]) -> dict[str, Any]:
        dtype = array.dtype.str
        if dtype not in _NDARRAY_DTYPES:
            raise self.fail(path, f"cannot store a numpy array of dtype {array.dtype} "
                                  "(only bool, int, uint and float of 1 to 8 bytes)")
        if id(array) not in self.names:
            native = array.astype(array.dtype.newbyteorder("="), order="C", copy=False)  # keeps 0-d arrays 0-d
            if not native.flags.writeable:
                native = native.copy()  # torch.from_numpy wants a writeable array
            self.store(torch.from_numpy(native.view(_NDARRAY_STORAGE[_NDARRAY_DTYPES[dtype]])), path, owner=array)
        return {"$ndarray": self.names[id(array)], "dtype": dtype}


def pack_tree(obj: Any, *, root: str = "state") -> tuple[Any, dict[str, torch.Tensor]]:
    """``obj`` as a JSON-ready tree plus the tensors it refers to (named by their path in ``obj``).

    Args:
        obj: nested dict / list / tuple / str / int / float / bool / None / torch.Tensor / numpy.ndarray (an
            ``OrderedDict`` is stored as a dict, in its order).
        root: how error messages name ``obj`` itself.

    Returns:
        ``(tree, tensors)``: ``tree`` holds only JSON values (no NaN), ``tensors`` maps each reference's name to a
        detached tensor (numpy arrays as tensors over the same bytes). One object met twice is stored once.

    Raises:
        CheckpointError: naming the path of the first value that cannot be stored, e.g.
            ``state.optimizer.param_groups[0].foo: cannot store a mymodule.Foo ...``.
    """
    packer = _Packer(root)
    return packer.pack(obj, ()), packer.tensors


class _Unpacker:
    def __init__(self, tensors: Mapping[str, torch.Tensor], root: str) -> None:
        self.tensors = tensors
        self.root = root
        self.used: set[str] = set()

    def fail(self, path: tuple[str, ...], what: str) -> FormatError:
        return FormatError(f"{self.root}{_where(path)}: {what}")

    def tensor(self, name: Any, path: tuple[str, ...]) -> torch.Tensor:
        if type(name) is not str or name not in self.tensors:
            raise self.fail(path, f"refers to tensor {name!r}, which the file does not hold")
        self.used.add(name)
        return self.tensors[name]

    def unpack(self, node: Any, path: tuple[str, ...]) -> Any:
        kind = type(node)
        if node is None or kind in (bool, str, int):
            return node
        if kind is float:
            if not math.isfinite(node):
                raise self.fail(path, 'a non-finite float must be tagged {"$float": ...}')
            return node
        if kind is list:
            return [self.unpack(v, (*path, f"[{i}]")) for i, v in enumerate(node)]
        if kind is not dict:
            raise self.fail(path, f"unexpected {kind.__name__} node")
        tags = [k for k in node if k.startswith("$")]
        if not tags:
            return {k: self.unpack(v, (*path, f".{k}")) for k, v in node.items()}
        tag = tags[0]
        if len(tags) > 1 or tag not in _TAGS or not set(node) - {tag} <= set(_TAGS[tag]):
            raise self.fail(path, f"unknown tag {sorted(node)!r} (known: {', '.join(_TAGS)})")
        return self.unpack_tagged(tag, node, path)

    def unpack_tagged(self, tag: str, node: dict[str, Any], path: tuple[str, ...]) -> Any:
        value = node[tag]
        if tag == "$tensor":
            return self.tensor(value, path)
        if tag == "$parameter":
            requires_grad = node.get("requires_grad", True)
            if type(requires_grad) is not bool:
                raise self.fail(path, f"requires_grad must be true or false, got {requires_grad!r}")
            tensor = self.tensor(value, path)
            if requires_grad and not (tensor.is_floating_point() or tensor.is_complex()):
                raise self.fail(path, f"a {tensor.dtype} parameter cannot require gradients")
            return nn.Parameter(tensor, requires_grad=requires_grad)
        if tag == "$ndarray":
            return self.array(self.tensor(value, path), node.get("dtype"), path)
        if tag == "$tuple":
            if type(value) is not list:
                raise self.fail(path, "$tuple must hold a list")
            return tuple(self.unpack(v, (*path, f"[{i}]")) for i, v in enumerate(value))
        if tag == "$dict":
            return self.mapping(value, path)
        if tag == "$float":
            return self.special_float(value, node.get("bits"), path)
        if type(value) is not str or not _HEX_INT.fullmatch(value):  # $int
            raise self.fail(path, f"$int must be a hex string like '-0x1f', got {value!r}")
        return int(value, 16)

    def mapping(self, pairs: Any, path: tuple[str, ...]) -> dict[Any, Any]:
        if type(pairs) is not list or not all(type(p) is list and len(p) == 2 for p in pairs):
            raise self.fail(path, "$dict must hold a list of [key, value] pairs")
        out: dict[Any, Any] = {}
        for i, (key_node, value_node) in enumerate(pairs):
            key = self.unpack(key_node, (*path, f"[key {i}]"))
            try:
                hash(key)
            except TypeError:
                raise self.fail(path, f"dict key {i} is an unhashable {type(key).__name__}") from None
            if isinstance(key, (torch.Tensor, np.ndarray)):
                raise self.fail(path, f"dict key {i} is a tensor")
            out[key] = self.unpack(value_node, (*path, _key_segment(key)))
        return out

    def special_float(self, value: Any, bits: Any, path: tuple[str, ...]) -> float:
        if value in ("inf", "-inf") and bits is None:
            return math.inf if value == "inf" else -math.inf
        if value == "nan" and bits is None:
            return math.nan
        if value == "nan" and type(bits) is str and _HEX_BITS.fullmatch(bits):
            number = struct.unpack("<d", bytes.fromhex(bits)[::-1])[0]
            if math.isnan(number):
                return number
        raise self.fail(path, f"$float must be 'nan', 'inf' or '-inf' (with 'bits' only for a NaN), got {value!r}")

    def array(self, tensor: torch.Tensor, dtype: Any, path: tuple[str, ...]) -> np.ndarray:
        if dtype not in _NDARRAY_DTYPES:
            raise self.fail(path, f"unknown numpy dtype {dtype!r}")
        storage = np.dtype(_NDARRAY_STORAGE[_NDARRAY_DTYPES[dtype]])
        if tensor.dtype == torch.bfloat16 or tensor.numpy().dtype != storage:
            raise self.fail(path, f"a {dtype} array is stored as {storage}, the file holds {tensor.dtype}")
        target = np.dtype(dtype)
        return tensor.numpy().view(target.newbyteorder("=")).astype(target, copy=True)


def unpack_tree(tree: Any, tensors: Mapping[str, torch.Tensor], *, root: str = "state") -> Any:
    """The structure :func:`pack_tree` packed, from its ``tree`` and ``tensors``; checks every node.

    Raises:
        FormatError: naming the path of a node that :func:`pack_tree` cannot have written (an unknown ``$`` tag, a
            reference to a missing tensor, a malformed tagged value), or the names of tensors nothing refers to.
    """
    unpacker = _Unpacker(tensors, root)
    try:
        obj = unpacker.unpack(tree, ())
    except RecursionError:
        raise FormatError(f"{root}: nested too deeply") from None
    unused = sorted(set(tensors) - unpacker.used)
    if unused:
        raise FormatError(f"{root}: {len(unused)} tensors are not referenced by the tree, e.g. {unused[:3]}")
    return obj
