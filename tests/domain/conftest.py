"""The domain suite runs each database test on both backends (tests/support/backends.py)."""

from __future__ import annotations

from ..support.backends import backend

__all__ = ["backend"]  # the fixture, for pytest to find here
