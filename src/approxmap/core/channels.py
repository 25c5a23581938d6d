"""What a channel is, for every module kind: dim 1 of activations; output filters of parameters.

A Conv/Linear weight has its output channels along dim 0. A ConvTranspose weight is stored
(in, out/groups, *k): `out_channel_view` returns it as (out, in/groups, *k), so "channel k
of a weight" is always the filters producing output channel k; `from_out_channel_view`
turns such a view back. Biases and 1-d parameters are indexed by output channel as they are.
"""

from __future__ import annotations

import torch
from torch import nn

from approxmap.core.exceptions import InvalidParameterError


def out_channels(module: nn.Module) -> int | None:
    """The number of output channels of a module, when it says (convs, linear, norms)."""
    return _count(module, ("out_channels", "out_features", "num_features"))


def in_channels(module: nn.Module) -> int | None:
    """The number of input channels of a module, when it says (convs, linear, norms)."""
    return _count(module, ("in_channels", "in_features", "num_features"))


def _count(module: nn.Module, attrs: tuple[str, ...]) -> int | None:
    for attr in attrs:
        value = getattr(module, attr, None)
        if isinstance(value, int):
            return value
    return None


def out_channel_view(module: nn.Module, name: str, tensor: torch.Tensor) -> torch.Tensor:
    """`tensor` (the module's parameter `name`) with its output channels along dim 0.

    Conv/Linear weights already are; a ConvTranspose weight (in, out/groups, *k) becomes
    (out, in/groups, *k). Biases and 1-d parameters are returned as they are.
    """
    if name != "weight" or not isinstance(module, nn.modules.conv._ConvTransposeNd):
        return tensor
    g = module.groups
    in_pg, out_pg, *k = tensor.shape[0] // g, tensor.shape[1], *tensor.shape[2:]
    return tensor.reshape(g, in_pg, out_pg, *k).transpose(1, 2).reshape(g * out_pg, in_pg, *k)


def from_out_channel_view(module: nn.Module, name: str, view: torch.Tensor) -> torch.Tensor:
    """The inverse of `out_channel_view`: back to the parameter's own layout."""
    if name != "weight" or not isinstance(module, nn.modules.conv._ConvTransposeNd):
        return view
    g = module.groups
    out_pg, in_pg, *k = view.shape[0] // g, view.shape[1], *view.shape[2:]
    return view.reshape(g, out_pg, in_pg, *k).transpose(1, 2).reshape(g * in_pg, out_pg, *k)


def select_channels(tensor: torch.Tensor, dim: int, channels: tuple[int, ...] | None,
                    key: str) -> torch.Tensor:
    """The chosen channels of `tensor` along `dim` (the tensor itself when None)."""
    if channels is None:
        return tensor
    if tensor.dim() <= dim or max(channels) >= tensor.shape[dim]:
        raise InvalidParameterError(
            f"Channel {max(channels)} is out of range for {key}: the tensor there has shape "
            f"{tuple(tensor.shape)}.")
    return tensor.index_select(dim, torch.tensor(channels, device=tensor.device))


def replace_channels(tensor: torch.Tensor, dim: int, channels: tuple[int, ...] | None,
                     part: torch.Tensor) -> torch.Tensor:
    """`tensor` with the chosen channels replaced by `part` (a new tensor)."""
    if channels is None:
        return part
    return tensor.index_copy(dim, torch.tensor(channels, device=tensor.device), part)


__all__ = ["from_out_channel_view", "in_channels", "out_channel_view", "out_channels",
           "replace_channels", "select_channels"]
