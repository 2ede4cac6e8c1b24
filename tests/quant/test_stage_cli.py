"""The ``quantize`` recipe stage and the ``slimkit quantize`` command (in-process)."""

from __future__ import annotations

import textwrap

import pytest
import torch
from torch import nn

from slimkit.cli import main
from slimkit.core.config import parse_config
from slimkit.core.errors import ConfigError
from slimkit.data import load_dataset
from slimkit.models import create_model
from slimkit.quant.modules import is_quant_layer
from slimkit.recipe._registry import load_stages
from slimkit.recipe.context import StageContext
from slimkit.state import save_model

FACTORY = textwrap.dedent(
    """
    from torch import nn

    def tiny(*, in_channels=1, num_classes=10, width=1.0):
        c = max(1, int(8 * width))
        return nn.Sequential(
            nn.Conv2d(in_channels, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU(),
            nn.Conv2d(c, 2 * c, 3, padding=1, stride=2), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2 * c, num_classes),
        )
    """
)


@pytest.fixture
def factory(tmp_path, monkeypatch):
    (tmp_path / "tiny_zoo_for_quant.py").write_text(FACTORY)
    monkeypatch.syspath_prepend(str(tmp_path))
    return "tiny_zoo_for_quant:tiny"


def _context(tmp_path, model: nn.Module) -> StageContext:
    data = load_dataset("synthetic", num_samples=256, image_size=(16, 16), seed=0)
    return StageContext(
        model=model, data=data, example_inputs=(data.train[0][0].unsqueeze(0),), run_dir=tmp_path,
        stage_dir=tmp_path / "quantize", device=torch.device("cpu"), batch_size=32,
    )


def test_stage_uniform_reports_integer_accuracy(tmp_path, factory) -> None:
    stage = load_stages().get("quantize")
    config = parse_config(stage.config_cls, {"onnx_int8": True, "calibration_batches": 2})
    ctx = _context(tmp_path, create_model(factory).eval())
    ctx.stage_dir.mkdir(parents=True)
    metrics = stage.run(ctx, config)
    assert metrics["method"] == "ptq" and metrics["folded_bn"] == 1
    assert metrics["layer_bits"] == {"0": 8, "3": 8, "7": 8}
    assert 0.0 <= metrics["accuracy_int8"] <= 1.0 and 0.0 <= metrics["accuracy"] <= 1.0
    assert (ctx.stage_dir / "model.int8.onnx").is_file()
    assert "BatchNorms folded" in (ctx.stage_dir / "quantize.txt").read_text()
    assert ctx.reference is not None and not any(is_quant_layer(m) for m in ctx.reference.modules())


def test_stage_binary_keeps_first_last(tmp_path, factory) -> None:
    stage = load_stages().get("quantize")
    ctx = _context(tmp_path, create_model(factory).eval())
    ctx.stage_dir.mkdir(parents=True)
    metrics = stage.run(ctx, parse_config(stage.config_cls, {"scheme": "bwn"}))
    assert metrics["layer_bits"] == {"3": 1}
    assert is_quant_layer(ctx.model[3]) and not is_quant_layer(ctx.model[0])


def test_stage_config_is_validated() -> None:
    stage = load_stages().get("quantize")
    with pytest.raises(ConfigError, match="weight_bits must be in"):
        parse_config(stage.config_cls, {"weight_bits": 12}, where="stages[1] (quantize)")
    with pytest.raises(ConfigError, match="scheme"):
        parse_config(stage.config_cls, {"scheme": "int3"})
    with pytest.raises(ConfigError, match="learn_step"):
        parse_config(stage.config_cls, {"learn_step": True})


@pytest.mark.cli
def test_cli_quantize_writes_int8_onnx(tmp_path, factory, capsys) -> None:
    path = save_model(create_model(factory, in_channels=1, num_classes=10), tmp_path / "m.pt")
    out = tmp_path / "m.int8.onnx"
    code = main(["quantize", str(path), "--data", "synthetic", "--subset", "200", "--calibration-batches", "1",
                 "--onnx", str(out), "--factory", factory])
    assert code == 0
    printed = capsys.readouterr().out
    assert "accuracy int8 ONNX Runtime" in printed and "x smaller" in printed and "accuracy fp32" in printed
    assert out.is_file() and out.stat().st_size > 0


@pytest.mark.cli
def test_cli_rejects_bad_bits(tmp_path, factory, capsys) -> None:
    path = save_model(create_model(factory), tmp_path / "m.pt")
    assert main(["quantize", str(path), "--weight-bits", "12"]) == 2
    assert "weight_bits must be in [2, 8]" in capsys.readouterr().err


def _spy_quantize(monkeypatch) -> list:
    """Record the config each ``quantize`` call of the command gets (the real verb still runs)."""
    import slimkit.quant as quant

    seen: list = []
    real = quant.quantize

    def spy(model, config, **kw):
        seen.append(config)
        return real(model, config, **kw)

    monkeypatch.setattr(quant, "quantize", spy)
    return seen


@pytest.mark.cli
@pytest.mark.parametrize("scheme", sorted(__import__("slimkit.quant.api", fromlist=["x"]).QUANT_METHODS.names()))
def test_cli_reaches_every_registered_method(scheme, tmp_path, factory, capsys, monkeypatch) -> None:
    """``--scheme NAME`` applies the same config as the recipe stage ``{type: quantize, scheme: NAME}``."""
    seen = _spy_quantize(monkeypatch)
    model = create_model(factory, in_channels=1, num_classes=10)
    path = save_model(model, tmp_path / "m.pt")
    code = main(["quantize", str(path), "--data", "synthetic", "--subset", "64", "--calibration-batches", "1",
                 "--scheme", scheme, "--factory", factory])
    stage = load_stages().get("quantize")
    assert code == 0
    assert seen == [parse_config(stage.config_cls, {"scheme": scheme, "calibration_batches": 1}).build()]
    assert f"quantized (simulated, {scheme})" in capsys.readouterr().out


@pytest.mark.cli
def test_cli_options_are_read_with_the_methods_field_types(tmp_path, factory, monkeypatch) -> None:
    from slimkit.quant.config import TernaryConfig
    from slimkit.quant.mixed import MixedPrecisionConfig

    seen = _spy_quantize(monkeypatch)
    path = save_model(create_model(factory, in_channels=1, num_classes=10), tmp_path / "m.pt")
    common = ["quantize", str(path), "--data", "synthetic", "--subset", "64", "--calibration-batches", "1",
              "--factory", factory]
    assert main([*common, "--scheme", "ttq", "--options", "threshold=0.1", "--options", "fold_bn=true"]) == 0
    assert seen[-1] == TernaryConfig(method="ttq", threshold=0.1, fold_bn=True)
    assert main([*common, "--scheme", "mixed", "--budget-ratio", "0.2", "--options", "allocation=greedy",
                 "--options", "quant.percentile=99.9", "--weight-bits", "4"]) == 0
    mixed = seen[-1]
    assert isinstance(mixed, MixedPrecisionConfig) and mixed.budget_ratio == 0.2
    assert mixed.allocation.value == "greedy" and mixed.quant.percentile == 99.9 and mixed.quant.weight_bits == 4


@pytest.mark.cli
@pytest.mark.parametrize("argv, message", [
    (["--scheme", "ttq", "--options", "threshold=x"], "--options: threshold: expected a number or 'none', got 'x'"),
    (["--scheme", "ttq", "--options", "threshold=5"], "--options: ttq: threshold must be in (0, 2), got 5.0"),
    (["--scheme", "ttq", "--options", "method=twn"], "--options: method: set by the name 'ttq' (method=ttq)"),
    (["--scheme", "bwn", "--options", "step=1"], "--options: bwn has no option 'step'; its options: "),
    (["--options", "weight_bits=4"], "--options: weight_bits: give it as --weight-bits"),
    (["--options", "mode=qat"], "--options: mode: not offered by this command"),
    (["--options", "percentile"], "--options: expected KEY=VALUE, got 'percentile'"),
    (["--scheme", "int3"], "--scheme: unknown quantization method 'int3'; choose one of: "),
    (["--scheme", "ttq", "--weight-bits", "4"], "--weight-bits: method 'ttq' (TernaryConfig) has no such option"),
    (["--scheme", "twn", "--onnx", "m.onnx"], "--onnx: integer ONNX export is for uniform and mixed methods"),
])
def test_cli_bad_method_options_are_one_line_before_loading(argv, message, tmp_path, capsys) -> None:
    try:
        code = main(["quantize", str(tmp_path / "missing.pt"), *argv])
    except SystemExit as stop:  # argparse's own check (KEY=VALUE)
        code = stop.code
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err and message in err, err
