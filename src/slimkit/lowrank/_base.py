"""What every decomposition method provides, the module that replaces a layer, and the method registry.

A method is a small stateless handler registered by name (``svd``, ``tucker``, ``cp``): it says whether it can
factor a layer (and why not), the energy spectra its rank choice reads, what a given rank costs, how to build the
thin layers for given ranks, and how to fill them from the layer's weight. Users add their own the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch
from torch import nn

from slimkit.core.registry import Registry


class Factorized(nn.Sequential):
    """A layer replaced by a chain of thinner layers whose composition approximates it.

    A plain ``nn.Sequential`` underneath, so it exports to ONNX, traces and trains like any other module; the
    ``method`` and ``ranks`` attributes let reports, checkpoints and a second ``decompose`` call recognize it.
    """

    def __init__(self, *layers: nn.Module, method: str, ranks: tuple[int, ...]) -> None:
        super().__init__(*layers)
        self.method = method
        self.ranks = tuple(int(r) for r in ranks)

    def extra_repr(self) -> str:
        return f"method={self.method}, ranks={self.ranks}"


@dataclass(frozen=True)
class Geometry:
    """Per-sample input/output shapes of a layer on the example inputs (batch dropped), and how many positions
    (conv: spatial sites; linear: tokens) each side has."""

    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    in_positions: int = 1
    out_positions: int = 1


class Method(Protocol):
    """A decomposition method: see the module docstring."""

    name: str
    num_modes: int  # how many ranks it takes (svd and cp: 1, tucker: 2)

    def skip_reason(self, module: nn.Module) -> str | None:
        """Why ``module`` cannot be factored by this method, or ``None`` when it can."""

    def max_ranks(self, module: nn.Module) -> tuple[int, ...]:
        """Largest meaningful rank per mode."""

    def spectra(self, module: nn.Module) -> list[np.ndarray]:
        """Per mode, the fraction of weight energy each successive rank unit adds (descending, sums to 1)."""

    def vbmf_ranks(self, module: nn.Module) -> tuple[int, ...]:
        """Ranks estimated by EVBMF on the relevant unfoldings."""

    def cost(self, module: nn.Module, ranks: tuple[int, ...], geometry: Geometry) -> tuple[int, int]:
        """``(params, macs)`` of the factored layer at ``ranks`` (per sample)."""

    def build(self, module: nn.Module, ranks: tuple[int, ...]) -> Factorized:
        """The thin layers for ``ranks``, weights uninitialized (used to rebuild saved models too)."""

    def fill(self, module: nn.Module, factors: Factorized) -> torch.Tensor:
        """Decompose ``module``'s weight into ``factors`` in place; return the weight they represent."""


METHODS: Registry[Method] = Registry("decomposition method")


def register_method(method: Method) -> Method:
    """Add a method instance under its ``name``."""
    METHODS.add(method.name, method)
    return method


def energy_spectrum(singular_values: torch.Tensor | np.ndarray) -> np.ndarray:
    """Squared singular values normalized to sum 1, float64, descending."""
    s2 = np.asarray(torch.as_tensor(singular_values).detach().double().cpu().numpy()) ** 2
    total = s2.sum()
    return s2 / total if total > 0 else np.full_like(s2, 1.0 / max(len(s2), 1))


def mean_spectrum(spectra: list[np.ndarray]) -> np.ndarray:
    """Average of per-group spectra (zero-padded to the longest) — one spectrum for a grouped layer."""
    length = max(len(s) for s in spectra)
    padded = np.zeros((len(spectra), length))
    for row, s in enumerate(spectra):
        padded[row, : len(s)] = s
    return padded.mean(axis=0)


def conv_bias_count(module: nn.Module) -> int:
    return module.bias.numel() if getattr(module, "bias", None) is not None else 0
