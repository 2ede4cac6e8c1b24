"""Assertions for pruned models: equivalence, save/load, ONNX export, fine-tuning. They raise AssertionError."""

from __future__ import annotations

import copy
import io
import os
import tempfile
from typing import Any

import torch
from torch import nn

from slimkit.graph.groups import ChannelGraph, build_graph
from slimkit.graph.ops import _tensors


def _outputs(model: nn.Module, inputs: tuple) -> list[torch.Tensor]:
    with torch.no_grad():
        return [t.detach().clone() for t in _tensors(model(*inputs))]


def zero_channel_effect(graph: ChannelGraph, removed: torch.Tensor) -> None:
    """Zero the weights through which ``removed`` channels affect anything downstream (their consumers' inputs).

    Channels with no consumer weight, or contracted in a product (per-head q/k/v dims), get their producers
    zeroed as well.
    After this, removing exactly those channels must leave the outputs unchanged.
    """
    consumed = torch.zeros(graph.num_channels, dtype=torch.bool)
    for o in graph.occurrences:
        if o.role == "in":
            consumed[graph.comp[o.ids]] = True
    with torch.no_grad():
        for o in graph.occurrences:
            comps = graph.comp[o.ids]
            produce = ~consumed[comps] | graph.contracted[comps]
            hit = removed[comps] & (consumed[comps] if o.role == "in" else produce)
            if o.role not in ("in", "out", "norm") or not bool(hit.any()):
                continue
            if o.role == "norm" and any(attr.startswith("running") for _, _, attr, _ in graph.locations[o.tensor]):
                continue
            t = graph.tensors[o.tensor]
            t.index_fill_(o.dim, hit.nonzero().squeeze(1), 0.0)


def check_prune_equivalence(model: nn.Module, inputs: tuple, *, fraction: float = 0.4, seed: int = 0,
                            atol: float = 1e-5, dtype: torch.dtype | None = torch.float64) -> int:
    """Zero the effect of random channels of every exact group, prune exactly those, compare outputs.

    The comparison runs in ``dtype`` (float64 by default, so that the summation order of a narrower conv cannot
    masquerade as a pruning error; ``None`` keeps the model's dtype); the model is converted back afterwards.
    Returns the number of channels removed (the model is left pruned).
    """
    if dtype is not None:
        original = next(iter(model.parameters())).dtype
        model.to(dtype)
        cast = tuple(t.to(dtype) if isinstance(t, torch.Tensor) and t.is_floating_point() else t for t in inputs)
        try:
            return check_prune_equivalence(model, cast, fraction=fraction, seed=seed, atol=atol, dtype=None)
        finally:
            model.to(original)
    from slimkit.prune.config import PruneConfig
    from slimkit.prune.structured import make_plan

    graph = build_graph(model, inputs)
    gen = torch.Generator().manual_seed(seed)
    removed = torch.zeros(graph.num_channels, dtype=torch.bool)
    for g in graph.groups:
        if not g.exact or g.size < 2:
            continue
        k = max(1, int(g.size * fraction))
        pick = g.channels[torch.randperm(g.size, generator=gen)[:k]]
        removed[pick] = True
    zero_channel_effect(graph, removed)
    reference = _outputs(model, inputs)
    make_plan(graph, removed, inputs, PruneConfig()).apply()
    pruned = _outputs(model, inputs)
    assert len(reference) == len(pruned), "number of outputs changed"
    for r, p in zip(reference, pruned):
        assert r.shape == p.shape, f"output shape changed {tuple(r.shape)} -> {tuple(p.shape)}"
        err = (r - p).abs().max().item() if r.numel() else 0.0
        assert torch.allclose(r, p, atol=atol, rtol=0), f"outputs differ by {err:.3g} after removing zero-effect channels"
    return int(removed.sum())


def check_save_load(model: nn.Module, inputs: tuple) -> None:
    """slimkit's model file and torch's state dict both round-trip to identical outputs."""
    from slimkit.state import load_model, save_model

    expected = _outputs(model, inputs)
    with tempfile.TemporaryDirectory() as folder:
        path = save_model(model, os.path.join(folder, "m.pt"), example_inputs=inputs)
        whole = load_model(path, copy.deepcopy(model))
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    buf.seek(0)
    twin = copy.deepcopy(model)
    twin.load_state_dict(torch.load(buf, weights_only=True))
    for other in (whole, twin):
        for a, b in zip(expected, _outputs(other.eval(), inputs)):
            assert torch.equal(a, b), "outputs changed after save/load"


def check_onnx_export(model: nn.Module, inputs: tuple, path: str | os.PathLike, *, atol: float = 1e-4) -> None:
    """Export with the TorchScript exporter and check onnxruntime reproduces the outputs."""
    import onnxruntime as ort

    model.eval()
    torch.onnx.export(model, inputs, str(path), dynamo=False, opset_version=17)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    got = session.run(None, {n: x.numpy() for n, x in zip(names, inputs)})
    for a, b in zip(_outputs(model, inputs), got):
        assert a.shape == tuple(b.shape), f"ONNX output shape {b.shape} != {tuple(a.shape)}"
        assert torch.allclose(a, torch.from_numpy(b), atol=atol), "ONNX outputs differ"


def check_finetune(model: nn.Module, inputs: tuple, *, steps: int = 3, lr: float = 0.01) -> float:
    """A few SGD steps on a simple loss run, keep the loss finite and change the weights; returns the last loss."""
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    before = [p.detach().clone() for p in params]
    opt = torch.optim.SGD(params, lr=lr, momentum=0.9)
    loss = torch.tensor(0.0)
    for _ in range(steps):
        opt.zero_grad()
        outs: Any = model(*inputs)
        loss = sum(t.float().pow(2).mean() for t in _tensors(outs) if t.is_floating_point())
        loss.backward()
        opt.step()
    model.eval()
    assert torch.isfinite(loss), "loss is not finite"
    assert any(not torch.equal(a, p.detach()) for a, p in zip(before, params)), "no parameter changed"
    return float(loss.detach())
