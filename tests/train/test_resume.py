"""An interrupted run resumed from its checkpoint ends bit-identical to one that never stopped."""

import zipfile

import pytest
import torch

from slimkit.codec.container import MAGIC
from slimkit.core.errors import CheckpointError
from slimkit.testing import CrashAt, SimulatedCrash
from slimkit.train import Hook, TrainConfig, fit
from slimkit.train.checkpoint import checkpoint_path, load_checkpoint


class Counter(Hook):
    """A stateful hook: its count must survive the resume through state_dict/load_state_dict."""

    def __init__(self):
        self.count = 0

    def after_step(self, state):
        self.count += 1

    def state_dict(self):
        return {"count": self.count}

    def load_state_dict(self, state):
        self.count = state["count"]


def _strip_timing(history):
    return [{k: v for k, v in h.items() if k not in ("images_per_s", "seconds")} for h in history]


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_interrupted_run_resumes_bit_identical(tmp_path, blobs, blobs_val, mlp, optimizer):
    config = TrainConfig(epochs=3, batch_size=32, lr=0.05, optimizer=optimizer, warmup_epochs=0.5, progress=False,
                         device="cpu")
    reference = mlp()
    ref_counter = Counter()
    ref = fit(reference, blobs, config, val_data=blobs_val, hooks=[ref_counter], checkpoint_dir=tmp_path / "ref")

    model = mlp()
    with pytest.raises(SimulatedCrash):  # crash in epoch 2 (8 steps per epoch)
        fit(model, blobs, config, val_data=blobs_val, hooks=[Counter(), CrashAt(12)], checkpoint_dir=tmp_path / "run")
    saved = load_checkpoint(tmp_path / "run")
    assert saved["epoch"] == 1 and saved["step"] == 8

    resumed_model = mlp()  # a fresh process would rebuild the model from scratch
    counter = Counter()
    resumed = fit(resumed_model, blobs, config, val_data=blobs_val, hooks=[counter], checkpoint_dir=tmp_path / "run")
    assert resumed.resumed_from_epoch == 1
    ref_state, new_state = reference.state_dict(), resumed_model.state_dict()
    assert ref_state.keys() == new_state.keys()
    for key in ref_state:
        assert torch.equal(ref_state[key], new_state[key]), key
    assert _strip_timing(resumed.history) == _strip_timing(ref.history)
    assert counter.count == ref_counter.count == 24
    a = load_checkpoint(tmp_path / "ref")
    b = load_checkpoint(tmp_path / "run")
    for name, state in a["optimizer"]["state"].items():
        for key, value in state.items():
            assert torch.equal(value, b["optimizer"]["state"][name][key]), (name, key)
    assert a["scheduler"]["last_epoch"] == b["scheduler"]["last_epoch"] == 24


def test_checkpoint_is_safe_and_keyed_by_parameter_name(tmp_path, blobs, mlp):
    model = mlp()
    fit(model, blobs, TrainConfig(epochs=1, batch_size=64, progress=False, device="cpu"), checkpoint_dir=tmp_path)
    data = checkpoint_path(tmp_path).read_bytes()
    assert data.startswith(MAGIC) and not zipfile.is_zipfile(checkpoint_path(tmp_path))  # slimkit's container
    assert b"torch._utils" not in data  # no pickled tensor anywhere
    saved = load_checkpoint(tmp_path)
    names = [n for n, _ in model.named_parameters()]
    assert sorted(saved["optimizer"]["state"]) == sorted(names)
    assert saved["optimizer"]["param_groups"][0]["params"] == names
    assert saved["optimizer"]["state"]["0.weight"]["momentum_buffer"].shape == model[0].weight.shape
    assert {"model", "optimizer", "scheduler", "rng", "epoch", "history", "config"} <= set(saved)
    assert not list(tmp_path.glob(".*.tmp"))  # atomic write left no temporary file


def test_finished_run_is_restored_without_training(tmp_path, blobs, mlp):
    config = TrainConfig(epochs=2, batch_size=64, progress=False, device="cpu")
    trained = mlp()
    first = fit(trained, blobs, config, checkpoint_dir=tmp_path)
    steps = []

    class Count(Hook):
        def after_step(self, state):
            steps.append(state.step)

    again = mlp()
    second = fit(again, blobs, config, checkpoint_dir=tmp_path, hooks=[Count()])
    assert steps == [] and second.resumed_from_epoch == 2
    assert second.history == first.history
    assert all(torch.equal(a, b) for a, b in zip(trained.state_dict().values(), again.state_dict().values()))


def test_resume_false_starts_over_and_other_config_is_refused(tmp_path, blobs, mlp):
    config = TrainConfig(epochs=1, batch_size=64, progress=False, device="cpu")
    fit(mlp(), blobs, config, checkpoint_dir=tmp_path)
    fresh = fit(mlp(), blobs, config, checkpoint_dir=tmp_path, resume=False)
    assert fresh.resumed_from_epoch == 0 and len(fresh.history) == 1
    with pytest.raises(CheckpointError, match="lr"):
        fit(mlp(), blobs, TrainConfig(epochs=1, batch_size=64, lr=0.2, progress=False), checkpoint_dir=tmp_path)
    # progress/device may differ between the interrupted run and its resumption
    fit(mlp(), blobs, TrainConfig(epochs=1, batch_size=64, progress=True, device="auto"), checkpoint_dir=tmp_path)


def test_checkpoint_of_another_model_is_refused(tmp_path, blobs, mlp):
    config = TrainConfig(epochs=1, batch_size=64, progress=False, device="cpu")
    fit(mlp(), blobs, config, checkpoint_dir=tmp_path)
    other = torch.nn.Sequential(torch.nn.Linear(8, 3))
    with pytest.raises(CheckpointError, match="does not match"):
        fit(other, blobs, config, checkpoint_dir=tmp_path)


def test_garbage_checkpoint_is_refused(tmp_path, blobs, mlp):
    checkpoint_path(tmp_path).write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="last.pt"):
        fit(mlp(), blobs, TrainConfig(epochs=1, progress=False), checkpoint_dir=tmp_path)
