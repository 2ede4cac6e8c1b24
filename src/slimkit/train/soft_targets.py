"""Soft-target knowledge distillation (Hinton, Vinyals and Dean, 2015).

The student matches the teacher's class probabilities softened by a temperature ``T``; the loss is scaled by
``T**2`` so that its gradients keep the same magnitude as the hard-label term when ``T`` changes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from slimkit.core.errors import ConfigError


def soft_target_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """``T^2 * KL(softmax(t/T) || softmax(s/T))``, averaged over the batch.

    The teacher's softened distribution is the target, as in Hinton et al.; the gradient with respect to the
    student logits is ``T * (softmax(s/T) - softmax(t/T)) / N``. The teacher logits are detached.

    Args:
        student_logits: ``(N, C)`` (or ``(N, C, ...)``; the class dimension is 1).
        teacher_logits: same shape as ``student_logits``.
        temperature: ``T > 0``; larger values expose more of the teacher's "dark knowledge".

    Raises:
        ConfigError: when the shapes differ or the temperature is not positive.
    """
    if temperature <= 0:
        raise ConfigError(f"distill temperature must be > 0, got {temperature}")
    if student_logits.shape != teacher_logits.shape:
        raise ConfigError(
            f"student logits {tuple(student_logits.shape)} and teacher logits {tuple(teacher_logits.shape)} differ"
        )
    dtype = torch.promote_types(student_logits.dtype, torch.float32)  # half/bf16 logits: softmax in float32
    log_p_student = F.log_softmax(student_logits.to(dtype) / temperature, dim=1)
    log_p_teacher = F.log_softmax(teacher_logits.detach().to(dtype) / temperature, dim=1)
    kl = F.kl_div(log_p_student, log_p_teacher, reduction="sum", log_target=True)
    return kl * (temperature**2) / student_logits.shape[0]


def distillation_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    targets: torch.Tensor,
    *,
    alpha: float,
    temperature: float,
    label_smoothing: float = 0.0,
) -> torch.Tensor:
    """``(1 - alpha) * CE(student, targets) + alpha * soft_target_loss(student, teacher, T)``.

    ``alpha = 0`` is plain cross-entropy, ``alpha = 1`` pure soft targets.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ConfigError(f"distill alpha must be in [0, 1], got {alpha}")
    hard = F.cross_entropy(student_logits, targets, label_smoothing=label_smoothing)
    if alpha == 0.0:
        return hard
    return (1.0 - alpha) * hard + alpha * soft_target_loss(student_logits, teacher_logits, temperature)
