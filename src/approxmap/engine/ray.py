"""The Ray engine: a campaign's trials run on the workers of a Ray cluster; the driver keeps
the store.

    pip install 'approxmap[ray]'          # ray==2.60.0
    approxmap profile --engine ray                        # a local Ray instance, 1 worker per CPU
    approxmap profile --engine ray --address auto         # the cluster `ray start` made

>>> from approxmap import ModelRecipe, RayEngine, Run
>>> engine = RayEngine(workers=4, rebuild=ModelRecipe.from_spec("mnist-cnn"))  # doctest: +SKIP
>>> run = Run(engine=engine, store="runs/x/results.sqlite")                    # doctest: +SKIP

How it works:

- The clean pass (`calibrate`) runs on the driver with the local engine (with this engine's
  `threads`): its clean predictions and site statistics are what every trial compares
  against and draws from, it is one forward pass over the data, and computing it in one
  place means the trials of every worker see the same bits.
- `run` puts the model, the evaluation batches and the calibration into Ray's object store
  once (again only when one of them changes) and splits the trials into groups: the local
  engine's groups (trials injecting at the same places, at most 64), cut smaller when that
  gives every worker about four groups. Worker actors (one per CPU of the cluster, one per
  GPU with a CUDA device; `workers=` to choose) each build the model once, then compute
  group after group with the local engine, one torch thread each (`threads=`), and send the
  records back. The driver alone hands them to `on_finished` (which writes results.sqlite),
  so an interrupted campaign resumes exactly as a local one.
- A trial's record depends only on the model, the data, the batch size and its plan, and
  on the CPU on the number of torch threads: MKL's GEMM rounds a batch of a few rows
  (mnist-cnn's 1152x256 Linear on a last batch of 10) differently with 1 and 2 threads. Both
  engines therefore pin it the same way: `threads` (default 1) here, for the driver's clean
  pass and every worker; `LocalEngine(threads=1)` computes the same records bit for bit
  (tested on the CPU with 1, 2 and 3 workers and on two nodes). With `stack_memory_mb` > 0
  the same caveat as locally holds.
- A worker that dies (killed, out of memory) is restarted and its groups run again, up to
  `max_retries` times; a record is stored once (the store ignores a second copy of a
  trial). Ctrl-C on the driver stops the workers; the finished groups are stored.

How workers get the model (`rebuild=`):

- a `ModelRecipe` (`ModelRecipe.from_spec("resnet20")`, `"path/net.py:build"`,
  `"pkg.module:factory"`): workers build the architecture themselves (a named file travels as
  its text) and load the state_dict of the model given to `run`. No pickled code travels.
  The command line always uses this.
- `"pickle"`: the model object itself is serialized (cloudpickle, the protocol
  `copy.deepcopy` copies by), hooks and parametrizations included; classes defined in the
  driver's `__main__` or a notebook travel as code. Only on request, for a model no spec
  builds (a model edited in memory).
- any other picklable zero-argument callable returning the architecture works as a recipe.

Before its first group every worker runs the rebuilt model on a few inputs and compares its
outputs with the driver's model's: a model the recipe does not rebuild exactly (hooks,
parametrizations, modules changed after construction) is an error, never silently other
results. Custom error models and targets must be importable on the workers (defined in a
module, not in `__main__`).
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from approxmap.core.data import EvalData
from approxmap.core.exceptions import ApproxmapError, InvalidParameterError
from approxmap.core.records import TrialRecord
from approxmap.engine.base import (
    Calibration,
    Engine,
    OnFinished,
    TrialPlan,
    eval_mode,
    register_engine,
)
from approxmap.engine.calibrate import run_model
from approxmap.engine.local import MAX_GROUP, LocalEngine, _groups

RAY_REQUIREMENT = "ray==2.60.0"
INSTALL_HINT = ("The ray engine needs Ray, which is not installed: "
                f"pip install 'approxmap[ray]' ({RAY_REQUIREMENT}).")
PICKLE = "pickle"
IN_FLIGHT = 1            # groups per worker at a time: a worker never holds work another could take
GROUPS_PER_WORKER = 4    # groups are cut smaller until each worker gets about this many
START_TIMEOUT_S = 120.0  # no worker started in this time: the cluster has no room
PROBE_SAMPLES = 8


def import_ray():
    """The `ray` module, or ApproxmapError saying how to install it (also when `ray` is only
    a folder of that name on sys.path, such as tests/ray)."""
    try:
        import ray
    except ImportError:
        raise ApproxmapError(INSTALL_HINT) from None
    if not hasattr(ray, "init"):
        raise ApproxmapError(INSTALL_HINT)
    return ray


@register_engine("ray")
class RayEngine(Engine):
    """Runs trials on the workers of a Ray cluster; the clean pass and the store stay on the
    driver (see the module's documentation).

    Args:
        address: the cluster to connect to ("auto", "HOST:6379", "ray://HOST:10001";
            "local": a new local instance). None: the Ray instance this process already
            initialized, else Ray's default ($RAY_ADDRESS, the cluster `ray start` began on
            this machine, else a new local instance). One this engine started is shut down
            by `close`.
        workers: worker actors (default: one per CPU of the cluster, divided by
            `worker_cpus`; one per GPU with a CUDA device).
        device: "cpu", "cuda" or "auto" for the workers (each CUDA worker gets one GPU of
            its own; "cuda:N" means "cuda"); the driver's clean pass runs on it too.
        rebuild: how workers get the model: a ModelRecipe (or another picklable callable
            building the architecture; the state_dict is sent), or "pickle" (the object).
        threads: torch intra-op threads of each worker and of the driver's clean pass (the
            records equal those of `LocalEngine(threads=...)` with the same number).
        worker_cpus: Ray CPUs reserved per worker (a fraction over-subscribes the CPUs).
        group_size: the most trials per group sent to a worker (default: automatic, <= 64).
        prefix_cache, stack_memory_mb: as for the local engine, on every worker.
        max_retries: restarts of a worker that died, and runs again of its groups.

    Raises:
        ApproxmapError: Ray is not installed (`pip install 'approxmap[ray]'`).
        InvalidParameterError: an option out of range.
    """

    def __init__(self, address: str | None = None, workers: int | None = None,
                 device: str | torch.device = "cpu",
                 rebuild: Callable[[], nn.Module] | str | None = None, *, threads: int = 1,
                 worker_cpus: float = 1.0, group_size: int | None = None,
                 prefix_cache: bool = True, stack_memory_mb: int = 0,
                 max_retries: int = 3) -> None:
        if isinstance(device, str) and device.startswith("cuda:"):
            device = "cuda" if device[5:].isdigit() else device
        super().__init__(device)
        if address is not None and (not isinstance(address, str) or not address.strip()):
            raise InvalidParameterError(f"address must be a Ray address such as 'auto' or "
                                        f"'HOST:6379'. Got {address!r}.")
        for name, value, low in (("workers", workers, 1), ("threads", threads, 1),
                                 ("group_size", group_size, 1), ("max_retries", max_retries, 0)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                      or value < low):
                raise InvalidParameterError(f"{name} must be an integer >= {low}. Got {value!r}.")
        if isinstance(worker_cpus, bool) or not isinstance(worker_cpus, int | float) or not (
                0 < worker_cpus <= 1024):
            raise InvalidParameterError(f"worker_cpus must be a number > 0. Got {worker_cpus!r}.")
        if not (rebuild is None or rebuild == PICKLE or (callable(rebuild)
                                                         and not isinstance(rebuild, str))):
            raise InvalidParameterError(
                f"rebuild must be a ModelRecipe (or another callable building the model) or "
                f"'pickle'. Got {rebuild!r}.")
        self._local = LocalEngine(self.device, prefix_cache=prefix_cache,  # validates these
                                  stack_memory_mb=stack_memory_mb, threads=threads)
        self.ray = import_ray()
        self.address, self.workers, self.rebuild = address, workers, rebuild
        self.threads, self.worker_cpus, self.group_size = threads, worker_cpus, group_size
        self.prefix_cache, self.stack_memory_mb = prefix_cache, stack_memory_mb
        self.max_retries = max_retries
        self._initialized_ray = False
        self._actors: list[Any] = []
        self._ready: dict[int, tuple[int, str]] = {}  # actor index -> (pid, node id)
        self._shipped: dict[str, _Shipped] = {}  # "model", "data", "calibration"

    # -- the Engine protocol ------------------------------------------------------------------

    def calibrate(self, model: nn.Module, data: EvalData, batch_size: int,
                  sites: Sequence, stats_data: EvalData | None = None) -> Calibration:
        """The clean pass, on the driver (the local engine on this engine's device)."""
        return self._local.calibrate(model, data, batch_size, sites, stats_data)

    def run(self, model: nn.Module, data: EvalData, batch_size: int, plans: Sequence[TrialPlan],
            calibration: Calibration, on_finished: OnFinished, *, progress: bool = False,
            desc: str = "trials") -> None:
        if not plans:
            return
        self._connect()
        refs = [self._ship_model(model, data), self._ship_data(data, batch_size),
                self._ship("calibration", calibration, (id(calibration),), lambda: calibration)]
        workers = self._pool()
        units = self.groups(plans, len(workers))
        batches = self._shipped["data"].batches
        with tqdm(total=len(plans) * batches, desc=desc, unit="trial-batch", leave=False,
                  disable=not progress, dynamic_ncols=True, mininterval=0.5) as bar:
            self._dispatch(refs, batch_size, units, on_finished, bar, batches)

    def describe(self) -> dict[str, Any]:
        how = ("pickle" if self.rebuild == PICKLE else
               getattr(self.rebuild, "spec", None) or type(self.rebuild).__name__
               if self.rebuild is not None else None)
        return {**super().describe(), "address": self.address, "workers": self.workers,
                "rebuild": how, "threads": self.threads, "prefix_cache": self.prefix_cache,
                "stack_memory_mb": self.stack_memory_mb}

    # -- groups --------------------------------------------------------------------------------

    def groups(self, plans: Sequence[TrialPlan], workers: int) -> list[list[TrialPlan]]:
        """The groups sent to workers: the local engine's groups (one cut each), split into
        near-equal parts of at most `group_size` trials (default: so that every worker gets
        about GROUPS_PER_WORKER groups, at most MAX_GROUP trials each)."""
        size = self.group_size or math.ceil(len(plans) / (GROUPS_PER_WORKER * workers))
        size = max(1, min(size, MAX_GROUP))
        units = []
        for group in _groups(plans):
            parts = math.ceil(len(group) / size)
            step = math.ceil(len(group) / parts)
            units += [group[i:i + step] for i in range(0, len(group), step)]
        return units

    # -- the cluster ---------------------------------------------------------------------------

    def _connect(self) -> None:
        ray = self.ray
        if ray.is_initialized():
            return
        try:
            ray.init(address=self.address, include_dashboard=False,
                     logging_level=logging.WARNING)
        except (ConnectionError, ValueError, RuntimeError, TimeoutError) as exc:
            where = self.address or os.environ.get("RAY_ADDRESS") or "a new local instance"
            raise ApproxmapError(f"Cannot start or reach Ray ({where}): {_first_line(exc)}") from None
        self._initialized_ray = True

    def _pool(self) -> list[Any]:
        """The worker actors (started on first use, kept for later runs until `close`)."""
        if self._actors:
            return self._actors
        ray = self.ray
        cuda = self.device.type == "cuda"
        count = self.workers
        if count is None:
            resources = ray.cluster_resources()
            if cuda:
                count = int(resources.get("GPU", 0))
                if count < 1:
                    raise ApproxmapError("device cuda was asked for, but the Ray cluster has no "
                                         "GPU; use --device cpu or add GPU nodes.")
            else:
                count = max(1, int(resources.get("CPU", 1) // self.worker_cpus))
        actor = ray.remote(_Worker).options(
            num_cpus=self.worker_cpus, num_gpus=1 if cuda else 0,
            max_restarts=self.max_retries, max_task_retries=self.max_retries)
        options = {"device": "cuda" if cuda else "cpu", "threads": self.threads,
                   "prefix_cache": self.prefix_cache, "stack_memory_mb": self.stack_memory_mb}
        self._actors = [actor.remote(**options) for _ in range(count)]
        self._ready = {}
        return self._actors

    def start(self) -> RayEngine:
        """Connect, start the workers and wait until each is up (else `run` does it, and
        starts on the first ones up).

        Raises:
            ApproxmapError: Ray cannot be reached, or no worker started within 120 s.
        """
        self._connect()
        actors = self._pool()
        starting = {actors[i].ready.remote(): i for i in range(len(actors)) if i not in self._ready}
        deadline = time.monotonic() + START_TIMEOUT_S
        while starting:
            done, _ = self.ray.wait(list(starting), num_returns=1,
                                    timeout=max(0.0, deadline - time.monotonic()))
            if not done:
                raise ApproxmapError(self._no_room(len(actors) - len(starting), len(actors)))
            self._ready[starting.pop(done[0])] = self._result(done[0], None)
        return self

    def _no_room(self, started: int, wanted: int) -> str:
        gpu = ", 1 GPU" if self.device.type == "cuda" else ""
        return (f"Only {started} of {wanted} Ray workers started within {START_TIMEOUT_S:.0f} s; "
                f"the cluster has {self.ray.available_resources()} free (each worker takes "
                f"{self.worker_cpus} CPU{gpu}).")

    def worker_processes(self) -> dict[int, tuple[int, str]]:
        """Each started worker's (process id, Ray node id), as of its last finished group."""
        return dict(self._ready)

    def close(self) -> None:
        """Stop the workers, drop what was put in the object store, and shut down the Ray
        instance this engine started (a cluster it connected to keeps running)."""
        self._drop_pool()
        self._shipped.clear()
        if self._initialized_ray and self.ray.is_initialized():
            self.ray.shutdown()
        self._initialized_ray = False

    def __enter__(self) -> RayEngine:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def _drop_pool(self) -> None:
        for actor in self._actors:
            try:
                self.ray.kill(actor, no_restart=True)
            except Exception:  # already gone, or Ray is shutting down
                pass
        self._actors, self._ready = [], {}

    # -- what travels --------------------------------------------------------------------------

    def _ship(self, slot: str, obj: Any, key: tuple, payload: Callable[[], Any]) -> Any:
        """The object-store reference of `obj` (put once; again when its key changes)."""
        held = self._shipped.get(slot)
        if held is None or held.key != key or held.obj is not obj:
            self._shipped.pop(slot, None)  # frees the old copy first
            value = payload()
            self._shipped[slot] = _Shipped(key, obj, self.ray.put(value),
                                           len(getattr(value, "arrays", ())))
        return self._shipped[slot].ref

    def _ship_model(self, model: nn.Module, data: EvalData) -> Any:
        if self.rebuild is None:
            raise ApproxmapError(
                "The ray engine needs to know how its workers rebuild the model: pass "
                "rebuild=ModelRecipe.from_spec(SPEC) (a zoo name or path/file.py:factory; only "
                "the weights travel), or rebuild='pickle' to send the model object itself "
                "(code defined in __main__ travels with it).")
        state = model.state_dict()
        key = tuple((name, value.data_ptr(), value._version, str(value.device), value.dtype)
                    if isinstance(value, torch.Tensor) else (name, id(value))
                    for name, value in state.items())
        return self._ship("model", model, key, lambda: self._model_payload(model, data))

    def _model_payload(self, model: nn.Module, data: EvalData) -> _ModelPayload:
        placed = self._local.place(model)
        probe = data.sample(PROBE_SAMPLES)
        with torch.no_grad(), eval_mode(placed):
            expected = run_model(placed, self._local.prepare(placed)(probe))
        expected = expected.detach().cpu() if isinstance(expected, torch.Tensor) else None
        if self.rebuild == PICKLE:
            on_cpu = all(t.device.type == "cpu" for t in (*model.parameters(), *model.buffers()))
            obj = model if on_cpu else _cpu_copy(model)
            return _ModelPayload(PICKLE, None, None, obj, probe, expected)
        state = {k: v.detach().cpu() if isinstance(v, torch.Tensor) else v
                 for k, v in model.state_dict().items()}
        return _ModelPayload("recipe", self.rebuild, state, None, probe, expected)

    def _ship_data(self, data: EvalData, batch_size: int) -> Any:
        def payload() -> _ShippedData:
            return _ShippedData(data.name, [(_array(x), None if y is None else _array(y))
                                            for x, y in data.batches(batch_size)])

        return self._ship("data", data, (id(data), batch_size), payload)

    # -- dispatch ------------------------------------------------------------------------------

    def _dispatch(self, refs: list, batch_size: int, units: list[list[TrialPlan]],
                  on_finished: OnFinished, bar: tqdm, batches: int) -> None:
        ray = self.ray
        actors = self._actors
        queue = deque(units)
        pending: dict[Any, tuple[int, list[TrialPlan]]] = {}
        load = dict.fromkeys(range(len(actors)), 0)
        starting = {actors[i].ready.remote(): i for i in range(len(actors)) if i not in self._ready}
        since = time.monotonic()

        def feed(i: int) -> None:
            while queue and load[i] < IN_FLIGHT:
                unit = queue.popleft()
                pending[actors[i].run.remote(refs, batch_size, unit)] = (i, unit)
                load[i] += 1

        for i in self._ready:
            feed(i)
        try:
            while pending or (queue and starting):
                done, _ = ray.wait([*starting, *pending], num_returns=1, timeout=1.0)
                if not done:
                    if not pending and time.monotonic() - since > START_TIMEOUT_S:
                        raise ApproxmapError(self._no_room(len(self._ready), len(actors)))
                    continue
                ref = done[0]
                if ref in starting:
                    i = starting.pop(ref)
                    self._ready[i] = self._result(ref, None)
                    feed(i)
                    continue
                i, unit = pending.pop(ref)
                load[i] -= 1
                pid, records = self._result(ref, unit)
                self._ready[i] = (pid, self._ready[i][1])
                on_finished(records)
                bar.update(len(unit) * batches)
                feed(i)
        except BaseException:  # Ctrl-C, a model error, a lost worker: stop the others
            self._drop_pool()
            raise

    def _result(self, ref: Any, unit: list[TrialPlan] | None) -> Any:
        ray = self.ray
        try:
            return ray.get(ref)
        except ray.exceptions.RayTaskError as exc:
            cause = getattr(exc, "cause", None)
            if isinstance(cause, ApproxmapError | MemoryError):
                raise cause from None
            raise ApproxmapError(f"A Ray worker raised {_first_line(exc)}") from None
        except ray.exceptions.RayError as exc:
            what = (f"a group of {len(unit)} trials ({unit[0].scenario.key} ...)" if unit
                    else "its start")
            raise ApproxmapError(
                f"A Ray worker was lost running {what} after {self.max_retries} restart(s): "
                f"{_first_line(exc)}. Finished trials are stored; running again resumes.") from None


# -- payloads and the worker -------------------------------------------------------------------


@dataclass
class _ModelPayload:
    """The model as it travels: a recipe and a state_dict, or the object itself; plus a few
    inputs and the driver's outputs on them."""

    how: str
    recipe: Callable[[], nn.Module] | None
    state: dict[str, Any] | None
    model: nn.Module | None
    probe: torch.Tensor
    expected: torch.Tensor | None


@dataclass
class _Shipped:
    """An object put in the object store: its key, the object (held, so that its id stays
    its own), the reference, and the number of batches (for data)."""

    key: tuple
    obj: Any
    ref: Any
    batches: int = 0


class _ShippedData(EvalData):
    """The evaluation batches as numpy arrays: in the object store, workers of one node map
    them without a copy each; a batch is copied into a fresh tensor when served (a model may
    write into its input)."""

    def __init__(self, name: str, arrays: list[tuple[Any, Any]]) -> None:
        self.x, self.y, self._batches = None, None, None
        self.name, self.arrays = name, arrays
        self.selection = f"{len(self)} samples in {len(arrays)} batches"

    def __len__(self) -> int:
        return sum(len(x) for x, _ in self.arrays)

    @property
    def labeled(self) -> bool:
        return bool(self.arrays) and self.arrays[0][1] is not None

    def sample(self, n: int = 2) -> torch.Tensor:
        return _tensor(self.arrays[0][0][:n])

    def batches(self, batch_size: int):
        for x, y in self.arrays:
            yield _tensor(x), None if y is None else _tensor(y)

    def _iter_given(self):
        return self.batches(0)


def _array(t: torch.Tensor) -> Any:
    t = t.detach().cpu().contiguous()
    try:
        return t.numpy()
    except TypeError:  # a dtype numpy lacks (bfloat16): the tensor travels as it is
        return t


def _tensor(a: Any) -> torch.Tensor:
    return a.clone() if isinstance(a, torch.Tensor) else torch.from_numpy(np.array(a))


def _cpu_copy(model: nn.Module) -> nn.Module:
    import copy

    return copy.deepcopy(model).cpu()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0][:300] if text else "") or type(exc).__name__


class _Worker:
    """A Ray actor: builds the model once per shipped model, then computes groups of trials
    with the local engine."""

    def __init__(self, device: str, threads: int, prefix_cache: bool,
                 stack_memory_mb: int) -> None:
        torch.set_num_threads(threads)
        self.engine = LocalEngine(device, prefix_cache=prefix_cache,
                                  stack_memory_mb=stack_memory_mb, threads=threads)
        self.held: dict[str, tuple[str, Any]] = {}

    def ready(self) -> tuple[int, str]:
        import ray

        return os.getpid(), ray.get_runtime_context().get_node_id()

    def run(self, refs: list, batch_size: int, plans: list[TrialPlan]
            ) -> tuple[int, list[TrialRecord]]:
        model = self._get("model", refs[0], self._build)
        data = self._get("data", refs[1])
        calibration = self._get("calibration", refs[2])
        records: list[TrialRecord] = []
        self.engine.run(model, data, batch_size, plans, calibration, records.extend)
        return os.getpid(), records

    def _get(self, slot: str, ref: Any, convert: Callable[[Any], Any] | None = None) -> Any:
        import ray

        key = ref.hex()
        held = self.held.get(slot)
        if held is None or held[0] != key:
            self.held.pop(slot, None)
            value = ray.get(ref)
            self.held[slot] = (key, convert(value) if convert else value)
        return self.held[slot][1]

    def _build(self, payload: _ModelPayload) -> nn.Module:
        if payload.how == PICKLE:
            model = payload.model
        else:
            model = payload.recipe()
            if not isinstance(model, nn.Module):
                raise ApproxmapError(f"The model recipe {payload.recipe!r} returned "
                                     f"{type(model).__name__}, not a torch.nn.Module.")
            try:
                model.load_state_dict(payload.state, strict=True, assign=True)
            except (RuntimeError, KeyError, ValueError, TypeError) as exc:
                raise ApproxmapError(
                    f"The Ray workers rebuilt the model from {_recipe_name(payload.recipe)}, but "
                    f"the model given to the engine has other parameters ({_first_line(exc)}); "
                    "give the recipe that builds it, or rebuild='pickle'.") from None
        model = model.to(self.engine.device).eval()
        if payload.expected is not None:
            with torch.no_grad(), eval_mode(model):
                out = run_model(model, self.engine.prepare(model)(payload.probe))
            problem = _mismatch(out, payload.expected)
            if problem:
                raise ApproxmapError(
                    f"The model the Ray workers rebuilt from {_recipe_name(payload.recipe)} "
                    f"computes other outputs than the model given to the engine ({problem}): it "
                    "has something its recipe does not rebuild (hooks, parametrizations, modules "
                    "changed after construction); give the recipe that builds it, or "
                    "rebuild='pickle'.")
        return model


def _recipe_name(recipe: Any) -> str:
    return repr(getattr(recipe, "spec", None) or recipe) if recipe is not None else "the pickle"


def _mismatch(out: Any, expected: torch.Tensor) -> str:
    """Why the rebuilt model's outputs are not the driver's (beyond float rounding), or ''."""
    if not isinstance(out, torch.Tensor):
        return f"it returns {type(out).__name__}"
    out = out.detach().float().cpu()
    expected = expected.float()
    if out.shape != expected.shape:
        return f"outputs of shape {tuple(out.shape)}, not {tuple(expected.shape)}"
    scale = float(expected[torch.isfinite(expected)].abs().max()) if expected.numel() and bool(
        torch.isfinite(expected).any()) else 1.0
    if torch.allclose(out, expected, rtol=1e-3, atol=1e-4 * max(scale, 1.0), equal_nan=True):
        return ""
    finite = torch.isfinite(out) & torch.isfinite(expected)
    diff = float((out - expected)[finite].abs().max()) if bool(finite.any()) else float("nan")
    return f"largest difference {diff:.3g} on {PROBE_SAMPLES} probe inputs"


__all__ = ["INSTALL_HINT", "RAY_REQUIREMENT", "RayEngine", "import_ray"]
