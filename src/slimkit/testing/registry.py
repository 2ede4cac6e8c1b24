"""The tiny architecture zoo: ``build_arch(name) -> (model, example_inputs)``, seeded and CPU-sized."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from slimkit.core.registry import Registry

ArchFactory = Callable[[], tuple[nn.Module, tuple]]
ARCHITECTURES: Registry[ArchFactory] = Registry("test architecture")


def register_arch(name: str) -> Callable[[ArchFactory], ArchFactory]:
    """Add a factory ``f() -> (model, example_inputs)`` to the test-architecture zoo."""
    return ARCHITECTURES.register(name)


def list_archs() -> list[str]:
    _load()
    return ARCHITECTURES.names()


def build_arch(name: str, *, seed: int = 0) -> tuple[nn.Module, tuple]:
    """The model (eval mode, deterministic weights, BN statistics randomized) and a tuple of example inputs."""
    _load()
    torch.manual_seed(seed)
    model, inputs = ARCHITECTURES.get(name)()
    gen = torch.Generator().manual_seed(seed + 1)
    for m in model.modules():  # non-trivial running statistics so BN slicing is really tested
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_mean is not None:
            m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=gen) * 0.1)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=gen) + 0.5)
    return model.eval(), inputs


def _load() -> None:
    import slimkit.testing.archs_conv  # noqa: F401
    import slimkit.testing.archs_hf  # noqa: F401
    import slimkit.testing.archs_seq  # noqa: F401
    import slimkit.testing.archs_timm  # noqa: F401
