"""Read-only measurement: params, MACs, FLOPs, storage size, activation memory, and latency.

Example:
    >>> import slimkit, torch
    >>> report = slimkit.profile(model, torch.randn(1, 3, 32, 32))
    >>> print(report.table())
    >>> dense, pruned, speedup = slimkit.compare_latency(model, pruned_model, torch.randn(1, 3, 32, 32))
"""

import sys
import types
from typing import Any

from torch import nn

from slimkit.profile.counters import OpCount, register_op_counter
from slimkit.profile.latency import LatencyReport, compare_latency, measure_latency
from slimkit.profile.profiler import profile
from slimkit.profile.report import LayerRow, ProfileReport

__all__ = [
    "LatencyReport", "LayerRow", "OpCount", "ProfileReport", "compare_latency", "measure_latency", "profile",
    "register_op_counter",
]


class _CallableModule(types.ModuleType):
    """``slimkit.profile`` names both this package and the public verb. Once any code imports the package
    (``from slimkit.profile import measure_latency``), Python binds the attribute ``slimkit.profile`` to the
    package, shadowing the lazily exported function; making the package callable keeps
    ``slimkit.profile(model, example_inputs)`` working in every import order."""

    def __call__(self, model: nn.Module, example_inputs: Any) -> ProfileReport:
        return profile(model, example_inputs)


sys.modules[__name__].__class__ = _CallableModule
