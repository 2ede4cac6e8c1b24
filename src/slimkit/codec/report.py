"""Where the bytes went: the compression ratio broken down by stage and by layer (Deep Compression, Table 2).

Every figure is derived from the file's header, so ``inspect`` on a saved file gives the same report as the save.
Stages are cumulative and measured against the fp32 baseline (4 bytes per float element):

* pruning (P): sparse entries stored as fp32 values plus fixed-width index gaps;
* quantization (P+Q): codebook indices at fixed width plus the codebook;
* Huffman (P+Q+H): the sections actually stored (whichever of fixed/Huffman was smaller per stream);
* file: everything, header and checksum included. ``ratio`` is this one.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from slimkit.codec.streams import fixed_width
from slimkit.codec.tensor import DTYPES, FLOATS

BASELINE_FLOAT_BYTES = 4


def _fmt(value: float | None, spec: str, suffix: str = "") -> str:
    """``value`` formatted with ``spec``, or ``-`` when there is none (e.g. coded bits of a tensor with no entries)."""
    return "-" if value is None else f"{value:{spec}}{suffix}"


@dataclass(frozen=True)
class LayerCompression:
    """One tensor's sizes after each stage (bytes) and its bits per stored entry."""

    name: str
    weights: int
    nonzero: int
    entries: int
    layout: str
    values: str
    original_bytes: int
    pruned_bytes: float
    quantized_bytes: float
    stored_bytes: int
    index_bits: int | None = None  # fixed gap width (sparse)
    index_bits_coded: float | None = None  # average after Huffman
    value_bits: int | None = None  # fixed codebook index width (codebook)
    value_bits_coded: float | None = None

    @property
    def density(self) -> float:
        return self.nonzero / self.weights if self.weights else 0.0

    @property
    def ratio(self) -> float:
        return self.original_bytes / max(self.stored_bytes, 1)


def layer_from_record(record: dict) -> LayerCompression:
    numel = int(np.prod(record["shape"], dtype=np.int64))
    dtype = record["dtype"]
    itemsize = np.dtype(DTYPES[dtype][0]).itemsize
    original = numel * (BASELINE_FLOAT_BYTES if dtype in FLOATS else itemsize)
    value_bits_raw = 8 * (BASELINE_FLOAT_BYTES if dtype in FLOATS else itemsize)
    entries = int(record["entries"])
    lengths = {k: int(v[1]) for k, v in record["sections"].items()}
    sparse = record["layout"] == "sparse"
    index_bits = int(record["index_bits"]) if sparse else None
    pruned = entries * (value_bits_raw + (index_bits or 0)) / 8 if sparse else float(original)
    value_bits = coded_values = None
    quantized = pruned
    if record["values"] == "codebook":
        value_bits = fixed_width(int(record["codebook_size"]))
        quantized = entries * (value_bits + (index_bits or 0)) / 8 + lengths.get("codebook", 0)
        coded_values = 8 * lengths["indices"] / entries if entries else 0.0
    coded_index = 8 * lengths["gaps"] / entries if sparse and entries else None
    return LayerCompression(
        name=record["name"], weights=numel, nonzero=int(record["nonzero"]), entries=entries,
        layout=record["layout"], values=record["values"], original_bytes=original, pruned_bytes=pruned,
        quantized_bytes=quantized, stored_bytes=sum(lengths.values()), index_bits=index_bits,
        index_bits_coded=coded_index, value_bits=value_bits, value_bits_coded=coded_values,
    )


@dataclass(frozen=True)
class CompressionReport:
    """Sizes of a ``.slim`` file by stage and layer; ``ratio`` = fp32 bytes / file bytes."""

    path: str
    file_bytes: int
    layers: list[LayerCompression] = field(default_factory=list)

    @property
    def original_bytes(self) -> int:
        return sum(layer.original_bytes for layer in self.layers)

    @property
    def payload_bytes(self) -> int:
        return sum(layer.stored_bytes for layer in self.layers)

    @property
    def overhead_bytes(self) -> int:
        """Header, framing and checksum."""
        return self.file_bytes - self.payload_bytes

    @property
    def ratio(self) -> float:
        return self.original_bytes / max(self.file_bytes, 1)

    def stage_bytes(self) -> dict[str, float]:
        return {
            "original": float(self.original_bytes),
            "pruning": sum(layer.pruned_bytes for layer in self.layers),
            "quantization": sum(layer.quantized_bytes for layer in self.layers),
            "huffman": float(self.payload_bytes),
            "file": float(self.file_bytes),
        }

    def stage_ratios(self) -> dict[str, float]:
        """Cumulative ratio after each stage: {"pruning": 9.8, "quantization": 31.2, "huffman": 40.1, "file": 39.0}."""
        sizes = self.stage_bytes()
        return {k: self.original_bytes / max(v, 1.0) for k, v in sizes.items() if k != "original"}

    def to_dict(self) -> dict:
        return {
            "path": self.path, "file_bytes": self.file_bytes, "original_bytes": self.original_bytes,
            "payload_bytes": self.payload_bytes, "overhead_bytes": self.overhead_bytes, "ratio": self.ratio,
            "stage_bytes": self.stage_bytes(), "stage_ratios": self.stage_ratios(),
            "layers": [asdict(layer) | {"density": layer.density, "ratio": layer.ratio} for layer in self.layers],
        }

    def table(self, *, min_weights: int = 0) -> str:
        """A Table-2-style breakdown: density, bits per value and per index before/after Huffman, ratios."""

        def bits(fixed: int | None, coded: float | None) -> str:
            # a tensor with no stored entries (all zeros) has a fixed width but no coded average
            if fixed is None:
                return "-"
            return f"{fixed}/{_fmt(coded, '.1f')}"

        head = (
            f"{'tensor':<30}{'weights':>10}{'density':>9}{'val bits':>10}{'idx bits':>10}"
            f"{'P+Q':>8}{'P+Q+H':>8}{'bytes':>10}"
        )
        rows = [head, "-" * len(head)]
        for lay in self.layers:
            if lay.weights < min_weights:
                continue
            rows.append(
                f"{lay.name:<30}{lay.weights:>10}{lay.density:>9.1%}{bits(lay.value_bits, lay.value_bits_coded):>10}"
                f"{bits(lay.index_bits, lay.index_bits_coded):>10}"
                f"{_fmt(lay.original_bytes / max(lay.quantized_bytes, 1), '.1f', 'x'):>8}"
                f"{_fmt(lay.ratio, '.1f', 'x'):>8}{_fmt(lay.stored_bytes, 'd'):>10}"
            )
        rows.append("-" * len(head))
        stages = self.stage_ratios()
        rows.append(
            f"{'total':<30}{sum(lay.weights for lay in self.layers):>10}  fp32 {self.original_bytes} B -> "
            f"file {self.file_bytes} B ({self.overhead_bytes} B header+checksum)"
        )
        rows.append(
            "ratio by stage: " + ", ".join(f"{k} {v:.1f}x" for k, v in stages.items())
            + "   (val/idx bits: fixed/after Huffman)"
        )
        return "\n".join(rows)
