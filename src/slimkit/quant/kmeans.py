"""k-means weight sharing (Deep Compression, Han et al. 2016): each layer keeps 2**bits shared values.

Every weight of a layer is replaced by the index of its nearest centroid; the layer then stores a tiny codebook
plus ``bits`` bits per weight, which the ``.slim`` container (:mod:`slimkit.codec`) Huffman-codes further.
Pruned weights (exact zeros) stay zero and take no part in the clustering, so sharing composes with pruning.

Centroids start LINEARLY spaced between the layer's min and max (the initialization Han et al. found best: it
keeps a few large weights, which matter most, represented) and are refined by Lloyd iterations. In 1-D Lloyd's
assignment step is a ``searchsorted`` against the midpoints of the sorted centroids, and the update step a
difference of prefix sums over the once-sorted weights, so an iteration costs O(k log n), not O(n k).

After sharing, the weight is a parametrization ``codebook[indices]``: the codebook is an ``nn.Parameter`` and the
indices a fixed buffer, so ordinary training (``slimkit.train.fit``) fine-tunes the centroids. Autograd of the
gather sums the gradients of all weights that share a centroid into that centroid's gradient, which is exactly
the codebook update of the paper.

Example:
    >>> report = share_weights(model, bits=5)            # every Linear/Conv weight -> 32 shared values
    >>> fit(model, train_data, TrainConfig(epochs=1))    # fine-tunes only what the optimizer sees: codebooks...
    >>> save_compressed(model, "model.slim")             # codebook indices, Huffman-coded
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from torch.nn.utils import parametrize

from slimkit.core.errors import ConfigError
from slimkit.core.modules import FilterFn, iter_modules, label, matches_any
from slimkit.core.transaction import transaction

SHAREABLE: tuple[type, ...] = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
MAX_BITS = 16


def kmeans_1d(
    values: np.ndarray, num_clusters: int, *, iters: int = 30, init: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Cluster 1-D ``values`` into ``num_clusters`` groups by Lloyd's algorithm; vectorized, O(k log n) per step.

    Args:
        values: 1-D array of the values to cluster (pruned zeros already removed by the caller).
        num_clusters: k; clamped to the number of distinct values never happens, empty clusters keep their place.
        iters: maximum Lloyd iterations (stops earlier once the centroids no longer move).
        init: starting centroids; default linear between ``values.min()`` and ``values.max()``.

    Returns:
        ``(centroids, labels)``: float64 centroids sorted ascending, shape (k,), and int64 labels, shape (n,).
    """
    x = np.asarray(values, dtype=np.float64).ravel()
    if num_clusters < 1:
        raise ConfigError(f"num_clusters must be >= 1, got {num_clusters}")
    if x.size == 0:
        return np.zeros(num_clusters), np.zeros(0, dtype=np.int64)
    order = np.argsort(x, kind="stable")
    xs = x[order]  # (n,) sorted
    prefix = np.concatenate([[0.0], np.cumsum(xs)])  # (n+1,)
    if init is None:
        centroids = np.linspace(xs[0], xs[-1], num_clusters)
    else:
        centroids = np.sort(np.asarray(init, dtype=np.float64).ravel())
    for _ in range(iters):
        bounds = (centroids[1:] + centroids[:-1]) / 2  # (k-1,) decision boundaries
        cuts = np.concatenate([[0], np.searchsorted(xs, bounds, side="right"), [xs.size]])  # (k+1,)
        counts = np.diff(cuts)
        sums = prefix[cuts[1:]] - prefix[cuts[:-1]]
        updated = np.where(counts > 0, sums / np.maximum(counts, 1), centroids)
        updated = np.sort(updated)
        if np.array_equal(updated, centroids):
            break
        centroids = updated
    bounds = (centroids[1:] + centroids[:-1]) / 2
    labels = np.searchsorted(bounds, x, side="right").astype(np.int64)  # nearest centroid (ties -> upper)
    return centroids, labels


class SharedWeight(nn.Module):
    """Parametrization ``weight = codebook[indices]`` with ``indices == -1`` meaning a pruned (zero) weight.

    ``codebook`` (k,) is the trainable parameter; ``indices`` (shape of the weight, int64) stays fixed.
    """

    def __init__(self, codebook: torch.Tensor, indices: torch.Tensor) -> None:
        super().__init__()
        self.codebook = nn.Parameter(codebook.detach().clone())
        self.register_buffer("indices", indices.detach().to(torch.int64).clone())

    @property
    def bits(self) -> int:
        return max(1, int(np.ceil(np.log2(max(self.codebook.numel(), 2)))))

    def forward(self, _original: torch.Tensor) -> torch.Tensor:
        extended = torch.cat([self.codebook.new_zeros(1), self.codebook])  # slot 0 is the pruned zero
        return extended[self.indices + 1]

    def right_inverse(self, weight: torch.Tensor) -> torch.Tensor:
        # the dense original is not kept: the codebook and indices are the weight now
        return weight.new_empty(0)

    def extra_repr(self) -> str:
        nonzero = int((self.indices >= 0).sum())
        return f"clusters={self.codebook.numel()}, shape={tuple(self.indices.shape)}, nonzero={nonzero}"


@dataclass(frozen=True)
class LayerSharing:
    """What sharing did to one layer: ``mse`` is the mean squared change of the nonzero weights."""

    name: str
    bits: int
    clusters: int
    weights: int
    nonzero: int
    mse: float


@dataclass(frozen=True)
class SharingReport:
    layers: list[LayerSharing] = field(default_factory=list)

    @property
    def weights(self) -> int:
        return sum(layer.weights for layer in self.layers)

    def to_dict(self) -> dict:
        return {"layers": [layer.__dict__ for layer in self.layers], "weights": self.weights}

    def table(self) -> str:
        rows = [f"{'layer':<28}{'bits':>5}{'weights':>10}{'nonzero':>10}{'mse':>12}"]
        for lay in self.layers:
            rows.append(f"{lay.name:<28}{lay.bits:>5}{lay.weights:>10}{lay.nonzero:>10}{lay.mse:>12.3e}")
        return "\n".join(rows)


def _bits_for(fqn: str, bits: int, layer_bits: Mapping[str, int] | None) -> int:
    chosen = bits
    for pattern, value in (layer_bits or {}).items():
        if matches_any(fqn, [pattern]):
            chosen = value
    if not 1 <= chosen <= MAX_BITS:
        raise ConfigError(f"{fqn}: bits must be in [1, {MAX_BITS}], got {chosen}")
    return chosen


def share_layer(module: nn.Module, bits: int, *, name: str = "weight", iters: int = 30) -> LayerSharing:
    """Cluster ``module.<name>`` into ``2**bits`` shared values and parametrize it as ``codebook[indices]``."""
    if parametrize.is_parametrized(module, name):
        raise ConfigError(f"{label('', module)}: {name!r} is already parametrized; remove that first")
    weight = getattr(module, name).detach()
    flat = weight.reshape(-1).cpu().numpy().astype(np.float64)
    nonzero = flat != 0
    centroids, labels = kmeans_1d(flat[nonzero], 2**bits, iters=iters)
    indices = np.full(flat.shape, -1, dtype=np.int64)
    indices[nonzero] = labels
    codebook = torch.as_tensor(centroids, dtype=weight.dtype, device=weight.device)
    shared = SharedWeight(codebook, torch.as_tensor(indices.reshape(weight.shape), device=weight.device))
    mse = float(np.mean((centroids[labels] - flat[nonzero]) ** 2)) if labels.size else 0.0
    parametrize.register_parametrization(module, name, shared, unsafe=True)
    mask = f"{name}_mask"
    if mask in module._buffers and mask in module._non_persistent_buffers_set:
        # an unstructured-pruning keep-mask (slimkit.prune.unstructured): index -1 now keeps those zeros
        del module._buffers[mask]
        module._non_persistent_buffers_set.discard(mask)
    return LayerSharing("", bits, 2**bits, flat.size, int(nonzero.sum()), mse)


def share_weights(
    model: nn.Module,
    *,
    bits: int = 5,
    layer_bits: Mapping[str, int] | None = None,
    types: tuple[type, ...] = SHAREABLE,
    filter_fn: FilterFn | None = None,
    ignore: Iterable[str] = (),
    iters: int = 30,
) -> SharingReport:
    """Replace the weights of every Linear/Conv layer by ``2**bits`` shared values (k-means, linear init).

    All or nothing: if any layer fails the model is left as it was.

    Args:
        model: changed in place; its weights become ``codebook[indices]`` parametrizations.
        bits: default bits per weight index (Han et al.: 8 for conv, 5 for fc).
        layer_bits: per-layer overrides, fqn or glob -> bits, e.g. ``{"features.*": 8}``.
        types: module types whose ``weight`` is shared.
        filter_fn: ``filter_fn(module, fqn) -> bool`` selects layers further.
        ignore: fqns (or globs) left untouched.
        iters: maximum Lloyd iterations per layer.

    Returns:
        A :class:`SharingReport` with bits, nonzero count and clustering error per layer.
    """
    if not 1 <= bits <= MAX_BITS:
        raise ConfigError(f"bits must be in [1, {MAX_BITS}], got {bits}")
    layers: list[LayerSharing] = []
    with transaction(model):
        uses: dict[int, int] = {}
        for _, p in model.named_parameters(remove_duplicate=False):
            uses[id(p)] = uses.get(id(p), 0) + 1
        targets = [
            (fqn, m) for fqn, m in iter_modules(model, types, filter_fn=filter_fn, ignore=ignore)
            if getattr(m, "weight", None) is not None and not parametrize.is_parametrized(m, "weight")
            # a weight tied to another module (embedding = output layer) stays: parametrizing it in one place
            # would empty the tensor the other module reads
            and uses.get(id(m.weight), 0) == 1
        ]
        for fqn, module in targets:
            result = share_layer(module, _bits_for(fqn, bits, layer_bits), iters=iters)
            layers.append(LayerSharing(fqn, result.bits, result.clusters, result.weights, result.nonzero, result.mse))
    return SharingReport(layers)


def shared_weights(model: nn.Module) -> dict[str, SharedWeight]:
    """``{"fc1.weight": SharedWeight, ...}``: every shared tensor of ``model`` by its plain state-dict name."""
    found: dict[str, SharedWeight] = {}
    for fqn, module in model.named_modules():
        if not parametrize.is_parametrized(module):
            continue
        for tensor_name, plist in module.parametrizations.items():
            if len(plist) == 1 and isinstance(plist[0], SharedWeight):
                found[f"{fqn}.{tensor_name}" if fqn else tensor_name] = plist[0]
    return found


def strip_sharing(model: nn.Module) -> nn.Module:
    """Turn every shared weight back into a plain parameter holding exactly ``codebook[indices]``."""
    for name in list(shared_weights(model)):
        fqn, _, tensor_name = name.rpartition(".")
        module = model.get_submodule(fqn) if fqn else model
        parametrize.remove_parametrizations(module, tensor_name, leave_parametrized=True)
    return model


def codebook_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The centroids of every shared layer (to fine-tune only them, freeze the rest)."""
    return [shared.codebook for shared in shared_weights(model).values()]
