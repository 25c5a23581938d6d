"""The clean pass: reference predictions and counts, and every site's statistics.

The statistics an error model may ask for (`SiteStats`: moments, ranges, per-channel
values, a sample for percentiles) are taken where each site's target says (the module's
output, its input, or a parameter), over the evaluation data or a separate calibration
split (`stats_data`).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable

import torch
from torch import nn

from approxmap.core.data import EvalData
from approxmap.core.exceptions import ApproxmapError, DataError, ModelError
from approxmap.core.layers import cast_to_model, model_dtype
from approxmap.core.outputs import check_logits
from approxmap.core.records import Counts
from approxmap.core.sites import Site
from approxmap.core.stats import StatsAccumulator
from approxmap.engine.base import Calibration, eval_mode

Prepare = Callable[[torch.Tensor], torch.Tensor]


@torch.no_grad()
def calibrate(model: nn.Module, data: EvalData, batch_size: int, sites: Iterable[Site],
              stats_data: EvalData | None = None, prepare: Prepare = lambda x: x) -> Calibration:
    """Run the clean model once over `data` (and `stats_data` for statistics, if given).

    `prepare` moves a batch of inputs to the model's device and dtype.

    Raises:
        DataError: the data does not fit the model, or the model does not return logits.
        ModelError: the model's forward raised (on any batch).
    """
    sites = list(dict.fromkeys(sites))
    modules = dict(model.named_modules())
    accumulators = {s.key: StatsAccumulator(s.kind.channel_dim) for s in sites}
    hooks = []
    for site in sites:
        module = site.check(model)
        static = site.kind.static_tensor(site, module)
        if static is not None:
            accumulators[site.key].add(static)
        else:
            hooks.append((modules[site.module], _stat_hook(site, accumulators[site.key])))
    sizes: dict[str, int] = {}
    leaves = [(name, m) for name, m in modules.items() if name and not list(m.children())]
    handles = [m.register_forward_hook(_size_hook(name, sizes)) for name, m in leaves]
    if stats_data is None:
        handles += [m.register_forward_hook(h) for m, h in hooks]
    try:
        preds, counts, num_outputs = _clean_pass(model, data, batch_size, prepare)
    finally:
        for handle in handles:
            handle.remove()
    if stats_data is not None and hooks:
        handles = [m.register_forward_hook(h) for m, h in hooks]
        try:
            for x, _ in stats_data.batches(batch_size):
                run_model(model, prepare(x))
        finally:
            for handle in handles:
                handle.remove()
    return Calibration(torch.cat(preds), counts, {k: a.result() for k, a in accumulators.items()},
                       sum(sizes.values()), num_outputs)


def run_model(model: nn.Module, x: torch.Tensor):
    """model(x), with any exception raised by the model's own code as one ModelError."""
    try:
        return model(x)
    except ApproxmapError:
        raise
    except (KeyboardInterrupt, MemoryError):
        raise
    except BaseException as exc:  # user code: SystemExit too must not end the process
        raise ModelError.from_exception(exc) from None


def check_model(model: nn.Module, data: EvalData, samples: int = 2) -> None:
    """Run the model on the first `samples` inputs and check that it returns logits.

    The check every command makes before any work (and before writing anything). A model
    held in bfloat16/float16 takes its inputs cast to that dtype (said once, as a warning).

    Raises:
        DataError: the data does not fit the model, or the output is not (batch, classes).
        ModelError: the model's forward raised.
    """
    dtype = model_dtype(model)
    if dtype != torch.float32:
        warnings.warn(f"the model holds {str(dtype).removeprefix('torch.')} parameters; inputs "
                      f"are cast to {str(dtype).removeprefix('torch.')}.", stacklevel=2)
    check_output(model, data, samples)


def check_output(model: nn.Module, data: EvalData, samples: int = 2) -> None:
    """`check_model` without the dtype warning: for analyses that run the model outside a
    campaign's clean pass (which checks every batch), before their first forward.

    Raises:
        DataError: the data does not fit the model, or the output is not (batch, classes).
        ModelError: the model's forward raised.
    """
    x = data.sample(samples)
    with torch.no_grad(), eval_mode(model):
        logits = _first_forward(model, cast_to_model(model, x))
    check_logits(logits, len(x))


def _first_forward(model: nn.Module, x: torch.Tensor):
    """model(x) for the first batch: an error that reads like a shape mismatch is the data's."""
    try:
        return run_model(model, x)
    except ModelError as exc:
        if not exc.reads_as_shape_mismatch():
            raise
        raise DataError(f"Data of sample shape {tuple(x.shape[1:])} does not fit the model: "
                        f"{exc.detail}") from None


def _clean_pass(model: nn.Module, data: EvalData, batch_size: int, prepare: Prepare):
    preds, counts, num_outputs = [], Counts(), 0
    for i, (x, y) in enumerate(data.batches(batch_size)):
        logits = run_model(model, prepare(x)) if i else _first_forward(model, prepare(x))
        check_logits(logits, len(x), y)
        top1 = logits.argmax(dim=1).cpu()
        counts.update(logits, y, top1)
        num_outputs = logits.shape[1]
        preds.append(top1)
    if not preds:
        raise DataError("The evaluation data is empty.")
    return preds, counts, num_outputs


def _stat_hook(site: Site, acc: StatsAccumulator):
    def hook(module, args, out):
        value = site.kind.observed(site, args, out)
        if value is not None:
            acc.add(value)

    return hook


def _size_hook(name: str, sizes: dict[str, int]):
    def hook(module, args, out):
        if isinstance(out, torch.Tensor) and out.dim() > 0 and name not in sizes:
            sizes[name] = out[0].numel() * out.element_size()

    return hook


__all__ = ["calibrate", "check_model", "check_output", "run_model"]
