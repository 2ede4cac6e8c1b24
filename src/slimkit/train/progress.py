"""Per-epoch progress bar (terminal only) and the one summary line logged per epoch."""

from __future__ import annotations

import logging
import sys
from typing import Any

from tqdm.auto import tqdm

logger = logging.getLogger("slimkit.train")


class EpochProgress:
    """A tqdm bar over one epoch's steps showing loss, accuracy and images/s; silent off a terminal."""

    def __init__(self, *, epoch: int, epochs: int, total: int, enabled: bool) -> None:
        show = enabled and sys.stderr.isatty()
        self.bar = tqdm(
            total=total, desc=f"epoch {epoch}/{epochs}", unit="step", leave=False, disable=not show, dynamic_ncols=True
        )

    @property
    def active(self) -> bool:
        return not self.bar.disable

    def update(self, steps: int, *, loss: float | None = None, accuracy: float | None = None,
               images_per_s: float | None = None) -> None:
        if loss is not None:
            self.bar.set_postfix(
                loss=f"{loss:.4f}", acc=f"{100 * (accuracy or 0):.2f}%", img_s=f"{images_per_s or 0:.0f}", refresh=False
            )
        self.bar.update(steps)

    def close(self) -> None:
        self.bar.close()


def format_epoch(record: dict[str, Any], epochs: int) -> str:
    """``epoch 3/10  loss 0.4123  acc 85.20%  val_acc 86.10%  val_loss 0.3900  lr 0.04000  1234 img/s  12.3s``."""
    parts = [f"epoch {record['epoch']}/{epochs}", f"loss {record['loss']:.4f}", f"acc {100 * record['train_accuracy']:.2f}%"]
    if record.get("val_accuracy") is not None:
        parts += [f"val_acc {100 * record['val_accuracy']:.2f}%", f"val_loss {record['val_loss']:.4f}"]
    parts += [f"lr {record['lr']:.5g}", f"{record['images_per_s']:.0f} img/s", f"{record['seconds']:.1f}s"]
    return "  ".join(parts)


def log_epoch(record: dict[str, Any], epochs: int, *, print_line: bool) -> None:
    """Log the epoch's line to the ``slimkit.train`` logger, and print it (stderr) when progress is on."""
    line = format_epoch(record, epochs)
    logger.info(line)
    if print_line:
        tqdm.write(line, file=sys.stderr)
