"""Tensors to and from the ``.slim`` container: ``write_model``, ``load_state``, ``inspect_compressed``.

k-means shared weights are stored as codebook indices, tensors that are mostly zeros as relative index gaps
(Huffman-coded where smaller), the rest raw. Which model the tensors belong to, and how to rebuild it, is
:mod:`slimkit.state`'s business (``save_model``, ``save_compressed``, ``load_model``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch

from slimkit.codec.container import read_file, write_file
from slimkit.codec.huffman import DEFAULT_BLOCK, HuffmanStream, huffman_decode_many
from slimkit.codec.report import CompressionReport, layer_from_record
from slimkit.codec.tensor import (
    EncodedTensor,
    Layout,
    PendingTensor,
    SharedValues,
    encode_tensor,
    finish_tensor,
    parse_tensor,
)
from slimkit.core.errors import CodecError, ConfigError

WORKERS = min(2, os.cpu_count() or 1)  # numpy releases the GIL in its loops: tensors encode/decode side by side

T = TypeVar("T")
R = TypeVar("R")


def _parallel_map(fn: Callable[[T], R], items: list[T]) -> list[R]:
    """``[fn(x) for x in items]`` on ``WORKERS`` threads, in order; the first exception propagates."""
    if WORKERS <= 1 or len(items) <= 1:
        return [fn(x) for x in items]
    with ThreadPoolExecutor(WORKERS) as pool:
        return list(pool.map(fn, items))


def _decode_balanced(streams: list[HuffmanStream]) -> list[np.ndarray]:
    """Huffman-decode on ``WORKERS`` threads, each taking a contiguous share of the streams with similar counts."""
    total = sum(s.count for s in streams)
    if WORKERS <= 1 or total < 1 << 20:
        return huffman_decode_many(streams)
    cut = int(np.searchsorted(np.cumsum([s.count for s in streams]), total / 2)) + 1
    parts = [part for part in (streams[:cut], streams[cut:]) if part]
    return [symbols for part in _parallel_map(huffman_decode_many, parts) for symbols in part]

_Item = tuple[str, torch.Tensor, SharedValues | None]


def write_model(
    path: str | os.PathLike,
    header: Mapping[str, Any],
    items: list[_Item],
    *,
    huffman: bool = True,
    index_bits: int | None = None,
    layout: Layout = "auto",
    block: int = DEFAULT_BLOCK,
) -> CompressionReport:
    """Encode ``items`` (name, tensor, shared values) and write them with ``header`` atomically.

    The model-level fields of the header (architecture, structure) come from :mod:`slimkit.state`; this function
    only codes tensors and frames the file.
    """
    if layout not in ("auto", "dense", "sparse"):
        raise ConfigError(f"layout must be 'auto', 'dense' or 'sparse', got {layout!r}")
    if index_bits is not None and not 1 <= index_bits <= 16:
        raise ConfigError(f"index_bits must be in [1, 16], got {index_bits}")
    records: list[dict] = []
    chunks: list[bytes] = []
    offset = 0

    def encode(item: _Item) -> EncodedTensor:
        name, tensor, shared = item
        try:
            return encode_tensor(name, tensor, shared, layout=layout, index_bits=index_bits, huffman=huffman, block=block)
        except ValueError as err:
            raise CodecError(f"{path}: cannot encode tensor {name!r}: {err}") from None

    for encoded in _parallel_map(encode, items):
        placed = {}
        for section, data in encoded.sections.items():
            placed[section] = [offset, len(data)]
            chunks.append(data)
            offset += len(data)
        encoded.record["sections"] = placed
        records.append(encoded.record)
    size = write_file(path, {**header, "tensors": records}, chunks)
    return CompressionReport(str(path), size, [layer_from_record(r) for r in records])


def _sections(record: dict, payload: memoryview, source: str) -> dict[str, memoryview]:
    out = {}
    for section, (offset, length) in record["sections"].items():
        if offset < 0 or length < 0 or offset + length > len(payload):
            raise CodecError(
                f"{source}: truncated section {section!r} for tensor {record['name']!r} "
                f"(bytes {offset}..{offset + length} of a {len(payload)}-byte payload)"
            )
        out[section] = payload[offset : offset + length]
    return out


def decode_tensors(header: dict, payload: memoryview, source: str = "<bytes>") -> dict[str, torch.Tensor]:
    """Decode every tensor of a parsed file, all Huffman streams in one batch; exact to the bit."""
    from slimkit.codec.container import tensor_sizes
    from slimkit.core.limits import check_budget, load_budget_bytes

    sizes = tensor_sizes(header, source)  # shapes, dtypes and stream counts, checked before any allocation
    largest = max(sizes, key=lambda size: size[1], default=("", 0))[0]
    claim = f"{len(sizes)} tensors (largest {largest!r})"
    check_budget(source, claim, sum(nbytes for _, nbytes in sizes), load_budget_bytes(len(payload)))
    pending = []
    for record in header["tensors"]:
        name = record.get("name", "?") if isinstance(record, dict) else "?"
        try:
            pending.append(parse_tensor(record, _sections(record, payload, source)))
        except CodecError:
            raise
        except (ValueError, KeyError, TypeError) as err:
            raise CodecError(f"{source}: tensor {name!r}: bad record ({type(err).__name__}: {err})") from None
    jobs = [(i, key, s) for i, p in enumerate(pending) for key, s in p.streams.items() if isinstance(s, HuffmanStream)]
    try:
        decoded_streams = _decode_balanced([s for _, _, s in jobs])
    except ValueError:
        for i, key, stream in jobs:  # find the culprit (only on the error path)
            try:
                huffman_decode_many([stream])
            except ValueError as err:
                raise CodecError(f"{source}: tensor {pending[i].record['name']!r}: {key}: {err}") from None
        raise
    decoded: list[dict] = [{k: s for k, s in p.streams.items() if not isinstance(s, HuffmanStream)} for p in pending]
    for (i, key, _), symbols in zip(jobs, decoded_streams):
        decoded[i][key] = symbols

    def finish(job: tuple[PendingTensor, dict]) -> torch.Tensor:
        p, streams = job
        try:
            return finish_tensor(p, streams)
        except (ValueError, KeyError, TypeError, IndexError) as err:
            raise CodecError(f"{source}: tensor {p.record['name']!r}: {err}") from None

    results = _parallel_map(finish, list(zip(pending, decoded)))
    return {p.record["name"]: tensor for p, tensor in zip(pending, results)}


def load_state(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The decoded state dict and the header of a ``.slim`` file (no model is built)."""
    header, payload = read_file(path)
    return decode_tensors(header, payload, str(path)), header


def inspect_compressed(path: str | os.PathLike) -> CompressionReport:
    """The size report of a ``.slim`` file, read from its header (checksum verified, nothing decoded)."""
    header, _ = read_file(path)
    try:
        layers = [layer_from_record(r) for r in header["tensors"]]
    except (KeyError, TypeError, ValueError) as err:
        raise CodecError(f"{path}: bad tensor record ({err})") from None
    return CompressionReport(str(path), Path(path).stat().st_size, layers)
