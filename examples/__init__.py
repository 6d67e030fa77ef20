"""Runnable examples of trio-beam; each module runs with ``python -m examples.<name>``."""
