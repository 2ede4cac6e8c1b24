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


@dataclass(frozen=True)
class ReportSection:
    """What the before/after summary measures. Latency is timed alternately for both models in one process."""

    latency: bool = True
    latency_repeats: int = 30
    latency_batch_sizes: tuple[int, ...] = (1,)


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


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``key.path=value`` overrides (``stages.0.epochs=1``); values are parsed as YAML scalars."""
    raw = copy.deepcopy(raw)
    for item in overrides:
        path, sep, value = item.partition("=")
        if not sep or not path:
            raise ConfigError(f"--set {item!r}: expected KEY.PATH=VALUE, e.g. stages.0.epochs=1")
        keys = path.split(".")
        node: Any = raw
        for key in keys[:-1]:
            node = node[int(key)] if isinstance(node, list) else node.setdefault(key, {})
        last = keys[-1]
        parsed = yaml.safe_load(value)
        if isinstance(node, list):
            node[int(last)] = parsed
        else:
            node[last] = parsed
    return raw


def load_recipe(path: str | os.PathLike, *, overrides: list[str] | None = None) -> Recipe:
    """Read and validate a recipe file; ``overrides`` as in :func:`apply_overrides`."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such recipe file")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({err})") from None
    if overrides:
        raw = apply_overrides(raw if isinstance(raw, dict) else {}, overrides)
    return parse_recipe(raw, source=str(path))

