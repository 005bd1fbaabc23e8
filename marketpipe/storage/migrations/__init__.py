"""Alembic migration scripts of the hot store (a package so that env.py ships in the wheel)."""
