import torch

from slimkit.graph.groups import build_graph
from slimkit.prune.methods.soft_filter import SoftFilterHook, soft_filter_prune, zero_channels
from slimkit.train import fit

X = torch.randn(1, 1, 8, 8)
TRAIN = {"epochs": 2, "batch_size": 32, "lr": 0.05, "progress": False, "device": "cpu"}


def _zero_filters(model) -> int:
    return sum(int((m.weight.flatten(1).abs().sum(1) == 0).sum()) for m in model.modules()
               if isinstance(m, torch.nn.Conv2d))


def test_zeroed_filters_keep_training_and_are_reselected(small_cnn, splits):
    model = small_cnn()
    hook = SoftFilterHook(X, ratio=0.5)
    fit(model, splits.train, TRAIN, hooks=[hook])
    # 50% of each conv layer zeroed at the end of every epoch: 4 + 6 + 6
    assert hook.history == [16, 16]
    assert _zero_filters(model) == 16


def test_removal_matches_the_soft_pruned_model(small_cnn, splits):
    model = small_cnn()
    x = torch.randn(5, 1, 8, 8)
    captured = {}

    class Capture(SoftFilterHook):
        def on_epoch_end(self, state):
            super().on_epoch_end(state)
            state.model.eval()
            with torch.no_grad():
                captured["soft"] = state.model(x).clone()
            state.model.train()

    hook = Capture(X, ratio=0.3)
    fit(model, splits.train, {**TRAIN, "epochs": 1}, hooks=[hook])
    zeroed = _zero_filters(model)
    assert zeroed == int(hook.mask.sum()) == 3 + 4 + 4  # the engine keeps floor(n * 0.7) per layer
    from slimkit.prune.structured import make_plan

    report = make_plan(hook.graph, hook.mask, (X,), hook.config).apply()
    assert report.macs_after < report.macs_before
    assert [m.out_channels for m in model.modules() if isinstance(m, torch.nn.Conv2d)] == [5, 8, 8]
    assert _zero_filters(model) == 0  # exactly the zeroed filters went
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(x), captured["soft"], atol=1e-5, rtol=1e-5)


def test_soft_filter_prune_end_to_end(small_cnn, splits):
    model = small_cnn()
    rep = soft_filter_prune(model, X, splits.train, ratio=0.5, train=TRAIN, val_data=splits.val)
    assert rep.channels_removed == 16 and rep.zeroed_per_epoch == [16, 16]
    assert rep.accuracy_after == rep.accuracy_soft  # removal changes nothing the soft model computes
    assert rep.macs_reduction > 2.0


def test_zero_channels_touches_parameters_only(small_cnn):
    model = small_cnn().eval()
    graph = build_graph(model, (X,))
    removed = torch.zeros(graph.num_channels, dtype=torch.bool)
    removed[graph.groups[0].channels[:3]] = True
    var = model[0][1].running_var.clone()
    zero_channels(graph, removed)
    assert int((model[0][1].weight == 0).sum()) == 3 and int((model[0][1].bias == 0).sum()) >= 3
    assert torch.equal(model[0][1].running_var, var)
    assert _zero_filters(model) == 3
