"""The decompose and distill recipe stages in a real run, and the ``slimkit decompose`` command in-process."""

from __future__ import annotations

import json

import pytest
import torch

import slimkit
from slimkit.cli import main
from slimkit.lowrank import Factorized, decompose
from slimkit.lowrank.checkpoint import load_decomposed
from slimkit.models import create_model
from slimkit.recipe import parse_recipe, run_recipe
from slimkit.state import save_model

SYNTHETIC = {"name": "synthetic", "options": {"num_samples": 96, "in_channels": 1, "num_classes": 3,
                                               "image_size": 28}}
QUICK = {"batch_size": 32, "progress": False, "device": "cpu"}


def test_decompose_then_distill_with_hints_in_a_recipe(tmp_path) -> None:
    recipe = parse_recipe({
        "name": "lr", "model": {"name": "lenet5"}, "data": SYNTHETIC, "report": {"latency": False},
        "stages": [
            {"type": "train", "epochs": 1, **QUICK},
            {"type": "decompose", "method": "auto", "energy": 0.8, "ignore": ["features.0"]},
            {"type": "distill", "epochs": 1, **QUICK, "hints": {"features.5": "features.5"}},
        ],
    })
    result = run_recipe(recipe, tmp_path / "run", echo=lambda *_: None)
    decomposed = result.stages[1]["metrics"]
    assert decomposed["decomposed_layers"] >= 2 and decomposed["params_after"] < decomposed["params_before"]
    assert decomposed["layer_params_reduction"] > 1
    assert (tmp_path / "run" / "01-decompose" / "decompose.txt").read_text().startswith("layer")
    saved = json.loads((tmp_path / "run" / "01-decompose" / "decompose.json").read_text())
    assert saved["params_after"] == decomposed["params_after"]
    distilled = result.stages[2]["metrics"]
    assert distilled["hint_layers"] == 1 and 0.0 <= distilled["accuracy"] <= 1.0
    assert any(isinstance(m, Factorized) for m in result.model.modules())
    # the reference (teacher) is the model before decomposition
    reference = slimkit.load_model(tmp_path / "run" / "reference.pt")
    assert not any(isinstance(m, Factorized) for m in reference.modules())


def test_distill_stage_rejects_bad_options() -> None:
    from slimkit.core.errors import ConfigError

    with pytest.raises(ConfigError, match="hint_weight"):
        parse_recipe({"name": "x", "model": {"name": "lenet5"}, "data": SYNTHETIC,
                      "stages": [{"type": "distill", "hint_weight": -1}]})
    with pytest.raises(ConfigError, match="decompose"):
        parse_recipe({"name": "x", "model": {"name": "lenet5"}, "data": SYNTHETIC,
                      "stages": [{"type": "decompose", "rank": 4, "energy": 0.5}]})


@pytest.mark.cli
def test_cli_decompose_saves_a_loadable_model(tmp_path, capsys) -> None:
    torch.manual_seed(0)
    source = tmp_path / "lenet.pt"
    save_model(create_model("lenet5", in_channels=1, num_classes=10), source)
    out = tmp_path / "small.pt"
    assert main(["decompose", str(source), "--out", str(out), "--method", "svd", "--rank", "8"]) == 0
    assert "svd" in capsys.readouterr().out
    loaded = load_decomposed(out).eval()
    expected = load_decomposed(source).eval()
    decompose(expected, torch.zeros(1, 1, 28, 28), method="svd", rank=8)
    x = torch.randn(2, 1, 28, 28)
    assert torch.allclose(loaded(x), expected(x), atol=1e-6)
    assert {m.ranks for m in loaded.modules() if isinstance(m, Factorized)} == {(8,)}


@pytest.mark.cli
def test_cli_decompose_bad_option_exits_2(tmp_path, capsys) -> None:
    source = tmp_path / "lenet.pt"
    save_model(create_model("lenet5", in_channels=1, num_classes=10), source)
    assert main(["decompose", str(source), "--out", str(tmp_path / "o.pt"), "--energy", "2"]) == 2
    assert "energy" in capsys.readouterr().err


def test_decompose_stage_recalibrates_batchnorm_on_training_batches(tmp_path) -> None:
    """``recalibrate_batches``: the factored model's BatchNorm statistics are re-estimated (0 leaves them)."""
    def run(batches: int):
        torch.manual_seed(0)
        recipe = parse_recipe({
            "name": "lr", "model": {"name": "vgg11_bn", "kwargs": {"in_channels": 1, "num_classes": 3,
                                                                    "width": 0.125}},
            "data": SYNTHETIC, "report": {"latency": False},
            "stages": [{"type": "decompose", "method": "tucker", "rank": 2, "ignore": ["features.0"],
                        "recalibrate_batches": batches}],
        })
        model = run_recipe(recipe, tmp_path / f"run{batches}", echo=lambda *_: None).model
        return {n: m.running_mean.clone() for n, m in model.named_modules() if isinstance(m, torch.nn.BatchNorm2d)}

    stale, fresh = run(0), run(2)
    assert stale.keys() == fresh.keys()
    assert all(torch.count_nonzero(v) == 0 for v in stale.values())  # never trained: the initial zeros
    changed = [n for n in fresh if not torch.equal(fresh[n], stale[n])]
    assert len(changed) == len(fresh)
    from slimkit.core.errors import ConfigError

    with pytest.raises(ConfigError, match="recalibrate_batches"):
        parse_recipe({"name": "x", "model": {"name": "lenet5"}, "data": SYNTHETIC,
                      "stages": [{"type": "decompose", "rank": 4, "recalibrate_batches": -1}]})
