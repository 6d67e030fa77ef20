"""``python -m web module:app``: see :mod:`web.http._cli`."""

from .http._cli import main

if __name__ == "__main__":
    main()
