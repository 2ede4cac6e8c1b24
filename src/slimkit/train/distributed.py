"""torch.distributed plumbing for DDP training under ``torchrun``: set-up, device choice and reductions."""

from __future__ import annotations

import os
from collections.abc import Iterable

import torch
import torch.distributed as dist

from slimkit.core.errors import ConfigError


def is_active() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank_and_world_size() -> tuple[int, int]:
    if is_active():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def launched_by_torchrun() -> bool:
    """True when torchrun's environment asks for more than one process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and "RANK" in os.environ and "MASTER_ADDR" in os.environ


def setup(mode: str, device_kind: str) -> bool:
    """Decide whether this run is distributed, initializing the process group from torchrun's env if needed.

    Args:
        mode: ``auto`` or ``off`` (TrainConfig.distributed).
        device_kind: ``cuda`` or ``cpu``; picks the ``nccl`` or ``gloo`` backend.

    Returns:
        True when training should use DDP.
    """
    if mode == "off" or not dist.is_available():
        return False
    if is_active():
        return dist.get_world_size() > 1
    if not launched_by_torchrun():
        return False
    backend = "nccl" if device_kind == "cuda" else "gloo"
    if device_kind == "cuda":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend=backend)
    return dist.get_world_size() > 1


def resolve_device(name: str, distributed: bool) -> torch.device:
    """The device for ``TrainConfig.device``; under DDP on CUDA each process takes ``cuda:LOCAL_RANK``."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"device: {name!r} asked but CUDA is not available")
        if distributed and name == "cuda":
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device(name)


def all_reduce_sum(values: Iterable[float], device: torch.device) -> list[float]:
    """Sum plain numbers over all ranks (identity when not distributed)."""
    values = list(values)
    if not is_active():
        return values
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor.tolist()


def average_gradients(params: Iterable[torch.nn.Parameter]) -> None:
    """Average ``.grad`` over ranks for parameters DDP does not own (hook parameters)."""
    if not is_active():
        return
    world = dist.get_world_size()
    for p in params:
        if p.grad is not None:
            dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)
            p.grad.div_(world)


def barrier() -> None:
    if is_active():
        dist.barrier()
