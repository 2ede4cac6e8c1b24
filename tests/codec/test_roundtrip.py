"""load(save(model)) reproduces the saved model exactly: dense, pruned (zeros), k-means shared, pruned shapes."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import slimkit
from slimkit.codec import inspect_compressed, load_state
from slimkit.core.shapes import sync_attributes
from slimkit.quant.kmeans import share_weights
from slimkit.state import load_compressed, save_compressed


def _bytes(t: torch.Tensor) -> bytes:
    t = t.detach().contiguous()
    return (t.view(torch.int16) if t.dtype == torch.bfloat16 else t).numpy().tobytes()


def _outputs(model, x):
    model.eval()
    with torch.no_grad():
        return model(x)


def _same_state(a: nn.Module, b: nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert sa[key].dtype == sb[key].dtype and sa[key].shape == sb[key].shape, key
        assert _bytes(sa[key]) == _bytes(sb[key]), key


@pytest.mark.parametrize("name, shape", [("codec_test_mlp", (3, 1, 8, 8)), ("codec_test_cnn", (3, 1, 8, 8))])
@pytest.mark.parametrize("variant", ["dense", "pruned", "shared", "pruned_shared"])
def test_outputs_identical_after_round_trip(tmp_path, seeded, prune_, name, shape, variant):
    model = slimkit.create_model(name)
    x = torch.randn(shape)
    _outputs(model, x)  # BatchNorm running stats stay default; eval mode
    if "pruned" in variant:
        prune_(model, 0.8)
    if "shared" in variant:
        share_weights(model, bits=3)
    expected = _outputs(model, x)
    report = save_compressed(model, tmp_path / "m.slim")
    loaded = load_compressed(tmp_path / "m.slim")
    assert torch.equal(_outputs(loaded, x), expected)
    assert report.file_bytes == (tmp_path / "m.slim").stat().st_size
    assert inspect_compressed(tmp_path / "m.slim").to_dict() == report.to_dict() | {"path": str(tmp_path / "m.slim")}
    if variant == "dense":
        _same_state(model, loaded)
        assert all(layer.layout == "dense" for layer in report.layers if layer.name.endswith("weight"))
    else:
        assert report.ratio > 1.5


def test_stage_ratios_grow_through_the_pipeline(tmp_path, seeded, prune_):
    model = slimkit.create_model("codec_test_mlp", in_features=256, hidden=128)
    prune_(model, 0.9)
    share_weights(model, bits=4)
    report = save_compressed(model, tmp_path / "m.slim")
    stages = report.stage_ratios()
    assert 1.0 < stages["pruning"] < stages["quantization"] < stages["huffman"]
    assert stages["file"] == pytest.approx(report.ratio)
    first = next(layer for layer in report.layers if layer.name == "1.weight")
    assert first.layout == "sparse" and first.values == "codebook"
    assert first.density == pytest.approx(0.1, abs=0.01)
    assert "ratio by stage" in report.table()


def test_structurally_pruned_shapes_are_restored(tmp_path, seeded):
    model = slimkit.create_model("codec_test_mlp")
    keep = torch.arange(0, 32, 2)  # drop half the hidden units of layer 1
    with torch.no_grad():
        fc1, fc2 = model[1], model[3]
        fc1.weight = nn.Parameter(fc1.weight[keep].clone())
        fc1.bias = nn.Parameter(fc1.bias[keep].clone())
        fc2.weight = nn.Parameter(fc2.weight[:, keep].clone())
    sync_attributes(fc1)
    sync_attributes(fc2)
    x = torch.randn(2, 1, 8, 8)
    save_compressed(model, tmp_path / "p.slim")
    loaded = load_compressed(tmp_path / "p.slim")
    assert loaded[1].out_features == 16 and loaded[3].in_features == 16
    assert torch.equal(_outputs(loaded, x), _outputs(model, x))


def test_model_without_spec_needs_architecture(tmp_path):
    model = nn.Linear(5, 3)
    save_compressed(model, tmp_path / "l.slim")
    with pytest.raises(slimkit.CheckpointError, match="model="):
        load_compressed(tmp_path / "l.slim")
    loaded = load_compressed(tmp_path / "l.slim", model=nn.Linear(5, 3))
    assert torch.equal(loaded.weight, model.weight)


def test_torch_prune_style_masks_store_the_masked_weight(tmp_path):
    from torch.nn.utils import prune

    model = nn.Sequential(nn.Linear(20, 10))
    prune.l1_unstructured(model[0], "weight", amount=0.7)
    save_compressed(model, tmp_path / "t.slim")
    state, _ = load_state(tmp_path / "t.slim")
    assert set(state) == {"0.weight", "0.bias"}
    assert torch.equal(state["0.weight"], model[0].weight)


_DTYPES = [torch.float32, torch.float16, torch.float64, torch.bfloat16, torch.int64, torch.uint8, torch.bool]


@settings(max_examples=40, deadline=None)
@given(
    st.sampled_from(_DTYPES), st.lists(st.integers(0, 40), min_size=0, max_size=3), st.floats(0, 1),
    st.sampled_from(["auto", "dense", "sparse"]), st.booleans(), st.integers(0, 2**32 - 1),
)
def test_any_tensor_round_trips_bit_exactly(tmp_path_factory, dtype, shape, density, layout, huffman, seed):
    gen = torch.Generator().manual_seed(seed)
    values = torch.randn(shape, generator=gen) * 100
    values[torch.rand(shape, generator=gen) > density] = 0
    if dtype.is_floating_point and values.numel() > 3:
        flat = values.view(-1)
        flat[:3] = torch.tensor([-0.0, float("nan"), float("inf")])
    tensor = values.to(dtype)
    holder = nn.Module()
    holder.register_buffer("t", tensor)
    path = tmp_path_factory.mktemp("t") / "t.slim"
    save_compressed(holder, path, layout=layout, huffman=huffman)
    state, _ = load_state(path)
    out = state["t"]
    assert out.dtype == tensor.dtype and out.shape == tensor.shape
    assert _bytes(out) == _bytes(tensor)


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 8), st.floats(0, 1), st.sampled_from([None, 2, 3, 8]), st.integers(0, 2**32 - 1))
def test_shared_tensors_round_trip(tmp_path_factory, bits, density, index_bits, seed):
    torch.manual_seed(seed)
    layer = nn.Linear(50, 30)
    with torch.no_grad():
        layer.weight[torch.rand(30, 50) > density] = 0
    share_weights(layer, bits=bits, types=(nn.Linear,))
    path = tmp_path_factory.mktemp("s") / "s.slim"
    save_compressed(layer, path, index_bits=index_bits)
    state, _ = load_state(path)
    assert torch.equal(state["weight"], layer.weight.detach())
    assert np.array_equal(state["bias"].numpy(), layer.bias.detach().numpy())


def test_column_scan_order_is_chosen_for_dead_inputs(tmp_path):
    torch.manual_seed(0)
    layer = nn.Linear(200, 64)
    with torch.no_grad():
        layer.weight[:, 50:] = 0  # three quarters of the inputs are dead
        layer.weight[torch.rand(64, 200) < 0.5] = 0
    share_weights(layer, bits=4, types=(nn.Linear,))
    report = save_compressed(layer, tmp_path / "c.slim")
    state, header = load_state(tmp_path / "c.slim")
    record = next(r for r in header["tensors"] if r["name"] == "weight")
    assert record["layout"] == "sparse" and record["order"] == "column"
    assert torch.equal(state["weight"], layer.weight.detach())
    assert report.layers[0].name in {"weight", "bias"}
