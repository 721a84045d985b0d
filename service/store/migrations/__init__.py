"""Alembic schema history for replyd's database."""
