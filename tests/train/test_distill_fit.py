"""Knowledge distillation through fit: with alpha = 1 the student learns the teacher's function, not the labels."""

import pytest
import torch

from slimkit.core.errors import ConfigError
from slimkit.train import TrainConfig, fit


def _agreement(a, b, x):
    with torch.no_grad():
        a.eval()
        b.eval()
        return (a(x).argmax(1) == b(x).argmax(1)).float().mean().item()


def test_soft_targets_transfer_the_teacher(blobs, dataset_cls, mlp):
    config = TrainConfig(epochs=4, batch_size=32, lr=0.1, progress=False, device="cpu")
    teacher = mlp(seed=3)
    fit(teacher, blobs, config)
    noisy = dataset_cls(256, seed=0)
    noisy.y = torch.randint(0, 3, (256,), generator=torch.Generator().manual_seed(5))  # labels carry no signal
    distilled, plain = mlp(seed=4), mlp(seed=4)
    fit(distilled, noisy, TrainConfig(**{**config.__dict__, "distill_alpha": 1.0, "distill_temperature": 2.0}),
        teacher=teacher)
    fit(plain, noisy, config)
    probe = dataset_cls(256, seed=9).x
    assert _agreement(distilled, teacher, probe) > 0.85
    assert _agreement(plain, teacher, probe) < 0.7


def test_alpha_without_teacher_is_refused(blobs, mlp):
    with pytest.raises(ConfigError, match="teacher"):
        fit(mlp(), blobs, TrainConfig(epochs=1, distill_alpha=0.5, progress=False))
