"""Benchmarks of pullsecret-syncer on the real test stack (see benchmarks/run.py)."""
