"""What a model must return (logits of shape (batch, classes)), and how to pick them.

A model that returns a tuple or dict (logits plus features, aux heads) is used through
`logits_of(model, key)`: the same modules, names and parameters (shared, never copied or
changed), whose forward returns `output[key]`. torch.fx traces it like the model itself
(its forward keeps the model's signature), so the graph split and read points work.

>>> model = logits_of(two_headed, "logits")     # doctest: +SKIP
>>> model = logits_of(tuple_model, 0)           # doctest: +SKIP
"""

from __future__ import annotations

import functools
from typing import Any

import torch
from torch import nn

from approxmap.core.exceptions import DataError, InvalidParameterError


def logits_of(model: nn.Module, key: int | str) -> nn.Module:
    """A view of `model` whose forward returns `model(x)[key]`.

    Module names stay the same (no wrapper prefix), so sites, layer selections and stored
    results refer to the same layers. The original model is not modified.

    Raises:
        InvalidParameterError: key is neither an int nor a str.
    """
    if isinstance(key, bool) or not isinstance(key, int | str):
        raise InvalidParameterError(f"The output key must be an int or a str. Got {key!r}.")
    cls = type(model)
    original = cls.forward

    @functools.wraps(original)  # torch.fx reads the original signature: one input x
    def forward(self, *args, **kwargs):
        return original(self, *args, **kwargs)[key]

    view_cls = type(cls.__name__, (cls,), {"forward": forward, "__module__": cls.__module__,
                                            "approxmap_output_key": key})
    view = cls.__new__(view_cls)
    view.__dict__ = dict(model.__dict__)  # shares submodules, parameters and buffers
    return view


def output_problem(output: Any, batch: int) -> str | None:
    """Why `output` is not a (batch, classes) logits tensor, or None when it is one."""
    if isinstance(output, torch.Tensor):
        if output.dim() == 2 and len(output) == batch and output.is_floating_point():
            return None
        return f"a tensor of shape {tuple(output.shape)} ({output.dtype})"
    if isinstance(output, tuple | list):
        return (f"a {type(output).__name__} of {len(output)} items; pick the logits with "
                "--output-key INDEX (API: approxmap.logits_of(model, INDEX))")
    if isinstance(output, dict):
        keys = ", ".join(map(repr, list(output)[:6]))
        return (f"a dict with keys {keys}; pick the logits with --output-key KEY "
                "(API: approxmap.logits_of(model, KEY))")
    return f"a {type(output).__name__}"


def check_logits(output: Any, batch: int, labels: torch.Tensor | None = None) -> None:
    """Raise DataError unless `output` is (batch, classes) logits fitting the labels."""
    problem = output_problem(output, batch)
    if problem is not None:
        raise DataError(f"The model must return logits of shape (batch, classes); it returns "
                        f"{problem}.")
    if labels is not None and len(labels) and (labels.min() < 0 or labels.max() >= output.shape[1]):
        raise DataError(
            f"Labels range over [{int(labels.min())}, {int(labels.max())}] but the model has "
            f"{output.shape[1]} outputs: the data does not fit the model.")


__all__ = ["check_logits", "logits_of", "output_problem"]
