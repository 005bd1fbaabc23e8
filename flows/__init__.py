"""Prefect flows: compose tasks, return small reports (never frames)."""
