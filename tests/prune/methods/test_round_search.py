import copy

import pytest
import torch

import slimkit
from slimkit.prune.methods._round_search import RoundSearchConfig, pick, round_candidates
from slimkit.prune.methods.progressive import progressive_prune

X = torch.randn(1, 1, 8, 8)


def _candidates(model, step=0.25, seed=0, samples=4):
    return round_candidates(model, (X,), step, importance="l1", round_to=None, ignore=(),
                            gen=torch.Generator().manual_seed(seed), config=RoundSearchConfig(samples=samples))


def test_candidates_meet_the_round_budget(trained):
    space, budget, cands = _candidates(trained)
    macs0 = slimkit.profile(trained, X).macs
    assert cands[0].origin == "uniform" and cands[0].macs == budget < space.macs0
    assert cands[0].ratios == {name: pytest.approx(r) for name, r in
                               zip(space.names, [2 / 8, 3 / 12, 3 / 12])}  # ceil(0.25 * n) of every group
    assert {"uniform", "global", "sample"} <= {c.origin for c in cands}
    removed = space.macs0 - budget
    for c in cands:
        assert 0.9 * removed <= space.macs0 - c.macs and c.macs <= budget
        pruned = copy.deepcopy(trained)
        from slimkit.prune.methods._round_search import apply_candidate

        report = apply_candidate(pruned, (X,), space, c)
        assert report.macs_after == c.macs  # the cost model priced what is pruned
        assert slimkit.profile(pruned, X).macs < macs0


def test_the_round_keeps_the_best_candidate_of_a_known_score(trained, splits):
    space, _, cands = _candidates(trained)
    first = space.names[0]
    best = pick(trained, (X,), space, cands, lambda m, i, s, ratios: -ratios.get(first, 0.0))
    assert best.score == max(c.score for c in cands)
    assert best.ratios[first] == min(c.ratios.get(first, 0.0) for c in cands)
    # through the loop: the pruned first layer is the least-thinned one among the candidates
    model = copy.deepcopy(trained)
    rep = progressive_prune(model, X, splits.train, splits.val, target_accuracy=0.0, step=0.25, max_rounds=1,
                            finetune={"epochs": 0}, scope="auto",
                            score_fn=lambda m, i, s, ratios: -ratios.get(first, 0.0))
    assert rep.trajectory[1].choice == best.origin
    assert model[0][0].out_channels == 8 - round(8 * best.ratios[first])


def test_same_seed_same_rounds(trained, splits):
    def run(seed):
        model = copy.deepcopy(trained)
        rep = progressive_prune(model, X, splits.train, splits.val, target_accuracy=0.0, step=0.2, max_rounds=2,
                                finetune={"epochs": 0}, scope="auto",
                                search={"seed": seed, "calib_samples": 64, "val_samples": 64})
        return [(r.macs, r.accuracy, r.choice) for r in rep.trajectory]

    assert run(0) == run(0)
    a = _candidates(trained, seed=3)[2]
    b = _candidates(trained, seed=3)[2]
    assert [c.ratios for c in a] == [c.ratios for c in b]


@pytest.mark.parametrize("scope", ["global", "auto"])
def test_a_small_step_still_removes_channels(trained, splits, scope):
    """0.02 of 8-12 channels rounds to none under the per-layer cap: the round must still remove some."""
    model = copy.deepcopy(trained)
    macs0 = slimkit.plan_pruning(model, X, ratio=0.0).report.macs_before
    rep = progressive_prune(model, X, splits.train, splits.val, target_accuracy=0.0, step=0.02, max_rounds=1,
                            finetune={"epochs": 0}, scope=scope, search={"samples": 1})
    assert len(rep.trajectory) == 2 and rep.trajectory[1].macs < macs0
    assert scope == "auto" or rep.trajectory[1].choice == "uniform"  # global: nothing within the cap, so a uniform round instead
    assert slimkit.plan_pruning(model, X, ratio=0.0).report.macs_before == rep.trajectory[1].macs


def test_finalists_keep_uniform_when_two_or_more_are_fine_tuned(trained):
    from slimkit.prune.methods._round_search import finalists

    _, _, cands = _candidates(trained)
    for i, c in enumerate(cands):
        c.score = float(i)  # uniform (first) scores worst
    assert [c.origin for c in finalists(cands, 1)] != ["uniform"]
    top2 = finalists(cands, 2)
    assert top2[0] is cands[-1] and top2[1].origin == "uniform"
    assert finalists(cands, len(cands))[0] is cands[-1] and len(finalists(cands, len(cands))) == len(cands)


def test_finetune_top_keeps_the_finalist_with_the_best_validation_accuracy(trained, splits, monkeypatch):
    """The score prefers a non-uniform candidate, the (fake) validation accuracy prefers uniform: uniform is kept."""
    import slimkit.prune.methods.progressive as prog

    model = copy.deepcopy(trained)
    first = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)][0]
    n0 = first.out_channels
    # accuracy: 1.0 only for the model whose first conv lost exactly uniform's ceil(0.25 * 8) = 2 channels
    monkeypatch.setattr(prog, "accuracy", lambda m, data: 1.0 if [c for c in m.modules() if isinstance(
        c, torch.nn.Conv2d)][0].out_channels in (n0, n0 - 2) else 0.5)
    rep = progressive_prune(model, X, splits.train, splits.val, target_accuracy=0.9, step=0.25, max_rounds=1,
                            finetune={"epochs": 0}, scope="auto",
                            search={"samples": 4, "finetune_top": 3},
                            score_fn=lambda m, i, s, ratios: ratios[s.names[0]])  # the most pruned first layer
    assert rep.trajectory[1].accepted and rep.trajectory[1].choice == "uniform", rep.table()
    assert [c for c in model.modules() if isinstance(c, torch.nn.Conv2d)][0].out_channels == n0 - 2
    assert slimkit.plan_pruning(model, X, ratio=0.0).report.macs_before == rep.kept.macs  # the kept model is in place
