"""Sparse export of a pruned model: only the surviving weights and where they sit, as plain tensors.

Every pruned weight ``fc1.weight`` becomes entries ``fc1.weight.values`` plus either ``fc1.weight.indices`` (COO:
flat positions) or ``fc1.weight.crow`` / ``fc1.weight.col`` (CSR over the weight viewed as ``(out, -1)``) and
``fc1.weight.shape``; other tensors stay dense under their own names. Plain tensors only, so the dict is saved with
``torch.save`` and read back with ``weights_only=True``, and the .slim codec can encode indices and values further.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import torch
from torch import nn

from slimkit.core.errors import CheckpointError, ConfigError
from slimkit.prune.unstructured.masks import get_masks, set_masks

Layout = Literal["coo", "csr"]
_PARTS = (".values", ".indices", ".crow", ".col", ".shape")


def _index_dtype(n: int) -> torch.dtype:
    return torch.int32 if n < 2**31 else torch.int64


def to_sparse_state_dict(
    model: nn.Module, *, layout: Layout = "csr", masks: Mapping[str, torch.Tensor] | None = None
) -> dict[str, torch.Tensor]:
    """The state dict of ``model`` with masked weights stored as index + values (see the module docstring).

    Args:
        model: a pruned model; its masks (or ``masks``, or, for a model made permanent, its nonzeros) say which
            weights survive.
        layout: ``csr`` (row pointers + column indices) or ``coo`` (flat positions).
        masks: keep-masks by parameter name; defaults to :func:`get_masks` of the model.
    """
    if layout not in ("coo", "csr"):
        raise ConfigError(f"layout: expected 'coo' or 'csr', got {layout!r}")
    masks = dict(get_masks(model) if masks is None else masks)
    out: dict[str, torch.Tensor] = {}
    for name, tensor in model.state_dict().items():
        mask = masks.get(name)
        if mask is None:
            out[name] = tensor.detach().clone()
            continue
        flat = tensor.detach().reshape(-1)
        keep = mask.reshape(-1).to(flat.device)
        out[f"{name}.values"] = flat[keep].clone()
        out[f"{name}.shape"] = torch.tensor(tuple(tensor.shape), dtype=torch.int64)
        if layout == "coo":
            out[f"{name}.indices"] = torch.nonzero(keep).squeeze(1).to(_index_dtype(flat.numel()))
        else:
            rows = mask.reshape(mask.shape[0], -1)  # (out, in * kernel)
            dtype = _index_dtype(flat.numel())
            out[f"{name}.crow"] = torch.cat([rows.new_zeros(1, dtype=torch.int64), rows.sum(1).cumsum(0)]).to(dtype)
            out[f"{name}.col"] = torch.nonzero(rows)[:, 1].to(dtype)
    return out


def from_sparse_state_dict(state: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Dense state dict and keep-masks rebuilt from :func:`to_sparse_state_dict`'s output.

    Raises:
        CheckpointError: naming the weight when its parts are missing or inconsistent.
    """
    dense: dict[str, torch.Tensor] = {}
    masks: dict[str, torch.Tensor] = {}
    sparse_names = {k[: -len(".values")] for k in state if k.endswith(".values")}
    for key, tensor in state.items():
        if not any(key.endswith(p) and key[: -len(p)] in sparse_names for p in _PARTS):
            dense[key] = tensor
    for name in sorted(sparse_names):
        try:
            shape = tuple(int(s) for s in state[f"{name}.shape"].tolist())
            values = state[f"{name}.values"]
            numel = 1
            for s in shape:
                numel *= s
            keep = torch.zeros(numel, dtype=torch.bool, device=values.device)
            if f"{name}.indices" in state:
                keep[state[f"{name}.indices"].long()] = True
            else:
                crow, col = state[f"{name}.crow"].long(), state[f"{name}.col"].long()
                width = numel // shape[0]
                row_of = torch.repeat_interleave(torch.arange(shape[0], device=col.device), crow.diff())
                keep[row_of * width + col] = True
        except (KeyError, RuntimeError, IndexError, ValueError) as err:
            raise CheckpointError(f"{name}: incomplete or inconsistent sparse entry ({err})") from None
        if int(keep.sum()) != values.numel():
            raise CheckpointError(f"{name}: {values.numel()} values for {int(keep.sum())} kept positions")
        flat = torch.zeros(numel, dtype=values.dtype, device=values.device)
        flat[keep] = values
        dense[name] = flat.view(shape)
        masks[name] = keep.view(shape)
    return dense, masks


def load_sparse_state_dict(model: nn.Module, state: Mapping[str, torch.Tensor], *, keep_masks: bool = True) -> None:
    """Load a sparse state dict into ``model``; with ``keep_masks`` the pruned positions are masked again."""
    dense, masks = from_sparse_state_dict(state)
    model.load_state_dict(dense)
    if keep_masks:
        set_masks(model, masks)


def sparse_size_bytes(state: Mapping[str, torch.Tensor]) -> int:
    """Bytes of all tensors in a (sparse) state dict: what it costs to store, before any entropy coding."""
    return sum(t.numel() * t.element_size() for t in state.values())
