"""Tiny token, attention, recurrent and odd-graph architectures (for tests, yours included)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from slimkit.testing.registry import register_arch


@register_arch("mlp")
def mlp() -> tuple[nn.Module, tuple]:
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 24), nn.GELU(), nn.Linear(24, 4))
    return model, (torch.randn(3, 4, 4),)


class Attention(nn.Module):
    """Hand-written multi-head attention: one qkv Linear reshaped into heads (head dim written as -1)."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.scale = (dim // heads) ** -0.5  # a constant: fixed when the head dims shrink
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, -1).permute(2, 0, 3, 1, 4)  # (3, B, H, N, hd)
        attn = (q @ k.transpose(-2, -1) * self.scale).softmax(dim=-1)  # (B, H, N, N)
        out = (attn @ v).transpose(1, 2).reshape(b, n, -1)  # (B, N, H*hd)
        return self.proj(out)


class ViTBlock(nn.Module):
    def __init__(self, dim: int, heads: int, hidden: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class ViT(nn.Module):
    """Patch conv, class token, position embedding, pre-norm blocks, class-token head."""

    def __init__(self, dim: int = 16, heads: int = 2, depth: int = 2, patch: int = 4, image: int = 8) -> None:
        super().__init__()
        self.patch = nn.Conv2d(3, dim, patch, patch)
        tokens = (image // patch) ** 2
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        self.pos_embed = nn.Parameter(torch.randn(1, tokens + 1, dim) * 0.02)
        self.blocks = nn.Sequential(*[ViTBlock(dim, heads, 2 * dim) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch(x).flatten(2).transpose(1, 2)  # (B, N, D)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        return self.head(self.norm(self.blocks(x))[:, 0])


@register_arch("vit")
def vit() -> tuple[nn.Module, tuple]:
    return ViT(), (torch.randn(2, 3, 8, 8),)


class MixerBlock(nn.Module):
    def __init__(self, tokens: int, dim: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.token_mlp = nn.Sequential(nn.Linear(tokens, 2 * tokens), nn.GELU(), nn.Linear(2 * tokens, tokens))
        self.norm2 = nn.LayerNorm(dim)
        self.channel_mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.token_mlp(self.norm1(x).transpose(1, 2)).transpose(1, 2)  # mix along tokens
        return x + self.channel_mlp(self.norm2(x))


class Mixer(nn.Module):
    """Token mixing (Linear over the token dim after a transpose) and channel mixing."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 12, 2, 2)
        self.blocks = nn.Sequential(MixerBlock(16, 12), MixerBlock(16, 12))
        self.head = nn.Linear(12, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x).flatten(2).transpose(1, 2)  # (B, 16 tokens, 12)
        return self.head(self.blocks(x).mean(1))


@register_arch("mlp_mixer")
def mlp_mixer() -> tuple[nn.Module, tuple]:
    return Mixer(), (torch.randn(2, 3, 8, 8),)


class ConvNeXtBlock(nn.Module):
    """Depthwise 7x7, channels-last LayerNorm, inverted MLP, layer scale ``gamma`` used directly in forward."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, 7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim)
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.pwconv2 = nn.Linear(4 * dim, dim)
        self.gamma = nn.Parameter(torch.full((dim,), 0.5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.dwconv(x).permute(0, 2, 3, 1)  # (B, H, W, C)
        y = self.gamma * self.pwconv2(F.gelu(self.pwconv1(self.norm(y))))
        return x + y.permute(0, 3, 1, 2)


@register_arch("convnext")
def convnext() -> tuple[nn.Module, tuple]:
    model = nn.Sequential(nn.Conv2d(3, 8, 2, 2), ConvNeXtBlock(8), ConvNeXtBlock(8), nn.AdaptiveAvgPool2d(1),
                          nn.Flatten(), nn.Linear(8, 5))
    return model, (torch.randn(2, 3, 8, 8),)


class MHAEncoder(nn.Module):
    """A transformer encoder on ``nn.MultiheadAttention`` (batch first), post-norm, with an FFN."""

    def __init__(self, dim: int = 16, heads: int = 4, vocab: int = 20) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm1 = nn.LayerNorm(dim)
        self.ffn = nn.Sequential(nn.Linear(dim, 32), nn.ReLU(), nn.Linear(32, dim))
        self.norm2 = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, 3)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.embed(tokens)
        x = self.norm1(x + self.attn(x, x, x, need_weights=False)[0])
        x = self.norm2(x + self.ffn(x))
        return self.head(x.mean(1))


@register_arch("mha_encoder")
def mha_encoder() -> tuple[nn.Module, tuple]:
    return MHAEncoder(), (torch.randint(0, 20, (2, 6)),)


class TorchEncoder(nn.Module):
    """``nn.TransformerEncoderLayer`` as shipped by PyTorch."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(6, 16)
        self.layer = nn.TransformerEncoderLayer(16, 2, 24, dropout=0.0, batch_first=True)
        self.head = nn.Linear(16, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.layer(self.proj(x))[:, -1])


@register_arch("torch_transformer_layer")
def torch_transformer_layer() -> tuple[nn.Module, tuple]:
    return TorchEncoder(), (torch.randn(2, 5, 6),)


class SDPABlock(nn.Module):
    """Separate q/k/v projections, ``F.scaled_dot_product_attention`` with an explicit scale, 2 heads."""

    def __init__(self, dim: int = 12, heads: int = 2) -> None:
        super().__init__()
        self.heads = heads
        self.q, self.k, self.v = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.o = nn.Linear(dim, dim)
        self.head = nn.Linear(dim, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.view(b, n, self.heads, -1).transpose(1, 2)  # (B, H, N, hd)

        y = F.scaled_dot_product_attention(split(self.q(x)), split(self.k(x)), split(self.v(x)), scale=0.25)
        return self.head(x + self.o(y.transpose(1, 2).reshape(b, n, -1)))


@register_arch("sdpa_attention")
def sdpa_attention() -> tuple[nn.Module, tuple]:
    return SDPABlock(), (torch.randn(2, 5, 12),)


class LSTMHead(nn.Module):
    """Conv features read by an LSTM: its input features are pruned with the conv feeding it, its hidden units
    with the classifier reading them."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(4, 16, 3, padding=1)
        self.conv2 = nn.Conv1d(16, 8, 3, padding=1)
        self.lstm = nn.LSTM(8, 10, batch_first=True)
        self.fc = nn.Linear(10, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv2(F.relu(self.conv1(x))).transpose(1, 2)  # (B, T, 8)
        out, _ = self.lstm(h)
        return self.fc(out[:, -1])


@register_arch("lstm_head")
def lstm_head() -> tuple[nn.Module, tuple]:
    return LSTMHead(), (torch.randn(2, 4, 7),)


class BiGRUTagger(nn.Module):
    """Per-token features into a 2-layer bidirectional GRU (time first), then a GRU cell over its last output."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(6, 12)
        self.gru = nn.GRU(12, 5, num_layers=2, bidirectional=True)
        self.cell = nn.GRUCell(10, 4)
        self.fc = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, _ = self.gru(torch.relu(self.proj(x)))  # (T, B, 10)
        return self.fc(self.cell(h[-1]))


@register_arch("bigru_tagger")
def bigru_tagger() -> tuple[nn.Module, tuple]:
    return BiGRUTagger(), (torch.randn(5, 2, 6),)


class PackedLSTM(nn.Module):
    """Variable-length sequences: an embedding Linear, ``pack_padded_sequence`` (unsorted lengths), a stacked
    bidirectional LSTM on the packed batch, ``pad_packed_sequence`` and a per-sequence head."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Linear(5, 8)
        self.lstm = nn.LSTM(8, 6, num_layers=2, bidirectional=True, batch_first=True)
        self.head = nn.Linear(12, 3)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

        packed = pack_padded_sequence(torch.relu(self.embed(x)), lengths, batch_first=True, enforce_sorted=False)
        out, _ = self.lstm(packed)
        padded, _ = pad_packed_sequence(out, batch_first=True)
        return self.head(padded.sum(1) / lengths.unsqueeze(1))


@register_arch("packed_lstm")
def packed_lstm() -> tuple[nn.Module, tuple]:
    return PackedLSTM(), (torch.randn(3, 7, 5), torch.tensor([7, 4, 2]))


class ProjectedLSTM(nn.Module):
    """A stacked bidirectional LSTM with a projection (``proj_size``) and given initial states (h0, c0)."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Linear(5, 8)
        self.lstm = nn.LSTM(8, 10, num_layers=2, bidirectional=True, proj_size=4)
        self.h0 = nn.Linear(5, 4)
        self.c0 = nn.Linear(5, 10)
        self.head = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (T, B, 5)
        first = x[0].expand(4, -1, -1)  # (layers * directions, B, 5)
        out, (h, c) = self.lstm(torch.relu(self.embed(x)), (self.h0(first), self.c0(first)))
        return self.head(out.mean(0)) + h.sum() * 0 + c.mean(-1).sum(0).unsqueeze(1)


@register_arch("projected_lstm")
def projected_lstm() -> tuple[nn.Module, tuple]:
    return ProjectedLSTM(), (torch.randn(6, 2, 5),)


class MultiIO(nn.Module):
    """Two inputs, two outputs; a shared trunk fed by the sum of two stems."""

    def __init__(self) -> None:
        super().__init__()
        self.stem_a = nn.Conv2d(3, 8, 3, 1, 1)
        self.stem_b = nn.Conv2d(1, 8, 3, 1, 1)
        self.trunk = nn.Sequential(nn.ReLU(), nn.Conv2d(8, 12, 3, 1, 1), nn.ReLU())
        self.cls = nn.Linear(12, 4)
        self.seg = nn.Conv2d(12, 2, 1)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.trunk(self.stem_a(a) + self.stem_b(b))
        return self.cls(h.mean((2, 3))), self.seg(h)


@register_arch("multi_io")
def multi_io() -> tuple[nn.Module, tuple]:
    return MultiIO(), (torch.randn(2, 3, 6, 6), torch.randn(2, 1, 6, 6))


class TiedLM(nn.Module):
    """Token embedding tied with the output projection (one Parameter used by two modules)."""

    def __init__(self, vocab: int = 24, dim: int = 12) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.ff = nn.Sequential(nn.Linear(dim, 20), nn.ReLU(), nn.Linear(20, dim))
        self.out = nn.Linear(dim, vocab, bias=False)
        self.out.weight = self.embed.weight

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.embed(tokens)
        return self.out(x + self.ff(x))


@register_arch("tied_embedding")
def tied_embedding() -> tuple[nn.Module, tuple]:
    return TiedLM(), (torch.randint(0, 24, (2, 5)),)


class Unwrapped(nn.Module):
    """Parameters used directly in forward: a functional conv weight, a per-channel scale and shift."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(8, 3, 3, 3) * 0.2)
        self.scale = nn.Parameter(torch.rand(1, 8, 1, 1) + 0.5)
        self.shift = nn.Parameter(torch.randn(8) * 0.1)
        self.conv = nn.Conv2d(8, 6, 3, 1, 1)
        self.fc = nn.Linear(6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.conv2d(x, self.weight, padding=1) * self.scale + self.shift.view(1, -1, 1, 1)
        return self.fc(F.relu(self.conv(F.relu(h))).mean((2, 3)))


@register_arch("unwrapped_parameter")
def unwrapped_parameter() -> tuple[nn.Module, tuple]:
    return Unwrapped(), (torch.randn(2, 3, 6, 6),)


class ControlFlow(nn.Module):
    """Python control flow symbolic tracing cannot follow: a data-dependent branch and a loop."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(3, 8, 3, 1, 1)
        self.repeat = nn.Conv2d(8, 8, 3, 1, 1)
        self.fc = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.c1(x))
        for _ in range(int(h.shape[-1] // 3)):
            h = F.relu(self.repeat(h)) + h
        if x.mean() > -1e9:  # data-dependent branch
            h = h * 2
        return self.fc(h.mean((2, 3)))


@register_arch("control_flow")
def control_flow() -> tuple[nn.Module, tuple]:
    return ControlFlow(), (torch.randn(2, 3, 6, 6),)


class GLU(nn.Module):
    """A gated MLP: one Linear chunked into value and gate halves (both halves lose the same offsets)."""

    def __init__(self) -> None:
        super().__init__()
        self.up = nn.Linear(8, 2 * 16)
        self.down = nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        value, gate = self.up(x).chunk(2, dim=-1)
        return self.down(value * F.silu(gate))


@register_arch("gated_mlp")
def gated_mlp() -> tuple[nn.Module, tuple]:
    return GLU(), (torch.randn(3, 8),)


class SEResNet(nn.Module):
    """Residual stages whose branch ends in squeeze-and-excitation (gate multiplies the residual branch)."""

    def __init__(self) -> None:
        super().__init__()
        from slimkit.testing.archs_conv import _SE, cbr

        self.stem = cbr(3, 8)
        self.branch = nn.Sequential(cbr(8, 16), nn.Conv2d(16, 8, 3, 1, 1), nn.BatchNorm2d(8))
        self.se = _SE(8, 2)
        self.fc = nn.Linear(8, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = F.relu(x + self.se(self.branch(x)))
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


@register_arch("se_resnet")
def se_resnet() -> tuple[nn.Module, tuple]:
    return SEResNet(), (torch.randn(2, 3, 8, 8),)


class EinsumMixer(nn.Module):
    """Projections written with ``torch.einsum``: a token mixer ('bnc,cd->bnd'), a bilinear gate and a permute."""

    def __init__(self) -> None:
        super().__init__()
        self.w1 = nn.Parameter(torch.randn(6, 10) * 0.3)
        self.w2 = nn.Parameter(torch.randn(10, 8) * 0.3)
        self.gate = nn.Linear(6, 10)
        self.fc = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.einsum("bnc,cd->bnd", x, self.w1) * torch.sigmoid(self.gate(x))
        h = torch.einsum("bnd,de->bne", torch.relu(h), self.w2)
        return self.fc(torch.einsum("bne->ben", h).mean(-1))


@register_arch("einsum_mixer")
def einsum_mixer() -> tuple[nn.Module, tuple]:
    return EinsumMixer(), (torch.randn(2, 5, 6),)


class EinsumEllipsis(nn.Module):
    """einsum with ``...``: a projection over any leading dims, a broadcast per-channel scale, an implicit output."""

    def __init__(self) -> None:
        super().__init__()
        self.w1 = nn.Parameter(torch.randn(10, 6) * 0.3)
        self.scale = nn.Parameter(torch.rand(10) + 0.5)
        self.w2 = nn.Parameter(torch.randn(8, 10) * 0.3)
        self.fc = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(torch.einsum("...c,dc->...d", x, self.w1))
        h = torch.einsum("...d,d->...d", h, self.scale)
        h = torch.einsum("ed,...d", self.w2, h)  # implicit output '...e'
        return self.fc(h.mean(1))


@register_arch("einsum_ellipsis")
def einsum_ellipsis() -> tuple[nn.Module, tuple]:
    return EinsumEllipsis(), (torch.randn(2, 5, 6),)
