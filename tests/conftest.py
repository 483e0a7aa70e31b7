"""Shared pytest fixtures (keep this small: fixtures used by one file belong in that file)."""

from __future__ import annotations

from pathlib import Path

import pytest

#: ../shared/data next to the repository (present in CI, absent in a user's clone).
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path of the shared real-data folder; skips the test when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data folder {SHARED_DATA} is absent (only in CI / the team machine)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> str:
    """One decoded-image cache for every search test (the phantom set is decoded once)."""
    return str(tmp_path_factory.mktemp("cache"))


@pytest.fixture()
def space_file(tmp_path: Path) -> str:
    """A YAML file of the two-stage search space (tests/search_fixtures.py)."""
    from search_fixtures import TWO_STAGE_SPACE

    path = tmp_path / "space.yaml"
    path.write_text(TWO_STAGE_SPACE)
    return str(path)
