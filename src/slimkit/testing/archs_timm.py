"""Tiny replicas of timm and torchvision model patterns, written the way the real code writes them.

Each block keeps the forward of its original line for line where it matters to the tracer (the same ``.shape``
reads, literal counts, attributes, views and parameters used directly); widths, depths and inputs are tiny.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from slimkit.testing.archs_conv import cbr
from slimkit.testing.registry import register_arch


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


# ------------------------------------------------------------------------------ SKNet (timm layers/selective_kernel)


class SelectiveKernelAttn(nn.Module):
    def __init__(self, channels: int, num_paths: int = 2, attn_channels: int = 8) -> None:
        super().__init__()
        self.num_paths = num_paths
        self.fc_reduce = nn.Conv2d(channels, attn_channels, kernel_size=1, bias=False)
        self.bn = nn.BatchNorm2d(attn_channels)
        self.act = nn.ReLU(inplace=True)
        self.fc_select = nn.Conv2d(attn_channels, channels * num_paths, kernel_size=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert x.shape[1] == self.num_paths
        x = x.sum(1).mean((2, 3), keepdim=True)
        x = self.act(self.bn(self.fc_reduce(x)))
        x = self.fc_select(x)
        B, C, H, W = x.shape
        x = x.view(B, self.num_paths, C // self.num_paths, H, W)  # (B, paths, C, 1, 1)
        return torch.softmax(x, dim=1)


class SelectiveKernel(nn.Module):
    """Two conv paths (3x3 and dilated 3x3) stacked, weighted per channel by a softmax over paths."""

    def __init__(self, in_channels: int, out_channels: int, split_input: bool) -> None:
        super().__init__()
        self.num_paths = 2
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.split_input = split_input
        cin = in_channels // self.num_paths if split_input else in_channels
        self.paths = nn.ModuleList([
            cbr(cin, out_channels, 3),
            nn.Sequential(nn.Conv2d(cin, out_channels, 3, padding=2, dilation=2, bias=False),
                          nn.BatchNorm2d(out_channels), nn.ReLU()),
        ])
        self.attn = SelectiveKernelAttn(out_channels, self.num_paths, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.split_input:
            x_split = torch.split(x, self.in_channels // self.num_paths, 1)
            x_paths = [op(x_split[i]) for i, op in enumerate(self.paths)]
        else:
            x_paths = [op(x) for op in self.paths]
        x = torch.stack(x_paths, dim=1)  # (B, paths, C, H, W)
        x_attn = self.attn(x)
        x = x * x_attn
        return torch.sum(x, dim=1)


class SKBasic(nn.Module):
    def __init__(self, c: int, width: int, split_input: bool) -> None:
        super().__init__()
        self.conv1 = SelectiveKernel(c, width, split_input)
        self.conv2 = nn.Sequential(nn.Conv2d(width, c, 3, 1, 1, bias=False), nn.BatchNorm2d(c))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.conv2(self.conv1(x)) + x)


@register_arch("sk_resnet")
def sk_resnet() -> tuple[nn.Module, tuple]:
    """Selective-kernel blocks (skresnet: input split across the paths; skresnext: whole input to each path)."""
    model = nn.Sequential(cbr(3, 16), SKBasic(16, 20, split_input=True), SKBasic(16, 24, split_input=False),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 5))
    return model, (torch.randn(2, 3, 8, 8),)


# ------------------------------------------------------------------------------ XCiT (timm models/xcit)


class XCA(nn.Module):
    """Cross-covariance attention: a (head_dim x head_dim) attention over channels, per head."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.temperature = nn.Parameter(torch.rand(num_heads, 1, 1) + 0.5)
        self.qkv = nn.Linear(dim, dim * 3, bias=False)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, C // self.num_heads).permute(2, 0, 3, 4, 1)
        q, k, v = qkv.unbind(0)  # (B, heads, C', N)
        q = F.normalize(q, dim=-1)
        k = F.normalize(k, dim=-1)
        attn = (q @ k.transpose(-2, -1)) * self.temperature
        attn = attn.softmax(dim=-1)
        x = attn @ v
        x = x.permute(0, 3, 1, 2).reshape(B, N, C)
        return self.proj(x)


class LPI(nn.Module):
    """Local patch interaction: tokens back to a map, two depthwise 3x3 convs."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
        self.act = nn.GELU()
        self.bn = nn.BatchNorm2d(dim)
        self.conv2 = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)

    def forward(self, x: torch.Tensor, H: int, W: int) -> torch.Tensor:
        B, N, C = x.shape
        x = x.permute(0, 2, 1).reshape(B, C, H, W)
        x = self.conv2(self.bn(self.act(self.conv1(x))))
        return x.reshape(B, C, N).permute(0, 2, 1)


class XCABlock(nn.Module):
    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = XCA(dim, num_heads)
        self.norm3 = nn.LayerNorm(dim)
        self.local_mp = LPI(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, 4 * dim)
        self.gamma1 = nn.Parameter(torch.full((dim,), 0.5))
        self.gamma3 = nn.Parameter(torch.full((dim,), 0.5))
        self.gamma2 = nn.Parameter(torch.full((dim,), 0.5))

    def forward(self, x: torch.Tensor, H: int, W: int) -> torch.Tensor:
        x = x + self.gamma1 * self.attn(self.norm1(x))
        x = x + self.gamma3 * self.local_mp(self.norm3(x), H, W)
        return x + self.gamma2 * self.mlp(self.norm2(x))


class ClassAttn(nn.Module):
    """CaiT/XCiT class attention: the query is the class token only."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.q = nn.Linear(dim, dim, bias=False)
        self.k = nn.Linear(dim, dim, bias=False)
        self.v = nn.Linear(dim, dim, bias=False)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, N, C = x.shape
        q = self.q(x[:, 0]).unsqueeze(1).reshape(B, 1, self.num_heads, C // self.num_heads).permute(0, 2, 1, 3)
        k = self.k(x).reshape(B, N, self.num_heads, C // self.num_heads).permute(0, 2, 1, 3)
        v = self.v(x).reshape(B, N, self.num_heads, C // self.num_heads).permute(0, 2, 1, 3)
        q = q * self.scale
        attn = (q @ k.transpose(-2, -1)).softmax(dim=-1)
        x_cls = (attn @ v).transpose(1, 2).reshape(B, 1, C)
        return self.proj(x_cls)


class ClassAttentionBlock(nn.Module):
    """XCiT's class-attention block: attention updates the class token, the patch tokens pass normalized."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = ClassAttn(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, 4 * dim)
        self.gamma1 = nn.Parameter(torch.full((dim,), 0.5))
        self.gamma2 = nn.Parameter(torch.full((dim,), 0.5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x_norm1 = self.norm1(x)
        x_attn = torch.cat([self.attn(x_norm1), x_norm1[:, 1:]], dim=1)
        x = x + self.gamma1 * x_attn
        x = torch.cat([self.norm2(x[:, 0:1]), x[:, 1:]], dim=1)
        x_res = x
        cls_token = self.gamma2 * self.mlp(x[:, 0:1])
        x = torch.cat([cls_token, x[:, 1:]], dim=1)
        return x_res + x


class XCiT(nn.Module):
    def __init__(self, dim: int = 16, heads: int = 2) -> None:
        super().__init__()
        self.patch_embed = nn.Sequential(cbr(3, dim // 2, stride=2, act=nn.GELU), nn.Conv2d(dim // 2, dim, 3, 2, 1),
                                         nn.BatchNorm2d(dim))
        self.pos_proj = nn.Conv2d(8, dim, 1)  # Fourier position features projected to the embedding width
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        self.blocks = nn.ModuleList([XCABlock(dim, heads), XCABlock(dim, heads)])
        self.cls_attn_blocks = nn.ModuleList([ClassAttentionBlock(dim, heads)])
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, 5)

    def pos_embed(self, B: int, H: int, W: int) -> torch.Tensor:
        ys = torch.linspace(0, math.pi, H).view(1, H, 1).expand(4, H, W) * torch.arange(1, 5).view(4, 1, 1)
        xs = torch.linspace(0, math.pi, W).view(1, 1, W).expand(4, H, W) * torch.arange(1, 5).view(4, 1, 1)
        pos = torch.cat([ys.sin(), xs.cos()], 0).unsqueeze(0)  # (1, 8, H, W)
        return self.pos_proj(pos.to(self.pos_proj.weight.dtype)).repeat(B, 1, 1, 1)  # (B, C, H, W)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B = x.shape[0]
        x = self.patch_embed(x)
        Hp, Wp = x.shape[2], x.shape[3]
        x = x.flatten(2).transpose(1, 2)  # (B, N, C)
        x = x + self.pos_embed(B, Hp, Wp).reshape(B, -1, x.shape[1]).permute(0, 2, 1)
        for blk in self.blocks:
            x = blk(x, Hp, Wp)
        x = torch.cat((self.cls_token.expand(B, -1, -1), x), dim=1)
        for blk in self.cls_attn_blocks:
            x = blk(x)
        return self.head(self.norm(x)[:, 0])


@register_arch("xcit")
def xcit() -> tuple[nn.Module, tuple]:
    """XCiT: cross-covariance attention (softmax over channels), local patch interaction, class attention."""
    return XCiT(), (torch.randn(2, 3, 8, 8),)


# ------------------------------------------------------------------------------ CaiT (timm models/cait)


class TalkingHeadAttn(nn.Module):
    """Attention whose scores are mixed across heads by Linears before and after the softmax."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)
        self.proj_l = nn.Linear(num_heads, num_heads)
        self.proj_w = nn.Linear(num_heads, num_heads)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, C // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0] * self.scale, qkv[1], qkv[2]
        attn = q @ k.transpose(-2, -1)
        attn = self.proj_l(attn.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        attn = attn.softmax(dim=-1)
        attn = self.proj_w(attn.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        x = (attn @ v).transpose(1, 2).reshape(B, N, C)
        return self.proj(x)


class LayerScaleBlock(nn.Module):
    def __init__(self, dim: int, num_heads: int, attn: type) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = attn(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, 4 * dim)
        self.gamma_1 = nn.Parameter(torch.full((dim,), 0.5))
        self.gamma_2 = nn.Parameter(torch.full((dim,), 0.5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.gamma_1 * self.attn(self.norm1(x))
        return x + self.gamma_2 * self.mlp(self.norm2(x))


class LayerScaleBlockClassAttn(LayerScaleBlock):
    def forward(self, x: torch.Tensor, x_cls: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        u = torch.cat((x_cls, x), dim=1)
        x_cls = x_cls + self.gamma_1 * self.attn(self.norm1(u))
        return x_cls + self.gamma_2 * self.mlp(self.norm2(x_cls))


class CaiT(nn.Module):
    def __init__(self, dim: int = 16, heads: int = 2) -> None:
        super().__init__()
        self.patch_embed = nn.Conv2d(3, dim, 2, 2)
        self.pos_embed = nn.Parameter(torch.randn(1, 16, dim) * 0.02)
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        self.blocks = nn.Sequential(*[LayerScaleBlock(dim, heads, TalkingHeadAttn) for _ in range(2)])
        self.blocks_token_only = nn.ModuleList([LayerScaleBlockClassAttn(dim, heads, ClassAttn)])
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x).flatten(2).transpose(1, 2)  # (B, N, C)
        x = self.blocks(x + self.pos_embed)
        cls_tokens = self.cls_token.expand(x.shape[0], -1, -1)
        for blk in self.blocks_token_only:
            cls_tokens = blk(x, cls_tokens)
        x = self.norm(torch.cat((cls_tokens, x), dim=1))
        return self.head(x[:, 0])


@register_arch("cait")
def cait() -> tuple[nn.Module, tuple]:
    """CaiT: talking-heads attention (Linears across heads), layer scales, class attention on a late class token."""
    return CaiT(), (torch.randn(2, 3, 8, 8),)


# ------------------------------------------------------------------------------ ViT (timm layers/attention + models/vision_transformer)


class TimmAttention(nn.Module):
    """timm's ``Attention``: head width and attention width kept as int attributes, fused SDPA."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.attn_dim = num_heads * self.head_dim
        self.qkv = nn.Linear(dim, self.attn_dim * 3)
        self.q_norm = nn.Identity()
        self.k_norm = nn.Identity()
        self.proj = nn.Linear(self.attn_dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        q, k = self.q_norm(q), self.k_norm(k)
        x = F.scaled_dot_product_attention(q, k, v)
        x = x.transpose(1, 2).reshape(B, N, self.attn_dim)
        return self.proj(x)


class LayerScale(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), 0.5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


class TimmBlock(nn.Module):
    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = TimmAttention(dim, num_heads)
        self.ls1 = LayerScale(dim)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, 4 * dim)
        self.ls2 = LayerScale(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.ls1(self.attn(self.norm1(x)))
        return x + self.ls2(self.mlp(self.norm2(x)))


class TimmViT(nn.Module):
    def __init__(self, dim: int = 16, heads: int = 2) -> None:
        super().__init__()
        self.patch_embed = nn.Conv2d(3, dim, 4, 4)
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        self.pos_embed = nn.Parameter(torch.randn(1, 5, dim) * 0.02)
        self.blocks = nn.Sequential(TimmBlock(dim, heads), TimmBlock(dim, heads))
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.head = nn.Linear(dim, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x).flatten(2).transpose(1, 2)  # (B, N, C)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        x = x + self.pos_embed
        x = self.norm(self.blocks(x))
        return self.head(x[:, 0])


@register_arch("timm_vit")
def timm_vit() -> tuple[nn.Module, tuple]:
    """timm's ViT: ``reshape(B, N, 3, self.num_heads, self.head_dim)``, ``reshape(B, N, self.attn_dim)``, SDPA."""
    return TimmViT(), (torch.randn(2, 3, 8, 8),)


# ------------------------------------------------------------------------------ ViT (torchvision models/vision_transformer)


class EncoderBlock(nn.Module):
    def __init__(self, num_heads: int, hidden_dim: int, mlp_dim: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.ln_1 = nn.LayerNorm(hidden_dim, eps=1e-6)
        self.self_attention = nn.MultiheadAttention(hidden_dim, num_heads, batch_first=True)
        self.dropout = nn.Dropout(0.0)
        self.ln_2 = nn.LayerNorm(hidden_dim, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(hidden_dim, mlp_dim), nn.GELU(), nn.Dropout(0.0),
                                 nn.Linear(mlp_dim, hidden_dim), nn.Dropout(0.0))

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        torch._assert(input.dim() == 3, f"Expected (batch_size, seq_length, hidden_dim) got {input.shape}")
        x = self.ln_1(input)
        x, _ = self.self_attention(query=x, key=x, value=x, need_weights=False)
        x = self.dropout(x) + input
        return x + self.mlp(self.ln_2(x))


class Encoder(nn.Module):
    def __init__(self, seq_length: int, num_layers: int, num_heads: int, hidden_dim: int, mlp_dim: int) -> None:
        super().__init__()
        self.pos_embedding = nn.Parameter(torch.empty(1, seq_length, hidden_dim).normal_(std=0.02))
        self.dropout = nn.Dropout(0.0)
        self.layers = nn.Sequential(*[EncoderBlock(num_heads, hidden_dim, mlp_dim) for _ in range(num_layers)])
        self.ln = nn.LayerNorm(hidden_dim, eps=1e-6)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        torch._assert(input.dim() == 3, f"Expected (batch_size, seq_length, hidden_dim) got {input.shape}")
        input = input + self.pos_embedding
        return self.ln(self.layers(self.dropout(input)))


class VisionTransformer(nn.Module):
    def __init__(self, image_size: int = 8, patch_size: int = 4, hidden_dim: int = 32, mlp_dim: int = 64) -> None:
        super().__init__()
        self.image_size = image_size
        self.patch_size = patch_size
        self.hidden_dim = hidden_dim
        self.mlp_dim = mlp_dim
        self.num_classes = 5
        self.conv_proj = nn.Conv2d(3, hidden_dim, kernel_size=patch_size, stride=patch_size)
        seq_length = (image_size // patch_size) ** 2 + 1
        self.class_token = nn.Parameter(torch.randn(1, 1, hidden_dim) * 0.02)
        self.encoder = Encoder(seq_length, 2, 4, hidden_dim, mlp_dim)
        self.seq_length = seq_length
        self.heads = nn.Sequential()
        self.heads.add_module("head", nn.Linear(hidden_dim, self.num_classes))

    def _process_input(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        p = self.patch_size
        torch._assert(h == self.image_size, f"Wrong image height! Expected {self.image_size} but got {h}!")
        n_h, n_w = h // p, w // p
        x = self.conv_proj(x)
        x = x.reshape(n, self.hidden_dim, n_h * n_w)
        return x.permute(0, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self._process_input(x)
        n = x.shape[0]
        batch_class_token = self.class_token.expand(n, -1, -1)
        x = torch.cat([batch_class_token, x], dim=1)
        x = self.encoder(x)
        return self.heads(x[:, 0])


@register_arch("torchvision_vit")
def torchvision_vit() -> tuple[nn.Module, tuple]:
    """torchvision's ViT: ``nn.MultiheadAttention`` blocks, ``reshape(n, self.hidden_dim, ...)``, class token."""
    return VisionTransformer(), (torch.randn(2, 3, 8, 8),)


# ------------------------------------------------------------------------------ Swin (timm models/swin_transformer)


def window_partition(x: torch.Tensor, window_size: tuple[int, int]) -> torch.Tensor:
    B, H, W, C = x.shape
    x = x.view(B, H // window_size[0], window_size[0], W // window_size[1], window_size[1], C)
    return x.permute(0, 1, 3, 2, 4, 5).contiguous().view(-1, window_size[0], window_size[1], C)


def window_reverse(windows: torch.Tensor, window_size: tuple[int, int], H: int, W: int) -> torch.Tensor:
    C = windows.shape[-1]
    x = windows.view(-1, H // window_size[0], W // window_size[1], window_size[0], window_size[1], C)
    return x.permute(0, 1, 3, 2, 4, 5).contiguous().view(-1, H, W, C)


def relative_position_index(win_h: int, win_w: int) -> torch.Tensor:
    coords = torch.stack(torch.meshgrid(torch.arange(win_h), torch.arange(win_w), indexing="ij")).flatten(1)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0).contiguous()  # (Wh*Ww, Wh*Ww, 2)
    rel[:, :, 0] += win_h - 1
    rel[:, :, 1] += win_w - 1
    rel[:, :, 0] *= 2 * win_w - 1
    return rel.sum(-1)


class WindowAttention(nn.Module):
    """Attention inside windows with a relative position bias table ``(num_rel, heads)`` indexed by a buffer."""

    def __init__(self, dim: int, num_heads: int, window_size: tuple[int, int]) -> None:
        super().__init__()
        self.window_size = window_size
        self.window_area = window_size[0] * window_size[1]
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        num_rel = (2 * window_size[0] - 1) * (2 * window_size[1] - 1)
        self.relative_position_bias_table = nn.Parameter(torch.randn(num_rel, num_heads) * 0.02)
        self.register_buffer("relative_position_index", relative_position_index(*window_size), persistent=False)
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)
        self.softmax = nn.Softmax(dim=-1)

    def _get_rel_pos_bias(self) -> torch.Tensor:
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)].view(
            self.window_area, self.window_area, -1)  # (Wh*Ww, Wh*Ww, heads)
        return bias.permute(2, 0, 1).contiguous().unsqueeze(0)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        B_, N, C = x.shape
        qkv = self.qkv(x).reshape(B_, N, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        attn = (q * self.scale) @ k.transpose(-2, -1)
        attn = attn + self._get_rel_pos_bias()
        if mask is not None:
            num_win = mask.shape[0]
            attn = attn.view(-1, num_win, self.num_heads, N, N) + mask.unsqueeze(1).unsqueeze(0)
            attn = attn.view(-1, self.num_heads, N, N)
        x = self.softmax(attn) @ v
        x = x.transpose(1, 2).reshape(B_, N, -1)
        return self.proj(x)


class SwinBlock(nn.Module):
    def __init__(self, dim: int, num_heads: int, resolution: int, window: int, shift: int) -> None:
        super().__init__()
        self.window_size = (window, window)
        self.shift_size = (shift, shift)
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, num_heads, self.window_size)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, 4 * dim)
        mask = None
        if shift:
            img = torch.zeros(1, resolution, resolution, 1)
            cnt = 0
            for h in (slice(0, -window), slice(-window, -shift), slice(-shift, None)):
                for w in (slice(0, -window), slice(-window, -shift), slice(-shift, None)):
                    img[:, h, w, :] = cnt
                    cnt += 1
            windows = window_partition(img, self.window_size).view(-1, window * window)
            mask = windows.unsqueeze(1) - windows.unsqueeze(2)
            mask = mask.masked_fill(mask != 0, -100.0)
        self.register_buffer("attn_mask", mask, persistent=False)

    def _attn(self, x: torch.Tensor) -> torch.Tensor:
        B, H, W, C = x.shape
        has_shift = any(self.shift_size)
        shifted_x = torch.roll(x, shifts=(-self.shift_size[0], -self.shift_size[1]), dims=(1, 2)) if has_shift else x
        x_windows = window_partition(shifted_x, self.window_size).view(-1, self.window_size[0] * self.window_size[1], C)
        attn_windows = self.attn(x_windows, mask=self.attn_mask)
        attn_windows = attn_windows.view(-1, self.window_size[0], self.window_size[1], C)
        shifted_x = window_reverse(attn_windows, self.window_size, H, W)
        return torch.roll(shifted_x, shifts=self.shift_size, dims=(1, 2)) if has_shift else shifted_x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, H, W, C = x.shape
        x = x + self._attn(self.norm1(x))
        x = x.reshape(B, -1, C)
        x = x + self.mlp(self.norm2(x))
        return x.reshape(B, H, W, C)


class PatchMerging(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(4 * dim)
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, H, W, C = x.shape
        x = x.reshape(B, H // 2, 2, W // 2, 2, C).permute(0, 1, 3, 4, 2, 5).flatten(3)
        return self.reduction(self.norm(x))


class Swin(nn.Module):
    def __init__(self, dim: int = 12) -> None:
        super().__init__()
        self.patch_embed = nn.Conv2d(3, dim, 2, 2)
        self.patch_norm = nn.LayerNorm(dim)
        self.stage1 = nn.Sequential(SwinBlock(dim, 3, 4, 2, 0), SwinBlock(dim, 3, 4, 2, 1))
        self.merge = PatchMerging(dim)
        self.stage2 = nn.Sequential(SwinBlock(2 * dim, 6, 2, 2, 0))
        self.norm = nn.LayerNorm(2 * dim)
        self.head = nn.Linear(2 * dim, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_norm(self.patch_embed(x).permute(0, 2, 3, 1))  # (B, H, W, C)
        x = self.stage2(self.merge(self.stage1(x)))
        return self.head(self.norm(x).mean((1, 2)))


@register_arch("swin")
def swin() -> tuple[nn.Module, tuple]:
    """timm's Swin: shifted windows (roll, partition/reverse views), relative position bias, patch merging."""
    return Swin(), (torch.randn(2, 3, 8, 8),)


# ------------------------------------------------------------------------------ Swin (torchvision models/swin_transformer)


def shifted_window_attention(input: torch.Tensor, qkv_weight: torch.Tensor, proj_weight: torch.Tensor,
                             relative_position_bias: torch.Tensor, window_size: list[int], num_heads: int,
                             shift_size: list[int], qkv_bias: torch.Tensor | None = None,
                             proj_bias: torch.Tensor | None = None,
                             logit_scale: torch.Tensor | None = None) -> torch.Tensor:
    """torchvision's functional window attention: the head width is ``C // num_heads`` of the input width; V2
    (``logit_scale``) zeroes the key bias in a copy and takes cosine attention."""
    B, H, W, C = input.shape
    pad_r = (window_size[1] - W % window_size[1]) % window_size[1]
    pad_b = (window_size[0] - H % window_size[0]) % window_size[0]
    x = F.pad(input, (0, 0, 0, pad_r, 0, pad_b))
    _, pad_H, pad_W, _ = x.shape
    shift_size = shift_size.copy()
    if window_size[0] >= pad_H:
        shift_size[0] = 0
    if window_size[1] >= pad_W:
        shift_size[1] = 0
    if sum(shift_size) > 0:
        x = torch.roll(x, shifts=(-shift_size[0], -shift_size[1]), dims=(1, 2))
    num_windows = (pad_H // window_size[0]) * (pad_W // window_size[1])
    x = x.view(B, pad_H // window_size[0], window_size[0], pad_W // window_size[1], window_size[1], C)
    x = x.permute(0, 1, 3, 2, 4, 5).reshape(B * num_windows, window_size[0] * window_size[1], C)
    if logit_scale is not None and qkv_bias is not None:
        qkv_bias = qkv_bias.clone()
        length = qkv_bias.numel() // 3
        qkv_bias[length : 2 * length].zero_()
    qkv = F.linear(x, qkv_weight, qkv_bias)
    qkv = qkv.reshape(x.size(0), x.size(1), 3, num_heads, C // num_heads).permute(2, 0, 3, 1, 4)
    q, k, v = qkv[0], qkv[1], qkv[2]
    if logit_scale is not None:
        attn = F.normalize(q, dim=-1) @ F.normalize(k, dim=-1).transpose(-2, -1)
        attn = attn * torch.clamp(logit_scale, max=math.log(100.0)).exp()
    else:
        q = q * (C // num_heads) ** -0.5
        attn = q.matmul(k.transpose(-2, -1))
    attn = attn + relative_position_bias
    attn = F.softmax(attn, dim=-1)
    x = attn.matmul(v).transpose(1, 2).reshape(x.size(0), x.size(1), C)
    x = F.linear(x, proj_weight, proj_bias)
    x = x.view(B, pad_H // window_size[0], pad_W // window_size[1], window_size[0], window_size[1], C)
    x = x.permute(0, 1, 3, 2, 4, 5).reshape(B, pad_H, pad_W, C)
    if sum(shift_size) > 0:
        x = torch.roll(x, shifts=(shift_size[0], shift_size[1]), dims=(1, 2))
    return x[:, :H, :W, :].contiguous()


class ShiftedWindowAttention(nn.Module):
    def __init__(self, dim: int, window_size: list[int], shift_size: list[int], num_heads: int) -> None:
        super().__init__()
        self.window_size = window_size
        self.shift_size = shift_size
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)
        num_rel = (2 * window_size[0] - 1) * (2 * window_size[1] - 1)
        self.relative_position_bias_table = nn.Parameter(torch.randn(num_rel, num_heads) * 0.02)
        self.register_buffer("relative_position_index", relative_position_index(*window_size).flatten())

    def get_relative_position_bias(self) -> torch.Tensor:
        N = self.window_size[0] * self.window_size[1]
        bias = self.relative_position_bias_table[self.relative_position_index].view(N, N, -1)
        return bias.permute(2, 0, 1).contiguous().unsqueeze(0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return shifted_window_attention(x, self.qkv.weight, self.proj.weight, self.get_relative_position_bias(),
                                        self.window_size, self.num_heads, shift_size=self.shift_size,
                                        qkv_bias=self.qkv.bias, proj_bias=self.proj.bias)


class ShiftedWindowAttentionV2(ShiftedWindowAttention):
    """Swin V2: the bias table comes from a small MLP over log-spaced relative coordinates; cosine attention with a
    learnt per-head logit scale."""

    def __init__(self, dim: int, window_size: list[int], shift_size: list[int], num_heads: int) -> None:
        super().__init__(dim, window_size, shift_size, num_heads)
        del self.relative_position_bias_table
        self.logit_scale = nn.Parameter(torch.log(10 * torch.ones((num_heads, 1, 1))))
        self.cpb_mlp = nn.Sequential(nn.Linear(2, 32), nn.ReLU(inplace=True), nn.Linear(32, num_heads, bias=False))
        h = torch.arange(-(window_size[0] - 1), window_size[0], dtype=torch.float32)
        w = torch.arange(-(window_size[1] - 1), window_size[1], dtype=torch.float32)
        table = torch.stack(torch.meshgrid([h, w], indexing="ij")).permute(1, 2, 0).contiguous().unsqueeze(0)
        table = table / torch.tensor([window_size[0] - 1, window_size[1] - 1]) * 8
        self.register_buffer("relative_coords_table", torch.sign(table) * torch.log2(table.abs() + 1.0) / 3.0)

    def get_relative_position_bias(self) -> torch.Tensor:
        N = self.window_size[0] * self.window_size[1]
        table = self.cpb_mlp(self.relative_coords_table).view(-1, self.num_heads)
        bias = table[self.relative_position_index].view(N, N, -1).permute(2, 0, 1).contiguous().unsqueeze(0)
        return 16 * torch.sigmoid(bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return shifted_window_attention(x, self.qkv.weight, self.proj.weight, self.get_relative_position_bias(),
                                        self.window_size, self.num_heads, shift_size=self.shift_size,
                                        qkv_bias=self.qkv.bias, proj_bias=self.proj.bias,
                                        logit_scale=self.logit_scale)


class SwinTransformerBlock(nn.Module):
    def __init__(self, dim: int, num_heads: int, shift: int, v2: bool = False) -> None:
        super().__init__()
        self.v2 = v2
        self.norm1 = nn.LayerNorm(dim, eps=1e-5)
        self.attn = (ShiftedWindowAttentionV2 if v2 else ShiftedWindowAttention)(dim, [2, 2], [shift, shift], num_heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-5)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Dropout(0.0), nn.Linear(4 * dim, dim),
                                 nn.Dropout(0.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.v2:  # res-post-norm
            x = x + self.norm1(self.attn(x))
            return x + self.norm2(self.mlp(x))
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class TVPatchMerging(nn.Module):
    def __init__(self, dim: int, v2: bool = False) -> None:
        super().__init__()
        self.v2 = v2
        self.dim = dim
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)
        self.norm = nn.LayerNorm(2 * dim if v2 else 4 * dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        H, W, _ = x.shape[-3:]
        x = F.pad(x, (0, 0, 0, W % 2, 0, H % 2))
        x0 = x[..., 0::2, 0::2, :]
        x1 = x[..., 1::2, 0::2, :]
        x2 = x[..., 0::2, 1::2, :]
        x3 = x[..., 1::2, 1::2, :]
        x = torch.cat([x0, x1, x2, x3], -1)  # (..., H/2, W/2, 4C)
        return self.norm(self.reduction(x)) if self.v2 else self.reduction(self.norm(x))


class Permute(nn.Module):
    def __init__(self, dims: list[int]) -> None:
        super().__init__()
        self.dims = dims

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.permute(x, self.dims)


class SwinTransformer(nn.Module):
    def __init__(self, dim: int = 12, v2: bool = False) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Sequential(nn.Conv2d(3, dim, 2, 2), Permute([0, 2, 3, 1]), nn.LayerNorm(dim)),
            nn.Sequential(SwinTransformerBlock(dim, 3, 0, v2), SwinTransformerBlock(dim, 3, 1, v2)),
            TVPatchMerging(dim, v2),
            nn.Sequential(SwinTransformerBlock(2 * dim, 6, 0, v2)),
        )
        self.norm = nn.LayerNorm(2 * dim)
        self.permute = Permute([0, 3, 1, 2])
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten(1)
        self.head = nn.Linear(2 * dim, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.permute(self.norm(self.features(x)))
        return self.head(self.flatten(self.avgpool(x)))


@register_arch("torchvision_swin")
def torchvision_swin() -> tuple[nn.Module, tuple]:
    """torchvision's Swin: functional attention on ``F.linear`` with the module's weights, ``C // num_heads``."""
    return SwinTransformer(), (torch.randn(2, 3, 8, 8),)


@register_arch("torchvision_swin_v2")
def torchvision_swin_v2() -> tuple[nn.Module, tuple]:
    """torchvision's Swin V2: a copy of the qkv bias with its key third zeroed in place, cosine attention with a
    per-head logit scale, an MLP-made bias table, res-post-norm."""
    return SwinTransformer(v2=True), (torch.randn(2, 3, 8, 8),)


# ------------------------------------------------------------------------------ CSPDarkNet (timm models/cspnet)


class DarkBlock(nn.Module):
    def __init__(self, c: int, mid: int) -> None:
        super().__init__()
        self.conv1 = cbr(c, mid, 1, act=nn.LeakyReLU)
        self.conv2 = cbr(mid, c, 3, act=nn.LeakyReLU)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.conv1(x)) + x


class CrossStage(nn.Module):
    """Cross-stage partial: the expanded features are split in two halves by a width kept as an attribute."""

    def __init__(self, in_chs: int, out_chs: int) -> None:
        super().__init__()
        self.expand_chs = exp_chs = out_chs
        self.conv_down = cbr(in_chs, out_chs, 3, stride=2, act=nn.LeakyReLU)
        self.conv_exp = cbr(out_chs, exp_chs, 1, act=nn.LeakyReLU)
        prev_chs = exp_chs // 2
        self.blocks = nn.Sequential(DarkBlock(prev_chs, prev_chs), DarkBlock(prev_chs, prev_chs))
        self.conv_transition_b = cbr(prev_chs, exp_chs // 2, 1, act=nn.LeakyReLU)
        self.conv_transition = cbr(exp_chs, out_chs, 1, act=nn.LeakyReLU)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv_exp(self.conv_down(x))
        xs, xb = x.split(self.expand_chs // 2, dim=1)
        xb = self.conv_transition_b(self.blocks(xb)).contiguous()
        return self.conv_transition(torch.cat([xs, xb], dim=1))


@register_arch("cspdarknet")
def cspdarknet() -> tuple[nn.Module, tuple]:
    """CSPDarkNet stages: ``x.split(self.expand_chs // 2, dim=1)``, dark residual blocks, concat transition."""
    model = nn.Sequential(cbr(3, 8, act=nn.LeakyReLU), CrossStage(8, 16), CrossStage(16, 24),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(24, 5))
    return model, (torch.randn(2, 3, 8, 8),)


# ------------------------------------------------------------------------------ anti-aliased ResNet (timm layers/blur_pool)


class BlurPool2d(nn.Module):
    """A fixed binomial blur per channel, stride 2: ``F.conv2d(x, self.filt, groups=self.channels)``."""

    def __init__(self, channels: int | None = None, filt_size: int = 3, stride: int = 2) -> None:
        super().__init__()
        self.channels = channels
        self.filt_size = filt_size
        self.stride = stride
        self.padding = [1] * 4
        coeffs = torch.tensor([math.comb(filt_size - 1, k) for k in range(filt_size)], dtype=torch.float32)
        coeffs = coeffs / 2 ** (filt_size - 1)
        blur = (coeffs[:, None] * coeffs[None, :])[None, None, :, :]
        if channels is not None:
            blur = blur.repeat(channels, 1, 1, 1)
        self.register_buffer("filt", blur, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, self.padding, mode="reflect")
        if self.channels is None:
            channels = x.shape[1]
            weight = self.filt.expand(channels, 1, self.filt_size, self.filt_size)
        else:
            channels = self.channels
            weight = self.filt
        return F.conv2d(x, weight, stride=self.stride, groups=channels)


class BlurBasic(nn.Module):
    """timm ResNet basic block with ``aa_layer``: the strided conv becomes conv (stride 1) + blur pool."""

    def __init__(self, cin: int, cout: int, fixed_channels: bool) -> None:
        super().__init__()
        self.conv1 = cbr(cin, cout, 3)
        self.aa = BlurPool2d(cout if fixed_channels else None)
        self.conv2 = nn.Sequential(nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout))
        self.downsample = nn.Sequential(nn.AvgPool2d(2, 2), nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.conv2(self.aa(self.conv1(x))) + self.downsample(x))


@register_arch("blurpool_resnet")
def blurpool_resnet() -> tuple[nn.Module, tuple]:
    """Anti-aliased residual blocks: a per-channel blur buffer, ``groups=self.channels`` (timm passes ``channels``;
    the ``channels=None`` form, one filter expanded to ``x.shape[1]``, does not export to ONNX: see the tests)."""
    model = nn.Sequential(cbr(3, 8), BlurBasic(8, 12, fixed_channels=True), BlurBasic(12, 16, fixed_channels=True),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 5))
    return model, (torch.randn(2, 3, 16, 16),)


# ------------------------------------------------------------------------------ EfficientNet (timm models/_efficientnet_blocks)


class SqueezeExcite(nn.Module):
    def __init__(self, in_chs: int, rd_channels: int) -> None:
        super().__init__()
        self.conv_reduce = nn.Conv2d(in_chs, rd_channels, 1, bias=True)
        self.act1 = nn.SiLU(inplace=True)
        self.conv_expand = nn.Conv2d(rd_channels, in_chs, 1, bias=True)
        self.gate = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x_se = x.mean((2, 3), keepdim=True)
        x_se = self.conv_expand(self.act1(self.conv_reduce(x_se)))
        return x * self.gate(x_se)


class InvertedResidual(nn.Module):
    def __init__(self, in_chs: int, out_chs: int, exp: int, stride: int) -> None:
        super().__init__()
        mid = in_chs * exp
        self.has_skip = stride == 1 and in_chs == out_chs
        self.conv_pw = cbr(in_chs, mid, 1, act=nn.SiLU) if exp > 1 else nn.Identity()
        self.conv_dw = cbr(mid, mid, 3, stride, groups=mid, act=nn.SiLU)
        self.se = SqueezeExcite(mid, max(1, in_chs // 4))  # rd from the block's input width, as timm does
        self.conv_pwl = nn.Sequential(nn.Conv2d(mid, out_chs, 1, bias=False), nn.BatchNorm2d(out_chs))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        x = self.conv_pwl(self.se(self.conv_dw(self.conv_pw(x))))
        return x + shortcut if self.has_skip else x


class EfficientNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv_stem = cbr(3, 8, 3, stride=2, act=nn.SiLU)
        self.blocks = nn.Sequential(InvertedResidual(8, 8, 1, 1), InvertedResidual(8, 12, 4, 2),
                                    InvertedResidual(12, 12, 4, 1))
        self.conv_head = cbr(12, 32, 1, act=nn.SiLU)
        self.classifier = nn.Linear(32, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv_head(self.blocks(self.conv_stem(x)))
        return self.classifier(x.mean((2, 3)))


@register_arch("efficientnet")
def efficientnet() -> tuple[nn.Module, tuple]:
    """EfficientNet: depthwise-separable and inverted-residual blocks, SiLU, SE on ``x.mean((2, 3), keepdim=True)``."""
    return EfficientNet(), (torch.randn(2, 3, 16, 16),)


# ------------------------------------------------------------------------------ ConvNeXt (timm models/convnext)


class LayerNorm2d(nn.LayerNorm):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


class GlobalResponseNorm(nn.Module):
    """ConvNeXt-V2's GRN (channels last): a per-channel response normalized by its mean over channels."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.full((dim,), 0.1))
        self.bias = nn.Parameter(torch.full((dim,), 0.1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x_g = x.norm(p=2, dim=(1, 2), keepdim=True)
        x_n = x_g / (x_g.mean(dim=-1, keepdim=True) + 1e-6)
        return x + torch.addcmul(self.bias, self.weight, x * x_n)


class ConvNeXtBlock(nn.Module):
    def __init__(self, dim: int, grn: bool) -> None:
        super().__init__()
        self.conv_dw = nn.Conv2d(dim, dim, 7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.fc1 = nn.Linear(dim, 4 * dim)
        self.act = nn.GELU()
        self.grn = GlobalResponseNorm(4 * dim) if grn else nn.Identity()
        self.fc2 = nn.Linear(4 * dim, dim)
        self.gamma = nn.Parameter(torch.full((dim,), 0.5)) if not grn else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        x = self.conv_dw(x)
        x = x.permute(0, 2, 3, 1)
        x = self.fc2(self.grn(self.act(self.fc1(self.norm(x)))))
        x = x.permute(0, 3, 1, 2)
        if self.gamma is not None:
            x = x.mul(self.gamma.reshape(1, -1, 1, 1))
        return x + shortcut


class ConvNeXt(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 2, 2), LayerNorm2d(8, eps=1e-6))
        self.stage1 = ConvNeXtBlock(8, grn=False)
        self.downsample = nn.Sequential(LayerNorm2d(8, eps=1e-6), nn.Conv2d(8, 16, 2, 2))
        self.stage2 = ConvNeXtBlock(16, grn=True)
        self.head_norm = LayerNorm2d(16, eps=1e-6)
        self.fc = nn.Linear(16, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stage2(self.downsample(self.stage1(self.stem(x))))
        x = self.head_norm(F.adaptive_avg_pool2d(x, 1))
        return self.fc(x.flatten(1))


@register_arch("convnext_timm")
def convnext_timm() -> tuple[nn.Module, tuple]:
    """timm's ConvNeXt: LayerNorm2d (permute + F.layer_norm), ``gamma.reshape(1, -1, 1, 1)`` after the permute back,
    a ConvNeXt-V2 block with global response norm, norm-then-pool head."""
    return ConvNeXt(), (torch.randn(2, 3, 8, 8),)


# ------------------------------------------------------------------------------ RegNet (timm models/regnet)


class SEModule(nn.Module):
    def __init__(self, channels: int, rd_channels: int) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(channels, rd_channels, 1, bias=True)
        self.bn = nn.Identity()
        self.act = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(rd_channels, channels, 1, bias=True)
        self.gate = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x_se = x.mean((2, 3), keepdim=True)
        x_se = self.fc2(self.act(self.bn(self.fc1(x_se))))
        return x * self.gate(x_se)


class RegBottleneck(nn.Module):
    """RegNetY block: 1x1, grouped 3x3 with a fixed group width (``groups = bottleneck // group_size``), SE, 1x1."""

    def __init__(self, in_chs: int, out_chs: int, stride: int, group_size: int = 4) -> None:
        super().__init__()
        groups = out_chs // group_size
        self.conv1 = cbr(in_chs, out_chs, 1)
        self.conv2 = cbr(out_chs, out_chs, 3, stride, groups=groups)
        self.attn = SEModule(out_chs, max(1, in_chs // 4))
        self.conv3 = nn.Sequential(nn.Conv2d(out_chs, out_chs, 1, bias=False), nn.BatchNorm2d(out_chs))
        self.downsample = (nn.Sequential(nn.Conv2d(in_chs, out_chs, 1, stride, bias=False), nn.BatchNorm2d(out_chs))
                           if stride != 1 or in_chs != out_chs else nn.Identity())
        self.act3 = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        x = self.conv3(self.attn(self.conv2(self.conv1(x))))
        return self.act3(x + self.downsample(shortcut))


@register_arch("regnet")
def regnet() -> tuple[nn.Module, tuple]:
    """RegNetY: grouped convs of a fixed group width, SE reduced from the block input, projection shortcuts."""
    model = nn.Sequential(cbr(3, 8, stride=2), RegBottleneck(8, 16, 2), RegBottleneck(16, 16, 1),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 5))
    return model, (torch.randn(2, 3, 16, 16),)


# ------------------------------------------------------------------------------ Res2Net (timm models/res2net)


class Bottle2neck(nn.Module):
    """Hierarchical residual-like bottleneck: ``torch.split(out, self.width, 1)`` into ``scale`` parts, each conv
    fed by the previous one's output plus the next part."""

    def __init__(self, inplanes: int, planes: int, stride: int = 1, scale: int = 4) -> None:
        super().__init__()
        self.scale = scale
        self.is_first = stride > 1 or inplanes != planes * 2
        self.num_scales = max(1, scale - 1)
        self.width = width = planes // 2
        self.conv1 = nn.Conv2d(inplanes, width * scale, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width * scale)
        self.convs = nn.ModuleList(nn.Conv2d(width, width, 3, stride, 1, bias=False) for _ in range(self.num_scales))
        self.bns = nn.ModuleList(nn.BatchNorm2d(width) for _ in range(self.num_scales))
        self.pool = nn.AvgPool2d(3, stride, 1) if self.is_first else None
        self.conv3 = nn.Conv2d(width * scale, planes * 2, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 2)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = (nn.Sequential(nn.Conv2d(inplanes, planes * 2, 1, stride, bias=False),
                                         nn.BatchNorm2d(planes * 2)) if self.is_first else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        out = self.relu(self.bn1(self.conv1(x)))
        spx = torch.split(out, self.width, 1)
        spo = []
        sp = spx[0]
        for i, (conv, bn) in enumerate(zip(self.convs, self.bns)):
            sp = spx[i] if i == 0 or self.is_first else sp + spx[i]
            sp = self.relu(bn(conv(sp)))
            spo.append(sp)
        spo.append(self.pool(spx[-1]) if self.pool is not None else spx[-1])
        out = self.bn3(self.conv3(torch.cat(spo, 1)))
        if self.downsample is not None:
            shortcut = self.downsample(x)
        return self.relu(out + shortcut)


@register_arch("res2net")
def res2net() -> tuple[nn.Module, tuple]:
    """Res2Net: a split by an attribute width into four parts, chained 3x3 convs, concat."""
    model = nn.Sequential(cbr(3, 8), Bottle2neck(8, 8, 2), Bottle2neck(16, 8), nn.AdaptiveAvgPool2d(1),
                          nn.Flatten(), nn.Linear(16, 5))
    return model, (torch.randn(2, 3, 8, 8),)


# ------------------------------------------------------------------------------ MixNet (timm layers/mixed_conv2d)


class MixedConv2d(nn.ModuleDict):
    """Channels split by a list kept as an attribute, one conv (kernel size) per part, outputs concatenated."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: list[int], depthwise: bool) -> None:
        super().__init__()
        n = len(kernel_size)
        in_splits = [in_channels // n] * n
        in_splits[0] += in_channels - sum(in_splits)
        out_splits = [out_channels // n] * n
        out_splits[0] += out_channels - sum(out_splits)
        self.in_channels = sum(in_splits)
        self.out_channels = sum(out_splits)
        for idx, (k, cin, cout) in enumerate(zip(kernel_size, in_splits, out_splits)):
            self.add_module(str(idx), nn.Conv2d(cin, cout, k, padding=k // 2, groups=cin if depthwise else 1,
                                                bias=False))
        self.splits = in_splits

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x_split = torch.split(x, self.splits, 1)
        x_out = [c(x_split[i]) for i, c in enumerate(self.values())]
        return torch.cat(x_out, 1)


class MixBlock(nn.Module):
    def __init__(self, c: int, mid: int) -> None:
        super().__init__()
        self.conv_pw = MixedConv2d(c, mid, [1, 1], depthwise=False)
        self.bn1 = nn.BatchNorm2d(mid)
        self.conv_dw = MixedConv2d(mid, mid, [3, 5, 7], depthwise=True)
        self.bn2 = nn.BatchNorm2d(mid)
        self.se = SqueezeExcite(mid, max(1, c // 4))
        self.conv_pwl = nn.Conv2d(mid, c, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.silu(self.bn1(self.conv_pw(x)))
        y = self.se(F.silu(self.bn2(self.conv_dw(y))))
        return x + self.bn3(self.conv_pwl(y))


@register_arch("mixnet")
def mixnet() -> tuple[nn.Module, tuple]:
    """MixNet: mixed depthwise kernels over uneven channel parts (``x.split(self.splits, 1)``), SE."""
    model = nn.Sequential(cbr(3, 12, act=nn.SiLU), MixBlock(12, 26), MixBlock(12, 36), nn.AdaptiveAvgPool2d(1),
                          nn.Flatten(), nn.Linear(12, 5))
    return model, (torch.randn(2, 3, 8, 8),)
