"""Test architectures reproducing patterns of Hugging Face models, without depending on ``transformers``."""

from __future__ import annotations

import torch
from torch import nn

from slimkit.testing.registry import register_arch


class Conv1D(nn.Module):
    """Hugging Face's ``Conv1D`` (GPT-2): a Linear with a (in, out) weight, run as ``addmm``, whose output
    view reads its width from the ``nf`` attribute."""

    def __init__(self, nf: int, nx: int) -> None:
        super().__init__()
        self.nf = nf
        self.weight = nn.Parameter(torch.randn(nx, nf) * 0.2)
        self.bias = nn.Parameter(torch.randn(nf) * 0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size_out = x.size()[:-1] + (self.nf,)
        x = torch.addmm(self.bias, x.view(-1, x.size(-1)), self.weight)
        return x.view(size_out)


class GPT2MLP(nn.Module):
    """GPT-2's feed-forward block on a residual stream: ``x + c_proj(gelu(c_fc(ln(x))))``."""

    def __init__(self, dim: int = 12, hidden: int = 32) -> None:
        super().__init__()
        self.ln = nn.LayerNorm(dim)
        self.c_fc = Conv1D(hidden, dim)
        self.c_proj = Conv1D(dim, hidden)
        self.act = nn.GELU()
        self.head = nn.Linear(dim, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, D)
        x = x + self.c_proj(self.act(self.c_fc(self.ln(x))))
        return self.head(x)


@register_arch("hf_conv1d_mlp")
def hf_conv1d_mlp() -> tuple[nn.Module, tuple]:
    return GPT2MLP(), (torch.randn(2, 5, 12),)


class GQAttention(nn.Module):
    """Llama/Qwen2/Mistral-style grouped-query attention under SDPA (``enable_gqa``): 4 query heads share 2
    key/value heads; ``view(..., -1, head_dim)`` so whole heads (and whole KV groups) are the unit."""

    def __init__(self, dim: int = 16, heads: int = 4, kv_heads: int = 2) -> None:
        super().__init__()
        self.head_dim = dim // heads
        self.q_proj = nn.Linear(dim, heads * self.head_dim, bias=False)
        self.k_proj = nn.Linear(dim, kv_heads * self.head_dim, bias=False)
        self.v_proj = nn.Linear(dim, kv_heads * self.head_dim, bias=False)
        self.o_proj = nn.Linear(heads * self.head_dim, dim, bias=False)
        self.mlp = nn.Sequential(nn.Linear(dim, 24), nn.SiLU(), nn.Linear(24, dim))
        self.head = nn.Linear(dim, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, D)
        b, t, _ = x.shape
        q, k, v = (p(x).view(b, t, -1, self.head_dim).transpose(1, 2) for p in (self.q_proj, self.k_proj, self.v_proj))
        y = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
        x = x + self.o_proj(y.transpose(1, 2).reshape(b, t, -1))
        return self.head(x + self.mlp(x))


@register_arch("gqa_sdpa")
def gqa_sdpa() -> tuple[nn.Module, tuple]:
    return GQAttention(), (torch.randn(2, 5, 16),)
