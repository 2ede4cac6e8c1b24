"""A new user's mistakes: each is one line naming the field or file, exit status 2, no traceback, nothing lost.

Every case runs ``slimkit.cli.main(argv)`` in-process in a folder holding a small recipe, a saved model, an empty
model file and an earlier output; after the failing command every file there is byte-for-byte what it was and no
file was added (no run folder, no half-written output).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from slimkit.cli import build_parser, main

pytestmark = pytest.mark.cli

DATA = {"name": "synthetic", "options": {"num_samples": 32, "num_test": 16}}
PREVIOUS = b"an earlier output that a failing command must leave alone"


def _recipe(stages: list[dict] | None = None, **fields: object) -> dict:
    raw = {"name": "t", "model": {"name": "lenet5"}, "data": DATA, "report": {"latency": False},
           "stages": stages or [{"type": "evaluate"}]}
    raw.update(fields)
    return raw


@dataclass
class Case:
    argv: list[str]
    names: tuple[str, ...]  # what the message must name (field, flag, file)
    recipe: dict = field(default_factory=_recipe)
    setup: Callable[[Path], None] | None = None


def _write_model(path: Path) -> None:
    from slimkit.models import create_model
    from slimkit.state import save_model

    save_model(create_model("lenet5"), path)


def _rgb_model(path: Path) -> None:
    from slimkit.models import create_model
    from slimkit.state import save_model

    save_model(create_model("lenet5", in_channels=3), path / "rgb.pt")


def _finished_run(path: Path) -> None:
    """A finished run of ``r.yaml`` in ``run/`` (evaluate, then prune at ratio 0.5)."""
    from slimkit.recipe import load_recipe, run_recipe

    run_recipe(load_recipe(path / "r.yaml"), path / "run", echo=lambda *_: None)


def _read_only(path: Path) -> None:
    """``ro/``: a folder nobody may create files in (for root, who ignores modes: a link to sysfs)."""
    ro = path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        (ro / "probe").touch()
    except OSError:
        return
    (ro / "probe").unlink()
    ro.rmdir()
    try:
        (Path("/sys") / "slimkit-probe").touch()
    except OSError:
        ro.symlink_to("/sys", target_is_directory=True)
        return
    pytest.skip("no folder here refuses new files to this user")


def _corrupt_manifest(path: Path) -> None:
    _finished_run(path)
    (path / "run" / "manifest.json").write_bytes(b'{"stages": [')


def _file(name: str, content: bytes) -> Callable[[Path], None]:
    return lambda path: (path / name).write_bytes(content)


PRUNE_TWICE = [{"type": "evaluate"}, {"type": "prune", "ratio": 0.5}]

CASES = {
    # compress --check: everything a run could fail on
    "zoo-name": Case(["compress", "r.yaml", "--check"], ("model.name", "lenet55"),
                     _recipe(model={"name": "lenet55"})),
    "factory-import": Case(["compress", "r.yaml", "--check"], ("model.name", "nosuchpkg"),
                           _recipe(model={"name": "nosuchpkg:f"})),
    "importance": Case(["compress", "r.yaml", "--check"], ("stages[0] (prune).importance", "foo"),
                       _recipe([{"type": "prune", "importance": "foo"}])),
    "model-kwargs": Case(["compress", "r.yaml", "--check"], ("model.kwargs", "nosuch"),
                         _recipe(model={"name": "lenet5", "kwargs": {"nosuch": 1}})),
    "model-file-missing": Case(["compress", "r.yaml", "--check"], ("model.file", "missing.pt"),
                               _recipe(model={"file": "missing.pt"})),
    "model-file-empty": Case(["compress", "r.yaml", "--check"], ("model.file", "empty.pt"),
                             _recipe(model={"file": "empty.pt"})),
    "latency-batch": Case(["compress", "r.yaml", "--check"], ("report", "latency_batch_sizes"),
                          _recipe(report={"latency_batch_sizes": [0]})),
    "ignore-name": Case(["compress", "r.yaml", "--check"], ("stages[0] (prune).ignore", "nosuchlayer"),
                        _recipe([{"type": "prune", "ignore": ["nosuchlayer"]}])),
    "epochs-string": Case(["compress", "r.yaml", "--check"], ("stages[0] (train).epochs", "'1'"),
                          _recipe([{"type": "train", "epochs": "1"}])),
    "epochs-bool": Case(["compress", "r.yaml", "--check"], ("stages[0] (train).epochs", "True"),
                        _recipe([{"type": "train", "epochs": True}])),
    "nested-train-option": Case(["compress", "r.yaml", "--check"], ("stages[0] (progressive).finetune", "lr"),
                                _recipe([{"type": "progressive", "finetune": {"lr": "fast"}}])),
    "importance-options": Case(["compress", "r.yaml", "--check"], ("stages[0] (prune).importance", "batches"),
                               _recipe([{"type": "prune", "importance": {"name": "taylor", "batches": 0}}])),
    "importance-mapping-name": Case(["compress", "r.yaml", "--check"], ("stages[0] (prune).importance", "foo"),
                                    _recipe([{"type": "prune", "importance": {"name": "foo"}}])),
    "two-budgets": Case(["compress", "r.yaml", "--check"], ("stages[0] (prune)", "budget", "macs_reduction"),
                        _recipe([{"type": "prune", "macs_reduction": 2,
                                  "budget": {"kind": "params", "value": 1000}}])),
    "budget-factor": Case(["compress", "r.yaml", "--check"], ("stages[0] (prune)", "macs_reduction", "0.5"),
                          _recipe([{"type": "prune", "macs_reduction": 0.5}])),
    # a real run checks the same before its first stage: the train stage never starts, no run folder appears
    "late-stage-importance": Case(["compress", "r.yaml"], ("stages[1] (prune).importance", "foo"),
                                  _recipe([{"type": "train", "epochs": 1, "progress": False},
                                           {"type": "prune", "importance": "foo"}])),
    "recipe-not-yaml": Case(["compress", "bad.yaml", "--check"], ("bad.yaml", "not valid YAML", "line 3"),
                            setup=_file("bad.yaml", b"name: t\nmodel: {name: lenet5\nstages: []\n")),
    "recipe-binary": Case(["compress", "bad.yaml", "--check"], ("bad.yaml",), setup=_file("bad.yaml", b"\xff\xfe\x00")),
    "set-no-stage": Case(["compress", "r.yaml", "--set", "stages.9.x=1"], ("--set", "stages", "9")),
    "set-bad-yaml": Case(["compress", "r.yaml", "--set", "x=[1"], ("--set", "x=[1")),
    "set-through-scalar": Case(["compress", "r.yaml", "--set", "name.x=1"], ("--set", "name")),
    "resume-changed": Case(["compress", "r.yaml", "--run-dir", "run", "--resume", "--set", "stages.1.ratio=0.3"],
                           ("run", "stages[1].ratio: 0.5 -> 0.3"), _recipe(PRUNE_TWICE), _finished_run),
    "overwrite-then-bad-stage": Case(["compress", "r.yaml", "--run-dir", "run", "--overwrite",
                                      "--set", "stages.1.importance=foo"],
                                     ("stages[1] (prune).importance",), _recipe(PRUNE_TWICE), _finished_run),
    "resume-corrupt-manifest": Case(["compress", "r.yaml", "--run-dir", "run", "--resume"],
                                    ("manifest.json",), _recipe(PRUNE_TWICE), _corrupt_manifest),
    "run-dir-read-only": Case(["compress", "r.yaml", "--run-dir", "ro/run"], ("--run-dir", "ro"), setup=_read_only),
    "run-dir-is-file": Case(["compress", "r.yaml", "--run-dir", "previous.pt/run"], ("--run-dir", "previous.pt")),
    # commands
    "train-lr": Case(["train", "lenet5", "--data", "synthetic", "--lr", "-1", "--out", "previous.pt"], ("--lr",)),
    "train-optimizer": Case(["train", "lenet5", "--data", "synthetic", "--optimizer", "bogus",
                             "--out", "previous.pt"], ("--optimizer", "bogus")),
    "train-out-under-file": Case(["train", "lenet5", "--data", "synthetic", "--subset", "16",
                                  "--out", "previous.pt/m.pt"], ("--out", "previous.pt")),
    "train-out-read-only": Case(["train", "lenet5", "--data", "synthetic", "--subset", "16", "--out", "ro/m.pt"],
                                ("--out", "ro"), setup=_read_only),
    "train-resume-without-dir": Case(["train", "lenet5", "--data", "synthetic", "--resume", "--out", "previous.pt"],
                                     ("--resume", "--checkpoint-dir")),
    "sensitivity-ratio": Case(["sensitivity", "model.pt", "--data", "synthetic", "--ratios", "0.5,1.5",
                               "--out-dir", "sens"], ("--ratios", "1.5")),
    "profile-input-size": Case(["profile", "lenet5", "--input-size", "2"], ("--input-size", "2")),
    "prune-input-size": Case(["prune", "model.pt", "--input-size", "3", "--out", "previous.pt"], ("--input-size",)),
    "prune-out-read-only": Case(["prune", "model.pt", "--out", "ro/p.pt"], ("--out", "ro"), setup=_read_only),
    "sensitivity-out-read-only": Case(["sensitivity", "model.pt", "--data", "synthetic", "--out-dir", "ro/sens"],
                                      ("--out-dir", "ro"), setup=_read_only),
    "prune-importance": Case(["prune", "model.pt", "--importance", "foo", "--out", "previous.pt"],
                             ("--importance", "foo")),
    "prune-importance-option": Case(["prune", "model.pt", "--importance", "taylor", "--importance-opt", "batchez=2",
                                     "--data", "synthetic", "--out", "previous.pt"], ("--importance-opt", "batchez")),
    "prune-importance-option-value": Case(["prune", "model.pt", "--importance", "taylor", "--importance-opt",
                                           "batches=0", "--data", "synthetic", "--out", "previous.pt"],
                                          ("--importance-opt", "batches", "0")),
    "prune-data-criterion-without-data": Case(["prune", "model.pt", "--importance", "apoz", "--out", "previous.pt"],
                                              ("--importance apoz", "--data")),
    "prune-data-unused": Case(["prune", "model.pt", "--data", "synthetic", "--out", "previous.pt"],
                              ("--data", "--importance l1")),
    "sensitivity-data-criterion": Case(["sensitivity", "model.pt", "--data", "synthetic", "--importance", "taylor",
                                        "--out-dir", "sens"], ("--importance", "taylor")),
    "sensitivity-two-targets": Case(["sensitivity", "model.pt", "--data", "synthetic", "--max-drop", "0.01",
                                     "--macs-reduction", "2", "--out", "p.pt", "--out-dir", "sens"],
                                    ("max_drop", "macs_reduction")),
    "prune-out-under-file": Case(["prune", "model.pt", "--out", "previous.pt/p.pt"], ("--out", "previous.pt")),
    "eval-empty-file": Case(["eval", "empty.pt", "--data", "synthetic"], ("empty.pt",)),
    "eval-wrong-data": Case(["eval", "rgb.pt", "--data", "synthetic", "--subset", "16"], ("--data", "synthetic"),
                            setup=_rgb_model),
    "prune-weights-ignore": Case(["prune-weights", "model.pt", "--ignore", "nosuch", "--out", "previous.pt"],
                                 ("--ignore", "nosuch")),
    "quantize-bits": Case(["quantize", "model.pt", "--data", "synthetic", "--weight-bits", "0"], ("--weight-bits",)),
    "decompose-shape": Case(["decompose", "model.pt", "--input-shape", "3,28,28", "--out", "previous.pt"],
                            ("--input-shape", "3,28,28")),
}


def _files(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` with its bytes (links are not followed)."""
    files = {}
    for folder, _dirs, names in os.walk(root):
        for name in names:
            path = Path(folder, name)
            files[str(path.relative_to(root))] = path.read_bytes() if not path.is_symlink() else b"->"
    return files


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
def test_bad_input_is_one_line_naming_it(case, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(case.recipe))
    _write_model(tmp_path / "model.pt")
    (tmp_path / "empty.pt").write_bytes(b"")
    (tmp_path / "previous.pt").write_bytes(PREVIOUS)
    if case.setup is not None:
        case.setup(tmp_path)
    capsys.readouterr()
    before = _files(tmp_path)

    code = main(case.argv)

    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert "Traceback" not in err
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f"slimkit {case.argv[0]}: error: ")
    for name in case.names:
        assert name in err, (name, err)
    assert _files(tmp_path) == before  # nothing changed, nothing written
    assert (tmp_path / "previous.pt").read_bytes() == PREVIOUS


def test_valid_recipe_check_says_where_it_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    stages = [{"type": "prune", "ignore": ["classifier.*"], "ratios": {"features.0": 0.2}},
              {"type": "finetune", "epochs": 1, "lr": 1}]  # an integer where a float goes is fine
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(_recipe(stages)))
    assert main(["compress", "r.yaml", "--check"]) == 0
    out = capsys.readouterr().out
    assert "valid (2 stages: prune, finetune); runs in runs/t" in out
    assert not (tmp_path / "runs").exists()


def test_recipe_factory_beside_the_recipe_imports_without_pythonpath(tmp_path, monkeypatch, capsys):
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "slimkit_test_user_net.py").write_text(
        "from slimkit.models import create_model\n\n"
        "def make(in_channels=1, num_classes=10):\n"
        "    return create_model('lenet5', in_channels=in_channels, num_classes=num_classes)\n"
    )
    (folder / "r.yaml").write_text(yaml.safe_dump(_recipe(model={"name": "slimkit_test_user_net:make"})))
    work = tmp_path / "elsewhere"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.delitem(sys.modules, "slimkit_test_user_net", raising=False)
    try:
        assert main(["compress", str(folder / "r.yaml"), "--check"]) == 0, capsys.readouterr().err
    finally:
        sys.modules.pop("slimkit_test_user_net", None)
    assert sys.path[-1] == str(folder.resolve())  # appended: never shadows an installed package


def test_every_subcommand_has_help():
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    helps = {action.dest: action.help for action in commands._choices_actions}
    assert set(helps) == set(commands.choices)
    for name, sub in commands.choices.items():
        assert helps[name], name
        for action in sub._actions:
            assert action.help, f"slimkit {name} {'/'.join(action.option_strings) or action.dest}: no help"


def _interrupt(*_: object, **__: object) -> None:
    raise KeyboardInterrupt


@pytest.mark.parametrize("extra, advice", [([], "--checkpoint-dir"), (["--checkpoint-dir", "ck"], "--resume")])
def test_ctrl_c_in_train_gives_advice_train_can_follow(tmp_path, monkeypatch, capsys, extra, advice):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("slimkit.train.fit", _interrupt)
    code = main(["train", "lenet5", "--data", "synthetic", "--subset", "16", "--out", "m.pt", *extra])
    err = capsys.readouterr().err
    assert code == 130 and advice in err and "Traceback" not in err
    assert not (tmp_path / "m.pt").exists()


def test_train_checkpoint_dir_resumes_and_is_never_overwritten(tmp_path, monkeypatch, capsys):
    import torch

    from slimkit.state import load_model

    monkeypatch.chdir(tmp_path)
    argv = ["train", "lenet5", "--data", "synthetic", "--subset", "64", "--epochs", "1", "--checkpoint-dir", "ck"]
    assert main([*argv, "--out", "a.pt"]) == 0
    checkpoint = (tmp_path / "ck" / "last.pt").read_bytes()
    assert main([*argv, "--out", "b.pt"]) == 2  # a fresh run would overwrite the earlier run's checkpoint
    assert "--resume" in capsys.readouterr().err
    assert main([*argv, "--out", "b.pt", "--resume"]) == 0  # the finished run is restored, not retrained
    assert (tmp_path / "ck" / "last.pt").read_bytes() == checkpoint
    x = torch.randn(2, 1, 28, 28)
    a, b = load_model(tmp_path / "a.pt").eval(), load_model(tmp_path / "b.pt").eval()
    assert torch.equal(a(x), b(x))
    assert os.path.getsize(tmp_path / "b.pt") > 0
