"""``python -m goalkeeper.cli``: the same as the ``goalkeeper`` console script."""

from __future__ import annotations

from . import main

if __name__ == "__main__":
    main()
