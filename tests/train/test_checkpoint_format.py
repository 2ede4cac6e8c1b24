"""The checkpoint file: slimkit's checked container (no pickle), old torch zips still resume, bad files refused."""

import json
import zipfile

import numpy as np
import pytest
import torch

from slimkit.codec.api import write_model
from slimkit.codec.container import MAGIC, read_file
from slimkit.core.errors import CheckpointError, FormatError
from slimkit.testing import CrashAt, SimulatedCrash
from slimkit.train import Hook, TrainConfig, fit
from slimkit.train.checkpoint import LEGACY_FORMAT, checkpoint_path, load_checkpoint, save_checkpoint

CONFIG = dict(epochs=3, batch_size=32, lr=0.05, optimizer="adam", warmup_epochs=0.5, progress=False, device="cpu")


def _interrupted(tmp_path, blobs, mlp):
    """A reference run and a run that crashed in epoch 2, its epoch-1 checkpoint in ``tmp_path / 'run'``."""
    reference = mlp()
    fit(reference, blobs, TrainConfig(**CONFIG), checkpoint_dir=tmp_path / "ref")
    with pytest.raises(SimulatedCrash):
        fit(mlp(), blobs, TrainConfig(**CONFIG), hooks=[CrashAt(12)], checkpoint_dir=tmp_path / "run")
    return reference


def _assert_same_weights(a, b):
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(x, y), name


def test_checkpoint_is_a_slim_container_and_resumes_bit_identical(tmp_path, blobs, mlp):
    reference = _interrupted(tmp_path, blobs, mlp)
    path = checkpoint_path(tmp_path / "run")
    assert path.read_bytes()[: len(MAGIC)] == MAGIC and not zipfile.is_zipfile(path)
    header, _ = read_file(path)  # checksum verified; the plain values are a JSON tree in the header
    assert header["format"] == "slimkit.train" and header["version"] == 2
    assert header["tree"]["epoch"] == 1 and json.loads(json.dumps(header["tree"], allow_nan=False))
    names = {record["name"] for record in header["tensors"]}
    assert {"model.0.weight", "rng.torch", "optimizer.state.0.weight.exp_avg"} <= names
    resumed = mlp()
    result = fit(resumed, blobs, TrainConfig(**CONFIG), checkpoint_dir=tmp_path / "run")
    assert result.resumed_from_epoch == 1
    _assert_same_weights(reference, resumed)


def test_checkpoint_of_slimkit_0_1_still_resumes_bit_identical(tmp_path, blobs, mlp):
    reference = _interrupted(tmp_path, blobs, mlp)
    payload = load_checkpoint(tmp_path / "run")
    torch.save({"format": LEGACY_FORMAT, **payload}, checkpoint_path(tmp_path / "run"))  # what 0.1 wrote
    assert zipfile.is_zipfile(checkpoint_path(tmp_path / "run"))
    resumed = mlp()
    result = fit(resumed, blobs, TrainConfig(**CONFIG), checkpoint_dir=tmp_path / "run")
    assert result.resumed_from_epoch == 1
    _assert_same_weights(reference, resumed)
    assert checkpoint_path(tmp_path / "run").read_bytes().startswith(MAGIC)  # rewritten in the new format


def test_saved_values_round_trip_exactly(tmp_path):
    payload = {"epoch": 2, "betas": (0.9, 0.999), "loss": float("nan"), "by_index": {0: torch.ones(2)},
               "keys": np.arange(3, dtype=np.uint32), "half": torch.tensor([-0.0, 1.5], dtype=torch.bfloat16)}
    save_checkpoint(tmp_path, payload)
    loaded = load_checkpoint(tmp_path)
    assert loaded["betas"] == (0.9, 0.999) and loaded["epoch"] == 2 and np.isnan(loaded["loss"])
    assert list(loaded["by_index"]) == [0] and torch.equal(loaded["by_index"][0], torch.ones(2))
    assert loaded["keys"].dtype == np.uint32 and loaded["keys"].tolist() == [0, 1, 2]
    assert loaded["half"].dtype == torch.bfloat16
    assert loaded["half"].view(torch.int16).tolist() == payload["half"].view(torch.int16).tolist()


def test_hook_state_that_is_not_plain_data_is_refused_naming_its_path(tmp_path, blobs, mlp):
    class Opaque(Hook):
        def state_dict(self):
            return {"ok": 1, "callback": lambda: None}

    with pytest.raises(CheckpointError, match=r"state\.hooks\[0\]\.callback: cannot store a builtins\.function"):
        fit(mlp(), blobs, TrainConfig(epochs=1, progress=False, device="cpu"), hooks=[Opaque()],
            checkpoint_dir=tmp_path)


@pytest.mark.parametrize(("header", "message"), [
    ({"format": "slimkit.train", "version": 3, "tree": {}}, "version 3 is not readable"),
    ({"format": "slimkit.model", "version": 2, "tree": {}}, "not a slimkit training checkpoint"),
    ({"format": "slimkit.train", "version": 2, "tree": [1]}, "tree is not a mapping"),
    ({"format": "slimkit.train", "version": 2, "tree": {"w": {"$tensor": "gone"}}}, r"state\.w: refers to tensor"),
])
def test_other_files_are_refused(tmp_path, header, message):
    write_model(checkpoint_path(tmp_path), header, [], layout="dense", huffman=False)
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(tmp_path)


def test_torch_zip_without_the_old_format_is_refused(tmp_path):
    torch.save({"model": {}}, checkpoint_path(tmp_path))
    with pytest.raises(CheckpointError, match=f"expected format {LEGACY_FORMAT}"):
        load_checkpoint(tmp_path)


def test_truncated_checkpoint_is_refused(tmp_path):
    save_checkpoint(tmp_path, {"model": {"w": torch.arange(100.0)}})
    path = checkpoint_path(tmp_path)
    path.write_bytes(path.read_bytes()[:-50])
    with pytest.raises(FormatError, match=r"last\.pt: truncated"):
        load_checkpoint(tmp_path)
