"""``slimkit prune-weights`` in-process: exact sparsity, zeros saved, sparse copy written, bad input refused."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from slimkit.cli import main
from slimkit.models import create_model
from slimkit.models._registry import MODELS
from slimkit.prune.unstructured import from_sparse_state_dict, sparsity_report
from slimkit.state import load_model, save_model


def _cli_tiny(*, in_channels: int = 1, num_classes: int = 3, width: float = 1.0) -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(in_channels * 16, 20), nn.ReLU(), nn.Linear(20, num_classes))


@pytest.fixture(autouse=True)
def _registered_tiny_model():
    """Registered only while this file's tests run, so zoo-wide tests never see it."""
    MODELS.add("unstructured_cli_tiny", _cli_tiny, overwrite=True)
    yield
    MODELS.remove("unstructured_cli_tiny")
pytestmark = pytest.mark.cli


@pytest.fixture
def model_file(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    return save_model(create_model("unstructured_cli_tiny"), tmp_path / "dense.pt")


def test_prune_weights_command(model_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out, sparse_out = tmp_path / "pruned.pt", tmp_path / "pruned.sparse.pt"
    code = main(["prune-weights", str(model_file), "--sparsity", "0.75", "--scope", "layer", "--out", str(out),
                 "--sparse-out", str(sparse_out)])
    assert code == 0
    pruned = load_model(out)
    report = sparsity_report(pruned)
    assert report.per_layer == {"1.weight": pytest.approx(0.75), "3.weight": pytest.approx(0.75)}
    dense, masks = from_sparse_state_dict(torch.load(sparse_out, weights_only=True))
    for k, v in pruned.state_dict().items():
        assert torch.equal(dense[k], v)
    assert int(masks["1.weight"].sum()) == 80
    printed = capsys.readouterr().out
    assert "1.weight" in printed and "75.00%" in printed


def test_prune_weights_command_rejects_bad_sparsity(model_file: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "pruned.pt"
    assert main(["prune-weights", str(model_file), "--sparsity", "1.5", "--out", str(out)]) == 2
    assert "sparsity" in capsys.readouterr().err
    assert not out.exists()


def test_prune_weights_command_with_agp_finetuning(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    torch.manual_seed(0)
    dense = save_model(create_model("lenet300", in_channels=1, num_classes=10), tmp_path / "dense.pt")
    out = tmp_path / "pruned.pt"
    code = main(["prune-weights", str(dense), "--sparsity", "0.8", "--method", "agp", "--data", "synthetic",
                 "--subset", "200", "--epochs", "1", "--out", str(out)])
    assert code == 0
    pruned = load_model(out)
    assert sparsity_report(pruned).sparsity == pytest.approx(0.8, abs=1e-4)
    assert "test accuracy: dense" in capsys.readouterr().out


def test_prune_weights_command_needs_data_to_finetune(model_file: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture) -> None:
    assert main(["prune-weights", str(model_file), "--epochs", "2", "--out", str(tmp_path / "o.pt")]) == 2
    assert "--data" in capsys.readouterr().err
