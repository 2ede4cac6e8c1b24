"""decompose never returns a model that fails a plain forward (no hooks)."""

from __future__ import annotations

import torch

import slimkit
from slimkit.testing.registry import build_arch


def test_layers_a_fused_fast_path_reads_stay_dense() -> None:
    """nn.TransformerEncoderLayer's fast path (eval, no hooks) reads linear1.weight: factoring it would break."""
    model, inputs = build_arch("torch_transformer_layer")
    report = slimkit.decompose(model, inputs, method="auto", rank=2)
    kept = {e.name: e.skipped for e in report.layers if e.skipped and "fails with it factored" in e.skipped}
    assert set(kept) == {"layer.linear1", "layer.linear2"}
    assert "layer.linear1" not in report.plan and "proj" in report.plan
    model.eval()
    with torch.no_grad():
        assert model(*inputs).shape == build_arch("torch_transformer_layer")[0].eval()(*inputs).shape
