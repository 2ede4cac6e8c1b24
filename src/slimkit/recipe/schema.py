"""The recipe file: what model, what data, which stages. Validated completely before any work starts.

```yaml
name: quickstart
seed: 0
model: {name: lenet5}             # zoo name, 'package.module:factory', or {file: model.pt}
data: {name: fashion_mnist}
stages:
  - {type: train, epochs: 3, lr: 0.05}
  - {type: prune, ratio: 0.5}
  - {type: finetune, epochs: 1}
```
Each stage is a mapping with ``type`` (a registered stage), an optional ``name`` (unique; default the type), and
that stage type's options. Every error names the field: ``stages[1] (prune).ratio: ...``.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path, PureWindowsPath
from typing import Any, Literal

import yaml

from slimkit.core.config import config_to_dict, parse_config
from slimkit.core.errors import ConfigError
from slimkit.recipe._registry import load_stages


@dataclass(frozen=True)
class ModelSection:
    """Either ``name`` (zoo name or ``package.module:factory``, with ``kwargs``) or ``file`` (slimkit.save_model).

    ``factory`` (``package.module:function``) builds the architecture of a ``file`` that names the user's own
    model: a recipe is the user's code and may import it, a model file never is.
    """

    name: str | None = None
    file: str | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)
    factory: str | None = None

    def __post_init__(self) -> None:
        if (self.name is None) == (self.file is None):
            raise ValueError("give exactly one of model.name (zoo or 'package.module:factory') or model.file")
        if self.factory is not None and (self.file is None or ":" not in self.factory):
            raise ValueError("model.factory ('package.module:function') goes with model.file")


@dataclass(frozen=True)
class DataSection:
    name: str = "fashion_mnist"
    root: str | None = None
    val_fraction: float = 0.1
    subset: int | None = None
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in [0, 1), got {self.val_fraction}")
        if self.subset is not None and self.subset < 1:
            raise ValueError(f"subset must be >= 1 samples per split (or null for all), got {self.subset}")


@dataclass(frozen=True)
class ReportSection:
    """What the before/after summary measures. Latency is timed alternately for both models in one process."""

    latency: bool = True
    latency_repeats: int = 30
    latency_batch_sizes: tuple[int, ...] = (1,)

    def __post_init__(self) -> None:
        if self.latency_repeats < 1:
            raise ValueError(f"latency_repeats must be >= 1, got {self.latency_repeats}")
        if not self.latency_batch_sizes:
            raise ValueError("latency_batch_sizes must name at least one batch size")
        for size in self.latency_batch_sizes:
            if size < 1:
                raise ValueError(f"latency_batch_sizes must all be >= 1, got {size}")


@dataclass(frozen=True)
class StageSpec:
    type: str
    name: str
    config: Any


@dataclass(frozen=True)
class Recipe:
    name: str
    model: ModelSection
    data: DataSection
    stages: tuple[StageSpec, ...]
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    report: ReportSection = ReportSection()
    source: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "seed": self.seed,
            "device": self.device,
            "model": config_to_dict(self.model),
            "data": config_to_dict(self.data),
            "report": config_to_dict(self.report),
            "stages": [{"type": s.type, "name": s.name, **config_to_dict(s.config)} for s in self.stages],
        }

    def fingerprint(self) -> str:
        """Hash of the resolved recipe: a resumed run must be the same recipe."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True, default=str).encode()).hexdigest()[:16]


def _check_name(value: Any, *, where: str = "name") -> str:
    """The recipe name becomes a folder under ``runs/``: one plain path component, never a way out of it."""
    if not isinstance(value, (str, int)) or isinstance(value, bool):
        raise ConfigError(f"{where}: expected a string, got {type(value).__name__}")
    name = str(value)
    if not name.strip():
        raise ConfigError(f"{where}: must not be empty")
    reason = None
    if os.path.isabs(name) or PureWindowsPath(name).drive or PureWindowsPath(name).root:
        reason = "must not be an absolute path"
    elif "/" in name or "\\" in name:
        reason = "must not contain a path separator ('/' or '\\')"
    elif ".." in name or name == ".":
        reason = "must not be '.' or contain '..'"
    elif "\0" in name:
        reason = "must not contain a NUL character"
    if reason:
        raise ConfigError(f"{where}: {name!r} {reason}; the run folder is runs/<name> (or give --run-dir)")
    return name


_TOP_LEVEL = {"name", "seed", "device", "model", "data", "stages", "report"}


def parse_recipe(raw: Any, *, source: str | None = None) -> Recipe:
    """Validate a recipe mapping (e.g. from YAML) into a :class:`Recipe`, naming any bad field."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{source or 'recipe'}: expected a mapping at the top level, got {type(raw).__name__}")
    unknown = sorted(set(raw) - _TOP_LEVEL)
    if unknown:
        raise ConfigError(f"{unknown[0]}: unknown recipe field; known fields: {', '.join(sorted(_TOP_LEVEL))}")
    if "model" not in raw:
        raise ConfigError("model: missing; give model.name (zoo or 'package.module:factory') or model.file")
    stages_raw = raw.get("stages")
    if not isinstance(stages_raw, list) or not stages_raw:
        raise ConfigError("stages: expected a non-empty list of stages")
    model = parse_config(ModelSection, raw["model"], where="model")
    data = parse_config(DataSection, raw.get("data"), where="data")
    report = parse_config(ReportSection, raw.get("report"), where="report")
    registry = load_stages()
    stages: list[StageSpec] = []
    seen: set[str] = set()
    for i, entry in enumerate(stages_raw):
        where = f"stages[{i}]"
        if not isinstance(entry, dict) or "type" not in entry:
            raise ConfigError(f"{where}: expected a mapping with a 'type' (one of: {', '.join(registry.names())})")
        options = dict(entry)
        stage_type = str(options.pop("type"))
        if stage_type not in registry:
            raise ConfigError(f"{where}.type: unknown stage {stage_type!r}; choose one of: {', '.join(registry.names())}")
        name = str(options.pop("name", stage_type))
        if name in seen:
            name = f"{name}{i}"
        seen.add(name)
        config = parse_config(registry.get(stage_type).config_cls, options, where=f"{where} ({stage_type})")
        stages.append(StageSpec(stage_type, name, config))
    seed = raw.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise ConfigError(f"seed: expected an integer, got {seed!r}")
    device = raw.get("device", "auto")
    if device not in ("auto", "cpu", "cuda"):
        raise ConfigError(f"device: expected auto, cpu or cuda, got {device!r}")
    if raw.get("name") is not None:
        name = _check_name(raw["name"])
    else:
        name = _check_name(Path(source).stem if source else "run", where=f"name (from the file name {source})")
    return Recipe(name, model, data, tuple(stages), seed, device, report, source)


def _yaml_problem(err: yaml.YAMLError) -> str:
    """One line for a YAML error: what is wrong and where (``expected ',' or ']' at line 1, column 3``)."""
    problem = getattr(err, "problem", None) or (str(err).strip().splitlines() or ["unreadable"])[0]
    mark = getattr(err, "problem_mark", None)
    return f"{problem} at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else problem


def _list_index(node: list[Any], key: str, where: str) -> int:
    try:
        index = int(key)
    except ValueError:
        raise ConfigError(f"{where}: {key!r} is not an index into a list of {len(node)}") from None
    if not 0 <= index < len(node):
        raise ConfigError(f"{where}: no entry {index}; the list has {len(node)} (0..{len(node) - 1})")
    return index


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``key.path=value`` overrides (``stages.0.epochs=1``); values are parsed as YAML scalars.

    Raises:
        ConfigError: naming the ``--set`` item: no ``=``, a value that is not YAML, a list index out of range,
            or a path through something that is not a mapping or list.
    """
    raw = copy.deepcopy(raw)
    for item in overrides:
        path, sep, value = item.partition("=")
        if not sep or not path:
            raise ConfigError(f"--set {item!r}: expected KEY.PATH=VALUE, e.g. stages.0.epochs=1")
        try:
            parsed = yaml.safe_load(value)
        except yaml.YAMLError as err:
            raise ConfigError(f"--set {item!r}: the value {value!r} is not valid YAML ({_yaml_problem(err)})") from None
        keys = path.split(".")
        node: Any = raw
        for depth, key in enumerate(keys):
            where = f"--set {item!r}: {'.'.join(keys[:depth]) or 'the recipe'}"
            last = depth == len(keys) - 1
            if isinstance(node, list):
                index = _list_index(node, key, where)
                if last:
                    node[index] = parsed
                else:
                    node = node[index]
            elif isinstance(node, dict):
                if last:
                    node[key] = parsed
                else:
                    node = node.setdefault(key, {})
            else:
                raise ConfigError(f"{where} is {node!r}, not a mapping or list, so it has no field {key!r}")
    return raw


def recipe_changes(old: Any, new: Any, path: str = "") -> list[str]:
    """Lines ``stages[1].ratio: 0.5 -> 0.3`` for every field where two resolved recipe dicts differ."""
    if isinstance(old, dict) and isinstance(new, dict):
        lines = []
        for key in list(dict.fromkeys([*old, *new])):
            where = f"{path}.{key}" if path else str(key)
            if key not in new:
                lines.append(f"{where}: {old[key]!r} -> (removed)")
            elif key not in old:
                lines.append(f"{where}: (absent) -> {new[key]!r}")
            else:
                lines += recipe_changes(old[key], new[key], where)
        return lines
    if isinstance(old, list) and isinstance(new, list):
        lines = []
        for i in range(max(len(old), len(new))):
            if i >= len(new):
                lines.append(f"{path}[{i}]: removed")
            elif i >= len(old):
                lines.append(f"{path}[{i}]: added")
            else:
                lines += recipe_changes(old[i], new[i], f"{path}[{i}]")
        return lines
    return [] if old == new and type(old) is type(new) else [f"{path or 'recipe'}: {old!r} -> {new!r}"]


def load_recipe(path: str | os.PathLike, *, overrides: list[str] | None = None) -> Recipe:
    """Read and validate a recipe file; ``overrides`` as in :func:`apply_overrides`."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such recipe file")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({_yaml_problem(err)})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text (UTF-8) file") from None
    if overrides:
        raw = apply_overrides(raw if isinstance(raw, dict) else {}, overrides)
    recipe = parse_recipe(raw, source=str(path))
    if model_factory_name(recipe.model):
        _importable_from(path.resolve().parent)
    return recipe


def model_factory_name(section: ModelSection) -> str | None:
    """The user's ``package.module:function`` a model section names (``model.factory``, or ``model.name`` with a
    colon); None for zoo models."""
    return section.factory or (section.name if section.name and ":" in section.name else None)


def _importable_from(folder: Path) -> None:
    """Let the recipe's own code (``mymodule:factory`` beside the recipe file) import without ``PYTHONPATH=.``.

    A recipe is the user's code, like a script: its folder joins ``sys.path`` (at the end, so it never shadows an
    installed package).
    """
    entry = str(folder)
    if entry not in sys.path:
        sys.path.append(entry)

