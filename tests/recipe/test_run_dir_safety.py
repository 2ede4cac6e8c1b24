"""Run folders stay inside their root, and ``--overwrite`` only ever empties a folder slimkit created."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from slimkit.cli import main
from slimkit.core.errors import ConfigError
from slimkit.recipe import load_recipe, parse_recipe, run_recipe
from slimkit.recipe.run_dir import RUN_MARKER

SYNTHETIC = {"name": "synthetic", "options": {"num_samples": 64, "in_channels": 1, "num_classes": 4, "image_size": 28}}


def _raw(name: str = "t") -> dict:
    return {"name": name, "model": {"name": "lenet5"}, "data": SYNTHETIC, "stages": [{"type": "evaluate"}],
            "report": {"latency": False}}


def _recipe_file(folder: Path, name: str = "t") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "r.yaml"
    path.write_text(yaml.safe_dump(_raw(name)))
    return path


def _quiet(*_: object) -> None:
    return None


def _assert_done(run_dir: Path) -> None:
    assert json.loads((run_dir / "manifest.json").read_text())["status"] == "done"
    marker = json.loads((run_dir / RUN_MARKER).read_text())
    assert marker["created_by"] == "slimkit" and marker["version"]


@pytest.mark.parametrize("name", ["../x", "/tmp/x", "a/b", "a\\b", "..", ".", "x/../..", "a..b", "", "C:x"])
def test_unsafe_names_are_refused_at_load(tmp_path, name):
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(_raw(name)))
    with pytest.raises(ConfigError, match=r"^name: "):
        load_recipe(path)
    with pytest.raises(ConfigError, match=r"^name: "):  # an override is validated the same way
        load_recipe(_recipe_file(tmp_path / "ok"), overrides=[f"name={name}"] if name else ["name=''"])


def test_safe_names_load_and_the_file_name_is_checked_too(tmp_path):
    assert parse_recipe(_raw("resnet18_cifar-v2.1")).name == "resnet18_cifar-v2.1"
    raw = _raw()
    del raw["name"]
    assert parse_recipe(raw, source=str(tmp_path / "quick.yaml")).name == "quick"
    with pytest.raises(ConfigError, match=r"^name \(from the file name"):
        parse_recipe(raw, source=str(tmp_path / "a..b.yaml"))


@pytest.mark.cli
def test_cli_default_run_dir_is_runs_name_and_marked(tmp_path, monkeypatch, capsys):
    recipe = _recipe_file(tmp_path / "recipes", "quick")
    monkeypatch.chdir(tmp_path)
    assert main(["compress", str(recipe)]) == 0
    assert "run folder: runs/quick" in capsys.readouterr().out
    _assert_done(tmp_path / "runs" / "quick")


@pytest.mark.cli
@pytest.mark.parametrize("run_dir", [".", "..", "./", "../work"])
def test_cli_overwrite_never_empties_the_cwd_or_a_parent(tmp_path, monkeypatch, capsys, run_dir):
    recipe = _recipe_file(tmp_path / "recipes")
    work = tmp_path / "work"
    work.mkdir()
    (work / "sentinel.txt").write_text("mine")
    (work / RUN_MARKER).write_text(json.dumps({"created_by": "slimkit"}))  # even a marker does not make it fair game
    monkeypatch.chdir(work)
    assert main(["compress", str(recipe), "--run-dir", run_dir, "--overwrite"]) == 2
    err = capsys.readouterr().err
    assert "--overwrite will not empty" in err and "current directory" in err
    assert (work / "sentinel.txt").read_text() == "mine"
    assert (tmp_path / "recipes" / "r.yaml").is_file()


@pytest.mark.cli
def test_cli_overwrite_refuses_a_folder_slimkit_did_not_create(tmp_path, monkeypatch, capsys):
    recipe = _recipe_file(tmp_path / "recipes")
    mine = tmp_path / "photos"
    (mine / "2024").mkdir(parents=True)
    (mine / "2024" / "a.jpg").write_bytes(b"\xff\xd8")
    (mine / "notes.txt").write_text("keep")
    monkeypatch.chdir(tmp_path)
    assert main(["compress", str(recipe), "--run-dir", "photos", "--overwrite"]) == 2
    err = capsys.readouterr().err
    assert "photos" in err and RUN_MARKER in err and "another --run-dir" in err
    assert (mine / "notes.txt").read_text() == "keep" and (mine / "2024" / "a.jpg").is_file()
    assert not (mine / RUN_MARKER).exists() and not (mine / "manifest.json").exists()


def test_overwrite_refuses_unmarked_folder_and_non_folder(tmp_path):
    recipe = parse_recipe(_raw())
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "manifest.json").write_text("{}")  # looks like a run, but slimkit did not mark it
    with pytest.raises(ConfigError, match="only empties run folders slimkit created"):
        run_recipe(recipe, tmp_path / "old", overwrite=True, echo=_quiet)
    assert (tmp_path / "old" / "manifest.json").read_text() == "{}"
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="not a folder"):
        run_recipe(recipe, tmp_path / "file", overwrite=True, echo=_quiet)
    assert (tmp_path / "file").read_text() == "x"


@pytest.mark.cli
def test_overwrite_empties_a_folder_slimkit_created(tmp_path, monkeypatch):
    recipe = _recipe_file(tmp_path / "recipes")
    monkeypatch.chdir(tmp_path)
    assert main(["compress", str(recipe), "--run-dir", "runs/a"]) == 0
    run_dir = tmp_path / "runs" / "a"
    _assert_done(run_dir)
    (run_dir / "stale.txt").write_text("from the last run")
    (run_dir / "00-stale").mkdir()
    assert main(["compress", str(recipe), "--run-dir", "runs/a"]) == 2  # not empty, no --overwrite
    assert (run_dir / "stale.txt").is_file()
    assert main(["compress", str(recipe), "--run-dir", "runs/a", "--overwrite"]) == 0
    assert not (run_dir / "stale.txt").exists() and not (run_dir / "00-stale").exists()
    _assert_done(run_dir)


def test_overwrite_keeps_a_linked_run_folder_a_link(tmp_path):
    recipe = parse_recipe(_raw())
    target = tmp_path / "big_disk" / "run"
    run_recipe(recipe, target, echo=_quiet)
    link = tmp_path / "run"
    link.symlink_to(target, target_is_directory=True)
    (target / "stale.txt").write_text("x")
    run_recipe(recipe, link, overwrite=True, echo=_quiet)
    assert link.is_symlink() and not (target / "stale.txt").exists()
    _assert_done(target)


@pytest.mark.parametrize("where", [".", "configs", "configs/deeper"])
def test_overwrite_never_deletes_the_recipe_file(tmp_path, monkeypatch, where):
    monkeypatch.chdir(tmp_path)
    run_dir = tmp_path / "run"
    run_recipe(parse_recipe(_raw()), run_dir, echo=_quiet)  # slimkit created (and marked) it
    recipe_path = _recipe_file(run_dir / where)
    recipe = load_recipe(recipe_path)
    with pytest.raises(ConfigError, match="contains the recipe file"):
        run_recipe(recipe, run_dir, overwrite=True, echo=_quiet)  # recipe.source is the default recipe_path
    with pytest.raises(ConfigError, match="contains the recipe file"):
        run_recipe(parse_recipe(_raw()), "run", overwrite=True, echo=_quiet, recipe_path=recipe_path)
    assert recipe_path.is_file() and (run_dir / "manifest.json").is_file()
    assert main(["compress", str(recipe_path), "--run-dir", "run", "--overwrite"]) == 2
    assert recipe_path.is_file()


def test_overwrite_never_empties_home(tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    (home / ".bashrc").write_text("keep")
    (home / RUN_MARKER).write_text(json.dumps({"created_by": "slimkit"}))
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="home folder"):
        run_recipe(parse_recipe(_raw()), home, overwrite=True, echo=_quiet)
    assert (home / ".bashrc").read_text() == "keep"


def test_a_folder_holding_only_the_marker_counts_as_empty(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / RUN_MARKER).write_text(json.dumps({"created_by": "slimkit"}))  # e.g. a run whose data failed to load
    run_recipe(parse_recipe(_raw()), run_dir, echo=_quiet)
    _assert_done(run_dir)


@pytest.mark.parametrize(
    "content",
    [b"{not json", b"\xff\xfe\x00garbage", b"[1, 2, 3]", b'{"fingerprint": "x"}', b""],
    ids=["truncated", "binary", "list", "no-stages", "empty"],
)
def test_resume_with_a_broken_manifest_names_the_file(tmp_path, capsys, content):
    recipe_path = _recipe_file(tmp_path / "recipes")
    run_dir = tmp_path / "run"
    run_recipe(load_recipe(recipe_path), run_dir, echo=_quiet)
    (run_dir / "manifest.json").write_bytes(content)
    with pytest.raises(ConfigError, match=r"manifest\.json: cannot resume"):
        run_recipe(load_recipe(recipe_path), run_dir, resume=True, echo=_quiet)
    assert main(["compress", str(recipe_path), "--run-dir", str(run_dir), "--resume"]) == 2
    err = capsys.readouterr().err
    assert str(run_dir / "manifest.json") in err and "Traceback" not in err


def test_non_zero_rank_with_run_dir_dot(tmp_path, monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("RANK", "1")
    result = run_recipe(parse_recipe(_raw()), ".", echo=_quiet)
    assert result.run_dir == tmp_path / "work.rank1"
    _assert_done(tmp_path / "work.rank1")
    assert list(work.iterdir()) == []
