"""A tiny DDP training run to check a multi-process set-up: ``torchrun --nproc_per_node=2 -m slimkit.train.ddp_check``.

Every rank trains the same small MLP on the same synthetic data (sharded by :func:`slimkit.data.make_loader`) and
writes its final weights to ``--out/rank{R}.pt``; all ranks must end identical, and equal (up to float rounding) to
one process training with the global batch size. Runs on CPU with the gloo backend, or on one GPU per process.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import TensorDataset

from slimkit.train.config import TrainConfig
from slimkit.train.engine import TrainResult, fit
from slimkit.train.hooks import Hook, TrainState

SAMPLES = 128


def tiny_problem(seed: int = 0) -> tuple[nn.Module, TensorDataset]:
    """A 3-class MLP (no BatchNorm or dropout, so per-rank batches sum exactly to the global one) and its data."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(SAMPLES, 8, generator=generator)
    y = (x @ torch.randn(8, 3, generator=generator)).argmax(dim=1)
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 3))
    return model, TensorDataset(x, y)


class MeanLogits(Hook):
    """A hook with its own parameter fed by rank-local batches: without gradient averaging ranks would diverge."""

    def trainable_parameters(self, state: TrainState) -> list[nn.Parameter]:
        self.center = nn.Parameter(torch.zeros(3, device=state.device))
        return [self.center]

    def extra_loss(self, state: TrainState, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return 0.1 * ((outputs.detach().mean(dim=0) - self.center) ** 2).sum()


def train_tiny(batch_size: int, *, epochs: int = 2, device: str = "cpu",
               checkpoint_dir: str | Path | None = None) -> tuple[nn.Module, TrainResult, MeanLogits]:
    """Train the tiny problem (``batch_size`` per process) with a parameterized hook; DDP under torchrun."""
    model, data = tiny_problem()
    config = TrainConfig(epochs=epochs, batch_size=batch_size, lr=0.1, momentum=0.9, weight_decay=1e-4,
                         progress=False, device=device)
    hook = MeanLogits()
    result = fit(model, data, config, hooks=[hook], checkpoint_dir=checkpoint_dir)
    return model, result, hook


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="folder for rank{R}.pt and rank{R}.json")
    parser.add_argument("--batch-size", type=int, default=16, help="per-process batch size")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--device", default="cpu", help="cpu (gloo) or cuda (nccl, one GPU per process)")
    parser.add_argument("--checkpoint-dir", default=None)
    args = parser.parse_args(argv)

    model, result, hook = train_tiny(args.batch_size, epochs=args.epochs, device=args.device,
                                     checkpoint_dir=args.checkpoint_dir)
    import torch.distributed as dist

    rank = dist.get_rank() if dist.is_initialized() else 0
    world = dist.get_world_size() if dist.is_initialized() else 1
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    weights = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    weights["hook.center"] = hook.center.detach().cpu()
    torch.save(weights, out / f"rank{rank}.pt")
    summary = {"rank": rank, "world_size": world, "history": result.history, "pid": os.getpid()}
    (out / f"rank{rank}.json").write_text(json.dumps(summary))
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
