"""Per-layer facts: type, output shape, MACs (from torch.utils.flop_counter), parameters, and
whether the layer runs at all in forward().

>>> [l.name for l in layer_table(create_model("mnist-cnn"), torch.zeros(1, 1, 28, 28))][:2]  # doctest: +SKIP
['normalize', 'conv_layers']
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from approxmap.core.exceptions import ApproxmapError, DataError, ModelError


@dataclass(frozen=True)
class LayerInfo:
    """One module: its MACs for one input sample, its parameters (nested ones included),
    its output shape without the batch dimension (None if it returns no tensor), and
    whether forward() calls it at all. A container that forward() never calls itself but
    whose modules run (a ModuleList or ModuleDict) has `container` set, and the MACs of
    its modules."""

    name: str
    type: str
    output_shape: tuple[int, ...] | None
    macs: int
    params: int
    executed: bool = True
    container: bool = False

    @property
    def runs(self) -> bool:
        """True when the module, or for a container one of its modules, runs in forward()."""
        return self.executed or self.container

    def to_dict(self) -> dict:
        return asdict(self)


def type_name(module: nn.Module) -> str:
    """The module's type as shown and matched everywhere: the class name, prefixed with
    `Quantized` (`DynamicQuantized`) for eager-mode int8 modules (e.g. QuantizedConv2d)."""
    cls = type(module)
    if ".quantized.dynamic" in cls.__module__:
        return f"DynamicQuantized{cls.__name__}"
    if ".quantized" in cls.__module__ and cls.__name__ not in ("QuantStub", "DeQuantStub"):
        return f"Quantized{cls.__name__}"
    return cls.__name__


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Run `model` in eval mode and give every submodule its own training flag back after
    (a model left in train mode, or with some modules set apart, is left exactly so)."""
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for module, training in flags:
            module.training = training


def count_macs(model: nn.Module, sample: torch.Tensor) -> dict[str, int]:
    """MACs per module name (and '' for the whole model) for one forward of `sample`, in
    eval mode (every module's training flag given back).

    Counted by torch.utils.flop_counter (MACs = FLOPs / 2), which sees every aten op,
    including convolutions behind functional padding. Eager-mode quantized convolutions and
    linear layers run quantized kernels it cannot see; their MACs are counted from their
    geometry (output elements x input channels per group x kernel size) and added to their
    parents and the total.
    """
    counter = FlopCounterMode(display=False)
    quantized: dict[str, int] = {}
    handles = [m.register_forward_hook(_quantized_macs_hook(n, quantized))
               for n, m in model.named_modules() if n and type_name(m).startswith(
                   ("Quantized", "DynamicQuantized")) and hasattr(m, "weight")]
    try:
        with torch.no_grad(), eval_mode(model), counter:
            model(sample)
    finally:
        for handle in handles:
            handle.remove()
    macs: dict[str, int] = {}
    for scope, ops in counter.get_flop_counts().items():
        name = "" if scope == "Global" else scope.partition(".")[2]
        if scope != "Global" and "." not in scope:
            continue  # the root module itself duplicates Global
        macs[name] = int(sum(ops.values())) // 2
    for name, count in quantized.items():
        for prefix in _prefixes(name):
            macs[prefix] = macs.get(prefix, 0) + count
    return macs


def _prefixes(name: str) -> list[str]:
    parts = name.split(".")
    return ["", *(".".join(parts[:i]) for i in range(1, len(parts) + 1))]


def _quantized_macs_hook(name: str, out: dict[str, int]):
    def hook(module, args, output):
        weight = module.weight() if callable(module.weight) else module.weight
        result = output.dequantize() if output.is_quantized else output
        per_output = weight[0].numel()  # in_channels/groups x kernel (or in_features)
        out[name] = out.get(name, 0) + (result.numel() // max(len(result), 1)) * per_output

    return hook


@torch.no_grad()
def layer_table(model: nn.Module, sample: torch.Tensor) -> list[LayerInfo]:
    """Every named module of `model` with its output shape, MACs, parameters and whether it runs
    (the packed-weight storage inside quantized layers is part of its layer, not a row).

    `sample` is one input with its batch dimension (e.g. shape (1, 1, 28, 28)); MACs are
    per sample. The model's dtype is respected (the sample is cast to it).

    Raises:
        DataError: the sample does not fit the model (an error that reads like a shape
            mismatch).
        ModelError: the model's forward raised otherwise.
    """
    shapes: dict[str, tuple[int, ...] | None] = {}
    modules = [(n, m) for n, m in model.named_modules() if n]
    handles = [m.register_forward_hook(_shape_hook(n, shapes)) for n, m in modules]
    try:
        macs = count_macs(model, cast_to_model(model, sample[:1]))
    except ApproxmapError:
        raise
    except (KeyboardInterrupt, MemoryError):
        raise
    except BaseException as exc:  # the model's own code
        error = ModelError.from_exception(exc)
        if not error.reads_as_shape_mismatch():
            raise error from None
        raise DataError(f"An input of shape {tuple(sample.shape[1:])} does not fit the model: "
                        f"{error.detail or error.kind}") from None
    finally:
        for handle in handles:
            handle.remove()
    rows: dict[str, LayerInfo] = {}
    for name, module in reversed(modules):  # children before their parents
        if _internal(module):
            continue
        children = [rows[f"{name}.{c}"] for c, _ in module.named_children()
                    if f"{name}.{c}" in rows]
        container = name not in shapes and any(c.runs for c in children)
        count = sum(c.macs for c in children if c.runs) if container else macs.get(name, 0)
        rows[name] = LayerInfo(name, type_name(module), shapes.get(name), count,
                               _params(module), name in shapes, container)
    return [rows[n] for n, _ in modules if n in rows]


def _internal(module: nn.Module) -> bool:
    """Storage modules of eager-mode quantized layers (packed weights), never called."""
    cls = type(module)
    return ".quantized" in cls.__module__ and cls.__name__.endswith("PackedParams")


def executed_modules(model: nn.Module, sample: torch.Tensor) -> set[str]:
    """Names of the modules that forward() calls for this sample."""
    return {info.name for info in layer_table(model, sample) if info.executed}


def model_dtype(model: nn.Module) -> torch.dtype:
    """The floating dtype of the model's first floating parameter or buffer (float32 if none)."""
    for tensor in (*model.parameters(), *model.buffers()):
        if tensor.is_floating_point():
            return tensor.dtype
    return torch.float32


def cast_to_model(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """`x` cast to the model's floating dtype (bf16/fp16 models take bf16/fp16 inputs)."""
    dtype = model_dtype(model)
    return x if x.dtype == dtype or not x.is_floating_point() else x.to(dtype)


def _params(module: nn.Module) -> int:
    count = sum(p.numel() for p in module.parameters())
    if not count and hasattr(module, "weight") and callable(module.weight):
        weight = module.weight()  # packed quantized weights
        count = weight.numel() + (module.bias().numel() if callable(getattr(module, "bias", None))
                                  and module.bias() is not None else 0)
    return count


def _shape_hook(name: str, shapes: dict[str, tuple[int, ...] | None]):
    def hook(module, args, out):
        if name not in shapes:
            shapes[name] = tuple(out.shape[1:]) if isinstance(out, torch.Tensor) else None

    return hook


__all__ = ["LayerInfo", "cast_to_model", "count_macs", "eval_mode", "executed_modules",
           "layer_table", "model_dtype", "type_name"]
