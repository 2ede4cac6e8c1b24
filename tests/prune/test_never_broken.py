"""A model ``prune_channels`` hands back always runs: the patterns that used to come back silently broken.

Each module below reproduces a pattern of a real model (timm's CSPDarkNet and TResNet, T5's relative position
bias, a user's shape check). Pruning either removes what it safely can, leaving the breaking group alone with the
failing module named in ``report.skipped``, or changes nothing; the returned model always runs with its original
output shapes.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import slimkit
from slimkit.cli import main


class SplitByAttribute(nn.Module):
    """CSPDarkNet: ``x.split(self.expand_chs // 2)`` with the width kept as a Python int."""

    def __init__(self) -> None:
        super().__init__()
        self.expand_chs = 16
        self.conv_in = nn.Conv2d(3, 16, 1)
        self.conv_a = nn.Conv2d(8, 8, 3, padding=1)
        self.head = nn.Conv2d(16, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv_in(x)
        a, b = y.split(self.expand_chs // 2, dim=1)
        return self.head(torch.cat([self.conv_a(a), b], dim=1))


class BlurPool(nn.Module):
    """TResNet: a fixed blur filter applied per channel with ``groups=self.channels``."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = channels
        self.register_buffer("filt", torch.ones(channels, 1, 3, 3) / 9)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="reflect"), self.filt, stride=2, groups=self.channels)


class BlurNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.blur = BlurPool(8)
        self.mid = nn.Conv2d(8, 12, 3, padding=1)
        self.head = nn.Conv2d(12, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.mid(self.blur(torch.relu(self.stem(x))))))


class RelativeBiasAttention(nn.Module):
    """T5: a position bias table with one column per head, added to the scores of all heads."""

    def __init__(self, dim: int = 16, heads: int = 4, buckets: int = 8) -> None:
        super().__init__()
        self.heads, self.head_dim = heads, dim // heads
        self.q, self.k, self.v, self.o = (nn.Linear(dim, dim, bias=False) for _ in range(4))
        self.bias = nn.Embedding(buckets, heads)
        self.ffn = nn.Sequential(nn.Linear(dim, 32), nn.ReLU(), nn.Linear(32, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, D)
        b, t, _ = x.shape
        q, k, v = (p(x).view(b, t, self.heads, -1).transpose(1, 2) for p in (self.q, self.k, self.v))
        pos = torch.arange(t)
        bias = self.bias((pos[None, :] - pos[:, None]).clamp(0, 7)).permute(2, 0, 1)[None]  # (1, H, T, T)
        scores = q @ k.transpose(-1, -2) + bias
        y = (scores.softmax(-1) @ v).transpose(1, 2).reshape(b, t, -1)
        x = x + self.o(y)
        return x + self.ffn(x)


class ShapeCheck(nn.Module):
    """A user's module that refuses any input whose channel count is not the one it was built for."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 16, 1)
        self.b = nn.Conv2d(16, 16, 1)
        self.c = nn.Conv2d(16, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.a(x)
        if y.shape[1] != 16:
            raise ValueError("expected 16 channels")
        return self.c(torch.relu(self.b(torch.relu(y))))


CASES = {
    "split_by_attribute": (SplitByAttribute, (torch.randn(1, 3, 8, 8),)),
    "blurpool_groups": (BlurNet, (torch.randn(1, 3, 8, 8),)),
    "relative_position_bias": (RelativeBiasAttention, (torch.randn(2, 6, 16),)),
    "shape_check": (ShapeCheck, (torch.randn(1, 3, 8, 8),)),
}


def _outputs(model: nn.Module, inputs: tuple) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return model(*inputs)


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("attention", ["head_dims", "heads"])
def test_returned_model_always_runs(case: str, attention: str) -> None:
    cls, inputs = CASES[case]
    torch.manual_seed(0)
    model = cls()
    before = _outputs(model, inputs)
    report = slimkit.prune_channels(model, inputs, ratio=0.5, scope="local", attention=attention)
    after = _outputs(model, inputs)  # must not raise
    assert after.shape == before.shape and bool(torch.isfinite(after).all())
    broken = [s for s in report.skipped if "breaks the model" in s.reason]
    if report.macs_reduction == 1.0:
        assert torch.equal(after, before)  # nothing cut: the model is exactly as it was
    for s in broken:
        assert "(" in s.reason and ")" in s.reason  # names the failing module as 'fqn (Type)'


def test_bisection_blames_exactly_the_breaking_groups() -> None:
    """Two groups break the forward (two shape checks); the other two are cut."""

    class Mixed(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.checked = nn.Conv2d(3, 16, 1)
            self.free1 = nn.Conv2d(16, 16, 3, padding=1)
            self.checked2 = nn.Conv2d(16, 24, 1)
            self.free3 = nn.Conv2d(24, 24, 1)
            self.head = nn.Conv2d(24, 4, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.checked(x)
            if y.shape[1] != 16:
                raise ValueError("expected 16 channels")
            y = self.checked2(torch.relu(self.free1(torch.relu(y))))
            if y.shape[1] != 24:
                raise ValueError("expected 24 channels")
            return self.head(torch.relu(self.free3(torch.relu(y))))

    torch.manual_seed(0)
    model = Mixed()
    x = torch.randn(1, 3, 8, 8)
    report = slimkit.prune_channels(model, x, ratio=0.5, scope="local")
    blamed = sorted(s.name for s in report.skipped if "breaks the model" in s.reason)
    assert blamed == ["checked", "checked2"]
    assert model.checked.out_channels == 16 and model.checked2.out_channels == 24  # the two blamed groups
    assert model.free1.out_channels == 8 and model.free3.out_channels == 12  # the others are cut
    assert _outputs(model, (x,)).shape == (1, 4, 8, 8)


def test_finiteness_is_checked() -> None:
    """A pruned model whose output turns NaN is not handed back."""

    class LogOfSum(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Linear(4, 8)
            self.b = nn.Linear(8, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = torch.relu(self.a(x))
            return self.b(h) + torch.log(h.shape[1] - 7.5 + 0 * h.sum())  # NaN once fewer than 8 features remain

    torch.manual_seed(0)
    model = LogOfSum()
    x = torch.randn(3, 4)
    report = slimkit.prune_channels(model, x, ratio=0.5)
    assert bool(torch.isfinite(_outputs(model, (x,))).all())
    assert model.a.out_features == 8 and any("NaN" in s.reason for s in report.skipped)


@pytest.mark.cli
def test_cli_never_writes_a_broken_model(tmp_path, capsys) -> None:
    torch.manual_seed(0)
    model = ShapeCheck()
    slimkit.save_model(model, tmp_path / "m.pt")
    code = main(["prune", str(tmp_path / "m.pt"), "--ratio", "0.5", "--input-size", "8",
                 "--factory", f"{__name__}:ShapeCheck", "--out", str(tmp_path / "p.pt")])
    capsys.readouterr()
    if code == 0:
        loaded = slimkit.load_model(tmp_path / "p.pt", ShapeCheck())
        assert _outputs(loaded, (torch.randn(1, 3, 8, 8),)).shape == (1, 4, 8, 8)


def test_gqa_under_sdpa_removes_whole_kv_groups_with_their_query_heads() -> None:
    """SDPA with enable_gqa: a KV head and the query heads reading it go together; outputs stay exact."""
    from slimkit.testing.registry import build_arch

    model, inputs = build_arch("gqa_sdpa")
    report = slimkit.prune_channels(model, inputs, ratio=0.5, scope="local")
    hd = model.head_dim
    q_heads, kv_heads = model.q_proj.out_features // hd, model.k_proj.out_features // hd
    assert (q_heads, kv_heads) == (2, 1)  # one of two KV groups, with its two query heads
    assert model.o_proj.in_features == q_heads * hd and model.v_proj.out_features == kv_heads * hd
    assert report.macs_reduction > 1.5
    assert _outputs(model, inputs).shape == (2, 5, 3)
