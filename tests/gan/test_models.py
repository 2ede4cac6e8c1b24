"""The GAN zoo (``list_models("gan")``): shapes, width multipliers, file round trips, and kept out of the
classifier listing that zoo-wide classifier tests iterate over."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import slimkit

GAN_MODELS = slimkit.list_models("gan")


def _inputs(name: str, batch: int = 2) -> tuple:
    if name == "dcgan_g":
        return torch.randn(batch, 64), torch.arange(batch) % 10
    if name == "dcgan_d":
        return torch.rand(batch, 1, 28, 28) * 2 - 1, torch.arange(batch) % 10
    return (torch.rand(batch, 1, 28, 28) * 2 - 1,)


OUTPUT_SHAPES = {"dcgan_g": (2, 1, 28, 28), "dcgan_d": (2,), "resnet_g": (2, 1, 28, 28), "patch_d": (2, 1, 6, 6)}


def _params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_gan_models_are_registered_apart_from_classifiers():
    assert set(GAN_MODELS) == {"dcgan_g", "dcgan_d", "resnet_g", "patch_d"}
    assert not set(GAN_MODELS) & set(slimkit.list_models())
    assert set(slimkit.list_models(None)) == set(slimkit.list_models()) | set(GAN_MODELS)


@pytest.mark.parametrize("name", GAN_MODELS)
def test_forward_shape_gradients_and_range(name):
    torch.manual_seed(0)
    model = slimkit.create_model(name).train()
    out = model(*_inputs(name))
    assert out.shape == OUTPUT_SHAPES[name] and torch.isfinite(out).all()
    if name.endswith("_g"):
        assert out.abs().max() <= 1.0  # tanh output
    out.square().mean().backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), pname


@pytest.mark.parametrize("name", GAN_MODELS)
def test_half_width_quarters_the_hidden_params(name):
    full, half = _params(slimkit.create_model(name)), _params(slimkit.create_model(name, width=0.5))
    assert 0.2 < half / full < 0.5
    assert slimkit.create_model(name, width=0.5)(*_inputs(name)).shape == OUTPUT_SHAPES[name]


def test_dcgan_transposed_conv_variant_and_image_to_image_norms():
    g = slimkit.create_model("dcgan_g", upsample="transpose")
    assert any(isinstance(m, nn.ConvTranspose2d) for m in g.modules())
    assert g(*_inputs("dcgan_g")).shape == OUTPUT_SHAPES["dcgan_g"]
    r = slimkit.create_model("resnet_g")
    norms = [m for m in r.modules() if isinstance(m, nn.InstanceNorm2d)]
    assert norms and all(m.affine for m in norms)
    with pytest.raises(slimkit.ConfigError, match="upsample"):
        slimkit.create_model("dcgan_g", upsample="bilinear")


@pytest.mark.parametrize("name", GAN_MODELS)
def test_save_load_round_trip_identical(name, tmp_path):
    torch.manual_seed(0)
    model = slimkit.create_model(name, width=0.25).eval()
    x = _inputs(name)
    loaded = slimkit.load_model(slimkit.save_model(model, tmp_path / f"{name}.pt", example_inputs=x)).eval()
    with torch.no_grad():
        assert torch.equal(loaded(*x), model(*x))


@pytest.mark.parametrize("name", GAN_MODELS)
def test_structured_pruning_keeps_shapes(name):
    torch.manual_seed(0)
    model = slimkit.create_model(name, width=0.5).eval()
    x = _inputs(name)
    report = slimkit.prune_channels(model, x, macs_reduction=2.0)
    assert report.macs_reduction >= 2.0
    assert model(*x).shape == OUTPUT_SHAPES[name]


@pytest.mark.parametrize("size", [16, 28])
def test_dcgan_d_pool_keeps_a_spatial_grid(size):
    torch.manual_seed(0)
    d = slimkit.create_model("dcgan_d", width=0.25, pool=4)
    assert d.linear.in_features == d.embed.embedding_dim == 32 * 16
    x = torch.rand(3, 1, size, size) * 2 - 1
    assert d(x, torch.tensor([0, 1, 2])).shape == (3,)
    assert slimkit.create_model("dcgan_d", width=0.25).linear.in_features == 32 * 49  # default: the 7x7 grid
    assert slimkit.create_model("dcgan_d", width=0.25, pool=1).linear.in_features == 32  # the global mean
    with pytest.raises(slimkit.ConfigError, match="pool"):
        slimkit.create_model("dcgan_d", pool=0)


def test_dcgan_d_spectral_norm_bounds_every_weight_layer():
    torch.manual_seed(0)
    d = slimkit.create_model("dcgan_d", width=0.25, spectral_norm=True)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in d.modules())
    x, y = torch.rand(8, 1, 28, 28) * 2 - 1, torch.arange(8) % 10
    for _ in range(20):  # the power iteration runs in training mode
        d(x, y)
    d.eval()
    with torch.no_grad():
        for layer in (d.features[0], d.features[2], d.linear, d.embed):
            weight = layer.weight.flatten(1)  # the normalized weight
            assert float(torch.linalg.matrix_norm(weight, ord=2)) == pytest.approx(1.0, rel=0.05)
            # the DCGAN init, and embed_std's default 0.02 for the class embedding, reached the parameter behind
            expected = 0.02
            assert float(layer.parametrizations.weight.original.std()) == pytest.approx(expected, rel=0.2)
    assert d(x, y).shape == (8,)
    with pytest.raises(slimkit.ConfigError, match="spectral_norm"):
        slimkit.create_model("dcgan_d", spectral_norm="yes")


def test_dcgan_d_embed_std_scales_the_projection_logit_and_1_keeps_the_old_draw():
    x, y = torch.rand(64, 1, 28, 28) * 2 - 1, torch.arange(64) % 10
    torch.manual_seed(0)
    default = slimkit.create_model("dcgan_d", width=0.5).eval()
    torch.manual_seed(0)
    small = slimkit.create_model("dcgan_d", width=0.5, embed_std=0.02).eval()
    torch.manual_seed(0)
    old = slimkit.create_model("dcgan_d", width=0.5, embed_std=1.0).eval()
    assert torch.equal(default.embed.weight, small.embed.weight)  # the default is 0.02 (since 2026-12-05)
    assert float(default.embed.weight.detach().std()) == pytest.approx(0.02, rel=0.1)
    assert float(old.embed.weight.detach().std()) == pytest.approx(1.0, rel=0.1)  # nn.Embedding's N(0, 1)
    rest = [k for k in old.state_dict() if not k.startswith("embed.")]
    assert all(torch.equal(old.state_dict()[k], small.state_dict()[k]) for k in rest)  # only the embedding redrawn
    with torch.no_grad():
        def projection(d):
            h = d.pool(d.features(x)).flatten(1)  # (B, D1 * 49)
            return (d.embed(y) * h).sum(dim=1)  # (B,)

        ratio = float(projection(old).std() / projection(default).std())
    assert ratio == pytest.approx(50.0, rel=0.2)  # the logit scales with the embedding's std
    sn = slimkit.create_model("dcgan_d", width=0.25, spectral_norm=True, embed_std=1.0)  # the old draw with SN too
    assert float(sn.embed.parametrizations.weight.original.detach().std()) == pytest.approx(1.0, rel=0.2)
    for bad in (0, -1.0, True, "small"):
        with pytest.raises(slimkit.ConfigError, match="embed_std"):
            slimkit.create_model("dcgan_d", embed_std=bad)
