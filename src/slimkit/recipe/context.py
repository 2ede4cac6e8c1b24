"""What a recipe stage gets to work with: the model, data, run folders, and helpers to train and evaluate."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

if TYPE_CHECKING:
    from slimkit.data import DatasetSplits
    from slimkit.train import TrainConfig


@dataclass
class StageContext:
    """Shared state of one recipe run, handed to each stage in turn.

    Attributes:
        model: the model being compressed; a stage may change it in place or assign a new one.
        reference: the model as it was before the first compressing stage (the default distillation teacher).
        data: train/val/test splits of the recipe's dataset.
        example_inputs: a batch-1 input tuple for tracing, profiling and latency.
        run_dir: the run's folder; stage_dir: this stage's own folder inside it (plots, checkpoints, metrics).
        device: where training and evaluation run.
        history: metrics of the stages finished so far, in order.
    """

    model: nn.Module
    data: DatasetSplits
    example_inputs: tuple[torch.Tensor, ...]
    run_dir: Path
    stage_dir: Path
    device: torch.device
    reference: nn.Module | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    batch_size: int = 128
    seed: int = 0

    def freeze_reference(self) -> nn.Module:
        """Copy the current model as the reference (teacher) if none was kept yet."""
        if self.reference is None:
            self.reference = copy.deepcopy(self.model).eval()
        return self.reference

    def evaluate(self, model: nn.Module | None = None, *, split: str = "test") -> dict[str, float]:
        """Accuracy and loss of ``model`` (default: the current one) on ``split`` ('val' or 'test')."""
        from slimkit.train import evaluate

        dataset = {"val": self.data.val, "test": self.data.test, "train": self.data.train}[split]
        return evaluate(model if model is not None else self.model, dataset, device=self.device)

    def fit(self, config: TrainConfig, *, model: nn.Module | None = None, **kwargs: Any) -> Any:
        """Train ``model`` (default: the current one) on the train split, resumable inside this stage's folder."""
        from slimkit.train import fit

        kwargs.setdefault("val_data", self.data.val)
        kwargs.setdefault("checkpoint_dir", self.stage_dir / "train")
        return fit(model if model is not None else self.model, self.data.train, config, **kwargs)

    def calibration_batches(self, num_batches: int = 8, batch_size: int | None = None) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """A few fixed training batches for calibration (quantization observers, Taylor, ThiNet, ...)."""
        from slimkit.data import make_loader

        loader = make_loader(self.data.train, batch_size=batch_size or self.batch_size, shuffle=True, seed=self.seed)
        batches = []
        for i, batch in enumerate(loader):
            if i >= num_batches:
                break
            batches.append(batch)
        return batches
