"""The local engine: runs the clean pass and trials in this process, on one device.

Per batch, the part of the network before the first injected site runs once (torch.fx
graph split, `graph.py`) and only the rest runs per trial; models fx cannot split run a
full forward per trial with hooks (said once).
"""

from __future__ import annotations

import contextlib
import copy
import warnings
from collections.abc import Iterator, Sequence
from itertools import groupby

import torch
from torch import nn
from tqdm.auto import tqdm

from approxmap.core.data import EvalData
from approxmap.core.exceptions import ApproxmapError, InvalidParameterError, ModelError
from approxmap.core.layers import model_dtype
from approxmap.core.scenario import Scenario
from approxmap.core.sites import Site
from approxmap.engine.base import (
    Calibration,
    Engine,
    OnFinished,
    TrialPlan,
    eval_mode,
    register_engine,
)
from approxmap.engine.calibrate import calibrate, run_model
from approxmap.engine.graph import GraphRunner, stackable
from approxmap.engine.trial import ActiveTrial, attached

# Trials computed (and then committed) together: bounds the work an interrupt can lose
# and the memory of faulty parameters held at once; one prefix pass serves them all.
MAX_GROUP = 64


@register_engine("local")
class LocalEngine(Engine):
    """Executes trials in this process. Engines differ in where trials run, never in what
    they compute.

    Args:
        device: "cpu" (default), "cuda", "cuda:N" or "auto".
        prefix_cache: split the graph with torch.fx and run the clean prefix once per batch
            (falls back to a full forward with hooks, with one warning, if fx cannot split).
        stack_memory_mb: activation memory (MiB) that trials stacked along the batch dimension
            may take in one forward; 0 (default) runs one trial per forward. Stacking cuts
            per-op overhead when the suffix is small, but matrix kernels may round the last
            bits differently for other batch sizes, so a stacked trial recomputed alone can
            differ in the last float bits; unstacked, it is bit-identical.
        threads: torch intra-op threads while this engine computes (None, the default: the
            process's setting). On the CPU some kernels round differently with another
            thread count (MKL's GEMM for a batch of a few rows), so records are bit-identical
            across engines and machines when this is the same; the Ray engine uses 1.
    """

    def __init__(self, device: str | torch.device = "cpu", prefix_cache: bool = True,
                 stack_memory_mb: int = 0, threads: int | None = None) -> None:
        super().__init__(device)
        if isinstance(stack_memory_mb, bool) or not isinstance(stack_memory_mb, int) or (
                stack_memory_mb < 0):
            raise InvalidParameterError(f"stack_memory_mb must be an integer >= 0. Got {stack_memory_mb!r}.")
        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int)
                                    or threads < 1):
            raise InvalidParameterError(f"threads must be an integer >= 1 or None. Got {threads!r}.")
        self.prefix_cache = prefix_cache
        self.stack_memory_mb = stack_memory_mb
        self.threads = threads
        self._placed: dict[int, tuple[nn.Module, nn.Module]] = {}

    def place(self, model: nn.Module) -> nn.Module:
        """The model on this engine's device: itself when it is there, else a copy (cached)."""
        if all(t.device == self.device for t in (*model.parameters(), *model.buffers())):
            return model
        cached = self._placed.get(id(model))
        if cached is None or cached[0] is not model:
            cached = (model, copy.deepcopy(model).to(self.device))
            self._placed[id(model)] = cached
        return cached[1]

    def prepare(self, model: nn.Module):
        """A function moving an input batch to the model's device and floating dtype."""
        dtype = model_dtype(model)

        def move(x: torch.Tensor) -> torch.Tensor:
            return x.to(device=self.device, dtype=dtype if x.is_floating_point() else x.dtype)

        return move

    @torch.no_grad()
    def calibrate(self, model: nn.Module, data: EvalData, batch_size: int,
                  sites: Sequence[Site], stats_data: EvalData | None = None) -> Calibration:
        placed = self.place(model)
        with eval_mode(placed), pinned_threads(self.threads):
            return calibrate(placed, data, batch_size, sites, stats_data, self.prepare(placed))

    @torch.no_grad()
    def run(self, model: nn.Module, data: EvalData, batch_size: int, plans: Sequence[TrialPlan],
            calibration: Calibration, on_finished: OnFinished, *, progress: bool = False,
            desc: str = "trials") -> None:
        if not plans:
            return
        placed = self.place(model)
        with eval_mode(placed), pinned_threads(self.threads):
            self._run(placed, data, batch_size, plans, calibration, on_finished, progress, desc)

    def _run(self, model, data, batch_size, plans, calibration, on_finished, progress, desc):
        runners = _Runners(model, plans) if self.prefix_cache else None
        modules = dict(model.named_modules())
        batches = -(-len(calibration.clean_top1) // batch_size) if data.x is not None else None
        total = None if batches is None else len(plans) * batches
        prepare = self.prepare(model)
        with tqdm(total=total, desc=desc, unit="trial-batch", disable=not progress,
                  leave=False, dynamic_ncols=True, mininterval=0.5) as bar:
            for group in _groups(plans):
                runner = runners.get(group[0].scenario) if runners else None
                trials = [ActiveTrial.from_plan(p, modules, calibration.site_stats, self.device)
                          for p in group]
                clean = [t for t in trials if t.is_clean()]
                for trial in clean:  # no error at all: the clean pass already measured it
                    trial.counts = calibration.counts.copy()
                bar.update(len(clean) * (batches or 0))
                noisy = [t for t in trials if not t.is_clean()]
                if noisy:
                    self._stream(model, runner, data, batch_size, noisy, calibration, bar, prepare)
                on_finished([t.record() for t in trials])

    def _stream(self, model, runner, data, batch_size, trials, calibration, bar, prepare) -> None:
        offset = 0
        for x, y in data.batches(batch_size):
            clean = calibration.clean_top1[offset:offset + len(x)]
            offset += len(x)
            x = prepare(x)
            if runner is None:
                for trial in trials:
                    with attached(model, trial):
                        trial.counts.update(run_model(model, x), y, clean)
            else:
                self._stream_graph(runner, x, y, clean, trials, calibration)
            bar.update(len(trials))

    def _stream_graph(self, runner, x, y, clean, trials, calibration) -> None:
        cut = runner.cut(trials[0].plan.scenario.sites)
        live = _guarded(runner.prefix, x, cut)
        sparse = [t for t in trials if t.sparse] if stackable(live) else []
        if sparse:  # sparse faults: each trial computes only the samples they still change
            reference = _guarded(runner.clean_values, x, runner.checkpoints(cut.index))
            for trial in sparse:
                last = runner.last_site_node(trial.plan.scenario.sites)
                logits = _guarded(runner.suffix_sparse, live, cut, last, reference,
                                  *_hooks([trial], len(x)))
                trial.counts.update(logits, y, clean)
        trials = [t for t in trials if not t.sparse] if sparse else trials
        per_forward = self._stack_size(len(x), calibration) if stackable(live) else 1
        for start in range(0, len(trials), per_forward):
            chunk = trials[start:start + per_forward]
            logits = _guarded(runner.suffix, live, cut, len(chunk), *_hooks(chunk, len(x)))
            for trial, part in zip(chunk, logits.split(len(x)), strict=True):
                trial.counts.update(part, y, clean)

    def _stack_size(self, batch: int, calibration: Calibration) -> int:
        per_copy = max(calibration.sample_bytes * batch, 1)
        return max(1, int(self.stack_memory_mb * 2**20 // per_copy))

    def describe(self) -> dict:
        return {**super().describe(), "prefix_cache": self.prefix_cache,
                "stack_memory_mb": self.stack_memory_mb, "threads": self.threads}


@contextlib.contextmanager
def pinned_threads(threads: int | None) -> Iterator[None]:
    """torch's intra-op thread count set to `threads` (None: unchanged), restored on exit."""
    before = torch.get_num_threads()
    if threads is None or threads == before:
        yield
        return
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _guarded(fn, *args):
    """Run a graph part; an exception from the model's own code becomes one ModelError."""
    try:
        return fn(*args)
    except (ApproxmapError, KeyboardInterrupt, MemoryError):
        raise
    except BaseException as exc:
        raise ModelError.from_exception(exc) from None


class _Runners:
    """Graph runners for groups of trials: one traced graph for all sites when possible.

    A site module nested in another site module (a block and its own conv) cannot be a
    node of the same graph, so such groups get a graph of their own; a group that no graph
    can serve (fx cannot split the model) runs full forwards with hooks, said once.
    """

    def __init__(self, model: nn.Module, plans: Sequence[TrialPlan]) -> None:
        self.model = model
        self.shared: GraphRunner | None = None
        self.own: dict[frozenset[str], GraphRunner | None] = {}
        self.warned = False
        try:
            self.shared = GraphRunner(model, {s.module for p in plans for s in p.scenario.sites})
        except ApproxmapError:
            pass

    def get(self, scenario: Scenario) -> GraphRunner | None:
        if self.shared is not None:
            return self.shared
        modules = frozenset(site.module for site in scenario.sites)
        if modules not in self.own:
            try:
                self.own[modules] = GraphRunner(self.model, modules)
            except ApproxmapError as exc:
                self.own[modules] = None
                if not self.warned:
                    warnings.warn(f"{exc}; falling back to a full forward per trial (slower).",
                                  stacklevel=4)
                    self.warned = True
        return self.own[modules]


def _groups(plans: Sequence[TrialPlan]) -> Iterator[list[TrialPlan]]:
    """Trials injecting at the same modules and targets (any channels): they share one cut,
    so one prefix per batch."""

    def places(plan: TrialPlan) -> tuple[tuple[str, str], ...]:
        return tuple(sorted({(site.module, site.target) for site in plan.scenario.sites}))

    ordered = sorted(plans, key=lambda p: (places(p), p.scenario.key, p.trial))
    for _, group in groupby(ordered, key=places):
        group = list(group)
        for start in range(0, len(group), MAX_GROUP):
            yield group[start:start + MAX_GROUP]


def _hooks(chunk: list[ActiveTrial], batch: int):
    """on_input, on_output and call_module hooks for trials stacked along the batch dim."""

    def per_trial(table: str, transform: str):
        def hook(module: str, value: torch.Tensor) -> torch.Tensor:
            if not any(module in getattr(t, table) for t in chunk):
                return value
            parts = [getattr(t, transform)(module, part)
                     for t, part in zip(chunk, value.split(batch), strict=True)]
            return parts[0] if len(parts) == 1 else torch.cat(parts)

        return hook

    def call_module(name: str, module: nn.Module, args: tuple, kwargs: dict):
        if not any(name in t.params or name in t.calls for t in chunk):
            return module(*args, **kwargs)
        outs = [t.call(name, module, (part, *args[1:]), kwargs)
                for t, part in zip(chunk, args[0].split(batch), strict=True)]
        return outs[0] if len(outs) == 1 else torch.cat(outs)

    return (per_trial("at_input", "transform_input"), per_trial("at_output", "transform_output"),
            call_module)


__all__ = ["LocalEngine", "MAX_GROUP", "pinned_threads"]
