"""Distillation losses: soft targets (Hinton) here; feature hints (FitNets) in ``hints``.

There is no training loop here: pass ``teacher=`` and ``distill_alpha`` to :func:`slimkit.train.fit` for soft
targets, and a hook (see :class:`slimkit.train.Hook`) for feature-level terms.
"""

from slimkit.distill.soft import distillation_loss, soft_target_loss

__all__ = ["distillation_loss", "soft_target_loss"]
