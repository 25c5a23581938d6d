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

Masking equals removal only when every op between the read point and the next layers keeps
a zero channel zero (pooling, flatten, ReLU-like activations, adds, products, ...). When
another op reads the channel there (e.g. F.softplus, a BatchNorm after the activation),
approxmap cannot tell: the read point names it (`ReadPoint.unknown`), and the analyses that
mask filters say so (`masking_notes`, a warning and a note in their results).

Grouped convolutions (groups > 1, not depthwise) are left out of pruning, as are the
convolutions whose channels feed one: removing their channels would have to keep every
group the same size. `pruning_units` says which were left out and why.
"""

from __future__ import annotations

import operator
import warnings
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import fx, nn

from approxmap.core.exceptions import ApproxmapError, InvalidParameterError, UnknownNameError
from approxmap.core.layers import cast_to_model, eval_mode, type_name
from approxmap.core.registry import close_matches_hint
from approxmap.core.tracing import trace

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
    unknown: str | None = None  # an op reading the channel after the point that may not keep
    #                             a zero channel zero (masking may then differ from removal)

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
    e.g. {'features.conv1_1': ReadPoint('features.relu1_1')}. Then follows the channel on to
    the next layers: an op on the way that may not keep a zero channel zero is named in
    `ReadPoint.unknown`.

    Raises:
        ApproxmapError: torch.fx cannot trace the model.
    """
    graph = trace(model).graph
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
        read = _single_user(point) if functional else point
        unknown = _unknown_reader(read, modules)
        points[node.target] = ReadPoint(point.target, functional[0], functional[1], norm,
                                        unknown) if functional else ReadPoint(
            point.target, norm=norm, unknown=unknown)
    return points


# Ops that keep a zero channel zero (or only pass it on): masking there equals removal.
_KEEP_ZERO_MODULES = (
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.SiLU, nn.GELU, nn.Hardswish, nn.Hardtanh,
    nn.Tanh, nn.Mish, nn.Softsign, nn.Tanhshrink, nn.Hardshrink, nn.Softshrink,
    nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d,
    nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d, nn.AdaptiveMaxPool1d,
    nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d, nn.Dropout, nn.Dropout1d, nn.Dropout2d,
    nn.Dropout3d, nn.Flatten, nn.Identity, nn.Upsample, nn.ZeroPad2d)
_CONSUMER_MODULES = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d,
                     nn.ConvTranspose3d, nn.Linear)
_KEEP_ZERO_FUNCTIONS = {
    *(fn for fn, zero in _ZERO_AT.items() if zero == 0.0), F.relu_, torch.relu_, torch.flatten,
    torch.reshape, torch.permute, torch.transpose, torch.squeeze, torch.unsqueeze, torch.cat,
    torch.stack, torch.add, torch.mul, torch.mean, torch.sum, torch.amax, torch.chunk,
    torch.split, F.max_pool1d, F.max_pool2d, F.max_pool3d, F.avg_pool1d, F.avg_pool2d,
    F.avg_pool3d, F.adaptive_avg_pool1d, F.adaptive_avg_pool2d, F.adaptive_avg_pool3d,
    F.adaptive_max_pool1d, F.adaptive_max_pool2d, F.adaptive_max_pool3d, F.dropout,
    F.dropout1d, F.dropout2d, F.dropout3d, F.interpolate, operator.add, operator.iadd,
    operator.mul, operator.imul, operator.getitem, operator.neg, torch.max_pool1d,
    torch.max_pool2d, torch.max_pool3d, torch.avg_pool1d, torch._C._nn.avg_pool2d,
    torch._C._nn.avg_pool3d, torch.adaptive_avg_pool1d, torch._C._nn.adaptive_avg_pool2d,
    torch._C._nn.adaptive_avg_pool3d, torch.adaptive_max_pool1d,
    torch._C._nn.adaptive_max_pool2d, torch._C._nn.adaptive_max_pool3d, torch.dropout}
_KEEP_ZERO_METHODS = {
    "relu", "relu_", "tanh", "tanh_", "view", "reshape", "flatten", "contiguous", "mean", "sum",
    "amax", "permute", "transpose", "squeeze", "unsqueeze", "chunk", "split", "clone", "float",
    "half", "bfloat16", "to", "type_as", "detach", "add", "add_", "mul", "mul_", "expand",
    "expand_as", "repeat", "neg"}
_CONSUMER_FUNCTIONS = {F.conv1d, F.conv2d, F.conv3d, F.linear, torch.conv2d}
_NOT_VALUES_FUNCTIONS = {getattr, len}  # x.shape, len(x): sizes, not the channel's values
_NOT_VALUES_METHODS = {"size", "dim", "numel"}
_MAX_WALK = 256


def _unknown_reader(start: fx.Node, modules: Mapping[str, nn.Module]) -> str | None:
    """The first op reading `start`'s value on its way to the next layers that approxmap
    does not know to keep a zero channel zero (None when every path reaches a convolution,
    a linear layer or the model's output through ops that do)."""
    stack, seen = list(start.users), set()
    while stack and len(seen) < _MAX_WALK:
        node = stack.pop()
        if node in seen:
            continue
        seen.add(node)
        verdict = _reader(node, modules)
        if verdict == "unknown":
            return _describe(node, modules)
        if verdict == "pass":
            stack.extend(node.users)
    return None


def _reader(node: fx.Node, modules: Mapping[str, nn.Module]) -> str:
    """'stop' (a next layer, the output, a size query), 'pass' (keeps zeros) or 'unknown'."""
    if node.op == "output":
        return "stop"
    if node.op == "call_module":
        module = modules.get(node.target)
        if isinstance(module, _CONSUMER_MODULES):
            return "stop"
        return "pass" if isinstance(module, _KEEP_ZERO_MODULES) else "unknown"
    if node.op == "call_function":
        if node.target in _CONSUMER_FUNCTIONS or node.target in _NOT_VALUES_FUNCTIONS:
            return "stop"
        if node.target in (operator.truediv, torch.div) and node.args and not any(
                isinstance(a, fx.Node) for a in node.args[1:]):
            return "pass"  # a channel divided by a constant
        if node.target in (operator.add, operator.iadd, torch.add) and any(
                not isinstance(a, fx.Node) and a != 0 for a in node.args):
            return "unknown"  # a constant added: a zeroed channel becomes that constant
        return "pass" if node.target in _KEEP_ZERO_FUNCTIONS else "unknown"
    if node.op == "call_method":
        if node.target in _NOT_VALUES_METHODS:
            return "stop"
        if node.target in ("add", "add_") and any(
                not isinstance(a, fx.Node) and a != 0 for a in node.args[1:]):
            return "unknown"
        return "pass" if node.target in _KEEP_ZERO_METHODS else "unknown"
    return "unknown"


def _describe(node: fx.Node, modules: Mapping[str, nn.Module]) -> str:
    if node.op == "call_module":
        return f"{type(modules.get(node.target)).__name__} {node.target!r}"
    if node.op == "call_method":
        return f".{node.target}()"
    target = node.target
    name = getattr(target, "__name__", str(target))
    for prefix, namespace in (("torch.nn.functional", F), ("torch", torch), ("operator", operator)):
        if getattr(namespace, name, None) is target:
            return f"{prefix}.{name}"
    return f"{getattr(target, '__module__', None) or ''}.{name}".lstrip(".")


def masking_notes(points: Mapping[str, ReadPoint], layers: Iterable[str]) -> dict[str, str]:
    """Layer -> why masking its filters may differ from removing them (only such layers)."""
    return {name: (f"{points[name].unknown} reads its channels after {points[name].module!r}; "
                   "approxmap cannot tell whether a zeroed channel stays zero there, so masking "
                   "may differ from removing the filter")
            for name in layers if name in points and points[name].unknown}


def warn_masking(notes: Mapping[str, str]) -> None:
    """One warning naming the layers whose masking approxmap cannot vouch for (the same
    warning from several analyses of one run is shown once)."""
    if notes:
        first, why = next(iter(notes.items()))
        more = f" (and {len(notes) - 1} more layer(s))" if len(notes) > 1 else ""
        warnings.warn(f"layer {first}{more}: {why}.", stacklevel=1)


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
    """Torch-Pruning's dependency graph of `model`, traced with one input sample.

    The sample is cast to the model's floating dtype (bf16/fp16 models); Torch-Pruning runs
    the model in eval mode, and every module's own mode is given back afterwards (a model
    left in train mode stays so, and its BatchNorm statistics are not updated).
    """
    tp = torch_pruning()
    with torch.enable_grad(), eval_mode(model):
        try:
            return tp.DependencyGraph().build_dependency(
                model, example_inputs=cast_to_model(model, sample[:1]), verbose=False)
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


def require_units(units: Units, model: nn.Module) -> Units:
    """`units`, or InvalidParameterError when no convolution of `model` can be pruned (why
    the convolutions were left out, or the type of its convolutions when none is a float
    Conv2d, e.g. QuantizedConv2d)."""
    if units:
        return units
    if units.left_out:
        reasons: dict[str, list[str]] = {}
        for name, reason in units.left_out.items():
            reasons.setdefault(reason, []).append(name)
        why = "; ".join(f"{', '.join(names)}: {reason}" for reason, names in reasons.items())
    else:
        convs = [(n, type_name(m)) for n, m in model.named_modules() if "Conv" in type_name(m)]
        why = f"no float Conv2d; {convs[0][0]!r} is a {convs[0][1]}" if convs else "no Conv2d"
    raise InvalidParameterError(f"The model has no convolution that approxmap can prune ({why}).")


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
           "masking_notes", "pruning_units", "read_points", "require_units", "torch_pruning",
           "warn_masking"]
