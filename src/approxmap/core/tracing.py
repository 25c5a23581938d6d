"""Symbolic tracing of a user's model with torch.fx, without copying or changing it.

`trace(model, leaves)` returns the fx graph of `model`'s forward in which every
``call_module`` and ``get_attr`` target is a qualified name in `model` itself, so callers
look modules up in `model.named_modules()` and run the nodes themselves. Three things that
break a plain ``fx.GraphModule(model, graph)`` are handled here, once for every caller:

- no GraphModule is built, so submodule names that collide with its attributes (``meta``,
  ``graph``, ``_code``, ...) are just names;
- a model wrapped in ``nn.DataParallel`` / ``DistributedDataParallel`` is traced through
  its ``module`` (their forward takes ``*inputs``), and targets keep the ``module.`` prefix;
- tensor constants the tracer would store as attributes of the model are taken off it again
  and returned in `Traced.constants` (the model is left as it was).

>>> traced = trace(model, leaves={"features.0"})          # doctest: +SKIP
>>> [n.target for n in traced.graph.nodes if n.op == "call_module"][:1]  # doctest: +SKIP
['features.0']
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from torch import fx, nn

from approxmap.core.exceptions import ApproxmapError

PARALLEL_WRAPPERS: tuple[type[nn.Module], ...] = (nn.DataParallel,
                                                  nn.parallel.DistributedDataParallel)


def unwrap_parallel(model: nn.Module) -> tuple[nn.Module, str]:
    """The module inside (Distributed)DataParallel wrappers and the name prefix they add
    (``"module."`` per wrapper; the model itself and ``""`` when it is not wrapped)."""
    prefix = ""
    while isinstance(model, PARALLEL_WRAPPERS):
        model, prefix = model.module, prefix + "module."
    return model, prefix


@dataclass
class Traced:
    """A traced forward: the graph (targets are qualified names in the traced model) and
    the tensor constants its ``get_attr`` nodes may name that are not attributes of it."""

    graph: fx.Graph
    constants: dict[str, Any] = field(default_factory=dict)

    def fetch(self, model: nn.Module, target: str) -> Any:
        """The value of a ``get_attr`` target of `model`."""
        if target in self.constants:
            return self.constants[target]
        obj: Any = model
        for part in target.split("."):
            obj = getattr(obj, part)
        return obj


class _Tracer(fx.Tracer):
    """Keeps the named modules as single call_module nodes (standard leaves stay leaves)."""

    def __init__(self, leaves: Iterable[str]) -> None:
        super().__init__()
        self.leaves = set(leaves)

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return qualname in self.leaves or super().is_leaf_module(m, qualname)


def trace(model: nn.Module, leaves: Iterable[str] = (), purpose: str = "trace") -> Traced:
    """The fx graph of `model`'s forward, with the modules named in `leaves` kept as leaves.

    Raises:
        ApproxmapError: "torch.fx cannot {purpose} the model (...)": fx cannot trace it
            (data-dependent control flow, unsupported calls); the first line of fx's reason
            is given.
    """
    root, prefix = unwrap_parallel(model)
    own = {name[len(prefix):] for name in leaves if name.startswith(prefix)}
    before = set(vars(root))
    try:
        graph = _Tracer(own).trace(root)
    except Exception as exc:  # fx raises many kinds on untraceable code
        text = str(exc).strip()
        first = text.splitlines()[0][:200] if text else ""
        raise ApproxmapError(f"torch.fx cannot {purpose} the model ({type(exc).__name__}"
                             f"{': ' + first if first else ''})") from None
    finally:
        added = {name: vars(root).pop(name) for name in set(vars(root)) - before}
    if prefix:
        for node in graph.nodes:
            if node.op in ("call_module", "get_attr"):
                node.target = prefix + node.target
    return Traced(graph, {prefix + name: value for name, value in added.items()})


__all__ = ["PARALLEL_WRAPPERS", "Traced", "trace", "unwrap_parallel"]
