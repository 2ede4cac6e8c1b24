"""The CLI in-process: exit codes and messages."""

from __future__ import annotations

import pytest
import yaml

from slimkit.cli import main

pytestmark = pytest.mark.cli


def test_help_and_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip()
    assert main([]) == 2


def test_compress_bad_recipe_exits_2_naming_field(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"model": {"name": "lenet5"}, "stages": [{"type": "prnue"}]}))
    assert main(["compress", str(path)]) == 2
    assert "stages[0].type: unknown stage 'prnue'" in capsys.readouterr().err


def test_compress_check_and_run(tmp_path, capsys):
    path = tmp_path / "ok.yaml"
    path.write_text(yaml.safe_dump({
        "name": "cli", "model": {"name": "lenet5"},
        "data": {"name": "synthetic", "options": {"num_samples": 128, "num_classes": 3, "image_size": 28}},
        "report": {"latency": False},
        "stages": [{"type": "train", "epochs": 1, "batch_size": 32, "progress": False}, {"type": "evaluate"}],
    }))
    assert main(["compress", str(path), "--check"]) == 0
    assert "valid (2 stages" in capsys.readouterr().out
    assert main(["compress", str(path), "--run-dir", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    assert "summary (before -> after)" in out and (tmp_path / "run" / "summary.json").is_file()


def test_train_then_eval_saved_model(tmp_path, capsys):
    out_file = tmp_path / "m.pt"
    assert main(["train", "lenet5", "--data", "synthetic", "--epochs", "1", "--out", str(out_file)]) == 0
    assert out_file.is_file()
    assert main(["eval", str(out_file), "--data", "synthetic"]) == 0
    assert "test accuracy" in capsys.readouterr().out
