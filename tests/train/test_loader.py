import pytest
import torch
from torch.utils.data import Subset, TensorDataset

from slimkit.core.errors import ConfigError
from slimkit.data.loader import Loader, make_loader


def _all_indices(loader):
    return torch.cat([y for _, y in loader])


@pytest.fixture
def indexed():
    # y == index, so batches reveal the order
    return TensorDataset(torch.arange(10, dtype=torch.float32).unsqueeze(1), torch.arange(10))


def test_unshuffled_covers_everything_in_order(indexed):
    loader = make_loader(indexed, batch_size=4, shuffle=False)
    sizes = [len(y) for _, y in loader]
    assert sizes == [4, 4, 2] and len(loader) == 3
    assert torch.equal(_all_indices(loader), torch.arange(10))
    x, y = next(iter(loader))
    assert x.shape == (4, 1) and torch.equal(x.squeeze(1).long(), y)


def test_drop_last(indexed):
    loader = make_loader(indexed, batch_size=4, shuffle=False, drop_last=True)
    assert len(loader) == 2 and [len(y) for _, y in loader] == [4, 4]


def test_shuffle_is_a_function_of_seed_and_epoch(indexed):
    a = make_loader(indexed, batch_size=3, shuffle=True, seed=5)
    b = make_loader(indexed, batch_size=3, shuffle=True, seed=5)
    torch.manual_seed(0)
    first = _all_indices(a)
    torch.manual_seed(99)  # the global RNG plays no part
    assert torch.equal(first, _all_indices(b))
    assert sorted(first.tolist()) == list(range(10))
    a.set_epoch(1)
    assert not torch.equal(first, _all_indices(a))
    assert sorted(_all_indices(a).tolist()) == list(range(10))
    c = make_loader(indexed, batch_size=3, shuffle=True, seed=6)
    assert not torch.equal(first, _all_indices(c))


def test_get_batch_is_used_and_equals_item_collation(dataset_cls):
    fast, slow = dataset_cls(50, vectorized=True), dataset_cls(50, vectorized=False)
    fast_batches = list(make_loader(fast, batch_size=8, shuffle=True, seed=3))
    slow_batches = list(make_loader(slow, batch_size=8, shuffle=True, seed=3))
    assert fast.get_batch_calls == len(fast_batches) == 7
    for (xf, yf), (xs, ys) in zip(fast_batches, slow_batches, strict=True):
        assert torch.equal(xf, xs) and torch.equal(yf, ys)


def test_subset_of_vectorized_dataset_stays_vectorized(dataset_cls):
    base = dataset_cls(40)
    subset = Subset(base, list(range(10, 30)))
    xs = torch.cat([x for x, _ in make_loader(subset, batch_size=6, shuffle=False)])
    assert base.get_batch_calls == 4
    assert torch.equal(xs, base.x[10:30])


@pytest.mark.parametrize("size,world,batch", [(10, 2, 3), (11, 3, 2), (5, 4, 1), (2, 3, 1)])
def test_distributed_shards_are_padded_like_distributed_sampler(size, world, batch):
    ds = TensorDataset(torch.zeros(size, 1), torch.arange(size))
    shards = [Loader(ds, batch_size=batch, shuffle=True, seed=1, rank=r, world_size=world) for r in range(world)]
    lengths = {len(s) for s in shards}
    assert len(lengths) == 1  # every rank takes the same number of steps
    per_rank = -(-size // world)
    got = [_all_indices(s) for s in shards]
    assert all(len(g) == per_rank for g in got)
    union = torch.cat(got)
    assert set(union.tolist()) == set(range(size))  # nothing lost; padding repeats only
    # interleaved like DistributedSampler: the padded permutation split rank::world
    perm = torch.randperm(size, generator=torch.Generator().manual_seed(1))
    padded = perm.repeat(-(-per_rank * world // size))[: per_rank * world]
    for r in range(world):
        assert torch.equal(got[r], padded[r::world])


def test_distributed_without_padding_partitions_exactly():
    ds = TensorDataset(torch.zeros(11, 1), torch.arange(11))
    shards = [Loader(ds, batch_size=4, shuffle=False, rank=r, world_size=3, pad=False) for r in range(3)]
    got = sorted(torch.cat([_all_indices(s) for s in shards]).tolist())
    assert got == list(range(11))


def test_distributed_drop_last_truncates():
    ds = TensorDataset(torch.zeros(11, 1), torch.arange(11))
    shards = [Loader(ds, batch_size=2, shuffle=False, rank=r, world_size=3, drop_last=True) for r in range(3)]
    assert [len(_all_indices(s)) for s in shards] == [2, 2, 2]  # 11 // 3 = 3 per rank, last odd batch dropped


def test_errors(indexed):
    with pytest.raises(ConfigError, match="batch_size"):
        make_loader(indexed, batch_size=0, shuffle=False)
    with pytest.raises(ConfigError, match="torch.distributed"):
        make_loader(indexed, batch_size=2, shuffle=False, distributed=True)
