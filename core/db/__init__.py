"""Persistence: the schema (owned by Alembic migrations in migrations/) and the stores on it."""
