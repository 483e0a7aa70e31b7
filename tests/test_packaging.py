"""The repository's pipeline folders (and the command line) install as the `mdsearch` namespace
package."""

from __future__ import annotations

import tomllib
from pathlib import Path

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
