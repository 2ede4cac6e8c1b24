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
    with pytest.raises(ConfigError, match=r"stages\[0\] \(quantize\): options \(test_grid\): step must be > 0"):
        parse_config(stage.config_cls, {"scheme": "test_grid", "options": {"step": 0}}, where="stages[0] (quantize)")


def test_unknown_scheme_lists_built_in_and_registered_methods(round_to_grid) -> None:
    stage = load_stages().get("quantize")
    with pytest.raises(ConfigError, match=r"unknown quantization method 'int3'; choose one of: .*test_grid.*uniform"):
        parse_config(stage.config_cls, {"scheme": "int3"})
    with pytest.raises(ConfigError, match="options: are for registered methods"):
        parse_config(stage.config_cls, {"scheme": "uniform", "options": {"step": 1}})


def test_every_built_in_handler_is_found_without_a_list() -> None:
    with pytest.raises(ConfigError):
        quantization_method("nosuch")  # loads every module of slimkit.quant first
    from slimkit.quant.config import BinaryConfig, TernaryConfig
    from slimkit.quant.mixed import MixedPrecisionConfig

    for cls in (QuantConfig, BinaryConfig, TernaryConfig, MixedPrecisionConfig):
        assert _HANDLERS.for_type(cls) is not None, cls.__name__
