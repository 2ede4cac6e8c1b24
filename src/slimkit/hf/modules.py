"""Per Hugging Face module class: which sub-layer carries a unit's width, and how the module's own attributes and
the config fields follow a pruned width.

Keyed by class name, so this file imports nothing from ``transformers``. Each sync function reads the (pruned)
weights, sets the module's size attributes to match, and returns the config fields they imply. Add a class with
:func:`register_hf_module`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

Fields = dict[str, int]


@dataclass(frozen=True)
class Part:
    """A Hugging Face module holding one unit kind.

    Attributes:
        unit: ``heads`` (attention heads, or whole KV groups under grouped-query attention) or ``ffn`` (neurons).
        inner: the sub-layer whose output width is the unit's (``query``, ``q_proj``, ``fc1``, ``c_attn``).
        sync: ``sync(module, name) -> {config field: value}``, after setting the module's size attributes.
    """

    unit: str
    inner: str
    sync: Callable[[nn.Module, str], Fields]


PARTS: dict[str, Part] = {}


def register_hf_module(*class_names: str, unit: str, inner: str) -> Callable:
    """Register ``sync(module, name) -> fields`` for Hugging Face modules of these class names."""

    def deco(fn: Callable[[nn.Module, str], Fields]) -> Callable[[nn.Module, str], Fields]:
        for name in class_names:
            PARTS[name] = Part(unit, inner, fn)
        return fn

    return deco


def _out(layer: nn.Module) -> int:
    """Output width of a Linear or of GPT-2's Conv1D (``nf``)."""
    return int(layer.weight.shape[0] if isinstance(layer, nn.Linear) else layer.weight.shape[1])


def _side(name: str, encoder: str, decoder: str) -> str:
    """Whisper-style configs size the encoder and the decoder apart."""
    return decoder if "decoder." in f"{name}." else encoder


@register_hf_module("BertSelfAttention", "BertCrossAttention", "RobertaSelfAttention", "RobertaCrossAttention",
                    unit="heads", inner="query")
def _bert_attention(m: nn.Module, name: str) -> Fields:
    m.all_head_size = _out(m.query)
    m.num_attention_heads = m.all_head_size // m.attention_head_size
    return {"num_attention_heads": m.num_attention_heads}


@register_hf_module("DistilBertSelfAttention", "MultiHeadSelfAttention", unit="heads", inner="q_lin")
def _distilbert_attention(m: nn.Module, name: str) -> Fields:
    m.n_heads = _out(m.q_lin) // m.attention_head_size
    return {"n_heads": m.n_heads}


@register_hf_module("GPT2Attention", unit="heads", inner="c_attn")
def _gpt2_attention(m: nn.Module, name: str) -> Fields:
    m.split_size = _out(m.c_attn) // 3
    m.num_heads = m.split_size // m.head_dim
    m.embed_dim = _out(m.c_proj)
    return {"n_head": m.num_heads}


@register_hf_module("LlamaAttention", "Qwen2Attention", "MistralAttention", unit="heads", inner="q_proj")
def _llama_attention(m: nn.Module, name: str) -> Fields:
    heads, kv = _out(m.q_proj) // m.head_dim, _out(m.k_proj) // m.head_dim
    m.num_key_value_groups = heads // kv
    for attr, value in (("num_heads", heads), ("num_key_value_heads", kv)):
        if hasattr(m, attr):  # older releases keep these on the module
            setattr(m, attr, value)
    return {"num_attention_heads": heads, "num_key_value_heads": kv, "head_dim": m.head_dim}


@register_hf_module("T5Attention", unit="heads", inner="q")
def _t5_attention(m: nn.Module, name: str) -> Fields:
    m.inner_dim = _out(m.q)
    m.n_heads = m.inner_dim // m.key_value_proj_dim
    return {"num_heads": m.n_heads, "d_kv": m.key_value_proj_dim}


@register_hf_module("ViTSelfAttention", unit="heads", inner="query")  # transformers 4.x
@register_hf_module("ViTAttention", unit="heads", inner="q_proj")
def _vit_attention(m: nn.Module, name: str) -> Fields:
    if not hasattr(m, "q_proj") and not hasattr(m, "query"):
        return {}  # transformers 4.x ViTAttention: a wrapper around ViTSelfAttention
    head_dim = getattr(m, "head_dim", None) or m.attention_head_size
    m.num_attention_heads = _out(m.q_proj if hasattr(m, "q_proj") else m.query) // head_dim
    if hasattr(m, "all_head_size"):
        m.all_head_size = m.num_attention_heads * head_dim
    return {"num_attention_heads": m.num_attention_heads, "head_dim": head_dim}


@register_hf_module("WhisperAttention", unit="heads", inner="q_proj")
def _whisper_attention(m: nn.Module, name: str) -> Fields:
    m.num_heads = _out(m.q_proj) // m.head_dim
    return {_side(name, "encoder_attention_heads", "decoder_attention_heads"): m.num_heads}


@register_hf_module("BertIntermediate", "RobertaIntermediate", unit="ffn", inner="dense")
def _bert_ffn(m: nn.Module, name: str) -> Fields:
    return {"intermediate_size": _out(m.dense)}


@register_hf_module("FFN", unit="ffn", inner="lin1")  # DistilBERT
def _distilbert_ffn(m: nn.Module, name: str) -> Fields:
    return {"hidden_dim": _out(m.lin1)}


@register_hf_module("GPT2MLP", unit="ffn", inner="c_fc")
def _gpt2_ffn(m: nn.Module, name: str) -> Fields:
    return {"n_inner": _out(m.c_fc)}


@register_hf_module("LlamaMLP", "Qwen2MLP", "MistralMLP", unit="ffn", inner="gate_proj")
def _llama_ffn(m: nn.Module, name: str) -> Fields:
    m.intermediate_size = _out(m.gate_proj)
    m.hidden_size = int(m.gate_proj.weight.shape[1])
    return {"intermediate_size": m.intermediate_size}


@register_hf_module("T5DenseActDense", unit="ffn", inner="wi")
def _t5_ffn(m: nn.Module, name: str) -> Fields:
    return {"d_ff": _out(m.wi)}


@register_hf_module("T5DenseGatedActDense", unit="ffn", inner="wi_0")
def _t5_gated_ffn(m: nn.Module, name: str) -> Fields:
    return {"d_ff": _out(m.wi_0)}


@register_hf_module("ViTMLP", unit="ffn", inner="fc1")
def _vit_ffn(m: nn.Module, name: str) -> Fields:
    return {"intermediate_size": _out(m.fc1)}


@register_hf_module("ViTIntermediate", unit="ffn", inner="dense")
def _vit_old_ffn(m: nn.Module, name: str) -> Fields:
    return {"intermediate_size": _out(m.dense)}


@register_hf_module("WhisperEncoderLayer", "WhisperDecoderLayer", unit="ffn", inner="fc1")
def _whisper_ffn(m: nn.Module, name: str) -> Fields:
    m.embed_dim = int(m.fc1.weight.shape[1])
    return {_side(name, "encoder_ffn_dim", "decoder_ffn_dim"): _out(m.fc1)}


#: config field of the hidden width (the residual stream), by ``config.model_type``
HIDDEN_FIELDS = {"gpt2": "n_embd", "distilbert": "dim", "t5": "d_model", "whisper": "d_model"}

#: per-module attributes that carry the hidden width, by class name
HIDDEN_ATTRS = {"LlamaDecoderLayer": "hidden_size", "Qwen2DecoderLayer": "hidden_size",
                "MistralDecoderLayer": "hidden_size", "GPT2Model": "embed_dim", "T5Attention": "d_model"}
