"""core/forward.py: train/eval flags for one block, and hooks around every module's forward."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from slimkit.core.forward import module_hooks, module_stack, training_mode


def test_training_mode_restores_each_flag_and_gives_new_modules_the_models() -> None:
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2)).train()
    model[1].eval()  # a frozen BatchNorm
    with training_mode(model, False):
        assert not any(m.training for m in model.modules())
        model.append(nn.ReLU().eval())  # added inside, e.g. a quantizer
    assert model.training and model[0].training and not model[1].training and model[2].training


def test_training_mode_restores_after_an_error() -> None:
    model = nn.Sequential(nn.Linear(2, 2)).train()
    with pytest.raises(RuntimeError), training_mode(model, False):
        raise RuntimeError("boom")
    assert model.training and model[0].training


class _Boom(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise ValueError("no")


def test_module_stack_names_the_failing_module_and_hooks_go_away() -> None:
    model = nn.Sequential(nn.Linear(2, 2), nn.Sequential(nn.ReLU(), _Boom()))
    with module_stack(model) as stack:
        with pytest.raises(ValueError):
            model(torch.zeros(1, 2))
    assert stack == ["<root> (Sequential)", "1 (Sequential)", "1.1 (_Boom)"]
    assert not any(m._forward_pre_hooks or m._forward_hooks for m in model.modules())


def test_module_hooks_see_every_module_in_order() -> None:
    model = nn.Sequential(nn.Linear(2, 3), nn.ReLU())
    seen = []
    with module_hooks(model, lambda fqn, *_: seen.append(f"enter {fqn}"), lambda fqn, *_: seen.append(f"leave {fqn}")):
        model(torch.zeros(1, 2))
    assert seen == ["enter ", "enter 0", "leave 0", "enter 1", "leave 1", "leave "]
