"""The result of :func:`slimkit.profile`: totals, per-layer rows, a text table, and storage size what-ifs."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from slimkit.core.errors import ConfigError


def human(value: float, *, binary: bool = False) -> str:
    """``1234567 -> '1.23M'`` (or ``'1.18 MiB'`` with ``binary``)."""
    if binary:
        for unit in ("B", "KiB", "MiB", "GiB"):
            if abs(value) < 1024 or unit == "GiB":
                return f"{value:.0f} {unit}" if unit == "B" else f"{value:.2f} {unit}"
            value /= 1024
    for unit in ("", "K", "M", "G", "T"):
        if abs(value) < 1000 or unit == "T":
            return f"{value:.0f}" if unit == "" else f"{value:.2f}{unit}"
        value /= 1000
    raise AssertionError("unreachable")


@dataclass(frozen=True)
class LayerRow:
    """One row of the per-layer table.

    Attributes:
        fqn: module path (``"layer1.0.conv1"``; ``"<root>"`` for the top module).
        type: module class name.
        params: parameters attributed to the row: its own and those of submodules that have no row (e.g.
            ``out_proj`` of ``nn.MultiheadAttention``, used functionally); shared parameters counted once.
        macs, flops: exclusive cost: operators run directly by this module, not by child modules that have rows.
        output_shape: shape of the first output tensor of its first call (``None`` when never called).
        calls: how many times the module ran in the pass.
    """

    fqn: str
    type: str
    params: int
    macs: int
    flops: int
    output_shape: tuple[int, ...] | None
    calls: int


@dataclass(frozen=True)
class ProfileReport:
    """Counts for one inference forward pass of a model on given example inputs.

    Attributes:
        params: parameters, each shared (tied) tensor counted once.
        nonzero_params: parameters that are not exactly zero.
        macs: multiply-accumulates (see docs/profiling.md for the convention).
        flops: ``2 * macs`` plus bias adds, norm statistics, pooling comparisons, softmax, pointwise ops.
        size_bytes: bytes of parameters and buffers as stored (each tensor's dtype), shared ones once.
        param_bytes, buffer_bytes: the two parts of ``size_bytes``.
        peak_activation_bytes: peak bytes of live activation tensors during the pass (inputs included,
            parameters and buffers excluded).
        layers: per-layer rows in the order the modules first ran.
        ops: per ATen operator: ``{"calls", "macs", "flops"}``.
        uncounted_ops: operators with no counting rule, and how often they ran (their cost is not in the totals).
        input_shapes: shapes of the example input tensors.
    """

    params: int
    nonzero_params: int
    macs: int
    flops: int
    size_bytes: int
    param_bytes: int
    buffer_bytes: int
    peak_activation_bytes: int
    layers: tuple[LayerRow, ...]
    ops: dict[str, dict[str, int]] = field(default_factory=dict)
    uncounted_ops: dict[str, int] = field(default_factory=dict)
    input_shapes: tuple[tuple[int, ...], ...] = ()

    @property
    def sparsity(self) -> float:
        """Fraction of parameters that are exactly zero."""
        return 1.0 - self.nonzero_params / self.params if self.params else 0.0

    def size_at(self, bits: int = 8, sparsity: float | None = 0.0, *, index_bits: int = 8) -> int:
        """Bytes to store the model with every parameter at ``bits`` bits and a fraction ``sparsity`` of zeros.

        Sparse format assumed (as in Deep Compression): nonzero values at ``bits`` each plus a *relative* index of
        ``index_bits`` per stored entry (the gap to the previous entry). A gap longer than ``2**index_bits`` needs
        a filler zero entry every ``2**index_bits`` positions; with zeros placed independently with probability
        ``s`` the expected number of entries is ``nnz / (1 - s ** (2 ** index_bits))``. The smaller of the dense
        and sparse encodings is taken. Buffers (BN running statistics) are kept as stored; per-tensor quantization
        metadata (scales, codebooks) is not included.

        Args:
            bits: bits per stored parameter value (32 = float32, 8 = int8, ...).
            sparsity: fraction of parameters that are zero, in [0, 1]; ``None`` uses the model's own
                (:attr:`sparsity`).
            index_bits: bits per relative index in the sparse format.

        Returns:
            Size in bytes (rounded up).

        Raises:
            ConfigError: for bits or index_bits below 1, or sparsity outside [0, 1].
        """
        if bits < 1 or index_bits < 1:
            raise ConfigError(f"bits and index_bits must be >= 1, got bits={bits}, index_bits={index_bits}")
        s = self.sparsity if sparsity is None else float(sparsity)
        if not 0.0 <= s <= 1.0:
            raise ConfigError(f"sparsity must be in [0, 1], got {sparsity}")
        dense_bits = self.params * bits
        param_bits = float(dense_bits)
        if s > 0.0:
            nnz = round(self.params * (1.0 - s))
            entries = nnz / (1.0 - s ** (2**index_bits)) if s < 1.0 else 0.0
            param_bits = min(param_bits, entries * (bits + index_bits))
        return math.ceil(param_bits / 8) + self.buffer_bytes

    def table(self, *, max_rows: int | None = None) -> str:
        """A readable per-layer table with totals underneath."""
        header = ("layer", "type", "params", "MACs", "MACs %", "FLOPs", "output shape")
        rows = [header]
        layers = self.layers if max_rows is None else self.layers[:max_rows]
        for layer in layers:
            share = f"{100.0 * layer.macs / self.macs:.1f}" if self.macs else "-"
            shape = "x".join(str(d) for d in layer.output_shape) if layer.output_shape is not None else "-"
            name = layer.fqn + (f" (x{layer.calls})" if layer.calls > 1 else "")
            rows.append((name, layer.type, human(layer.params), human(layer.macs), share, human(layer.flops), shape))
        widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
        right = {2, 3, 4, 5}
        lines = []
        for i, row in enumerate(rows):
            cells = [c.rjust(w) if j in right else c.ljust(w) for j, (c, w) in enumerate(zip(row, widths))]
            lines.append("  ".join(cells).rstrip())
            if i == 0:
                lines.append("  ".join("-" * w for w in widths))
        if max_rows is not None and len(self.layers) > max_rows:
            lines.append(f"... {len(self.layers) - max_rows} more layers")
        lines.append("")
        lines.append(
            f"params {human(self.params)} ({self.params:,}; nonzero {self.nonzero_params:,})  "
            f"MACs {human(self.macs)}  FLOPs {human(self.flops)}  size {human(self.size_bytes, binary=True)}  "
            f"peak activations {human(self.peak_activation_bytes, binary=True)}"
        )
        if self.uncounted_ops:
            names = ", ".join(f"{k} (x{v})" for k, v in sorted(self.uncounted_ops.items()))
            lines.append(f"not counted (no rule): {names}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (shapes as lists)."""
        data = asdict(self)
        data["layers"] = [
            {**asdict(layer), "output_shape": list(layer.output_shape) if layer.output_shape else None}
            for layer in self.layers
        ]
        data["input_shapes"] = [list(s) for s in self.input_shapes]
        data["sparsity"] = self.sparsity
        return data

    def __str__(self) -> str:
        return self.table()
