"""pack_tree / unpack_tree: nested plain values and tensors survive a .slim file exactly; anything else is refused."""

from __future__ import annotations

import json
import math
import random
import struct
from collections import OrderedDict

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from slimkit.codec.api import load_state, write_model
from slimkit.codec.tree import pack_tree, unpack_tree
from slimkit.core.errors import CheckpointError, FormatError
from slimkit.train.checkpoint import checkpoint_path, load_checkpoint, save_checkpoint


def assert_identical(a, b, where="state"):
    """Same types all the way down, floats and tensors equal to the bit."""
    assert type(a) is type(b), f"{where}: {type(a).__name__} != {type(b).__name__}"
    if isinstance(a, dict):
        assert [(type(k), k) for k in a] == [(type(k), k) for k in b], where
        for key, x, y in zip(a, a.values(), b.values()):
            assert_identical(x, y, f"{where}[{key!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_identical(x, y, f"{where}[{i}]")
    elif isinstance(a, float):
        assert struct.pack("<d", a) == struct.pack("<d", b), f"{where}: {a!r} != {b!r}"
    elif isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and a.shape == b.shape, where
        assert a.requires_grad == b.requires_grad, where
        bits = [t.detach().contiguous().reshape(-1).view(torch.uint8) for t in (a, b)]
        assert bits[0].equal(bits[1]), where
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape, where
        assert a.tobytes() == b.tobytes(), where
    else:
        assert a == b, where


def roundtrip_file(obj, tmp_path):
    """Through JSON text and a real .slim file, as a checkpoint travels."""
    tree, tensors = pack_tree(obj)
    path = tmp_path / "tree.slim"
    write_model(path, {"tree": tree}, [(n, t, None) for n, t in tensors.items()], layout="dense", huffman=False)
    loaded, header = load_state(path)
    return unpack_tree(json.loads(json.dumps(header["tree"], allow_nan=False)), loaded)


def _adam_state():
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.8, 0.99))
    model(torch.randn(5, 3)).sum().backward()
    optimizer.step()
    return optimizer.state_dict()  # state keyed by int, betas a tuple, "step" a tensor


def _tensors():
    g = torch.Generator().manual_seed(0)
    values = torch.randn(3, 4, generator=g)
    values[0, :3] = torch.tensor([-0.0, math.nan, -math.inf])
    return {
        str(dtype): values.to(dtype) if dtype.is_floating_point else (values * 100).to(dtype)
        for dtype in (torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.int64, torch.int32,
                      torch.int16, torch.int8, torch.uint8, torch.bool)
    }


CASES = {
    "optimizer with int keys": lambda: _adam_state(),
    "python random state": lambda: random.getstate(),
    "numpy random state": lambda: np.random.get_state(),
    "torch random state": lambda: torch.get_rng_state(),
    "tensors of every stored dtype": _tensors,
    "scalar, empty and strided tensors": lambda: [torch.tensor(2.5), torch.empty(0, 3), torch.arange(12.0).view(3, 4).T],
    "special floats": lambda: [math.nan, -math.nan, math.inf, -math.inf, -0.0, 0.0, 5e-324, 1.7976931348623157e308,
                               struct.unpack("<d", bytes.fromhex("0100000000f8ff7f"))[0]],
    "tuples stay tuples, lists lists": lambda: {"t": (1, [2, (3,)], ()), "l": [(), [], {}]},
    "big ints": lambda: [2**63 - 1, -(2**63), 2**63, -(2**64) - 1, 3**1000, 0],
    "keys that are not plain strings": lambda: {0: "a", -1: "b", 2.5: None, None: 1, True: 2, (1, "x"): 3,
                                                "$tensor": "not a tag", "": 0},
    "numpy arrays": lambda: [np.arange(6, dtype=np.uint32).reshape(2, 3), np.array([1.5, -0.0], dtype=">f8"),
                             np.array(7, dtype=np.uint64), np.zeros((0, 2), dtype=np.float16),
                             np.array([True, False]), np.arange(10, dtype=np.int16)[::3]],
    "parameters and ordered dicts": lambda: {"p": nn.Parameter(torch.ones(2)),
                                             "frozen": nn.Parameter(torch.zeros(2), requires_grad=False),
                                             "od": OrderedDict(b=1, a=2)},
}


@pytest.mark.parametrize("case", list(CASES))
def test_roundtrip_is_exact(case, tmp_path):
    obj = CASES[case]()
    back = roundtrip_file(obj, tmp_path)
    if case == "parameters and ordered dicts":
        assert type(back["od"]) is dict and list(back["od"].items()) == [("b", 1), ("a", 2)]
        obj["od"] = dict(obj["od"])
    assert_identical(obj, back)


def test_restored_rng_states_continue_identically(tmp_path):
    states = roundtrip_file({"python": random.getstate(), "numpy": np.random.get_state(),
                             "torch": torch.get_rng_state()}, tmp_path)
    expected = (random.random(), np.random.rand(), torch.rand(1))
    random.setstate(states["python"])
    np.random.set_state(states["numpy"])
    torch.set_rng_state(states["torch"])
    assert (random.random(), np.random.rand(), torch.rand(1)) == expected


def test_one_object_is_stored_once_and_names_follow_paths():
    shared, array = torch.ones(3), np.zeros(2)
    tree, tensors = pack_tree({"model": {"emb.weight": shared, "head.weight": shared}, "rng": [array, array]})
    assert list(tensors) == ["model.emb.weight", "rng[0]"]
    assert tree["model"]["head.weight"] == {"$tensor": "model.emb.weight"}
    back = unpack_tree(tree, tensors)
    assert back["model"]["emb.weight"] is back["model"]["head.weight"]


json_leaves = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=8)
tensor_leaves = st.builds(lambda n, d: (torch.arange(n) - 2).to(d), st.integers(0, 5),
                          st.sampled_from([torch.float32, torch.bfloat16, torch.int64, torch.bool]))
trees = st.recursive(
    json_leaves | tensor_leaves,
    lambda children: st.lists(children, max_size=4) | st.tuples(children, children)
    | st.dictionaries(st.text(max_size=4) | st.integers(), children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=150, deadline=None)
@given(trees)
def test_decode_of_encode_is_identity(obj):
    tree, tensors = pack_tree(obj)
    text = json.dumps(tree, allow_nan=False)  # the tree is valid JSON
    assert_identical(obj, unpack_tree(json.loads(text), tensors))


class Foo:
    pass


@pytest.mark.parametrize(("obj", "where", "what"), [
    ({"optimizer": {"param_groups": [{"lr": 0.1, "foo": Foo()}]}}, r"state\.optimizer\.param_groups\[0\]\.foo",
     r"test_tree\.Foo"),
    ({"hooks": [{3: (1, {1, 2})}]}, r"state\.hooks\[0\]\[3\]\[1\]", "builtins.set"),
    ({"f": np.float64(1.0)}, r"state\.f", "numpy.float64"),
    ({"c": torch.zeros(2, dtype=torch.complex64)}, r"state\.c", "complex64"),
    ({"a": np.array(["x"])}, r"state\.a", "numpy array of dtype <U1"),
    ({(torch.ones(1),): 1}, r"state\[\(tensor", "dict key"),
    ({"fn": print}, r"state\.fn", "builtin_function_or_method"),
])
def test_what_cannot_be_stored_is_refused_naming_its_path(obj, where, what):
    with pytest.raises(CheckpointError, match=f"^{where}.*{what}"):
        pack_tree(obj)


def test_a_structure_holding_itself_is_refused():
    loop: list = [1]
    loop.append({"again": loop})
    with pytest.raises(CheckpointError, match=r"state\[1\]\.again: the list contains itself"):
        pack_tree(loop)


@pytest.mark.parametrize(("tree", "message"), [
    ({"$pickle": "cos\nsystem\n"}, r"state: unknown tag \['\$pickle'\]"),
    ({"a": [{"$tensor": "w", "extra": 1}]}, r"state\.a\[0\]: unknown tag"),
    ({"$tensor": "w", "$tuple": []}, "unknown tag"),
    ({"x": {"$tensor": "missing"}}, r"state\.x: refers to tensor 'missing'"),
    ({"x": {"$tensor": ["w"]}}, "refers to tensor"),
    ({"$tuple": {"a": 1}}, r"\$tuple must hold a list"),
    ({"$dict": [[1, 2, 3]]}, r"\$dict must hold a list of \[key, value\] pairs"),
    ({"$dict": [[[1], 2]]}, "unhashable list"),
    ({"$dict": [[{"$tensor": "w"}, 2]]}, "is a tensor"),
    ({"$float": "1e400"}, r"\$float must be"),
    ({"$float": "nan", "bits": "0000000000000000"}, r"\$float must be"),
    ({"$int": "__import__('os')"}, r"\$int must be a hex string"),
    ({"$ndarray": "w", "dtype": "|O"}, "unknown numpy dtype '|O'"),
    ({"$ndarray": "w", "dtype": "<i8"}, "stored as int64, the file holds torch.float32"),
    ({"$parameter": "i", "requires_grad": True}, "cannot require gradients"),
    ({"x": math.nan}, "must be tagged"),
    ([{"$tensor": "w"}], "tensors are not referenced by the tree"),
])
def test_unexpected_nodes_are_refused(tree, message):
    tensors = {"w": torch.zeros(2), "i": torch.zeros(2, dtype=torch.int64)}
    with pytest.raises(FormatError, match=message):
        unpack_tree(tree, tensors)


def test_deep_nesting_is_refused_not_crashing():
    tree: object = 0
    for _ in range(5000):
        tree = [tree]
    with pytest.raises(FormatError, match="nested too deeply"):
        unpack_tree(tree, {})


@pytest.mark.parametrize("where", ["header", "payload", "checksum"])
def test_a_tampered_checkpoint_is_refused_by_its_checksum(tmp_path, where):
    save_checkpoint(tmp_path, {"epoch": 1, "model": {"w": torch.arange(64.0)}, "rng": random.getstate()})
    path = checkpoint_path(tmp_path)
    data = bytearray(path.read_bytes())
    at = {"header": 40, "payload": len(data) - 32 - 100, "checksum": len(data) - 1}[where]
    data[at] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(FormatError, match=r"last\.pt: checksum mismatch"):
        load_checkpoint(tmp_path)
