"""Channel ids, couplings and occurrences: the bookkeeping the tracer fills while the model runs.

Every prunable dimension position gets an integer *channel id*. A traced tensor carries ``Fields``: for each of
its dims that holds channels, a 1-D LongTensor giving the id at each position (``-1`` for a position that belongs
to no channel and can never be removed). Ops couple ids (``unify``: they must be removed together), forbid them
(``block``: never removed, with a reason), or mark them ``inexact`` (removable, but even a zero-effect channel
changes the output, e.g. it takes part in a LayerNorm's statistics). Parameter dims are *occurrences*: the places
where removing an id slices a tensor. Everything is recorded as tensors and resolved once, vectorized, at the end.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

Fields = dict[int, torch.Tensor]  # dim -> ids per position along that dim (-1: fixed position)

ROLES = ("out", "in", "norm", "aux")


@dataclass
class Occurrence:
    """Removing channel ``ids[i]`` removes position ``i`` of ``dim`` of parameter/buffer number ``tensor``.

    ``role`` says how the tensor uses the channel: ``out`` (produces it: conv/linear output rows and their bias),
    ``in`` (consumes it: conv/linear input columns), ``norm`` (per-channel norm affine/statistics), ``aux``
    (anything else: layer scales, class tokens, position embeddings).
    """

    tensor: int
    dim: int
    ids: torch.Tensor
    role: str = "aux"


@dataclass
class MacsTerm:
    """An op costing ``macs`` multiply-accumulates that shrink with the kept fraction of each id set in ``ids``."""

    macs: int
    ids: list[torch.Tensor]


@dataclass
class Recorder:
    """Accumulates ids, couplings, blocks and occurrences during one trace."""

    next_id: int = 0
    edges: list[tuple[torch.Tensor, torch.Tensor]] = field(default_factory=list)
    blocks: list[tuple[torch.Tensor, str]] = field(default_factory=list)
    inexact: list[torch.Tensor] = field(default_factory=list)
    contracted: list[torch.Tensor] = field(default_factory=list)
    flows: list[torch.Tensor] = field(default_factory=list)
    occurrences: list[Occurrence] = field(default_factory=list)
    macs: list[MacsTerm] = field(default_factory=list)
    activity: list[tuple[torch.Tensor, torch.Tensor]] = field(default_factory=list)  # (ids, zero fraction)
    where: str = ""  # the module (label) running the current op, for reasons

    def fresh(self, n: int) -> torch.Tensor:
        ids = torch.arange(self.next_id, self.next_id + n)
        self.next_id += n
        return ids

    def unify(self, a: torch.Tensor, b: torch.Tensor, why: str = "") -> None:
        """Couple ``a`` and ``b`` position by position (broadcast); a channel meeting a fixed position is blocked."""
        if a.shape != b.shape:
            a, b = torch.broadcast_tensors(a, b)
        a, b = a.reshape(-1), b.reshape(-1)
        if not a.numel():
            return
        if int(torch.minimum(a, b).min()) >= 0:  # the usual case: every position is a channel on both sides
            self.edges.append((a, b))
            return
        both = (a >= 0) & (b >= 0)
        if bool(both.any()):
            pa, pb = a[both], b[both]
            differ = pa != pb
            if bool(differ.any()):
                self.edges.append((pa[differ], pb[differ]))
        lone = (a >= 0) ^ (b >= 0)
        if bool(lone.any()):
            ids = torch.where(a >= 0, a, b)[lone]
            self.block(ids, why or "coupled with a position that cannot be removed")

    def block(self, ids: torch.Tensor, reason: str) -> None:
        ids = ids.reshape(-1)
        ids = ids[ids >= 0]
        if ids.numel():
            self.blocks.append((ids, f"{self.where}: {reason}" if self.where else reason))

    def block_fields(self, fields: Fields, reason: str) -> None:
        for ids in fields.values():
            self.block(ids, reason)

    def mark_inexact(self, ids: torch.Tensor) -> None:
        ids = ids[ids >= 0]
        if ids.numel():
            self.inexact.append(ids)

    def mark_flow(self, fields: Fields) -> None:
        for ids in fields.values():
            self.flows.append(ids[ids >= 0])

    def occur(self, tensor: int, dim: int, ids: torch.Tensor, role: str) -> None:
        self.occurrences.append(Occurrence(tensor, dim, ids, role))


def merge_into(fields: Fields, dim: int, ids: torch.Tensor, rec: Recorder, *, same_tensor: bool) -> None:
    """Add ``ids`` as the field on ``dim``; where a field already sits there, couple (operands) or block (product)."""
    old = fields.get(dim)
    if old is None:
        fields[dim] = ids
        return
    overlap = (old >= 0) & (ids >= 0)
    if bool(overlap.any()):
        if same_tensor:
            rec.block(old, "two channel dims merged into one")
            rec.block(ids, "two channel dims merged into one")
        else:
            rec.unify(old[overlap], ids[overlap])
    fields[dim] = torch.where(old >= 0, old, ids)


def shift_fields(fields: Fields, ndim_from: int, ndim_to: int) -> Fields:
    """Re-index fields for right-aligned broadcasting from ``ndim_from`` to ``ndim_to`` dims."""
    off = ndim_to - ndim_from
    return {d + off: ids for d, ids in fields.items()}
