"""Each hook point fires at its place in the loop and can change training."""

import pytest
import torch
from torch import nn

from slimkit.train import Hook, TrainConfig, fit
from slimkit.train.checkpoint import load_checkpoint

QUICK = dict(epochs=2, batch_size=64, lr=0.1, progress=False, device="cpu")  # 4 steps per epoch on 256 samples


class Recorder(Hook):
    def __init__(self):
        self.calls = []

    def on_train_start(self, state):
        assert state.optimizer is not None and state.step == 0
        self.calls.append("start")

    def extra_loss(self, state, outputs, targets):
        assert outputs.shape == (len(targets), 3) and state.inputs.shape == (len(targets), 8)
        assert outputs.requires_grad and state.model.training
        self.calls.append("loss")
        return None

    def after_backward(self, state):
        assert all(p.grad is not None for p in state.model.parameters())
        self.calls.append("backward")

    def after_step(self, state):
        self.calls.append(f"step{state.step}")

    def on_epoch_end(self, state):
        assert len(state.history) == state.epoch + 1  # this epoch's metrics are already recorded
        self.calls.append(f"epoch{state.epoch}")

    def on_train_end(self, state):
        self.calls.append("end")


def test_hook_points_fire_in_order(blobs, mlp):
    recorder = Recorder()
    fit(mlp(), blobs, TrainConfig(**QUICK), hooks=[recorder])
    per_step = lambda s: ["loss", "backward", f"step{s}"]  # noqa: E731
    expected = ["start"]
    for epoch in range(2):
        for s in range(4 * epoch + 1, 4 * epoch + 5):
            expected += per_step(s)
        expected.append(f"epoch{epoch}")
    assert recorder.calls == expected + ["end"]


class KeepZero(Hook):
    """Re-applies a pruning mask after every step: pruned weights stay exactly zero despite momentum."""

    def __init__(self, mask):
        self.mask = mask

    def on_train_start(self, state):
        with torch.no_grad():
            state.model[0].weight.mul_(self.mask)

    def after_step(self, state):
        with torch.no_grad():
            state.model[0].weight.mul_(self.mask)


def test_masking_hook_keeps_weights_exactly_zero_under_momentum(blobs, mlp):
    mask = (torch.rand(16, 8, generator=torch.Generator().manual_seed(0)) > 0.5).float()
    config = TrainConfig(**{**QUICK, "momentum": 0.9, "weight_decay": 1e-3})
    masked = mlp()
    fit(masked, blobs, config, hooks=[KeepZero(mask)])
    assert torch.all(masked[0].weight[mask == 0] == 0)
    assert torch.all(masked[0].weight[mask == 1] != 0)
    # control: zeroing only at the start is undone by momentum and gradients
    control = mlp()
    with torch.no_grad():
        control[0].weight.mul_(mask)
    fit(control, blobs, config)
    assert torch.count_nonzero(control[0].weight[mask == 0]) > 0


class FreezeFirstLayer(Hook):
    def after_backward(self, state):
        state.model[0].weight.grad.zero_()


def test_after_backward_edits_gradients(blobs, mlp):
    model = mlp()
    before = model[0].weight.detach().clone()
    fit(model, blobs, TrainConfig(**{**QUICK, "weight_decay": 0.0}), hooks=[FreezeFirstLayer()])
    assert torch.equal(model[0].weight, before)
    assert not torch.equal(model[4].weight, mlp()[4].weight)


class L1OnBatchNorm(Hook):
    """Network slimming's sparsity term on BN scales."""

    def __init__(self, strength):
        self.strength = strength

    def extra_loss(self, state, outputs, targets):
        return self.strength * sum(m.weight.abs().sum() for m in state.model.modules() if isinstance(m, nn.BatchNorm1d))


def test_extra_loss_changes_training(blobs, mlp):
    plain, sparse = mlp(), mlp()
    config = TrainConfig(**{**QUICK, "epochs": 3})
    plain_result = fit(plain, blobs, config)
    sparse_result = fit(sparse, blobs, config, hooks=[L1OnBatchNorm(0.3)])
    assert sparse[1].weight.abs().sum() < 0.8 * plain[1].weight.abs().sum()
    assert sparse_result.history[0]["loss"] > plain_result.history[0]["loss"]  # the term is part of the loss


class SoftFilterPruning(Hook):
    """Zeroes the weakest filter of the first layer at every epoch end; it may regrow during the next epoch."""

    def __init__(self):
        self.regrown = []

    def on_epoch_end(self, state):
        weight = state.model[0].weight
        if state.epoch > 0:
            self.regrown.append(bool(weight[self.row].abs().sum() > 0))
        with torch.no_grad():
            self.row = int(weight.norm(dim=1).argmin())
            weight[self.row] = 0.0


def test_on_epoch_end_runs_before_the_checkpoint(tmp_path, blobs, mlp):
    model = mlp()
    hook = SoftFilterPruning()
    fit(model, blobs, TrainConfig(**{**QUICK, "epochs": 3}), hooks=[hook], checkpoint_dir=tmp_path)
    assert torch.all(model[0].weight[hook.row] == 0)
    saved = load_checkpoint(tmp_path)
    assert torch.all(saved["model"]["0.weight"][hook.row] == 0)  # the epoch's checkpoint includes the hook's edit
    assert hook.regrown == [True, True]  # soft pruning: gradients revive the filter within the next epoch


class Regressor(Hook):
    """A hook with its own trainable parameter (like a FitNets regressor): pulls the logits' mean to a target."""

    def trainable_parameters(self, state):
        assert state.optimizer is None
        self.bias = nn.Parameter(torch.zeros(3, device=state.device))
        return [self.bias]

    def extra_loss(self, state, outputs, targets):
        return ((outputs.detach().mean(0) - self.bias) ** 2).sum()


def test_hook_parameters_are_trained_and_checkpointed(tmp_path, blobs, mlp):
    hook = Regressor()
    fit(mlp(), blobs, TrainConfig(**{**QUICK, "epochs": 3}), hooks=[hook], checkpoint_dir=tmp_path)
    assert hook.bias.abs().sum() > 0
    saved = load_checkpoint(tmp_path)
    assert torch.equal(saved["hook_params"]["hooks.0.0"], hook.bias.detach())
    assert "hooks.0.0" in saved["optimizer"]["state"]


@pytest.mark.parametrize("alpha", [0.5, 1.0])
def test_teacher_outputs_reach_hooks_and_loss(blobs, mlp, alpha):
    from slimkit.distill import distillation_loss

    teacher = mlp(seed=7)
    teacher.train()
    teacher_before = {k: v.clone() for k, v in teacher.state_dict().items()}
    checks = []

    class Check(Hook):
        def extra_loss(self, state, outputs, targets):
            assert state.teacher is teacher and not teacher.training
            assert not state.teacher_outputs.requires_grad
            expected = teacher(state.inputs)
            assert torch.allclose(state.teacher_outputs, expected)
            self.expected = distillation_loss(outputs, expected, targets, alpha=alpha, temperature=2.0)
            return None

        def after_backward(self, state):
            checks.append(torch.allclose(state.loss, self.expected))

    config = TrainConfig(**{**QUICK, "distill_alpha": alpha, "distill_temperature": 2.0})
    fit(mlp(), blobs, config, teacher=teacher, hooks=[Check()])
    assert checks and all(checks)
    assert teacher.training  # mode restored after fit
    assert all(torch.equal(teacher_before[k], v) for k, v in teacher.state_dict().items())  # teacher untouched


class FeatureHint(Hook):
    """FitNets-style: a learned regressor maps the student's hidden features onto the teacher's."""

    def trainable_parameters(self, state):
        self.regressor = nn.Linear(16, 16).to(state.device)
        return list(self.regressor.parameters())

    def on_train_start(self, state):
        self.features = {}
        state.model[0].register_forward_hook(lambda m, i, o: self.features.__setitem__("student", o))
        state.teacher[0].register_forward_hook(lambda m, i, o: self.features.__setitem__("teacher", o))

    def extra_loss(self, state, outputs, targets):
        assert self.features["teacher"].shape == self.features["student"].shape  # both captured this step
        self.last = nn.functional.mse_loss(self.regressor(self.features["student"]), self.features["teacher"])
        return self.last


def test_feature_hint_hook_uses_intermediate_features(blobs, mlp):
    teacher = mlp(seed=5)
    hook = FeatureHint()
    losses = []

    class Track(Hook):
        def after_step(self, state):
            losses.append(hook.last.item())

    fit(mlp(), blobs, TrainConfig(**{**QUICK, "epochs": 4}), teacher=teacher, hooks=[hook, Track()])
    assert losses[-1] < 0.5 * losses[0]
