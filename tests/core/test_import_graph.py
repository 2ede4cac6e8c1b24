"""The import graph of src/slimkit has no cycle: modules and subpackages import one way only.

Edges are the imports a module runs when it is first imported: ``import``/``from ... import`` statements at module
level (also inside a top-level ``try``), each also importing the packages above the target (``slimkit.train.hooks``
runs ``slimkit/train/__init__.py`` first), except a module's own enclosing packages (Python has started them
before the module, so ``slimkit.core.config`` importing ``slimkit.core.errors`` is no edge to ``slimkit.core``). Not
edges: imports inside functions (they run at call time, once every
module is loaded, so they cannot leave a module half-initialized; they are how ``cli``/``recipe`` defer heavy
imports), imports under ``if TYPE_CHECKING:`` (never run), and the root ``slimkit/__init__.py``, whose public names
are resolved lazily.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"
ROOT = "slimkit"


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted((SRC / ROOT).rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _top_level_imports(tree: ast.Module) -> list[ast.Import | ast.ImportFrom]:
    statements: list[ast.stmt] = []
    for node in tree.body:
        statements.extend(node.body + node.orelse + [s for h in node.handlers for s in h.body]
                          if isinstance(node, ast.Try) else [node])
    return [s for s in statements if isinstance(s, (ast.Import, ast.ImportFrom))]


def _with_parents(name: str, modules: dict[str, Path]) -> set[str]:
    parts = name.split(".")
    return {".".join(parts[:i]) for i in range(2, len(parts) + 1)} & set(modules)


def import_graph() -> dict[str, set[str]]:
    """``module -> modules its first import runs`` (the root package left out, see the module docstring)."""
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets: set[str] = set()
        for node in _top_level_imports(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                heads = [alias.name for alias in node.names]
            else:
                base = node.module or ""
                if node.level:
                    anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                    base = f"{anchor}.{base}" if base else anchor
                heads = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
            for head in heads:
                if head == ROOT or head.startswith(ROOT + "."):
                    targets |= _with_parents(head, modules)
        graph[name] = targets - _with_parents(name, modules)  # a module's own packages are already importing
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a path ``[a, b, ..., a]``, or None (iterative depth-first search)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    for start in sorted(graph):
        if start in state:
            continue
        path, stack = [start], [iter(sorted(graph[start]))]
        state[start] = 1
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            elif nxt not in state:
                state[nxt] = 1
                path.append(nxt)
                stack.append(iter(sorted(graph.get(nxt, ()))))
    return None


def _subpackage(name: str) -> str:
    return ".".join(name.split(".")[:2])


def test_module_import_graph_has_no_cycle() -> None:
    graph = import_graph()
    assert len(graph) > 100 and {"slimkit.train.hooks", "slimkit.core.errors"} <= graph["slimkit.train.engine"]
    assert _cycle(graph) is None, " -> ".join(_cycle(graph) or [])


def test_subpackages_import_one_way() -> None:
    packages: dict[str, set[str]] = {}
    for name, targets in import_graph().items():
        packages.setdefault(_subpackage(name), set()).update(
            _subpackage(t) for t in targets if _subpackage(t) != _subpackage(name))
    assert "slimkit.core" in packages["slimkit.prune"]
    assert _cycle(packages) is None, " -> ".join(_cycle(packages) or [])
    assert not packages["slimkit.core"], f"core imports {packages['slimkit.core']}"


def test_train_and_distill_do_not_import_each_other_even_lazily() -> None:
    for package, other in (("train", "distill"), ("distill", "train")):
        for path in (SRC / ROOT / package).rglob("*.py"):
            tree = ast.parse(path.read_text())
            names = [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
            names += [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
            if package == "distill" and path.name in ("soft.py", "hints.py", "__init__.py"):
                continue  # distill builds on train's hooks and losses: the one allowed direction
            assert not any(n.startswith(f"slimkit.{other}") for n in names), f"{path.name} imports slimkit.{other}"


def test_cycle_finder_finds_a_cycle() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None
