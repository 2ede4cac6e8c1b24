"""Structured OBS (ZipLM-style) selection of heads and FFN neurons in a BERT-style encoder: a unit goes when what
the kept units can take over of its output costs least, and the kept units are refit to take it over.

Layer by layer on the pruned student's own inputs (as :func:`slimkit.hf.recover.refit` does): for the attention
output projection (input: the attention context, heads as groups of ``head_size`` columns) and then the FFN output
projection (input: the FFN activation, one column per neuron), the ridge least-squares fit ``A W^T + b ~ y`` of
the dense layer's target is the start, and with ``H = A^T A + lam I`` a group ``g`` costs
``trace(W_g (H^-1_gg)^-1 W_g^T)`` (Optimal Brain Surgeon; Kurtic et al. 2023, ZipLM). The cheapest go, ``W`` is
compensated and ``H^-1`` downdated, until the requested count is left; a final ridge refit on the kept columns.
Removed units keep their weights but their output-projection columns are zero, so the model computes exactly what
the pruned one will: :func:`slimkit.hf.prune_pretrained` with :func:`kept_scores` then removes them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from slimkit.hf.prune import HFPruneReport, _as_tuple, prune_pretrained
from slimkit.hf.recover import Batch, Contribution, LayerFeed, transfer_scores


def obs_remove(gram: torch.Tensor, weight: torch.Tensor, *, group: int, keep: int, block: int = 1,
               units: int | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Greedy structured OBS: remove groups of ``group`` consecutive columns until ``keep`` groups are left.

    Args:
        gram: ``(D, D)`` Hessian of the least-squares loss (``A^T A`` plus ridge), positive definite.
        weight: ``(O, D)`` weights to compensate (the least-squares optimum, so each cost is the exact rise in loss).
        group: columns per unit (a head's size; 1 for FFN neurons).
        keep: units left.
        block: units removed per step between cost updates (the step's units are compensated jointly).
        units: how many groups the first columns hold (default ``D // group``); later columns (a bias) stay.

    Returns:
        ``(kept, weight, path)``: sorted indices of the kept units, the compensated weights (removed columns
        zero), and ``(units left, loss rise of the step)`` from ``(n, 0)`` on, one row per step (``(steps + 1, 2)``,
        float64).
    """
    n = units if units is not None else gram.shape[0] // group
    hinv = torch.cholesky_inverse(torch.linalg.cholesky(gram.double()))  # (D, D)
    w = weight.double().clone()
    cols = torch.arange(n * group).view(n, group)  # (n, group)
    alive = torch.ones(n, dtype=torch.bool)
    path = [(float(n), 0.0)]
    while int(alive.sum()) > keep:
        units = alive.nonzero().squeeze(1)
        idx = cols[units]  # (a, group)
        hgg = hinv[idx[:, :, None], idx[:, None, :]]  # (a, group, group)
        wg = w[:, idx]  # (O, a, group)
        cost = torch.einsum("oas,ast,oat->a", wg, torch.linalg.inv(hgg), wg)  # (a,)
        drop = units[cost.topk(min(block, len(units) - keep), largest=False).indices]
        c = cols[drop].flatten()
        hcc = hinv[c][:, c]
        step = torch.linalg.solve(hcc, hinv[c, :])  # (|c|, D): (H^-1_cc)^-1 H^-1_c:
        rise = (w[:, c] * torch.linalg.solve(hcc, w[:, c].T).T).sum()  # trace(W_c (H^-1_cc)^-1 W_c^T)
        w -= w[:, c] @ step
        hinv -= hinv[:, c] @ step
        alive[drop] = False
        path.append((float(alive.sum()), float(rise)))
    w[:, cols[~alive].flatten()] = 0.0
    return alive.nonzero().squeeze(1), w.to(weight.dtype), torch.tensor(path, dtype=torch.float64).view(-1, 2)


class Normal:
    """Least-squares statistics of ``y ~ x W^T + b`` summed over batches (float64): the Gram matrix of ``[x, 1]``,
    its product with ``y``, and the energy ``|s|^2`` of a reference ``s`` (what the loss is relative to)."""

    def __init__(self) -> None:
        self.gram: torch.Tensor | None = None
        self.xty: torch.Tensor | None = None
        self.energy = 0.0

    def add(self, x: torch.Tensor, y: torch.Tensor, reference: torch.Tensor) -> None:
        xa = torch.cat([x, torch.ones(len(x), 1)], 1).double()  # (N, D + 1)
        gram, xty = xa.T @ xa, xa.T @ y.double()
        self.gram = gram if self.gram is None else self.gram + gram
        self.xty = xty if self.xty is None else self.xty + xty
        self.energy += float(reference.double().square().sum())

    def ridge(self, cols: torch.Tensor, lam: float) -> tuple[torch.Tensor, torch.Tensor]:
        """``(H, W)`` on columns ``cols`` and the bias: the ridge Hessian (``lam`` relative to its mean diagonal, as
        :func:`slimkit.hf.recover.refit`) and the fit ``(O, |cols| + 1)``, bias last."""
        sub = torch.cat([cols, torch.tensor([len(self.gram) - 1])])
        gram = self.gram[sub][:, sub]
        gram = gram + lam * gram.diagonal().mean() * torch.eye(len(gram), dtype=gram.dtype)
        return gram, torch.linalg.solve(gram, self.xty[sub]).T


def select_and_refit(dense: nn.Linear, normal: Normal, *, group: int, keep: int | None, block: int = 1,
                     lam: float = 1e-3, floor: int | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Choose ``keep`` input units of ``dense`` by structured OBS on the fit ``normal`` describes and refit them
    (ridge); write the weights with removed columns zero. ``keep=None`` keeps every unit whose column is not all
    zero (a plain refit). Returns the kept unit indices and, with ``floor``, the OBS path from all present units
    down to ``floor`` (:func:`obs_remove`'s, the loss rises relative to ``normal.energy``; for :func:`allocate`)."""
    n = dense.in_features // group
    present = dense.weight.detach().view(-1, n, group).abs().sum((0, 2)) > 0  # (n,): units an earlier pass left
    units = present.nonzero().squeeze(1)
    kept, path = units, None
    if floor is not None or (keep is not None and keep < len(units)):
        gram, w = normal.ridge(_columns(units, group), lam)
        if keep is not None and keep < len(units):
            kept = units[obs_remove(gram, w, group=group, keep=keep, block=block, units=len(units))[0]]
        if floor is not None:
            path = obs_remove(gram, w, group=group, keep=floor, block=block, units=len(units))[2]
            path[:, 1] /= normal.energy
    cols = _columns(kept, group)
    w = normal.ridge(cols, lam)[1].float()
    with torch.no_grad():
        dense.weight.zero_()
        dense.weight[:, cols] = w[:, :-1]
        dense.bias.copy_(w[:, -1])
    return kept, path


def _columns(units: torch.Tensor, group: int) -> torch.Tensor:
    return (units[:, None] * group + torch.arange(group)).flatten()


def obs_prune(student: nn.Module, teacher: nn.Module, batches: Iterable[Batch], *,
              heads: int | list[int] | None = None, ffn: int | list[int] | None = None, ffn_block: int = 16,
              lam: float = 1e-3, floor: tuple[int, int] | None = None) -> list[dict[str, torch.Tensor]]:
    """Layer by layer, choose the heads and FFN neurons each layer keeps by structured OBS and refit its two output
    projections so that the sums entering its LayerNorms match the dense model's (``ctx_s W + b + x_s ~ attn_t +
    x_t``, then the same for the FFN; the target also corrects what earlier layers left in ``x_s``). Both models
    run one layer at a time and only least-squares statistics are kept, so the calibration set may be large.

    Args:
        student: the encoder to prune, dense-shaped (a copy of ``teacher``) or already pruned. Removed units'
            output-projection columns become zero; :func:`prune_kept` then removes them.
        teacher: the dense encoder.
        batches: ``(input_ids, attention_mask)`` calibration batches.
        heads, ffn: units kept per layer (one count, or one per layer); None keeps them all (a plain refit, as
            :func:`slimkit.hf.recover.refit`).
        ffn_block: FFN neurons removed per OBS step.
        lam: ridge, relative to the mean diagonal of the Gram matrix.
        floor: ``(heads, neurons)``: also trace each layer's OBS path down to these counts (for :func:`allocate`).

    Returns:
        Per layer ``{"heads": kept head indices, "ffn": kept neuron indices}``; with ``floor`` also
        ``heads_path`` / ``ffn_path``: per OBS step ``(units left, loss rise / energy of the dense sum)``, the rise
        relative to the energy of what enters the LayerNorm in the dense model, comparable across layers.
    """
    batches = list(batches)
    layers = student.encoder.layer
    per_layer = [tuple(h[i] if isinstance(h, list) else h for h in (heads, ffn)) for i in range(len(layers))]
    s_feed, t_feed = LayerFeed(student, batches), LayerFeed(teacher, batches)
    kept = []
    for i, (layer, (n_heads, n_ffn)) in enumerate(zip(layers, per_layer)):
        sums = _dense_sums(t_feed, i)
        out = {}
        size = layer.attention.self.attention_head_size
        for stage, (unit, dense, inp, before, group, keep, block) in enumerate((
                ("heads", layer.attention.output.dense, "ctx", "x", size, n_heads, 1),
                ("ffn", layer.output.dense, "act", "h", 1, n_ffn, ffn_block))):
            normal = Normal()
            s_feed.run(i, lambda j, got, k=stage, x=inp, b=before, n=normal, t=sums: n.add(
                got[x], t[j][k] - got[b], t[j][k]))
            out[unit], path = select_and_refit(dense, normal, group=group, keep=keep, block=block, lam=lam,
                                               floor=None if floor is None else floor[stage])
            if path is not None:
                out[f"{unit}_path"] = path
        s_feed.advance(i)
        kept.append(out)
    return kept


def _dense_sums(feed: LayerFeed, i: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per batch, the sums entering layer ``i``'s two LayerNorms (real tokens); the feed moves to layer ``i + 1``."""
    sums: list[tuple[torch.Tensor, torch.Tensor]] = []
    feed.run(i, lambda j, got: sums.append((got["attn_sum"], got["ffn_sum"])), advance=True)
    return sums


def allocate(kept: list[dict[str, torch.Tensor]], macs_removed: float, *, head_macs: float,
             neuron_macs: float) -> tuple[list[int], list[int]]:
    """Per-layer head and FFN counts from :func:`obs_prune`'s paths (``floor`` given): greedily take the OBS step,
    in any layer, of least relative loss rise per MAC saved until at least ``macs_removed`` are saved.

    Returns:
        ``(heads, ffn)``: the counts kept per layer.
    """
    paths = {(i, unit): (k[f"{unit}_path"], macs) for i, k in enumerate(kept)
             for unit, macs in (("heads", head_macs), ("ffn", neuron_macs))}
    taken = dict.fromkeys(paths, 0)  # steps taken on each path
    saved = 0.0
    while saved < macs_removed:
        price = {key: float(p[taken[key] + 1, 1]) / (float(p[taken[key], 0] - p[taken[key] + 1, 0]) * macs)
                 for key, (p, macs) in paths.items() if taken[key] + 1 < len(p)}
        if not price:
            raise ValueError(f"allocate: the paths' floors save less than {macs_removed:.3g} MACs")
        key = min(price, key=price.get)
        p, macs = paths[key]
        saved += float(p[taken[key], 0] - p[taken[key] + 1, 0]) * macs
        taken[key] += 1
    left = {key: int(p[taken[key], 0]) for key, (p, _) in paths.items()}
    return [left[i, "heads"] for i in range(len(kept))], [left[i, "ffn"] for i in range(len(kept))]


def kept_scores(model: nn.Module, kept: list[dict[str, torch.Tensor]], source: nn.Module | None = None) -> Contribution:
    """An importance scoring 1 for the kept units of :func:`obs_prune` and 0 for the rest (keyed to ``model``, or
    to ``source``'s parameters re-keyed onto ``model`` when ``model`` is a deep copy of ``source``)."""
    scores = {}
    for layer, k in zip((source or model).encoder.layer, kept):
        attn = layer.attention.self
        per_head = torch.zeros(attn.num_attention_heads)
        per_head[k["heads"]] = 1.0
        neurons = torch.zeros(layer.intermediate.dense.out_features)
        neurons[k["ffn"]] = 1.0
        scores[id(attn.query.weight)] = per_head.repeat_interleave(attn.attention_head_size)
        scores[id(layer.intermediate.dense.weight)] = neurons
    return Contribution(transfer_scores(scores, source, model) if source is not None else scores)


def prune_kept(model: nn.Module, example_inputs: Any, kept: list[dict[str, torch.Tensor]]) -> HFPruneReport:
    """:func:`slimkit.hf.prune_pretrained` removing exactly the units :func:`obs_prune` dropped: the same count in
    every layer (``uniform``), or per-layer counts through one ``global`` ranking of the 0/1 :func:`kept_scores`."""
    options: dict[str, Any] = {}
    for unit in ("heads", "ffn"):
        counts = [len(k[unit]) for k in kept]
        if len(set(counts)) == 1:
            options[unit] = counts[0]
        else:
            layers = model.encoder.layer
            total = sum(layer.attention.self.num_attention_heads if unit == "heads"
                        else layer.intermediate.dense.out_features for layer in layers)
            options[unit] = (total - sum(counts) + 0.5) / total  # int(ratio * total) = the units dropped
            options["scope"] = "global"
    return prune_pretrained(model, _as_tuple(example_inputs), units=("heads", "ffn"),
                            importance=kept_scores(model, kept), require_config=False, **options)


def unit_macs(model: nn.Module, seq: int) -> tuple[float, float]:
    """MACs per head (Q, K, V and output projections, the two attention products) and per FFN neuron (its two
    projections) of one sequence of ``seq`` tokens, for :func:`allocate`."""
    attn = model.encoder.layer[0].attention.self
    hidden, size = attn.query.in_features, attn.attention_head_size
    return float(seq * 4 * hidden * size + 2 * seq * seq * size), float(2 * seq * hidden)
