"""Files an attacker wrote: each is refused with a clear error, and nothing named in it runs.

(Memory bombs in the container are in tests/codec/test_attacks.py; run-folder escapes in
tests/recipe/test_run_dir_safety.py.)
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import slimkit
from slimkit.cli import main
from slimkit.codec.api import write_model
from slimkit.state.file import MODEL_FORMAT, SLIM_FORMAT

SRC = Path(slimkit.__file__).parent


def _evil_file(path: Path, fmt: str, spec: dict, structure: list | None = None) -> Path:
    """A well-formed file (correct checksum) whose header names ``spec`` as its architecture."""
    model = slimkit.create_model("lenet5", in_channels=1, num_classes=10)
    header = {"format": fmt, "spec": spec, "structure": structure or [], "metadata": {}}
    items = [(k, v, None) for k, v in model.state_dict().items()]
    write_model(path, header, items, layout="dense" if fmt == MODEL_FORMAT else "auto", huffman=fmt == SLIM_FORMAT)
    return path


def _system_spec(marker: Path) -> dict:
    return {"name": "os:system", "kwargs": {"command": f"touch {marker}"}}


@pytest.mark.parametrize("fmt, suffix", [(MODEL_FORMAT, ".pt"), (SLIM_FORMAT, ".slim")])
def test_factory_named_in_a_file_is_never_imported(tmp_path, fmt, suffix) -> None:
    marker = tmp_path / "PWNED"
    path = _evil_file(tmp_path / f"evil{suffix}", fmt, _system_spec(marker))
    for load in (slimkit.load_model, slimkit.load_compressed):
        with pytest.raises(slimkit.CheckpointError, match=r"'os:system'.*never imports code named in a file"):
            load(path)
    assert not marker.exists()


@pytest.mark.cli
@pytest.mark.parametrize("argv", [
    ["eval", "{f}"], ["export", "{f}", "--out", "{d}/m.onnx"], ["prune", "{f}", "--out", "{d}/p.pt"],
    ["pack", "{f}", "{d}/m.slim"], ["profile", "{f}"], ["unpack", "{f}", "{d}/u.pt"],
    ["quantize", "{f}"], ["prune-weights", "{f}", "--out", "{d}/w.pt"], ["decompose", "{f}", "--out", "{d}/d.pt"],
])
def test_cli_commands_refuse_the_spec_and_run_nothing(tmp_path, argv, capsys) -> None:
    marker = tmp_path / "PWNED"
    path = _evil_file(tmp_path / "evil.slim", SLIM_FORMAT, _system_spec(marker))
    args = [a.format(f=path, d=tmp_path) for a in argv]
    code = main(args)
    err = capsys.readouterr().err
    assert code != 0 and not marker.exists()
    assert "os:system" in err and "Traceback" not in err


def test_legacy_torch_file_with_the_spec_is_refused(tmp_path) -> None:
    marker = tmp_path / "PWNED"
    payload = {"format": "slimkit.model/1", "spec": _system_spec(marker), "metadata": {},
               "state_dict": slimkit.create_model("lenet5", in_channels=1, num_classes=10).state_dict()}
    torch.save(payload, tmp_path / "old.pt")
    with pytest.raises(slimkit.CheckpointError, match="never imports"):
        slimkit.load_model(tmp_path / "old.pt")
    assert not marker.exists()


class _Boom:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):  # what an attacker's pickle does on load
        return (os.system, (f"touch {self.marker}",))


def test_pickled_snapshot_with_matching_manifest_runs_nothing(tmp_path, monkeypatch, capsys) -> None:
    """A run folder handed over with a malicious model.pt whose SHA-256 the manifest records."""
    from slimkit.recipe import load_recipe
    from slimkit.recipe.snapshot import file_sha256

    marker = tmp_path / "PWNED"
    recipe_path = tmp_path / "r.yaml"
    recipe_path.write_text(
        "name: r\nmodel: {name: lenet5}\ndata: {name: synthetic, options: {num_samples: 32, num_test: 16}}\n"
        "stages:\n  - {type: profile}\n  - {type: profile, name: again}\n"
    )
    recipe = load_recipe(recipe_path)
    run = tmp_path / "runs" / "r"
    (run / "00-profile").mkdir(parents=True)
    torch.save({"model": _Boom(str(marker))}, run / "00-profile" / "model.pt")
    digest = file_sha256(run / "00-profile" / "model.pt")
    manifest = {"recipe": "r", "fingerprint": recipe.fingerprint(), "status": "running",
                "initial": {"file": "00-profile/model.pt", "sha256": digest}, "reference": None,
                "stages": [{"name": "profile", "type": "profile", "status": "done", "file": "00-profile/model.pt",
                            "sha256": digest, "metrics": {}},
                           {"name": "again", "type": "profile", "status": "pending"}]}
    (run / "manifest.json").write_text(json.dumps(manifest))
    (run / ".slimkit-run").write_text(json.dumps({"created_by": "slimkit"}))
    monkeypatch.chdir(tmp_path)
    code = main(["compress", str(recipe_path), "--run-dir", str(run), "--resume"])
    err = capsys.readouterr().err
    assert code != 0 and not marker.exists()
    assert "model.pt" in err and "Traceback" not in err


def test_unknown_structure_kind_and_quantizer_are_refused(tmp_path) -> None:
    path = _evil_file(tmp_path / "a.pt", MODEL_FORMAT, {"name": "lenet5", "kwargs": {"in_channels": 1}},
                      [{"kind": "os:system", "fqn": "conv1"}])
    with pytest.raises(slimkit.CheckpointError, match=r"structure\[0\]: unknown kind 'os:system'"):
        slimkit.load_model(path)
    path = _evil_file(tmp_path / "b.pt", MODEL_FORMAT, {"name": "lenet5", "kwargs": {"in_channels": 1}},
                      [{"kind": "quant_layer", "fqn": "features.0", "weight_quant": {"type": "os:system"}}])
    with pytest.raises(slimkit.CheckpointError, match="unknown quantizer"):
        slimkit.load_model(path)


def test_huge_architecture_request_is_refused_before_building(tmp_path) -> None:
    """``width: 100000`` would ask for ~94 GB; it is sized on the meta device and refused."""
    path = _evil_file(tmp_path / "w.pt", MODEL_FORMAT,
                      {"name": "lenet5", "kwargs": {"in_channels": 1, "num_classes": 10, "width": 100000}})
    script = (
        "import resource, slimkit\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        f"try:\n    slimkit.load_model({str(path)!r})\nexcept slimkit.CheckpointError as e:\n    print('refused', e)\n"
        "print('delta_kib', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(SRC.parent)}).stdout
    assert "refused" in out and "needs" in out and "SLIMKIT_MAX_LOAD_BYTES" in out
    delta_kib = int(out.rsplit("delta_kib", 1)[1].strip())
    assert delta_kib < 200 * 1024
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss > 0


def test_no_unpickling_anywhere_in_the_package() -> None:
    offenders = [str(p.relative_to(SRC)) for p in SRC.rglob("*.py")
                 if "weights_only=False" in p.read_text() or "pickle.load" in p.read_text()]
    assert offenders == []


def test_damaged_model_file_is_refused(tmp_path) -> None:
    model = slimkit.create_model("lenet5", in_channels=1, num_classes=10)
    path = slimkit.save_model(model, tmp_path / "m.pt")
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01  # one flipped bit in the weights
    path.write_bytes(bytes(data))
    with pytest.raises(slimkit.FormatError, match="checksum"):
        slimkit.load_model(path)


def test_wrong_shapes_are_caught_by_the_recorded_signature(tmp_path) -> None:
    model = slimkit.create_model("lenet5", in_channels=1, num_classes=10)
    x = torch.randn(1, 1, 28, 28)
    path = slimkit.save_model(model, tmp_path / "m.pt", example_inputs=x)
    header, tensors, _ = slimkit.state.read_model_file(path)
    name = next(k for k, v in tensors.items() if v.dim() == 4)
    tensors[name] = tensors[name][:3].clone()  # a conv that lost filters its neighbours still expect
    write_model(tmp_path / "bad.pt", {k: v for k, v in header.items() if k != "tensors"},
                [(k, v, None) for k, v in tensors.items()], layout="dense", huffman=False)
    with pytest.raises(slimkit.CheckpointError, match="fails on inputs of the recorded shapes|output shapes"):
        slimkit.load_model(tmp_path / "bad.pt")
