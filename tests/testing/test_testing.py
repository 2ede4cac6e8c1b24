"""slimkit.testing: the architecture zoo is deterministic and its checks really catch broken pruning."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

import slimkit.testing.checks as checks
from slimkit.testing import build_arch, check_prune_equivalence, list_archs


def test_zoo_is_large_and_deterministic():
    names = list_archs()
    assert len(names) >= 20
    a, xa = build_arch("resnet", seed=3)
    b, xb = build_arch("resnet", seed=3)
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))
    assert torch.equal(xa[0], xb[0])
    with torch.no_grad():
        assert torch.equal(a(*xa), b(*xb))


def test_equivalence_check_fails_when_channels_still_matter(monkeypatch):
    monkeypatch.setattr(checks, "zero_channel_effect", lambda graph, removed: None)
    model, x = build_arch("conv_bn_relu")
    with pytest.raises(AssertionError, match="outputs differ"):
        check_prune_equivalence(model, x)


def test_zeroing_makes_chosen_channels_irrelevant():
    from slimkit.graph import build_graph

    model, x = build_arch("mlp")
    graph = build_graph(model, x)
    removed = torch.zeros(graph.num_channels, dtype=torch.bool)
    group = graph.groups[0]
    removed[group.channels[:5]] = True
    checks.zero_channel_effect(graph, removed)
    def positions(tensor, dim):
        occ = next(o for o in graph.occurrences if graph.tensors[o.tensor] is tensor and o.dim == dim)
        return removed[graph.comp[occ.ids]]

    rows, cols = positions(model[1].weight, 0), positions(model[3].weight, 1)
    assert int(rows.sum()) == 5 and torch.equal(rows, cols)
    assert torch.count_nonzero(model[3].weight[:, cols]) == 0
    with torch.no_grad():
        before = model(*x)
        model[1].weight[rows] = torch.randn(5, 16)  # the producer rows of those channels no longer matter
        after = model(*x)
    assert torch.allclose(before, after)


def test_structured_pruning_does_not_import_unstructured():
    code = "import slimkit.prune, sys; print('slimkit.prune.unstructured' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": "src"})
    assert out.stdout.strip() == "False"
