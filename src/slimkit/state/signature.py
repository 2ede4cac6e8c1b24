"""Input and output shapes recorded with a model, so a loaded model is checked to run before it is handed back.

A file whose tensors were given wrong shapes (and a recomputed checksum) would otherwise load and fail later,
deep inside a forward pass on the user's data.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from slimkit.core.errors import CheckpointError
from slimkit.core.forward import training_mode
from slimkit.core.modules import model_device
from slimkit.graph.ops import _tensors

_INPUT_DTYPES = {"float32": torch.float32, "float64": torch.float64, "float16": torch.float16,
                 "bfloat16": torch.bfloat16, "int64": torch.int64, "int32": torch.int32, "bool": torch.bool}
MAX_INPUT_ELEMENTS = 1 << 26
STORED_INPUT_ELEMENTS = 1 << 18  # example inputs up to this size travel in the file (checked exactly on load)


def _as_tuple(example_inputs: Any) -> tuple:
    return example_inputs if isinstance(example_inputs, tuple) else (example_inputs,)


def _run(model: nn.Module, inputs: tuple) -> list[list[int]]:
    with torch.no_grad(), training_mode(model, False):
        return [list(t.shape) for t in _tensors(model(*inputs))]


def signature_of(model: nn.Module, example_inputs: Any) -> tuple[dict[str, Any] | None, dict[str, torch.Tensor]]:
    """``{"inputs": [{"shape", "dtype", "stored"}], "outputs": [shape, ...]}`` for tensor inputs (else ``None``),
    and the inputs themselves when they are small (a model whose integer inputs mean lengths or indices is then
    checked on real values, not made-up ones)."""
    inputs = _as_tuple(example_inputs)
    if not inputs or not all(isinstance(x, torch.Tensor) for x in inputs):
        return None, {}
    if any(str(x.dtype).removeprefix("torch.") not in _INPUT_DTYPES for x in inputs):
        return None, {}
    store = sum(x.numel() for x in inputs) <= STORED_INPUT_ELEMENTS
    tensors = {f"signature.input.{i}": x.detach().cpu().clone() for i, x in enumerate(inputs)} if store else {}
    return {"inputs": [{"shape": list(x.shape), "dtype": str(x.dtype).removeprefix("torch."), "stored": store}
                       for x in inputs],
            "outputs": _run(model, inputs)}, tensors


def check_signature(model: nn.Module, signature: Any, source: str,
                    stored: dict[str, torch.Tensor] | None = None) -> None:
    """Run ``model`` on the recorded inputs (or zeros/ones of their shapes); output shapes must be as recorded."""
    stored = stored or {}
    try:
        specs = signature["inputs"]
        shapes = [[int(s) for s in spec["shape"]] for spec in specs]
        dtypes = [_INPUT_DTYPES[spec["dtype"]] for spec in specs]
        expected = [[int(s) for s in shape] for shape in signature["outputs"]]
    except (KeyError, TypeError, ValueError):
        raise CheckpointError(f"{source}: malformed 'signature' section") from None
    if any(s < 0 for shape in shapes for s in shape) or sum(math.prod(shape) for shape in shapes) > MAX_INPUT_ELEMENTS:
        raise CheckpointError(f"{source}: 'signature' asks for inputs larger than {MAX_INPUT_ELEMENTS:,} elements")
    device = model_device(model)
    inputs = []
    for i, (shape, dtype) in enumerate(zip(shapes, dtypes)):
        x = stored.get(f"signature.input.{i}")
        if x is None or list(x.shape) != shape or x.dtype != dtype:
            x = (torch.zeros if dtype.is_floating_point else torch.ones)(shape, dtype=dtype)
        inputs.append(x.to(device))
    try:
        got = _run(model, tuple(inputs))
    except Exception as err:  # noqa: BLE001 - any failure means the file does not describe a working model
        raise CheckpointError(
            f"{source}: the rebuilt model fails on inputs of the recorded shapes ({type(err).__name__}: {err})"
        ) from None
    if got != expected:
        raise CheckpointError(f"{source}: the rebuilt model gives output shapes {got}, the file recorded {expected}")
