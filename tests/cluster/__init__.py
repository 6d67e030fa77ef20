"""Cluster tests: nodes as OS processes joined through a test-owned Redis."""
