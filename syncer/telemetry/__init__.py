"""Metrics, JSON logs and the `/metrics` `/healthz` `/readyz` endpoints."""
