"""Tests of the core process runtime (``beam``): processes, exits, names, timers, the node."""
