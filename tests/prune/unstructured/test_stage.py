"""Recipe stage ``prune_weights``: each method reaches its sparsity, writes plots and a sparse copy, and a later
``finetune`` stage keeps the zeros."""

from __future__ import annotations

import json

import pytest
import torch

from slimkit.core.errors import ConfigError
from slimkit.recipe import parse_recipe, run_recipe

SYNTHETIC = {"name": "synthetic", "options": {"num_samples": 192, "in_channels": 1, "num_classes": 4,
                                               "image_size": 28}}
FINETUNE = {"epochs": 1, "lr": 0.01, "batch_size": 64, "max_steps_per_epoch": 3, "progress": False, "device": "cpu"}


def _recipe(stage: dict, *more: dict) -> dict:
    return {"name": "u", "model": {"name": "lenet300"}, "data": SYNTHETIC, "device": "cpu",
            "stages": [stage, *more], "report": {"latency": False}}


@pytest.mark.parametrize(
    ("method", "extra"),
    [
        ("magnitude", {}),
        ("global_magnitude", {}),
        ("agp", {"agp_events": 2, "agp_end_fraction": 0.5, "finetune": {**FINETUNE, "distill_alpha": 0.5}}),
        ("iterative", {"rounds": 2}),
        ("lottery", {"rounds": 2, "rewind_step": 1}),
    ],
)
def test_stage_methods(tmp_path, method: str, extra: dict) -> None:
    stage = {"type": "prune_weights", "method": method, "sparsity": 0.8, "finetune": FINETUNE, **extra}  # extra wins
    result = run_recipe(parse_recipe(_recipe(stage)), tmp_path / "run", echo=lambda *_: None)
    metrics = result.stages[0]["metrics"]
    assert metrics["sparsity"] == pytest.approx(0.8, abs=1e-3)
    assert set(metrics["per_layer"]) == {n for n, p in result.model.named_parameters() if n.endswith("weight")}
    if method in ("magnitude", "lottery"):  # layer scope
        assert all(s == pytest.approx(0.8, abs=0.01) for s in metrics["per_layer"].values())
    for plot in metrics["plots"]:
        assert (tmp_path / "run" / plot).stat().st_size > 1000
    sparse = torch.load(tmp_path / "run" / metrics["sparse_file"], weights_only=True)
    kept = sum(v.numel() for k, v in sparse.items() if k.endswith(".values"))
    assert kept == metrics["nonzero"]
    weights = [p for n, p in result.model.named_parameters() if n.endswith("weight")]
    zeros = sum(int((w == 0).sum()) for w in weights)
    assert zeros >= round(0.8 * sum(w.numel() for w in weights)) - 3  # 3 = one rounding per layer
    saved = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert saved["stages"][0]["metrics"]["method"] == method


def test_later_finetune_keeps_zeros(tmp_path) -> None:
    stages = ({"type": "prune_weights", "method": "global_magnitude", "sparsity": 0.9, "finetune": {"epochs": 0}},
              {"type": "finetune", **FINETUNE, "optimizer": "adam"})
    result = run_recipe(parse_recipe(_recipe(*stages)), tmp_path / "run", echo=lambda *_: None)
    weights = [p for n, p in result.model.named_parameters() if n.endswith("weight")]
    total = sum(w.numel() for w in weights)
    assert sum(int((w == 0).sum()) for w in weights) == round(0.9 * total)


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ({"sparsity": 1.5}, r"stages\[0\] \(prune_weights\)\.sparsity"),
        ({"method": "prune_everything"}, r"stages\[0\] \(prune_weights\)\.method"),
        ({"method": "agp", "finetune": {"epochs": 0}}, r"finetune\.epochs"),
        ({"finetune": {"lrr": 1}}, r"finetune\.lrr"),
    ],
)
def test_stage_rejects_bad_options(options: dict, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        parse_recipe(_recipe({"type": "prune_weights", **options}))
