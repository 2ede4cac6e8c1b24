import copy

import pytest
import torch

import slimkit
from slimkit.core.errors import ConfigError
from slimkit.prune.methods.sensitivity import sensitivity_analysis

X = torch.randn(1, 1, 8, 8)


@pytest.fixture(scope="module")
def report(trained, splits, tmp_path_factory):
    path = tmp_path_factory.mktemp("sens") / "sens.png"
    before = {k: v.clone() for k, v in trained.state_dict().items()}
    rep = sensitivity_analysis(trained, X, splits.val, ratios=(0.0, 0.5, 0.9), plot_path=path, progress=False)
    after = trained.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # the model itself is never touched
    return rep


def test_ratio_zero_is_the_baseline(report, trained, splits):
    acc = slimkit.evaluate(trained, splits.val)["accuracy"]
    assert report.baseline_accuracy == pytest.approx(acc)
    assert set(report.curves) == {"0.0", "2.0", "4.0"}
    for accs in report.curves.values():
        assert len(accs) == 3
        assert accs[0] == pytest.approx(acc)
    assert any(accs[-1] < acc for accs in report.curves.values())  # removing 90% of a layer costs accuracy
    assert report.group_macs["0.0"][0] == report.macs > report.group_macs["0.0"][2]
    assert report.plots and all(p.endswith(".png") for p in report.plots)


def test_trial_accuracy_matches_pruning_that_layer(report, trained, splits):
    model = copy.deepcopy(trained)
    slimkit.prune_channels(model, X, ratio=0.0, scope="local", ratios={"2.0": 0.5})
    assert model[2][0].out_channels == 6
    assert report.curves["2.0"][1] == pytest.approx(slimkit.evaluate(model, splits.val)["accuracy"])


def test_ratios_for_drop_and_macs(report, trained):
    loose = report.ratios_for_drop(1.0)
    assert loose == {"0.0": 0.9, "2.0": 0.9, "4.0": 0.9}
    strict = report.ratios_for_drop(0.0)
    for name, ratio in strict.items():
        accs = report.curves[name]
        assert accs[report.ratios.index(ratio)] >= report.baseline_accuracy
    ratios = report.ratios_for_macs(macs_reduction=1.5)
    model = copy.deepcopy(trained)
    pruned = slimkit.prune_channels(model, X, ratio=0.0, scope="local", ratios=ratios)
    assert pruned.macs_after <= report.macs / 1.5
    assert pruned.macs_after == report.macs_of(ratios)
    with pytest.raises(ConfigError, match="not reachable"):
        report.ratios_for_macs(macs_reduction=1000.0)


def test_recalibrated_trials_match_pruning_then_recalibrating(trained, splits):
    rep = sensitivity_analysis(trained, X, splits.val, ratios=(0.5,), groups=["2.0"], progress=False,
                               recalibration_data=splits.train, recalibrate_batches=3)
    model = copy.deepcopy(trained)
    slimkit.prune_channels(model, X, ratio=0.0, scope="local", ratios={"2.0": 0.5})
    slimkit.recalibrate_bn(model, splits.train, batches=3)
    assert rep.curves["2.0"][0] == pytest.approx(slimkit.evaluate(model, splits.val)["accuracy"])
    assert trained.training is False and all(not m.training for m in trained.modules())
