"""Execution of trials: graph split with a prefix cache, trial stacking, metrics."""

from approxmap.engine.local import LocalEngine

__all__ = ["LocalEngine"]
