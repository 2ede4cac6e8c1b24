"""Binary (BinaryConnect, BWN, XNOR) and ternary (TWN, TTQ) weights."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from slimkit.quant import BinaryConfig, TernaryConfig, quantize
from slimkit.quant.binary import BinaryWeight, SignActivation, TernaryWeight, TTQWeight, clip_latent_weights


def test_binaryconnect_is_sign_with_hardtanh_ste() -> None:
    w = torch.tensor([[-1.5, -0.2, 0.0, 0.7, 2.0]], requires_grad=True)
    out = BinaryWeight(scaled=False)(w)
    assert out.tolist() == [[-1.0, -1.0, 1.0, 1.0, 1.0]]
    out.sum().backward()
    assert w.grad.tolist() == [[0.0, 1.0, 1.0, 1.0, 0.0]]


def test_bwn_alpha_is_mean_abs_per_filter() -> None:
    w = torch.randn(4, 3, 3, 3, generator=torch.Generator().manual_seed(0))
    out = BinaryWeight(scaled=True)(w)
    alpha = w.abs().mean(dim=(1, 2, 3))
    for f in range(4):
        assert set(out[f].abs().unique().tolist()) == pytest.approx([alpha[f].item()])
    assert torch.equal(torch.sign(out), torch.where(w >= 0, 1.0, -1.0))


def test_xnor_binarizes_inputs() -> None:
    x = torch.relu(torch.randn(2, 3, 4, 4, generator=torch.Generator().manual_seed(0)))  # post-ReLU: all >= 0
    out = SignActivation()(x)
    m = x.mean(dim=(1, 2, 3), keepdim=True)
    beta = (x - m).abs().mean(dim=(1, 2, 3), keepdim=True)
    for i in range(2):  # two values per sample, m - beta below the mean and m + beta above it
        assert len(out[i].unique()) == 2
    torch.testing.assert_close(out, m + beta * torch.where(x >= m, 1.0, -1.0))
    x = torch.randn(2, 3, 4, 4)
    centred = x - x.mean(dim=(1, 2, 3), keepdim=True)
    torch.testing.assert_close(SignActivation()(centred).abs(),
                               centred.abs().mean(dim=(1, 2, 3), keepdim=True).expand_as(x))


def test_twn_threshold_and_scale() -> None:
    w = torch.randn(3, 50, generator=torch.Generator().manual_seed(0))
    out = TernaryWeight(0.7)(w)
    for f in range(3):
        delta = 0.7 * w[f].abs().mean()
        kept = w[f].abs() > delta
        alpha = w[f].abs()[kept].mean()
        torch.testing.assert_close(out[f], alpha * torch.sign(w[f]) * kept)
        assert len(out[f].unique()) == 3


def test_ttq_scales_are_learned() -> None:
    w = torch.randn(8, 20, generator=torch.Generator().manual_seed(0), requires_grad=True)
    q = TTQWeight(w.detach(), threshold=0.05)
    out = q(w)
    values = set(out.detach().unique().tolist())
    assert values <= {q.w_pos.item(), 0.0, -q.w_neg.item()}
    target = torch.where(w.detach() > 0, 2.0, -0.5)
    before = (q.w_pos.item(), q.w_neg.item())
    opt = torch.optim.SGD(q.parameters(), lr=0.01)
    for _ in range(20):
        opt.zero_grad()
        (q(w) - target).pow(2).sum().backward()
        opt.step()
    assert q.w_pos.item() > before[0] and q.w_neg.item() < before[1]
    assert w.grad is not None and w.grad.abs().sum() > 0


@pytest.mark.parametrize("config,bits", [
    (BinaryConfig(method="binaryconnect"), 1), (BinaryConfig(method="bwn"), 1), (BinaryConfig(method="xnor"), 1),
    (TernaryConfig(method="twn"), 2), (TernaryConfig(method="ttq"), 2),
])
def test_quantize_keeps_first_last_and_trains(cnn: nn.Module, images: torch.Tensor, config, bits: int) -> None:
    report = quantize(cnn, config)
    assert [layer.fqn for layer in report.layers] == ["3", "8"]
    assert set(report.skipped) == {"0", "10"}
    assert all(layer.weight_bits == bits for layer in report.layers)
    assert report.size_ratio > 1
    cnn.train()
    nn.functional.cross_entropy(cnn(images), torch.arange(32) % 10).backward()
    assert cnn[3].weight.grad is not None and cnn[3].weight.grad.abs().sum() > 0
    assert cnn[0].weight.grad.abs().sum() > 0


def test_size_ratio_of_binary_layers() -> None:
    model = nn.Sequential(nn.Linear(100, 100, bias=False), nn.Linear(100, 100, bias=False),
                          nn.Linear(100, 100, bias=False))
    report = quantize(model, BinaryConfig(method="binaryconnect"))
    # middle layer: 10,000 weights at 1 bit; first and last stay at 32 bits
    assert report.size_bytes == 2 * 40_000 + 10_000 // 8
    assert report.size_bytes_fp32 == 120_000


def test_clip_latent_weights() -> None:
    model = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 4), nn.Linear(4, 4))
    quantize(model, BinaryConfig(method="binaryconnect"))
    with torch.no_grad():
        model[1].weight.mul_(10)
    clip_latent_weights(model)
    assert model[1].weight.abs().max() <= 1.0


def test_binaryconnect_trains_with_the_engine_and_clip_hook() -> None:
    from slimkit.quant.hooks import ClipLatentWeights
    from slimkit.train import TrainConfig, fit

    torch.manual_seed(0)
    x = torch.randn(64, 8)
    y = (x[:, 0] > 0).long()
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 2))
    with torch.no_grad():
        model[2].weight.mul_(20)  # latent weights far outside [-1, 1]
    quantize(model, BinaryConfig(method="binaryconnect"))
    data = torch.utils.data.TensorDataset(x, y)
    fit(model, data, TrainConfig(epochs=2, batch_size=16, lr=0.05, progress=False, device="cpu"),
        hooks=[ClipLatentWeights()])
    assert model[2].weight.abs().max() <= 1.0
    assert set(model[2].quantized_weight().unique().tolist()) <= {-1.0, 1.0}
