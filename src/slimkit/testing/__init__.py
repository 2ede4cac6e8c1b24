"""Test helpers users can import: a zoo of tiny architectures and pruning equivalence checks.

Example:
    >>> from slimkit.testing import build_arch, list_archs, check_prune_equivalence
    >>> for name in list_archs():
    ...     model, inputs = build_arch(name)
    ...     check_prune_equivalence(model, inputs)
"""

from slimkit.testing.checks import (
    check_finetune,
    check_onnx_export,
    check_prune_equivalence,
    check_save_load,
    zero_channel_effect,
)
from slimkit.testing.crash import CrashAt, SimulatedCrash
from slimkit.testing.registry import build_arch, list_archs, register_arch

__all__ = [
    "CrashAt", "SimulatedCrash", "build_arch", "check_finetune", "check_onnx_export", "check_prune_equivalence", "check_save_load", "list_archs",
    "register_arch", "zero_channel_effect",
]
