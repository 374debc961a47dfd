"""``python -m jacobite.cli``: the same as the ``jacobite`` console script."""

from .main import main

if __name__ == "__main__":
    raise SystemExit(main())
