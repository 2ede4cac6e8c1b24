"""Structured OBS selection (slimkit.hf.obs): exact on redundant units, identity at zero removals, and the
pruned encoder runs with the widths asked for."""

from __future__ import annotations

import copy

import pytest
import torch

from slimkit.hf import obs, prune_pretrained, recover


def _gram(x: torch.Tensor, lam: float = 1e-8) -> torch.Tensor:
    g = x.double().T @ x.double()
    return g + lam * g.diagonal().mean() * torch.eye(len(g), dtype=g.dtype)


def test_obs_removes_redundant_neurons_without_error():
    gen = torch.Generator().manual_seed(0)
    base = torch.randn(400, 12, generator=gen)  # (N, 12) independent activations
    mix = torch.randn(12, 4, generator=gen)
    a = torch.cat([base, base @ mix], 1)  # (N, 16): the last 4 are linear combinations of the first 12
    w = torch.randn(5, 16, generator=gen)  # (O, 16)
    kept, w2, _ = obs.obs_remove(_gram(a), w, group=1, keep=12)
    assert len(kept) == 12 and set(kept.tolist()) <= set(range(16))
    assert torch.allclose(a @ w2.T, a @ w.T, atol=1e-3)  # what the removed ones did is taken over exactly
    assert w2[:, [i for i in range(16) if i not in kept.tolist()]].abs().max() == 0


def test_obs_removes_a_zero_head_first_and_zero_removals_are_identity():
    gen = torch.Generator().manual_seed(1)
    a = torch.randn(300, 12, generator=gen)  # three "heads" of 4 columns
    w = torch.randn(6, 12, generator=gen)
    w[:, 4:8] = 0.0  # head 1 adds nothing
    kept, w2, _ = obs.obs_remove(_gram(a), w, group=4, keep=2)
    assert kept.tolist() == [0, 2]
    assert torch.allclose(w2, w, atol=1e-5)
    same, w3, path = obs.obs_remove(_gram(a), w, group=4, keep=3)
    assert same.tolist() == [0, 1, 2] and torch.equal(w3, w) and path.tolist() == [[3.0, 0.0]]


def test_obs_block_removal_keeps_the_count():
    gen = torch.Generator().manual_seed(2)
    a = torch.randn(200, 40, generator=gen)
    gram, y = _gram(a, 1e-3), torch.randn(200, 3, generator=gen)
    w = torch.linalg.solve(gram, a.double().T @ y.double()).T  # (3, 40): the least-squares optimum
    kept, w2, path = obs.obs_remove(gram, w, group=1, keep=13, block=8)
    assert len(kept) == 13 and (w2.abs().sum(0) > 0).sum() == 13
    assert path[:, 0].tolist() == [40, 32, 24, 16, 13]
    d = w2 - w  # the rises add up to the loss rise: quadratic around the optimum
    assert torch.allclose(path[:, 1].sum(), torch.einsum("od,de,oe->", d, gram, d), rtol=1e-6)


def test_allocate_takes_the_cheapest_steps_per_mac():
    flat = torch.tensor([[4.0, 0.0], [3.0, 1.0], [2.0, 1.0], [1.0, 1.0]], dtype=torch.float64)
    steep = torch.tensor([[4.0, 0.0], [3.0, 10.0], [2.0, 10.0], [1.0, 10.0]], dtype=torch.float64)
    ffn = torch.tensor([[8.0, 0.0], [4.0, 100.0]], dtype=torch.float64)
    kept = [{"heads_path": flat, "ffn_path": ffn}, {"heads_path": steep, "ffn_path": ffn}]
    assert obs.allocate(kept, 3.0, head_macs=1.0, neuron_macs=1.0) == ([1, 4], [8, 8])
    assert obs.allocate(kept, 4.0, head_macs=1.0, neuron_macs=1.0) == ([1, 3], [8, 8])
    with pytest.raises(ValueError):
        obs.allocate(kept, 100.0, head_macs=1.0, neuron_macs=1.0)


def _tiny_bert(hf_build):
    model, _ = hf_build("bert")
    ids = torch.randint(3, 100, (6, 10), generator=torch.Generator().manual_seed(3))
    mask = torch.ones_like(ids)
    mask[::2, 7:] = 0
    return model, [(ids[:3], mask[:3]), (ids[3:], mask[3:])]


def test_obs_prune_with_nothing_removed_is_the_plain_refit(hf_build):
    teacher, batches = _tiny_bert(hf_build)
    records = recover.layer_records(teacher, batches)
    student = copy.deepcopy(teacher)
    prune_pretrained(student, (batches[0][0],), units=("heads", "ffn"), heads=2, ffn=64, importance="l1",
                     require_config=False)
    slow, reference = copy.deepcopy(student), copy.deepcopy(student)
    for i, layer in enumerate(slow.encoder.layer):  # the whole model up to layer i for every fit
        for dense, inp, resid, target in ((layer.attention.output.dense, "ctx", "x", "attn"),
                                          (layer.output.dense, "act", "h", "ffn")):
            s, t = recover.layer_records(slow, batches, upto=i)[i], records[i]
            w, b = recover._ridge(s[inp], t[target] + t[resid] - s[resid])
            with torch.no_grad():
                dense.weight.copy_(w)
                dense.bias.copy_(b)
    recover.refit(reference, records, batches)  # layer i alone on the stored outputs of layer i - 1
    assert torch.allclose(recover.encode(reference, batches), recover.encode(slow, batches), atol=1e-5)
    kept = obs.obs_prune(student, teacher, batches)
    assert [len(k["heads"]) for k in kept] == [2, 2] and [len(k["ffn"]) for k in kept] == [64, 64]
    assert torch.allclose(recover.encode(student, batches), recover.encode(reference, batches), atol=1e-5)


@pytest.mark.parametrize("heads,ffn", [(2, 64), ([3, 1], [100, 20])])
def test_obs_prune_then_prune_pretrained_keeps_outputs(hf_build, heads, ffn):
    teacher, batches = _tiny_bert(hf_build)
    student = copy.deepcopy(teacher)
    kept = obs.obs_prune(student, teacher, batches, heads=heads, ffn=ffn, ffn_block=8, floor=(1, 16))
    assert all(k["heads_path"][0, 0] == 4 and k["ffn_path"][-1, 0] == 16 for k in kept)
    masked = recover.encode(student, batches)
    with pytest.warns(UserWarning):  # BertConfig derives the head size: fewer heads do not fit it
        report = obs.prune_kept(student, (batches[0][0],), kept)
    want_heads = heads if isinstance(heads, list) else [heads] * 2
    want_ffn = ffn if isinstance(ffn, list) else [ffn] * 2
    layers = student.encoder.layer
    assert [layer.attention.self.query.out_features // 16 for layer in layers] == want_heads
    assert [layer.intermediate.dense.out_features for layer in layers] == want_ffn
    assert report.macs_reduction > 1
    pruned = recover.encode(student, batches)
    assert pruned.shape == masked.shape and torch.isfinite(pruned).all()
    assert torch.allclose(pruned, masked, atol=1e-5)
