"""Helpers of the emulation tests: EvoApprox tables and a one-line layer quantizer."""

from __future__ import annotations

import json

import numpy as np
import torch
from torch import nn

from approxmap.multipliers.evoapprox import DATA_DIR
from approxmap.multipliers.products import Table
from approxmap.multipliers.quant import ActivationRange, Int8Layer, QuantScheme, quantize_layer

EVO_DIR = DATA_DIR  # the EvoApprox tables shipped with approxmap

# unsigned: unstructured (2P7, 17KS), bit-linear in a (17QU, 1A0M); signed: bit-linear
EVO_NAMES = ("v10/mul8u_2P7", "v10/mul8u_17KS", "v10/mul8u_17QU", "v10/mul8s_1KVL",
             "v10/mul8s_1L2H", "v2022/mul8u_1A0M")


def load_evo(name: str) -> Table:
    """An EvoApprox table by release/name (signedness from the metadata)."""
    meta = json.loads((EVO_DIR / "evo8_luts.json").read_text())
    with np.load(EVO_DIR / "evo8_luts.npz") as z:
        lut = z["sha_" + meta["names"][name]]
    return Table(lut, bool(meta["meta"][name]["signed"]), name=name)


def make_layer(module: nn.Module, x: torch.Tensor, activation: str = "uint8") -> Int8Layer:
    """Quantize a module with the min/max of x."""
    return quantize_layer(module, ActivationRange(float(x.min()), float(x.max())),
                          QuantScheme(activation=activation))
