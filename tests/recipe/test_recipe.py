"""Recipes: validation names the bad field before any work; runs write a run folder; interrupted runs resume."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
import torch
import yaml

from slimkit.core.errors import ConfigError, DataError
from slimkit.recipe import load_recipe, parse_recipe, register_stage, run_recipe
from slimkit.recipe._registry import STAGES, load_stages

SYNTHETIC = {"name": "synthetic", "options": {"num_samples": 256, "in_channels": 1, "num_classes": 4,
                                               "image_size": 28}}


def _recipe(stages, **extra):
    raw = {"name": "t", "model": {"name": "lenet5"}, "data": SYNTHETIC, "stages": stages,
           "report": {"latency_repeats": 3}}
    raw.update(extra)
    return raw


@pytest.mark.parametrize(
    "stages, fragment",
    [
        ([{"type": "trian"}], r"stages\[0\].type: unknown stage 'trian'"),
        ([{"type": "train", "epochs": "three"}], r"stages\[0\] \(train\).epochs"),
        ([{"type": "evaluate"}, {"type": "train", "lrr": 0.1}], r"stages\[1\] \(train\).lrr: unknown option"),
        ([], r"stages: expected a non-empty list"),
        *[([{"type": "train"}, {"type": kind, "importance": "foo"}],
           rf"stages\[1\] \({kind}\).importance: unknown importance 'foo'; choose one of: apoz, ")
          for kind in ("prune", "progressive", "soft_filter", "sensitivity")],
    ],
)
def test_bad_recipe_names_the_field(stages, fragment):
    with pytest.raises(ConfigError, match=fragment):
        parse_recipe(_recipe(stages))


def test_bad_top_level_fields():
    with pytest.raises(ConfigError, match="modle: unknown recipe field"):
        parse_recipe({"modle": {}, "stages": [{"type": "evaluate"}]})
    with pytest.raises(ConfigError, match="model: give exactly one of"):
        parse_recipe(_recipe([{"type": "evaluate"}], model={"name": "lenet5", "file": "x.pt"}))
    with pytest.raises(ConfigError, match="data.val_fraction"):
        parse_recipe(_recipe([{"type": "evaluate"}], data={"val_fraction": "half"}))


def test_missing_dataset_fails_before_any_stage(tmp_path):
    recipe = parse_recipe(_recipe([{"type": "evaluate"}], data={"name": "fashion_mnist", "root": str(tmp_path / "none")}))
    run_dir = tmp_path / "run"
    with pytest.raises(DataError, match="none"):
        run_recipe(recipe, run_dir, echo=lambda *_: None)
    assert not list(run_dir.glob("00-*"))


def test_overrides_and_yaml_file(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(_recipe([{"type": "train", "epochs": 3}])))
    recipe = load_recipe(path, overrides=["stages.0.epochs=1", "seed=7"])
    assert recipe.stages[0].config.epochs == 1 and recipe.seed == 7
    with pytest.raises(ConfigError, match="no such recipe file"):
        load_recipe(tmp_path / "missing.yaml")


_calls = {"count": 0, "explode": False}


@dataclass(frozen=True)
class _FlakyConfig:
    pass


def _register_flaky():
    load_stages()
    if "flaky" not in STAGES:

        @register_stage("flaky", _FlakyConfig)
        def flaky(ctx, config):
            _calls["count"] += 1
            if _calls["explode"]:
                raise KeyboardInterrupt
            return {"ok": 1}


def _train_stages():
    return [{"type": "train", "epochs": 1, "lr": 0.05, "batch_size": 32, "progress": False},
            {"type": "flaky"}, {"type": "evaluate"}]


def test_run_writes_folder_and_summary(tmp_path):
    _register_flaky()
    _calls.update(count=0, explode=False)
    lines = []
    result = run_recipe(parse_recipe(_recipe(_train_stages())), tmp_path / "run", echo=lines.append)
    run_dir = tmp_path / "run"
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert [s["status"] for s in manifest["stages"]] == ["done"] * 3
    assert (run_dir / "00-train" / "model.pt").is_file() and (run_dir / "recipe.yaml").is_file()
    assert set(result.summary["before"]) >= {"accuracy", "params", "macs", "size_bytes", "latency_ms_bs1"}
    assert "accuracy" in result.table and "MACs" in result.table and "latency" in result.table
    assert result.summary["after"]["accuracy"] > result.summary["before"]["accuracy"]
    with pytest.raises(ConfigError, match="not empty"):
        run_recipe(parse_recipe(_recipe(_train_stages())), run_dir, echo=lambda *_: None)


def test_interrupted_run_resumes_from_last_finished_stage(tmp_path):
    _register_flaky()
    recipe = parse_recipe(_recipe(_train_stages()))
    _calls.update(count=0, explode=False)
    straight = run_recipe(recipe, tmp_path / "a", echo=lambda *_: None)

    _calls.update(count=0, explode=True)
    with pytest.raises(KeyboardInterrupt):
        run_recipe(recipe, tmp_path / "b", echo=lambda *_: None)
    manifest = json.loads((tmp_path / "b" / "manifest.json").read_text())
    assert [s["status"] for s in manifest["stages"]] == ["done", "pending", "pending"]
    _calls.update(explode=False)
    resumed = run_recipe(recipe, tmp_path / "b", resume=True, echo=lambda *_: None)
    assert _calls["count"] == 2  # the flaky stage ran again, the train stage did not
    for (k, v), (_, w) in zip(straight.model.state_dict().items(), resumed.model.state_dict().items()):
        assert torch.equal(v, w), k


def test_resume_refuses_a_changed_recipe_and_tampered_snapshot(tmp_path):
    _register_flaky()
    _calls.update(count=0, explode=True)
    recipe = parse_recipe(_recipe(_train_stages()))
    with pytest.raises(KeyboardInterrupt):
        run_recipe(recipe, tmp_path / "r", echo=lambda *_: None)
    changed = parse_recipe(_recipe(_train_stages(), seed=3))
    with pytest.raises(ConfigError, match="recipe changed"):
        run_recipe(changed, tmp_path / "r", resume=True, echo=lambda *_: None)
    snapshot = tmp_path / "r" / "00-train" / "model.pt"
    snapshot.write_bytes(snapshot.read_bytes() + b"x")
    from slimkit.core.errors import CheckpointError

    with pytest.raises(CheckpointError, match="checksum differs"):
        run_recipe(recipe, tmp_path / "r", resume=True, echo=lambda *_: None)


def test_shipped_recipes_validate():
    from pathlib import Path

    recipes = sorted((Path(__file__).parents[2] / "recipes").glob("*.yaml"))
    assert recipes, "no recipes shipped"
    for path in recipes:
        recipe = load_recipe(path)
        assert recipe.stages and recipe.name


def test_docs_list_every_stage_type():
    from pathlib import Path

    text = (Path(__file__).parents[2] / "docs" / "recipes.md").read_text()
    registry = load_stages()
    for name in registry.names():
        if not registry.get(name).run.__module__.startswith("slimkit."):
            continue  # registered by a test
        assert f"\n{name}" in text, f"docs/recipes.md lacks stage {name!r} (regenerate with `slimkit stages`)"


def test_non_zero_rank_keeps_its_files_apart_and_quiet(tmp_path, monkeypatch):
    monkeypatch.setenv("RANK", "1")
    lines = []
    result = run_recipe(parse_recipe(_recipe([{"type": "evaluate"}])), tmp_path / "run", echo=lines.append)
    assert lines == []
    assert result.run_dir == tmp_path / "run.rank1"
    assert (tmp_path / "run.rank1" / "manifest.json").is_file()
    assert not (tmp_path / "run" / "manifest.json").exists()
