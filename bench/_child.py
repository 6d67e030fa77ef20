"""Entry point of a fresh benchmark interpreter: ``python -m bench._child module:function JSON``.

Imports *function*, calls it with the JSON object as keyword arguments and prints the sample it
returns as one JSON line (functions that end with ``report_and_exit`` print it themselves).
Used only by :func:`bench._measure.run_fresh`.
"""

from __future__ import annotations

import importlib
import json
import sys

from ._measure import report_and_exit


def main(argv: list[str]) -> None:
    """Run the function named by ``argv[0]`` with the keyword arguments in ``argv[1]``."""
    spec, raw_kwargs = argv
    module_name, _, qualname = spec.partition(":")
    function = getattr(importlib.import_module(module_name), qualname)
    report_and_exit(function(**json.loads(raw_kwargs)))


if __name__ == "__main__":
    main(sys.argv[1:])
