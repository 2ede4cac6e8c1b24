"""Distillation of a pruned encoder (slimkit.hf.recover.distill): what the dropout switch changes."""

from __future__ import annotations

import copy

import pytest
import torch

from slimkit.hf import recover


def _batches():
    ids = torch.randint(3, 100, (4, 9), generator=torch.Generator().manual_seed(5))
    mask = torch.ones_like(ids)
    mask[1:, 6:] = 0
    return [(ids[:2], mask[:2]), (ids[2:], mask[2:])]


@pytest.mark.parametrize("dropout", [False, True])
def test_a_copy_of_the_teacher_stays_put_only_without_dropout(hf_build, dropout):
    """The student equals the teacher: without dropout every loss term and gradient is zero, so AdamW (no weight
    decay) leaves it exactly as it was; with dropout its training outputs are noisy and it moves."""
    teacher, _ = hf_build("bert", hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1)
    teacher.eval()
    student = copy.deepcopy(teacher)
    batches = _batches()
    torch.manual_seed(0)
    out = recover.distill(student, teacher, lambda: batches[0], batches, steps=3, lr=1e-3, hidden_weight=1.0,
                          eval_every=3, log=lambda m: None, dropout=dropout)
    moved = max((p - q).abs().max().item() for p, q in zip(student.parameters(), teacher.parameters()))
    assert (moved > 1e-4) == dropout
    assert not student.training
    if not dropout:
        assert out["cosine"] == pytest.approx(1.0, abs=1e-6)
