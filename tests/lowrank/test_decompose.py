"""The decompose API: report numbers, rank rules, skips with reasons, atomicity, ONNX export, training, reload."""

from __future__ import annotations

import copy
import io

import pytest
import torch
from torch import nn

import slimkit
from slimkit.core.errors import ConfigError
from slimkit.lowrank import DecomposeConfig, Factorized, apply_plan, decompose
from slimkit.lowrank._base import METHODS


def small_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU(),
        nn.Conv2d(32, 32, 3, padding=1, groups=32), nn.ReLU(),  # depthwise
        nn.Conv2d(32, 32, 1), nn.ReLU(),
        nn.Flatten(), nn.Linear(32 * 8 * 8, 64), nn.ReLU(), nn.Linear(64, 10),
    )


X = torch.randn(2, 3, 16, 16)


def test_exported_from_package() -> None:
    assert slimkit.decompose is decompose


def test_full_energy_keeps_outputs_and_reports_counts() -> None:
    model = small_net().eval()
    reference = model(X)
    report = decompose(model, X, energy=1.0)
    assert torch.allclose(model(X), reference, atol=1e-4)
    entries = {e.name: e for e in report.layers}
    assert "depthwise" in (entries["5"].skipped or "")
    for entry in report.decomposed:
        assert entry.weight_error is not None and entry.weight_error < 1e-5
    for entry in report.skipped:
        assert entry.skipped
    assert report.params_after == sum(p.numel() for p in model.parameters())


def test_energy_rank_reduces_params_as_reported() -> None:
    model = small_net()
    before = sum(p.numel() for p in model.parameters())
    report = decompose(model, X, method="svd", energy=0.5, ignore=("0",))
    after = sum(p.numel() for p in model.parameters())
    assert report.params_before == before and report.params_after == after
    saved = sum(e.params_before - e.params_after for e in report.decomposed)
    assert before - after == saved > 0
    fc = next(e for e in report.decomposed if e.name == "10")
    assert fc.params_after == fc.ranks[0] * (2048 + 64) + 64
    assert isinstance(model[10], Factorized) and model[10].ranks == fc.ranks
    assert not isinstance(model[0], Factorized)  # ignored
    assert report.layer_params_reduction > 1


def test_rank_fixed_and_skips_when_no_saving() -> None:
    model = small_net()
    report = decompose(model, X, rank=2)
    entries = {e.name: e for e in report.layers}
    assert entries["10"].ranks == (2,)
    assert entries["3"].ranks == (2, 2) and entries["3"].method == "tucker"
    assert entries["7"].method == "svd"  # auto: 1x1 conv -> svd
    model2 = small_net()
    report2 = decompose(model2, X, method="svd", rank=64)
    e = {x.name: x for x in report2.layers}["12"]  # Linear(64, 10) at rank 10 cannot save
    assert e.skipped and "not fewer" in e.skipped


@pytest.mark.parametrize("target", ["target_params", "target_macs"])
def test_global_budget_is_met(target: str) -> None:
    model = small_net()
    report = decompose(model, X, **{target: 0.4})
    if target == "target_params":
        assert report.params_after <= round(0.4 * report.params_before)
    else:
        assert report.macs_after <= round(0.4 * report.macs_before)
    assert report.decomposed


def test_budget_below_rank_one_raises_and_leaves_model() -> None:
    model = small_net()
    state = copy.deepcopy(model.state_dict())
    with pytest.raises(ConfigError):
        decompose(model, X, target_params=10)
    assert not any(isinstance(m, Factorized) for m in model.modules())
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())


def test_failure_midway_restores_model(monkeypatch: pytest.MonkeyPatch) -> None:
    model = small_net()
    reference = model(X)
    handler = METHODS.get("svd")
    calls = {"n": 0}
    original = handler.fill

    def flaky(module, factors):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("boom")
        return original(module, factors)

    monkeypatch.setattr(handler, "fill", flaky)
    with pytest.raises(RuntimeError):
        decompose(model, X, method="svd", rank=2)
    assert not any(isinstance(m, Factorized) for m in model.modules())
    assert torch.equal(model(X), reference)


@pytest.mark.parametrize(
    "options",
    [dict(rank=2, energy=0.5), dict(energy=1.5), dict(rank=0), dict(method="nope"), dict(target_macs=1.5)],
)
def test_bad_options_raise_config_error(options: dict) -> None:
    with pytest.raises(ConfigError):
        decompose(small_net(), X, **options)


def test_second_call_does_not_refactor_factors() -> None:
    model = small_net()
    decompose(model, X, rank=2)
    report = decompose(model, X, rank=1)
    assert not report.decomposed
    assert all("already" in (e.skipped or "") or "depthwise" in (e.skipped or "") or "not fewer" in e.skipped
               for e in report.layers)


def test_decomposed_model_trains_and_exports_to_onnx() -> None:
    onnx = pytest.importorskip("onnx")
    model = small_net()
    decompose(model, X, method="auto", energy=0.8)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    y = torch.tensor([1, 3])
    losses = []
    for _ in range(8):
        loss = nn.functional.cross_entropy(model(X), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    model.eval()
    buffer = io.BytesIO()
    torch.onnx.export(model, (X,), buffer, dynamo=False)
    graph = onnx.load_from_string(buffer.getvalue()).graph
    assert sum(node.op_type == "Conv" for node in graph.node) > 4


def test_cp_method_and_plan_rebuild_loads_state() -> None:
    model = small_net()
    report = decompose(model, X, method="cp", rank=6)
    assert {e.name for e in report.decomposed} == {"0", "3"}
    assert {e.name: e for e in report.layers}["10"].skipped.startswith("cp factors Conv2d")
    fresh = small_net()
    apply_plan(fresh, report.plan)
    fresh.load_state_dict(model.state_dict())
    model.eval()
    fresh.eval()
    assert torch.equal(fresh(X), model(X))
    assert fresh.slimkit_lowrank == report.plan


def test_config_object_and_table() -> None:
    model = small_net()
    report = decompose(model, X, DecomposeConfig(method="tucker", energy=0.9))
    text = report.table()
    assert "tucker" in text and "skipped" in text
    assert report.to_dict()["layer_macs_reduction"] == report.layer_macs_reduction


def test_macs_agree_with_the_profiler() -> None:
    """The profiler counts a few non-conv ops too; the conv/linear part it sees changes exactly as reported."""
    from slimkit.profile import profile

    model = small_net().eval()
    x = X[:1]
    before = profile(model, x).macs
    report = decompose(model, x, method="auto", energy=0.8)
    after = profile(model, x).macs
    assert before - after == report.macs_before - report.macs_after > 0
