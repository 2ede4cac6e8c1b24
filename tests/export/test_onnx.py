"""export_onnx: a pruned model becomes ONNX that ONNX Runtime runs to the same outputs, any batch size."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch
from torch import nn

import slimkit
from slimkit.cli import main
from slimkit.core.config import parse_config
from slimkit.core.errors import ExportError
from slimkit.export import export_onnx, onnx_session
from slimkit.recipe._registry import load_stages
from slimkit.recipe.context import StageContext


def _pruned_resnet() -> tuple[nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    model = slimkit.create_model("resnet20", in_channels=1, width=0.5).eval()
    x = torch.randn(1, 1, 28, 28)
    slimkit.prune_channels(model, x, ratio=0.4)
    return model, x


def test_pruned_model_runs_in_onnx_runtime_at_any_batch(tmp_path):
    model, x = _pruned_resnet()
    model.train()  # exported in eval mode, flags restored
    path = export_onnx(model, x, tmp_path / "m.onnx")
    assert model.training
    onnx.checker.check_model(str(path))
    session = onnx_session(path, threads=1)
    assert [i.name for i in session.get_inputs()] == ["input"]
    batch = torch.randn(5, 1, 28, 28)
    (got,) = session.run(None, {"input": batch.numpy()})
    with torch.no_grad():
        expected = model.eval()(batch).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-4)


def test_several_inputs_and_outputs_get_numbered_names(tmp_path):
    class TwoWay(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = nn.Linear(3, 2), nn.Linear(4, 2)

        def forward(self, x, y):
            return self.a(x) + self.b(y), self.a(x)

    path = export_onnx(TwoWay(), (torch.randn(1, 3), torch.randn(1, 4)), tmp_path / "two.onnx")
    session = onnx_session(path)
    assert [i.name for i in session.get_inputs()] == ["input_0", "input_1"]
    assert [o.name for o in session.get_outputs()] == ["output_0", "output_1"]


def test_a_graph_that_does_not_reproduce_the_model_is_refused_and_removed(tmp_path, monkeypatch):
    import slimkit.export.onnx as module

    real = module.onnx_session

    class Skewed:
        def __init__(self, session):
            self.session = session

        def get_inputs(self):
            return self.session.get_inputs()

        def run(self, names, feed):
            return [o + 1.0 for o in self.session.run(names, feed)]

    monkeypatch.setattr(module, "onnx_session", lambda *a, **k: Skewed(real(*a, **k)))
    with pytest.raises(ExportError, match="differs from PyTorch by up to 1"):
        export_onnx(nn.Linear(3, 2), torch.randn(1, 3), tmp_path / "bad.onnx")
    assert not (tmp_path / "bad.onnx").exists()


def test_export_stage_writes_a_verified_file(tmp_path):
    stage = load_stages().get("export")
    config = parse_config(stage.config_cls, {"filename": "small.onnx"})
    model, x = _pruned_resnet()
    ctx = StageContext(model=model, data=None, example_inputs=(x,), run_dir=tmp_path, stage_dir=tmp_path / "export",
                       device=torch.device("cpu"))
    metrics = stage.run(ctx, config)
    assert (tmp_path / "export" / "small.onnx").stat().st_size == metrics["onnx_bytes"]
    with pytest.raises(slimkit.ConfigError, match="filename"):
        parse_config(stage.config_cls, {"filename": "../x.onnx"})


@pytest.mark.cli
def test_cli_exports_a_saved_pruned_model(tmp_path, capsys):
    model, _ = _pruned_resnet()
    src = slimkit.save_model(model, tmp_path / "pruned.pt")
    out = tmp_path / "pruned.onnx"
    assert main(["export", str(src), "--out", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["verified"] and report["bytes"] == out.stat().st_size
    assert main(["export", str(tmp_path / "missing.pt"), "--out", str(out)]) != 0
    assert "missing.pt" in capsys.readouterr().err
