"""One clean pass over the evaluation data: reference predictions and site statistics."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import torch
from torch import nn

from approxmap.engine.metrics import Counts
from approxmap.exceptions import ApproxmapError, DataError, InvalidParameterError
from approxmap.sites import Site
from approxmap.zoo.datasets import EvalData


@dataclass
class Calibration:
    """Clean top-1 predictions (in data order), clean counts and the std of each site."""

    clean_top1: torch.Tensor
    counts: Counts
    site_std: dict[str, float] = field(default_factory=dict)
    sample_bytes: int = 0  # activation bytes per sample, summed over leaf modules
    num_outputs: int = 0


class _Moments:
    def __init__(self) -> None:
        self.n, self.s, self.ss = 0, 0.0, 0.0

    def add(self, t: torch.Tensor) -> None:
        t = t.detach().double()
        self.n += t.numel()
        self.s += float(t.sum())
        self.ss += float((t * t).sum())

    def std(self) -> float:
        if self.n < 2:
            return 0.0
        mean = self.s / self.n
        return max(self.ss / self.n - mean * mean, 0.0) ** 0.5


def _select(t: torch.Tensor, site: Site) -> torch.Tensor:
    if site.channels is None:
        return t
    dim = 0 if site.is_parameter else 1
    if t.dim() <= dim or max(site.channels) >= t.shape[dim]:
        raise InvalidParameterError(
            f"Channel {max(site.channels)} is out of range for {site.key}: the tensor there has "
            f"shape {tuple(t.shape)}."
        )
    return t.index_select(dim, torch.tensor(site.channels))


@torch.no_grad()
def calibrate(model: nn.Module, data: EvalData, batch_size: int, sites: Iterable[Site]) -> Calibration:
    """Run the clean model once; raise DataError when the data does not fit the model."""
    sites = list(dict.fromkeys(sites))
    modules = dict(model.named_modules())
    moments = {s.key: _Moments() for s in sites}
    handles, sizes = [], {}
    for site in sites:
        module = site.check(model)
        if site.is_parameter:
            moments[site.key].add(_select(getattr(module, site.target), site))
        else:
            handles.append(_stat_hook(modules[site.module], site, moments[site.key]))
    for name, module in modules.items():
        if name and not list(module.children()):
            handles.append(module.register_forward_hook(_size_hook(name, sizes)))
    try:
        preds, counts, num_outputs = _clean_pass(model, data, batch_size)
    finally:
        for handle in handles:
            handle.remove()
    return Calibration(torch.cat(preds), counts, {k: m.std() for k, m in moments.items()},
                       sum(sizes.values()), num_outputs)


def _clean_pass(model: nn.Module, data: EvalData, batch_size: int):
    preds, counts, num_outputs = [], Counts(), 0
    for i, (x, y) in enumerate(data.batches(batch_size)):
        try:
            logits = model(x)
        except ApproxmapError:
            raise
        except (RuntimeError, ValueError, TypeError, IndexError) as exc:
            if i:
                raise
            first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
            raise DataError(
                f"Data of sample shape {tuple(x.shape[1:])} does not fit the model: {first}"
            ) from None
        _check_output(logits, y, len(x))
        top1 = logits.argmax(dim=1)
        counts.update(logits, y, top1)
        num_outputs = logits.shape[1]
        preds.append(top1)
    if not preds:
        raise DataError("The evaluation data is empty.")
    return preds, counts, num_outputs


def _check_output(logits, labels, batch: int) -> None:
    if not isinstance(logits, torch.Tensor) or logits.dim() != 2 or len(logits) != batch:
        raise DataError(
            f"The model must return logits of shape (batch, classes); got "
            f"{tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__}."
        )
    if labels is not None and len(labels) and (labels.min() < 0 or labels.max() >= logits.shape[1]):
        raise DataError(
            f"Labels range over [{int(labels.min())}, {int(labels.max())}] but the model has "
            f"{logits.shape[1]} outputs: the data does not fit the model."
        )


def _stat_hook(module: nn.Module, site: Site, moments: _Moments):
    if site.target == "output":
        return module.register_forward_hook(lambda m, a, out: moments.add(_select(out, site)))
    return module.register_forward_pre_hook(lambda m, args: moments.add(_select(args[0], site)))


def _size_hook(name: str, sizes: dict[str, int]):
    def hook(module, args, out):
        if isinstance(out, torch.Tensor) and out.dim() > 0 and name not in sizes:
            sizes[name] = out[0].numel() * out.element_size()

    return hook
