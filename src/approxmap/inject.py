"""Apply a scenario's errors to a model's activations and parameters, without mutating it.

>>> from approxmap.errors import Gaussian
>>> with Injector(model, [(Site("fc"), Gaussian(std=0.1))], seed=0) as run:  # doctest: +SKIP
...     logits = run(x)

Hooks are registered on entry and always removed on exit, also when the forward raises.
Parameter errors are drawn once on entry (a faulty weight stays faulty for every input) and
applied through `torch.func.functional_call`, so the model's own parameters never change.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from approxmap.errors import ErrorModel
from approxmap.exceptions import InvalidParameterError
from approxmap.sites import Site

Injection = tuple[Site, ErrorModel]


def apply_at_site(
    tensor: torch.Tensor, site: Site, error: ErrorModel, generator: torch.Generator
) -> torch.Tensor:
    """Return `tensor` with `error` applied to the site's channels (all when None)."""
    if site.channels is None:
        return error.apply(tensor, generator)
    dim = 0 if site.is_parameter else 1
    if tensor.dim() <= dim or max(site.channels) >= tensor.shape[dim]:
        raise InvalidParameterError(
            f"Channel {max(site.channels)} is out of range for {site.key}: the tensor there has "
            f"shape {tuple(tensor.shape)}."
        )
    index = torch.tensor(site.channels, device=tensor.device)
    part = error.apply(tensor.index_select(dim, index), generator)
    return tensor.index_copy(dim, index, part)


def perturbed_parameters(
    model: nn.Module, injections: Sequence[Injection], generator: torch.Generator
) -> dict[str, torch.Tensor]:
    """Draw the perturbed weights/biases of the parameter sites, in scenario order."""
    overrides: dict[str, torch.Tensor] = {}
    for site, error in injections:
        if site.is_parameter:
            module = site.check(model)
            clean = getattr(module, site.target).detach()
            overrides[f"{site.module}.{site.target}"] = apply_at_site(clean, site, error, generator)
    return overrides


class Injector:
    """Context manager injecting absolute-scale errors into `model` with forward hooks.

    Entering returns a callable running the model with the injected errors. Use it for one
    trial: the generator advances with every call, as it does over a campaign's batches.
    Parameter errors are drawn on entry unless `overrides` (from `perturbed_parameters`)
    are given, so that one trial can keep its faulty weights over several entries.
    """

    def __init__(
        self,
        model: nn.Module,
        injections: Sequence[Injection],
        seed: int | None = None,
        generator: torch.Generator | None = None,
        overrides: dict[str, torch.Tensor] | None = None,
    ) -> None:
        if (seed is None) == (generator is None):
            raise InvalidParameterError("Give the Injector exactly one of seed= or generator=.")
        self.model = model
        self.injections = list(injections)
        for site, error in self.injections:
            site.check(model)
            if error.relative:
                raise InvalidParameterError(
                    f"{error.label()} at {site.key} is relative to the site's clean std; "
                    "campaigns measure it, or call error.resolve(std) first."
                )
        self.generator = generator or torch.Generator().manual_seed(seed)
        self._handles: list = []
        self._given_overrides = overrides
        self.overrides: dict[str, torch.Tensor] = {}

    def __enter__(self):
        try:
            self.overrides = (perturbed_parameters(self.model, self.injections, self.generator)
                              if self._given_overrides is None else self._given_overrides)
            modules = dict(self.model.named_modules())
            for site, error in self.injections:
                if site.target == "output":
                    hook = self._output_hook(site, error)
                    self._handles.append(modules[site.module].register_forward_hook(hook))
                elif site.target == "input":
                    hook = self._input_hook(site, error)
                    self._handles.append(modules[site.module].register_forward_pre_hook(hook))
        except BaseException:
            self.remove()
            raise
        return self.run

    def __exit__(self, *exc_info) -> None:
        self.remove()

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def run(self, x: torch.Tensor) -> torch.Tensor:
        if not self.overrides:
            return self.model(x)
        return torch.func.functional_call(self.model, self.overrides, (x,), strict=False)

    def _output_hook(self, site: Site, error: ErrorModel):
        def hook(module, args, output):
            return apply_at_site(output, site, error, self.generator)

        return hook

    def _input_hook(self, site: Site, error: ErrorModel):
        def hook(module, args):
            return (apply_at_site(args[0], site, error, self.generator), *args[1:])

        return hook
