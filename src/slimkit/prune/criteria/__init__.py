"""Importance criteria, one file each, registered with ``@register_importance``.

Every module here is imported the first time ``CRITERIA`` is read (``Registry(discover=...)``), so adding a
criterion is one file here, its test and its row in docs/pruning.md; no list names it. The weight-only criteria
(L1, L2, FPGM, BNScale, Random) live in ``prune/importance.py`` beside the helpers they share.
"""

from __future__ import annotations

from dataclasses import dataclass

from slimkit.prune.importance import Importance


def check_batches(name: str, batches: int | None) -> None:
    """A criterion's ``batches`` option: None (the caller's default) or a whole number >= 1."""
    if batches is not None and (isinstance(batches, bool) or not isinstance(batches, int) or batches < 1):
        raise ValueError(f"{name}: batches must be a whole number >= 1, got {batches!r}")


@dataclass(frozen=True)
class DataCriterion(Importance):
    """A criterion that reads data batches, with the option of how many (``Taylor(batches=8)``).

    Attributes:
        batches: how many batches the caller (the recipe's prune stage) hands it; None: the caller's default.
    """

    batches: int | None = None

    def __post_init__(self) -> None:
        check_batches(self.name, self.batches)
