"""Every third-party package slimkit imports is declared in pyproject.toml (a clean install must not miss one)."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

ROOT = Path(__file__).parents[1]
# import name -> distribution name, for the few that differ and may be absent from this environment
KNOWN = {"PIL": "pillow", "yaml": "pyyaml", "sklearn": "scikit-learn"}


def _name(requirement: str) -> str:
    """``"scipy>=1.8"`` -> ``"scipy"`` (normalized as PEP 503 does)."""
    return re.sub(r"[-_.]+", "-", re.match(r"[A-Za-z0-9_.\-]+", requirement).group(0)).lower()


def imported_modules() -> dict[str, str]:
    """Top-level third-party modules imported anywhere under src/slimkit -> one file that imports each."""
    found: dict[str, str] = {}
    for path in sorted((ROOT / "src" / "slimkit").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top != "slimkit" and top not in sys.stdlib_module_names and top != "__future__":
                    found.setdefault(top, str(path.relative_to(ROOT)))
    return found


def test_every_imported_package_is_declared():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {_name(r) for r in project["dependencies"]}
    declared |= {_name(r) for extra in project.get("optional-dependencies", {}).values() for r in extra}
    installed = importlib.metadata.packages_distributions()
    modules = imported_modules()
    assert {"torch", "numpy", "scipy"} <= set(modules), "the scan finds slimkit's imports"
    missing = {}
    for module, where in modules.items():
        dists = {_name(d) for d in installed.get(module, [])} or {_name(KNOWN.get(module, module))}
        if not dists & declared:
            missing[module] = where
    assert not missing, f"imported but not declared in pyproject.toml (module: a file importing it): {missing}"
