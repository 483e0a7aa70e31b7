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
