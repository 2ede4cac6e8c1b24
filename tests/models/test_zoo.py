"""The zoo, parametrized over the registry itself: every model builds, runs, scales and round-trips."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import slimkit
from slimkit.core.errors import ConfigError
from slimkit.models import create_model, list_models, model_spec
from slimkit.state import load_model, save_model

MODELS = list_models()
INPUTS = {"gray28": (1, 28), "rgb32": (3, 32)}
# dense layers whose first matrix scales with width, not width^2; and MobileNetV2, which keeps its 1280-wide head
LINEAR_IN_WIDTH = {"lenet300", "mobilenetv2", "mobilenetv2_imagenet"}


def _params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _build(name: str, channels: int, size: int, **kw) -> nn.Module:
    torch.manual_seed(0)
    return create_model(name, in_channels=channels, num_classes=10, image_size=(size, size), **kw)


def test_zoo_has_the_literature_models():
    assert set(MODELS) >= {
        "lenet300", "lenet5", "vgg11_bn", "vgg16_bn", "resnet20", "resnet56", "mobilenetv2", "densenet40",
        "resnet18", "resnet50", "mobilenetv2_imagenet",
    }  # fmt: skip


@pytest.mark.parametrize("shape", INPUTS, ids=list(INPUTS))
@pytest.mark.parametrize("name", MODELS)
def test_forward_shape_and_finite_gradients(name, shape):
    channels, size = INPUTS[shape]
    model = _build(name, channels, size)
    x = torch.randn(2, channels, size, size)
    model.train()
    out = model(x)
    assert out.shape == (2, 10)
    out.logsumexp(1).sum().backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), pname
    model.eval()
    with torch.no_grad():
        out = model(x)
    assert out.shape == (2, 10) and torch.isfinite(out).all()
    assert model_spec(model) == {
        "name": name,
        "kwargs": {"in_channels": channels, "num_classes": 10, "image_size": [size, size]},
    }


@pytest.mark.parametrize("name", MODELS)
def test_half_width_shrinks_params(name):
    full = _params(_build(name, 3, 32))
    half_model = _build(name, 3, 32, width=0.5)
    half = _params(half_model)
    ratio = half / full
    if name in LINEAR_IN_WIDTH:
        assert 0.25 < ratio < 0.5
    else:
        assert ratio == pytest.approx(0.25, abs=0.01)
    assert half_model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


@pytest.mark.parametrize("name", MODELS)
def test_each_leaf_module_runs_once(name):
    """Hook-based tools (profilers, feature hints, graph tracing) need every module object used once per forward."""
    model = _build(name, 1, 28, width=0.25).eval()
    calls: dict[str, int] = {}
    handles = [
        m.register_forward_hook(lambda mod, i, o, fqn=fqn: calls.__setitem__(fqn, calls.get(fqn, 0) + 1))
        for fqn, m in model.named_modules()
        if not list(m.children())
    ]
    with torch.no_grad():
        model(torch.randn(2, 1, 28, 28))
    for h in handles:
        h.remove()
    assert calls and max(calls.values()) == 1
    leaves_with_params = {fqn for fqn, m in model.named_modules() if not list(m.children()) and _params(m)}
    assert leaves_with_params <= set(calls)


@pytest.mark.parametrize("name", MODELS)
def test_fx_traceable_with_same_output(name):
    model = _build(name, 3, 32, width=0.25).eval()
    traced = torch.fx.symbolic_trace(model)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(traced(x), model(x))


@pytest.mark.parametrize("name", MODELS)
def test_save_load_round_trip_identical(name, tmp_path):
    model = _build(name, 1, 28, width=0.25).eval()
    with torch.no_grad():  # move BN statistics away from their defaults so the buffers matter
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    path = save_model(model, tmp_path / f"{name}.pt")
    loaded = load_model(path).eval()
    x = torch.randn(2, 1, 28, 28)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    assert model_spec(loaded) == model_spec(model)


def test_round_trip_restores_pruned_shapes(tmp_path):
    model = create_model("lenet300")
    keep = torch.arange(0, 300, 2)  # drop every other hidden unit of fc1, as structured pruning would
    fc1, fc2 = model.fc1, model.fc2
    model.fc1 = nn.Linear(784, 150)
    model.fc2 = nn.Linear(150, 100)
    with torch.no_grad():
        model.fc1.weight.copy_(fc1.weight[keep])
        model.fc1.bias.copy_(fc1.bias[keep])
        model.fc2.weight.copy_(fc2.weight[:, keep])
        model.fc2.bias.copy_(fc2.bias)
    loaded = load_model(save_model(model, tmp_path / "pruned.pt"))
    assert loaded.fc1.out_features == 150 and loaded.fc2.in_features == 150
    x = torch.randn(3, 1, 28, 28)
    assert torch.equal(loaded(x), model(x))
    assert _params(loaded) == 784 * 150 + 150 + 150 * 100 + 100 + 1010


@pytest.mark.parametrize(
    ("name", "kwargs", "expected"),
    [
        ("lenet300", {"in_channels": 1}, 266_610),  # 784*300+300 + 300*100+100 + 100*10+10
        ("lenet5", {"in_channels": 1}, 431_080),  # Han et al. 2015, Caffe LeNet-5
        ("resnet20", {"in_channels": 3}, 272_474),  # 0.27M (option A: 269,722; +2,752 for 1x1 projections)
        ("resnet56", {"in_channels": 3}, 855_770),  # 0.85M (option A: 853,018)
        ("densenet40", {"in_channels": 3}, 1_019_722),  # 1.0M (Huang et al. 2017)
        ("vgg16_bn", {"in_channels": 3}, 14_724_042),  # 14.7M, CIFAR style with one linear classifier
        ("resnet18", {"in_channels": 3, "num_classes": 1000}, 11_689_512),  # torchvision
        ("resnet50", {"in_channels": 3, "num_classes": 1000}, 25_557_032),  # torchvision
        ("mobilenetv2_imagenet", {"in_channels": 3, "num_classes": 1000}, 3_504_872),  # torchvision
    ],
)
def test_literature_param_counts(name, kwargs, expected):
    assert _params(create_model(name, **kwargs)) == expected


def test_lenet300_input_size_follows_image():
    assert create_model("lenet300", in_channels=3, image_size=(32, 32)).fc1.in_features == 3 * 32 * 32
    assert create_model("lenet300", input_size=100).fc1.in_features == 100


def test_mobilenet_width_rounds_to_multiples_of_8():
    model = create_model("mobilenetv2", width=0.35)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert all(m.out_channels % 8 == 0 for m in convs)
    assert convs[-1].out_channels == 1280  # the paper keeps the last layer at 1280 below width 1


def test_width_one_is_the_published_model_and_other_widths_round():
    assert create_model("resnet20", width=0.3).conv1.out_channels == 5  # round(16 * 0.3)
    assert create_model("resnet20", width=0.01).conv1.out_channels == 1  # at least one channel
    assert create_model("vgg11_bn", width=2).features[0].out_channels == 128


def test_factory_path_builds_user_models(tmp_path):
    model = create_model("slimkit.models.lenet:LeNet300", in_features=20, num_classes=3)
    assert model(torch.randn(4, 20)).shape == (4, 3)
    path = save_model(model, tmp_path / "user.pt")
    with pytest.raises(slimkit.CheckpointError, match="never imports code named in a file"):
        load_model(path)  # the file's "package.module:factory" string is data, never imported
    from slimkit.models.lenet import LeNet300

    loaded = load_model(path, factory=LeNet300)
    x = torch.randn(4, 20)
    assert torch.equal(loaded(x), model(x))


def test_bad_names_and_arguments_raise_config_error():
    with pytest.raises(ConfigError, match="unknown model 'resnet21'.*resnet20.*vgg16_bn"):
        create_model("resnet21")
    with pytest.raises(ConfigError, match="cannot import 'no_such_pkg.mod'"):
        create_model("no_such_pkg.mod:factory")
    with pytest.raises(ConfigError, match="has no callable 'nope'"):
        create_model("slimkit.models.lenet:nope")
    with pytest.raises(ConfigError, match="bad arguments"):
        create_model("resnet20", depth=21)
    for width in (0, -1.0, "wide"):
        with pytest.raises(ConfigError, match="width"):
            create_model("resnet20", width=width)


@pytest.mark.parametrize("name", ["lenet5", "resnet20"])
def test_a_few_sgd_steps_fit_a_fixed_batch(name):
    """Init and wiring let gradients flow: the loss on a fixed batch falls within a few steps (small models only;
    the slow test below trains every model on learnable data)."""
    torch.manual_seed(0)
    model = create_model(name, in_channels=1, num_classes=4, width=0.25)
    x, y = torch.randn(16, 1, 28, 28), torch.arange(16) % 4
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    losses = []
    for _ in range(8):
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0], losses


@pytest.mark.slow
@pytest.mark.parametrize("name", ["lenet300", "lenet5", "vgg11_bn"])
def test_models_learn_synthetic_classes(name):
    """32 SGD steps reach > 0.7 test accuracy (chance 0.25). Quarter-width ResNet-20 and DenseNet-40 learn more
    slowly (about 0.4 after 32 steps), so they are not asserted here."""
    from slimkit.data import load_dataset

    torch.manual_seed(0)
    data = load_dataset("synthetic", num_samples=256, num_test=128, in_channels=3, image_size=32, num_classes=4)
    model = create_model(name, in_channels=3, num_classes=4, width=0.25, image_size=(32, 32))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4)
    for _epoch in range(4):
        for batch in torch.randperm(len(data.train)).split(32):
            x, y = data.train.get_batch(batch)
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            optimizer.step()
    model.eval()
    x, y = data.test.get_batch(torch.arange(len(data.test)))
    with torch.no_grad():
        accuracy = (model(x).argmax(1) == y).float().mean().item()
    assert accuracy > 0.7, accuracy  # chance is 0.25
