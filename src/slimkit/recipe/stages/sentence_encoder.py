"""Stages for a Hugging Face sentence encoder (model ``slimkit.hf.encoder:sentence_encoder``, data
``text_corpus``): ``hf_prune`` (heads + FFN by measured contribution, then a least-squares refit),
``embed_distill`` (recovery from the dense encoder) and ``onnx_int8`` (ONNX Runtime dynamic int8). They reuse
:mod:`slimkit.hf.recover`, as ``benchmarks/minilm.py`` does. See docs/huggingface.md."""

from __future__ import annotations

import random
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from slimkit.core.errors import ConfigError
from slimkit.recipe._registry import register_stage
from slimkit.recipe.context import StageContext


def _encoder(ctx: StageContext, stage: str) -> Any:
    """The Hugging Face model inside ``ctx.model`` (a :class:`slimkit.hf.encoder.SentenceEncoder`)."""
    if not hasattr(ctx.data, "batches") or not hasattr(getattr(ctx.model, "model", None), "encoder"):
        raise ConfigError(f"{stage}: needs model slimkit.hf.encoder:sentence_encoder and data text_corpus")
    return ctx.model.model


def _val_agreement(ctx: StageContext, teacher: Any, student: Any, split: str = "val") -> dict[str, float]:
    from slimkit.hf.encoder import agreement
    from slimkit.hf.recover import encode

    batches = ctx.data.batches(split)
    return agreement(encode(teacher, batches), encode(student, batches))


@dataclass(frozen=True)
class HFPruneStageConfig:
    """Options of ``hf_prune``.

    Attributes:
        heads: attention heads kept per layer.
        ffn: FFN neurons kept per layer.
        ranking: ``contribution`` (each unit's measured share of its layer's output on calibration sentences)
            or any slimkit criterion name.
        refit_sentences: training sentences for the calibration (contribution) and the least-squares refit of each
            layer's output projections (0: no refit).
    """

    heads: int = 6
    ffn: int = 640
    ranking: str = "contribution"
    refit_sentences: int = 512

    def __post_init__(self) -> None:
        if self.heads < 1 or self.ffn < 1:
            raise ValueError(f"heads and ffn must be >= 1, got {self.heads} and {self.ffn}")
        if self.refit_sentences < 0:
            raise ValueError(f"refit_sentences must be >= 0, got {self.refit_sentences}")


@register_stage("hf_prune", HFPruneStageConfig, compresses=True)
def hf_prune_stage(ctx: StageContext, config: HFPruneStageConfig) -> dict[str, Any]:
    """Prune a sentence encoder's heads and FFN neurons (equal per layer), then refit each layer by least squares."""
    from slimkit.hf import HFConfigWarning, prune_pretrained, recover

    student = _encoder(ctx, "hf_prune")
    teacher = ctx.freeze_reference().model
    texts = random.Random(ctx.seed + 1).sample(ctx.data.train, min(max(config.refit_sentences, 16), len(ctx.data.train)))
    calibration = [ctx.data.tokenize(texts[i:i + 64]) for i in range(0, len(texts), 64)]
    records = recover.layer_records(teacher, calibration)
    importance: Any = config.ranking
    if importance == "contribution":
        importance = recover.Contribution(recover.transfer_scores(recover.contribution_scores(teacher, records),
                                                                  teacher, student))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", HFConfigWarning)  # BertConfig derives the head size: kept in model files
        report = prune_pretrained(student, ctx.example_inputs, units=("heads", "ffn"), heads=config.heads,
                                  ffn=config.ffn, importance=importance, require_config=False)
    metrics: dict[str, Any] = {"macs_reduction": report.macs_reduction, "params_reduction": report.params_reduction,
                               "widths": {f"{w.module}.{w.field}": w.after for w in report.layers}}
    metrics.update({f"val_{k}_pruned": v for k, v in _val_agreement(ctx, teacher, student).items()})
    if config.refit_sentences:
        recover.refit(student, records, calibration)
        metrics.update({f"val_{k}_refit": v for k, v in _val_agreement(ctx, teacher, student).items()})
    return metrics


@dataclass(frozen=True)
class EmbedDistillStageConfig:
    """Options of ``embed_distill`` (:func:`slimkit.hf.recover.distill`, teacher: the model before pruning).

    Attributes:
        steps: optimizer steps; batch_size: sentences per step; lr: AdamW peak (linear decay to 0).
        hidden_weight: weight of the per-layer token-level hidden-state loss beside the embedding loss.
        eval_every: steps between validation figures in the log.
    """

    steps: int = 350
    batch_size: int = 32
    lr: float = 1e-4
    hidden_weight: float = 1.0
    eval_every: int = 100

    def __post_init__(self) -> None:
        if self.steps < 0 or self.batch_size < 1 or self.eval_every < 1 or not self.lr > 0:
            raise ValueError("steps >= 0, batch_size >= 1, eval_every >= 1 and lr > 0 are required")


@register_stage("embed_distill", EmbedDistillStageConfig)
def embed_distill_stage(ctx: StageContext, config: EmbedDistillStageConfig) -> dict[str, Any]:
    """Distill the reference encoder's sentence embeddings and per-layer hidden states into the pruned one."""
    from slimkit.hf import recover

    student = _encoder(ctx, "embed_distill")
    teacher = ctx.freeze_reference().model
    recover.distill(student, teacher, lambda: ctx.data.sample(config.batch_size), ctx.data.batches("val"),
                    steps=config.steps, lr=config.lr, hidden_weight=config.hidden_weight,
                    eval_every=config.eval_every, log=lambda m: print("    " + m, flush=True))
    metrics = {f"val_{k}": v for k, v in _val_agreement(ctx, teacher, student).items()}
    # reported, never used to choose anything: the held-out figures the benchmark's bars are about
    metrics.update({f"test_{k}": v for k, v in _val_agreement(ctx, teacher, student, "test").items()})
    return metrics


@dataclass(frozen=True)
class OnnxInt8StageConfig:
    """Options of ``onnx_int8``: ``model.onnx`` (fp32) and ``model_int8.onnx`` (ONNX Runtime ``quantize_dynamic``,
    int8 weights, activations quantized per batch at run time) in the stage folder.

    Attributes:
        per_channel: int8 weights per output channel (else per tensor).
        sentences: validation sentences on which the int8 embeddings are compared with the fp32 ones.
    """

    per_channel: bool = True
    sentences: int = 64

    def __post_init__(self) -> None:
        if self.sentences < 1:
            raise ValueError(f"sentences must be >= 1, got {self.sentences}")


def onnx_embeddings(path: Any, ids: torch.Tensor) -> np.ndarray:
    """Run an exported :class:`~slimkit.hf.encoder.SentenceEncoder` file on ``ids`` (one thread)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = 1, 1
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: ids.numpy().astype(np.int64)})[0]


@register_stage("onnx_int8", OnnxInt8StageConfig)
def onnx_int8_stage(ctx: StageContext, config: OnnxInt8StageConfig) -> dict[str, Any]:
    """Export the encoder to ONNX and quantize it dynamically to int8; compare int8 with fp32 embeddings."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from slimkit.export.onnx import export_onnx
    from slimkit.hf.encoder import mean_cosine

    _encoder(ctx, "onnx_int8")
    fp32, int8 = ctx.stage_dir / "model.onnx", ctx.stage_dir / "model_int8.onnx"
    export_onnx(ctx.model.eval(), ctx.example_inputs, fp32, atol=1e-3)
    quantize_dynamic(str(fp32), str(int8), weight_type=QuantType.QInt8, per_channel=config.per_channel)
    ids, _ = ctx.data.tokenize(ctx.data.val[:config.sentences], fixed=True)
    with torch.no_grad():
        torch_emb = ctx.model(ids).numpy()
    a, b = onnx_embeddings(fp32, ids), onnx_embeddings(int8, ids)
    return {"cosine_fp32_vs_torch": mean_cosine(a, torch_emb), "cosine_int8": mean_cosine(a, b),
            "onnx_bytes": fp32.stat().st_size, "onnx_int8_bytes": int8.stat().st_size}
