"""Distillation losses: soft targets (Hinton) here; feature hints (FitNets) in ``hints``.

There is no training loop here: pass ``teacher=`` and ``distill_alpha`` to :func:`slimkit.train.fit` for soft
targets, and a hook (see :class:`slimkit.train.Hook`) for feature-level terms.
"""

from slimkit.distill.hints import HintHook, hint_loss, make_adapter
from slimkit.distill.soft import distillation_loss, soft_target_loss

__all__ = ["HintHook", "distillation_loss", "hint_loss", "make_adapter", "soft_target_loss"]
