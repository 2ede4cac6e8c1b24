"""FitNets hints: the adapter, the loss, and the hook inside the real training engine."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from slimkit.core.errors import ConfigError, SlimkitError
from slimkit.distill.hints import HintHook, hint_loss, make_adapter
from slimkit.train import TrainConfig, fit


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models: one torch thread (on a shared CPU, more threads mostly wait for each other)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def net(width: int, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, width, 3, padding=1), nn.ReLU(),  # 0, 1
        nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), nn.BatchNorm2d(2 * width), nn.ReLU(),  # 2, 3, 4
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2 * width, 16), nn.ReLU(), nn.Linear(16, 3),  # 5..9
    )


def data(n: int = 64) -> TensorDataset:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 1, 8, 8, generator=g)
    return TensorDataset(x, (x.mean(dim=(1, 2, 3)) > 0).long() + (x[:, 0, 0, 0] > 1).long())


CFG = dict(epochs=3, batch_size=16, lr=0.05, progress=False, device="cpu", weight_decay=0.0)


def _hint_mse(student: nn.Module, teacher: nn.Module, hook: HintHook, x: torch.Tensor) -> float:
    feats = {}
    hs = student[4].register_forward_hook(lambda m, a, o: feats.__setitem__("s", o))
    ht = teacher[4].register_forward_hook(lambda m, a, o: feats.__setitem__("t", o))
    with torch.no_grad():
        student.eval()
        teacher.eval()
        student(x)
        teacher(x)
        value = float(hint_loss(feats["s"], feats["t"], hook.adapters["4"]))
    hs.remove()
    ht.remove()
    return value


def test_adapter_is_identity_when_channels_match() -> None:
    x = torch.randn(2, 6, 5, 5)
    assert torch.equal(make_adapter(6, 6, 4)(x), x)
    assert hint_loss(x, x.clone(), make_adapter(6, 6, 4)).item() == 0.0
    v = torch.randn(3, 7)
    assert torch.equal(make_adapter(7, 7, 2)(v), v)
    assert make_adapter(4, 9, 4)(torch.randn(1, 4, 3, 3)).shape == (1, 9, 3, 3)


def test_hint_loss_pools_to_common_size_and_checks_channels() -> None:
    s, t = torch.randn(2, 4, 8, 8), torch.randn(2, 4, 4, 4)
    expected = nn.functional.mse_loss(nn.functional.adaptive_avg_pool2d(s, 4), t)
    assert torch.allclose(hint_loss(s, t, make_adapter(4, 4, 4)), expected)
    with pytest.raises(ConfigError, match="do not line up"):
        hint_loss(s, torch.randn(2, 5, 8, 8), make_adapter(4, 4, 4))


def test_hints_train_the_student_toward_teacher_features_and_the_adapter() -> None:
    teacher, student = net(8, 0).eval(), net(4, 1)
    hook = HintHook({"4": "4"}, weight=5.0, example_inputs=torch.randn(1, 1, 8, 8))
    x = data().tensors[0]
    # hints only: soft targets off, teacher given to fit (its forward fills the teacher features)
    fit(student, data(), TrainConfig(**CFG, distill_alpha=0.0), teacher=teacher, hooks=[hook])
    adapter = hook.adapters["4"]
    assert adapter.weight.shape == (16, 8, 1, 1)
    trained = _hint_mse(student, teacher, hook, x)
    # the same student and adapter shapes without hint training
    baseline_student, baseline_hook = net(4, 1), HintHook({"4": "4"}, example_inputs=torch.randn(1, 1, 8, 8))
    fit(baseline_student, data(), TrainConfig(**CFG), hooks=[baseline_hook], teacher=teacher)
    baseline_hook.weight = 0.0
    assert trained < _hint_mse(baseline_student, teacher, hook, x)
    # forward hooks are gone after training
    assert not student[4]._forward_hooks and not teacher[4]._forward_hooks


def test_adapter_parameters_are_optimized() -> None:
    class Recording(HintHook):
        def on_train_start(self, state) -> None:
            weight = self.adapters["4"].weight
            self.in_optimizer = any(p is weight for g in state.optimizer.param_groups for p in g["params"])
            self.initial = weight.detach().clone()
            super().on_train_start(state)

    teacher, student = net(8, 0).eval(), net(4, 1)
    hook = Recording(["4"], example_inputs=torch.randn(1, 1, 8, 8))
    fit(student, data(), TrainConfig(**{**CFG, "epochs": 1}), teacher=teacher, hooks=[hook])
    assert hook.in_optimizer
    assert not torch.equal(hook.initial, hook.adapters["4"].weight.detach())


def test_teacher_on_the_hook_runs_itself_when_fit_has_none() -> None:
    teacher, student = net(8, 0).eval(), net(4, 1)
    calls = {"n": 0}
    teacher.register_forward_hook(lambda *a: calls.__setitem__("n", calls["n"] + 1))
    hook = HintHook({"3": "3"}, teacher=teacher)  # shapes inferred from the modules (BatchNorm2d: 8 / 16)
    result = fit(student, data(), TrainConfig(**{**CFG, "epochs": 1}), hooks=[hook])
    assert calls["n"] == 4  # one teacher forward per step (64 samples / 16)
    assert hook.adapters["3"].weight.shape == (16, 8, 1, 1)
    assert result.history


def test_linear_layer_hint_and_soft_targets_together() -> None:
    teacher, student = net(8, 0).eval(), net(4, 1)
    hook = HintHook({"7": "7"})  # Linear(.., 16) -> linear adapter 16 -> 16, identity init
    fit(student, data(), TrainConfig(**{**CFG, "epochs": 1}, distill_alpha=0.5), teacher=teacher, hooks=[hook])
    assert isinstance(hook.adapters["7"], nn.Linear)


def test_shapes_that_cannot_be_inferred_ask_for_example_inputs() -> None:
    hook = HintHook({"4": "4"})  # a ReLU: no channel attribute
    with pytest.raises(ConfigError, match="example_inputs"):
        fit(net(4, 1), data(), TrainConfig(**{**CFG, "epochs": 1}), teacher=net(8, 0), hooks=[hook])


def test_bad_layer_names_and_options() -> None:
    with pytest.raises(ConfigError):
        HintHook({})
    with pytest.raises(ConfigError):
        HintHook(["4"], weight=-1)
    hook = HintHook({"nope": "4"}, example_inputs=torch.randn(1, 1, 8, 8))
    with pytest.raises(SlimkitError, match="nope"):
        fit(net(4, 1), data(), TrainConfig(**{**CFG, "epochs": 1}), teacher=net(8, 0), hooks=[hook])
