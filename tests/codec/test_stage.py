"""The deep_compression recipe stage: shares, fine-tunes codebooks, writes a .slim file that loads back."""

import json

import torch

from slimkit.codec import inspect_compressed
from slimkit.recipe import parse_recipe, run_recipe
from slimkit.state import load_compressed

SYNTHETIC = {"name": "synthetic", "options": {"num_samples": 128, "in_channels": 1, "num_classes": 4,
                                               "image_size": 28}}


def test_deep_compression_stage_writes_a_loadable_file(tmp_path):
    recipe = parse_recipe({
        "name": "dc", "model": {"name": "lenet300"}, "data": SYNTHETIC,
        "stages": [{"type": "deep_compression", "bits": 3, "layer_bits": {"fc3": 4}, "finetune_epochs": 1}],
        "report": {"latency": False},
    })
    result = run_recipe(recipe, tmp_path / "run", echo=lambda *_: None)
    slim = tmp_path / "run" / "model.slim"
    metrics = json.loads((tmp_path / "run" / "00-deep_compression" / "metrics.json").read_text())
    assert metrics["file_bytes"] == slim.stat().st_size and metrics["ratio"] > 5
    assert (tmp_path / "run" / "00-deep_compression" / "compression.txt").read_text().startswith("tensor")
    loaded = load_compressed(slim)
    x = torch.randn(3, 1, 28, 28)
    result.model.eval()
    assert torch.equal(loaded(x), result.model(x))  # the run's final model is exactly what was stored
    assert torch.unique(loaded.fc1.weight).numel() <= 8
    assert inspect_compressed(slim).ratio == metrics["ratio"]
