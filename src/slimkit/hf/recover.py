"""Recover a pruned BERT-style encoder: rank heads and FFN neurons by what they add to their layer, refit each
layer's output projections by least squares, and distill from the dense encoder.

Batches are ``(input_ids, attention_mask)`` pairs; the model is the Hugging Face encoder itself (``BertModel`` and
relatives with ``encoder.layer[i].attention.output.dense`` / ``output.dense``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

import torch
import torch.nn.functional as F
from torch import nn

from slimkit.hf.encoder import agreement, embed, pool
from slimkit.prune.importance import Importance, per_slice_scores

Batch = tuple[torch.Tensor, torch.Tensor]


class _Stop(Exception):
    pass


def _first_two(args, kwargs):
    values = list(args) + list(kwargs.values())
    return values[0], values[1]


def encode(model: nn.Module, batches: Iterable[Batch]) -> torch.Tensor:
    """Sentence embeddings of a Hugging Face encoder over ``batches``: ``(N, H)``."""
    with torch.no_grad():
        return torch.cat([embed(model, ids, mask) for ids, mask in batches])


def layer_records(model: nn.Module, batches: Iterable[Batch], upto: int | None = None) -> list[dict[str, torch.Tensor]]:
    """Per layer, over the non-padding tokens of ``batches``: the layer input ``x``, the attention context ``ctx``
    (input of ``attention.output.dense``) and that projection's output ``attn``, the post-attention hidden ``h``,
    the FFN activation ``act`` (input of ``output.dense``) and that projection's output ``ffn``. With ``upto``, the
    forward stops after layer ``upto`` (later layers record nothing)."""
    layers = model.encoder.layer
    store = [{k: [] for k in ("x", "ctx", "attn", "h", "act", "ffn")} for _ in layers]
    keep: dict[str, torch.Tensor] = {}
    first_two = _first_two
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
            for ids, mask in batches:
                keep["m"] = mask.bool()
                try:
                    model(input_ids=ids, attention_mask=mask)
                except _Stop:
                    pass
    finally:
        for h in hooks:
            h.remove()
    return [{k: torch.cat(v) for k, v in s.items() if v} for s in store]


class Contribution(Importance):
    """Importance from precomputed per-row scores (``{id(weight): scores}``, see :func:`contribution_scores`) for
    the query and FFN-input weights. An object holding its scores, not a registered name: every pruning run
    measures its own."""

    name = "contribution"

    def __init__(self, scores: dict[int, torch.Tensor]):
        self.by_id = scores

    def scores(self, graph, ctx):
        return per_slice_scores(graph, lambda t, dim: self.by_id.get(id(t)) if dim == 0 else None, ctx,
                                roles=("out",))


def contribution_scores(model: nn.Module, records: list[dict[str, torch.Tensor]]) -> dict[int, torch.Tensor]:
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


def transfer_scores(scores: dict[int, torch.Tensor], source: nn.Module, target: nn.Module) -> dict[int, torch.Tensor]:
    """Re-key :func:`contribution_scores` of ``source`` to the same parameters of ``target`` (a deep copy)."""
    by_id = {id(a): b for a, b in zip(source.parameters(), target.parameters())}
    return {id(by_id[k]): v for k, v in scores.items()}


def _ridge(x: torch.Tensor, y: torch.Tensor, lam: float = 1e-3) -> tuple[torch.Tensor, torch.Tensor]:
    """Least squares ``y ~ x @ W.T + b`` with ridge ``lam`` (relative to the mean diagonal): ``(W, b)``."""
    xa = torch.cat([x, torch.ones(len(x), 1)], 1).double()  # (N, D + 1)
    gram = xa.T @ xa
    gram += lam * gram.diagonal().mean() * torch.eye(len(gram), dtype=gram.dtype)
    w = torch.linalg.solve(gram, xa.T @ y.double())  # (D + 1, H)
    return w[:-1].T.float().contiguous(), w[-1].float()


class LayerFeed:
    """The student's input to one encoder layer, batch by batch: layer ``i`` runs alone on what the (already
    pruned and refit) layers before it gave, instead of the whole model from the embeddings."""

    def __init__(self, model: nn.Module, batches: list[Batch]):
        self.layers = model.encoder.layer
        self.masks = [mask.bool() for _, mask in batches]
        self.calls: list[tuple[tuple, dict]] = []

        def first(module, args, kwargs):
            self.calls.append((args, kwargs))
            raise _Stop
        hook = self.layers[0].register_forward_pre_hook(first, with_kwargs=True)
        try:
            with torch.no_grad():
                for ids, mask in batches:
                    try:
                        model(input_ids=ids, attention_mask=mask)
                    except _Stop:
                        pass
        finally:
            hook.remove()

    def run(self, i: int, fn: Callable[[int, dict[str, torch.Tensor]], None] | None = None, *,
            advance: bool = False) -> None:
        """Run layer ``i`` on every batch; ``fn(batch index, tensors)`` gets its ``x``, ``ctx``, ``h``, ``act`` on
        real tokens (as :func:`layer_records`) and the sums entering its two LayerNorms, ``attn_sum`` (``attn +
        x``) and ``ffn_sum`` (``ffn + h``). With ``advance``, its outputs become layer ``i + 1``'s inputs."""
        layer, got, keep = self.layers[i], {}, {}

        def self_output(module, args, kwargs, out):
            ctx, x = _first_two(args, kwargs)
            got.update(ctx=ctx[keep["m"]], x=x[keep["m"]], h=out[keep["m"]])
            got["attn_sum"] = module.dense(got["ctx"]) + got["x"]

        def output(module, args, kwargs, out):
            got["act"] = _first_two(args, kwargs)[0][keep["m"]]
            got["ffn_sum"] = module.dense(got["act"]) + got["h"]
        hooks = [layer.attention.output.register_forward_hook(self_output, with_kwargs=True),
                 layer.output.register_forward_hook(output, with_kwargs=True)] if fn is not None else []
        try:
            with torch.no_grad():
                for j, (mask, (args, kwargs)) in enumerate(zip(self.masks, self.calls)):
                    keep["m"] = mask
                    out = layer(*args, **kwargs)
                    if fn is not None:
                        fn(j, got)
                    if advance:
                        out = out[0] if isinstance(out, tuple) else out
                        self.calls[j] = ((out, *args[1:]), kwargs) if args else (args, {**kwargs, "hidden_states": out})
        finally:
            for h in hooks:
                h.remove()

    def record(self, i: int) -> dict[str, torch.Tensor]:
        """Layer ``i``'s ``x``, ``ctx``, ``h``, ``act`` over all batches (see :meth:`run`)."""
        store: dict[str, list[torch.Tensor]] = {k: [] for k in ("x", "ctx", "h", "act")}
        self.run(i, lambda j, got: [store[k].append(got[k]) for k in store])
        return {k: torch.cat(v) for k, v in store.items()}

    def advance(self, i: int) -> None:
        """Layer ``i``'s outputs become layer ``i + 1``'s inputs."""
        self.run(i, advance=True)


def refit(student: nn.Module, teacher_records: list[dict[str, torch.Tensor]], batches: list[Batch]) -> None:
    """Layer by layer, refit the pruned layer's two output projections by least squares so that the sums entering
    its LayerNorms match the dense model's on ``batches``: ``ctx_s W + b + x_s ~ attn_t + x_t`` (the target also
    corrects the error the earlier pruned layers left in ``x_s``), then the same for the FFN."""
    feed = LayerFeed(student, list(batches))
    for i, layer in enumerate(student.encoder.layer):
        t = teacher_records[i]
        for dense, inp, resid, target, before in ((layer.attention.output.dense, "ctx", "x", "attn", "x"),
                                                  (layer.output.dense, "act", "h", "ffn", "h")):
            s = feed.record(i)
            w, b = _ridge(s[inp], t[target] + t[resid] - s[before])
            with torch.no_grad():
                dense.weight.copy_(w)
                dense.bias.copy_(b)
        feed.advance(i)


class _QKV:
    """Records the query, key and value projections' outputs of every layer during a forward."""

    def __init__(self, model: nn.Module):
        self.out: list[torch.Tensor] = []
        self.hooks = [getattr(layer.attention.self, name).register_forward_hook(
            lambda module, args, out: self.out.append(out))
            for layer in model.encoder.layer for name in ("query", "key", "value")]

    def take(self) -> list[torch.Tensor]:
        out, self.out = self.out, []
        return out

    def remove(self) -> None:
        for h in self.hooks:
            h.remove()


def _log_relation(x: torch.Tensor, mask: torch.Tensor, heads: int) -> torch.Tensor:
    """MiniLMv2's self-attention relation: ``x (B, L, D)`` split into ``heads`` relation heads of ``D / heads``;
    row-wise log-softmax of the scaled dot products over the non-padding keys: ``(B, heads, L, L)``."""
    b, n, d = x.shape
    x = x.view(b, n, heads, d // heads).transpose(1, 2)  # (B, R, L, d)
    scores = x @ x.transpose(-1, -2) / (d // heads) ** 0.5  # (B, R, L, L)
    return scores.masked_fill(~mask.bool()[:, None, None, :], -1e4).log_softmax(-1)


def relation_loss(student_qkv: list[torch.Tensor], teacher_qkv: list[torch.Tensor], mask: torch.Tensor,
                  heads: int) -> torch.Tensor:
    """Mean KL(teacher || student) of the Q-Q, K-K and V-V relations of every layer over non-padding query
    tokens (MiniLMv2, Wang et al. 2021): the relation heads make pruned and dense widths comparable."""
    keep = mask.bool()
    kls = [F.kl_div(_log_relation(s, mask, heads), _log_relation(t, mask, heads), log_target=True,
                    reduction="none").sum(-1).transpose(1, 2)[keep].mean()  # (B, R, L) -> (B, L, R) -> tokens
           for s, t in zip(student_qkv, teacher_qkv)]
    return torch.stack(kls).mean()


def distill(student: nn.Module, teacher: nn.Module, sample: Callable[[], Batch], val: list[Batch], *, steps: int,
            lr: float, hidden_weight: float, eval_every: int, log: Callable[[str], None] = print,
            relation_weight: float = 0.0, relation_heads: int = 12, dropout: bool = True) -> dict[str, float]:
    """AdamW with linear decay on batches from ``sample()``. Loss: ``1 - cos + H * MSE`` of the sentence embeddings
    plus ``hidden_weight`` times the mean over layers of each layer's output MSE on non-padding tokens, relative to
    the dense layer's mean square (needs equal layer counts and hidden width), plus ``relation_weight`` times
    :func:`relation_loss` with ``relation_heads`` (which must divide the pruned and dense Q/K/V widths).
    ``dropout=False`` trains the student in eval mode: it then regresses the teacher's deterministic outputs
    without dropout noise (for LayerNorm transformers eval mode changes nothing else). Returns the last validation
    :func:`agreement` (``{}`` when ``val`` is empty)."""
    if relation_weight:
        qkv_s, qkv_t = _QKV(student), _QKV(teacher)
    try:
        return _distill(student, teacher, sample, val, steps, lr, hidden_weight, eval_every, log,
                        (qkv_s, qkv_t, relation_weight, relation_heads) if relation_weight else None, dropout)
    finally:
        if relation_weight:
            qkv_s.remove()
            qkv_t.remove()


def _distill(student, teacher, sample, val, steps, lr, hidden_weight, eval_every, log, relation, dropout):
    opt = torch.optim.AdamW(student.parameters(), lr=lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0 - s / max(steps, 1))
    if relation:
        relation[0].take(), relation[1].take()
    teacher_val = encode(teacher, val) if val else None
    if relation:
        relation[1].take()
    t0 = time.perf_counter()
    last: dict[str, float] = {}
    for step in range(steps):
        student.train(dropout)
        ids, mask = sample()
        keep = mask.bool()
        with torch.no_grad():
            target = teacher(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states[1:]
        hidden = student(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states[1:]
        e, e_t = pool(hidden[-1], mask), pool(target[-1], mask)
        loss = (1 - F.cosine_similarity(e, e_t).mean()) + F.mse_loss(e, e_t) * e.shape[-1]
        if hidden_weight:
            rel = [F.mse_loss(h[keep], g[keep]) / g[keep].square().mean() for h, g in zip(hidden, target)]
            loss = loss + hidden_weight * torch.stack(rel).mean()
        if relation:
            loss = loss + relation[2] * relation_loss(relation[0].take(), relation[1].take(), mask, relation[3])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if teacher_val is not None and ((step + 1) % eval_every == 0 or step + 1 == steps):
            student.eval()
            last = agreement(teacher_val, encode(student, val))
            if relation:
                relation[0].take()
            log(f"distill step {step + 1}/{steps}: loss {loss.item():.4f}, val cosine {last['cosine']:.4f}, "
                f"val retrieval {last['retrieval']:.4f}, {(time.perf_counter() - t0) / (step + 1):.2f} s/step")
    student.eval()
    return last
