"""Storage size (dtype-aware, what-if bit widths and sparsity) and peak activation memory against hand counts."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import slimkit
from slimkit.core.errors import ConfigError


def _bn_net() -> nn.Module:
    return nn.Sequential(nn.Conv2d(2, 4, 3, bias=False), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4 * 4 * 4, 3))


def test_size_bytes_is_dtype_aware():
    model = _bn_net()
    params = 4 * 2 * 9 + 4 + 4 + 64 * 3 + 3
    buffers = 4 * 4 + 4 * 4 + 8  # running mean/var float32 + num_batches_tracked int64
    report = slimkit.profile(model, torch.randn(1, 2, 6, 6))
    assert report.params == params
    assert (report.param_bytes, report.buffer_bytes) == (4 * params, buffers)
    assert report.size_bytes == 4 * params + buffers
    half = slimkit.profile(model.to(torch.float64), torch.randn(1, 2, 6, 6, dtype=torch.float64))
    assert half.param_bytes == 8 * params
    assert half.buffer_bytes == 8 * 4 * 2 + 8


def test_size_at_dense_bit_widths():
    report = slimkit.profile(_bn_net(), torch.randn(1, 2, 6, 6))
    assert report.size_at(bits=32) == report.size_bytes
    assert report.size_at(bits=8) == report.params + report.buffer_bytes
    assert report.size_at(bits=3) == math.ceil(report.params * 3 / 8) + report.buffer_bytes


@pytest.mark.parametrize("bits, sparsity, index_bits", [(8, 0.9, 4), (4, 0.75, 3), (32, 0.99, 8), (8, 0.95, 5)])
def test_size_at_sparse_relative_index_format(bits, sparsity, index_bits):
    report = slimkit.profile(_bn_net(), torch.randn(1, 2, 6, 6))
    nnz = round(report.params * (1 - sparsity))
    entries = nnz / (1 - sparsity ** (2**index_bits))  # expected filler zeros for gaps beyond 2**index_bits
    expected = min(report.params * bits, entries * (bits + index_bits))
    got = report.size_at(bits=bits, sparsity=sparsity, index_bits=index_bits)
    assert got == math.ceil(expected / 8) + report.buffer_bytes
    assert got < report.size_at(bits=bits)


def test_size_at_low_sparsity_keeps_dense_and_none_uses_measured():
    layer = nn.Linear(100, 10, bias=False)
    with torch.no_grad():
        layer.weight[:, :90] = 0  # 90% zeros
    report = slimkit.profile(layer, torch.randn(1, 100))
    assert report.size_at(bits=4, sparsity=0.2, index_bits=8) == report.size_at(bits=4)  # sparse would be larger
    assert report.size_at(bits=8, sparsity=None, index_bits=4) == report.size_at(bits=8, sparsity=0.9, index_bits=4)
    assert report.size_at(bits=8, sparsity=1.0) == 0


@pytest.mark.parametrize("kwargs", [{"bits": 0}, {"sparsity": 1.5}, {"sparsity": -0.1}, {"index_bits": 0}])
def test_size_at_rejects_bad_arguments(kwargs):
    report = slimkit.profile(nn.Linear(2, 2), torch.randn(1, 2))
    with pytest.raises(ConfigError):
        report.size_at(**kwargs)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("widths", [(64, 256, 32, 512, 16), (8, 8, 8), (100, 10, 1000, 10)])
def test_peak_activation_of_a_linear_chain(widths, bias):
    """Sequential frees each activation once the next exists: the peak is the input (held by the caller)
    plus the largest adjacent pair of produced activations."""
    batch = 4
    model = nn.Sequential(*[nn.Linear(a, b, bias=bias) for a, b in zip(widths, widths[1:])])
    report = slimkit.profile(model, torch.randn(batch, widths[0]))
    sizes = [batch * w * 4 for w in widths]
    produced = sizes[1:] + [0]
    expected = sizes[0] + max(a + b for a, b in zip(produced, produced[1:]))
    assert report.peak_activation_bytes == expected


def test_peak_activation_in_place_relu_and_skip_connection():
    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.fc2 = nn.Linear(16, 64), nn.Linear(64, 16)

        def forward(self, x):
            h = torch.relu_(self.fc1(x))  # in place: no new storage
            return x + self.fc2(h)

    report = slimkit.profile(Block(), torch.randn(2, 16))
    x, h, y = 2 * 16 * 4, 2 * 64 * 4, 2 * 16 * 4
    # while adding: x, h (still referenced), fc2 output and the sum are alive together
    assert report.peak_activation_bytes == x + h + y + y


def test_peak_activation_scales_with_batch_and_dtype():
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1))
    one = slimkit.profile(model, torch.randn(1, 3, 10, 10)).peak_activation_bytes
    four = slimkit.profile(model, torch.randn(4, 3, 10, 10)).peak_activation_bytes
    assert four == 4 * one
    assert one == (3 + 8 + 8) * 100 * 4  # input + conv output + relu output (conv2 runs after conv1 out is freed)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_peak_activation_matches_cuda_allocator():
    model = nn.Sequential(*[nn.Linear(1024, 1024) for _ in range(4)]).cuda()
    x = torch.randn(256, 1024, device="cuda")
    report = slimkit.profile(model, x)
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    with torch.inference_mode():
        model(x)
    torch.cuda.synchronize()
    allocator_peak = torch.cuda.max_memory_allocated() - base + x.numel() * 4
    assert report.peak_activation_bytes == pytest.approx(allocator_peak, rel=0.05)


def test_a_tensor_cached_during_profiling_can_still_be_trained_through():
    class Cached(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 4)
            self.table = None

        def forward(self, x):
            if self.table is None:  # lazily built on the first forward, like rotary embedding tables
                self.table = torch.arange(4.0)
            return self.fc(x) * self.table

    model = Cached()
    slimkit.profile(model, torch.randn(2, 4))
    model(torch.randn(2, 4)).sum().backward()  # would fail if the cache were an inference tensor
    assert model.fc.weight.grad is not None
