"""Tiny random-init Hugging Face models (2 layers, hidden 64, 4 heads) and their example inputs."""

from __future__ import annotations

import pytest
import torch

torch.set_num_threads(1)

ARCHS = ("bert", "roberta", "distilbert", "gpt2", "llama", "qwen2", "mistral", "t5", "vit", "whisper")
DECODERS = ("gpt2", "llama", "qwen2", "mistral", "t5")


def _ids(length: int = 8) -> torch.Tensor:
    return torch.randint(3, 100, (2, length), generator=torch.Generator().manual_seed(1))


def build(name: str, **overrides):
    """``(model, example_inputs)`` for architecture ``name``, in eval mode, seeded."""
    tf = pytest.importorskip("transformers")
    torch.manual_seed(0)
    ids = _ids()
    common = dict(vocab_size=100, max_position_embeddings=32)
    if name in ("bert", "roberta"):
        config_cls, model_cls = (tf.BertConfig, tf.BertModel) if name == "bert" else (tf.RobertaConfig, tf.RobertaModel)
        config = config_cls(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
                            pad_token_id=1, **common, **overrides)
        model, inputs = model_cls(config), (ids,)
    elif name == "distilbert":
        model = tf.DistilBertModel(tf.DistilBertConfig(dim=64, n_layers=2, n_heads=4, hidden_dim=128, **common,
                                                       **overrides))
        inputs = (ids,)
    elif name == "gpt2":
        model = tf.GPT2LMHeadModel(tf.GPT2Config(vocab_size=100, n_positions=32, n_embd=64, n_layer=2, n_head=4,
                                                 bos_token_id=1, eos_token_id=2, **overrides))
        inputs = (ids,)
    elif name in ("llama", "qwen2", "mistral"):
        config_cls, model_cls = {"llama": (tf.LlamaConfig, tf.LlamaForCausalLM),
                                 "qwen2": (tf.Qwen2Config, tf.Qwen2ForCausalLM),
                                 "mistral": (tf.MistralConfig, tf.MistralForCausalLM)}[name]
        config = config_cls(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                            intermediate_size=128, bos_token_id=1, eos_token_id=2, **common, **overrides)
        model, inputs = model_cls(config), (ids,)
    elif name == "t5":
        model = tf.T5ForConditionalGeneration(tf.T5Config(vocab_size=100, d_model=64, d_kv=16, d_ff=128, num_layers=2,
                                                          num_heads=4, decoder_start_token_id=0, **overrides))
        inputs = (ids, None, ids[:, :5])  # input_ids, attention_mask, decoder_input_ids
    elif name == "vit":
        model = tf.ViTModel(tf.ViTConfig(image_size=16, patch_size=4, hidden_size=64, num_hidden_layers=2,
                                         num_attention_heads=4, intermediate_size=128, **overrides))
        inputs = (torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(1)),)
    elif name == "whisper":
        config = tf.WhisperConfig(vocab_size=100, d_model=64, encoder_layers=2, decoder_layers=2,
                                  encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=128,
                                  decoder_ffn_dim=128, num_mel_bins=16, max_source_positions=16,
                                  max_target_positions=32, decoder_start_token_id=1, pad_token_id=0, eos_token_id=2,
                                  bos_token_id=1, **overrides)
        model = tf.WhisperForConditionalGeneration(config)
        features = torch.randn(2, 16, 32, generator=torch.Generator().manual_seed(1))
        inputs = (features, None, ids[:, :5])  # input_features, attention_mask, decoder_input_ids
    else:
        raise KeyError(name)
    return model.eval(), inputs


def main_output(out) -> torch.Tensor:
    """The tensor a test compares: logits, else the last hidden state."""
    logits = getattr(out, "logits", None)
    return logits if logits is not None else out.last_hidden_state


@pytest.fixture
def hf_build():
    """:func:`build`, as a fixture (tests import nothing from conftest under ``--import-mode=importlib``)."""
    return build


@pytest.fixture
def hf_output():
    return main_output
