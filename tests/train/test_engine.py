import copy
import logging

import pytest
import torch
from torch import nn

from slimkit.core.errors import ConfigError, DataError
from slimkit.train import Hook, TrainConfig, evaluate, fit

QUICK = dict(epochs=3, batch_size=32, lr=0.1, progress=False, device="cpu")


def test_fit_learns_and_reports_history(blobs, blobs_val, mlp):
    model = mlp()
    before = evaluate(model, blobs_val)
    result = fit(model, blobs, TrainConfig(**QUICK), val_data=blobs_val)
    assert [h["epoch"] for h in result.history] == [1, 2, 3]
    keys = {"epoch", "loss", "train_accuracy", "val_accuracy", "val_loss", "lr", "images_per_s", "seconds"}
    assert all(set(h) == keys for h in result.history)
    assert result.history[-1]["loss"] < result.history[0]["loss"]
    assert result.best_val_accuracy == max(h["val_accuracy"] for h in result.history)
    assert result.final == result.history[-1]
    after = evaluate(model, blobs_val)
    assert after["accuracy"] > 0.85 > before["accuracy"]
    assert after["accuracy"] == pytest.approx(result.final["val_accuracy"])
    assert all(h["images_per_s"] > 0 for h in result.history)
    # cosine: lr at epoch starts falls from the peak
    lrs = [h["lr"] for h in result.history]
    assert lrs[0] == pytest.approx(0.1) and lrs[0] > lrs[1] > lrs[2]


def test_evaluate_matches_manual_and_restores_modes(blobs, mlp):
    model = mlp()
    model.train()
    model[1].eval()  # a frozen BN must stay frozen
    result = evaluate(model, blobs, batch_size=50)
    assert model.training and not model[1].training and model[4].training
    with torch.no_grad():
        model.eval()
        logits = model(blobs.x)
    assert result["samples"] == 256
    assert result["accuracy"] == pytest.approx((logits.argmax(1) == blobs.y).float().mean().item())
    assert result["loss"] == pytest.approx(nn.functional.cross_entropy(logits, blobs.y).item(), rel=1e-5)


def test_evaluate_empty_dataset_raises(dataset_cls, mlp):
    with pytest.raises(DataError, match="empty"):
        evaluate(mlp(), dataset_cls(0))


def test_same_seed_same_weights_other_seed_differs(blobs, mlp):
    runs = []
    for seed in (0, 0, 1):
        model = mlp()
        fit(model, blobs, TrainConfig(**{**QUICK, "epochs": 1, "seed": seed}))
        runs.append(model.state_dict())
    assert all(torch.equal(runs[0][k], runs[1][k]) for k in runs[0])
    assert not all(torch.equal(runs[0][k], runs[2][k]) for k in runs[0])


def test_max_steps_per_epoch_and_step_counter(blobs, mlp):
    steps = []

    class Count(Hook):
        def after_step(self, state):
            steps.append((state.epoch, state.step))

    fit(mlp(), blobs, TrainConfig(**{**QUICK, "max_steps_per_epoch": 2}), hooks=[Count()])
    assert steps == [(0, 1), (0, 2), (1, 3), (1, 4), (2, 5), (2, 6)]


def test_grad_clip_bounds_the_gradient_norm(blobs, mlp):
    norms = []

    class Norm(Hook):
        def after_step(self, state):
            grads = [p.grad for p in state.model.parameters() if p.grad is not None]
            norms.append(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads])).item())

    fit(mlp(), blobs, TrainConfig(**{**QUICK, "epochs": 1, "lr": 1.0, "grad_clip": 0.01}), hooks=[Norm()])
    assert len(norms) == 8 and max(norms) <= 0.01 + 1e-6


@pytest.mark.parametrize("optimizer", ["sgd", "adam", "adamw"])
def test_optimizers_train(blobs, mlp, optimizer):
    model = mlp()
    lr = 0.1 if optimizer == "sgd" else 0.05
    result = fit(model, blobs, TrainConfig(**{**QUICK, "optimizer": optimizer, "lr": lr, "nesterov": False}))
    assert result.history[-1]["train_accuracy"] > 0.8


def test_bf16_autocast_on_cpu_and_fp16_needs_cuda(blobs, mlp):
    result = fit(mlp(), blobs, TrainConfig(**{**QUICK, "epochs": 1, "amp": "bf16"}))
    assert torch.isfinite(torch.tensor(result.final["loss"]))
    with pytest.raises(ConfigError, match="fp16"):
        fit(mlp(), blobs, TrainConfig(**{**QUICK, "amp": "fp16"}))


def test_config_as_mapping_and_bad_field(blobs, mlp):
    result = fit(mlp(), blobs, {"epochs": 1, "batch_size": 64, "progress": False, "device": "cpu"})
    assert len(result.history) == 1
    with pytest.raises(ConfigError, match="lr"):
        fit(mlp(), blobs, {"epochs": 1, "lr": -1})


def test_empty_training_set_raises(dataset_cls, mlp):
    with pytest.raises(DataError, match="train_data"):
        fit(mlp(), dataset_cls(0), TrainConfig(**QUICK))


def test_one_line_per_epoch_is_logged(blobs, mlp, caplog, capsys):
    with caplog.at_level(logging.INFO, logger="slimkit.train"):
        fit(mlp(), blobs, TrainConfig(**{**QUICK, "epochs": 2, "progress": True}), val_data=blobs)
    lines = [r.getMessage() for r in caplog.records if r.name == "slimkit.train"]
    assert len(lines) == 2 and lines[0].startswith("epoch 1/2") and "val_acc" in lines[0] and "img/s" in lines[0]
    assert "epoch 2/2" in capsys.readouterr().err


def test_model_mode_restored_after_fit(blobs, mlp):
    model = mlp()
    model.eval()
    fit(model, blobs, TrainConfig(**{**QUICK, "epochs": 1}))
    assert not any(m.training for m in model.modules())


def test_frozen_parameters_are_not_trained(blobs, mlp):
    model = mlp()
    model[0].weight.requires_grad_(False)
    frozen = model[0].weight.detach().clone()
    fit(model, blobs, TrainConfig(**{**QUICK, "epochs": 1}))
    assert torch.equal(model[0].weight, frozen)
    assert not torch.equal(model[4].weight, copy.deepcopy(mlp())[4].weight)


def test_short_epochs_fetch_only_the_batches_they_use(dataset_cls, mlp):
    data = dataset_cls(256)
    fit(mlp(), data, TrainConfig(**{**QUICK, "epochs": 2, "max_steps_per_epoch": 2}))
    assert data.get_batch_calls == 4  # an extra fetch would also consume augmentation randomness
