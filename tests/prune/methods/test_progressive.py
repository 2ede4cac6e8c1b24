import copy

import pytest
import torch

import slimkit
from slimkit.core.errors import ConfigError
from slimkit.prune.methods.progressive import progressive_prune

X = torch.randn(1, 1, 8, 8)
FT = {"epochs": 1, "batch_size": 32, "lr": 0.02, "device": "cpu"}


def test_meets_the_target_and_keeps_the_last_model_meeting_it(trained, splits, tmp_path):
    model = copy.deepcopy(trained)
    base = slimkit.evaluate(model, splits.val)["accuracy"]
    target = base - 0.1
    rep = progressive_prune(model, X, splits.train, splits.val, target_accuracy=target, step=0.25, max_rounds=6,
                            finetune=FT, per_macs=True, plot_path=tmp_path / "traj.png", scope="global",
                            importance="l1")
    assert rep.trajectory[0].accuracy == pytest.approx(base) and rep.trajectory[0].round == 0
    assert rep.final_accuracy >= target
    assert len(rep.trajectory) >= 3, rep.table()  # at least one round kept on this learnable set
    # the model left in place is the kept round: same accuracy and MACs as recorded
    assert slimkit.evaluate(model, splits.val)["accuracy"] == pytest.approx(rep.final_accuracy)
    assert slimkit.profile(model, X).macs >= 0
    assert slimkit.plan_pruning(model, X, ratio=0.0).report.macs_before == rep.kept.macs
    assert rep.macs_reduction > 1.0
    macs = [r.macs for r in rep.trajectory]
    assert all(b <= 0.75 * a for a, b in zip(macs, macs[1:]))  # per_macs: each round removes `step` of the MACs
    assert all(r.accepted for r in rep.trajectory[:-1])
    assert (tmp_path / "traj.png").exists()


def test_a_failing_round_is_rolled_back_exactly(trained, splits):
    model = copy.deepcopy(trained)
    base = slimkit.evaluate(model, splits.val)["accuracy"]
    x = torch.randn(4, 1, 8, 8)
    expected = model(x)
    rep = progressive_prune(model, X, splits.train, splits.val, target_accuracy=base, step=0.6, min_step=0.6,
                            finetune={"epochs": 0})
    assert len(rep.trajectory) == 2 and not rep.trajectory[1].accepted
    assert rep.trajectory[1].accuracy < base
    assert rep.macs_reduction == 1.0
    torch.testing.assert_close(model(x), expected, atol=0, rtol=0)


def test_target_above_the_model_is_a_config_error(trained, splits):
    base = slimkit.evaluate(trained, splits.val)["accuracy"]
    with pytest.raises(ConfigError, match="above"):
        progressive_prune(copy.deepcopy(trained), X, splits.train, splits.val, target_accuracy=base + 0.01)
    with pytest.raises(ConfigError, match="step"):
        progressive_prune(copy.deepcopy(trained), X, splits.train, splits.val, target_accuracy=0.1, step=0.0)


def test_plain_global_ranking_removes_a_step_of_the_channels(trained, splits):
    model = copy.deepcopy(trained)
    base = slimkit.evaluate(model, splits.val)["accuracy"]
    rep = progressive_prune(model, X, splits.train, splits.val, target_accuracy=max(base - 0.5, 0.0), step=0.25,
                            max_rounds=1, finetune={"epochs": 0}, scope="global", importance="l1")
    assert [m.out_channels for m in model.modules() if isinstance(m, torch.nn.Conv2d)] != [8, 12, 12]
    assert sum(m.out_channels for m in model.modules() if isinstance(m, torch.nn.Conv2d)) == 32 - 8
    assert len(rep.trajectory) == 2 and rep.trajectory[1].accepted


def test_backoff_retries_with_half_the_step(monkeypatch):
    """A fake evaluator: fine until the model falls below 60% of its MACs; each failure halves the step."""
    import torch
    from torch import nn

    import slimkit.prune.methods.progressive as prog

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 64, 3), nn.ReLU(), nn.Conv2d(64, 64, 3), nn.ReLU(), nn.Flatten(),
                          nn.LazyLinear(2))
    x = torch.randn(1, 1, 8, 8)
    model(x)
    macs0 = slimkit.profile(model, x).macs
    monkeypatch.setattr(prog, "accuracy",
                        lambda m, data: 1.0 if slimkit.profile(m, x).macs >= 0.6 * macs0 else 0.0)
    rep = prog.progressive_prune(model, x, None, None, target_accuracy=0.5, step=0.4, min_step=0.05,
                                 max_rounds=20, finetune={"epochs": 0}, scope="local", importance="l1")
    steps = [r.step for r in rep.trajectory[1:]]
    rejected = [r.step for r in rep.trajectory[1:] if not r.accepted]
    assert rejected, "some round fell below the target"
    for a, b in zip(rejected, rejected[1:]):
        assert b == pytest.approx(a / 2)
    assert min(steps) >= 0.05
    assert rejected[-1] / 2 < 0.05 or len(rep.trajectory) == 21  # stopped at the floor (or the round limit)
    assert slimkit.profile(model, x).macs >= 0.6 * macs0  # rolled back to a model meeting the target
    assert rep.kept.accepted


def test_min_step_equal_to_step_ends_at_the_first_failure(monkeypatch):
    import torch
    from torch import nn

    import slimkit.prune.methods.progressive as prog

    model = nn.Sequential(nn.Conv2d(1, 32, 3), nn.ReLU(), nn.Conv2d(32, 32, 3))
    x = torch.randn(1, 1, 8, 8)
    calls = iter([1.0, 0.0, 1.0, 1.0])
    monkeypatch.setattr(prog, "accuracy", lambda m, data: next(calls))
    rep = prog.progressive_prune(model, x, None, None, target_accuracy=0.5, step=0.3, min_step=0.3,
                                 finetune={"epochs": 0}, scope="local", importance="l1")
    assert [r.accepted for r in rep.trajectory] == [True, False]


def test_by_default_a_failed_round_backs_off_to_a_quarter_of_the_step(monkeypatch):
    """Every round fails: the default retries at step/2 and step/4, then stops (no round below step/4)."""
    import torch
    from torch import nn

    import slimkit.prune.methods.progressive as prog

    model = nn.Sequential(nn.Conv2d(1, 32, 3), nn.ReLU(), nn.Conv2d(32, 32, 3))
    x = torch.randn(1, 1, 8, 8)
    expected = model(x)
    calls = iter([1.0] + [0.0] * 10)
    monkeypatch.setattr(prog, "accuracy", lambda m, data: next(calls))
    rep = prog.progressive_prune(model, x, None, None, target_accuracy=0.5, step=0.4, finetune={"epochs": 0},
                                 scope="local", importance="l1")
    assert [r.step for r in rep.trajectory[1:]] == pytest.approx([0.4, 0.2, 0.1])
    assert not any(r.accepted for r in rep.trajectory[1:])
    torch.testing.assert_close(model(x), expected, atol=0, rtol=0)  # every failed round rolled back


def test_auto_scope_ranks_with_a_data_driven_criterion(trained, splits):
    """scope='auto' with taylor: the candidates' plans get the importance batches (no 'needs data' error)."""
    model = copy.deepcopy(trained)
    base = slimkit.evaluate(model, splits.val)["accuracy"]
    batches = [(torch.stack([splits.train[i][0] for i in range(16)]),
                torch.tensor([int(splits.train[i][1]) for i in range(16)]))]
    rep = progressive_prune(model, X, splits.train, splits.val, target_accuracy=max(base - 0.5, 0.0), step=0.25,
                            max_rounds=1, finetune={"epochs": 0}, scope="auto", importance="taylor",
                            importance_data=batches, search={"samples": 1, "calib_samples": 32, "val_samples": 32})
    assert len(rep.trajectory) == 2 and rep.trajectory[1].accepted
    assert rep.trajectory[1].macs < rep.trajectory[0].macs
    assert rep.trajectory[1].choice in ("uniform", "global", "global_macs", "sample")


def test_a_data_driven_criterion_without_batches_draws_them_from_the_training_data(trained, splits):
    """importance='taylor' and no importance_data: the loop ranks with seeded training batches, and the same
    call twice gives the same rounds."""
    runs = []
    for _ in range(2):
        model = copy.deepcopy(trained)
        base = slimkit.evaluate(model, splits.val)["accuracy"]
        rep = progressive_prune(model, X, splits.train, splits.val, target_accuracy=max(base - 0.5, 0.0),
                                step=0.25, max_rounds=1, finetune={"epochs": 0}, importance="taylor", scope="global")
        runs.append([m.out_channels for m in model.modules() if isinstance(m, torch.nn.Conv2d)])
        assert rep.trajectory[1].accepted and rep.trajectory[1].macs < rep.trajectory[0].macs
    assert runs[0] == runs[1] and sum(runs[0]) == 32 - 8


def test_defaults_are_auto_scope_with_taylor(trained, splits):
    """No scope, no criterion, no batches: per-layer ratios chosen per round, ranked by Taylor on training batches."""
    model = copy.deepcopy(trained)
    base = slimkit.evaluate(model, splits.val)["accuracy"]
    rep = progressive_prune(model, X, splits.train, splits.val, target_accuracy=max(base - 0.5, 0.0), step=0.25,
                            max_rounds=1, finetune={"epochs": 0}, search={"samples": 1, "calib_samples": 32,
                                                                        "val_samples": 32})
    assert rep.trajectory[1].choice in ("uniform", "global", "global_macs", "sample")
    assert rep.trajectory[1].accepted and rep.macs_reduction > 1
