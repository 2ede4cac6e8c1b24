"""Prune a Hugging Face model, save_pretrained, from_pretrained: the same outputs, and generate() agrees."""

from __future__ import annotations

import pytest
import torch

transformers = pytest.importorskip("transformers")
import slimkit.hf  # noqa: E402

# what each config can store: BERT-style configs take the head size from hidden_size / heads (heads tested to
# raise below); GPT-2's heads go with its hidden width (head size kept); T5 heads share one position bias (left
# whole, tested below); Whisper's attention heads are blocked in the engine (SDPA operand), so only its FFN goes
UNITS = {"bert": ("ffn",), "roberta": ("ffn",), "distilbert": ("ffn",), "whisper": ("ffn",), "t5": ("heads", "ffn"),
         "gpt2": ("heads", "ffn", "hidden"), "llama": ("heads", "ffn"), "qwen2": ("heads", "ffn"),
         "mistral": ("heads", "ffn"), "vit": ("heads", "ffn")}
FFN_FIELD = {"bert": "intermediate_size", "roberta": "intermediate_size", "distilbert": "hidden_dim",
             "gpt2": "n_inner", "llama": "intermediate_size", "qwen2": "intermediate_size",
             "mistral": "intermediate_size", "t5": "d_ff", "vit": "intermediate_size", "whisper": "encoder_ffn_dim"}
HEADS_FIELD = {"gpt2": "n_head", "llama": "num_attention_heads", "qwen2": "num_attention_heads",
               "mistral": "num_attention_heads", "vit": "num_attention_heads"}


def _forward(model, inputs, output):
    with torch.no_grad():
        return output(model(*inputs))


@pytest.mark.parametrize("arch", list(UNITS))
def test_prune_save_load_same_outputs(arch, tmp_path, hf_build, hf_output):
    model, inputs = hf_build(arch)
    report = slimkit.hf.prune_pretrained(model, inputs, units=UNITS[arch], ratio=0.5)
    ffn = 256 if arch == "gpt2" else 128
    assert getattr(model.config, FFN_FIELD[arch]) == ffn // 2
    if arch in HEADS_FIELD:
        assert getattr(model.config, HEADS_FIELD[arch]) == 2
    assert report.params_reduction > 1.15
    assert not report.config_error
    pruned = _forward(model, inputs, hf_output)
    model.save_pretrained(tmp_path)
    reloaded = type(model).from_pretrained(tmp_path).eval()
    assert {k: v.shape for k, v in reloaded.state_dict().items()} == {k: v.shape for k, v in model.state_dict().items()}
    torch.testing.assert_close(_forward(reloaded, inputs, hf_output), pruned, rtol=0, atol=1e-6)


def test_report_has_every_layers_widths(hf_build):
    model, inputs = hf_build("llama")
    report = slimkit.hf.prune_pretrained(model, inputs, units=("heads", "ffn"), heads=2, ffn=48)
    rows = {(w.module, w.field): (w.before, w.after) for w in report.layers}
    for layer in (0, 1):
        assert rows[(f"model.layers.{layer}.self_attn", "num_attention_heads")] == (4, 2)
        assert rows[(f"model.layers.{layer}.self_attn", "num_key_value_heads")] == (2, 1)
        assert rows[(f"model.layers.{layer}.mlp", "intermediate_size")] == (128, 48)
    assert model.model.layers[0].self_attn.num_key_value_groups == 2
    assert model.model.layers[1].mlp.intermediate_size == 48
    assert "num_attention_heads" in report.table()


def test_t5_heads_stay_whole_with_the_reason(hf_build):
    """T5 computes one relative position bias in its first block and adds it in every block, so no block may
    lose heads alone; the groups are reported untouched, the FFN still goes."""
    model, inputs = hf_build("t5")
    report = slimkit.hf.prune_pretrained(model, inputs, units=("heads", "ffn"))
    assert model.config.num_heads == 4 and model.config.d_ff == 64
    heads = [s for s in report.prune.skipped if s.name.endswith(".q +2")]
    assert len(heads) == 6 and all("breaks the model" in s.reason for s in heads)


@pytest.mark.parametrize("arch", ["bert", "roberta", "distilbert"])
def test_heads_the_config_cannot_store_raise_and_leave_the_model(arch, hf_build, hf_output):
    model, inputs = hf_build(arch)
    before = _forward(model, inputs, hf_output)
    shapes = {k: v.shape for k, v in model.state_dict().items()}
    config = model.config.to_dict()
    with pytest.raises(slimkit.hf.HFConfigError, match="cannot describe the pruned shapes.*save_model"):
        slimkit.hf.prune_pretrained(model, inputs, units=("heads", "ffn"))
    assert {k: v.shape for k, v in model.state_dict().items()} == shapes
    assert model.config.to_dict() == config
    torch.testing.assert_close(_forward(model, inputs, hf_output), before, rtol=0, atol=0)


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["gpt2", "llama", "qwen2", "mistral", "t5"])
def test_generate_after_pruning_and_reloading(arch, tmp_path, hf_build):
    model, inputs = hf_build(arch)
    slimkit.hf.prune_pretrained(model, inputs, units=UNITS[arch], ratio=0.5)
    prompt = inputs[0][:1, :4]
    kwargs = dict(max_new_tokens=6, do_sample=False, pad_token_id=0)
    with torch.no_grad():
        generated = model.generate(prompt, **kwargs)
    model.save_pretrained(tmp_path)
    reloaded = type(model).from_pretrained(tmp_path).eval()
    with torch.no_grad():
        again = reloaded.generate(prompt, **kwargs)
    assert generated.shape[1] > (1 if arch == "t5" else prompt.shape[1])
    assert torch.equal(generated, again)


@pytest.mark.parametrize("arch", ["llama", "qwen2", "mistral"])
def test_heads_ffn_and_hidden_together_round_trip(arch, tmp_path, hf_build, hf_output):
    model, inputs = hf_build(arch)
    slimkit.hf.prune_pretrained(model, inputs, units=("heads", "ffn", "hidden"), ratio=0.5)
    config = model.config
    assert (config.hidden_size, config.num_attention_heads, config.num_key_value_heads, config.head_dim,
            config.intermediate_size) == (32, 2, 1, 16, 64)
    model.save_pretrained(tmp_path)
    reloaded = type(model).from_pretrained(tmp_path).eval()
    torch.testing.assert_close(_forward(reloaded, inputs, hf_output), _forward(model, inputs, hf_output),
                               rtol=0, atol=1e-6)


def test_ratio_zero_is_the_identity(hf_build, hf_output):
    model, inputs = hf_build("gpt2")
    before = _forward(model, inputs, hf_output)
    shapes = {k: v.shape for k, v in model.state_dict().items()}
    report = slimkit.hf.prune_pretrained(model, inputs, units=("heads", "ffn", "hidden"), ratio=0.0)
    assert {k: v.shape for k, v in model.state_dict().items()} == shapes
    assert all(w.before == w.after for w in report.layers)
    torch.testing.assert_close(_forward(model, inputs, hf_output), before, rtol=0, atol=0)
