"""Masks through optimizer steps, the AGP schedule, iterative pruning and lottery-ticket rewinding."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from slimkit import ConfigError, prune_weights
from slimkit.prune.unstructured import (
    AGPHook,
    MaskHook,
    RewindHook,
    agp_plan,
    agp_sparsity,
    get_masks,
    iterative_prune,
    lottery_ticket,
    rewind_weights,
    round_sparsities,
    sparsity_report,
)

OPTIMIZERS = {
    "sgd_momentum_wd": lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, weight_decay=1e-2),
    "adam": lambda p: torch.optim.Adam(p, lr=1e-2),
    "adamw": lambda p: torch.optim.AdamW(p, lr=1e-2, weight_decay=0.1),
}


def _pruned_entries(model: nn.Module) -> torch.Tensor:
    return torch.cat([model.get_parameter(n).detach()[~m] for n, m in get_masks(model).items()])


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_masks_survive_optimizer_steps(mlp: nn.Module, train, name: str) -> None:
    optimizer = train(mlp, steps=5, make_optimizer=OPTIMIZERS[name])  # momentum/moments built up while dense
    prune_weights(mlp, sparsity=0.8)
    masks = {k: v.clone() for k, v in get_masks(mlp).items()}
    control = copy.deepcopy(mlp)
    # continue with the same optimizer state (as a fine-tuning engine resuming would)
    state = {"model": mlp, "optimizer": optimizer}
    hook = MaskHook()
    gen = torch.Generator().manual_seed(1)
    x, y = torch.randn(32, 10, generator=gen), torch.randint(0, 3, (32,), generator=gen)
    ctrl_opt = OPTIMIZERS[name](control.parameters())
    ctrl_opt.load_state_dict(copy.deepcopy(optimizer.state_dict()))  # no shared buffers
    for _ in range(10):
        for model, opt, use_hook in ((mlp, optimizer, True), (control, ctrl_opt, False)):
            loss = nn.functional.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            if use_hook:
                hook.after_backward(type("S", (), state))
            opt.step()
            if use_hook:
                hook.after_step(type("S", (), state))
    assert torch.count_nonzero(_pruned_entries(mlp)) == 0
    assert torch.count_nonzero(_pruned_entries(control)) > 0  # without the hook they do move
    assert {k: v for k, v in get_masks(mlp).items()}.keys() == masks.keys()
    assert all(torch.equal(get_masks(mlp)[k], masks[k]) for k in masks)
    for name_, mask in masks.items():
        for value in optimizer.state[mlp.get_parameter(name_)].values():
            if isinstance(value, torch.Tensor) and value.shape == mask.shape:
                assert torch.count_nonzero(value[~mask]) == 0


def test_mask_hook_in_training_loop(convnet: nn.Module, train) -> None:
    prune_weights(convnet, sparsity=0.7, scope="layer")
    train(convnet, [MaskHook()], steps=15, in_shape=(1, 8, 8), make_optimizer=OPTIMIZERS["sgd_momentum_wd"])
    assert torch.count_nonzero(_pruned_entries(convnet)) == 0
    assert sparsity_report(convnet).sparsity == pytest.approx(0.7, abs=0.01)


@pytest.mark.parametrize("step", [0, 5, 10, 15, 20, 37, 40, 41, 55, 100])
def test_agp_schedule_matches_formula(step: int) -> None:
    s_i, s_f, t0, n, dt = 0.1, 0.9, 10, 6, 5
    got = agp_sparsity(step, initial=s_i, final=s_f, start_step=t0, num_steps=n, frequency=dt)
    if step < t0:
        assert got == 0.0
        return
    t = t0 + min((step - t0) // dt, n) * dt  # the last pruning step reached
    assert got == pytest.approx(s_f + (s_i - s_f) * (1 - (t - t0) / (n * dt)) ** 3)
    if step >= t0 + n * dt:
        assert got == pytest.approx(s_f)
    if step == t0:
        assert got == pytest.approx(s_i)


def test_agp_hook_prunes_on_schedule(mlp: nn.Module, train) -> None:
    hook = AGPHook(sparsity=0.8, initial_sparsity=0.2, start_step=2, num_steps=4, frequency=3, scope="global")
    train(mlp, [hook], steps=20, make_optimizer=OPTIMIZERS["sgd_momentum_wd"])
    assert [t for t, _ in hook.history] == [2, 5, 8, 11, 14]
    for t, s in hook.history:
        assert s == pytest.approx(0.8 + (0.2 - 0.8) * (1 - (t - 2) / 12) ** 3)
    total = sum(m.weight.numel() for m in mlp if isinstance(m, nn.Linear))
    assert sparsity_report(mlp).nonzero == total - round(0.8 * total)
    assert torch.count_nonzero(_pruned_entries(mlp)) == 0


def test_agp_hook_rejects_bad_options() -> None:
    with pytest.raises(ConfigError, match="sparsity"):
        AGPHook(sparsity=1.5)
    with pytest.raises(ConfigError, match="initial_sparsity"):
        AGPHook(sparsity=0.5, initial_sparsity=0.7)
    with pytest.raises(ConfigError, match="frequency"):
        AGPHook(sparsity=0.5, frequency=0)


def test_agp_plan_fits_in_training() -> None:
    start, n, dt = agp_plan(1000, end_fraction=0.75, events=20)
    assert start == 0 and n == 20 and start + n * dt <= 750


def test_round_sparsities() -> None:
    geo = round_sparsities(0.936, 3)
    assert geo[-1] == pytest.approx(0.936)
    kept = [1 - s for s in geo]
    assert kept[1] / kept[0] == pytest.approx(kept[0]) and kept[2] / kept[1] == pytest.approx(kept[0])
    assert round_sparsities(0.9, 3, "linear") == pytest.approx([0.3, 0.6, 0.9])
    with pytest.raises(ConfigError, match="rounds"):
        round_sparsities(0.9, 0)


def test_rewind_restores_saved_weights_on_survivors(mlp: nn.Module, train) -> None:
    hook = RewindHook(step=3)
    train(mlp, [hook], steps=10)
    early = hook.snapshot
    assert early is not None
    assert not torch.equal(early["0.weight"], mlp[0].weight)  # training moved on after the rewind point
    prune_weights(mlp, sparsity=0.75, scope="layer")
    masks = {k: v.clone() for k, v in get_masks(mlp).items()}
    rewind_weights(mlp, early)
    for name, mask in masks.items():
        weight = mlp.get_parameter(name).detach()
        assert torch.equal(weight[mask], early[name][mask])
        assert torch.count_nonzero(weight[~mask]) == 0
    assert torch.equal(mlp[0].bias, early["0.bias"])


def test_rewind_hook_at_step_zero_is_the_initialization(mlp: nn.Module, train) -> None:
    init = {k: v.clone() for k, v in mlp.state_dict().items()}
    hook = RewindHook(step=0)
    train(mlp, [hook], steps=3)
    assert all(torch.equal(hook.snapshot[k], init[k]) for k in init)


def test_iterative_prune_rounds(mlp: nn.Module, train) -> None:
    seen: list[float] = []

    def finetune(model: nn.Module, hooks) -> None:
        seen.append(sparsity_report(model).sparsity)
        train(model, hooks, steps=6, make_optimizer=OPTIMIZERS["sgd_momentum_wd"])

    report = iterative_prune(mlp, finetune, sparsity=0.9, rounds=3, evaluate=lambda m: 0.5)
    assert [r.round for r in report.rounds] == [0, 1, 2, 3]
    assert seen == pytest.approx(round_sparsities(0.9, 3), abs=0.01)
    assert report.sparsity == pytest.approx(0.9, abs=0.005)
    assert torch.count_nonzero(_pruned_entries(mlp)) == 0
    assert "round" in report.table() and report.to_dict()["rounds"][0]["accuracy"] == 0.5


def test_lottery_ticket_rewinds_each_round(make_mlp, train) -> None:
    model = make_mlp(3)
    init = {k: v.clone() for k, v in model.state_dict().items()}
    starts: list[dict[str, torch.Tensor]] = []

    def train_fn(m: nn.Module, hooks) -> None:
        starts.append({k: v.clone() for k, v in m.state_dict().items()})
        train(m, hooks, steps=8)

    report = lottery_ticket(model, train_fn, sparsity=0.75, rounds=2, rewind_step=0, scope="layer")
    assert len(starts) == 3 and report.sparsity == pytest.approx(0.75, abs=0.01)
    masks = get_masks(model)
    for start in starts[1:]:  # every retraining starts from the initial values on the survivors
        for name in masks:
            kept = start[name] != 0
            assert torch.equal(start[name][kept], init[name][kept])
    with pytest.raises(ConfigError, match="rewind_step"):
        lottery_ticket(make_mlp(4), train_fn, sparsity=0.5, rewind_step=1000)


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_fresh_optimizer_without_hooks_keeps_zeros(convnet: nn.Module, train, name: str) -> None:
    """A training loop that knows nothing of masks (e.g. another stage's fine-tuning) keeps pruned weights zero."""
    prune_weights(convnet, sparsity=0.6)
    train(convnet, [], steps=12, in_shape=(1, 8, 8), make_optimizer=OPTIMIZERS[name])
    assert torch.count_nonzero(_pruned_entries(convnet)) == 0
    assert sparsity_report(convnet).sparsity == pytest.approx(0.6, abs=0.005)


def test_permanent_model_trains_densely_again(convnet: nn.Module, train) -> None:
    from slimkit import make_permanent

    prune_weights(convnet, sparsity=0.6)
    make_permanent(convnet)
    train(convnet, [], steps=5, in_shape=(1, 8, 8), make_optimizer=OPTIMIZERS["sgd_momentum_wd"])
    assert sparsity_report(convnet).sparsity < 0.1  # hooks removed with the masks: zeros regrow


def test_copies_keep_masking_gradients(convnet: nn.Module, train) -> None:
    prune_weights(convnet, sparsity=0.6)
    clone = copy.deepcopy(convnet)  # tensor hooks are not deep-copied; the first forward re-installs them
    train(clone, [], steps=6, in_shape=(1, 8, 8), make_optimizer=OPTIMIZERS["adam"])
    assert torch.count_nonzero(_pruned_entries(clone)) == 0
    assert sparsity_report(clone).sparsity == pytest.approx(0.6, abs=0.005)


def test_hooks_resume_from_their_state(make_mlp, train) -> None:
    """A restarted run (new model object, masks gone) gets its masks and schedule back from the hook state."""
    model = make_mlp(5)
    hook = AGPHook(sparsity=0.7, start_step=0, num_steps=2, frequency=2)
    train(model, [hook], steps=3)
    saved = hook.state_dict()
    masks = {k: v.clone() for k, v in get_masks(model).items()}
    restarted = make_mlp(5)
    restarted.load_state_dict(model.state_dict())  # what the engine restores from its checkpoint
    again = AGPHook(sparsity=0.7, start_step=0, num_steps=2, frequency=2)
    again.load_state_dict(saved)
    assert again.history == hook.history
    from types import SimpleNamespace

    again.after_backward(SimpleNamespace(model=restarted, optimizer=None, step=3))
    assert all(torch.equal(get_masks(restarted)[k], masks[k]) for k in masks)


def test_agp_reaches_final_sparsity_when_training_ends_early(mlp: nn.Module, train) -> None:
    hook = AGPHook(sparsity=0.75, start_step=0, num_steps=10, frequency=5)  # plan: 50 steps
    train(mlp, [hook], steps=12)
    assert hook.history[-1] == (12, 0.75)
    assert sparsity_report(mlp).sparsity == pytest.approx(0.75, abs=1e-3)
