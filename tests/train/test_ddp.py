"""Two CPU processes (gloo) under torchrun end with identical weights, equal to one process on the global batch."""

import json
import os
import subprocess
import sys
from pathlib import Path

import torch

from slimkit.train.checkpoint import load_checkpoint
from slimkit.train.ddp_check import train_tiny

SRC = Path(__file__).resolve().parents[2] / "src"


def test_two_gloo_ranks_end_identical(tmp_path):
    env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", "OMP_NUM_THREADS": "1"}
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(var, None)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               "-m", "slimkit.train.ddp_check", "--out", str(tmp_path / "out"), "--batch-size", "16",
               "--checkpoint-dir", str(tmp_path / "ckpt")]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]

    rank0 = torch.load(tmp_path / "out" / "rank0.pt", weights_only=True)
    rank1 = torch.load(tmp_path / "out" / "rank1.pt", weights_only=True)
    assert rank0.keys() == rank1.keys()
    for key in rank0:
        assert torch.equal(rank0[key], rank1[key]), key
    summaries = [json.loads((tmp_path / "out" / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [s["world_size"] for s in summaries] == [2, 2]
    assert summaries[0]["history"][-1]["loss"] == summaries[1]["history"][-1]["loss"]  # metrics all-reduced

    # one process with the global batch (2 x 16) sees the same samples per step: same result up to rounding
    single, result, hook = train_tiny(32)
    for key, value in {**single.state_dict(), "hook.center": hook.center.detach()}.items():
        assert torch.allclose(value, rank0[key], atol=1e-5), key
    assert rank0["hook.center"].abs().sum() > 0  # the hook's own parameter trained, averaged across ranks
    # accuracy is linear in the samples; the hook's squared term on a batch mean is not (16 vs 32 samples)
    assert result.history[-1]["train_accuracy"] == summaries[0]["history"][-1]["train_accuracy"]
    assert abs(result.history[-1]["loss"] - summaries[0]["history"][-1]["loss"]) < 1e-2
    assert not torch.equal(single.state_dict()["0.weight"], train_tiny(32, epochs=1)[0].state_dict()["0.weight"])

    # only rank 0 wrote the checkpoint, with the all-reduced history
    saved = load_checkpoint(tmp_path / "ckpt")
    assert saved["epoch"] == 2 and saved["history"][-1]["loss"] == summaries[0]["history"][-1]["loss"]
    assert all(torch.equal(saved["model"][k], rank0[k]) for k in saved["model"])
    assert torch.equal(saved["hook_params"]["hooks.0.0"], rank0["hook.center"])
