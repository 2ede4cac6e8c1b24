"""CUDA paths (device placement, bf16/fp16 autocast with loss scaling); run with ``pytest -m gpu``."""

import pytest
import torch

from slimkit.train import TrainConfig, evaluate, fit
from slimkit.train.checkpoint import load_checkpoint

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
]


@pytest.mark.parametrize("amp", ["off", "bf16", "fp16"])
def test_fit_on_cuda(blobs, blobs_val, mlp, amp, tmp_path):
    model = mlp()
    config = TrainConfig(epochs=3, batch_size=32, lr=0.1, amp=amp, device="cuda", progress=False)
    result = fit(model, blobs, config, val_data=blobs_val, checkpoint_dir=tmp_path)
    assert next(model.parameters()).is_cuda
    assert result.final["val_accuracy"] > 0.8
    assert evaluate(model, blobs_val)["accuracy"] == pytest.approx(result.final["val_accuracy"], abs=0.02)
    saved = load_checkpoint(tmp_path)
    assert (saved["scaler"] is not None) == (amp == "fp16")
