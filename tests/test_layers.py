"""The import rules of the pipeline, checked on every module's source (ARCHITECTURE.md).

The repository's folders are layers in pipeline order, ``space -> mdconv -> search -> results``,
with the command line (``cli``) on top. A layer imports only the layers before it; ``cli`` may
import all of them. Heavy libraries stay out of the layers that must not need them: ``space``
never imports torch, timm or Ray; ``mdconv`` never imports Ray or Optuna; ``results`` never
imports Ray.

Most of the project's imports sit inside functions (so that ``import mdsearch.space`` does not
load torch), where no import-graph tool looks; this test reads every module with :mod:`ast` and
checks every import statement at any depth: ``import x``, ``from x import y``, relative imports
(resolved to their absolute module) and ``importlib.import_module("x")`` with a literal name.
``if TYPE_CHECKING:`` imports count too: a type taken from a later layer is still a dependency
on it.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "ALLOWED_LAYERS",
    "FORBIDDEN_LIBRARIES",
    "LAYERS",
    "ImportEdge",
    "Violation",
    "import_edges",
    "layer_violations",
    "module_name",
]

ROOT = Path(__file__).resolve().parents[1]

#: The package every layer installs under (pyproject.toml's package-dir).
PACKAGE = "mdsearch"

#: The layer folders in pipeline order; the command line last, on top of all of them.
LAYERS = ("space", "mdconv", "search", "results", "cli")

#: The other layers each layer may import (its own is always allowed).
ALLOWED_LAYERS: dict[str, frozenset[str]] = {
    "space": frozenset(),
    "mdconv": frozenset({"space"}),
    "search": frozenset({"space", "mdconv"}),
    "results": frozenset({"space", "mdconv", "search"}),
    "cli": frozenset({"space", "mdconv", "search", "results"}),
}

#: Third-party top-level packages a layer must never import, and why.
FORBIDDEN_LIBRARIES: dict[str, dict[str, str]] = {
    "space": {
        "torch": "the space is data: it must load without torch",
        "timm": "the space is data: it must load without timm",
        "ray": "the space is data: it must load without Ray",
    },
    "mdconv": {
        "ray": "building a network never needs Ray",
        "optuna": "building a network never needs Optuna",
    },
    "results": {"ray": "results read the run folder, not Ray internals"},
}


@dataclass(frozen=True)
class ImportEdge:
    """One import statement's target, as the importing module sees it.

    Attributes:
        path: the importing file, relative to the walked root (``search/progress.py``).
        line: 1-based line of the import statement.
        importer: the importing module's absolute name (``mdsearch.search.progress``).
        target: the imported module's absolute name (``mdsearch.results.pareto``, ``torch.nn``).
    """

    path: str
    line: int
    importer: str
    target: str


@dataclass(frozen=True)
class Violation:
    """An import edge against the layer rules, with the rule it breaks."""

    edge: ImportEdge
    rule: str

    def __str__(self) -> str:
        return f"{self.edge.path}:{self.edge.line}: {self.edge.importer} -> {self.edge.target} ({self.rule})"


def module_name(root: Path, path: Path) -> str:
    """The absolute module name of a file under ``root/<layer>/`` (``__init__.py`` names its
    package): ``root/search/datasets/cache.py`` -> ``mdsearch.search.datasets.cache``."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join([PACKAGE, *parts])


def _resolve_from(importer: str, is_package: bool, node: ast.ImportFrom) -> list[str]:
    """The absolute targets of one ``from ... import ...`` statement.

    ``from .x import y`` in ``a.b.c`` is ``a.b.x``; ``from . import y`` and
    ``from mdsearch import results`` may name submodules, so each name becomes a target there.
    """
    if node.level:
        # A package's __init__ is its own base; a plain module's base is its package.
        base = importer.split(".")
        if not is_package:
            base = base[:-1]
        base = base[: len(base) - (node.level - 1)]
        prefix = ".".join(base)
        if node.module:
            return [f"{prefix}.{node.module}"]
        return [f"{prefix}.{alias.name}" for alias in node.names]
    assert node.module is not None  # `from import x` is a syntax error
    if node.module == PACKAGE:
        return [f"{PACKAGE}.{alias.name}" for alias in node.names]
    return [node.module]


def _literal_import_module(node: ast.Call) -> str | None:
    """The literal name in ``importlib.import_module("x")`` / ``import_module("x")``."""
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
    if name not in {"import_module", "__import__"} or not node.args:
        return None
    first = node.args[0]
    if isinstance(first, ast.Constant) and isinstance(first.value, str):
        return first.value
    return None


def import_edges(root: Path, layers: tuple[str, ...] = LAYERS) -> list[ImportEdge]:
    """Every import in every module under ``root/<layer>/``, at any depth of the code.

    Args:
        root: the repository root (the folder holding the layer folders).
        layers: the layer folders to walk; absent ones are skipped.

    Returns:
        One edge per imported module per statement, in file and line order.
    """
    edges: list[ImportEdge] = []
    for layer in layers:
        folder = root / layer
        if not folder.is_dir():
            continue
        for path in sorted(folder.rglob("*.py")):
            importer = module_name(root, path)
            is_package = path.name == "__init__.py"
            rel = path.relative_to(root).as_posix()
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    targets = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom):
                    targets = _resolve_from(importer, is_package, node)
                elif isinstance(node, ast.Call) and (literal := _literal_import_module(node)):
                    targets = [literal]
                else:
                    continue
                edges.extend(ImportEdge(rel, node.lineno, importer, t) for t in targets)
    return sorted(edges, key=lambda e: (e.path, e.line, e.target))


def layer_violations(root: Path, layers: tuple[str, ...] = LAYERS) -> list[Violation]:
    """The imports under ``root`` that break :data:`ALLOWED_LAYERS` or
    :data:`FORBIDDEN_LIBRARIES`, in file and line order."""
    violations = []
    for edge in import_edges(root, layers):
        layer = edge.importer.split(".")[1]
        parts = edge.target.split(".")
        if parts[0] == PACKAGE:
            if len(parts) < 2 or parts[1] == layer:
                continue
            if parts[1] not in ALLOWED_LAYERS[layer]:
                allowed = ", ".join(sorted(ALLOWED_LAYERS[layer])) or "no other layer"
                violations.append(Violation(edge, f"{layer} may import only: {allowed}"))
        elif parts[0] in FORBIDDEN_LIBRARIES.get(layer, {}):
            reason = FORBIDDEN_LIBRARIES[layer][parts[0]]
            violations.append(Violation(edge, f"{layer} never imports {parts[0]}: {reason}"))
    return violations


def test_every_layer_imports_only_the_layers_before_it():
    violations = layer_violations(ROOT)
    assert not violations, "imports against the pipeline order:\n" + "\n".join(map(str, violations))


def test_the_walk_sees_every_layer():
    # An empty walk would pass the rule test: make sure each layer has modules with imports.
    seen = {edge.importer.split(".")[1] for edge in import_edges(ROOT)}
    assert seen == set(LAYERS)


def _write(root: Path, rel: str, text: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_walker_catches_a_function_level_import_against_the_rules(tmp_path):
    _write(tmp_path, "space/__init__.py", "from .grammar import ArchSpec\n")
    _write(tmp_path, "space/grammar.py", "import json\n")
    _write(tmp_path, "results/__init__.py", "")
    _write(tmp_path, "search/__init__.py", "")
    _write(
        tmp_path,
        "search/progress.py",
        "from __future__ import annotations\n"
        "from . import trial\n"
        "\n"
        "def front(rows):\n"
        "    from ..results.pareto import pareto_front\n"
        "    return pareto_front(rows)\n",
    )
    violations = layer_violations(tmp_path)
    assert [(v.edge.path, v.edge.line, v.edge.target) for v in violations] == [
        ("search/progress.py", 5, "mdsearch.results.pareto")
    ]
    assert str(violations[0]).startswith(
        "search/progress.py:5: mdsearch.search.progress -> mdsearch.results.pareto"
    )


def test_walker_resolves_relative_and_package_imports(tmp_path):
    _write(
        tmp_path,
        "search/datasets/__init__.py",
        "from .catalog import DataSource\nfrom .. import orchestrate\n",
    )
    _write(
        tmp_path,
        "search/datasets/cache.py",
        "def f():\n"
        "    from ...space.files import atomic_write_bytes\n"
        "    from mdsearch import results\n"
        "    import importlib\n"
        "    importlib.import_module('mdsearch.cli.main')\n",
    )
    targets = {(e.path, e.line, e.target) for e in import_edges(tmp_path)}
    assert targets == {
        ("search/datasets/__init__.py", 1, "mdsearch.search.datasets.catalog"),
        ("search/datasets/__init__.py", 2, "mdsearch.search.orchestrate"),
        ("search/datasets/cache.py", 2, "mdsearch.space.files"),
        ("search/datasets/cache.py", 3, "mdsearch.results"),
        ("search/datasets/cache.py", 4, "importlib"),
        ("search/datasets/cache.py", 5, "mdsearch.cli.main"),
    }
    assert [(v.edge.line, v.edge.target) for v in layer_violations(tmp_path)] == [
        (3, "mdsearch.results"),
        (5, "mdsearch.cli.main"),
    ]


def test_walker_catches_forbidden_libraries(tmp_path):
    _write(tmp_path, "space/cost.py", "def flops():\n    import torch.nn as nn\n    return nn\n")
    _write(tmp_path, "mdconv/layer.py", "import torch\nfrom optuna import trial\n")
    _write(tmp_path, "results/report.py", "import pandas\nif True:\n    from ray import tune\n")
    found = [(v.edge.path, v.edge.line, v.edge.target) for v in layer_violations(tmp_path)]
    assert found == [
        ("mdconv/layer.py", 2, "optuna"),
        ("results/report.py", 3, "ray"),
        ("space/cost.py", 2, "torch.nn"),
    ]
