"""The ``gan_slim`` recipe stage: runs on an image-to-image generator, resumes, and is shipped and documented."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import slimkit
from slimkit.recipe import load_recipe
from slimkit.recipe._registry import load_stages
from slimkit.recipe.context import StageContext
from slimkit.recipe.stages.gan_slim import GanSlimStageConfig, gan_slim_stage

ROOT = Path(__file__).parents[2]


def _ctx(tmp_path):
    torch.manual_seed(0)
    data = slimkit.load_dataset("synthetic", num_samples=40, num_test=8, in_channels=1, num_classes=3, image_size=16)
    model = slimkit.create_model("resnet_g", width=0.25, blocks=1)
    return StageContext(model=model, data=data, example_inputs=(data.train[0][0].unsqueeze(0),), run_dir=tmp_path,
                        stage_dir=tmp_path / "00-gan_slim", device=torch.device("cpu"))


def test_stage_slims_the_recipe_model_against_the_reference(tmp_path):
    ctx = _ctx(tmp_path)
    x = ctx.example_inputs[0]
    config = GanSlimStageConfig(epochs=1, batch_size=8, max_steps_per_epoch=2, weight_bits=8, activation_bits=8,
                                target_macs_reduction=2.0, discriminator_kwargs={"width": 0.25})
    metrics = gan_slim_stage(ctx, config)
    assert metrics["macs_reduction"] >= 2.0 and metrics["size_ratio"] > 4
    assert ctx.reference is not None and ctx.reference is not ctx.model
    assert ctx.model(x).shape == ctx.reference(x).shape
    assert (ctx.stage_dir / "gan_slim.json").is_file() and (ctx.stage_dir / "gan_slim" / "train" / "last.pt").is_file()
    assert metrics["summary"]["size_bytes"] < slimkit.profile(ctx.reference, (x,)).size_bytes / 4


def test_stage_options_are_checked_by_name(tmp_path):
    ctx = _ctx(tmp_path)
    with pytest.raises(slimkit.ConfigError, match="discriminator"):
        gan_slim_stage(ctx, GanSlimStageConfig(epochs=0, discriminator="no_such_disc"))
    with pytest.raises(slimkit.ConfigError, match="strength"):
        GanSlimStageConfig(strength=-1.0)


def test_stage_is_registered_shipped_and_documented():
    assert "gan_slim" in load_stages()
    recipe = load_recipe(ROOT / "recipes" / "gan_slim.yaml")
    assert [s.type for s in recipe.stages][0] == "gan_slim"
    assert recipe.stages[0].config.weight_bits == 8
    assert "\ngan_slim" in (ROOT / "docs" / "recipes.md").read_text()
