"""Fixtures of the end-to-end Discord tests: the embedded model in NF4, loaded once per module,
and a fresh SQLite file migrated by Alembic for each test."""

from __future__ import annotations

import pytest

from bot.db.database import upgrade
from bot.model_resolver import EMBEDDED_SPEC, load_model


@pytest.fixture(scope="module")
def model(model_cache):
    return load_model(EMBEDDED_SPEC, "nf4")


@pytest.fixture
def db_path(tmp_path):
    path = tmp_path / "bot.db"
    upgrade(f"sqlite+aiosqlite:///{path}")  # Alembic runs its own event loop: before the test's
    return path
