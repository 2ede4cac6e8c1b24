"""Reports serialize; quantized models pickle (recipe snapshots) and keep their outputs."""

from __future__ import annotations

import json

import torch
from torch import nn

from slimkit.quant import MixedPrecisionConfig, QuantConfig, TernaryConfig, quantize


def test_report_table_and_json(cnn: nn.Module, batches: list[torch.Tensor]) -> None:
    report = quantize(cnn, MixedPrecisionConfig(budget_ratio=0.2), calibration_data=batches)
    data = json.loads(json.dumps(report.to_dict()))
    assert data["size_ratio"] == report.size_ratio
    assert {layer["fqn"] for layer in data["layers"]} == set(report.layer_bits)
    table = report.table()
    assert "ptq:" in table and "BatchNorms folded" in table


def test_quantized_model_survives_a_snapshot(cnn: nn.Module, cnn_factory, images: torch.Tensor,
                                             batches: list[torch.Tensor], tmp_path) -> None:
    from slimkit.recipe.snapshot import load_snapshot, save_snapshot

    quantize(cnn, QuantConfig(weight_bits=4, mode="qat", learn_step=True), calibration_data=batches)
    cnn.eval()
    before = cnn(images)
    digest = save_snapshot(cnn, tmp_path / "model.pt", example_inputs=images[:1])  # as a recipe stage does
    loaded = load_snapshot(tmp_path / "model.pt", digest, factory=lambda: cnn_factory(seed=5)).eval()
    assert torch.equal(loaded(images), before)


def test_ternary_state_dict_round_trip(cnn_factory, images: torch.Tensor) -> None:
    trained, fresh = cnn_factory(seed=0), cnn_factory(seed=5)
    quantize(trained, TernaryConfig(method="ttq"))
    quantize(fresh, TernaryConfig(method="ttq"))
    with torch.no_grad():
        trained[3].weight_quant.w_pos.mul_(1.5)  # a "learned" scale differing from its initial value
    state = trained.state_dict()
    assert "3.weight_quant.w_pos" in state and "3.weight" in state
    assert not torch.allclose(fresh(images), trained(images))
    fresh.load_state_dict(state)
    torch.testing.assert_close(fresh(images), trained(images))
