"""Prefect deployments for marketpipe: `prefect.yaml` plus the idempotent bootstrap."""
