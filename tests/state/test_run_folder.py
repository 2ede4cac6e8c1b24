"""Every stage's model of a run folder opens with slimkit's commands, and a recipe combining states resumes."""

from __future__ import annotations

import pytest
import torch

import slimkit
from slimkit.cli import main
from slimkit.recipe import parse_recipe, run_recipe

SYNTHETIC = {"name": "synthetic", "options": {"num_samples": 96, "num_test": 32, "in_channels": 1,
                                              "num_classes": 10}}
QUICK = {"batch_size": 32, "progress": False, "device": "cpu"}
STAGES = [
    {"type": "train", "epochs": 1, **QUICK},
    {"type": "prune", "ratio": 0.3},
    {"type": "prune_layers", "count": 1, "recalibrate_batches": 1},
    {"type": "prune_weights", "method": "global_magnitude", "sparsity": 0.5, "finetune": {"epochs": 0}},
    {"type": "quantize", "weight_bits": 4, "activation_bits": None, "mode": "qat", "learn_step": True},
]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("run") / "r"
    recipe = parse_recipe({"name": "r", "model": {"name": "resnet20", "kwargs": {"width": 0.25}},
                           "data": SYNTHETIC, "report": {"latency": False}, "stages": STAGES})
    result = run_recipe(recipe, folder, echo=lambda *_: None)
    return folder, result


@pytest.mark.cli
@pytest.mark.parametrize("command", ["eval", "profile", "export"])
def test_each_stage_model_opens_with_the_cli(run, command, tmp_path, capsys) -> None:
    folder, result = run
    snapshots = sorted(folder.glob("*/model.pt")) + [folder / "initial.pt", folder / "reference.pt"]
    assert len(snapshots) == len(STAGES) + 2
    for path in snapshots:
        argv = {"eval": ["eval", str(path), "--data", "synthetic"],
                "profile": ["profile", str(path)],
                "export": ["export", str(path), "--out", str(tmp_path / "m.onnx"), "--atol", "1e-3"]}[command]
        assert main(argv) == 0, (path, capsys.readouterr().err)


def test_last_stage_snapshot_is_the_final_model(run) -> None:
    folder, result = run
    last = sorted(folder.glob("*/model.pt"))[-1]
    loaded = slimkit.load_model(last).eval()
    x = torch.randn(2, 1, 28, 28)
    result.model.eval()
    with torch.no_grad():
        assert torch.equal(loaded(x), result.model.cpu()(x))
    assert slimkit.prune.unstructured.get_masks(loaded)  # sparse and quantized together
    from slimkit.quant.modules import is_quant_layer

    assert any(is_quant_layer(m) for m in loaded.modules())


def test_resume_after_each_stage_continues_from_its_snapshot(tmp_path) -> None:
    recipe = parse_recipe({"name": "r", "model": {"name": "lenet5"}, "data": SYNTHETIC,
                           "report": {"latency": False}, "stages": STAGES[1:2] + STAGES[3:]})
    first = run_recipe(recipe, tmp_path / "r", echo=lambda *_: None)
    manifest = (tmp_path / "r" / "manifest.json").read_text()
    import json

    data = json.loads(manifest)
    data["stages"][-1]["status"] = "pending"  # as if interrupted during the last stage
    data["status"] = "running"
    (tmp_path / "r" / "manifest.json").write_text(json.dumps(data))
    resumed = run_recipe(recipe, tmp_path / "r", resume=True, echo=lambda *_: None)
    x = torch.randn(2, 1, 28, 28)
    with torch.no_grad():
        assert torch.equal(first.model.cpu().eval()(x), resumed.model.cpu().eval()(x))
