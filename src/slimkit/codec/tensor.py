"""Encode one tensor into header fields plus byte sections, and decode it back bit for bit.

A tensor is stored in one of four ways, from two independent choices:

* layout ``dense`` (every element) or ``sparse`` (Deep Compression index gaps, :mod:`slimkit.codec.sparse`);
* values ``raw`` (the tensor's own dtype, little-endian) or ``codebook`` (k-means shared values: a small
  codebook plus one index per entry, :mod:`slimkit.codec.streams`).

"Zero" means the bit pattern 0, so ``-0.0`` is stored as a value and decoding is exact for every float.
Codebook entries that must decode to zero (pruned positions in the dense layout, fillers in the sparse one) use
an extra codebook slot holding ``+0.0``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from slimkit.codec.huffman import DEFAULT_BLOCK, HuffmanStream
from slimkit.codec.sparse import entry_positions, gap_histogram, plan_gaps, sparse_entries
from slimkit.codec.streams import encode_stream, fixed_width, parse_stream

Layout = Literal["auto", "dense", "sparse"]

# dtype name -> (numpy storage dtype, same-size integer view used to find bitwise zeros)
DTYPES: dict[str, tuple[str, str]] = {
    "float32": ("<f4", "<i4"), "float64": ("<f8", "<i8"), "float16": ("<f2", "<i2"), "bfloat16": ("<i2", "<i2"),
    "int64": ("<i8", "<i8"), "int32": ("<i4", "<i4"), "int16": ("<i2", "<i2"), "int8": ("i1", "i1"),
    "uint8": ("u1", "u1"), "bool": ("u1", "u1"),
}
FLOATS = {"float32", "float64", "float16", "bfloat16"}


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def to_numpy(tensor: torch.Tensor) -> np.ndarray:
    """Flat little-endian storage view of ``tensor`` (bfloat16 as its raw 16 bits, bool as bytes)."""
    t = tensor.detach().cpu().contiguous().reshape(-1)
    if t.dtype == torch.bfloat16:
        t = t.view(torch.int16)
    elif t.dtype == torch.bool:
        t = t.view(torch.uint8)
    return t.numpy().astype(DTYPES[dtype_name(tensor.dtype)][0], copy=False)


def from_numpy(array: np.ndarray, dtype: str, shape: list[int]) -> torch.Tensor:
    array = np.ascontiguousarray(array, dtype=DTYPES[dtype][0])
    if not array.flags.writeable or array.base is not None:
        array = array.copy()  # views of the file buffer are read-only
    out = torch.from_numpy(array)
    if dtype == "bfloat16":
        out = out.view(torch.bfloat16)
    elif dtype == "bool":
        out = out.view(torch.bool)
    return out.reshape(shape)


def _to_column_order(flat: np.ndarray, rows: int) -> np.ndarray:
    """Elements of the (rows, -1) matrix view, column after column."""
    return np.ascontiguousarray(flat.reshape(rows, -1).T).reshape(-1)


def _from_column_order(flat: np.ndarray, rows: int) -> np.ndarray:
    return np.ascontiguousarray(flat.reshape(-1, rows).T).reshape(-1)


@dataclass
class SharedValues:
    """A k-means shared tensor: ``codebook`` (k,) and ``indices`` (numel,) with -1 for pruned zeros."""

    codebook: torch.Tensor
    indices: np.ndarray


@dataclass
class EncodedTensor:
    record: dict  # header fields (sections hold [offset, length] once placed in the payload)
    sections: dict[str, bytes]


def encode_tensor(
    name: str,
    tensor: torch.Tensor,
    shared: SharedValues | None = None,
    *,
    layout: Layout = "auto",
    index_bits: int | None = None,
    huffman: bool = True,
    block: int = DEFAULT_BLOCK,
) -> EncodedTensor:
    """Encode ``tensor`` (its values are ``shared``'s when given) in the smallest allowed form."""
    dtype = dtype_name(tensor.dtype)
    if dtype not in DTYPES:
        raise ValueError(f"{name}: dtype {dtype} cannot be stored")
    numel = tensor.numel()
    record: dict = {"name": name, "shape": list(tensor.shape), "dtype": dtype}
    if shared is not None:
        idx = shared.indices.reshape(-1)
        kept = idx >= 0
        nonzero = int(np.count_nonzero(kept))
        clusters = shared.codebook.numel()
        value_bits = fixed_width(clusters + 1)
    else:
        values = to_numpy(tensor)
        kept = values.view(DTYPES[dtype][1]) != 0 if dtype in FLOATS or layout == "sparse" else None
        nonzero = int(np.count_nonzero(kept if kept is not None else values))
        value_bits = 8 * values.itemsize
    sparse = False
    # sparse storage takes at least (value_bits + 2) bits per nonzero: skip planning when it cannot win
    if kept is not None and (layout == "sparse" or (layout == "auto" and nonzero * (value_bits + 2) < numel * value_bits)):
        plans = []
        for order in ("row", "column") if tensor.dim() >= 2 and numel else ("row",):
            mask = kept if order == "row" else _to_column_order(kept, tensor.shape[0])
            where = np.flatnonzero(mask)
            plans.append((plan_gaps(gap_histogram(where), value_bits, index_bits=index_bits, huffman=huffman), order, where))
        (bits, entries, cost), order, positions = min(plans, key=lambda plan: plan[0][2])
        sparse = layout == "sparse" or cost < numel * value_bits
        if sparse and order == "column":
            # scan the matrix view column by column: runs of zeros along dead inputs code shorter
            record["order"] = "column"
            rows = tensor.shape[0]
            at = (positions % rows) * (numel // rows) + positions // rows  # where each entry sits, row-major
        else:
            at = positions
    record["nonzero"] = nonzero
    sections: dict[str, bytes] = {}
    if sparse:
        gaps, source = sparse_entries(positions, bits)
        gap_stream = encode_stream(gaps, 1 << bits, huffman=huffman, block=block)
        record.update(layout="sparse", index_bits=bits, entries=int(gaps.size), gaps=gap_stream.meta)
        sections["gaps"] = gap_stream.data
    else:
        record.update(layout="dense", entries=numel)
    if shared is None:
        record["values"] = "raw"
        if sparse:
            stored = np.zeros(source.size, dtype=values.dtype)
            real = source >= 0
            stored[real] = values[at[source[real]]]
            sections["values"] = stored.tobytes()
        else:
            sections["values"] = values.tobytes()
        return EncodedTensor(record, sections)
    # codebook values: symbol k (one past the centroids) decodes to +0.0
    symbols = idx[at[source]] if sparse else idx
    needs_zero = bool((source < 0).any()) if sparse else nonzero < numel
    if sparse and needs_zero:
        symbols = np.where(source >= 0, symbols, clusters)
    elif not sparse and needs_zero:
        symbols = np.where(idx >= 0, idx, clusters)
    codebook = shared.codebook.detach().cpu().to(tensor.dtype)
    if needs_zero:
        codebook = torch.cat([codebook, codebook.new_zeros(1)])
    index_stream = encode_stream(symbols, codebook.numel(), huffman=huffman, block=block)
    record.update(values="codebook", clusters=clusters, codebook_size=int(codebook.numel()), indices=index_stream.meta)
    sections["codebook"] = to_numpy(codebook).tobytes()
    sections["indices"] = index_stream.data
    return EncodedTensor(record, sections)


@dataclass
class PendingTensor:
    """A parsed record whose Huffman streams still await the batched decode."""

    record: dict
    streams: dict[str, HuffmanStream | np.ndarray]
    raw: dict[str, memoryview]


def parse_tensor(record: dict, sections: dict[str, memoryview]) -> PendingTensor:
    """Check a record's fields and parse its streams; raises ValueError/KeyError naming what is wrong."""
    layout, kind = record["layout"], record["values"]
    if layout not in ("dense", "sparse") or kind not in ("raw", "codebook"):
        raise ValueError(f"unknown encoding layout={layout!r} values={kind!r}")
    if record["dtype"] not in DTYPES:
        raise ValueError(f"unknown dtype {record['dtype']!r}")
    streams: dict[str, HuffmanStream | np.ndarray] = {}
    if layout == "sparse":
        streams["gaps"] = parse_stream(record["gaps"], sections["gaps"])
    if kind == "codebook":
        streams["indices"] = parse_stream(record["indices"], sections["indices"])
    return PendingTensor(record, streams, sections)


def finish_tensor(pending: PendingTensor, decoded: dict[str, np.ndarray]) -> torch.Tensor:
    """Build the tensor from its decoded streams (``decoded`` holds every stream by name)."""
    record = pending.record
    dtype, shape = record["dtype"], [int(s) for s in record["shape"]]
    numel = int(np.prod(shape, dtype=np.int64))
    storage = np.dtype(DTYPES[dtype][0])
    entries = int(record["entries"])
    if record["values"] == "raw":
        values = np.frombuffer(pending.raw["values"], dtype=storage)
    else:
        codebook = np.frombuffer(pending.raw["codebook"], dtype=storage)
        if codebook.size != int(record["codebook_size"]):
            raise ValueError(f"codebook has {codebook.size} values, header says {record['codebook_size']}")
        symbols = decoded["indices"]
        if symbols.size and int(symbols.max()) >= codebook.size:
            raise ValueError("codebook index out of range")
        values = codebook[symbols]
    if values.size != entries:
        raise ValueError(f"{values.size} values stored for {entries} entries")
    order = record.get("order", "row")
    if order not in ("row", "column") or (order == "column" and len(shape) < 2):
        raise ValueError(f"unknown scan order {order!r} for shape {shape}")
    if record["layout"] == "dense":
        if entries != numel:
            raise ValueError(f"dense tensor of {numel} elements has {entries} entries")
        out = values
    else:
        gaps = decoded["gaps"]
        if gaps.size != entries:
            raise ValueError(f"{gaps.size} index gaps for {entries} entries")
        out = np.zeros(numel, dtype=storage)
        out[entry_positions(gaps, numel)] = values
    if order == "column" and numel:
        out = _from_column_order(out, shape[0])
    return from_numpy(out, dtype, shape)
