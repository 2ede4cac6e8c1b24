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
    assert PruneConfig(**options).budget == budget


def test_two_budgets_are_refused() -> None:
    with pytest.raises(ValueError, match="at most one of target_macs, macs_reduction"):
        PruneConfig(target_macs=1e6, target_params=10)
