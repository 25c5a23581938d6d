"""Units of coupled filters and the point where the next layers read each filter's channel.

A *unit* is the set of convolutions whose output filters must go together (Torch-Pruning's
dependency group: residual adds tie the convolutions of a stage, depthwise convolutions
follow their producer); it is named by its first convolution.

Removing filter i is emulated by making channel i zero where the next layers read it: after
the convolution's BatchNorm and activation (zeroing only the weights would leave
BatchNorm's shift, and an activation with act(0) != 0, such as a sigmoid, its constant).
The read point follows conv -> BatchNorm -> activation, whether the activation is a module
or a function (F.relu, torch.sigmoid, x.relu(), ...); when the activation is a function, the
mask sets the module output before it to the activation's zero preimage (0 for the ReLU
family and tanh-like functions, -1e4 for sigmoid-like ones, whose image there is exactly 0
in float32, float16 and bfloat16).

Grouped convolutions (groups > 1, not depthwise) are left out of pruning, as are the
convolutions whose channels feed one: removing their channels would have to keep every
group the same size. `pruning_units` says which were left out and why.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import fx, nn

from approxmap.core.exceptions import ApproxmapError, InvalidParameterError, UnknownNameError
from approxmap.core.registry import close_matches_hint

_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d)
_ACTIVATIONS = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.SiLU, nn.GELU, nn.Hardswish,
                nn.Hardtanh, nn.Sigmoid, nn.Tanh, nn.Mish)
SIGMOID_ZERO = -1e4  # sigmoid(-1e4) == 0 exactly in float32, float16 and bfloat16
# functional activations -> the input value whose output is 0
_ZERO_AT = {F.relu: 0.0, torch.relu: 0.0, F.relu6: 0.0, F.leaky_relu: 0.0, F.elu: 0.0,
            F.silu: 0.0, F.gelu: 0.0, F.hardswish: 0.0, F.mish: 0.0, torch.tanh: 0.0,
            F.tanh: 0.0, F.hardtanh: 0.0, torch.sigmoid: SIGMOID_ZERO, F.sigmoid: SIGMOID_ZERO}
_ZERO_AT_METHOD = {"relu": 0.0, "relu_": 0.0, "tanh": 0.0, "sigmoid": SIGMOID_ZERO}
TP_INSTALL = "pip install --no-deps torch-pruning==1.6.1"


def torch_pruning():
    """The torch_pruning module, or ApproxmapError saying how to install it."""
    try:
        import torch_pruning
    except ImportError:
        raise ApproxmapError(f"Physical pruning needs Torch-Pruning. Install it with: {TP_INSTALL}") from None
    return torch_pruning


@dataclass(frozen=True)
class ReadPoint:
    """Where the channels of a layer's output are read: a module whose output is masked with
    `zero` (the value that makes the channel zero for every later layer), and `activation`,
    a functional activation applied after that module (None if none or a module)."""

    module: str
    zero: float = 0.0
    activation: str | None = None
    norm: str | None = None  # the BatchNorm right after the layer, if any

    def activate(self, value: torch.Tensor) -> torch.Tensor:
        """The channel values the next layers read (the functional activation applied)."""
        if self.activation is None:
            return value
        fn = _FUNCTIONS.get(self.activation)
        return fn(value) if fn is not None else getattr(value, self.activation)()


_FUNCTIONS = {f"{getattr(fn, '__module__', '')}.{fn.__name__}": fn for fn in _ZERO_AT}


def read_points(model: nn.Module) -> dict[str, ReadPoint]:
    """For each Conv2d/Linear, where the next layers read its channels.

    Follows conv -> BatchNorm -> activation while each is called once and has a single user;
    e.g. {'features.conv1_1': ReadPoint('features.relu1_1')}.

    Raises:
        ApproxmapError: torch.fx cannot trace the model.
    """
    try:
        graph = fx.Tracer().trace(model)
    except Exception as exc:  # fx raises many kinds on untraceable code
        raise ApproxmapError(f"torch.fx cannot trace the model: {type(exc).__name__}: {exc}") from None
    modules = dict(model.named_modules())
    calls = Counter(n.target for n in graph.nodes if n.op == "call_module")
    points = {}
    for node in graph.nodes:
        if node.op != "call_module" or not isinstance(modules[node.target], nn.Conv2d | nn.Linear):
            continue
        point, norm = node, None
        for kind in (_NORMS, _ACTIVATIONS):  # each optional, in this order
            nxt = _single_user(point)
            if (nxt is not None and nxt.op == "call_module" and calls[nxt.target] == 1
                    and isinstance(modules[nxt.target], kind)):
                point = nxt
                norm = nxt.target if kind is _NORMS else norm
        functional = _functional_activation(point)
        points[node.target] = ReadPoint(point.target, functional[0], functional[1], norm) if (
            functional) else ReadPoint(point.target, norm=norm)
    return points


def _single_user(node: fx.Node) -> fx.Node | None:
    users = list(node.users)
    return users[0] if len(users) == 1 else None


def _functional_activation(node: fx.Node) -> tuple[float, str] | None:
    """(zero preimage, name) of a functional activation applied right after `node`."""
    nxt = _single_user(node)
    if nxt is None or not nxt.args or nxt.args[0] is not node:
        return None
    if nxt.op == "call_function" and nxt.target in _ZERO_AT:
        return _ZERO_AT[nxt.target], f"{getattr(nxt.target, '__module__', '')}.{nxt.target.__name__}"
    if nxt.op == "call_method" and nxt.target in _ZERO_AT_METHOD:
        return _ZERO_AT_METHOD[nxt.target], nxt.target
    return None


@dataclass(frozen=True)
class PruneUnit:
    """Convolutions whose filters are removed together; `name` is the first one."""

    name: str
    convs: tuple[str, ...]
    channels: int

    @property
    def coupled(self) -> bool:
        return len(self.convs) > 1


class Units(list):
    """The prunable units (a list of PruneUnit) plus `left_out`: convolution -> why not."""

    def __init__(self, units=(), left_out: dict[str, str] | None = None) -> None:
        super().__init__(units)
        self.left_out = dict(left_out or {})


def dependency_graph(model: nn.Module, sample: torch.Tensor):
    """Torch-Pruning's dependency graph of `model`, traced with one input sample."""
    tp = torch_pruning()
    with torch.enable_grad():
        try:
            return tp.DependencyGraph().build_dependency(model, example_inputs=sample[:1],
                                                         verbose=False)
        except Exception as exc:
            raise ApproxmapError(f"Torch-Pruning cannot trace the model: {type(exc).__name__}: "
                                 f"{str(exc)[:200]}") from None


def _grouped(conv: nn.Module) -> bool:
    return isinstance(conv, nn.Conv2d) and conv.groups > 1 and conv.groups != conv.in_channels


def pruning_units(model: nn.Module, sample: torch.Tensor, graph=None) -> Units:
    """The prunable units of every Conv2d's output filters, in module order (grouped
    convolutions and their producers left out, listed in `left_out`)."""
    tp = torch_pruning()
    graph = graph or dependency_graph(model, sample)
    order = {name: i for i, (name, _) in enumerate(model.named_modules())}
    name_of = {m: n for n, m in model.named_modules()}
    seen: set[str] = set()
    units = Units()
    for name, conv in model.named_modules():
        if not isinstance(conv, nn.Conv2d) or name in seen:
            continue
        group = graph.get_pruning_group(conv, tp.prune_conv_out_channels, [0])
        members = sorted({name_of[dep.target.module] for dep, _ in group
                          if isinstance(dep.target.module, nn.Conv2d)
                          and graph.is_out_channel_pruning_fn(dep.handler)}, key=order.get)
        touched = {name_of[dep.target.module] for dep, _ in group
                   if isinstance(dep.target.module, nn.Module) and dep.target.module in name_of}
        seen.update(members)
        grouped = sorted(n for n in touched if _grouped(dict(model.named_modules())[n]))
        if grouped:
            why = (f"grouped convolution {', '.join(grouped)} (groups must stay equal in size; "
                   "approxmap leaves grouped layers and their producers out of pruning)")
            units.left_out.update(dict.fromkeys(members, why))
            continue
        units.append(PruneUnit(members[0], tuple(members), conv.out_channels))
    return units


def find_unit(units: list[PruneUnit], layer: str) -> PruneUnit:
    """The unit that a convolution belongs to.

    Raises:
        InvalidParameterError: the convolution is left out of pruning (the reason given).
        UnknownNameError: no prunable convolution of that name (close matches suggested).
    """
    for unit in units:
        if layer in unit.convs:
            return unit
    left_out = getattr(units, "left_out", {})
    if layer in left_out:
        raise InvalidParameterError(f"Layer {layer!r} cannot be pruned: {left_out[layer]}.")
    names = [c for u in units for c in u.convs]
    raise UnknownNameError(f"No prunable convolution named {layer!r}.{close_matches_hint(layer, names)}")


__all__ = ["PruneUnit", "ReadPoint", "TP_INSTALL", "Units", "dependency_graph", "find_unit",
           "pruning_units", "read_points", "torch_pruning"]
