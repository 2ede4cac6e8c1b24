"""The ``.slim`` compressed model file: sparse index gaps, codebooks, canonical Huffman, no pickle (docs/format.md)."""

from slimkit.codec.api import decode_tensors, inspect_compressed, load_state, write_model
from slimkit.codec.container import FORMAT_VERSION
from slimkit.codec.report import CompressionReport, LayerCompression

__all__ = [
    "FORMAT_VERSION", "CompressionReport", "LayerCompression", "decode_tensors", "inspect_compressed",
    "load_state", "write_model",
]
