"""Benchmarks of trio-beam: ``python -m bench <suite> [--quick] [--json PATH]``.

Every figure is a ratio against a baseline measured in the same run on the same box (raw trio,
pykka, or beam itself), never a bare time: the box is shared and noisy, ratios travel. Each
suite is one module exposing ``run(config) -> list[Figure]``, registered in
:data:`bench.__main__.SUITES`.
"""
