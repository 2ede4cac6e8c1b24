"""Stage ``gan_slim``: GAN Slimming of the recipe's model, an image-to-image generator (:func:`slimkit.gan_slim`).

The recipe's model is the student and the teacher is the run's reference (the model before the first compressing
stage: give a trained generator as ``model.file``). The discriminator is a zoo model (``patch_d`` by default) or
a saved one (``discriminator_file``), trained along inside the stage. Generator inputs are the data's images
(:func:`slimkit.gan.image_to_image_inputs`; the teacher's outputs are the real side when the data has labels, not
target images). Resumable: the stage's checkpoints are in ``STAGE_DIR/gan_slim``.

    stages:
      - type: gan_slim
        epochs: 5
        strength: 0.05
        weight_bits: 8
        activation_bits: 8
        target_macs_reduction: 4
        finetune_epochs: 1
        discriminator: patch_d
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field, fields
from typing import Any

from torch import nn

from slimkit.core.errors import ConfigError
from slimkit.gan.config import GanSlimConfig
from slimkit.recipe._registry import register_stage
from slimkit.recipe.context import StageContext


@dataclass(frozen=True)
class GanSlimStageConfig(GanSlimConfig):
    """:class:`slimkit.GanSlimConfig` plus the discriminator: a zoo name with ``discriminator_kwargs`` (image
    channels and classes come from the data), or a file written by ``slimkit.save_model``."""

    discriminator: str = "patch_d"
    discriminator_kwargs: dict[str, Any] = field(default_factory=dict)
    discriminator_file: str | None = None
    progress: bool = False

    def gan_config(self, device: str) -> GanSlimConfig:
        names = {f.name for f in fields(GanSlimConfig)}
        return GanSlimConfig(**{**{k: getattr(self, k) for k in names}, "device": device})


def build_discriminator(config: GanSlimStageConfig, data: Any) -> nn.Module:
    import slimkit
    from slimkit.models._registry import resolve_factory

    if config.discriminator_file is not None:
        try:
            return slimkit.load_model(config.discriminator_file)
        except (OSError, slimkit.SlimkitError) as err:
            raise ConfigError(f"discriminator_file: {config.discriminator_file}: {err}") from None
    try:
        factory = resolve_factory(config.discriminator)
    except ConfigError as err:
        raise ConfigError(f"discriminator: {err}") from None
    params = inspect.signature(factory).parameters
    kwargs = dict(config.discriminator_kwargs)
    for key, value in {"in_channels": data.in_channels, "image_channels": data.in_channels,
                       "num_classes": data.num_classes}.items():
        if key in params and key not in kwargs:
            kwargs[key] = value
    try:
        return slimkit.create_model(config.discriminator, **kwargs)
    except ConfigError as err:
        raise ConfigError(f"discriminator_kwargs: {err}") from None


@register_stage("gan_slim", GanSlimStageConfig, compresses=True)
def gan_slim_stage(ctx: StageContext, config: GanSlimStageConfig) -> dict[str, Any]:
    """GAN Slimming: GAN loss + distillation to the reference + proximal L1 on norm scales (+ QAT), then removal."""
    from slimkit.core.io import atomic_write_json
    from slimkit.gan import gan_slim, image_to_image_inputs

    teacher = ctx.freeze_reference()
    discriminator = build_discriminator(config, ctx.data)
    report = gan_slim(ctx.model, discriminator, teacher, ctx.data.train, config.gan_config(str(ctx.device)),
                      make_inputs=image_to_image_inputs(), checkpoint_dir=ctx.stage_dir / "gan_slim")
    atomic_write_json(ctx.stage_dir / "gan_slim.json", report.to_dict())
    last = report.history[-1] if report.history else {}
    return {"macs_reduction": report.macs_reduction, "size_ratio": report.size_ratio,
            "channels_before": report.channels_before, "channels_after": report.channels_after,
            "zero_channels": report.zero_channels, "threshold": report.threshold,
            "l1_to_teacher": last.get("l1_to_teacher"), "summary": {"size_bytes": report.size_bytes_after}}
