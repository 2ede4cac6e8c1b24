"""A quantization method is one registration: quantize() dispatches on its config, recipes name it."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
from torch import nn

from slimkit.core.config import parse_config
from slimkit.core.errors import ConfigError
from slimkit.quant import quantize, register_quantize_handler
from slimkit.quant.api import _HANDLERS, QUANT_METHODS, quantization_method
from slimkit.quant.config import QuantConfig
from slimkit.quant.report import QuantReport
from slimkit.recipe._registry import load_stages


@dataclass(frozen=True)
class RoundToGrid:
    """Snap every weight to a grid (a toy weight-only method).

    Attributes:
        step: the grid spacing.
    """

    step: float = 0.5

    def __post_init__(self) -> None:
        if self.step <= 0:
            raise ValueError(f"step must be > 0, got {self.step}")


@pytest.fixture
def round_to_grid():
    @register_quantize_handler(RoundToGrid, name="test_grid")
    def apply(model, config, inputs, filter_fn):
        with torch.no_grad():
            for m in model.modules():
                if isinstance(m, nn.Linear):
                    m.weight.copy_(torch.round(m.weight / config.step) * config.step)
        return QuantReport(method="test_grid")

    yield apply
    QUANT_METHODS.remove("test_grid")
    del _HANDLERS[RoundToGrid]


def test_the_verb_and_the_recipe_stage_take_a_registered_method(round_to_grid) -> None:
    model = nn.Sequential(nn.Linear(4, 3))
    quantize(model, RoundToGrid(step=0.25))
    assert torch.equal(model[0].weight, torch.round(model[0].weight * 4) / 4)
    stage = load_stages().get("quantize")
    config = parse_config(stage.config_cls, {"scheme": "test_grid", "options": {"step": 0.125}})
    assert config.build() == RoundToGrid(step=0.125)
    with pytest.raises(ConfigError, match=r"stages\[0\] \(quantize\): test_grid: step must be > 0"):
        parse_config(stage.config_cls, {"scheme": "test_grid", "options": {"step": 0}}, where="stages[0] (quantize)")


def test_unknown_scheme_lists_built_in_and_registered_methods(round_to_grid) -> None:
    stage = load_stages().get("quantize")
    with pytest.raises(ConfigError, match=r"unknown quantization method 'int3'; choose one of: .*test_grid.*uniform"):
        parse_config(stage.config_cls, {"scheme": "int3"})
    with pytest.raises(ConfigError, match=r"QuantizeStageConfig: uniform\.step: unknown option for QuantConfig"):
        parse_config(stage.config_cls, {"scheme": "uniform", "options": {"step": 1}})


def _stage_build(**fields):
    stage = load_stages().get("quantize")
    return parse_config(stage.config_cls, fields, where="stages[0] (quantize)").build()


def test_built_in_schemes_are_registered_methods_built_from_the_shared_fields() -> None:
    """The stage has no list of schemes: each name is a registered method, the shared fields fill its config."""
    from slimkit.quant.config import BinaryConfig, TernaryConfig
    from slimkit.quant.granularity import PerTensor
    from slimkit.quant.mixed import MixedPrecisionConfig

    assert {"uniform", "mixed", "binaryconnect", "bwn", "xnor", "twn", "ttq"} <= set(QUANT_METHODS.names())
    assert _stage_build() == QuantConfig()
    assert _stage_build(scheme="bwn") == BinaryConfig(method="bwn", keep_first_last=True)
    assert _stage_build(scheme="ttq", ignore=["fc"], keep_first_last=False) == \
        TernaryConfig(method="ttq", ignore=("fc",), keep_first_last=False)
    uniform = _stage_build(weight_bits=4, activation_bits=None, granularity="per_tensor",
                           options={"percentile": 99.0, "fold_bn": False})
    assert uniform == QuantConfig(weight_bits=4, activation_bits=None, granularity=PerTensor(), percentile=99.0,
                                  fold_bn=False)
    mixed = _stage_build(scheme="mixed", weight_bits=4, calibration_batches=2, candidate_bits=[4, 8],
                         budget_ratio=0.2, options={"allocation": "greedy", "quant": {"percentile": 99.0}})
    assert mixed == MixedPrecisionConfig(candidate_bits=(4, 8), budget_ratio=0.2, allocation="greedy",
                                         calibration_batches=2,
                                         quant=QuantConfig(weight_bits=4, calibration_batches=2, percentile=99.0))


@pytest.mark.parametrize(("fields", "message"), [
    ({"scheme": "bwn", "weight_bits": 4},
     r"quantize\)\.weight_bits: method 'bwn' \(BinaryConfig\) has no such option"),
    ({"scheme": "bwn", "options": {"method": "xnor"}}, r"quantize\): bwn\.method: set by the method's name 'bwn'"),
    ({"options": {"weight_bits": 4}}, r"quantize\)\.options: weight_bits is a field of the stage"),
    ({"scheme": "twn", "onnx_int8": True}, r"quantize\)\.onnx_int8: integer ONNX export is for uniform and mixed"),
    ({"scheme": "mixed", "budget_ratio": 2.0}, r"budget_ratio must be in \(0, 1\]"),
    ({"scheme": "mixed", "weight_bits": 12}, r"quantize\): mixed\.quant: weight_bits must be in \[2, 8\], got 12$"),
])
def test_stage_options_that_mean_nothing_to_the_method_are_errors(fields, message) -> None:
    with pytest.raises(ConfigError, match=message):
        _stage_build(**fields)


def test_docs_list_every_quantization_method() -> None:
    """Adding a method is its file, its test and its row in docs/quantization.md's method table."""
    from pathlib import Path

    text = (Path(__file__).parents[2] / "docs" / "quantization.md").read_text()
    table = text.partition("<!-- quantization methods -->")[2].partition("\n\n")[0]
    for name in QUANT_METHODS.names():
        assert f"| `{name}` |" in table, f"docs/quantization.md: the method table has no row for {name!r}"


def test_every_built_in_handler_is_found_without_a_list() -> None:
    with pytest.raises(ConfigError):
        quantization_method("nosuch")  # loads every module of slimkit.quant first
    from slimkit.quant.config import BinaryConfig, TernaryConfig
    from slimkit.quant.mixed import MixedPrecisionConfig

    for cls in (QuantConfig, BinaryConfig, TernaryConfig, MixedPrecisionConfig):
        assert _HANDLERS.for_type(cls) is not None, cls.__name__


@pytest.mark.cli
def test_the_command_line_takes_a_registered_method_and_its_options(round_to_grid, tmp_path, monkeypatch,
                                                                     capsys) -> None:
    """Registered after the parser's module was imported, the method is still one ``--scheme`` away, and its
    options are read with its own field types."""
    import slimkit.quant as quant
    from slimkit.cli import main
    from slimkit.models import create_model
    from slimkit.state import save_model

    seen = []
    monkeypatch.setattr(quant, "quantize", lambda model, config, **kw: seen.append(config) or QuantReport("test_grid"))
    path = save_model(create_model("lenet5"), tmp_path / "m.pt")
    common = ["quantize", str(path), "--data", "synthetic", "--subset", "32", "--scheme", "test_grid"]
    assert main([*common, "--options", "step=0.125"]) == 0
    assert seen == [RoundToGrid(step=0.125)]
    assert main([*common, "--options", "step=fine"]) == 2
    assert "--options: step: expected a number, got 'fine'" in capsys.readouterr().err
