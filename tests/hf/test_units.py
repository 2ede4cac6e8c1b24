"""Heads as units (whole KV groups under GQA, SDPA and eager), unit options, layers that differ, imports."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

transformers = pytest.importorskip("transformers")
import slimkit  # noqa: E402
import slimkit.hf  # noqa: E402


def _zero_kv_group(attn, group: int) -> None:
    """Zero KV head ``group`` and the query heads that read it, in and out: the group has no effect."""
    d = attn.head_dim
    per = attn.num_key_value_groups
    q_rows = slice(group * per * d, (group + 1) * per * d)
    kv_rows = slice(group * d, (group + 1) * d)
    with torch.no_grad():
        attn.q_proj.weight[q_rows] = 0
        attn.k_proj.weight[kv_rows] = 0
        attn.v_proj.weight[kv_rows] = 0
        attn.o_proj.weight[:, q_rows] = 0
        for proj, rows in ((attn.q_proj, q_rows), (attn.k_proj, kv_rows), (attn.v_proj, kv_rows)):
            if proj.bias is not None:
                proj.bias[rows] = 0


@pytest.mark.parametrize("arch", ["llama", "qwen2", "mistral"])
@pytest.mark.parametrize("attn_implementation", ["sdpa", "eager"])
def test_gqa_group_without_effect_is_removed_exactly(arch, attn_implementation, hf_build):
    model, inputs = hf_build(arch, attn_implementation=attn_implementation)
    model = model.double()
    for layer in model.model.layers:
        _zero_kv_group(layer.self_attn, 1)
    with torch.no_grad():
        before = model(*inputs).logits
    report = slimkit.hf.prune_pretrained(model, inputs, units=("heads",), heads=2)
    for layer in model.model.layers:
        attn = layer.self_attn
        assert (attn.q_proj.out_features, attn.k_proj.out_features, attn.num_key_value_groups) == (32, 16, 2)
        assert float(attn.q_proj.weight.detach().abs().sum()) > 0  # the live group stayed
    assert (model.config.num_attention_heads, model.config.num_key_value_heads) == (2, 1)
    assert report.prune.macs_after < report.prune.macs_before
    with torch.no_grad():
        torch.testing.assert_close(model(*inputs).logits, before, rtol=0, atol=1e-12)


@pytest.mark.parametrize("arch", ["bert", "llama"])
@pytest.mark.parametrize("attn_implementation", ["sdpa", "eager"])
def test_head_pruning_macs_agree_with_the_profiler(arch, attn_implementation, hf_build):
    """The engine's cost model shrinks attention's q.k and attention.v products with the heads removed (under SDPA
    it once priced them as if no head went: BERT at 128 tokens reported 1.5x where the profiler measured 2x)."""
    model, _ = hf_build(arch, attn_implementation=attn_implementation)
    inputs = (torch.randint(3, 100, (1, 32), generator=torch.Generator().manual_seed(2)),)
    before = slimkit.profile(model, inputs).macs
    with pytest.warns() if arch == "bert" else contextlib.nullcontext():  # BertConfig cannot say 2 heads of 16
        report = slimkit.hf.prune_pretrained(model, inputs, units=("heads",), heads=2, require_config=False)
    measured = before / slimkit.profile(model, inputs).macs
    assert measured > 1.1
    assert report.prune.macs_reduction == pytest.approx(measured, rel=0.01)


def test_head_count_must_fill_whole_kv_groups(hf_build):
    model, inputs = hf_build("llama")
    with pytest.raises(slimkit.ConfigError, match="multiple of 2"):
        slimkit.hf.prune_pretrained(model, inputs, units=("heads",), heads=3)
    assert model.config.num_attention_heads == 4


@pytest.mark.parametrize("bad, match", [
    ({"units": ("head_dims",)}, "keeps its head size"),
    ({"units": ("neurons",)}, "unknown unit"),
    ({"heads": 0}, "count kept must be >= 1"),
    ({"ffn": 1.5}, "ffn"),
    ({"scope": "local"}, "scope"),
])
def test_bad_options_name_the_field(bad, match, hf_build):
    model, inputs = hf_build("llama")
    with pytest.raises(slimkit.ConfigError, match=match):
        slimkit.hf.prune_pretrained(model, inputs, **bad)


def test_units_choose_what_goes(hf_build):
    model, inputs = hf_build("llama")
    slimkit.hf.prune_pretrained(model, inputs, units=("ffn",), ratio=0.25, round_to=8)
    assert (model.config.num_attention_heads, model.config.intermediate_size, model.config.hidden_size) == (4, 96, 64)
    model, inputs = hf_build("llama")
    slimkit.hf.prune_pretrained(model, inputs, units=("hidden",), hidden=48)
    assert (model.config.hidden_size, model.config.head_dim, model.config.intermediate_size) == (48, 16, 128)
    assert model.model.layers[0].hidden_size == 48


def test_importance_object_chooses_the_heads_and_neurons_kept(hf_build):
    """Your own scores (an ``Importance`` object, e.g. measured on data) decide which heads and FFN neurons stay."""
    from slimkit.prune.importance import Importance, per_slice_scores

    model, inputs = hf_build("bert")
    layer = model.encoder.layer[0]
    wanted = {id(layer.attention.self.query.weight): torch.tensor([0.0, 3.0, 1.0, 2.0]).repeat_interleave(16),
              id(layer.intermediate.dense.weight): torch.arange(128.0).flip(0)}  # the first neurons score highest
    q_before = layer.attention.self.query.weight.detach().clone()
    ffn_before = layer.intermediate.dense.weight.detach().clone()

    class Given(Importance):
        def scores(self, graph, ctx):
            return per_slice_scores(graph, lambda t, d: wanted.get(id(t)) if d == 0 else None, ctx, roles=("out",))

    with pytest.warns(slimkit.hf.HFConfigWarning):  # BertConfig cannot store 2 heads of 16 on a 64-wide model
        slimkit.hf.prune_pretrained(model, inputs, units=("heads", "ffn"), heads=2, ffn=32, importance=Given(),
                                    require_config=False)
    q = layer.attention.self.query.weight
    assert torch.equal(q, q_before[torch.cat([torch.arange(16, 32), torch.arange(48, 64)])])  # heads 1 and 3
    assert torch.equal(layer.intermediate.dense.weight, ffn_before[:32])


def _lopsided(model) -> None:
    """Half of layer 1's FFN neurons do nothing, so one global ranking takes more from layer 1 than layer 0."""
    mlp = model.model.layers[1].mlp
    with torch.no_grad():
        mlp.gate_proj.weight[:64] = 0
        mlp.up_proj.weight[:64] = 0
        mlp.down_proj.weight[:, :64] = 0


@pytest.mark.slow
def test_layers_that_differ_are_refused_by_save_pretrained(tmp_path, hf_build):
    model, inputs = hf_build("llama")
    _lopsided(model)
    with pytest.raises(slimkit.hf.HFConfigError, match="intermediate_size differs across layers"):
        slimkit.hf.prune_pretrained(model, inputs, units=("ffn",), ratio=0.4, scope="global")
    assert model.model.layers[0].mlp.gate_proj.out_features == 128  # left as it was
    with pytest.warns(slimkit.hf.HFConfigWarning, match="save_model"):
        report = slimkit.hf.prune_pretrained(model, inputs, units=("ffn",), ratio=0.4, scope="global",
                                             require_config=False)
    widths = [layer.mlp.gate_proj.out_features for layer in model.model.layers]
    assert widths[0] != widths[1]
    assert "intermediate_size differs across layers" in report.config_error
    assert [layer.mlp.intermediate_size for layer in model.model.layers] == widths
    assert model.config.intermediate_size == 128  # left as it was
    with pytest.raises(slimkit.hf.HFConfigError, match=r"model.layers.0.mlp: \d+, model.layers.1.mlp: \d+.*save_model"):
        slimkit.hf.save_pretrained(model, tmp_path)
    assert not (tmp_path / "config.json").exists()
    with torch.no_grad():
        out = model(*inputs).logits
    slimkit.save_model(model, tmp_path / "pruned.slim")  # slimkit's own format stores any widths
    loaded = slimkit.load_model(tmp_path / "pruned.slim", model=hf_build("llama")[0])
    with torch.no_grad():
        torch.testing.assert_close(loaded(*inputs).logits, out, rtol=0, atol=0)


def test_uniform_scope_keeps_layers_equal(hf_build, tmp_path):
    model, inputs = hf_build("llama")
    _lopsided(model)
    slimkit.hf.prune_pretrained(model, inputs, units=("ffn",), ratio=0.4)
    assert [layer.mlp.gate_proj.out_features for layer in model.model.layers] == [76, 76]
    slimkit.hf.save_pretrained(model, tmp_path)
    assert type(model).from_pretrained(tmp_path).config.intermediate_size == 76


def test_sync_config_after_prune_channels(hf_build, tmp_path):
    """prune_channels (the engine) with local scope, then sync_config: the config follows."""
    model, inputs = hf_build("llama")
    slimkit.prune_channels(model, inputs, ratio=0.5, scope="local", attention="heads", ignore=["model.norm"])
    fields = slimkit.hf.sync_config(model)
    assert fields["intermediate_size"] == 64 and fields["num_key_value_heads"] == 1
    model.save_pretrained(tmp_path)
    with torch.no_grad():
        torch.testing.assert_close(type(model).from_pretrained(tmp_path)(*inputs).logits, model(*inputs).logits,
                                   rtol=0, atol=1e-6)


@pytest.mark.slow  # a fresh interpreter imports torch
def test_importing_slimkit_and_slimkit_hf_imports_no_transformers():
    code = "import sys, slimkit, slimkit.hf; assert 'transformers' not in sys.modules, 'transformers imported'"
    src = str(Path(slimkit.__file__).parents[1])
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, "PYTHONPATH": src})


def test_bert_heads_without_a_config_go_to_slimkits_format(tmp_path, hf_build, hf_output):
    """require_config=False: BERT loses heads anyway (its config cannot say so); slimkit's format stores them."""
    model, inputs = hf_build("bert")
    with pytest.warns(slimkit.hf.HFConfigWarning, match="cannot describe the pruned shapes"):
        report = slimkit.hf.prune_pretrained(model, inputs, units=("heads", "ffn"), require_config=False)
    attn = model.encoder.layer[0].attention.self
    assert (attn.num_attention_heads, attn.all_head_size, attn.query.out_features) == (2, 32, 32)
    assert model.config.num_attention_heads == 4 and report.config_error
    with torch.no_grad():
        out = hf_output(model(*inputs))
    slimkit.save_model(model, tmp_path / "bert.slim")
    loaded = slimkit.load_model(tmp_path / "bert.slim", model=hf_build("bert")[0])
    with torch.no_grad():
        torch.testing.assert_close(hf_output(loaded(*inputs)), out, rtol=0, atol=0)


def test_unknown_models_are_named():
    model = torch.nn.Sequential(torch.nn.Linear(4, 4))
    with pytest.raises(slimkit.ConfigError, match="Sequential is not a Hugging Face model"):
        slimkit.hf.prune_pretrained(model, torch.randn(1, 4))
