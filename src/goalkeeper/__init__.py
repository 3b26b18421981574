"""goalkeeper: keeps AI agents on their goals."""

__version__ = "0.1.0"
