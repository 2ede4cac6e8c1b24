"""GAN compression: GAN Slimming (:func:`gan_slim`) and an offline quality metric (:mod:`slimkit.gan.fid`).

Example:
    >>> from slimkit.gan import GanSlimConfig, gan_slim
    >>> report = gan_slim(student, discriminator, teacher, data.train, GanSlimConfig(epochs=5, weight_bits=8))
"""

from slimkit.gan.config import GanSlimConfig, GanSlimReport
from slimkit.gan.inputs import GanBatch, conditional_inputs, default_inputs, image_to_image_inputs
from slimkit.gan.losses import d_loss, distill_loss, g_loss
from slimkit.gan.slim import gan_slim
from slimkit.gan.sparsity import norm_scales, proximal_l1_, remove_channels

__all__ = [
    "GanBatch", "GanSlimConfig", "GanSlimReport", "conditional_inputs", "d_loss", "default_inputs", "distill_loss",
    "g_loss", "gan_slim", "image_to_image_inputs", "norm_scales", "proximal_l1_", "remove_channels",
]
