"""Embedding metrics of benchmarks/minilm.py on known inputs."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))
minilm = pytest.importorskip("minilm")
from slimkit.hf import recover  # noqa: E402 - after the benchmark folder joins sys.path


def test_mean_cosine_known_values():
    a = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    b = torch.tensor([[2.0, 0.0], [1.0, 0.0]])
    assert minilm.mean_cosine(a, b) == pytest.approx(0.5)


def test_retrieval_agreement_counts_same_nearest_neighbour():
    corpus = torch.eye(3)
    queries = torch.tensor([[1.0, 0.1, 0.0], [0.0, 1.0, 0.2], [0.1, 0.0, 1.0], [0.9, 1.0, 0.0]])
    assert minilm.retrieval_agreement(queries, corpus, queries, corpus) == 1.0
    moved = queries.clone()
    moved[3] = torch.tensor([1.0, 0.9, 0.0])  # nearest flips from row 1 to row 0
    assert minilm.retrieval_agreement(queries, corpus, moved, corpus) == pytest.approx(0.75)


def test_embed_mean_pools_over_mask_and_normalizes():
    class Fake(torch.nn.Module):
        def forward(self, input_ids, attention_mask):
            return type("O", (), {"last_hidden_state": input_ids.unsqueeze(-1).float().expand(-1, -1, 2)})()
    ids = torch.tensor([[3, 5, 100]])
    e = minilm.embed(Fake(), ids, torch.tensor([[1, 1, 0]]))
    assert torch.allclose(e, torch.full((1, 2), 2 ** -0.5))


@pytest.mark.parametrize("kind, cls", [("pt", torch.Tensor), ("np", __import__("numpy").ndarray)])
def test_smoke_fallback_tokenizer_honours_return_tensors(monkeypatch, kind, cls):
    """Without the weights package, --smoke runs a random BERT; its tokenizer must answer like the real one
    (the ONNX Runtime path asks for numpy): CI machines without the ``minilm`` extra take this path."""
    pytest.importorskip("transformers")
    monkeypatch.setattr(minilm, "model_dir", lambda: None)
    _, tok, real = minilm.load(smoke=True)
    assert real is False
    t = tok(["a b c", "d"], padding="max_length", truncation=True, max_length=8, return_tensors=kind)
    assert isinstance(t["input_ids"], cls) and t["input_ids"].shape == (2, 8)
    assert t["attention_mask"].tolist() == [[1] * 5 + [0] * 3, [1] * 3 + [0] * 5]


def _tiny_bert():
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=1000, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                                     intermediate_size=128, max_position_embeddings=32)
    return transformers.BertModel(config).eval()


def _tokenize(texts, **_):
    rows = [[101] + [sum(map(ord, w)) % 900 + 100 for w in t.split()] + [102] for t in texts]
    ids = torch.tensor([r + [0] * (max(map(len, rows)) - len(r)) for r in rows])
    return {"input_ids": ids, "attention_mask": (ids != 0).long()}


def _batches(texts):
    t = _tokenize(texts)
    return [(t["input_ids"], t["attention_mask"])]


TEXTS = [f"sentence {i} has words {' '.join(str(j * i % 17) for j in range(i % 7 + 2))} in it" for i in range(48)]


def test_contribution_ranks_a_silenced_head_and_neuron_last():
    model = _tiny_bert()
    layer = model.encoder.layer[1]
    with torch.no_grad():
        layer.attention.output.dense.weight[:, 32:48] = 0  # head 2 of 4 (size 16) writes nothing
        layer.output.dense.weight[:, 5] = 0  # FFN neuron 5 writes nothing
    scores = recover.contribution_scores(model, recover.layer_records(model, _batches(TEXTS)))
    heads = scores[id(layer.attention.self.query.weight)].view(4, 16)
    assert torch.all(heads == heads[:, :1])  # one score per head, repeated over its rows
    assert int(heads[:, 0].argmin()) == 2 and float(heads[2, 0]) == 0.0
    neurons = scores[id(layer.intermediate.dense.weight)]
    assert neurons.shape == (128,) and int(neurons.argmin()) == 5 and float(neurons[5]) == 0.0


def test_refit_brings_a_pruned_encoder_back_towards_the_dense_one():
    import copy
    import warnings

    from slimkit.hf import prune_pretrained

    teacher = _tiny_bert()
    records = recover.layer_records(teacher, _batches(TEXTS))
    student = copy.deepcopy(teacher)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prune_pretrained(student, (_tokenize(TEXTS[:1])["input_ids"],), units=("heads", "ffn"), heads=2, ffn=48,
                         require_config=False)
    t = _tokenize(TEXTS)

    def error() -> float:  # token-level: mean-pooled random-init embeddings barely move
        with torch.no_grad():
            a, b = (m(**t).last_hidden_state[t["attention_mask"].bool()] for m in (teacher, student))
        return float((a - b).square().mean())

    before = error()
    recover.refit(student, records, _batches(TEXTS))
    assert error() < 0.5 * before


def test_relation_loss_is_zero_for_equal_models_and_positive_after_pruning():
    import copy
    import warnings

    from slimkit.hf import prune_pretrained

    teacher = _tiny_bert()
    (ids, mask), = _batches(TEXTS[:8])
    record_t = recover._QKV(teacher)
    with torch.no_grad():
        teacher(input_ids=ids, attention_mask=mask)
    qkv_t = record_t.take()
    record_t.remove()
    assert len(qkv_t) == 6 and float(recover.relation_loss(qkv_t, qkv_t, mask, heads=4)) == pytest.approx(0, abs=1e-6)
    student = copy.deepcopy(teacher)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prune_pretrained(student, (ids[:1],), units=("heads",), heads=2, require_config=False)
    record_s = recover._QKV(student)
    student(input_ids=ids, attention_mask=mask)
    qkv_s = record_s.take()
    record_s.remove()
    assert qkv_s[0].shape[-1] == 32 and qkv_t[0].shape[-1] == 64  # widths differ; relation heads align them
    loss = recover.relation_loss(qkv_s, qkv_t, mask, heads=4)
    assert float(loss.detach()) > 0 and torch.isfinite(loss)
    loss.backward()  # trains the student
    assert student.encoder.layer[0].attention.self.query.weight.grad is not None
    before = float(loss.detach())
    batches = _batches(TEXTS)
    recover.distill(student, teacher, lambda: batches[0], [], steps=20, lr=1e-3, hidden_weight=0.0,
                    eval_every=10, relation_weight=1.0, relation_heads=4)
    qkv = [recover._QKV(m) for m in (student, teacher)]
    with torch.no_grad():
        student(input_ids=ids, attention_mask=mask), teacher(input_ids=ids, attention_mask=mask)
    after = float(recover.relation_loss(qkv[0].take(), qkv[1].take(), mask, heads=4))
    assert after < before
