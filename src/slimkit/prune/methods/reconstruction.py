"""Reconstruction-based channel pruning without retraining: ThiNet and LASSO selection, least-squares refit.

A group's channels are judged by what they contribute to the *next* layer's output on a few calibration batches,
not by their own weights. For a consumer ``y = W x`` (a Conv2d seen through ``unfold``, or a Linear) the output at
sampled positions splits into per-channel contributions ``Z[:, c]``. Removing a set ``T`` leaves the error
``||Y - F - sum_{c not in T} Z_c||^2`` (``Y``: the *original* model's output, ``F``: the part from columns outside
the group), which

- ``thinet`` (Luo et al., 2017) minimizes greedily, removing one channel at a time (then refines the set by
  exchanging a removed and a kept channel while that lowers the error);
- ``lasso`` (He et al., 2017) minimizes through ``||Y - F - Z beta||^2 + lambda |beta|_1``, raising ``lambda`` until
  only the wanted number of channels has a nonzero ``beta``;
- ``l1`` ignores (plain weight-magnitude selection, the baseline).

Then (``refit=True``) the consumer's remaining weights are refit by least squares to the original outputs, so the
next layer compensates for what was removed. Groups are processed in order, each against the original model's
outputs (errors do not accumulate). Groups whose channels feed more than one layer (residual streams) or a layer
other than an ungrouped Conv2d / Linear are left unpruned and listed in ``skipped``.

Example:
    >>> batches = [x for x, _ in calibration_batches]
    >>> report = reconstruct_prune(model, (x,), batches, ratio=0.5, method="thinet")
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from slimkit.core.config import check_ratio
from slimkit.core.errors import ConfigError
from slimkit.core.forward import training_mode
from slimkit.prune.engine import (
    ChannelGraph,
    Group,
    ImportanceContext,
    PruneConfig,
    build_graph,
    channel_scores,
    make_plan,
)
from slimkit.prune.methods._common import as_tuple, find_group

Method = Literal["thinet", "lasso", "l1"]


@dataclass
class LayerReconstruction:
    group: str
    consumer: str
    channels_before: int
    channels_after: int
    error_selected: float  # relative squared error of the consumer output after selection (before refit)
    error_refit: float  # after the least-squares refit (== error_selected without refit)
    refit: bool


@dataclass
class ReconstructionReport:
    method: str
    ratio: float
    macs_before: int
    macs_after: int
    params_before: int
    params_after: int
    layers: list[LayerReconstruction]
    skipped: list[tuple[str, str]] = field(default_factory=list)

    @property
    def macs_reduction(self) -> float:
        return self.macs_before / max(self.macs_after, 1)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "macs_reduction": self.macs_reduction}

    def table(self) -> str:
        rows = [f"{'group':<28} {'consumer':<20} {'channels':>13} {'err sel':>9} {'err refit':>9}"]
        for r in self.layers:
            rows.append(f"{r.group[:28]:<28} {r.consumer[:20]:<20} {r.channels_before:>5} -> {r.channels_after:<5} "
                        f"{r.error_selected:>9.4f} {r.error_refit:>9.4f}")
        for name, why in self.skipped:
            rows.append(f"{name[:28]:<28} untouched: {why}")
        rows.append(f"MACs {self.macs_before:,} -> {self.macs_after:,} ({self.macs_reduction:.2f}x)")
        return "\n".join(rows)


# -- selection on a contribution matrix ------------------------------------------------------------------------
def thinet_select(Z: torch.Tensor, residual: torch.Tensor, remove: int, *, swaps: bool = True) -> torch.Tensor:
    """ThiNet: indices of ``remove`` columns of ``Z`` (S, C) whose removal keeps ``||residual + sum_T Z_c||^2``
    smallest. ``residual`` (S,) is the error before any removal (0 when the layer's input is unpruned).

    Greedy as in the paper (one channel at a time), then, with ``swaps``, a 1-swap local search (exchange a removed
    and a kept channel while that lowers the error), which repairs the greedy's myopic early picks. All in Gram
    space: each step is one vectorized update over every candidate.
    """
    Z = Z.double()
    G = Z.T @ Z  # (C, C)
    v = Z.T @ residual.double()  # s . z_c for the current error vector s
    C = Z.shape[1]
    taken = torch.zeros(C, dtype=torch.bool)
    diag = G.diagonal()
    for _ in range(remove):
        cost = 2.0 * v + diag  # ||s + z_c||^2 - ||s||^2 for every candidate at once
        cost[taken] = float("inf")
        c = int(torch.argmin(cost))
        taken[c] = True
        v += G[:, c]
    if swaps and 0 < remove < C:
        scale = float(diag.sum().clamp_min(1e-30))
        for _ in range(4 * C):
            T, K = taken.nonzero().squeeze(1), (~taken).nonzero().squeeze(1)
            # ||s - z_i + z_k||^2 - ||s||^2 for removed i, kept k
            delta = (diag[T, None] + diag[None, K] - 2 * G[T][:, K] - 2 * v[T, None] + 2 * v[None, K])
            best = int(torch.argmin(delta))
            if float(delta.flatten()[best]) > -1e-12 * scale:
                break
            i, k = int(T[best // len(K)]), int(K[best % len(K)])
            taken[i], taken[k] = False, True
            v += G[:, k] - G[:, i]
    return taken.nonzero().squeeze(1)


def _lasso(G: torch.Tensor, h: torch.Tensor, lam: float, iters: int = 300) -> torch.Tensor:
    """argmin_b 0.5 b'Gb - h'b + lam |b|_1 by FISTA on the Gram matrix (vectorized over all coefficients)."""
    L = float(torch.linalg.eigvalsh(G)[-1].clamp_min(1e-12))
    b = torch.ones_like(h)
    y, t = b.clone(), 1.0
    for _ in range(iters):
        g = y - (G @ y - h) / L
        b_new = torch.sign(g) * (g.abs() - lam / L).clamp_min(0)
        t_new = (1 + (1 + 4 * t * t) ** 0.5) / 2
        y = b_new + (t - 1) / t_new * (b_new - b)
        b, t = b_new, t_new
    return b


def lasso_select(Z: torch.Tensor, target: torch.Tensor, keep: int) -> torch.Tensor:
    """He et al. 2017: indices of the columns of ``Z`` (S, C) to *remove*, from the LASSO path at ``keep`` nonzeros.

    ``lambda`` is bisected (log scale) until at most ``keep`` coefficients are nonzero; the ``keep`` largest
    ``|beta|`` are kept (ties filled by the unpenalized least-squares magnitude).
    """
    Z = Z.double()
    G = Z.T @ Z
    h = Z.T @ target.double()
    C = Z.shape[1]
    if keep >= C:
        return torch.zeros(0, dtype=torch.long)
    lo, hi = 0.0, float(h.abs().max()) + 1e-12  # at lambda >= max|h| every coefficient is zero
    beta = _lasso(G, h, lo)
    for _ in range(30):
        mid = (lo * hi) ** 0.5 if lo > 0 else hi * 1e-6
        b = _lasso(G, h, mid)
        if int((b.abs() > 1e-10).sum()) <= keep:
            hi, beta = mid, b
        else:
            lo = mid
    ridge = torch.linalg.solve(G + 1e-8 * G.diagonal().mean() * torch.eye(C, dtype=G.dtype), h).abs()
    rank = beta.abs() + 1e-9 * ridge / ridge.max().clamp_min(1e-30)
    return torch.argsort(rank, stable=True)[: C - keep]


def least_squares(X: torch.Tensor, Y: torch.Tensor) -> torch.Tensor:
    """``W`` (out, in) minimizing ``||X W' - Y||`` (a tiny ridge keeps it stable when columns are dependent)."""
    X, Y = X.double(), Y.double()
    A = X.T @ X
    A += 1e-9 * float(A.diagonal().mean().clamp_min(1e-30)) * torch.eye(A.shape[0], dtype=A.dtype)
    return torch.linalg.solve(A, X.T @ Y).T


# -- capturing a consumer's input rows ----------------------------------------------------------------------------
def _consumer(graph: ChannelGraph, g: Group) -> tuple[str, nn.Module, torch.Tensor] | str:
    """The single Conv2d/Linear consuming ``g``, with the channel of each column of its flattened weight."""
    ins = [graph.occurrences[i] for i in g.occurrences if graph.occurrences[i].role == "in"]
    if len(ins) != 1:
        return f"feeds {len(ins)} layers (reconstruction needs exactly one consumer)"
    o = ins[0]
    fqn, module, attr, _ = graph.locations[o.tensor][0]
    if attr != "weight" or o.dim != 1 or not isinstance(module, (nn.Conv2d, nn.Linear)):
        return f"consumer {fqn} ({type(module).__name__}) is not a Conv2d or Linear"
    if isinstance(module, nn.Conv2d) and (module.groups != 1 or isinstance(module.padding, str)
                                          or module.padding_mode != "zeros"):
        return f"consumer {fqn} (Conv2d) is grouped or uses string/non-zero padding"
    cols = graph.comp[o.ids]
    if isinstance(module, nn.Conv2d):
        cols = cols.repeat_interleave(module.kernel_size[0] * module.kernel_size[1])
    return fqn, module, cols


def _rows(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The consumer's input as rows whose product with the flattened weight gives its output (no bias)."""
    if isinstance(module, nn.Conv2d):
        u = F.unfold(x, module.kernel_size, module.dilation, module.padding, module.stride)  # (N, K, L)
        return u.transpose(1, 2).reshape(-1, u.shape[1])
    return x.reshape(-1, x.shape[-1])


def _capture(model: nn.Module, fqn: str, batches: list[tuple], max_rows: int, seed: int) -> torch.Tensor:
    module = model.get_submodule(fqn)
    rows: list[torch.Tensor] = []
    gen = torch.Generator().manual_seed(seed)
    per_batch = max(1, max_rows // max(len(batches), 1))

    def hook(mod: nn.Module, args: tuple) -> None:
        r = _rows(mod, args[0].detach())
        idx = torch.randperm(r.shape[0], generator=gen)[:per_batch]
        rows.append(r[idx.to(r.device)].double().cpu())

    handle = module.register_forward_pre_hook(hook)
    try:
        with torch.no_grad(), training_mode(model, False):
            for inputs in batches:
                model(*inputs)
    finally:
        handle.remove()
    return torch.cat(rows)


def _contributions(X: torch.Tensor, W: torch.Tensor, cols: torch.Tensor, chans: torch.Tensor, budget: int) -> torch.Tensor:
    """Z (S, C): contribution of each channel in ``chans`` to the outputs, over (row, output) samples."""
    rows = max(1, min(X.shape[0], budget // max(W.shape[0] * len(chans), 1)))
    Xs = X[:rows]
    Z = torch.empty(rows, W.shape[0], len(chans), dtype=torch.float64)
    for j, c in enumerate(chans.tolist()):  # one matmul per channel (not per weight)
        sel = cols == c
        Z[:, :, j] = Xs[:, sel] @ W[:, sel].T
    return Z.reshape(-1, len(chans))


def _rel(err: torch.Tensor, ref: torch.Tensor) -> float:
    return float(err.square().sum() / ref.square().sum().clamp_min(1e-30))


def reconstruct_prune(model: nn.Module, example_inputs: Any, calibration_data: Any, *, ratio: float = 0.5,
                      method: Method = "thinet", refit: bool = True, groups: list[str] | None = None,
                      max_rows: int = 4096, max_samples: int = 2_000_000, seed: int = 0) -> ReconstructionReport:
    """Remove ``ratio`` of the channels of every reconstructable group, chosen by next-layer reconstruction.

    Args:
        model: a trained model (pruned in place, no training).
        example_inputs: a tensor or tuple to trace with.
        calibration_data: a few batches: tensors, tuples of inputs, or ``(inputs, targets)`` pairs (targets
            are ignored).
        ratio: fraction of each group's channels removed.
        method: ``thinet`` (greedy), ``lasso`` (He et al.) or ``l1`` (weight magnitude, the baseline).
        refit: refit the consumer's remaining weights by least squares to the original outputs.
        groups: restrict to these group names (default: every group with one Conv2d/Linear consumer).
        max_rows: input rows (positions x samples) captured per layer, for the refit.
        max_samples: size cap of the contribution matrix (rows x outputs x channels) used for selection.
        seed: row sampling.

    Raises:
        ConfigError: a bad option or no calibration data.
    """
    check_ratio("ratio", ratio)
    if method not in ("thinet", "lasso", "l1"):
        raise ConfigError(f"method must be one of thinet, lasso, l1; got {method!r}")
    batches = [_inputs_of(b) for b in calibration_data]
    if not batches:
        raise ConfigError("reconstruct_prune: calibration_data holds no batch")
    inputs = as_tuple(example_inputs)
    reference = copy.deepcopy(model).eval()
    graph = build_graph(model, inputs)
    macs0, params0 = graph.macs(), graph.params()
    names = [g.name for g in graph.groups] if groups is None else [find_group(graph, n).name for n in groups]
    layers: list[LayerReconstruction] = []
    skipped: list[tuple[str, str]] = []
    for name in names:
        graph = build_graph(model, inputs)
        g = find_group(graph, name)
        found = _consumer(graph, g)
        if isinstance(found, str):
            skipped.append((name, found))
            continue
        fqn, module, cols = found
        remove = min(int(ratio * g.size), g.size - 1)
        if remove == 0:
            continue
        X = _capture(model, fqn, batches, max_rows, seed)
        Xr = _capture(reference, fqn, batches, max_rows, seed)
        Wr = reference.get_submodule(fqn).weight.detach().double().flatten(1).cpu()
        W = module.weight.detach().double().flatten(1).cpu()
        if Wr.shape[0] != W.shape[0]:
            skipped.append((name, f"consumer {fqn} lost output channels before its inputs were reconstructed"))
            continue
        Y = Xr @ Wr.T  # (R, O): the original layer's output, without bias
        in_group = torch.isin(cols, g.channels)
        Fx = X[:, ~in_group] @ W[:, ~in_group].T
        chans = g.channels
        if method == "l1":
            scores = channel_scores(graph, "l1", ImportanceContext(example_inputs=inputs))
            drop = torch.argsort(scores[chans], stable=True)[:remove]
        else:
            Z = _contributions(X, W, cols, chans, max_samples)
            S = Z.shape[0]
            target = (Y - Fx)[: S // W.shape[0]].reshape(-1)
            if method == "thinet":
                drop = thinet_select(Z, target - Z.sum(1), remove)
            else:
                drop = lasso_select(Z, target, g.size - remove)
        removed = torch.zeros(graph.num_channels, dtype=torch.bool)
        removed[chans[drop]] = True
        keep_cols = ~removed[cols]
        err_sel = _rel(Y - X[:, keep_cols] @ W[:, keep_cols].T, Y)
        new_w = None
        if refit and X.shape[0] >= int(keep_cols.sum()):
            new_w = least_squares(X[:, keep_cols], Y)
        make_plan(graph, removed, inputs, _config()).apply()
        err_fit = err_sel
        if new_w is not None:
            consumer = model.get_submodule(fqn)
            with torch.no_grad():
                consumer.weight.copy_(new_w.reshape(consumer.weight.shape).to(consumer.weight))
            err_fit = _rel(Y - X[:, keep_cols] @ new_w.T, Y)
        layers.append(LayerReconstruction(name, fqn, g.size, g.size - remove, err_sel, err_fit, new_w is not None))
    final = build_graph(model, inputs)
    return ReconstructionReport(method, ratio, macs0, final.macs(), params0, final.params(), layers, skipped)


def _inputs_of(batch: Any) -> tuple:
    if isinstance(batch, torch.Tensor):
        return (batch,)
    if isinstance(batch, (tuple, list)) and len(batch) == 2 and isinstance(batch[1], torch.Tensor) \
            and batch[1].dtype in (torch.int64, torch.int32):
        x = batch[0]
        return tuple(x) if isinstance(x, (tuple, list)) else (x,)
    return tuple(batch)


def _config() -> Any:

    return PruneConfig(scope="local", ratio=0.0)
