"""Importance criteria come from one registry: the docs list each one and each declares the data it needs."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from torch import nn

import slimkit.prune.methods.soft_filter  # noqa: F401  (registers filter_l2)
from slimkit.core.errors import ConfigError
from slimkit.prune.importance import (
    CRITERIA,
    Importance,
    criterion_needs,
    per_slice_scores,
    register_importance,
    slice_norms,
)

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_docs_list_every_registered_criterion() -> None:
    row = next(line for line in (DOCS / "pruning.md").read_text().splitlines() if line.startswith("| `importance`"))
    documented = set(re.findall(r"`(\w+)`", row))
    assert set(CRITERIA.names()) <= documented, f"docs/pruning.md lacks {set(CRITERIA.names()) - documented}"


def test_data_driven_criteria_say_what_they_need() -> None:
    assert criterion_needs("taylor") == {"batches"}
    assert criterion_needs("apoz") == {"batches", "activations"}
    assert criterion_needs("l1") == frozenset()
    with pytest.raises(ConfigError, match="unknown importance 'nosuch'"):
        criterion_needs("nosuch")
    with pytest.raises(ConfigError, match="unknown needs"):
        register_importance("bad_needs", needs=("gpus",))


def test_a_new_data_criterion_gets_batches_from_the_recipe_stage() -> None:
    """One registration is all a criterion that reads data needs: the prune stage hands it batches."""
    from slimkit.recipe.stages.prune import PruneStageConfig, prune_stage

    seen: list[int] = []

    @register_importance("test_batch_count", needs=("batches",))
    def batch_count(graph, ctx):
        seen.append(len(list(ctx.data)))
        return per_slice_scores(graph, slice_norms(1), ctx)

    try:
        model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 4, 3))
        ctx = _StageContext(model)
        prune_stage(ctx, PruneStageConfig(ratio=0.5, importance="test_batch_count", calibration_batches=3))
        assert seen == [3] and model[0].out_channels == 4
    finally:
        CRITERIA.remove("test_batch_count")


class _StageContext:
    """The part of recipe.StageContext the prune stage reads."""

    def __init__(self, model: nn.Module) -> None:
        import tempfile

        self.model = model
        self.example_inputs = (torch.randn(1, 3, 8, 8),)
        self.stage_dir = Path(tempfile.mkdtemp())

    def freeze_reference(self) -> None:
        pass

    def calibration_batches(self, n: int) -> list:
        return [(torch.randn(2, 3, 8, 8), torch.zeros(2, 4, 4, 4)) for _ in range(n)]


def test_criteria_are_config_objects_spelled_three_ways() -> None:
    """``Taylor(batches=8)``, ``"taylor"`` and ``{name: taylor, batches: 8}`` are one criterion."""
    from slimkit.core.config import config_to_dict, parse_config
    from slimkit.prune import L1, APoZ, PruneConfig, Taylor, resolve_importance

    assert resolve_importance("l1") == L1() and resolve_importance({"name": "taylor", "batches": 8}) == Taylor(8)
    assert Taylor(batches=8).needs == {"batches"} and APoZ().needs == {"batches", "activations"}
    config = parse_config(PruneConfig, {"importance": {"name": "taylor", "batches": 8}})
    assert config.importance == Taylor(batches=8)
    assert config_to_dict(config)["importance"] == {"name": "taylor", "batches": 8}
    assert parse_config(PruneConfig, config_to_dict(config)) == config
    assert PruneConfig(importance="fpgm").importance == "fpgm"  # names stay names
    with pytest.raises(ConfigError, match="batches must be a whole number >= 1"):
        parse_config(PruneConfig, {"importance": {"name": "taylor", "batches": 0}})
    with pytest.raises(ConfigError, match="unknown importance 'nosuch'"):
        resolve_importance({"name": "nosuch"})
    with pytest.raises(ConfigError, match="batchez: unknown option for Taylor"):
        resolve_importance({"name": "taylor", "batchez": 2})


def test_object_and_name_give_the_same_plan() -> None:
    from slimkit.prune import FPGM, plan_pruning

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 4, 3))
    x = torch.randn(1, 3, 8, 8)
    by_name = plan_pruning(model, x, ratio=0.5, importance="fpgm")
    by_object = plan_pruning(model, x, ratio=0.5, importance=FPGM())
    assert torch.equal(by_name.removed, by_object.removed) and int(by_name.removed.sum()) == 4


def test_the_stage_hands_a_criterion_the_batches_it_asks_for() -> None:
    from slimkit.recipe.stages.prune import PruneStageConfig, prune_stage

    seen: list[int] = []

    @register_importance("test_counted", needs=("batches",))
    @dataclass(frozen=True)
    class Counted(Importance):
        batches: int | None = None

        def scores(self, graph, ctx):
            seen.append(len(list(ctx.data)))
            return per_slice_scores(graph, slice_norms(1), ctx)

    try:
        model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 4, 3))
        config = PruneStageConfig(ratio=0.5, importance={"name": "test_counted", "batches": 2}, calibration_batches=5)
        prune_stage(_StageContext(model), config)
        prune_stage(_StageContext(nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 4, 3))),
                    PruneStageConfig(ratio=0.5, importance=Counted(), calibration_batches=5))
        assert seen == [2, 5] and model[0].out_channels == 4
    finally:
        CRITERIA.remove("test_counted")


@pytest.mark.parametrize("make", ["prune", "search"])
def test_an_unknown_criterion_name_fails_when_the_config_is_built(make) -> None:
    """Not when the plan resolves it: the message lists every registered name, user criteria included."""
    from slimkit.core.config import parse_config
    from slimkit.prune.config import PruneConfig
    from slimkit.prune.search import SearchConfig

    cls, fields = (PruneConfig, {}) if make == "prune" else (SearchConfig, {"macs_reduction": 2.0})
    with pytest.raises(ConfigError, match=r"importance: unknown importance 'magic'; choose one of: apoz, .*taylor"):
        parse_config(cls, {**fields, "importance": "magic"})
    assert parse_config(cls, {**fields, "importance": "taylor"}).importance == "taylor"  # a name stays a name

    register_importance("test_magic_score")(lambda graph, ctx: pytest.fail("never scored here"))
    try:
        assert parse_config(cls, {**fields, "importance": "test_magic_score"}).importance == "test_magic_score"
    finally:
        CRITERIA.remove("test_magic_score")
