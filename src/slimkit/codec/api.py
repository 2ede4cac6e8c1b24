"""``save_compressed`` / ``load_compressed`` / ``inspect_compressed``: a model to a ``.slim`` file and back.

The file holds the model's build spec (``slimkit_spec``, see :mod:`slimkit.models`) and every state-dict tensor.
k-means shared weights (:func:`slimkit.quant.kmeans.share_weights`) are stored as codebook indices, pruned
tensors sparsely, the rest raw; loading rebuilds the architecture (pruned shapes included) and returns a plain
model whose outputs equal those of the model that was saved.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
from torch import nn
from torch.nn.utils import parametrize

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
from slimkit.models import create_model, model_spec
from slimkit.quant.kmeans import SharedWeight

FORMAT = "slimkit.slim"
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


def _logical_tensors(model: nn.Module) -> list[_Item]:
    """Every tensor of the plain (unparametrized) state dict; shared weights keep their codebook and indices."""
    items: list[_Item] = []
    state = model.state_dict()
    for key, value in state.items():
        if ".parametrizations." in f".{key}":
            continue
        if key.endswith("_mask") and key[: -len("_mask")] + "_orig" in state:
            continue  # torch.nn.utils.prune: the masked weight is stored instead
        if key.endswith("_orig") and key[: -len("_orig")] + "_mask" in state:
            fqn, _, attr = key[: -len("_orig")].rpartition(".")
            module = model.get_submodule(fqn) if fqn else model
            items.append((f"{fqn}.{attr}" if fqn else attr, getattr(module, attr).detach(), None))
            continue
        items.append((key, value, None))
    for fqn, module in model.named_modules():
        if not parametrize.is_parametrized(module):
            continue
        for attr, plist in module.parametrizations.items():
            name = f"{fqn}.{attr}" if fqn else attr
            if len(plist) == 1 and isinstance(plist[0], SharedWeight):
                shared = plist[0]
                meta = torch.empty(shared.indices.shape, dtype=shared.codebook.dtype, device="meta")
                indices = shared.indices.detach().cpu().numpy().reshape(-1)
                items.append((name, meta, SharedValues(shared.codebook.detach().cpu(), indices)))
            else:
                items.append((name, getattr(module, attr).detach(), None))
    return items


def save_compressed(
    model: nn.Module,
    path: str | os.PathLike,
    *,
    huffman: bool = True,
    index_bits: int | None = None,
    layout: Layout = "auto",
    block: int = DEFAULT_BLOCK,
    metadata: Mapping[str, Any] | None = None,
) -> CompressionReport:
    """Write ``model`` as a Deep-Compression ``.slim`` file (atomically) and report where the bytes went.

    Args:
        model: any module; k-means shared weights are stored as codebook indices, tensors that are mostly
            zeros as relative index gaps. Models from :func:`slimkit.create_model` can be loaded without
            passing the architecture.
        path: the file to write.
        huffman: Huffman-code index gaps and codebook indices (each stream only where that is smaller).
        index_bits: gap width of the sparse layout (default: the best of 2..8 per tensor).
        layout: ``"auto"`` picks dense or sparse per tensor by size; ``"dense"``/``"sparse"`` force one.
        block: symbols per independently decodable Huffman block (speed vs ~32 bits per block).
        metadata: JSON-ready extra information stored in the header.

    Returns:
        A :class:`CompressionReport` (ratio vs fp32 by stage and by tensor).

    Example:
        >>> report = save_compressed(model, "lenet.slim")
        >>> print(report.table())
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

    for encoded in _parallel_map(encode, _logical_tensors(model)):
        placed = {}
        for section, data in encoded.sections.items():
            placed[section] = [offset, len(data)]
            chunks.append(data)
            offset += len(data)
        encoded.record["sections"] = placed
        records.append(encoded.record)
    from slimkit import __version__

    header = {
        "format": FORMAT,
        "slimkit_version": __version__,
        "spec": model_spec(model),
        "metadata": dict(metadata or {}),
        "tensors": records,
    }
    size = write_file(path, header, chunks)
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


def load_compressed(path: str | os.PathLike, *, model: nn.Module | None = None) -> nn.Module:
    """Rebuild the model saved by :func:`save_compressed`: same architecture, pruned shapes, exact weights.

    Args:
        path: a ``.slim`` file.
        model: the architecture to load into (needed only when the saved model had no ``slimkit_spec``).

    Raises:
        CodecError: the file is not a .slim file, has an unsupported version, is truncated or altered.
        CheckpointError: the tensors do not fit the architecture.
    """
    tensors, header = load_state(path)
    if model is None:
        spec = header.get("spec")
        if not spec:
            raise CodecError(
                f"{path}: the saved model had no slimkit_spec; pass model= (an instance of its architecture)"
            )
        model = create_model(spec["name"], **spec.get("kwargs", {}))
    from slimkit.core.shapes import resize_to_state_dict

    resize_to_state_dict(model, tensors)
    model.load_state_dict(tensors)
    return model


def inspect_compressed(path: str | os.PathLike) -> CompressionReport:
    """The size report of a ``.slim`` file, read from its header (checksum verified, nothing decoded)."""
    header, _ = read_file(path)
    try:
        layers = [layer_from_record(r) for r in header["tensors"]]
    except (KeyError, TypeError, ValueError) as err:
        raise CodecError(f"{path}: bad tensor record ({err})") from None
    return CompressionReport(str(path), Path(path).stat().st_size, layers)
