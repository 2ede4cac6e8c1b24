"""``save_compressed`` / ``load_compressed``: a model to a Deep Compression ``.slim`` file and back.

The same header as :func:`slimkit.save_model` (architecture as data, structure edits, signature), with tensors
coded by :mod:`slimkit.codec`: k-means shared weights as codebook indices, mostly-zero tensors as index gaps,
Huffman where smaller. Loading returns the model in the state it was saved in, outputs equal to the bit.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

from torch import nn

from slimkit.codec.huffman import DEFAULT_BLOCK
from slimkit.codec.report import CompressionReport
from slimkit.codec.tensor import Layout
from slimkit.state.file import SLIM_FORMAT, load_model, model_header


def save_compressed(
    model: nn.Module,
    path: str | os.PathLike,
    *,
    huffman: bool = True,
    index_bits: int | None = None,
    layout: Layout = "auto",
    block: int = DEFAULT_BLOCK,
    metadata: Mapping[str, Any] | None = None,
    example_inputs: Any = None,
) -> CompressionReport:
    """Write ``model`` as a Deep-Compression ``.slim`` file (atomically) and report where the bytes went.

    Args:
        model: any module in any state slimkit leaves it in; zoo / ``create_model`` models load without
            passing the architecture, the user's own need ``model=`` or ``factory=`` when loading.
        path: the file to write.
        huffman: Huffman-code index gaps and codebook indices (each stream only where that is smaller).
        index_bits: gap width of the sparse layout (default: the best of 2..8 per tensor).
        layout: ``"auto"`` picks dense or sparse per tensor by size; ``"dense"``/``"sparse"`` force one.
        block: symbols per independently decodable Huffman block (speed vs ~32 bits per block).
        metadata: JSON-ready extra information stored in the header.
        example_inputs: when given, input/output shapes are recorded and checked on load.

    Returns:
        A :class:`CompressionReport` (ratio vs fp32 by stage and by tensor).

    Raises:
        CheckpointError: naming the layer or tensor a file cannot represent (nothing is written).

    Example:
        >>> report = save_compressed(model, "lenet.slim")
        >>> print(report.table())
    """
    from slimkit.codec.api import write_model

    header, items = model_header(model, SLIM_FORMAT, metadata=metadata, example_inputs=example_inputs)
    return write_model(path, header, items, huffman=huffman, index_bits=index_bits, layout=layout, block=block)


def load_compressed(path: str | os.PathLike, *, model: nn.Module | None = None,
                    factory: Callable[..., nn.Module] | None = None) -> nn.Module:
    """Rebuild the model saved by :func:`save_compressed`: same architecture and structure, exact weights.

    Args:
        path: a ``.slim`` file.
        model: a fresh instance of the original architecture (needed for the user's own ``nn.Module``).
        factory: builds the architecture the file names (when this process has not registered it).

    Raises:
        CodecError: the file is not a .slim file, has an unsupported version, is truncated or altered.
        CheckpointError: the architecture is unregistered, or the tensors do not fit it.
    """
    return load_model(path, model, factory=factory)
