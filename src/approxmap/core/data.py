"""Evaluation data: inputs with optional integer labels, served in batches; balanced subsets.

>>> data = EvalData(torch.rand(100, 1, 28, 28), torch.arange(100) % 10, "toy")
>>> small = data.subset(20)          # 2 images of each of the 10 classes, in data order
>>> small.selection
'20 of 100 images, class-balanced (2 per class, seed 0)'

A subset is never "the first N": many datasets are stored sorted by label (mnist5k is),
so the first N images may hold a single class. Labelled data gets a class-balanced sample
(as equal a number per class as the classes allow), label-free data a seeded random one;
both are deterministic and keep the data order.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Iterator

import torch

from approxmap.core.exceptions import DataError, InvalidParameterError

Batch = tuple[torch.Tensor, torch.Tensor | None]
SUBSET_SEED = 0


class EvalData:
    """Evaluation inputs and optional integer labels, served in batches.

    Either in-memory tensors (`EvalData(x, y)`, x of shape (N, ...) in the model's input
    layout, y int of shape (N,)) or a re-iterable of (inputs, labels) batches
    (`EvalData.from_batches(loader)`), e.g. a DataLoader. Labels may be None (label-free).

    Raises:
        DataError: x has no batch dimension or no samples, y does not match it, or x holds
            NaN or Inf (every loader of the command line builds its data here, so the check
            is made for every data spec).
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor | None = None, name: str = "tensors",
                 selection: str = "") -> None:
        if not isinstance(x, torch.Tensor) or x.dim() < 2:
            raise DataError(f"Inputs must be a tensor with a batch dimension; got {_shape(x)}.")
        if len(x) == 0:
            raise DataError(f"Data {name!r} holds no samples (inputs of shape {_shape(x)}).")
        if y is not None and (not isinstance(y, torch.Tensor) or y.dim() != 1 or len(y) != len(x)):
            raise DataError(f"Labels must be a 1-d tensor of length {len(x)}; got {_shape(y)}.")
        if x.is_floating_point():
            bad = ~torch.isfinite(x)
            if bool(bad.any()):
                raise DataError(f"Data {name!r} holds {int(bad.sum())} NaN or Inf input values "
                                f"(in {int(bad.flatten(1).any(1).sum())} samples); clean it first.")
        self.x = x.float()
        self.y = None if y is None else y.long()
        self.name = name
        self.selection = selection or f"all {len(x)} images"
        self._batches: Iterable[Batch] | None = None

    @classmethod
    def from_batches(cls, batches: Iterable, name: str = "batches") -> EvalData:
        """Wrap a re-iterable of (inputs, labels) batches; a one-shot iterator is materialized."""
        if iter(batches) is batches:
            batches = list(batches)
        data = cls.__new__(cls)
        data.x, data.y, data.name, data._batches = None, None, name, batches
        data.selection = "all batches"
        return data

    def __len__(self) -> int:
        if self.x is not None:
            return len(self.x)
        return sum(len(x) for x, _ in self._iter_given())

    @property
    def labeled(self) -> bool:
        if self.x is not None:
            return self.y is not None
        first = next(iter(self._iter_given()), (None, None))
        return first[1] is not None

    def sample(self, n: int = 2) -> torch.Tensor:
        """The first n inputs (for shape checks and tracing)."""
        if self.x is not None:
            return self.x[:n]
        return next(iter(self._iter_given()))[0][:n]

    def batches(self, batch_size: int) -> Iterator[Batch]:
        if self.x is None:
            yield from self._iter_given()
            return
        for start in range(0, len(self.x), batch_size):
            end = start + batch_size
            yield self.x[start:end], None if self.y is None else self.y[start:end]

    def _iter_given(self) -> Iterator[Batch]:
        for item in self._batches:
            if isinstance(item, torch.Tensor):
                yield item.float(), None
            else:
                x, y = item[0], item[1]
                yield x.float(), None if y is None else y.long()

    def all_labels(self) -> torch.Tensor | None:
        """Every label in data order (None when label-free)."""
        return self.y

    def subset(self, images: int | None, seed: int = SUBSET_SEED) -> EvalData:
        """A deterministic sample of `images` samples, in data order (all when None).

        Labelled data: class-balanced (`balanced_indices`); label-free data: a seeded random
        sample. Asking for more images than there are gives all of them, with a warning.

        Raises:
            InvalidParameterError: images < 1, or the data is a stream of batches.
        """
        if images is None:
            return self
        if isinstance(images, bool) or not isinstance(images, int) or images < 1:
            raise InvalidParameterError(f"The number of images must be an integer >= 1. Got {images!r}.")
        if self.x is None and type(self)._select is EvalData._select:
            raise InvalidParameterError("Cannot take a subset of batched data; pass fewer batches.")
        total = len(self)
        if images >= total:
            if images > total:
                warnings.warn(f"{self.name} has {total} images; using all of them (asked for {images}).",
                              stacklevel=2)
            return self
        labels = self.all_labels()
        if labels is None:
            gen = torch.Generator().manual_seed(seed)
            index = torch.randperm(total, generator=gen)[:images].sort().values
            how = f"{images} of {total} images, seeded random sample (seed {seed})"
        else:
            index, per_class = balanced_indices(labels, images, seed)
            how = f"{images} of {total} images, class-balanced ({per_class}, seed {seed})"
        return self._select(index, how)

    def _select(self, index: torch.Tensor, selection: str) -> EvalData:
        y = None if self.y is None else self.y[index]
        return EvalData(self.x[index], y, self.name, selection)


def balanced_indices(labels: torch.Tensor, count: int, seed: int = SUBSET_SEED
                     ) -> tuple[torch.Tensor, str]:
    """`count` indices with as equal a number per class as the class sizes allow, sorted.

    Each class's quota is filled from a seeded random permutation of its samples; a class
    smaller than its quota gives its surplus to the others (water-filling). Returns the
    indices (int64, ascending) and a short description of the per-class counts.
    """
    classes, sizes = torch.unique(labels, return_counts=True)
    quota = torch.zeros_like(sizes)
    remaining = count
    while remaining > 0:
        open_ = (quota < sizes).nonzero().flatten()
        share = max(remaining // len(open_), 1)
        for i in open_.tolist():
            take = min(share, int(sizes[i] - quota[i]), remaining)
            quota[i] += take
            remaining -= take
            if remaining == 0:
                break
    gen = torch.Generator().manual_seed(seed)
    chosen = []
    for cls, q in zip(classes.tolist(), quota.tolist(), strict=True):
        members = (labels == cls).nonzero().flatten()
        chosen.append(members[torch.randperm(len(members), generator=gen)[:q]])
    index = torch.cat(chosen).sort().values
    low, high = int(quota.min()), int(quota.max())
    per_class = f"{low} per class" if low == high else f"{low}-{high} per class"
    return index, per_class


def _shape(obj) -> str:
    return str(tuple(obj.shape)) if hasattr(obj, "shape") else type(obj).__name__


__all__ = ["Batch", "EvalData", "balanced_indices"]
