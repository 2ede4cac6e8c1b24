"""A recipe whose model is a generator ends with a summary (no test accuracy row), not an error."""

from __future__ import annotations

from slimkit.recipe import parse_recipe, run_recipe


def test_generator_recipe_summarizes_without_accuracy(tmp_path) -> None:
    recipe = parse_recipe({
        "name": "gs", "model": {"name": "resnet_g", "kwargs": {"width": 0.25, "blocks": 1}},
        "data": {"name": "synthetic", "options": {"num_samples": 32, "num_test": 16, "in_channels": 1}},
        "report": {"latency": False},
        "stages": [{"type": "gan_slim", "epochs": 1, "finetune_epochs": 0, "target_macs_reduction": 1.5,
                    "discriminator": "patch_d", "discriminator_kwargs": {"width": 0.25}}],
    })
    result = run_recipe(recipe, tmp_path / "run", echo=lambda *_: None)
    assert result.summary["after"]["accuracy"] is None
    assert "accuracy" not in result.table and "MACs" in result.table
    assert result.summary["before"]["macs"] / result.summary["after"]["macs"] >= 1.5
