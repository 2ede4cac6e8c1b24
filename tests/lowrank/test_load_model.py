"""A decomposed model saved with save_decomposed loads back through the generic slimkit.load_model."""

import torch

import slimkit
from slimkit.lowrank.checkpoint import save_decomposed


def test_load_model_reapplies_factor_plan(tmp_path):
    torch.manual_seed(0)
    model = slimkit.create_model("lenet300", in_channels=1, num_classes=10)
    slimkit.decompose(model, torch.randn(1, 1, 28, 28), method="svd", rank=16)
    path = save_decomposed(model, tmp_path / "m.pt")
    loaded = slimkit.load_model(path)
    x = torch.randn(4, 1, 28, 28)
    model.eval(), loaded.eval()
    assert torch.equal(model(x), loaded(x))
    assert sum(p.numel() for p in loaded.parameters()) == sum(p.numel() for p in model.parameters())
