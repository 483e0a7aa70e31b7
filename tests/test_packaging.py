"""The repository's pipeline folders (and the command line) install as the `mdsearch` namespace
package, and each package states its public names."""

from __future__ import annotations

import ast
import importlib
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = {"space": "mdsearch.space", "mdconv": "mdsearch.mdconv", "search": "mdsearch.search",
           "results": "mdsearch.results", "cli": "mdsearch.cli"}  # fmt: skip


def test_every_subpackage_is_listed_for_regular_installs():
    # A regular `pip install .` ships only the packages pyproject lists (editable installs hide
    # a missing one, so check it here).
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    found = set()
    for folder, name in FOLDERS.items():
        assert config["package-dir"][name] == folder
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder)
            found.add(".".join([name, *rel.parts]))
    assert found == listed


def test_presets_ship_as_package_data():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    patterns = config["package-data"]["mdsearch.space"]
    assert any((ROOT / "space").glob(p) for p in patterns)


def _packages() -> list[str]:
    names = []
    for folder, name in FOLDERS.items():
        for init in sorted((ROOT / folder).rglob("__init__.py")):
            rel = init.parent.relative_to(ROOT / folder)
            names.append(".".join([name, *rel.parts]))
    return names


@pytest.mark.parametrize("package", _packages())
def test_every_package_reexports_its_public_names(package):
    # Tests and users import from the package (`from mdsearch.search import RunFolder`), so its
    # __all__ is the public surface and every name in it must resolve.
    module = importlib.import_module(package)
    public = getattr(module, "__all__", None)
    assert public, f"{package} has no __all__"
    assert len(set(public)) == len(public), f"{package}.__all__ lists a name twice"
    missing = [name for name in public if not hasattr(module, name)]
    assert not missing, f"{package}.__all__ names what it does not define: {missing}"


def test_every_module_declares_all():
    # Read, not imported: a module's public names are stated where it is written.
    lacking = []
    for folder in FOLDERS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            if path.name == "__main__.py":  # `python -m` entry point, nothing to import
                continue
            tree = ast.parse(path.read_text(encoding="utf-8"))
            assigned = {
                target.id
                for node in tree.body
                if isinstance(node, ast.Assign | ast.AnnAssign)
                for target in (node.targets if isinstance(node, ast.Assign) else [node.target])
                if isinstance(target, ast.Name)
            }
            if "__all__" not in assigned:
                lacking.append(path.relative_to(ROOT).as_posix())
    assert not lacking, f"modules without __all__: {lacking}"


def test_results_names_load_on_first_use():
    # mdsearch.results resolves its names lazily (PEP 562), so that `mdsearch --help` does not
    # import pandas through it. A name that is also one of its modules' would resolve to the
    # module once something imported that module (explain_figure, the function, beside a module
    # of that name): none may be.
    import subprocess
    import sys

    stems = {path.stem for path in (ROOT / "results").glob("*.py")}
    assert not set(importlib.import_module("mdsearch.results").__all__) & stems
    code = (
        "import sys\nimport mdsearch.results as r\nbare = sorted(sys.modules)\n"
        "from mdsearch.results import CAM_LEVEL\n"
        "print([m for m in bare if m.startswith('mdsearch.results.')], 'pandas' in sys.modules,"
        " sorted(m for m in sys.modules if m.startswith('mdsearch.results.')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[] False ['mdsearch.results.localisation']"
