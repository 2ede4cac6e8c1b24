import copy

import pytest
import torch
from torch import nn

from slimkit.core.errors import ConfigError
from slimkit.graph.groups import build_graph
from slimkit.prune.methods.slimming import BatchNormL1, gamma_values, network_slimming, slimming_mask
from slimkit.train import fit
from slimkit.train.hooks import TrainState

X = torch.randn(2, 1, 8, 8)


def test_hook_adds_the_l1_subgradient(small_cnn):
    model = small_cnn()
    bn = model[0][1]
    bn.weight.data = torch.tensor([0.5, -0.5, 0.0, 1.0, -2.0, 0.1, 0.2, -0.3])
    bn.weight.grad = torch.ones(8)
    state = TrainState(model=model, optimizer=None, scheduler=None, config=None, device=torch.device("cpu"))
    BatchNormL1(0.25).after_backward(state)
    expected = 1 + 0.25 * torch.sign(bn.weight.data)
    assert torch.equal(bn.weight.grad, expected)


def test_sparsity_training_drives_gammas_down(splits, small_cnn):
    config = {"epochs": 2, "batch_size": 32, "lr": 0.05, "progress": False, "device": "cpu", "weight_decay": 0.0}
    plain, sparse = small_cnn(), small_cnn()
    fit(plain, splits.train, config)
    fit(sparse, splits.train, config, hooks=[BatchNormL1(0.3)])
    g_plain, g_sparse = gamma_values(plain), gamma_values(sparse)
    assert g_sparse.mean() < 0.7 * g_plain.mean()
    assert bool((g_sparse < g_plain).all())  # same init, data and seed: only the penalty differs


def _with_gammas(model: nn.Module) -> nn.Module:
    gen = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.weight.data = torch.rand(m.num_features, generator=gen) + 0.5
            m.running_mean.normal_()
            m.running_var.uniform_(0.5, 2.0)
    return model.eval()


def test_global_threshold_removes_exactly_the_smallest_gammas(small_cnn):
    model = _with_gammas(small_cnn())
    model[2][1].weight.data[:5] = torch.tensor([1e-4, 2e-4, 3e-4, 4e-4, 5e-4])  # 5 tiny gammas in layer 2
    model[4][1].weight.data[:2] = torch.tensor([6e-4, 7e-4])
    graph = build_graph(model, (X,))
    removed, threshold, total = slimming_mask(graph, 7 / 32, max_group_ratio=0.9)
    assert total == 8 + 12 + 12
    assert int(removed.sum()) == 7
    assert threshold == pytest.approx(7e-4)


def test_slimming_zero_gamma_channels_keeps_outputs(tmp_path, small_cnn):
    model = _with_gammas(small_cnn()).double()
    for bn, idx in ((model[0][1], [1, 4]), (model[2][1], [0, 3, 7]), (model[4][1], [2])):
        bn.weight.data[idx] = 0.0
        bn.bias.data[idx] = 0.0  # zero gamma and beta: the channel outputs exactly 0 after BN + ReLU
    x = torch.randn(3, 1, 8, 8, dtype=torch.float64)
    before = model(x)
    report = network_slimming(model, (x[:1],), None, ratio=6 / 32, sparsity_train=None, finetune=None,
                              plot_dir=tmp_path)
    after = model(x)
    assert report.channels_before == 32 and report.channels_after == 26
    assert model[0][0].out_channels == 6 and model[2][0].out_channels == 9 and model[4][0].out_channels == 11
    torch.testing.assert_close(after, before, atol=1e-9, rtol=0)
    assert report.macs_after < report.macs_before
    assert (tmp_path / "slimming_gammas.png").stat().st_size > 1000
    assert (tmp_path / "slimming_channels.png").stat().st_size > 1000


def test_slimming_end_to_end_two_passes(splits, small_cnn):
    model = small_cnn()
    train = {"epochs": 1, "batch_size": 32, "lr": 0.05, "progress": False, "device": "cpu"}
    report = network_slimming(model, (X,), splits.train, val_data=splits.val, ratio=0.25, strength=1e-3,
                              passes=2, sparsity_train=train, finetune=train)
    assert len(report.passes) == 2
    # each pass removes a quarter of the channels left (floors per layer aside)
    assert report.passes[0].channels_after == 32 - 8
    assert report.passes[1].channels_after == 24 - 6
    assert report.channels_after == 18
    assert report.channels_pruned == pytest.approx(14 / 32)
    assert model(X).shape == (2, 4)
    assert 0.0 <= report.accuracy_after <= 1.0


def test_slimming_without_data_for_training_is_a_config_error(small_cnn):
    with pytest.raises(ConfigError, match="train_data"):
        network_slimming(copy.deepcopy(small_cnn()), (X,), None, ratio=0.5)
    with pytest.raises(ConfigError):
        network_slimming(small_cnn(), (X,), None, ratio=1.5, sparsity_train=None, finetune=None)
