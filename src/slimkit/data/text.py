"""Text data for recipes: sentences split into train / val / test, tokenized on demand into ``(ids, mask)``
batches. A recipe names it ``data: {name: text_corpus, options: {tokenizer: all-minilm-l6-v2}}``; the sentences
are :func:`slimkit.data.text_corpus.corpus_splits` (offline docstrings), test being its held-out split."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

import torch

from slimkit.core.errors import ConfigError

TEXT_SOURCES = ("text_corpus",)


@dataclass
class TextSplits:
    """Sentences per split and the tokenizer that turns them into ``(input_ids, attention_mask)`` batches.

    ``task = "embed"`` tells the recipe summary that the model maps a sentence to an embedding, not to class
    scores (so no accuracy is measured).
    """

    train: list[str]
    val: list[str]
    test: list[str]
    tokenizer: Any
    max_length: int = 128
    name: str = "text_corpus"
    task: str = "embed"
    num_classes: int | None = None
    rng: random.Random = field(default_factory=lambda: random.Random(0))

    def tokenize(self, texts: list[str], *, fixed: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        t = self.tokenizer(texts, padding="max_length" if fixed else True, truncation=True,
                           max_length=self.max_length, return_tensors="pt")
        return t["input_ids"], t["attention_mask"]

    def batches(self, split: str, batch_size: int = 64, limit: int | None = None) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """The first ``limit`` sentences of ``split`` in order, as padded batches."""
        texts = getattr(self, split)[:limit]
        return [self.tokenize(texts[i:i + batch_size]) for i in range(0, len(texts), batch_size)]

    def sample(self, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """A random training batch (``rng``: seeded once per run)."""
        return self.tokenize(self.rng.sample(self.train, min(batch_size, len(self.train))))

    def example_inputs(self, batch_size: int = 1) -> torch.Tensor:
        """``batch_size`` one-word sentences padded to ``max_length``: the shape profiling, tracing and latency
        use (as :meth:`slimkit.data.DatasetSplits.example_inputs`)."""
        return self.tokenize(["x"] * batch_size, fixed=True)[0]


def load_text_data(name: str, *, tokenizer: str = "all-minilm-l6-v2", max_length: int = 128, packages: bool = True,
                   val_fraction: float = 0.1, subset: int | None = None, seed: int = 0) -> TextSplits:
    """:class:`TextSplits` of the offline corpus; ``tokenizer`` as in :func:`slimkit.hf.encoder.load_tokenizer`,
    ``packages`` adds the numpy/scipy/torch docstrings to train, ``subset`` keeps that many sentences per split."""
    from slimkit.data.text_corpus import corpus_splits
    from slimkit.hf.encoder import load_tokenizer

    if name not in TEXT_SOURCES:
        raise ConfigError(f"data.name: {name!r} is not a text source ({', '.join(TEXT_SOURCES)})")
    if not 0.0 < val_fraction < 1.0:
        raise ConfigError(f"data.val_fraction: a text corpus needs a validation split in (0, 1), got {val_fraction}")
    splits = corpus_splits(packages=packages, val=val_fraction)
    return TextSplits(*(splits[k][:subset] for k in ("train", "val", "heldout")), tokenizer=load_tokenizer(tokenizer),
                      max_length=max_length, name=name, rng=random.Random(seed))
