"""nn.MultiheadAttention pruned by whole heads (attention="heads") or by the same dims in every head."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import slimkit
from slimkit.graph.groups import build_graph
from slimkit.prune.config import PruneConfig
from slimkit.prune.structured import make_plan
from slimkit.testing.archs_seq import MHAEncoder


class ResidualAttention(nn.Module):
    """Embedding -> self-attention with a residual -> mean -> head: no LayerNorm, so a dead head is exact."""

    def __init__(self, dim: int = 16, heads: int = 4) -> None:
        super().__init__()
        self.embed = nn.Embedding(20, dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.head = nn.Linear(dim, 3)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.embed(tokens)
        x = x + self.attn(x, x, x, need_weights=False)[0]
        return self.head(x.mean(1))


def _tokens() -> torch.Tensor:
    return torch.randint(0, 20, (2, 6), generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("unit, heads, head_dim", [("heads", 2, 4), ("head_dims", 4, 2)])
def test_unit_sets_heads_and_head_dim(unit, heads, head_dim):
    torch.manual_seed(0)
    model = ResidualAttention()
    report = slimkit.prune_channels(model, _tokens(), ratio=0.5, scope="local", attention=unit)
    assert (model.attn.num_heads, model.attn.head_dim, model.attn.embed_dim) == (heads, head_dim, 8)
    assert model.attn.in_proj_weight.shape == (24, 8)
    assert model(_tokens()).shape == (2, 3)
    assert report.params_after < report.params_before


def test_heads_are_the_units_of_the_group():
    graph = build_graph(ResidualAttention(), (_tokens(),), attention="heads")
    (stream,) = [g for g in graph.groups if any("attn" in name for name in g.modules)]
    assert stream.size == 4  # four heads, each four slots wide
    assert stream.exact


def test_removing_a_head_without_effect_keeps_outputs():
    torch.manual_seed(0)
    model = ResidualAttention().double().eval()
    e, d = 16, 4
    with torch.no_grad():
        dead = slice(1 * d, 2 * d)  # head 1 and the stream channels at its slots contribute nothing
        for block in range(3):
            model.attn.in_proj_weight[block * e:(block + 1) * e][dead] = 0
            model.attn.in_proj_bias[block * e:(block + 1) * e][dead] = 0
        model.attn.out_proj.weight[:, dead] = 0
        model.attn.out_proj.weight[dead, :] = 0
        model.attn.out_proj.bias[dead] = 0
        model.attn.in_proj_weight[:, dead] = 0
        model.head.weight[:, dead] = 0
    before = model(_tokens())
    graph = build_graph(model, (_tokens(),), attention="heads")
    removed = torch.zeros(graph.num_channels, dtype=torch.bool)
    (stream,) = [g for g in graph.groups if any("attn" in name for name in g.modules)]
    norms = model.attn.out_proj.weight.detach().abs().sum(0).view(4, d).sum(1)
    assert float(norms[1]) == 0.0
    removed[stream.channels[1]] = True
    make_plan(graph, removed, (_tokens(),), PruneConfig(attention="heads")).apply()
    assert model.attn.num_heads == 3
    torch.testing.assert_close(model(_tokens()), before, atol=1e-10, rtol=0)


def test_pruned_heads_survive_save_and_load(tmp_path):
    model = slimkit.create_model("slimkit.testing.archs_seq:MHAEncoder")
    slimkit.prune_channels(model, _tokens(), ratio=0.5, scope="local", attention="heads")
    assert model.attn.num_heads == 2
    path = slimkit.save_model(model, tmp_path / "m.pt")
    loaded = slimkit.load_model(path, MHAEncoder())
    assert (loaded.attn.num_heads, loaded.attn.head_dim) == (2, 4)
    torch.testing.assert_close(loaded.eval()(_tokens()), model.eval()(_tokens()))


def test_heads_mode_prunes_and_fine_tunes_transformer_encoder():
    model = MHAEncoder()
    trained = copy.deepcopy(model)
    slimkit.prune_channels(model, _tokens(), ratio=0.5, attention="heads", scope="local")
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    loss = nn.functional.cross_entropy(model(_tokens()), torch.tensor([0, 1]))
    loss.backward()
    opt.step()
    assert model.attn.num_heads < trained.attn.num_heads


def test_bad_unit_is_refused():
    with pytest.raises(slimkit.ConfigError, match="attention"):
        slimkit.prune_channels(ResidualAttention(), _tokens(), ratio=0.5, attention="rows")
