"""The ``prune`` recipe stage and the ``slimkit prune`` command."""

from __future__ import annotations

import json

import pytest
import torch

import slimkit
from slimkit.cli import main
from slimkit.core.config import parse_config
from slimkit.core.errors import ConfigError
from slimkit.recipe._registry import load_stages
from slimkit.recipe.context import StageContext
from slimkit.testing import build_arch


def test_prune_stage_prunes_and_records(tmp_path):
    stage = load_stages().get("prune")
    assert stage.compresses
    config = parse_config(stage.config_cls, {"macs_reduction": 2.0, "round_to": 2})
    model, x = build_arch("resnet")
    ctx = StageContext(model=model, data=None, example_inputs=x, run_dir=tmp_path, stage_dir=tmp_path / "prune",
                       device=torch.device("cpu"))
    metrics = stage.run(ctx, config)
    assert metrics["macs_reduction"] >= 2.0 and metrics["groups_pruned"] > 0
    assert ctx.reference is not None and ctx.reference.stem[0].out_channels == 8
    assert ctx.model.stem[0].out_channels < 8
    saved = json.loads((tmp_path / "prune" / "prune.json").read_text())
    assert saved["macs_after"] == metrics["macs_after"]
    assert "stem" in (tmp_path / "prune" / "prune.txt").read_text()


def test_prune_stage_config_is_validated():
    stage = load_stages().get("prune")
    with pytest.raises(ConfigError, match="ratio"):
        parse_config(stage.config_cls, {"ratio": 2}, where="stages[1] (prune)")
    with pytest.raises(ConfigError, match="scope"):
        parse_config(stage.config_cls, {"scope": "everywhere"})
    assert parse_config(stage.config_cls, {"round_to": "auto"}).round_to in (8, 16)
    with pytest.raises(ConfigError, match="round_to"):
        parse_config(stage.config_cls, {"round_to": "fast"})


@pytest.mark.cli
def test_cli_prunes_a_saved_model(tmp_path, capsys):
    model = slimkit.create_model("resnet20", in_channels=3)
    src = slimkit.save_model(model, tmp_path / "dense.pt")
    out = tmp_path / "pruned.pt"
    assert main(["prune", str(src), "--macs-reduction", "2", "--round-to", "4", "--out", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["macs_reduction"] >= 2.0
    pruned = slimkit.load_model(out).eval()
    assert pruned(torch.randn(1, 3, 32, 32)).shape == (1, 10)
    assert sum(p.numel() for p in pruned.parameters()) == report["params_after"]


@pytest.mark.cli
def test_cli_dry_run_and_errors(tmp_path, capsys):
    src = slimkit.save_model(slimkit.create_model("lenet5"), tmp_path / "m.pt")
    assert main(["prune", str(src), "--ratio", "0.3", "--out", str(tmp_path / "o.pt"), "--dry-run"]) == 0
    assert "MACs" in capsys.readouterr().out and not (tmp_path / "o.pt").exists()
    assert main(["prune", str(tmp_path / "missing.pt"), "--out", str(tmp_path / "o.pt")]) == 2
    assert "no such model file" in capsys.readouterr().err
    assert main(["prune", str(src), "--ratio", "3", "--out", str(tmp_path / "o.pt")]) == 2
    assert "ratio" in capsys.readouterr().err
    assert main(["prune", str(src), "--ratio", "0.3", "--round-to", "auto", "--out", str(tmp_path / "o.pt"),
                 "--dry-run"]) == 0
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(["prune", str(src), "--round-to", "fast", "--out", str(tmp_path / "o.pt")])
    assert "'auto'" in capsys.readouterr().err


def test_prune_stage_recalibrates_batchnorm_and_takes_every_prune_option(tmp_path):
    stage = load_stages().get("prune")
    config = parse_config(stage.config_cls, {"ratio": 0.5, "recalibrate_batches": 2, "debias": True,
                                             "attention": "heads", "latency_weight": 0.0})
    data = slimkit.load_dataset("synthetic", num_samples=64, in_channels=3, image_size=8, num_classes=3)
    model, x = build_arch("resnet")
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    for bn in norms:
        bn.running_mean.fill_(5.0)  # stale statistics the stage must replace
    ctx = StageContext(model=model, data=data, example_inputs=x, run_dir=tmp_path, stage_dir=tmp_path / "prune",
                       device=torch.device("cpu"), batch_size=16)
    stage.run(ctx, config)
    assert norms and all(not bool((bn.running_mean == 5.0).any()) for bn in norms)
    with pytest.raises(ConfigError, match="recalibrate_batches"):
        parse_config(stage.config_cls, {"recalibrate_batches": -1})
