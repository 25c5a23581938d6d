"""One-off injection: apply (site, error) pairs to a model with hooks, without changing it.

>>> from approxmap import Gaussian, Site
>>> with Injector(model, [(Site("fc"), Gaussian(std=0.1))], seed=0) as run:  # doctest: +SKIP
...     logits = run(x)

Hooks are registered on entry and always removed on exit, also when the forward raises.
Parameter errors are drawn once on entry (a faulty weight stays faulty for every input) and
applied through `torch.func.functional_call`, so the model's own parameters never change.
The model runs in eval mode inside the block; every module's own mode is given back on
exit (BatchNorm statistics are never updated by injected activations).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from approxmap.core.exceptions import InvalidParameterError
from approxmap.core.stats import SiteStats
from approxmap.engine.base import eval_mode
from approxmap.engine.trial import ActiveTrial, Injection, attached


class Injector:
    """Context manager running `model` with injected errors; entering returns the runner.

    Args:
        model: the network (never modified; evaluated in eval mode, modes restored after).
        injections: (Site, ErrorModel) pairs.
        seed / generator: exactly one; the generator advances with every call, as it does
            over a campaign's batches.
        stats: site key -> SiteStats, needed by relative-scale errors (e.g.
            `{site.key: SiteStats.of(activation)}`); campaigns measure them themselves.

    Raises:
        InvalidParameterError: neither or both of seed/generator; a relative error without
            the site's stats; an unknown site.
    """

    def __init__(self, model: nn.Module, injections: Sequence[Injection], seed: int | None = None,
                 generator: torch.Generator | None = None,
                 stats: Mapping[str, SiteStats] | None = None) -> None:
        if (seed is None) == (generator is None):
            raise InvalidParameterError("Give the Injector exactly one of seed= or generator=.")
        self.model = model
        self.injections = list(injections)
        self.stats = dict(stats or {})
        for site, error in self.injections:
            site.check(model)
            if error.relative and site.key not in self.stats:
                raise InvalidParameterError(
                    f"{error.label()} at {site.key} is relative to the site's clean values; "
                    "give stats={site.key: SiteStats.of(clean_values)} (campaigns measure them).")
        self.generator = generator or torch.Generator().manual_seed(seed)
        self.trial: ActiveTrial | None = None
        self._stack: list = []

    def __enter__(self):
        modes = eval_mode(self.model)
        modes.__enter__()
        self._stack.append(modes)
        try:
            self.trial = ActiveTrial(self.injections, dict(self.model.named_modules()),
                                     self.stats, self.generator)
            hooks = attached(self.model, self.trial)
            hooks.__enter__()
            self._stack.append(hooks)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self.run

    def __exit__(self, *exc_info) -> None:
        while self._stack:
            self._stack.pop().__exit__(None, None, None)

    def run(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


__all__ = ["Injector"]
