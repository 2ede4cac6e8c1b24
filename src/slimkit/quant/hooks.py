"""Training hooks for quantized models (used with :func:`slimkit.train.fit`)."""

from __future__ import annotations

from slimkit.quant.binary import clip_latent_weights
from slimkit.train.hooks import Hook, TrainState


class ClipLatentWeights(Hook):
    """BinaryConnect's latent-weight clipping: after every optimizer step, clip binary layers' float weights to
    ``[-bound, bound]`` (outside it the hard-tanh STE passes no gradient, so a weight could never come back).

    Example:
        >>> slimkit.quantize(model, BinaryConfig(method="binaryconnect"))
        >>> fit(model, data.train, config, hooks=[ClipLatentWeights()])
    """

    def __init__(self, bound: float = 1.0) -> None:
        self.bound = bound

    def after_step(self, state: TrainState) -> None:
        clip_latent_weights(state.model, self.bound)
