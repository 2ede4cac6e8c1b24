"""All-zero tensors (a fresh bias, a fully pruned layer) store no entries; the report must still print them."""

import json
import math

import pytest
import torch

import slimkit
from slimkit.cli import main


def _zeroed_model() -> torch.nn.Module:
    torch.manual_seed(0)
    model = slimkit.create_model("codec_test_cnn")
    with torch.no_grad():
        model[0].bias.zero_()  # a zero-initialised bias
        model[7].weight.zero_()  # a fully pruned Linear weight
    return model


ZEROED = {"0.bias", "7.weight", "1.bias", "1.running_mean"}  # set to zero above, or a fresh BatchNorm's


def _zero_rows(table: str) -> dict[str, str]:
    return {line.split()[0]: line for line in table.splitlines() if line.split() and line.split()[0] in ZEROED}


def test_table_prints_all_zero_tensors(tmp_path):
    report = slimkit.save_compressed(_zeroed_model(), tmp_path / "m.slim")
    zeros = {lay.name: lay for lay in report.layers if lay.nonzero == 0 and lay.name in ZEROED}
    assert set(zeros) == ZEROED
    for lay in zeros.values():
        assert lay.entries == 0 and lay.density == 0.0
        assert math.isfinite(lay.ratio) and lay.ratio > 0
    table = report.table()
    rows = _zero_rows(table)
    assert set(rows) == ZEROED
    for row in rows.values():
        assert "None" not in row and "inf" not in row and "nan" not in row
        assert "0.0%" in row
    # a sparse tensor with no entries has a fixed gap width but no Huffman average: "bits/-"
    if zeros["7.weight"].layout == "sparse":
        assert f"{zeros['7.weight'].index_bits}/-" in rows["7.weight"]
    assert all(math.isfinite(v) for v in report.stage_ratios().values())
    # the same report read back from the header formats identically
    assert slimkit.inspect_compressed(tmp_path / "m.slim").table() == table
    json.dumps(report.to_dict(), allow_nan=False)  # JSON-ready: no inf/nan


@pytest.mark.cli
@pytest.mark.parametrize("options", [[], ["--bits", "4"], ["--no-huffman"]], ids=["default", "bits4", "no-huffman"])
def test_pack_and_pack_info_on_all_zero_tensors(tmp_path, capsys, options):
    slimkit.save_model(_zeroed_model(), tmp_path / "m.pt")
    assert main(["pack", str(tmp_path / "m.pt"), str(tmp_path / "m.slim"), *options]) == 0
    out = capsys.readouterr().out
    assert "ratio by stage" in out and set(_zero_rows(out)) == ZEROED
    assert main(["pack-info", str(tmp_path / "m.slim")]) == 0
    assert set(_zero_rows(capsys.readouterr().out)) == ZEROED
    assert main(["pack-info", str(tmp_path / "m.slim"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    layers = {lay["name"]: lay for lay in info["layers"]}
    assert all(layers[name]["nonzero"] == 0 for name in ZEROED)
    assert all(math.isfinite(lay["ratio"]) for lay in info["layers"])
    restored = slimkit.load_compressed(tmp_path / "m.slim")
    assert torch.count_nonzero(restored[0].bias) == 0 and torch.count_nonzero(restored[7].weight) == 0
