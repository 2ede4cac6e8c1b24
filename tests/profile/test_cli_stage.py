"""The ``slimkit profile`` command (in-process) and the ``profile`` recipe stage."""

from __future__ import annotations

import json
import textwrap

import pytest
import torch
from torch import nn

from slimkit.cli import main
from slimkit.core.config import parse_config
from slimkit.core.errors import ConfigError
from slimkit.models import create_model
from slimkit.recipe._registry import load_stages
from slimkit.recipe.context import StageContext
from slimkit.state import save_model

FACTORY = textwrap.dedent(
    """
    from torch import nn

    def tiny(*, in_channels=1, num_classes=10, width=1.0):
        c = max(1, int(8 * width))
        return nn.Sequential(
            nn.Conv2d(in_channels, c, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
            nn.Linear(c, num_classes),
        )
    """
)


@pytest.fixture
def factory(tmp_path, monkeypatch):
    (tmp_path / "tiny_zoo_for_profile.py").write_text(FACTORY)
    monkeypatch.syspath_prepend(str(tmp_path))
    return "tiny_zoo_for_profile:tiny"


def _expected_macs(in_ch, classes, c, h, w, batch=1):
    return batch * (c * h * w * in_ch * 9 + c * h * w + c * classes)  # conv + global avg pool + linear


@pytest.mark.cli
def test_cli_json_for_a_named_model(factory, capsys):
    code = main(["profile", factory, "--in-channels", "3", "--num-classes", "5", "--width", "2",
                 "--input-size", "12x10", "--batch-size", "2", "--json"])
    assert code == 0
    data = json.loads(capsys.readouterr().out)
    assert data["macs"] == _expected_macs(3, 5, 16, 12, 10, batch=2)
    assert data["params"] == 16 * 3 * 9 + 16 + 16 * 5 + 5
    assert data["input_shapes"] == [[2, 3, 12, 10]]
    assert [row["fqn"] for row in data["layers"]] == ["0", "1", "2", "3", "4"]


@pytest.mark.cli
def test_cli_table_and_latency_for_a_saved_model(factory, tmp_path, capsys):
    path = save_model(create_model(factory, in_channels=1, num_classes=4), tmp_path / "m.pt")
    assert main(["profile", str(path), "--latency", "--warmup", "0", "--repeats", "2", "--factory", factory]) == 0
    out = capsys.readouterr().out
    assert "Conv2d" in out and "latency" in out and "1x1x28x28" in out
    assert f"MACs {_expected_macs(1, 4, 8, 28, 28) / 1000:.2f}K" in out


@pytest.mark.cli
@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["profile", "missing/model.pt"], "no such model file"),
        (["profile", "FACTORY", "--input-size", "big"], "--input-size"),
        (["profile", "FACTORY", "--batch-size", "0"], "--batch-size"),
    ],
)
def test_cli_errors_name_the_problem(factory, argv, fragment, capsys):
    argv = [factory if a == "FACTORY" else a for a in argv]
    assert main(argv) == 2
    assert fragment in capsys.readouterr().err


def test_profile_stage_records_metrics_and_writes_table(tmp_path):
    stage = load_stages().get("profile")
    config = parse_config(stage.config_cls, {"warmup": 0, "repeats": 3})
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 2))
    ctx = StageContext(
        model=model, data=None, example_inputs=(torch.randn(4, 1, 4, 4),), run_dir=tmp_path,
        stage_dir=tmp_path / "profile", device=torch.device("cpu"),
    )
    metrics = stage.run(ctx, config)
    assert metrics["macs"] == 16 * 8 + 8 * 2  # batch 1 whatever the example batch
    assert metrics["params"] == 16 * 8 + 8 + 8 * 2 + 2
    assert metrics["size_bytes"] == 4 * metrics["params"]
    assert metrics["peak_activation_bytes"] > 0 and metrics["latency_ms"] > 0
    assert "Linear" in (tmp_path / "profile" / "profile.txt").read_text()
    assert json.loads((tmp_path / "profile" / "profile.json").read_text())["macs"] == metrics["macs"]


def test_profile_stage_config_is_validated():
    stage = load_stages().get("profile")
    with pytest.raises(ConfigError, match="repeats"):
        parse_config(stage.config_cls, {"repeats": 0}, where="stages[2] (profile)")
    with pytest.raises(ConfigError, match="latency"):
        parse_config(stage.config_cls, {"latency": "sometimes"})
