"""Fast in-memory batching with seeded per-epoch shuffling and DistributedSampler-style sharding.

Small vision datasets (MNIST, CIFAR) fit in memory as one tensor, so the fastest loader is a vectorized gather:
``dataset.get_batch(indices) -> (x, y)``. Datasets without it are indexed item by item and collated with torch's
``default_collate`` (optionally in worker processes). The order depends only on ``(seed, epoch)``, never on the
global RNG, so a resumed run sees exactly the batches an uninterrupted one would.

Example:
    >>> loader = make_loader(dataset, batch_size=128, shuffle=True, seed=0)
    >>> for epoch in range(3):
    ...     loader.set_epoch(epoch)
    ...     for x, y in loader:
    ...         ...
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import Dataset, Subset, TensorDataset
from torch.utils.data._utils.collate import default_collate

from slimkit.core.errors import ConfigError, DataError

Batch = tuple[Any, Any]


def _gather_fn(dataset: Any) -> Any:
    """A vectorized ``indices -> (x, y)`` for the dataset, or None when it must be indexed item by item."""
    get_batch = getattr(dataset, "get_batch", None)
    if callable(get_batch):
        return get_batch
    if isinstance(dataset, Subset):
        inner = _gather_fn(dataset.dataset)
        if inner is not None:
            base = torch.as_tensor(dataset.indices, dtype=torch.long)
            return lambda idx: inner(base[idx])
    if isinstance(dataset, TensorDataset):
        tensors = dataset.tensors
        return lambda idx: tuple(t[idx] for t in tensors)
    return None


class Loader:
    """An iterable of ``(x, y)`` batches over ``dataset``; see :func:`make_loader`."""

    def __init__(
        self,
        dataset: Dataset,
        *,
        batch_size: int,
        shuffle: bool,
        seed: int = 0,
        drop_last: bool = False,
        rank: int = 0,
        world_size: int = 1,
        pad: bool = True,
        num_workers: int = 0,
    ) -> None:
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        if not 0 <= rank < world_size:
            raise ConfigError(f"rank must be in [0, world_size={world_size}), got {rank}")
        try:
            self.size = len(dataset)  # type: ignore[arg-type]
        except TypeError:
            raise DataError(f"{type(dataset).__name__}: a dataset needs __len__ to be batched") from None
        self.dataset = dataset
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.drop_last = drop_last
        self.rank = rank
        self.world_size = world_size
        self.pad = pad
        self.num_workers = num_workers
        self.epoch = 0
        self._gather = _gather_fn(dataset)

    def set_epoch(self, epoch: int) -> None:
        """Select the shuffle of ``epoch`` (a pure function of ``seed + epoch``)."""
        self.epoch = int(epoch)

    @property
    def samples_per_rank(self) -> int:
        """How many samples this rank visits per epoch (padded or truncated so all ranks agree when padding)."""
        if self.world_size == 1:
            return self.size
        if self.drop_last:
            return self.size // self.world_size
        if self.pad:
            return math.ceil(self.size / self.world_size)
        return len(range(self.rank, self.size, self.world_size))

    def indices(self) -> torch.Tensor:
        """The sample indices this rank visits this epoch, in order (a LongTensor)."""
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed + self.epoch)
            order = torch.randperm(self.size, generator=generator)
        else:
            order = torch.arange(self.size)
        if self.world_size == 1:
            return order
        if self.drop_last or self.pad:
            total = self.samples_per_rank * self.world_size
            if total > self.size:  # pad by repeating from the start, as DistributedSampler does
                repeats = math.ceil(total / self.size)
                order = order.repeat(repeats)
            order = order[:total]
        return order[self.rank :: self.world_size]

    def __len__(self) -> int:
        n = self.samples_per_rank
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def _batches(self) -> list[torch.Tensor]:
        indices = self.indices()
        batches = list(torch.split(indices, self.batch_size))
        if self.drop_last and batches and len(batches[-1]) < self.batch_size:
            batches.pop()
        return batches

    def __iter__(self) -> Iterator[Batch]:
        batches = self._batches()
        if self._gather is not None:
            for idx in batches:
                yield tuple(self._gather(idx))  # type: ignore[misc]
            return
        if self.num_workers > 0:
            loader = torch.utils.data.DataLoader(
                self.dataset, batch_sampler=[b.tolist() for b in batches], num_workers=self.num_workers
            )
            yield from (tuple(b) for b in loader)
            return
        for idx in batches:
            yield tuple(default_collate([self.dataset[i] for i in idx.tolist()]))


def make_loader(
    dataset: Dataset,
    *,
    batch_size: int,
    shuffle: bool,
    seed: int = 0,
    drop_last: bool = False,
    distributed: bool = False,
    pad: bool = True,
    num_workers: int = 0,
) -> Loader:
    """Batch ``dataset`` in memory: vectorized through ``get_batch`` when the dataset has it.

    Args:
        dataset: a map-style dataset of ``(x, y)``; ``get_batch(indices) -> (x, y)`` makes batching one gather.
        batch_size: samples per batch (per rank when distributed).
        shuffle: reshuffle each epoch; the order is ``randperm`` seeded with ``seed + epoch`` (see ``set_epoch``).
        seed: shuffle seed, the same on every rank.
        drop_last: drop the last incomplete batch (and, when distributed, the tail that does not split evenly).
        distributed: shard across ``torch.distributed`` ranks; without ``drop_last`` the index list is padded by
            repetition so every rank takes the same number of steps (as ``DistributedSampler``).
        pad: with ``distributed``, ``False`` gives each rank its exact, uneven share (for evaluation).
        num_workers: worker processes for datasets without ``get_batch`` (e.g. images read from disk).

    Returns:
        A :class:`Loader` with ``len()`` (batches per epoch on this rank) and ``set_epoch(epoch)``.

    Raises:
        ConfigError: on a bad batch size or when ``distributed`` is asked without an initialized process group.
    """
    rank, world_size = 0, 1
    if distributed:
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()):
            raise ConfigError("make_loader(distributed=True) needs torch.distributed initialized (run under torchrun)")
        rank, world_size = dist.get_rank(), dist.get_world_size()
    return Loader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        seed=seed,
        drop_last=drop_last,
        rank=rank,
        world_size=world_size,
        pad=pad,
        num_workers=num_workers,
    )
