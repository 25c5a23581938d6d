"""Fine-tuning a pruned model: the zoo's training loop with a short cosine schedule.

>>> finetune(pruned, create_dataset("fashion-mnist-train"), epochs=1)  # doctest: +SKIP
"""

from __future__ import annotations

import torch
from torch import nn

from approxmap.core.data import EvalData
from approxmap.core.exceptions import InvalidParameterError
from approxmap.zoo.training import Recipe, fit


def finetune(model: nn.Module, train: EvalData, epochs: int = 1, *, lr: float = 0.01,
             batch_size: int = 128, seed: int = 0, flip: bool = True,
             weight_decay: float = 5e-4) -> nn.Module:
    """Fine-tune `model` in place: SGD (Nesterov momentum 0.9), cosine lr from `lr` over all
    steps, no warm-up; seeded shuffling and flips. Returns the model in eval mode.

    Raises:
        InvalidParameterError: epochs < 1, or data that is not in-memory and labeled.
    """
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise InvalidParameterError(f"Fine-tuning epochs must be an integer >= 1. Got {epochs!r}.")
    recipe = Recipe(epochs=epochs, lr=lr, weight_decay=weight_decay, batch_size=batch_size,
                    flip=flip, schedule="cosine")
    fit(model, train, recipe, torch.Generator().manual_seed(seed), desc="fine-tune")
    return model.eval()


__all__ = ["finetune"]
