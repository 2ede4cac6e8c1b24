"""Resolve a trace into atomic channels and coupling groups.

A *channel* is a connected component of coupled ids: removing it slices every (tensor, dim, position) it covers.
A *group* is the set of channels that touch exactly the same tensor dims (one conv's outputs with their BN and the
consumers' inputs, or every layer of a residual stream), the unit of local ranking and of the report. Components
are found once with a sparse connected-components pass; grouping uses a hash signature; all vectorized.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from slimkit.graph.fields import MacsTerm, Occurrence
from slimkit.graph.leaves import gates_of
from slimkit.graph.ops import _tensors
from slimkit.graph.tracer import Tracer


@dataclass
class Group:
    """Channels that must be ranked together: same tensors, same dims.

    Attributes:
        name: the module producing the channels (``layer1.0.conv1``), with ``+k`` when k more producers are coupled.
        channels: component indices of this group's channels (1-D LongTensor).
        occurrences: indices into :attr:`ChannelGraph.occurrences` touching this group.
        width: positions per channel in the group's primary dim (1 for ordinary channels, g for a channel that
            spans g positions, e.g. one offset in every group of a grouped conv).
        exact: False when removing even a zero-effect channel changes the output (LayerNorm statistics, a reduction).
        reason: why the group is left untouched ("" when prunable).
    """

    name: str
    channels: torch.Tensor
    occurrences: list[int]
    width: int = 1
    exact: bool = True
    reason: str = ""
    modules: list[str] = field(default_factory=list)

    @property
    def size(self) -> int:
        return int(self.channels.numel())


class ChannelGraph:
    """The dependency graph of a model for one example input: channels, groups, occurrences, cost terms."""

    def __init__(self, model: nn.Module, tracer: Tracer, trace_s: float) -> None:
        t0 = time.perf_counter()
        self.model = model
        rec = tracer.rec
        self.tensors = tracer.tensors
        self.locations = tracer.locations
        self.occurrences: list[Occurrence] = rec.occurrences
        self.macs_terms: list[MacsTerm] = rec.macs
        self.activity = rec.activity
        self.module_ms = tracer.module_ms
        self.whole_heads = tracer.whole_heads
        self.int_links = tracer.int_links
        self.shape_checks = tracer.shape_checks  # ops whose planned shapes the check forward verifies
        self.module_channels = tracer.module_channels
        self.assumptions = sorted(tracer.assumptions)
        self.unknown_ops = sorted(tracer.unknown_ops)
        self.shapes = [tuple(t.shape) for t in self.tensors]
        self.output_shapes: list[tuple[int, ...]] = []
        self.output_finite: list[bool] = []  # per output: finite on the example inputs (pruning must keep it so)
        from scipy.sparse import (
            coo_matrix,  # here, not at import: scipy.sparse costs a second (slimkit --help)
        )
        from scipy.sparse.csgraph import connected_components

        n = rec.next_id
        if rec.edges:
            a = torch.cat([e[0] for e in rec.edges]).numpy()
            b = torch.cat([e[1] for e in rec.edges]).numpy()
        else:
            a = b = np.zeros(0, dtype=np.int64)
        adj = coo_matrix((np.ones(len(a), dtype=np.int8), (a, b)), shape=(max(n, 1), max(n, 1)))
        count, comp = connected_components(adj, directed=False)
        self.comp = torch.from_numpy(comp.astype(np.int64))[:n]
        self.num_channels = int(count) if n else 0
        nc = self.num_channels

        def flag(lists: list[torch.Tensor]) -> torch.Tensor:
            mask = torch.zeros(nc, dtype=torch.bool)
            if lists:
                ids = torch.cat(lists)
                if ids.numel():
                    mask[self.comp[ids]] = True
            return mask

        self.inexact = flag(rec.inexact)
        self.contracted = flag(rec.contracted)
        self.flows = flag(rec.flows)
        self.reasons: list[str] = [r for _, r in rec.blocks]
        reason_of = torch.full((nc,), len(self.reasons), dtype=torch.long)
        for k, (ids, _) in enumerate(rec.blocks):  # loop over block records (ops), not channels
            comps = self.comp[ids]
            reason_of[comps] = torch.minimum(reason_of[comps], torch.tensor(k))
        self.reason_of = reason_of
        self.blocked = reason_of < len(self.reasons)
        occ_comps = [self.comp[o.ids] for o in self.occurrences]
        has_occ = torch.zeros(nc, dtype=torch.bool)
        for c in occ_comps:
            has_occ[c] = True
        self.candidate = self.flows & has_occ & ~self.blocked
        self.groups, self.skipped = self._group(occ_comps, has_occ)
        self.trace_s = trace_s
        self.analysis_s = trace_s + time.perf_counter() - t0

    # -- grouping ----------------------------------------------------------------------------------
    def _group(self, occ_comps: list[torch.Tensor], has_occ: torch.Tensor) -> tuple[list[Group], list[Group]]:
        nc = self.num_channels
        gen = torch.Generator().manual_seed(0)
        keys = {(o.tensor, o.dim) for o in self.occurrences}
        key_hash = {k: int(h) for k, h in zip(sorted(keys), torch.randint(1, 2**62, (len(keys),), generator=gen))}
        sig = torch.zeros(nc, dtype=torch.long)
        n_occ = len(self.occurrences)
        if n_occ:  # distinct (channel, occurrence) pairs in one unique pass
            all_c = torch.cat(occ_comps)
            all_o = torch.repeat_interleave(torch.arange(n_occ), torch.tensor([len(c) for c in occ_comps]))
            pairs = torch.unique(all_c * n_occ + all_o)
            pc, po = pairs // n_occ, pairs % n_occ
            hashes = torch.tensor([key_hash[(o.tensor, o.dim)] for o in self.occurrences], dtype=torch.long)
            sig.index_add_(0, pc, hashes[po])
        else:
            pc = po = torch.zeros(0, dtype=torch.long)
        groups: list[Group] = []
        skipped: list[Group] = []
        for prunable, out in ((True, groups), (False, skipped)):
            mask = self.candidate if prunable else (has_occ & self.flows & ~self.candidate)
            chans = mask.nonzero().squeeze(1)
            if not chans.numel():
                continue
            uniq, inv = torch.unique(sig[chans], return_inverse=True)
            order = torch.argsort(inv, stable=True)
            counts = torch.bincount(inv, minlength=len(uniq)).tolist()
            member = torch.full((nc,), -1, dtype=torch.long)
            member[chans] = inv
            occ_group = member[pc]
            for g, part in enumerate(torch.split(chans[order], counts)):
                occs = sorted(set(po[occ_group == g].tolist()))
                out.append(self._make_group(part, occs, prunable))
        groups.sort(key=lambda g: min(g.occurrences))
        return groups, skipped

    def _make_group(self, channels: torch.Tensor, occs: list[int], prunable: bool) -> Group:
        producers = [i for i in occs if self.occurrences[i].role == "out"] or occs
        names: list[str] = []
        for i in producers:
            fqn = self.locations[self.occurrences[i].tensor][0][0] or "<root>"
            if fqn not in names:
                names.append(fqn)
        primary = self.occurrences[producers[0]]
        width = max(1, primary.ids.numel() // max(int(torch.unique(self.comp[primary.ids]).numel()), 1))
        _, module, attr, _ = self.locations[primary.tensor][0]
        if isinstance(module, (nn.RNNBase, nn.RNNCellBase)) and attr.startswith(("weight_ih", "weight_hh", "bias")):
            width = max(1, width // gates_of(module))  # count hidden units, not gate rows
        name = names[0] + (f" +{len(names) - 1}" if len(names) > 1 else "")
        reason = ""
        if not prunable:
            r = int(self.reason_of[channels].min())
            reason = self.reasons[r] if r < len(self.reasons) else "does not reach any consumer"
        modules = sorted({self.locations[self.occurrences[i].tensor][0][0] for i in occs})
        return Group(name, channels, occs, width, not bool(self.inexact[channels].any()), reason, modules)

    # -- costs -------------------------------------------------------------------------------------
    def _cost_index(self) -> None:
        """Flatten the cost model once: every distinct id list becomes a segment of one long index.

        A channel's ids recur in many places (a conv's output rows, its BN's four vectors, the next conv's input
        columns), so identical lists are stored once and each (term, list) pair points at its segment: the
        budget bisection evaluates the model dozens of times, and each evaluation then touches every id once.
        """
        terms: list[tuple[float, list[torch.Tensor]]] = [(float(t.macs), t.ids) for t in self.macs_terms]
        per_dim: dict[int, dict[int, torch.Tensor]] = {}
        for o in self.occurrences:
            per_dim.setdefault(o.tensor, {})[o.dim] = o.ids
        n_macs = len(terms)
        for k, t in enumerate(self.tensors):
            if any(p for *_, p in self.locations[k]):
                terms.append((float(t.numel()), list(per_dim.get(k, {}).values())))
        unique: dict[bytes, int] = {}
        comps, seg_len, weights, use_seg, use_term = [], [], [], [], []
        for i, (w, ids_list) in enumerate(terms):
            weights.append(w)
            for ids in ids_list:
                c = self.comp[ids]
                key = c.numpy().tobytes()
                u = unique.get(key)
                if u is None:
                    u = unique[key] = len(seg_len)
                    comps.append(c)
                    seg_len.append(len(c))
                use_seg.append(u)
                use_term.append(i)
        lengths = torch.tensor(seg_len, dtype=torch.long)
        self._cost = (
            torch.cat(comps) if comps else torch.zeros(0, dtype=torch.long),
            torch.repeat_interleave(torch.arange(len(seg_len)), lengths),
            lengths.double(),
            torch.tensor(use_seg, dtype=torch.long),
            torch.tensor(use_term, dtype=torch.long),
            torch.tensor(weights, dtype=torch.float64),
            n_macs,
        )

    def _costs(self, removed: torch.Tensor | None) -> tuple[float, float]:
        if not hasattr(self, "_cost"):
            self._cost_index()
        comps, seg, seg_len, use_seg, use_term, weights, n_macs = self._cost
        factor = torch.ones(len(weights), dtype=torch.float64)
        if removed is not None and len(seg_len):
            keep = (~removed).double()
            kept = torch.zeros(len(seg_len), dtype=torch.float64).index_add_(0, seg, keep[comps])
            factor.scatter_reduce_(0, use_term, (kept / seg_len.clamp_min(1))[use_seg], reduce="prod")
        total = weights * factor
        return float(total[:n_macs].sum()), float(total[n_macs:].sum())

    def macs(self, removed: torch.Tensor | None = None) -> int:
        """MACs of conv/linear/matmul/attention ops on the example input, after removing ``removed`` channels."""
        return int(round(self._costs(removed)[0]))

    def params(self, removed: torch.Tensor | None = None) -> int:
        """Parameters (shared ones counted once) after removing ``removed`` channels."""
        return int(round(self._costs(removed)[1]))

    def savings_per_channel(self) -> tuple[torch.Tensor, torch.Tensor]:
        """MACs and parameters that removing each channel alone saves (first order, from the cost model).

        A term (a conv's MACs, a tensor's size) scales with the kept fraction of each id list it depends on, so
        one channel of a list of ``n`` ids takes ``1/n`` of the term with it; channels in no term save nothing.
        """
        if not hasattr(self, "_cost"):
            self._cost_index()
        comps, seg, seg_len, use_seg, use_term, weights, n_macs = self._cost
        out = []
        for is_macs in (True, False):
            take = (use_term < n_macs) if is_macs else (use_term >= n_macs)
            share = torch.where(take, weights[use_term], torch.zeros((), dtype=torch.float64))
            per_seg = torch.zeros(len(seg_len), dtype=torch.float64).index_add_(
                0, use_seg, share / seg_len[use_seg].clamp_min(1))
            out.append(torch.zeros(self.num_channels, dtype=torch.float64).index_add_(0, comps, per_seg[seg]))
        return out[0], out[1]

    def describe(self) -> dict[str, Any]:
        return {
            "channels": self.num_channels,
            "groups": len(self.groups),
            "skipped": [(g.name, g.reason) for g in self.skipped],
            "unknown_ops": self.unknown_ops,
        }


def build_graph(model: nn.Module, example_inputs: Any, *, record_activity: bool = False,
                attention: str = "head_dims") -> ChannelGraph:
    """Trace ``model`` on ``example_inputs`` and resolve its channels and groups.

    ``record_activity`` also keeps the per-channel fraction of zeros after each ReLU (used by ``apoz``).
    ``attention`` is the unit removed from ``nn.MultiheadAttention``: ``head_dims`` (the same dims in every head;
    ``num_heads`` stays) or ``heads`` (whole heads; ``head_dim`` stays).

    Raises:
        GraphError: naming the module where the forward pass failed.
    """
    import slimkit.graph.leaves  # noqa: F401  (registers MultiheadAttention and recurrent leaves)

    t0 = time.perf_counter()
    tracer = Tracer(model)
    if attention not in ("head_dims", "heads"):
        raise ValueError(f"attention must be 'head_dims' or 'heads', got {attention!r}")
    tracer.record_activity = record_activity
    tracer.attention = attention
    with torch.no_grad():
        out = tracer.run(example_inputs)
    graph = ChannelGraph(model, tracer, time.perf_counter() - t0)
    graph.output_shapes = [tuple(t.shape) for t in _tensors(out)]
    graph.output_finite = [bool(torch.isfinite(t).all()) if t.is_floating_point() else True for t in _tensors(out)]
    return graph
