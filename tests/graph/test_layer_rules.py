"""The tracer consults the LayerRule of a layer type (core/shapes.py) the shape syncer and the pruners read."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import slimkit
from slimkit.core.shapes import LAYER_RULES, channel_dims, register_layer_rule
from slimkit.graph import build_graph


class Blur(nn.Module):
    """A depthwise layer of its own (not an nn.Conv2d): weight (C, 1, 3, 3), ``groups`` read from ``.channels``."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = channels
        self.weight = nn.Parameter(torch.rand(channels, 1, 3, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight, padding=1, groups=self.channels)  # (B, C, H, W)


def _model() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3), Blur(8), nn.ReLU(), nn.Conv2d(8, 4, 1))


@pytest.fixture
def blur_rule():
    register_layer_rule(Blur, sync=lambda m: setattr(m, "channels", m.weight.shape[0]),
                        out=[("weight", 0)], in_=[("weight", 0)])
    yield
    LAYER_RULES.remove(Blur)


def test_channel_dims_come_from_the_rule() -> None:
    import slimkit.prune.layers  # noqa: F401  (adds the norm and embedding halves of their rules)

    assert channel_dims(nn.Conv2d, "weight") == (0, 1)  # never the kernel dims
    assert channel_dims(nn.ConvTranspose2d, "weight") == (0, 1)
    assert channel_dims(nn.Conv2d, "bias") == (0,)
    assert channel_dims(nn.Embedding, "weight") == (1,)
    assert channel_dims(nn.BatchNorm2d, "running_mean") == (0,)
    assert channel_dims(nn.LSTM, "weight_ih_l0") is None  # a syncer only: no rule names its tensors


def test_without_a_rule_the_count_is_linked_with_one_it_follows_the_rule(blur_rule) -> None:
    x = torch.randn(2, 3, 10, 10)
    LAYER_RULES.remove(Blur)
    linked = build_graph(_model(), (x,))
    assert [attr for _, attr, _ in linked.int_links] == ["channels"]
    register_layer_rule(Blur, sync=lambda m: setattr(m, "channels", m.weight.shape[0]),
                        out=[("weight", 0)], in_=[("weight", 0)])
    model = _model()
    graph = build_graph(model, (x,))
    assert graph.int_links == []  # the rule keeps .channels true to the weight, as nn.Conv2d's keeps groups
    before = model(x)
    report = slimkit.prune_channels(model, (x,), ratio=0.5, scope="local")
    assert model[1].weight.shape == (4, 1, 3, 3) and model[1].channels == 4 and model[0].out_channels == 4
    out = model(x)
    assert out.shape == before.shape and torch.isfinite(out).all() and report.params_after < report.params_before


def test_every_built_in_rule_exists_without_importing_prune() -> None:
    """Norm, PReLU and embedding rules live in core/shapes.py beside conv's: a fresh interpreter that imports only
    ``slimkit.core.shapes`` sees them all (before, they came with ``slimkit.prune``)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    src = str(Path(slimkit.__file__).resolve().parents[1])  # this checkout's package, whatever is installed
    code = (
        "import sys\n"
        "from torch import nn\n"
        "from slimkit.core.shapes import channel_dims\n"
        "assert 'slimkit.prune' not in sys.modules\n"
        "types = (nn.Conv2d, nn.Linear, nn.ConvTranspose2d, nn.BatchNorm2d, nn.LayerNorm, nn.PReLU, nn.InstanceNorm1d)\n"
        "print([channel_dims(t, 'weight') for t in types], channel_dims(nn.BatchNorm1d, 'running_var'),\n"
        "      channel_dims(nn.Embedding, 'weight'))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": src}).stdout.strip()
    assert out == "[(0, 1), (0, 1), (0, 1), (0,), (0,), (0,), (0,)] (0,) (1,)"
