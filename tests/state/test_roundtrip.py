"""Every compressed state round-trips through save_model/load_model and .slim: outputs equal, exactly.

Parametrized over the states slimkit's transforms leave a model in (and combinations) x zoo models (rebuilt from
their registered name) and test architectures treated as the user's own ``nn.Module`` (rebuilt from a fresh
instance passed as ``model=``).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn

import slimkit
from slimkit.core.errors import SlimkitError
from slimkit.prune.methods.layer_removal import remove_layers
from slimkit.prune.unstructured import get_masks
from slimkit.quant import BinaryConfig, Int8Config, MixedPrecisionConfig, QuantConfig, TernaryConfig
from slimkit.quant.kmeans import shared_weights
from slimkit.testing.registry import build_arch

Transform = Callable[[nn.Module, tuple], None]


def _calib(inputs: tuple) -> list:
    return [inputs[0]] if len(inputs) == 1 else []


def _pruned(m: nn.Module, x: tuple) -> None:
    slimkit.prune_channels(m, x, ratio=0.4, importance="l1")


def _slimmed(m: nn.Module, x: tuple) -> None:
    slimkit.prune_channels(m, x, ratio=0.4, importance="bn_scale")


def _sparse(m: nn.Module, x: tuple) -> None:
    slimkit.prune_weights(m, sparsity=0.6)


def _int8(m: nn.Module, x: tuple) -> None:
    slimkit.quantize(m, Int8Config(), calibration_data=_calib(x))


def _int8_weights(m: nn.Module, x: tuple) -> None:
    slimkit.quantize(m, Int8Config(activation_bits=None))


def _qat_lsq(m: nn.Module, x: tuple) -> None:
    slimkit.quantize(m, QuantConfig(mode="qat", learn_step=True, weight_bits=4, activation_bits=None))
    m.train()
    m(*x)  # one training forward: LSQ steps take over the scales
    m.eval()


def _binary(m: nn.Module, x: tuple) -> None:
    slimkit.quantize(m, BinaryConfig(method="xnor", keep_first_last=False))


def _ternary(m: nn.Module, x: tuple) -> None:
    slimkit.quantize(m, TernaryConfig(method="ttq", keep_first_last=False))


def _mixed(m: nn.Module, x: tuple) -> None:
    slimkit.quantize(m, MixedPrecisionConfig(candidate_bits=(4, 8), budget_ratio=0.2,
                                             quant=QuantConfig(activation_bits=None)), calibration_data=[x[0]])


def _lowrank(m: nn.Module, x: tuple) -> None:
    slimkit.decompose(m, x, method="auto", rank=2)


def _shared(m: nn.Module, x: tuple) -> None:
    slimkit.share_weights(m, bits=3)


def _layers_removed(m: nn.Module, x: tuple) -> None:
    blocks = [n for n, c in m.named_modules() if n.count(".") == 1 and n.endswith(".1") and
              any(isinstance(k, nn.Conv2d) for k in c.modules())]
    if not blocks:
        pytest.skip("no residual block to remove")
    remove_layers(m, blocks[:1])


def _chain(*steps: Transform) -> Transform:
    def apply(m: nn.Module, x: tuple) -> None:
        for step in steps:
            step(m, x)

    return apply


STATES: dict[str, Transform] = {
    "pruned": _pruned,
    "slimmed": _slimmed,
    "sparse": _sparse,
    "int8": _int8,
    "int8_weights": _int8_weights,
    "qat_lsq": _qat_lsq,
    "binary_xnor": _binary,
    "ternary_ttq": _ternary,
    "mixed_precision": _mixed,
    "lowrank": _lowrank,
    "shared": _shared,
    "layers_removed": _layers_removed,
    "pruned+sparse+shared": _chain(_pruned, _sparse, _shared),
    "pruned+lowrank+int8": _chain(_pruned, _lowrank, _int8_weights),
    "removed+pruned+qat": _chain(_layers_removed, _pruned, _qat_lsq),
}

ZOO = {"lenet5": {"in_channels": 1, "num_classes": 10}, "resnet20": {"in_channels": 1, "num_classes": 10,
                                                                     "width": 0.5}}
USER_ARCHS = ["conv_bn_relu", "resnet", "depthwise_separable", "mlp", "mha_encoder", "lstm_head", "unet",
              "blurpool_resnet", "hf_conv1d_mlp", "tied_embedding", "torch_transformer_layer"]


class Thin(nn.Module):
    """A user's module that keeps a channel count as a Python int and uses it in forward."""

    def __init__(self) -> None:
        super().__init__()
        self.channels = 8
        self.conv = nn.Conv2d(1, self.channels, 3, padding=1)
        self.bn = nn.BatchNorm2d(self.channels)
        self.head = nn.Linear(self.channels, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.bn(self.conv(x)))
        return self.head(y.mean((2, 3)).reshape(-1, self.channels))


def _build(name: str) -> tuple[nn.Module, tuple, Callable[[], nn.Module] | None]:
    """(model, inputs, fresh) where fresh() builds the user's architecture (None for zoo models)."""
    if name in ZOO:
        torch.manual_seed(0)
        model = slimkit.create_model(name, **ZOO[name]).eval()
        return model, (torch.randn(2, 1, 28, 28),), None
    if name == "thin_user_module":
        torch.manual_seed(0)
        return Thin().eval(), (torch.randn(2, 1, 8, 8),), Thin
    model, inputs = build_arch(name)
    return model, inputs, lambda: build_arch(name, seed=1)[0]


def _outputs(model: nn.Module, inputs: tuple) -> list[torch.Tensor]:
    model.eval()
    with torch.no_grad():
        out = model(*inputs)
    return [t for t in (out if isinstance(out, (tuple, list)) else (out,)) if isinstance(t, torch.Tensor)]


def _transformed(arch: str, state: str) -> tuple[nn.Module, tuple, Callable[[], nn.Module] | None]:
    model, inputs, fresh = _build(arch)
    try:
        STATES[state](model, inputs)
    except SlimkitError as err:  # the transform itself refuses this architecture: nothing to save
        pytest.skip(f"{state} does not apply to {arch}: {err}")
    return model, inputs, fresh


def _check_same(model: nn.Module, loaded: nn.Module, inputs: tuple) -> None:
    want, got = _outputs(model, inputs), _outputs(loaded, inputs)
    assert len(want) == len(got) and want
    for a, b in zip(want, got):
        assert a.shape == b.shape
        assert torch.equal(a, b), (a - b).abs().max()
    assert [type(m).__name__ for m in model.modules()] == [type(m).__name__ for m in loaded.modules()]
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == \
        {k: tuple(v.shape) for k, v in loaded.state_dict().items()}
    assert sorted(get_masks(model)) == sorted(get_masks(loaded))
    for name, mask in get_masks(model).items():
        assert torch.equal(mask, get_masks(loaded)[name])
    assert sorted(shared_weights(model)) == sorted(shared_weights(loaded))


@pytest.mark.parametrize("arch", [*ZOO, *USER_ARCHS, "thin_user_module"])
@pytest.mark.parametrize("state", list(STATES))
@pytest.mark.parametrize("fmt", ["model", "slim"])
def test_state_roundtrips(arch: str, state: str, fmt: str, tmp_path) -> None:
    model, inputs, fresh = _transformed(arch, state)
    path = tmp_path / f"m.{fmt}"
    if fmt == "model":
        slimkit.save_model(model, path, example_inputs=inputs)
        loaded = slimkit.load_model(path, None if fresh is None else fresh())
    else:
        slimkit.save_compressed(model, path, example_inputs=inputs)
        loaded = slimkit.load_compressed(path, model=None if fresh is None else fresh())
    _check_same(model, loaded, inputs)


def test_user_module_int_attribute_follows_pruning(tmp_path) -> None:
    """A cut the user (or the engine) made to a module that keeps its width as an int loads back with that int."""
    model, inputs, fresh = _build("thin_user_module")
    keep = torch.arange(3, 8)
    with torch.no_grad():
        model.conv.weight = nn.Parameter(model.conv.weight[keep].clone())
        model.conv.bias = nn.Parameter(model.conv.bias[keep].clone())
        model.bn.weight = nn.Parameter(model.bn.weight[keep].clone())
        model.bn.bias = nn.Parameter(model.bn.bias[keep].clone())
        model.bn.running_mean = model.bn.running_mean[keep].clone()
        model.bn.running_var = model.bn.running_var[keep].clone()
        model.head.weight = nn.Parameter(model.head.weight[:, keep].clone())
    model.channels = 5
    slimkit.save_model(model, tmp_path / "thin.pt", example_inputs=inputs)
    loaded = slimkit.load_model(tmp_path / "thin.pt", fresh())
    assert loaded.channels == 5 and loaded.conv.out_channels == 5
    _check_same(model, loaded, inputs)


def test_loading_into_wrong_instance_leaves_it_unchanged(tmp_path) -> None:
    model, inputs, _ = _transformed("conv_bn_relu", "pruned")
    slimkit.save_model(model, tmp_path / "m.pt")
    other, _ = build_arch("mlp")
    before = {k: v.clone() for k, v in other.state_dict().items()}
    with pytest.raises(slimkit.CheckpointError):
        slimkit.load_model(tmp_path / "m.pt", other)
    after = other.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)


def test_user_module_without_instance_names_the_fix(tmp_path) -> None:
    model, _, _ = _build("thin_user_module")
    slimkit.save_model(model, tmp_path / "m.pt")
    with pytest.raises(slimkit.CheckpointError, match="pass a fresh instance"):
        slimkit.load_model(tmp_path / "m.pt")
    loaded = slimkit.load_model(tmp_path / "m.pt", factory=Thin)
    assert isinstance(loaded, Thin)


def test_unrepresentable_module_fails_at_save_naming_it(tmp_path) -> None:
    from slimkit.quant.fake_quant import FakeQuantize

    model = slimkit.create_model("lenet5", in_channels=1, num_classes=10)
    model.extra = FakeQuantize(8)  # a slimkit module no structure kind owns
    with pytest.raises(slimkit.CheckpointError, match=r"extra \(FakeQuantize\)"):
        slimkit.save_model(model, tmp_path / "m.pt")
    assert not (tmp_path / "m.pt").exists()


def test_nan_weights_refused_at_save(tmp_path) -> None:
    model = slimkit.create_model("lenet5", in_channels=1, num_classes=10)
    with torch.no_grad():
        next(model.parameters())[0] = float("nan")
    with pytest.raises(slimkit.CheckpointError, match="NaN"):
        slimkit.save_model(model, tmp_path / "m.pt")
