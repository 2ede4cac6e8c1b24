"""Which after-figures of a quantized model are real: the int8 file's only while it is the final model."""

from __future__ import annotations

import pytest
import torch

import slimkit
from slimkit.quant import BinaryConfig, QuantConfig
from slimkit.recipe.quant_figures import SIMULATED, is_fake_quant, mark_after, quantized_after


def _lenet() -> torch.nn.Module:
    torch.manual_seed(0)
    return slimkit.create_model("lenet5", in_channels=1, num_classes=4)


@pytest.fixture(scope="module")
def quantized() -> torch.nn.Module:
    model = _lenet()
    x = torch.randn(16, 1, 28, 28)
    slimkit.quantize(model, QuantConfig(), calibration_data=[(x, torch.zeros(16, dtype=torch.long))])
    return model


def _stages(onnx: str | None, later_sha: str = "q") -> list[dict]:
    metrics = {"size_bytes": 1234, "accuracy_int8": 0.5, **({"onnx_int8": onnx} if onnx else {})}
    return [{"name": "train", "type": "train", "status": "done", "sha256": "t", "file": "00-train/model.pt"},
            {"name": "q8", "type": "quantize", "status": "done", "sha256": "q", "file": "01-q8/model.pt",
             "metrics": metrics},
            {"name": "after", "type": "finetune", "status": "done", "sha256": later_sha, "file": "02-after/model.pt"}]


def test_plain_and_binary_models(quantized):
    assert quantized_after(_lenet(), _stages(None), None) is None  # type: ignore[arg-type]
    assert is_fake_quant(quantized)
    binary = _lenet()
    slimkit.quantize(binary, BinaryConfig(method="bwn"))
    assert is_fake_quant(binary)


def test_the_int8_file_counts_only_while_no_later_stage_changed_the_model(quantized, tmp_path):
    onnx = tmp_path / "01-q8" / "model.int8.onnx"
    onnx.parent.mkdir()
    onnx.write_bytes(b"x" * 777)
    current = quantized_after(quantized, _stages(str(onnx), later_sha="q"), tmp_path)
    assert current is not None and current.integer and current.onnx_path == onnx and current.accuracy_int8 == 0.5
    stale = quantized_after(quantized, _stages(str(onnx), later_sha="changed"), tmp_path)  # e.g. QAT fine-tuning
    assert stale is not None and not stale.integer and stale.stage == "q8"
    moved = quantized_after(quantized, _stages("/elsewhere/run/01-q8/model.int8.onnx"), tmp_path)
    assert moved is not None and moved.onnx_path == onnx  # the run folder was moved after the run
    after = {"size_bytes": 99999, "accuracy": 0.6, "latency_ms_bs1": 1.0}
    marks, notes = mark_after(after, current, tmp_path)
    assert after["size_bytes"] == 777 and after["accuracy"] == 0.5 and after["accuracy_simulated"] == 0.6
    assert marks == {"size_bytes": "int8", "accuracy": "int8", "latency_ms_bs1": "int8"}
    assert "01-q8/model.int8.onnx" in notes[0]


def test_without_an_integer_file_the_figures_are_simulated(quantized, tmp_path):
    quant = quantized_after(quantized, _stages(None), tmp_path)
    after = {"size_bytes": 99999, "accuracy": 0.6, "latency_ms_bs1": 1.0, "latency_ms_bs8": 2.0}
    marks, notes = mark_after(after, quant, tmp_path)
    assert after["size_bytes"] == 1234 and after["size_bytes_fake_quant"] == 99999 and after["accuracy"] == 0.6
    assert set(marks) == {"size_bytes", "accuracy", "latency_ms_bs1", "latency_ms_bs8"}
    assert set(marks.values()) == {SIMULATED} and "stage 'q8' with onnx_int8: true" in notes[0]
    no_stage = quantized_after(quantized, [], tmp_path)  # quantized before the recipe: no estimate, no hint
    after = {"size_bytes": 99999, "accuracy": None}
    marks, notes = mark_after(after, no_stage, tmp_path)
    assert after["size_bytes"] == 99999 and marks == {"size_bytes": SIMULATED}
    assert "size the fake-quant model's own storage" in notes[0] and "onnx_int8" not in notes[0]
