import json

import pytest
import torch

import slimkit
from slimkit.cli import main


@pytest.mark.cli
def test_pack_info_unpack(tmp_path, capsys, prune_):
    torch.manual_seed(0)
    model = slimkit.create_model("codec_test_mlp")
    prune_(model, 0.9)
    slimkit.save_model(model, tmp_path / "m.pt")
    assert main(["pack", str(tmp_path / "m.pt"), str(tmp_path / "m.slim"), "--bits", "4"]) == 0
    assert "ratio by stage" in capsys.readouterr().out
    assert main(["pack-info", str(tmp_path / "m.slim"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["file_bytes"] == (tmp_path / "m.slim").stat().st_size and info["ratio"] > 3
    assert main(["unpack", str(tmp_path / "m.slim"), str(tmp_path / "u.pt")]) == 0
    unpacked = slimkit.load_model(tmp_path / "u.pt")
    shared = slimkit.load_compressed(tmp_path / "m.slim")
    x = torch.randn(2, 1, 8, 8)
    assert torch.equal(unpacked(x), shared(x))
    assert torch.unique(unpacked[1].weight).numel() <= 17  # 16 centroids and the pruned zero


@pytest.mark.cli
def test_pack_info_refuses_a_damaged_file(tmp_path, capsys):
    (tmp_path / "bad.slim").write_bytes(b"\x89SLIM\r\n\x1a" + b"\x00" * 40)
    assert main(["pack-info", str(tmp_path / "bad.slim")]) == 2
    assert "bad.slim" in capsys.readouterr().err
