"""search_ratios: budgets always met, optimum found under a known score, determinism, real evaluation runs."""

import pytest
import torch
from torch import nn

from slimkit.core.errors import ConfigError
from slimkit.profile import profile
from slimkit.prune.search import SearchConfig, search_ratios


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
        nn.Conv2d(32, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 4))


X = torch.randn(1, 1, 8, 8)


def test_every_candidate_meets_the_macs_budget():
    model = _net()
    res = search_ratios(model, X, None, SearchConfig(macs_reduction=2.0, candidates=12, progress=False),
                        evaluate=lambda r: 0.0)
    assert len(res.candidates) == 12
    for c in res.candidates:
        assert 0.97 * res.macs_budget <= c.macs <= res.macs_budget
    assert profile(model, X).macs <= res.macs_budget  # the model itself is pruned with the best vector
    assert res.report.macs_after == res.best.macs  # the pruner removes exactly the channels the search priced


def test_uniform_is_the_first_candidate_and_budgets_are_used_to_within_tolerance():
    model = _net()
    res = search_ratios(model, X, None, SearchConfig(macs_reduction=3.0, candidates=30, tolerance=0.01,
                                                     generations=1, population=6, progress=False),
                        evaluate=lambda r: -abs(r["0"] - 0.3))
    first = res.candidates[0]
    assert first.origin == "uniform" and sum(c.origin == "uniform" for c in res.candidates) == 1
    # uniform up to one channel per group given back to fill the budget (16 or 32 channels: 1/16 at most)
    assert max(first.ratios.values()) - min(first.ratios.values()) <= 1 / 16 + 1e-3
    assert {c.origin for c in res.candidates} == {"uniform", "sample", "evolve"}
    for c in res.candidates:
        assert 0.99 * res.macs_budget <= c.macs <= res.macs_budget
    keys = [tuple(c.ratios.values()) for c in res.candidates]
    assert len(set(keys)) == len(keys)  # no vector scored twice


def test_params_budget_and_evolution_candidates_meet_it():
    model = _net()
    p0 = sum(p.numel() for p in model.parameters())
    cfg = SearchConfig(target_params=p0 // 2, candidates=6, generations=2, population=4, parents=3,
                       progress=False)
    res = search_ratios(model, X, None, cfg, evaluate=lambda r: -sum(r.values()))
    assert any(c.origin == "evolve" for c in res.candidates)
    for c in res.candidates:
        assert c.params <= res.params_budget


def test_known_score_is_optimised():
    # score rewards pruning the last conv and penalises pruning the first: the best must favour that
    def score(r):
        return r.get("6", 0.0) - 2 * r.get("0", 0.0) - r.get("3", 0.0)

    model = _net()
    res = search_ratios(model, X, None, SearchConfig(macs_reduction=1.6, candidates=40, generations=3,
                                                       population=10, progress=False), evaluate=score)
    best = res.best.ratios
    assert res.best.score == max(c.score for c in res.candidates)
    assert best["6"] > best["0"] and best["6"] > best["3"]
    assert best["0"] < 0.1


def test_same_seed_same_result():
    def run(seed):
        return search_ratios(_net(), X, None, SearchConfig(macs_reduction=2.0, candidates=8, seed=seed,
                                                         progress=False), evaluate=lambda r: r["3"])
    a, b, c = run(1), run(1), run(2)
    assert [x.ratios for x in a.candidates] == [x.ratios for x in b.candidates]
    assert [x.ratios for x in a.candidates] != [x.ratios for x in c.candidates]


def test_default_evaluation_uses_training_data_and_finetune_picks():
    g = torch.Generator().manual_seed(0)
    xs, ys = torch.randn(64, 1, 8, 8, generator=g), torch.randint(0, 4, (64,), generator=g)
    data = torch.utils.data.TensorDataset(xs, ys)
    model = _net()
    cfg = SearchConfig(macs_reduction=2.0, candidates=3, top_k=2, calib_samples=32, val_samples=32,
                       batch_size=16, progress=False)
    res = search_ratios(model, X, data, cfg, finetune=lambda m: float(sum(p.numel() for p in m.parameters())))
    assert all(0.0 <= c.accuracy <= 1.0 and c.loss > 0 for c in res.candidates)
    assert all(c.score == -c.loss for c in res.candidates)  # ranked by held-out loss
    assert sum(c.finetuned_score is not None for c in res.candidates) == 2
    assert res.report.applied and res.report.macs_after <= res.macs_budget


def test_bad_config_names_the_field():
    with pytest.raises(ConfigError, match="exactly one"):
        SearchConfig()
    with pytest.raises(ConfigError, match="macs_reduction"):
        SearchConfig(macs_reduction=0.5)


def test_plots_and_stage_config_flags(tmp_path):
    import argparse

    from slimkit.cli.from_config import add_config_arguments, config_from_args
    from slimkit.prune.search import plot_search
    from slimkit.recipe import load_stages
    from slimkit.recipe.stages.search_ratios import SearchStageConfig

    res = search_ratios(_net(), X, None, SearchConfig(macs_reduction=2.0, candidates=4, progress=False),
                        evaluate=lambda r: r["3"])
    paths = plot_search(res, tmp_path)
    assert [p.split("/")[-1] for p in paths] == ["candidates.png", "ratios.png"]
    assert all((tmp_path / n).stat().st_size > 1000 for n in ("candidates.png", "ratios.png"))
    assert "search_ratios" in load_stages()
    parser = argparse.ArgumentParser()
    add_config_arguments(parser, SearchStageConfig)
    cfg = config_from_args(SearchStageConfig, parser.parse_args(["--macs-reduction", "3", "--candidates", "7"]))
    assert cfg.macs_reduction == 3.0 and cfg.candidates == 7 and cfg.finetune_epochs == 1


def test_the_budget_is_prune_configs_budget_and_the_keywords_its_shorthands():
    from slimkit.prune.config import Budget

    def candidates(**kw):
        res = search_ratios(_net(), X, None, SearchConfig(candidates=5, progress=False, **kw), evaluate=lambda r: 0.0)
        return res, [c.ratios for c in res.candidates]

    by_budget, a = candidates(budget=Budget("macs", 2.0, factor=True))
    by_keyword, b = candidates(macs_reduction=2.0)
    assert a == b and by_budget.macs_budget == by_keyword.macs_budget
    assert SearchConfig(macs_reduction=2.0).effective_budget == Budget("macs", 2.0, factor=True)
    p0 = sum(p.numel() for p in _net().parameters())
    res, _ = candidates(budget={"kind": "params", "value": 2.0, "factor": True})  # a recipe's spelling
    assert res.params_budget == int(p0 / 2.0) and res.macs_budget is None
    assert all(c.params <= res.params_budget for c in res.candidates)
    # keywords beside a config replace its fields (search_ratios(..., config, candidates=3))
    res = search_ratios(_net(), X, None, SearchConfig(macs_reduction=2.0, progress=False), candidates=3,
                        evaluate=lambda r: 0.0)
    assert len(res.candidates) == 3


@pytest.mark.parametrize("fields, message", [
    ({"budget": {"kind": "ratio", "value": 0.5}}, "macs or params budget, not ratio"),
    ({"macs_reduction": 2.0, "target_params": 100},
     "give at most one of budget, macs_reduction, target_macs, params_reduction, target_params; "
     "got macs_reduction, target_params"),
    ({"macs_reduction": 2.0, "importance": {"name": "taylor", "batches": 0}}, "batches must be a whole number >= 1"),
])
def test_bad_budget_or_criterion_names_it(fields, message):
    with pytest.raises(ConfigError, match=message):
        SearchConfig(**fields)


def test_criteria_resolve_as_prune_config_does():
    from slimkit.prune.importance import L2

    with pytest.raises(ConfigError, match="importance: unknown importance 'foo'; choose one of: apoz"):
        search_ratios(_net(), X, None, SearchConfig(macs_reduction=2.0, importance="foo", progress=False),
                      evaluate=lambda r: pytest.fail("scored a candidate with an unknown criterion"))

    assert SearchConfig(macs_reduction=2.0, importance={"name": "l2"}).importance == L2()
    assert SearchConfig(macs_reduction=2.0, importance=L2()).importance == L2()
    res = search_ratios(_net(), X, None, SearchConfig(macs_reduction=2.0, candidates=2, progress=False,
                                                      importance={"name": "l2"}), evaluate=lambda r: 0.0)
    assert res.report.applied


def test_stage_budget_defaults_to_half_the_macs_and_takes_budget_or_a_shorthand():
    from slimkit.core.config import parse_config
    from slimkit.prune.config import Budget
    from slimkit.recipe.stages.search_ratios import SearchStageConfig

    assert parse_config(SearchStageConfig, {}).effective_budget == Budget("macs", 2.0, factor=True)
    given = parse_config(SearchStageConfig, {"budget": {"kind": "params", "value": 5000}, "importance": "fpgm"})
    assert given.search_config().effective_budget == Budget("params", 5000.0)
    assert given.search_config().importance == "fpgm"
    assert parse_config(SearchStageConfig, {"target_macs": 1e5}).effective_budget == Budget("macs", 1e5)
    with pytest.raises(ConfigError, match="give at most one"):
        parse_config(SearchStageConfig, {"macs_reduction": 3, "budget": {"kind": "macs", "value": 1e5}})
