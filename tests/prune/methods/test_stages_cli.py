"""Recipe stages (slim, sensitivity, progressive, soft_filter, reconstruct) and the ``slim``/``sensitivity`` CLI."""

from __future__ import annotations

import copy
import json

import pytest
import torch

import slimkit
from slimkit.cli import main
from slimkit.core.config import parse_config
from slimkit.core.errors import ConfigError
from slimkit.recipe._registry import load_stages
from slimkit.recipe.context import StageContext

FAST = {"epochs": 1, "batch_size": 32, "lr": 0.02, "progress": False, "device": "cpu"}


def _ctx(model, splits, tmp_path, name):
    return StageContext(model=copy.deepcopy(model), data=splits, example_inputs=(torch.zeros(1, 1, 8, 8),),
                        run_dir=tmp_path, stage_dir=tmp_path / name, device=torch.device("cpu"), batch_size=32)


@pytest.mark.parametrize("name, options, check", [
    ("slim", {"ratio": 0.25, "sparsity_train": FAST, "finetune": FAST}, lambda m: m["channels_after"] == 24),
    ("sensitivity", {"ratios": [0.5], "macs_reduction": 1.2}, lambda m: m["macs_reduction"] >= 1.2),
    ("progressive", {"target_accuracy": 0.5, "step": 0.3, "max_rounds": 2, "finetune": FAST},
     lambda m: m["val_accuracy"] >= 0.5 and m["macs_reduction"] > 1),
    ("progressive", {"target_accuracy": 0.5, "step": 0.3, "max_rounds": 2, "finetune": FAST, "scope": "auto",
                     "min_step": 0.1, "search": {"samples": 2, "calib_samples": 64, "val_samples": 64}},
     lambda m: m["val_accuracy"] >= 0.5 and m["macs_reduction"] > 1),
    ("progressive", {"target_accuracy": 0.5, "step": 0.3, "max_rounds": 1, "finetune": FAST, "importance": "taylor",
                     "calibration_batches": 2}, lambda m: m["val_accuracy"] >= 0.5 and m["macs_reduction"] > 1),
    ("progressive", {"target_accuracy": 0.5, "step": 0.3, "max_rounds": 1, "finetune": FAST, "scope": "auto",
                     "importance": "apoz", "search": {"samples": 1, "calib_samples": 64, "val_samples": 64}},
     lambda m: m["val_accuracy"] >= 0.5 and m["macs_reduction"] > 1),
    ("soft_filter", {"ratio": 0.5, "train": FAST}, lambda m: m["channels_removed"] == 16),
    ("reconstruct", {"ratio": 0.5, "calibration_batches": 2}, lambda m: m["macs_reduction"] > 2 and m["layers"] == 3),
])
def test_stage_runs_and_writes_its_report(name, options, check, trained, splits, tmp_path):
    stage = load_stages().get(name)
    assert stage.compresses
    ctx = _ctx(trained, splits, tmp_path, name)
    metrics = stage.run(ctx, parse_config(stage.config_cls, options))
    assert check(metrics), metrics
    assert ctx.reference is not None
    assert any(p.suffix == ".json" for p in (tmp_path / name).iterdir())
    assert ctx.model(torch.zeros(2, 1, 8, 8)).shape == (2, 4)


def test_stage_configs_are_validated():
    stages = load_stages()
    with pytest.raises(ConfigError, match="ratio"):
        parse_config(stages.get("slim").config_cls, {"ratio": 2})
    with pytest.raises(ConfigError, match="method"):
        parse_config(stages.get("reconstruct").config_cls, {"method": "magic"})
    with pytest.raises(ConfigError, match="step"):
        parse_config(stages.get("progressive").config_cls, {"step": 0})
    with pytest.raises(ConfigError, match="samples"):
        parse_config(stages.get("progressive").config_cls, {"scope": "auto", "search": {"samples": -1}})
    with pytest.raises(ConfigError, match="at most one"):
        parse_config(stages.get("sensitivity").config_cls, {"max_drop": 0.01, "macs_reduction": 2})


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    model = slimkit.create_model("vgg11_bn", in_channels=1, width=0.0625)
    return slimkit.save_model(model, tmp_path_factory.mktemp("cli") / "vgg.pt")


@pytest.mark.cli
def test_cli_sensitivity_writes_plot_and_prunes(saved, tmp_path, capsys):
    out = tmp_path / "pruned.pt"
    argv = ["sensitivity", str(saved), "--data", "synthetic", "--subset", "64", "--ratios", "0.5",
            "--out-dir", str(tmp_path), "--max-drop", "1.0", "--out", str(out), "--json"]
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["macs_reduction"] > 1.5 and set(result["applied_ratios"].values()) == {0.5}
    assert (tmp_path / "sensitivity.png").exists() and (tmp_path / "sensitivity.json").exists()
    assert slimkit.load_model(out)(torch.zeros(1, 1, 28, 28)).shape == (1, 10)
    assert main(["sensitivity", str(saved), "--data", "synthetic", "--out-dir", str(tmp_path), "--max-drop", "1"]) == 2


@pytest.mark.cli
def test_cli_slim(saved, tmp_path, capsys):
    out = tmp_path / "slim.pt"
    argv = ["slim", str(saved), "--data", "synthetic", "--subset", "64", "--ratio", "0.5", "--sparsity-epochs", "1",
            "--finetune-epochs", "0", "--batch-size", "32", "--out", str(out), "--out-dir", str(tmp_path), "--json"]
    assert main(argv) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["channels_pruned"] == pytest.approx(0.5, abs=0.02)
    assert (tmp_path / "slimming_gammas.png").exists()
    assert slimkit.load_model(out)(torch.zeros(1, 1, 28, 28)).shape == (1, 10)
