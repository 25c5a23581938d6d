"""Prefix-cached execution: split the traced graph at the first injected site.

The part of the network before the first injected site computes the same values in every
trial, so per batch it runs once (`prefix`) and only the rest runs per trial (`suffix`),
for several trials at once by stacking them along the batch dimension.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import fx, nn

from approxmap.core.exceptions import ApproxmapError
from approxmap.core.sites import Site
from approxmap.core.tracing import trace

# Called at a site node with the node's value for all stacked trials; returns the new value.
NodeHook = Callable[[str, torch.Tensor], torch.Tensor]
# Called for a module node whose parameters some trial overrides: (module name, args) -> output.
ModuleCall = Callable[[str, nn.Module, tuple, dict], torch.Tensor]


@dataclass(frozen=True)
class Cut:
    """Per-trial work starts at node `index`; `cached_site`, if set, is a site node just
    before it whose clean output comes from the prefix and only gets the errors applied."""

    index: int
    cached_site: fx.Node | None


class GraphRunner:
    """Runs a traced model node by node, from any cut point, with hooks at site modules.

    The nodes run on the model itself (`core.tracing.trace`: no GraphModule is built, so
    module names such as ``meta`` or ``graph`` are no problem; DataParallel models run
    their inner module). Raises ApproxmapError when torch.fx cannot trace the model
    (callers fall back to hooks).
    """

    def __init__(self, model: nn.Module, site_modules: Iterable[str]) -> None:
        site_modules = set(site_modules)
        self.module = model
        self._traced = trace(model, site_modules, purpose="split")
        graph = self._traced.graph
        self.nodes: list[fx.Node] = list(graph.nodes)
        self._index = {node: i for i, node in enumerate(self.nodes)}
        self._modules = dict(model.named_modules())
        self.site_nodes: dict[str, list[int]] = {}
        for i, node in enumerate(self.nodes):
            if node.op == "call_module" and node.target in site_modules:
                self.site_nodes.setdefault(node.target, []).append(i)
        missing = site_modules - set(self.site_nodes)
        if missing:
            raise ApproxmapError(f"Layers never called in forward(): {', '.join(sorted(missing))}")
        if sum(1 for n in self.nodes if n.op == "placeholder") != 1:
            raise ApproxmapError("Prefix caching needs a forward(x) with exactly one input.")
        self._live_count: list[int] | None = None

    def cut(self, sites: Iterable[Site]) -> Cut:
        """Where per-trial work starts for these sites.

        At the first site module's node; just after it when that module only has output
        sites there, since its clean output is then the same in every trial.
        """
        sites = list(sites)
        first = min(self.site_nodes[site.module][0] for site in sites)
        node = self.nodes[first]
        if all(site.kind.hook == "output" for site in sites if site.module == node.target):
            return Cut(first + 1, node)
        return Cut(first, None)

    def live_after(self, cut: int) -> list[fx.Node]:
        """Nodes before `cut` whose values are read at or after `cut`."""
        return [n for n in self.nodes[:cut]
                if any(self._index[user] >= cut for user in n.users)]

    def prefix(self, x: torch.Tensor, cut: Cut) -> dict[fx.Node, Any]:
        """Run the nodes before `cut` on x; return the values that the rest needs."""
        env: dict[fx.Node, Any] = {}
        for node in self.nodes[:cut.index]:
            env[node] = self._run_node(node, env, x, None, None)
        return {node: env[node] for node in self.live_after(cut.index)}

    def suffix(
        self,
        live: dict[fx.Node, Any],
        cut: Cut,
        copies: int,
        on_input: NodeHook | None = None,
        on_output: NodeHook | None = None,
        call_module: ModuleCall | None = None,
    ) -> torch.Tensor:
        """Run the nodes from `cut` on `copies` stacked copies of the live prefix values.

        `on_input`/`on_output` transform the first input / the output of site module nodes;
        `call_module` replaces the call of site modules (for parameter errors).
        """
        site = cut.cached_site if on_output is not None else None
        env = {node: value if node is site and copies == 1 else _stack(value, copies)
               for node, value in live.items()}
        if site is not None:  # the cached clean output itself is never handed on
            value = on_output(site.target, env[site])
            env[site] = value.clone() if value is live[site] else value
        for node in self.nodes[cut.index:]:
            if node.op == "output":
                return fx.node.map_arg(node.args[0], lambda n: env[n])
            env[node] = self._run_node(node, env, None, on_input, on_output, call_module)
        raise ApproxmapError("The traced graph has no output node.")

    def checkpoints(self, after: int) -> set[int]:
        """Indices of the nodes from `after` on (before the output) whose value is all the rest
        of the graph reads: there, a sample equal to its clean value stays clean to the end."""
        if self._live_count is None:  # per node i: how many values are read after node i
            count = [0] * (len(self.nodes) + 1)
            self._last_read = [max((self._index[u] for u in n.users), default=i)
                               for i, n in enumerate(self.nodes)]
            for j, last in enumerate(self._last_read):
                if last > j:
                    count[j] += 1
                    count[last] -= 1
            for i in range(1, len(count)):
                count[i] += count[i - 1]
            self._live_count = count
        return {i for i in range(after, len(self.nodes) - 1)
                if self._live_count[i] == 1 and self._last_read[i] > i}

    def clean_values(self, x: torch.Tensor, indices: Iterable[int]) -> tuple[dict[int, Any], Any]:
        """The clean values of the nodes at `indices`, and the clean output, for input x."""
        wanted = set(indices)
        env: dict[fx.Node, Any] = {}
        kept: dict[int, Any] = {}
        for i, node in enumerate(self.nodes):
            if node.op == "output":
                return kept, fx.node.map_arg(node.args[0], lambda n: env[n])
            env[node] = self._run_node(node, env, x, None, None)
            if i in wanted:
                kept[i] = env[node]
        raise ApproxmapError("The traced graph has no output node.")

    def suffix_sparse(self, live: dict[fx.Node, Any], cut: Cut, last_site: int,
                      clean: tuple[dict[int, Any], Any], on_input: NodeHook | None = None,
                      on_output: NodeHook | None = None,
                      call_module: ModuleCall | None = None) -> torch.Tensor:
        """`suffix` for one trial whose errors are done by node `last_site`: after it, at every
        checkpoint, the samples whose value equals the clean one are dropped (they stay
        clean to the end) and the rest of the graph runs on the others only; the dropped
        samples take the clean output. Looking stops at the first checkpoint that drops no
        sample (faults are masked early, by a ReLU or a max pool, or not at all). Samples are
        independent in eval-mode CNNs, so this is exact (up to the float rounding of kernels
        at other batch sizes) and deterministic.
        """
        checkpoints, clean_out = clean
        site = cut.cached_site if on_output is not None else None
        env = {node: value if node is site else _stack(value, 1) for node, value in live.items()}
        if site is not None:
            value = on_output(site.target, env[site])
            env[site] = value.clone() if value is live[site] else value
        rows: torch.Tensor | None = None  # the samples still computed (None: all)
        checking = True  # faults are masked early (a ReLU, a max pool): stop looking once
        for i in range(cut.index, len(self.nodes)):  # a checkpoint drops no sample
            node = self.nodes[i]
            if node.op == "output":
                out = fx.node.map_arg(node.args[0], env.__getitem__)
                if rows is None:
                    return out
                full = clean_out.clone()
                full[rows] = out
                return full
            env[node] = self._run_node(node, env, None, on_input, on_output, call_module)
            if not checking or i <= last_site or i not in checkpoints:
                continue
            value = env[node]
            reference = checkpoints[i] if rows is None else checkpoints[i][rows]
            if not isinstance(value, torch.Tensor) or value.shape != reference.shape or (
                    not value.dim()):
                continue
            differs = (value != reference).reshape(len(value), -1).any(1)
            if bool(differs.all()):
                checking = False
                continue
            keep = differs.nonzero().flatten()
            rows = keep if rows is None else rows[keep]
            if not len(rows):
                return clean_out.clone()
            env = {node: value[keep]}
        raise ApproxmapError("The traced graph has no output node.")

    def last_site_node(self, sites: Iterable[Site]) -> int:
        """The index of the last node at which any of these sites acts."""
        return max(self.site_nodes[site.module][-1] for site in sites)

    def _run_node(self, node, env, x, on_input, on_output, call_module=None):
        if node.op == "placeholder":
            return x
        args = fx.node.map_arg(node.args, lambda n: env[n])
        kwargs = fx.node.map_arg(node.kwargs, lambda n: env[n])
        if node.op == "call_function":
            return node.target(*args, **kwargs)
        if node.op == "call_method":
            obj, *rest = args
            return getattr(obj, node.target)(*rest, **kwargs)
        if node.op == "get_attr":
            return self._traced.fetch(self.module, node.target)
        module = self._modules[node.target]
        if node.target not in self.site_nodes:
            return module(*args, **kwargs)
        if on_input is not None:
            args = (on_input(node.target, args[0]), *args[1:])
        if call_module is not None:
            out = call_module(node.target, module, args, kwargs)
        else:
            out = module(*args, **kwargs)
        return out if on_output is None else on_output(node.target, out)


def _stack(value: Any, copies: int) -> Any:
    """`copies` fresh copies of a tensor along dim 0 (a fresh copy also for copies == 1)."""
    if isinstance(value, torch.Tensor):
        return value.repeat(copies, *([1] * (value.dim() - 1))) if value.dim() else value.clone()
    return value


def stackable(live: dict[fx.Node, Any]) -> bool:
    """True when every live value is a tensor with a batch dimension (no baked-in sizes)."""
    return all(isinstance(v, torch.Tensor) and v.dim() > 0 for v in live.values())


def run_from(runner: GraphRunner, x: torch.Tensor, index: int) -> torch.Tensor:
    """The model's output computed as prefix + suffix split before node `index`."""
    cut = Cut(index, None)
    return runner.suffix(runner.prefix(x, cut), cut, 1)


__all__: Sequence[str] = ["Cut", "GraphRunner", "run_from", "stackable"]
