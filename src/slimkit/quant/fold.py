"""BatchNorm folding: merge an inference-mode BatchNorm into the conv (or linear) that feeds it.

``y = gamma * (conv(x) - mean) / sqrt(var + eps) + beta`` is itself a conv with weight ``w * gamma / std`` (per
output channel) and bias ``(b - mean) * gamma / std + beta``. Quantizing the folded weight is what integer kernels
execute, so folding comes before choosing weight scales.
"""

from __future__ import annotations

import torch
import torch.fx
from torch import nn

from slimkit.core.errors import GraphError
from slimkit.core.modules import label, set_submodule

_FOLDABLE = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)
_BATCHNORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


def fold_bn_into(layer: nn.Module, bn: nn.Module) -> None:
    """Fold ``bn``'s running statistics and affine parameters into ``layer`` in place (exact in eval mode)."""
    if bn.running_mean is None or bn.running_var is None:
        raise GraphError(f"{type(bn).__name__} without running statistics cannot be folded")
    out_channels = layer.weight.shape[0]
    if bn.num_features != out_channels:
        raise GraphError(
            f"{type(bn).__name__} has {bn.num_features} features but {type(layer).__name__} has {out_channels} outputs"
        )
    with torch.no_grad():
        std = torch.sqrt(bn.running_var.double() + bn.eps)
        gamma = bn.weight.double() if bn.weight is not None else torch.ones_like(std)
        beta = bn.bias.double() if bn.bias is not None else torch.zeros_like(std)
        factor = gamma / std  # (C_out,)
        shape = (-1,) + (1,) * (layer.weight.dim() - 1)
        weight = layer.weight.double() * factor.reshape(shape)
        bias = layer.bias.double() if layer.bias is not None else torch.zeros_like(std)
        bias = (bias - bn.running_mean.double()) * factor + beta
        layer.weight.copy_(weight.to(layer.weight.dtype))
        if layer.bias is None:
            layer.bias = nn.Parameter(bias.to(layer.weight.dtype))
        else:
            layer.bias.copy_(bias.to(layer.bias.dtype))


def find_conv_bn_pairs(model: nn.Module) -> list[tuple[str, str]]:
    """``(layer_fqn, bn_fqn)`` for every BatchNorm whose only input is a conv/linear used nowhere else.

    Uses ``torch.fx`` to see the real data flow; models fx cannot trace fall back to adjacent pairs inside
    ``nn.Sequential`` containers.
    """
    try:
        graph = torch.fx.symbolic_trace(model).graph
    except Exception:  # untraceable control flow: fall back to Sequential adjacency
        return _sequential_pairs(model)
    modules = dict(model.named_modules())
    pairs = []
    for node in graph.nodes:
        if node.op != "call_module" or not isinstance(modules.get(node.target), _BATCHNORMS):
            continue
        src = node.args[0] if node.args else None
        if not isinstance(src, torch.fx.Node) or src.op != "call_module":
            continue
        if not isinstance(modules.get(src.target), _FOLDABLE) or len(src.users) != 1:
            continue
        pairs.append((str(src.target), str(node.target)))
    uses: dict[str, int] = {}
    for node in graph.nodes:  # a layer called twice (shared) cannot take one BN's statistics
        if node.op == "call_module":
            uses[str(node.target)] = uses.get(str(node.target), 0) + 1
    return [(a, b) for a, b in pairs if uses[a] == 1 and uses[b] == 1]


def _sequential_pairs(model: nn.Module) -> list[tuple[str, str]]:
    pairs = []
    for fqn, module in model.named_modules():
        if not isinstance(module, nn.Sequential):
            continue
        children = list(module.named_children())
        for (name_a, a), (name_b, b) in zip(children, children[1:]):
            if isinstance(a, _FOLDABLE) and isinstance(b, _BATCHNORMS):
                prefix = f"{fqn}." if fqn else ""
                pairs.append((prefix + name_a, prefix + name_b))
    return pairs


def fold_batchnorm(model: nn.Module) -> list[str]:
    """Fold every foldable BatchNorm of ``model`` into its producer and replace it by ``nn.Identity``.

    Returns:
        The fqns of the folded BatchNorms. The model must be in eval mode for outputs to be unchanged
        (training-mode BN uses batch statistics, which no fixed conv can reproduce).
    """
    folded = []
    for layer_fqn, bn_fqn in find_conv_bn_pairs(model):
        layer, bn = model.get_submodule(layer_fqn), model.get_submodule(bn_fqn)
        try:
            fold_bn_into(layer, bn)
        except GraphError as err:
            raise GraphError(f"{label(bn_fqn, bn)}: cannot fold into {label(layer_fqn, layer)}: {err}") from None
        set_submodule(model, bn_fqn, nn.Identity())
        folded.append(bn_fqn)
    return folded
