"""Soft-target distillation losses, kept under their public name.

The losses live in :mod:`slimkit.train.soft_targets`, beside the engine that applies them when ``fit`` gets a
teacher, so that ``train`` never imports ``distill`` (``distill`` builds on ``train``'s hooks, one way only).
"""

from slimkit.train.soft_targets import distillation_loss, soft_target_loss

__all__ = ["distillation_loss", "soft_target_loss"]
