"""Per-layer facts: type, output shape, MACs (from torch.utils.flop_counter) and parameters."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from approxmap.exceptions import ApproxmapError, DataError


@dataclass(frozen=True)
class LayerInfo:
    """One module: its MACs for one input sample and its parameters (nested ones included)."""

    name: str
    type: str
    output_shape: tuple[int, ...] | None
    macs: int
    params: int


def count_macs(model: nn.Module, sample: torch.Tensor) -> dict[str, int]:
    """MACs per module name (and '' for the whole model) for one forward of `sample`.

    Counted by torch.utils.flop_counter (MACs = FLOPs / 2), which sees every aten op,
    including convolutions behind functional padding.
    """
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(sample)
    macs = {}
    for scope, ops in counter.get_flop_counts().items():
        name = "" if scope == "Global" else scope.partition(".")[2]
        if scope != "Global" and "." not in scope:
            continue  # the root module itself duplicates Global
        macs[name] = int(sum(ops.values())) // 2
    return macs


@torch.no_grad()
def layer_table(model: nn.Module, sample: torch.Tensor) -> list[LayerInfo]:
    """Every named module of `model` with its output shape, MACs and parameters.

    `sample` is one input with its batch dimension (e.g. shape (1, 1, 28, 28)); MACs are
    per sample.

    >>> [l.name for l in layer_table(create_model("mnist-cnn"), torch.zeros(1, 1, 28, 28))][:2]  # doctest: +SKIP
    ['normalize', 'conv_layers']
    """
    shapes: dict[str, tuple[int, ...]] = {}
    modules = [(n, m) for n, m in model.named_modules() if n]
    handles = [m.register_forward_hook(_shape_hook(n, shapes)) for n, m in modules]
    try:
        macs = count_macs(model.eval(), sample[:1])
    except ApproxmapError:
        raise
    except (RuntimeError, ValueError, TypeError, IndexError) as exc:
        raise DataError(
            f"An input of shape {tuple(sample.shape[1:])} does not fit the model: "
            f"{str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__}"
        ) from None
    finally:
        for handle in handles:
            handle.remove()
    return [LayerInfo(n, type(m).__name__, shapes.get(n), macs.get(n, 0),
                      sum(p.numel() for p in m.parameters()))
            for n, m in modules]


def _shape_hook(name: str, shapes: dict[str, tuple[int, ...]]):
    def hook(module, args, out):
        if isinstance(out, torch.Tensor) and name not in shapes:
            shapes[name] = tuple(out.shape[1:])

    return hook
