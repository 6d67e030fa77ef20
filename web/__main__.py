"""``python -m web module:app``: see :mod:`web._cli`."""

from ._cli import main

if __name__ == "__main__":
    main()
