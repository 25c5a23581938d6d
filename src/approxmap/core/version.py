"""The package version (one definition; `approxmap.__version__` re-exports it)."""

__version__ = "0.2.0"
