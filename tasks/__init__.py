"""Thin Prefect `@task` wrappers around the core library (retries, names, rate limits; no logic)."""
