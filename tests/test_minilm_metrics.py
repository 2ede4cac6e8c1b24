"""Embedding metrics of benchmarks/minilm.py on known inputs."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))
minilm = pytest.importorskip("minilm")


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
