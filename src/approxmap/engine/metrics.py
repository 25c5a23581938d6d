"""Per-trial metrics accumulated over the evaluation batches."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F


@dataclass
class Counts:
    """Counts over the samples seen so far; a non-finite output is always a wrong prediction."""

    n: int = 0
    correct1: int = 0
    correct5: int = 0
    agree: int = 0
    agree5: int = 0
    nonfinite: int = 0
    loss_sum: float = 0.0
    labeled: bool = field(default=True)

    def update(self, logits: torch.Tensor, labels: torch.Tensor | None, clean_top1: torch.Tensor) -> None:
        finite = torch.isfinite(logits).all(dim=1)
        safe = torch.where(finite.unsqueeze(1), logits, torch.zeros_like(logits))
        k = min(5, logits.shape[1])
        top = safe.topk(k, dim=1).indices
        self.n += len(logits)
        self.nonfinite += int((~finite).sum())
        self.agree += int(((top[:, 0] == clean_top1) & finite).sum())
        self.agree5 += int(((top == clean_top1.unsqueeze(1)).any(1) & finite).sum())
        if labels is None:
            self.labeled = False
            return
        self.correct1 += int(((top[:, 0] == labels) & finite).sum())
        self.correct5 += int(((top == labels.unsqueeze(1)).any(1) & finite).sum())
        if finite.any():
            loss = F.cross_entropy(safe[finite].double(), labels[finite], reduction="sum")
            self.loss_sum += float(loss)

    def as_dict(self) -> dict:
        return asdict(self)
