"""How a data batch becomes generator inputs, real images and the discriminator's condition.

``make_inputs(batch, rng) -> GanBatch`` is the one callable :func:`slimkit.gan_slim` needs to know a generator:

- ``inputs``: the tuple the generator (student and teacher) is called with: ``generator(*inputs)``;
- ``real``: real images the discriminator learns to accept, or ``None`` to use the teacher's outputs as the real
  side (the discriminator then separates student from teacher images: label-free distillation);
- ``condition``: extra arguments of the discriminator: ``discriminator(images, *condition)``.

Two makers cover the zoo: :func:`conditional_inputs` (``dcgan_g``/``dcgan_d``: noise and labels) and
:func:`image_to_image_inputs` (``resnet_g``/``patch_d``). Pixels of ``[0, 1]`` datasets are mapped to ``[-1, 1]``
(tanh outputs): load data with ``slimkit.load_dataset(name, normalize=False)``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import torch
from torch import nn


class GanBatch(NamedTuple):
    inputs: tuple[torch.Tensor, ...]
    real: torch.Tensor | None
    condition: tuple[torch.Tensor, ...] = ()


MakeInputs = Callable[[Any, torch.Generator], GanBatch]


def _split(batch: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
    if isinstance(batch, torch.Tensor):
        return batch, None
    return batch[0], (batch[1] if len(batch) > 1 else None)


def to_tanh_range(images: torch.Tensor) -> torch.Tensor:
    """``[0, 1]`` pixels to ``[-1, 1]``."""
    return images * 2.0 - 1.0


def conditional_inputs(noise_dim: int, *, rescale: bool = True) -> MakeInputs:
    """``(x, y)`` batches -> generator ``(noise, y)``, real ``x``, discriminator condition ``(y,)``.

    Args:
        noise_dim: length of the noise vector (standard normal, drawn from ``rng``).
        rescale: map ``x`` from ``[0, 1]`` to ``[-1, 1]``.
    """

    def make(batch: Any, rng: torch.Generator) -> GanBatch:
        x, y = _split(batch)
        if y is None:
            raise ValueError("conditional_inputs: batches must be (images, labels)")
        noise = torch.randn(x.shape[0], noise_dim, generator=rng)  # (B, Z)
        return GanBatch((noise, y), to_tanh_range(x) if rescale else x, (y,))

    return make


def image_to_image_inputs(*, rescale: bool = True) -> MakeInputs:
    """``(x, target)`` batches -> generator ``(x,)``; real images: ``target`` when it is an image batch of the
    generator's output shape (paired or unpaired target domain), else ``None`` (the teacher's outputs are the
    real side). Unconditional discriminator.

    Args:
        rescale: map images from ``[0, 1]`` to ``[-1, 1]``.
    """

    def make(batch: Any, rng: torch.Generator) -> GanBatch:
        x, target = _split(batch)
        real = target if isinstance(target, torch.Tensor) and target.dim() == x.dim() else None
        if rescale:
            x = to_tanh_range(x)
            real = to_tanh_range(real) if real is not None else None
        return GanBatch((x,), real, ())

    return make


def default_inputs(generator: nn.Module) -> MakeInputs:
    """Conditional inputs for a generator with a ``noise_dim`` attribute (``dcgan_g``), image-to-image otherwise."""
    noise_dim = getattr(generator, "noise_dim", None)
    if isinstance(noise_dim, int):
        return conditional_inputs(noise_dim)
    return image_to_image_inputs()


def to_device(batch: GanBatch, device: torch.device) -> GanBatch:
    move = lambda t: t.to(device) if isinstance(t, torch.Tensor) else t  # noqa: E731
    return GanBatch(tuple(move(t) for t in batch.inputs), move(batch.real), tuple(move(t) for t in batch.condition))
