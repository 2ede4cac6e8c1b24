"""Low-rank decomposition: SVD of Linear layers and convolutions, Tucker-2 and CP of convolutions.

``decompose(model, example_inputs, method=..., rank=... | energy=... | target_params=... | target_macs=...)``
replaces layers by thin factor chains (:class:`Factorized`) and reports rank, params, MACs and error per layer.
"""

from slimkit.lowrank import cp, svd, tucker  # noqa: F401 - register the methods
from slimkit.lowrank._base import METHODS, Factorized, Geometry, register_method
from slimkit.lowrank.api import DecomposeConfig, DecomposeReport, LayerDecomposition, apply_plan, decompose
from slimkit.lowrank.ranks import allocate_ranks, energy_rank
from slimkit.lowrank.vbmf import VBMFResult, evbmf

__all__ = [
    "METHODS", "DecomposeConfig", "DecomposeReport", "Factorized", "Geometry", "LayerDecomposition",
    "VBMFResult", "allocate_ranks", "apply_plan", "decompose", "energy_rank", "evbmf", "register_method",
]
