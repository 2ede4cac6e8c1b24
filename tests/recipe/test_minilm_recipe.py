"""recipes/minilm.yaml's stages end to end on a tiny random-init BERT with the hash tokenizer: pruned widths,
finite validation cosines, snapshots and ONNX files that load back."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("transformers")

from slimkit.recipe import load_recipe, run_recipe  # noqa: E402

RECIPE = Path(__file__).parents[2] / "recipes" / "minilm.yaml"
TINY = ("model.kwargs={bert: {vocab_size: 1000, hidden_size: 64, num_hidden_layers: 2, num_attention_heads: 4, "
        "intermediate_size: 128, max_position_embeddings: 32}}")


def test_minilm_recipe_runs_end_to_end_on_a_tiny_bert(tmp_path):
    pytest.importorskip("onnxruntime")
    recipe = load_recipe(RECIPE, overrides=[
        TINY, "data.options={tokenizer: hash, max_length: 32, packages: false}", "data.subset=96",
        "stages.0.heads=2", "stages.0.ffn=48", "stages.0.refit_sentences=32",
        "stages.1.steps=3", "stages.1.batch_size=8", "stages.2.sentences=8", "report.latency=false"])
    result = run_recipe(recipe, tmp_path / "run", echo=lambda *_: None)

    prune, distill, int8 = (s["metrics"] for s in result.stages[:3])
    widths = prune["widths"]
    assert [widths[f"encoder.layer.{i}.attention.self.num_attention_heads"] for i in (0, 1)] == [2, 2]
    assert [widths[f"encoder.layer.{i}.intermediate.intermediate_size"] for i in (0, 1)] == [48, 48]
    assert widths["(embeddings).hidden_size"] == 64 and prune["macs_reduction"] > 1.3
    for key in ("val_cosine_pruned", "val_cosine_refit"):
        assert np.isfinite(prune[key]) and -1 <= prune[key] <= 1
    assert np.isfinite(distill["val_cosine"]) and np.isfinite(distill["test_cosine"])
    assert 0 <= distill["val_retrieval"] <= 1
    assert int8["cosine_fp32_vs_torch"] > 0.999 and int8["cosine_int8"] > 0.5
    assert int8["onnx_int8_bytes"] < int8["onnx_bytes"]

    model = result.model.model
    layer = model.encoder.layer[0]
    assert layer.attention.self.query.out_features == 2 * 16 and layer.intermediate.dense.out_features == 48

    from slimkit.hf.encoder import sentence_encoder
    from slimkit.state import load_model

    # the last snapshot rebuilds the pruned encoder (given the recipe's factory)
    last = result.stages[-1]
    loaded = load_model(result.run_dir / last["file"], factory=sentence_encoder)
    ids = torch.tensor([[101, 300, 400, 102, 0, 0]])
    with torch.no_grad():
        assert torch.allclose(loaded(ids), result.model(ids), atol=1e-6)

    from slimkit.recipe.stages.sentence_encoder import onnx_embeddings
    onnx_file = result.run_dir / "02-onnx_int8" / "model.onnx"
    ids32 = torch.nn.functional.pad(ids, (0, 26))
    np.testing.assert_allclose(onnx_embeddings(onnx_file, ids32), result.model(ids32).detach().numpy(), atol=1e-4)
    assert np.isfinite(onnx_embeddings(onnx_file.with_name("model_int8.onnx"), ids32)).all()
