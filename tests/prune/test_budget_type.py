"""One budget object read from PruneConfig's parallel target fields (the keywords stay the way to set it)."""

from __future__ import annotations

import pytest

from slimkit.prune.config import Budget, PruneConfig


@pytest.mark.parametrize("options, budget", [
    ({}, Budget("ratio", 0.5, False, "ratio=0.5")),
    ({"ratio": 0.3}, Budget("ratio", 0.3, False, "ratio=0.3")),
    ({"target_macs": 1e6}, Budget("macs", 1e6, False, "target_macs=1e+06")),
    ({"macs_reduction": 2.0}, Budget("macs", 2.0, True, "macs_reduction=2")),
    ({"target_params": 5000}, Budget("params", 5000.0, False, "target_params=5000")),
    ({"target_latency_ms": 1.5}, Budget("latency_ms", 1.5, False, "target_latency_ms=1.5")),
])
def test_each_target_field_is_one_budget(options, budget) -> None:
    assert PruneConfig(**options).effective_budget == budget


def test_two_budgets_are_refused() -> None:
    with pytest.raises(ValueError, match="at most one of budget, target_macs, macs_reduction"):
        PruneConfig(target_macs=1e6, target_params=10)


def test_the_budget_is_one_settable_value() -> None:
    from slimkit.core.config import config_to_dict, parse_config
    from slimkit.core.errors import ConfigError

    by_object = PruneConfig(budget=Budget("macs", 2.0, factor=True))
    assert by_object.effective_budget == PruneConfig(macs_reduction=2.0).effective_budget == Budget.of(macs_reduction=2)
    assert PruneConfig(params_reduction=3).effective_budget == Budget("params", 3.0, True, "params_reduction=3")
    from_recipe = parse_config(PruneConfig, {"budget": {"kind": "params", "value": 5000}})
    assert from_recipe.effective_budget == Budget("params", 5000.0, False, "target_params=5000")
    assert parse_config(PruneConfig, config_to_dict(from_recipe)) == from_recipe
    with pytest.raises(ConfigError, match="at most one of budget.*got budget, macs_reduction"):
        parse_config(PruneConfig, {"budget": {"kind": "macs", "value": 1e6}, "macs_reduction": 2})
    with pytest.raises(ValueError, match="macs_reduction must be >= 1"):
        Budget.of(macs_reduction=0.5)
    with pytest.raises(ValueError, match="a latency_ms budget cannot be a factor"):
        Budget("latency_ms", 2.0, factor=True)
    with pytest.raises(ValueError, match="target_params must be positive"):
        PruneConfig(target_params=0)


def test_traced_on_batch_scales_only_an_absolute_macs_target() -> None:
    from slimkit.prune.config import traced_on_batch

    assert traced_on_batch(PruneConfig(target_macs=1000), 8).effective_budget.value == 8000
    assert traced_on_batch(PruneConfig(target_macs=1000), 1).effective_budget.value == 1000
    for options in ({"macs_reduction": 2.0}, {"target_params": 50}, {"ratio": 0.3}):
        assert traced_on_batch(PruneConfig(**options), 8) == PruneConfig(**options)


def test_trace_setup_traces_an_activation_criterion_on_the_data_batch() -> None:
    """The CLI and the recipe's prune stage share this: apoz reads the activity of a real batch, l1 does not."""
    import torch

    from slimkit.prune.config import trace_setup

    example, batch = (torch.zeros(1, 3),), torch.ones(8, 3)
    data = [(batch, torch.zeros(8))]
    inputs, config, traced = trace_setup(example, PruneConfig(importance="apoz", target_macs=100), data)
    assert inputs[0] is batch and traced == 8 and config.effective_budget.value == 800
    inputs, config, traced = trace_setup(example, PruneConfig(importance="l1", target_macs=100), data)
    assert inputs is example and traced == 1 and config.effective_budget.value == 100
