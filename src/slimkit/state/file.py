"""Model files: one checked container for every state slimkit produces, and nothing unpickled on load.

A file is the ``.slim`` container (:mod:`slimkit.codec.container`: JSON header, raw tensor sections, SHA-256 over
everything, checked before anything is decompressed or allocated). Its header holds the architecture as data
(``spec``: a registered model name and its keyword arguments), the structure edits slimkit made
(:mod:`slimkit.state.structure`), optional input/output shapes to verify the rebuilt model with, metadata, and
one record per tensor. :func:`save_model` stores tensors raw; :func:`slimkit.save_compressed` stores the same
header with Deep Compression coding. Both load with :func:`load_model`.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.utils import parametrize

from slimkit.codec.tensor import DTYPES, SharedValues, dtype_name
from slimkit.core.errors import CheckpointError, CodecError, SlimkitError
from slimkit.core.transaction import transaction
from slimkit.state.build import build_architecture
from slimkit.state.signature import check_signature, signature_of
from slimkit.state.structure import EXTRA_PREFIX, describe_structure, restore_structure

MODEL_FORMAT = "slimkit.model"  # tensors stored raw (save_model, run snapshots)
SLIM_FORMAT = "slimkit.slim"  # Deep Compression coding (save_compressed)
FORMATS = (MODEL_FORMAT, SLIM_FORMAT)

Item = tuple[str, torch.Tensor, SharedValues | None]


def logical_tensors(model: nn.Module) -> list[Item]:
    """The tensors a file holds: the state dict, with k-means shared weights as one tensor (codebook values).

    Other parametrizations (e.g. the user's weight norm) keep their own state-dict entries: the architecture
    rebuilt on load has them too.
    """
    from slimkit.quant.kmeans import SharedWeight

    shared: dict[str, tuple[nn.Module, str, SharedWeight]] = {}
    for fqn, module in model.named_modules():
        if parametrize.is_parametrized(module):
            for attr, chain in module.parametrizations.items():
                if len(chain) == 1 and isinstance(chain[0], SharedWeight):
                    shared[f"{fqn}.parametrizations.{attr}." if fqn else f"parametrizations.{attr}."] = (
                        module, f"{fqn}.{attr}" if fqn else attr, chain[0])
    items: list[Item] = []
    state = model.state_dict()
    for key, value in state.items():
        if any(key.startswith(prefix) for prefix in shared):
            continue
        if key.endswith("_mask") and key[: -len("_mask")] + "_orig" in state:
            continue  # torch.nn.utils.prune: the masked weight is stored instead
        if key.endswith("_orig") and key[: -len("_orig")] + "_mask" in state:
            fqn, _, attr = key[: -len("_orig")].rpartition(".")
            module = model.get_submodule(fqn) if fqn else model
            items.append((f"{fqn}.{attr}" if fqn else attr, getattr(module, attr).detach(), None))
            continue
        items.append((key, value, None))
    for _, name, sw in shared.values():
        meta = torch.empty(sw.indices.shape, dtype=sw.codebook.dtype, device="meta")
        indices = sw.indices.detach().cpu().numpy().reshape(-1)
        items.append((name, meta, SharedValues(sw.codebook.detach().cpu(), indices)))
    return items


def dense_value(item: Item) -> torch.Tensor:
    """The plain tensor an item stands for (codebook values expanded)."""
    name, tensor, shared = item
    if shared is None:
        return tensor
    codebook = torch.cat([shared.codebook.new_zeros(1), shared.codebook])
    return codebook[torch.as_tensor(shared.indices) + 1].reshape(tensor.shape)


def _check_weights_finite(model: nn.Module, where: str) -> None:
    """A weight that is NaN or infinite makes every output NaN: refuse to save or load one, naming it."""
    for name, tensor in model.named_parameters():
        if tensor.is_floating_point() and tensor.numel() and not bool(torch.isfinite(tensor).all()):
            raise CheckpointError(f"{where}: weight {name!r} holds NaN or infinite values")


def model_header(model: nn.Module, fmt: str, *, metadata: Mapping[str, Any] | None,
                 example_inputs: Any = None) -> tuple[dict[str, Any], list[Item]]:
    """The header fields (all but ``tensors``) and the tensors to store; refuses what a file cannot represent."""
    from slimkit import __version__
    from slimkit.models._registry import model_spec

    where = f"{type(model).__name__}"
    entries, extra = describe_structure(model)
    signature, inputs = signature_of(model, example_inputs) if example_inputs is not None else (None, {})
    extra.update({EXTRA_PREFIX + k: v for k, v in inputs.items()})
    items = logical_tensors(model) + [(k, v, None) for k, v in extra.items()]
    for item in items:
        if dtype_name(item[1].dtype) not in DTYPES:
            raise CheckpointError(f"{where}: tensor {item[0]!r} has dtype {item[1].dtype}, which files cannot hold")
    _check_weights_finite(model, where)
    header = {
        "format": fmt,
        "slimkit_version": __version__,
        "spec": model_spec(model),
        "structure": entries,
        "signature": signature,
        "metadata": dict(metadata or {}),
    }
    return header, items


def save_model(model: nn.Module, path: str | os.PathLike, *, metadata: Mapping[str, Any] | None = None,
               example_inputs: Any = None) -> Path:
    """Write ``model`` (any state slimkit leaves it in) atomically to ``path``; :func:`load_model` reads it.

    Args:
        model: a zoo model, a ``create_model`` model, or the user's own ``nn.Module`` (then loading needs
            ``model=`` or ``factory=``): pruned, sparse, quantized, decomposed, weight-shared or any mix.
        path: the file to write (any name; the content is slimkit's checked container).
        metadata: JSON-ready extra information.
        example_inputs: when given, the input and output shapes are recorded and checked when loading.

    Raises:
        CheckpointError: naming the layer or tensor that a file cannot represent (nothing is written).
    """
    from slimkit.codec.api import write_model

    header, items = model_header(model, MODEL_FORMAT, metadata=metadata, example_inputs=example_inputs)
    write_model(path, header, [(name, dense_value((name, t, s)).detach().cpu(), None) for name, t, s in items],
                layout="dense", huffman=False)
    return Path(path)


def read_model_file(path: str | os.PathLike) -> tuple[dict[str, Any], dict[str, torch.Tensor], int]:
    """Header, decoded tensors and file size of a model file (checksum and limits checked first)."""
    from slimkit.codec.api import load_state

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such model file")
    if zipfile.is_zipfile(path):  # a slimkit 0.1 file (torch zip); every current file is the container
        from slimkit.state.legacy import read_legacy

        header, tensors = read_legacy(path)
        return header, tensors, path.stat().st_size
    tensors, header = load_state(path)
    if header.get("format") not in FORMATS:
        raise CodecError(f"{path}: not a slimkit model file (format {header.get('format')!r})")
    return header, tensors, path.stat().st_size


def rebuild(header: dict[str, Any], tensors: dict[str, torch.Tensor], *, source: str,
            model: nn.Module | None = None, factory: Callable[..., nn.Module] | None = None,
            verify: bool = True) -> nn.Module:
    """The model a file describes: architecture, structure edits, weights; checked against its signature."""
    state = {k: v for k, v in tensors.items() if not k.startswith(EXTRA_PREFIX)}
    declared = sum(t.numel() * t.element_size() for t in tensors.values())
    if model is None:
        model = build_architecture(header.get("spec"), factory=factory, declared_bytes=declared, source=source)
        _fill(model, header, state, tensors, source)
    else:
        with transaction(model):  # the user's instance is left as it was if the file does not fit it
            _fill(model, header, state, tensors, source)
        if header.get("spec") and getattr(model, "slimkit_spec", None) is None:
            model.slimkit_spec = header["spec"]  # type: ignore[assignment]
    _check_weights_finite(model, source)
    if verify and header.get("signature"):
        stored = {k[len(EXTRA_PREFIX):]: v for k, v in tensors.items() if k.startswith(EXTRA_PREFIX)}
        check_signature(model, header["signature"], source, stored)
    return model


def _fill(model: nn.Module, header: dict[str, Any], state: dict[str, torch.Tensor],
          tensors: dict[str, torch.Tensor], source: str) -> None:
    from slimkit.core.shapes import resize_to_state_dict

    entries = header.get("structure") or []
    restore_structure(model, entries, tensors, "before_load", source)
    try:
        resize_to_state_dict(model, state)
        model.load_state_dict(state)
    except (SlimkitError, RuntimeError) as err:
        raise CheckpointError(f"{source}: does not fit the model it names: {err}") from None
    restore_structure(model, entries, tensors, "after_load", source)


def load_model(path: str | os.PathLike, model: nn.Module | None = None, *,
               factory: Callable[..., nn.Module] | None = None, verify: bool = True) -> nn.Module:
    """Rebuild the model saved by :func:`save_model` or :func:`slimkit.save_compressed`, exactly.

    Nothing named in the file is imported or called: the architecture is a registered model name, the
    ``factory`` you pass, or the fresh instance ``model`` you pass (structure edits and weights are replayed
    on it, all or nothing).

    Args:
        path: the file.
        model: a freshly built instance of the saved model's original architecture (your own ``nn.Module``).
        factory: builds the architecture from the file's keyword arguments (when it names a model this process
            has not registered).
        verify: run the rebuilt model on inputs of the recorded shapes and compare output shapes (when the file
            recorded them).

    Raises:
        CodecError / FormatError: the file is damaged, altered, or claims more than it holds.
        CheckpointError: the file names an unregistered architecture, or does not fit it.
    """
    header, tensors, _ = read_model_file(path)
    return rebuild(header, tensors, source=str(path), model=model, factory=factory, verify=verify)
