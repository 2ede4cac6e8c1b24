"""BatchNorm folding is exact before quantization."""

from __future__ import annotations

import torch
from torch import nn

from slimkit.quant.fold import find_conv_bn_pairs, fold_batchnorm


def test_fold_conv_bn_outputs_equal(cnn: nn.Module, images: torch.Tensor) -> None:
    ref = cnn(images)
    folded = fold_batchnorm(cnn)
    assert folded == ["1", "4"]
    assert isinstance(cnn[1], nn.Identity) and isinstance(cnn[4], nn.Identity)
    assert cnn[3].bias is not None  # a bias-less conv gains the BN's shift
    torch.testing.assert_close(cnn(images), ref, atol=1e-5, rtol=1e-5)


def test_fold_linear_bn1d_in_untraceable_model() -> None:
    class Branchy(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = nn.Sequential(nn.Linear(6, 5), nn.BatchNorm1d(5), nn.ReLU())

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if x.sum() > 1e9:  # data-dependent control flow: fx cannot trace it
                return x
            return self.body(x)

    torch.manual_seed(0)
    model = Branchy()
    model.body[1].running_mean.uniform_(-1, 1)
    model.body[1].running_var.uniform_(0.5, 2)
    model.eval()
    x = torch.randn(7, 6)
    ref = model(x)
    assert fold_batchnorm(model) == ["body.1"]
    torch.testing.assert_close(model(x), ref, atol=1e-5, rtol=1e-5)


def test_bn_fed_by_two_users_is_not_folded() -> None:
    class Shared(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(2, 3, 1)
            self.bn = nn.BatchNorm2d(3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.conv(x)
            return self.bn(y) + y  # the conv output is used unnormalized as well

    assert find_conv_bn_pairs(Shared()) == []
