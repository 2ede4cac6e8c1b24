"""Flags generated from config dataclasses: every field is a flag, the flags parse back to the same config."""

from __future__ import annotations

import argparse
import dataclasses
import enum
from dataclasses import dataclass, field
from typing import Literal

import pytest

from slimkit.cli import build_parser, main
from slimkit.cli.from_config import add_config_arguments, config_from_args, field_docs, flag_fields
from slimkit.core.errors import ConfigError
from slimkit.prune.config import PruneConfig
from slimkit.prune.importance import CRITERIA

pytestmark = pytest.mark.cli


class Color(str, enum.Enum):
    RED = "red"
    BLUE = "blue"


@dataclass(frozen=True)
class Inner:
    """A nested config.

    Attributes:
        bits: bits per value.
    """

    bits: int = 8

    def __post_init__(self) -> None:
        if not 1 <= self.bits <= 8:
            raise ValueError(f"bits must be in [1, 8], got {self.bits}")


@dataclass(frozen=True)
class Toy:
    """A config with one field of each kind.

    Attributes:
        rate: a float with a ``reST`` mark and 100% of a percent sign.
        size / count: two fields described at once.
        on: a switch that is on.
    """

    rate: float = 0.5
    size: int = 1
    count: int | None = None
    on: bool = True
    color: Color = Color.RED
    mode: Literal["a", "b"] = "a"
    step: int | Literal["auto"] | None = None
    names: tuple[str, ...] = ()
    sizes: tuple[int, ...] = ()
    shape: tuple[int, int] = (2, 3)
    weights: dict[str, float] = field(default_factory=dict)
    inner: Inner = field(default_factory=Inner)
    fn: object = None  # no flag: not a command-line type

    def __post_init__(self) -> None:
        if self.rate < 0:
            raise ValueError(f"rate must be >= 0, got {self.rate}")


def _parse(argv: list[str], cls: type = Toy) -> object:
    parser = argparse.ArgumentParser()
    add_config_arguments(parser, cls)
    return config_from_args(cls, parser.parse_args(argv))


def test_no_flags_give_the_defaults() -> None:
    assert _parse([]) == Toy()
    assert _parse([], PruneConfig) == PruneConfig()


def test_every_kind_of_field_round_trips() -> None:
    config = _parse(["--rate", "0.25", "--size", "4", "--count", "7", "--no-on", "--color", "blue", "--mode", "b",
                     "--step", "auto", "--names", "x.*", "--names", "y", "--sizes", "1,2", "--sizes", "3",
                     "--shape", "4", "5", "--weights", "a.b=0.5", "--weights", "c=1", "--inner.bits", "4"])
    assert config == Toy(rate=0.25, size=4, count=7, on=False, color=Color.BLUE, mode="b", step="auto",
                         names=("x.*", "y"), sizes=(1, 2, 3), shape=(4, 5), weights={"a.b": 0.5, "c": 1.0},
                         inner=Inner(bits=4))
    assert _parse(["--step", "16", "--count", "none"]) == Toy(step=16, count=None)


def test_flags_cover_every_field_that_a_command_line_can_spell() -> None:
    flags = flag_fields(Toy)
    assert "--inner.bits" in flags and flags["--inner.bits"] == ("inner", "bits")
    assert {path[0] for path in flags.values()} == {f.name for f in dataclasses.fields(Toy)} - {"fn"}
    parser = argparse.ArgumentParser()
    add_config_arguments(parser, Toy)
    spelled = {s for a in parser._actions for s in a.option_strings}
    assert spelled - {"-h", "--help"} == set(flags) | {"--no-on"}  # an object field (fn) gets no flag


def test_bad_values_name_the_flag() -> None:
    with pytest.raises(ConfigError, match=r"^--rate: rate must be >= 0, got -1.0"):
        _parse(["--rate", "-1"])
    with pytest.raises(ConfigError, match=r"^--inner.bits: .*bits must be in \[1, 8\], got 9"):
        _parse(["--inner.bits", "9"])
    with pytest.raises(SystemExit):
        _parse(["--step", "fast"])  # neither a whole number nor 'auto'


def test_help_comes_from_the_docstring_without_markup() -> None:
    docs = field_docs(Toy)
    assert docs["size"] == docs["count"] == "two fields described at once."
    parser = argparse.ArgumentParser()
    add_config_arguments(parser, Toy)
    text = parser.format_help()
    assert "a float with a reST mark and 100% of a percent sign. (default: 0.5)" in " ".join(text.split())
    assert "``" not in text


def test_subclass_inherits_the_field_docs() -> None:
    from slimkit.recipe.stages.prune import PruneStageConfig

    docs = field_docs(PruneStageConfig)
    assert docs["ratio"] == field_docs(PruneConfig)["ratio"] and "calibration_batches" in docs


def _subcommand(name: str) -> argparse.ArgumentParser:
    commands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return commands.choices[name]


def test_prune_exposes_every_prune_config_field_with_registry_choices() -> None:
    sub = _subcommand("prune")
    by_flag = {s: a for a in sub._actions for s in a.option_strings}
    for f in dataclasses.fields(PruneConfig):
        if f.name == "budget":  # set by its shorthands --ratio, --target-macs, --macs-reduction, ...
            assert "--budget" not in by_flag and "--params-reduction" in by_flag
            continue
        assert "--" + f.name.replace("_", "-") in by_flag, f.name
    assert by_flag["--importance"].metavar == "{" + ",".join(CRITERIA.names()) + "}"
    assert by_flag["--scope"].metavar == "{local,global}"


def test_prune_flags_reach_the_plan(tmp_path, capsys) -> None:
    import json

    from slimkit.models import create_model
    from slimkit.state import load_model, save_model

    save_model(create_model("lenet5"), tmp_path / "m.pt")
    out = tmp_path / "p.pt"
    code = main(["prune", str(tmp_path / "m.pt"), "--out", str(out), "--ratio", "0.5", "--scope", "local",
                 "--ratios", "features.0=0.25", "--ignore", "classifier.*", "--min-channels", "4", "--json"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    groups = {g["name"]: g for g in report["groups"]}
    assert groups["features.0"]["channels_before"] == 20 and groups["features.0"]["channels_after"] == 15
    assert load_model(out)(__import__("torch").randn(1, 1, 28, 28)).shape == (1, 10)


def test_prune_bad_value_is_one_line_before_loading(tmp_path, capsys) -> None:
    code = main(["prune", str(tmp_path / "missing.pt"), "--out", str(tmp_path / "p.pt"), "--max-group-ratio", "2"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err == "slimkit prune: error: --max-group-ratio: max_group_ratio must be in [0, 1], got 2.0"


def _config_commands() -> list[tuple[str, type, set[str]]]:
    from slimkit.lowrank.api import DecomposeConfig
    from slimkit.prune.methods.sensitivity import SensitivityConfig
    from slimkit.prune.methods.slimming import SlimmingConfig
    from slimkit.prune.unstructured.magnitude import WeightPruneConfig
    from slimkit.recipe.stages.quantize import QuantizeStageConfig
    from slimkit.train.config import TrainConfig

    return [("prune", PruneConfig, set()), ("prune-weights", WeightPruneConfig, set()),
            ("decompose", DecomposeConfig, set()), ("quantize", QuantizeStageConfig, {"mode", "learn_step", "onnx_int8"}),
            ("train", TrainConfig, {"distill_alpha", "distill_temperature"}),
            ("slim", SlimmingConfig, {"sparsity_train", "finetune"}),  # built from --sparsity-epochs, --lr...
            ("sensitivity", SensitivityConfig, set())]


@pytest.mark.parametrize("command, cls, excluded", _config_commands(), ids=lambda v: v if isinstance(v, str) else "")
def test_config_commands_expose_every_field(command, cls, excluded) -> None:
    spelled = {s for a in _subcommand(command)._actions for s in a.option_strings}
    missing = [f.name for f in dataclasses.fields(cls) if f.name not in excluded and f.metadata.get("flag") is not False
               and "--" + f.name.replace("_", "-") not in spelled]
    assert not missing, f"slimkit {command} lacks flags for {missing}"


def test_train_keeps_its_quick_default_and_takes_every_option(monkeypatch, tmp_path) -> None:
    seen = {}
    monkeypatch.setattr("slimkit.train.fit", lambda model, data, config, **kw: seen.setdefault("config", config))
    code = main(["train", "lenet5", "--data", "synthetic", "--subset", "16", "--out", str(tmp_path / "m.pt"),
                 "--schedule", "step", "--step-size", "2", "--label-smoothing", "0.1", "--no-progress"])
    config = seen["config"]
    assert code == 0 and config.epochs == 3 and config.schedule == "step" and config.step_size == 2
    assert config.label_smoothing == 0.1 and config.progress is False


def test_unknown_names_are_one_line_config_errors(tmp_path, capsys) -> None:
    out = str(tmp_path / "p.pt")
    assert main(["prune", str(tmp_path / "missing.pt"), "--out", out, "--importance", "foo"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("slimkit prune: error: --importance: unknown importance 'foo'; choose one of: apoz,")
    assert main(["prune", str(tmp_path / "missing.pt"), "--out", out, "--scope", "nowhere"]) == 2
    assert capsys.readouterr().err.strip().startswith("slimkit prune: error: --scope: ")
    assert _parse(["--color", "blue"]).color is Color.BLUE


def _prune_config(argv: list[str]) -> PruneConfig:
    return config_from_args(PruneConfig, build_parser().parse_args(["prune", "m.pt", "--out", "o.pt", *argv]))


def test_criterion_options_are_flags_read_with_the_criterion_field_types() -> None:
    from slimkit.prune.criteria.apoz import APoZ
    from slimkit.prune.criteria.taylor import Taylor

    assert _prune_config(["--importance", "taylor", "--importance-opt", "batches=8"]).importance == Taylor(batches=8)
    assert _prune_config(["--importance-opt", "batches=2", "--importance", "apoz"]).importance == APoZ(batches=2)
    assert _prune_config(["--importance", "taylor"]).importance == "taylor"  # no options: the name, as before
    help_text = _subcommand("prune").format_help()
    assert "--importance-opt KEY=VALUE" in help_text and "taylor: batches" in " ".join(help_text.split())


@pytest.mark.parametrize("argv, message", [
    (["--importance", "taylor", "--importance-opt", "batchez=2"],
     "--importance-opt: taylor has no option 'batchez'; its options: batches"),
    (["--importance", "taylor", "--importance-opt", "batches=x"],
     "--importance-opt: batches: expected a whole number or 'none', got 'x'"),
    (["--importance", "taylor", "--importance-opt", "batches=0"],
     "--importance-opt: taylor: batches must be a whole number >= 1, got 0"),
    (["--importance", "taylor", "--importance-opt", "batches=2", "--importance-opt", "batches=3"],
     "--importance-opt: batches is given twice"),
    (["--importance-opt", "batches=2"], "--importance-opt: l1 has no option 'batches'; it takes none"),
])
def test_bad_criterion_options_name_the_flag(argv, message) -> None:
    with pytest.raises(ConfigError) as err:
        _prune_config(argv)
    assert str(err.value) == message


def test_prune_runs_a_data_criterion_with_its_options(tmp_path, capsys, monkeypatch) -> None:
    """``--importance taylor --importance-opt batches=2 --data ...``: the criterion gets exactly 2 batches."""
    from slimkit.models import create_model
    from slimkit.prune.criteria import taylor
    from slimkit.state import save_model

    seen = []
    real = taylor._taylor
    monkeypatch.setattr(taylor, "_taylor", lambda graph, ctx: seen.append(len(list(ctx.data))) or real(graph, ctx))
    save_model(create_model("lenet5"), tmp_path / "m.pt")
    argv = ["prune", str(tmp_path / "m.pt"), "--out", str(tmp_path / "p.pt"), "--ratio", "0.3"]
    assert main([*argv, "--importance", "taylor"]) == 2
    assert capsys.readouterr().err.strip() == ("slimkit prune: error: --importance taylor reads training batches: "
                                               "give --data DATASET (e.g. --data fashion_mnist)")
    assert main([*argv, "--importance", "taylor", "--importance-opt", "batches=2", "--data", "synthetic",
                 "--subset", "200"]) == 0
    assert seen == [2] and (tmp_path / "p.pt").is_file()


def test_criterion_option_without_a_value_is_an_argparse_error(capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["prune", "m.pt", "--out", "o.pt", "--importance-opt", "batches"])
    err = capsys.readouterr().err.strip()
    assert exit_.value.code == 2 and len(err.splitlines()) == 1
    assert "argument --importance-opt: expected KEY=VALUE, got 'batches'" in err


def test_sensitivity_command_and_stage_take_one_config() -> None:
    from slimkit.core.config import parse_config
    from slimkit.prune.methods.sensitivity import SensitivityConfig
    from slimkit.recipe import load_stages

    assert load_stages().get("sensitivity").config_cls is SensitivityConfig
    args = build_parser().parse_args(["sensitivity", "m.pt", "--out-dir", "d", "--ratios", "0.2,0.4",
                                      "--ratios", "0.6", "--importance", "l2", "--max-drop", "0.01"])
    assert config_from_args(SensitivityConfig, args) == parse_config(
        SensitivityConfig, {"ratios": [0.2, 0.4, 0.6], "importance": "l2", "max_drop": 0.01})
    quick = config_from_args(SensitivityConfig, build_parser().parse_args(["sensitivity", "m.pt", "--out-dir", "d"]))
    assert quick.ratios == (0.1, 0.3, 0.5, 0.7, 0.9) and quick.importance == "l1"  # the command's shorter sweep


def test_prune_apoz_meets_a_per_sample_macs_target(tmp_path, capsys) -> None:
    """``apoz`` traces on a real batch of 64; ``--target-macs`` still means MACs of one sample (it meant 64)."""
    import json

    import torch

    import slimkit
    from slimkit.models import create_model
    from slimkit.state import load_model, save_model

    save_model(create_model("lenet5"), tmp_path / "m.pt")
    argv = ["prune", str(tmp_path / "m.pt"), "--out", str(tmp_path / "p.pt"), "--json"]
    assert main([*argv, "--dry-run"]) == 0  # l1, traced on one sample: the reference count
    dense = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["macs_before"]
    target = dense // 2
    assert main([*argv, "--importance", "apoz", "--data", "synthetic", "--subset", "200",
                 "--target-macs", str(target)]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["macs_before"] == dense and 0.8 * target <= report["macs_after"] <= target
    x = torch.randn(1, 1, 28, 28)  # the saved model agrees: about 2x fewer MACs per sample, not 128x
    ratio = slimkit.profile(create_model("lenet5"), (x,)).macs / slimkit.profile(load_model(tmp_path / "p.pt"), (x,)).macs
    assert 1.8 < ratio < 2.5
